"""Provider registry: providers are found by module name, so a new one needs no change elsewhere."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

from harness.providers.base import Provider


def load(name: str) -> type[Provider]:
    """The Provider subclass in ``harness.providers.<name>`` (its module-level ``PROVIDER``)."""
    try:
        with _unshadowed(name):
            module = importlib.import_module(f"harness.providers.{name}")
    except ModuleNotFoundError as exc:
        raise KeyError(f"unknown provider {name!r} (known: {', '.join(available())})") from exc
    provider: type[Provider] = module.PROVIDER
    return provider


_HELPERS = (
    "base",
    "http",
    "lean",
    "loopback",
    "presence",
)  # modules here that define no user-facing provider (loopback: tests only; presence: members of the todo app)


def available() -> list[str]:
    """Every provider module shipped in this package."""
    import harness.providers as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name not in _HELPERS)


def _shadows(folder: str, name: str) -> bool:
    """A scenarios folder holding ``<name>.py``: importing ``name`` from it would find the scenario."""
    path = os.path.abspath(folder or ".")
    return os.path.basename(path) == "scenarios" and os.path.isfile(os.path.join(path, f"{name}.py"))


class _unshadowed:
    """Locust registers ``scenarios/socketio.py`` as module ``socketio`` (and pusher, ably likewise),
    which would shadow the client library of the same name. Import the provider with the scenario's
    folder off ``sys.path`` and its module out of ``sys.modules``; Locust keeps its own reference. Another
    scenario (``scenarios/todo_app.py --provider socketio``) puts the same folder on ``sys.path`` without
    importing ``scenarios/socketio.py``: that folder is taken off too."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.saved_path: list[str] = []

    def __enter__(self) -> None:
        shadow = sys.modules.get(self.name)
        folder = os.path.dirname(os.path.abspath(getattr(shadow, "__file__", "") or ""))
        self.saved_path = sys.path[:]
        if shadow is not None and os.path.basename(folder) == "scenarios":
            del sys.modules[self.name]
            sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != folder]
        sys.path[:] = [p for p in sys.path if not _shadows(p, self.name)]

    def __exit__(self, *_exc: object) -> None:
        sys.path[:] = self.saved_path
