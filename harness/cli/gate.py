"""``rtbench gate``: a stored summary.json against gates, with JUnit XML and the CI step summary."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.cli.common import EXIT_FAILED, EXIT_OK, Parser, UsageError, add_command, parse_gates
from harness.measure import gates as gates_mod

GATE_HELP = """\
gate language: METRIC OP NUMBER[UNIT], e.g. 'p99<50ms', 'loss==0', 'connect_p95<1s', 'loss_rate<=0.1%%'
  metrics      p50 p90 p95 p99 p99.9 (= p999) max min mean    delivery latency
               connect_p50 connect_p95 connect_p99 connect_max  connect time
               loss dup reorder errors delivered published      message counts
               loss_rate                                        lost / expected (fraction, or with %%)
               deliveries_per_s                                 delivered / run duration
  comparators  <  <=  >  >=  ==
  units        us ms s (latency and connect metrics need one), %% (loss_rate only)
A latency gate fails when nothing was delivered. Without --gate the default is 'p99<50ms' and 'loss==0'."""


def add_parser(sub: Any, available: str) -> None:
    gate = add_command(
        sub,
        "gate",
        help="check a summary.json against gates (exit 0/1/2), JUnit and CI output",
        description="Evaluate gates against a stored summary.json. Prints one line per "
        "gate; writes JUnit XML with --junit; appends a markdown table to "
        "$GITHUB_STEP_SUMMARY when that is set.",
        epilog=GATE_HELP + "\n\nExit status: 0 every gate passed, 1 a gate failed, "
        "2 bad usage (unreadable summary, bad expression).\n\n"
        "example:\n  rtbench gate reports/run/summary.json "
        "--gate 'p99<50ms' --gate 'loss==0' --junit rtbench.xml",
    )
    gate.add_argument("summary", metavar="SUMMARY", help="a summary.json, or the run folder holding one")
    gate.add_argument(
        "--gate",
        action="append",
        metavar="EXPR",
        help="gate expression, repeatable (default: the gates stored in the summary)",
    )
    gate.add_argument("--junit", metavar="FILE", help="write JUnit XML, one testcase per gate")
    gate.add_argument(
        "--require-trustworthy",
        action="store_true",
        help="also fail when the load generator was saturated (harness.trustworthy false)",
    )
    gate.add_argument("--quiet", action="store_true", help="print nothing; only the exit status")


def cmd_gate(parser: Parser, args: argparse.Namespace) -> int:
    from harness.report import junit
    from harness.report.html import gate_value_text
    from harness.report.rundata import RunDataError, read_summary, summary_path

    try:
        summary = read_summary(summary_path(Path(args.summary)))
    except RunDataError as exc:
        raise UsageError(str(exc)) from None
    exprs = args.gate or [str(g["expr"]) for g in summary.get("gates", [])] or list(gates_mod.DEFAULT_GATES)
    gates = parse_gates(exprs)
    try:
        results = gates_mod.evaluate_all(gates, summary)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{args.summary}: summary lacks what the gates need ({exc})") from None
    passed = all(r["passed"] for r in results)
    trustworthy = bool(summary.get("harness", {}).get("trustworthy", True))
    if args.require_trustworthy and not trustworthy:
        passed = False
    if not args.quiet:
        for result in results:
            print(
                f"{'PASS' if result['passed'] else 'FAIL'}  {result['expr']:<22} measured "
                f"{gate_value_text(result['expr'], float(result['value']))}"
            )
        if not trustworthy:
            reasons = "; ".join(summary.get("harness", {}).get("reasons", []))
            print(f"{'FAIL' if args.require_trustworthy else 'WARN'}  harness not trustworthy: {reasons}")
        print(f"verdict: {'PASSED' if passed else 'FAILED'} ({summary.get('provider', '?')})", flush=True)
    if args.junit:
        junit.write_junit(Path(args.junit), summary, results, require_trustworthy=args.require_trustworthy)
    junit.append_step_summary(junit.step_summary(summary, results, passed))
    return EXIT_OK if passed else EXIT_FAILED
