"""``rtbench compare``: the same load against several providers (or stored run folders), one side-by-side
report."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    UsageError,
    add_command,
    parse_gates,
    runnable_providers,
    scenario_for,
    scenarios_dir,
)
from harness.cli.run import run_options, run_provider, split_run_options

COMPARE_EPILOG = """\
Providers come first; everything after them that rtbench does not know goes to Locust for every run
(see 'rtbench run --help'). With no provider named, every provider with a scenario is run, one after
another, each against its embedded target unless --host is given.

Writes DIR/index.html (table, overlaid percentile curves, gate verdicts, links to each run's report),
DIR/compare.csv and DIR/<provider>/ for each run.
Exit status: 0 every run passed every gate, 1 a gate or a run failed, 2 bad usage.

examples:
  rtbench compare socketio sse pusher ably -u 1000 -t 30s --gate 'p99<50ms'
  rtbench compare -u 200 -t 20s
  rtbench compare --from reports/socketio-20250101T120000Z reports/sse-20250101T121000Z
"""


def add_parser(sub: Any, available: str) -> None:
    compare = add_command(
        sub,
        "compare",
        help="run several providers with the same load, one side-by-side report",
        description="Run each provider with the identical load profile and build one "
        "side-by-side report, or build it from existing run folders.",
        epilog=f"{available}\n\n{COMPARE_EPILOG}",
        usage="rtbench compare [PROVIDER ...] [options] [locust options]\n"
        "       rtbench compare --from DIR [DIR ...] [--gate EXPR] [--out DIR]",
    )
    run_options(compare, compare=True)
    compare.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def _compare_folder(out: str | None) -> Path:
    if out:
        return Path(out)
    return Path("reports") / f"compare-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def cmd_compare(parser: Parser, args: argparse.Namespace) -> int:
    from harness.report import compare as compare_mod
    from harness.report.rundata import RunDataError, load_run

    rest = list(args.rest)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    locust_args = split_run_options(parser, args, rest, compare=True)
    named: list[str] = []
    while locust_args and not locust_args[0].startswith("-"):
        named.append(locust_args.pop(0))
    gates = parse_gates(args.gate)
    out = _compare_folder(args.out)
    if args.from_dirs:
        if named or locust_args:
            raise UsageError("--from compares stored runs: give no providers or Locust options with it")
        runs = []
        for directory in args.from_dirs:
            try:
                runs.append(load_run(Path(directory)))
            except RunDataError as exc:
                raise UsageError(str(exc)) from None
        entries = compare_mod.make_entries(runs, gates or None)
    else:
        scenarios = scenarios_dir(args.scenarios)
        known = runnable_providers(scenarios)
        providers = named or known
        for name in providers:
            scenario_for(name, scenarios)
        if len(set(providers)) != len(providers):
            raise UsageError("a provider is named twice")
        if not providers:
            raise UsageError("no providers with a scenario were found")
        entries = []
        for index, name in enumerate(providers, 1):
            label = f"[{index}/{len(providers)}] {name}"
            sys.stderr.write(f"rtbench compare: {label}\n")
            outcome = run_provider(
                name,
                locust_args,
                folder=out / name,
                gates=gates,
                scenarios=scenarios,
                progress=not args.no_progress,
                verbose=args.verbose,
                label=label,
            )
            if outcome.summary is None:
                if outcome.code == EXIT_USAGE and index == 1 and len(providers) > 1:
                    # the same options go to every run: a usage error here would repeat for each
                    raise UsageError(f"{name}: {outcome.error}")
                sys.stderr.write(f"rtbench: {name}: {outcome.error}\n")
                entries.append(compare_mod.Entry(label=name, error=outcome.error))
                continue
            try:
                run = load_run(outcome.folder)
            except RunDataError as exc:  # one unreadable run does not cost the others their comparison
                sys.stderr.write(f"rtbench: {name}: {exc}\n")
                entries.append(compare_mod.Entry(label=name, error=str(exc)))
                continue
            entries.append(compare_mod.make_entries([run], None)[0])
    index_path = compare_mod.write_compare(entries, out)
    _print_compare(entries)
    print(f"compare: {index_path}\n         {out / compare_mod.CSV}", flush=True)
    if all(e.run is None for e in entries) and all(e.error for e in entries) and not args.from_dirs:
        return EXIT_FAILED
    return EXIT_OK if all(e.passed for e in entries) else EXIT_FAILED


def _print_compare(entries: Sequence[Any]) -> None:
    width = max([len(e.label) for e in entries] + [8])
    print(f"{'provider':<{width}}  {'p50':>9} {'p95':>9} {'p99':>9} {'p99.9':>9} {'max':>9}  {'lost':>6}  verdict")
    for entry in entries:
        if entry.run is None:
            print(f"{entry.label:<{width}}  run failed: {entry.error}")
            continue
        lat = entry.run.summary.get("latency_ms", {})
        cells = " ".join(f"{lat.get(k, 0):>9g}" for k in ("p50", "p95", "p99", "p999", "max"))
        lost = entry.run.summary.get("messages", {}).get("lost", 0)
        print(f"{entry.label:<{width}}  {cells}  {lost:>6}  {'PASS' if entry.passed else 'FAIL'}")
