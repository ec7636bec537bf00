"""What every ``rtbench`` command shares: exit codes, the one-line usage error, and finding providers'
scenarios."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness.measure import gates as gates_mod

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or configuration: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as UsageError (one line) instead of usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def add_command(sub: Any, name: str, **kwargs: Any) -> Parser:
    """A subcommand's parser as every command has it: epilogs kept as written, no abbreviated options."""
    parser: Parser = sub.add_parser(
        name, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False, **kwargs
    )
    return parser


# -- providers and scenarios --------------------------------------------------------------------
def scenarios_dir(explicit: str | None = None) -> Path:
    """--scenarios, $RTBENCH_SCENARIOS, ./scenarios, then the folder next to the installed package."""
    if explicit and not Path(explicit).is_dir():
        raise UsageError(f"scenarios folder {explicit!r} does not exist")
    candidates = [
        explicit,
        os.environ.get("RTBENCH_SCENARIOS"),
        "scenarios",
        str(Path(__file__).resolve().parent.parent / "scenarios"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    raise UsageError("no scenarios folder found: run from the rtbench checkout or pass --scenarios DIR")


def runnable_providers(scenarios: Path) -> list[str]:
    """Providers from the registry that have a scenario to run; a new provider appears on its own."""
    from harness import providers

    return [name for name in providers.available() if (scenarios / f"{name}.py").is_file()]


#: workloads run by name instead of a provider, their provider given as ``--provider P`` (scenario file)
WORKLOADS = {"todo-app": "todo_app"}


def scenario_for(provider: str, scenarios: Path) -> Path:
    """``scenarios/<provider>.py``, or a workload's scenario (``todo-app``: ``scenarios/todo_app.py``)."""
    if provider in WORKLOADS and (scenarios / f"{WORKLOADS[provider]}.py").is_file():
        return scenarios / f"{WORKLOADS[provider]}.py"
    known = runnable_providers(scenarios)
    if provider not in known:
        raise UsageError(f"unknown provider {provider!r} (available: {', '.join(known) or 'none'})")
    return scenarios / f"{provider}.py"


def parse_gates(exprs: Sequence[str] | None) -> list[gates_mod.Gate]:
    try:
        return [gates_mod.parse(e) for e in exprs or ()]
    except gates_mod.GateError as exc:
        raise UsageError(str(exc)) from None
