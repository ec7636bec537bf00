"""docker-compose.yml as data: its services' commands and environments, interpolated as compose does.

Tests run the services' commands outside Docker (targets on loopback, Locust master and worker), so
what the file says is what gets exercised. Interpolation covers what compose files use here: ``$$``,
``${NAME}``, ``${NAME:-default}`` and ``${NAME-default}``, read from the mapping given (empty by
default, so a test does not depend on the developer's shell).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO

__all__ = ["COMPOSE_FILE", "Service", "interpolate", "load_services", "option", "replace_option"]

COMPOSE_FILE = REPO / "docker-compose.yml"
_VARIABLE = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\})")


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    image: str = ""


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        name, op, default = match["name"], match["op"], match["default"] or ""
        if op == ":-":
            return environ.get(name) or default
        if op == "-":
            return environ.get(name, default)
        return environ.get(name, "")

    return _VARIABLE.sub(value, text)


def _interpolated(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, list):
        return [_interpolated(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(item, environ) for key, item in node.items()}
    return node


def load_services(path: Path = COMPOSE_FILE, environ: Mapping[str, str] | None = None) -> dict[str, Service]:
    """Every service of the file (YAML anchors and merge keys resolved) -> its command and environment."""
    data = _interpolated(yaml.safe_load(path.read_text()), environ or {})
    services: dict[str, Service] = {}
    for name, spec in data["services"].items():
        command = spec.get("command", [])
        assert isinstance(command, list), f"{name}: write commands as lists (no shell splitting to guess)"
        env = spec.get("environment", {})
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        services[name] = Service(
            name, [str(arg) for arg in command], {k: str(v) for k, v in env.items()}, spec.get("image", "")
        )
    return services


def option(command: Sequence[str], flag: str) -> str | None:
    """The value after ``flag`` in ``command`` (None when absent)."""
    args = list(command)
    return args[args.index(flag) + 1] if flag in args else None


def replace_option(command: Sequence[str], flag: str, value: str) -> list[str]:
    """``command`` with the value after ``flag`` replaced; the flag must be there."""
    args = list(command)
    args[args.index(flag) + 1] = value
    return args
