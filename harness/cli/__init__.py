"""``rtbench``: headless runs with a live progress line, reports, side-by-side comparisons and CI gates.

Locust does the load; this module only drives it as a subprocess (``locust -f scenarios/<p>.py
--headless ...``) and works from the run folder it writes, so a run started by hand with ``locust``
can be reported, compared and gated the same way. Exit codes: 0 ok, 1 a gate or the run failed,
2 bad usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence

from harness.cli import check, compare, gate, report, run
from harness.cli.common import (
    EXIT_USAGE,
    Parser,
    UsageError,
    runnable_providers,
    scenarios_dir,
)

__all__ = ["build_parser", "main", "runnable_providers", "scenarios_dir"]

#: one module per command: its ``add_parser(sub, available)`` and its ``cmd_<name>(parser, args)``
COMMANDS: dict[str, Callable[[Parser, argparse.Namespace], int]] = {
    "run": run.cmd_run,
    "compare": compare.cmd_compare,
    "gate": gate.cmd_gate,
    "report": report.cmd_report,
    "check": check.cmd_check,
}


def _available_text() -> str:
    try:
        return "available providers: " + (", ".join(runnable_providers(scenarios_dir())) or "none")
    except UsageError as exc:
        return str(exc)


def build_parser() -> Parser:
    available = _available_text()
    parser = Parser(
        prog="rtbench",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load tests and exact push-latency benchmarks for real-time providers "
        "(Socket.IO, SSE, Pusher, Ably), driven by Locust.",
        epilog="Exit status everywhere: 0 ok, 1 a gate or the run failed, 2 bad usage.\n"
        "Run 'rtbench COMMAND --help' for each command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in (run, compare, gate, report, check):
        module.add_parser(sub, available)
    return parser


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM (CI cancelling a job) stops a run like Ctrl-C: Locust still writes the run folder."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the console script, not a test calling main() in-process
        signal.signal(signal.SIGTERM, _interrupt)
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["compare"] and not {"-h", "--help"} & set(arguments[1:]):
        # compare's arguments are sorted by run.split_run_options: Locust options may come first
        arguments = ["compare", "--", *arguments[1:]]
    try:
        args, extra = parser.parse_known_args(arguments)
        if extra and args.command != "check":  # only check passes options on (to its provider)
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra = extra
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return COMMANDS[args.command](parser, args)
    except UsageError as exc:
        sys.stderr.write(f"rtbench: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("rtbench: interrupted\n")
        return 130
    except OSError as exc:
        sys.stderr.write(f"rtbench: error: {exc}\n")
        return EXIT_USAGE
