"""``rtbench report``: rebuild report.html from a run folder without running anything."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.cli.common import EXIT_OK, Parser, UsageError, add_command


def add_parser(sub: Any, available: str) -> None:
    report = add_command(
        sub,
        "report",
        help="regenerate report.html from a run folder without rerunning",
        description="Rebuild report.html from a run folder's summary.json, timeseries.csv and latency.hlog.",
        epilog="Exit status: 0 written, 2 not a run folder.\n\nexample:\n"
        "  rtbench report reports/socketio-20250101T120000Z",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (or its summary.json)")
    report.add_argument("-o", "--output", metavar="FILE", help="write here instead of RUN_DIR/report.html")


def cmd_report(parser: Parser, args: argparse.Namespace) -> int:
    from harness.report import html
    from harness.report.rundata import RunDataError

    try:
        path = html.write_report(Path(args.run_dir), Path(args.output) if args.output else None)
    except RunDataError as exc:
        raise UsageError(str(exc)) from None
    print(path, flush=True)
    return EXIT_OK
