"""``rtbench run``: one provider headless under Locust, a live progress line, the run folder and its verdict.

Locust does the load; this module only drives it as a subprocess (``locust -f scenarios/<p>.py
--headless ...``) and works from the run folder it writes. ``rtbench compare`` runs each provider
through :func:`run_provider` too.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    WORKLOADS,
    Parser,
    UsageError,
    add_command,
    parse_gates,
    scenario_for,
    scenarios_dir,
)
from harness.cli.progress import Progress
from harness.measure import gates as gates_mod
from harness.measure.records import Summary

LOG_NAME = "locust.log"
MAX_DEFAULT_SPAWN_RATE = 500
PROGRESS_EVERY_S = 0.5


# -- locust arguments -----------------------------------------------------------------------------
_TIMESPAN = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?!s))?\s*(?:(\d+)\s*s?)?\s*$")


def parse_timespan(text: str) -> float | None:
    """Locust's -t format: '90', '30s', '5m', '1h30m', '1h20m5s'. None when it is not one."""
    match = _TIMESPAN.match(text)
    if not match or not text.strip() or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def option_value(args: Sequence[str], *names: str) -> str | None:
    """The last value given to one of ``names`` (``-t 30s``, ``--run-time=30s``, ``-t30s``)."""
    found = None
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                found = args[index + 1]
            elif name.startswith("--") and arg.startswith(name + "="):
                found = arg.split("=", 1)[1]
            elif not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                found = arg[len(name) :]
    return found


def locust_command(
    scenario: Path, locust_args: Sequence[str], folder: Path, gates: Sequence[gates_mod.Gate]
) -> list[str]:
    """The locust command line; -r defaults to -u (everyone at once, capped) rather than Locust's 1/s."""
    extra: list[str] = []
    if option_value(locust_args, "-r", "--spawn-rate") is None:
        users = option_value(locust_args, "-u", "--users")
        try:
            rate = max(1, min(int(users or 1), MAX_DEFAULT_SPAWN_RATE))
        except ValueError:
            rate = 1  # let locust report the bad -u
        extra += ["-r", str(rate)]
    for gate in gates:
        extra += ["--gate", gate.expr]
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(scenario),
        "--headless",
        *extra,
        *locust_args,
        "--report-dir",
        str(folder),
    ]


# -- one run ------------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    code: int
    folder: Path
    summary: Summary | None
    error: str = ""


def _error_line(log_text: str) -> str:
    """The one line that says why locust or the runtime refused to start."""
    for line in log_text.splitlines():
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    lines = [line for line in log_text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "the run failed before it started"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_provider(
    provider: str,
    locust_args: Sequence[str],
    *,
    folder: Path,
    gates: Sequence[gates_mod.Gate],
    scenarios: Path,
    progress: bool = True,
    verbose: bool = False,
    label: str | None = None,
    quiet: bool = False,
) -> RunOutcome:
    """Run one provider headless and write report.html; the outcome carries the gate verdict."""
    from harness.measure.summary import format_text
    from harness.report import files, rundata

    scenario = scenario_for(provider, scenarios)
    files.prepare_folder(folder)  # a FolderError (OSError) is the one line `main` prints, exit 2
    command = locust_command(scenario, locust_args, folder, gates)
    total = parse_timespan(option_value(locust_args, "-t", "--run-time") or "")
    log_path = folder / LOG_NAME
    started = time.time()
    show = Progress(folder, label or provider, total, sys.stderr, enabled=progress and not verbose)
    with log_path.open("w", encoding="utf-8") as log:
        sink: IO[str] | None = None if verbose else log
        # Locust gets a process group of its own: a terminal's Ctrl-C reaches only this command, which
        # forwards exactly one SIGINT per Ctrl-C (Locust would otherwise see each one twice)
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, process_group=0)
        interrupts = 0
        while proc.poll() is None:
            try:
                show.tick()
                proc.wait(PROGRESS_EVERY_S)
            except subprocess.TimeoutExpired:
                continue
            except KeyboardInterrupt:
                interrupts += 1
                show.done()
                if interrupts > 2:  # a third Ctrl-C: stop now, whatever was written
                    proc.kill()
                    proc.wait()
                    break
                if interrupts == 1:  # let Locust drain and write the run, marked interrupted
                    sys.stderr.write(f"rtbench: stopping {provider}, draining (Ctrl-C again to stop at once)\n")
                else:  # the run cuts its drain short and writes what it has
                    sys.stderr.write(f"rtbench: stopping {provider} now, writing what was measured\n")
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
        show.done()
    code = proc.returncode
    summary_file = folder / rundata.SUMMARY
    fresh = summary_file.exists() and summary_file.stat().st_mtime >= started - 1
    if not fresh:
        log_text = "" if verbose else log_path.read_text(encoding="utf-8", errors="replace")
        if code == EXIT_USAGE:
            return RunOutcome(EXIT_USAGE, folder, None, _error_line(log_text))
        reason = f"locust exited with status {code} without writing {summary_file}"
        if not verbose and not quiet:
            sys.stderr.write(_tail(log_path) + "\n")
        return RunOutcome(EXIT_FAILED, folder, None, f"{reason}; see {log_path}")
    try:
        summary = rundata.read_summary(summary_file)
    except rundata.RunDataError as exc:
        return RunOutcome(EXIT_FAILED, folder, None, str(exc))
    report_error = ""
    try:
        ensure_report(folder)
    except Exception as exc:
        report_error = f"report.html could not be written: {exc}"
        sys.stderr.write(f"rtbench: warning: {report_error}\n")
    if not quiet:
        print(format_text(summary, str(folder)))
        print(f"  report: {folder / rundata.REPORT}", flush=True)
    passed = bool(summary.get("passed")) and not summary.get("interrupted") and code in (0, 1)
    return RunOutcome(EXIT_OK if passed else EXIT_FAILED, folder, summary, report_error)


def ensure_report(folder: Path) -> Path:
    """Write report.html unless the run already wrote one newer than its summary."""
    from harness.report import html, rundata

    report, summary = folder / rundata.REPORT, folder / rundata.SUMMARY
    if report.exists() and report.stat().st_mtime >= summary.stat().st_mtime:
        return report
    return html.write_report(folder)


# -- argument parsing ---------------------------------------------------------------------------
def run_options(parser: argparse.ArgumentParser, *, compare: bool = False) -> None:
    """rtbench's own options for run/compare; everything else goes to Locust untouched."""
    parser.add_argument(
        "--gate",
        action="append",
        metavar="EXPR",
        help="pass/fail gate, repeatable (default 'p99<50ms' and 'loss==0'); see 'rtbench gate --help'",
    )
    if compare:
        parser.add_argument(
            "--out",
            "--report-dir",
            dest="out",
            metavar="DIR",
            help="folder for index.html, compare.csv and one sub-folder per run (default reports/compare-<UTC time>)",
        )
        parser.add_argument(
            "--from",
            dest="from_dirs",
            nargs="+",
            metavar="DIR",
            help="compare existing run folders instead of running anything",
        )
    else:
        parser.add_argument("--report-dir", metavar="DIR", help="run folder (default reports/<provider>-<UTC time>)")
    parser.add_argument(
        "--scenarios",
        metavar="DIR",
        help="folder of scenarios/<provider>.py (default ./scenarios, then the one "
        "shipped next to the package; or $RTBENCH_SCENARIOS)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no live progress line")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help=f"show Locust's own output instead of the progress line (it always goes to RUN_DIR/{LOG_NAME})",
    )


RUN_EPILOG = f"""\
Every option rtbench does not know goes to Locust unchanged, e.g.
  -u/--users N  -r/--spawn-rate N  -t/--run-time 30s  -H/--host URL  --processes N
  --publish-rate N  --channels N  --payload-bytes N  --drain-timeout S
and any provider option, e.g. --event NAME, sse's --timestamp-field NAME (see 'rtbench run PROVIDER
--help' for the scenario's full list).
Without -H/--host the provider's embedded target is started. -r defaults to -u (all users at once,
at most {MAX_DEFAULT_SPAWN_RATE}/s) rather than Locust's 1 user/s.

The run folder gets summary.json, latency.hlog, timeseries.csv, report.html and {LOG_NAME}.
Exit status: 0 every gate passed, 1 a gate or the run failed, 2 bad usage.

example:
  rtbench run socketio -u 1000 -t 30s --gate 'p99<50ms' --gate 'loss==0'
"""


def add_parser(sub: Any, available: str) -> None:
    run = add_command(
        sub,
        "run",
        help="one headless run with a live progress line, report and gate verdict",
        description="Run one provider headless under Locust, show a live progress line, "
        "write the run folder with report.html and exit with the gate verdict.",
        epilog=f"{available}\n\n{RUN_EPILOG}",
        usage="rtbench run PROVIDER [options] [locust options]",
    )
    run.add_argument("provider", metavar="PROVIDER", help="provider name (registry: harness.providers)")
    run_options(run)
    run.add_argument("locust_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def split_run_options(
    parser: argparse.ArgumentParser, namespace: argparse.Namespace, rest: Sequence[str], *, compare: bool
) -> list[str]:
    """rtbench options may also come after the provider: pick them out; the rest is Locust's."""
    picker = Parser(prog=parser.prog, add_help=False, allow_abbrev=False)
    run_options(picker, compare=compare)
    picked, locust_args = picker.parse_known_args(list(rest))
    for key, value in vars(picked).items():
        current = getattr(namespace, key, None)
        if isinstance(value, list):
            setattr(namespace, key, (current or []) + value)
        elif value not in (None, False):
            setattr(namespace, key, value)
    return locust_args


class _PlainParser(argparse.ArgumentParser):
    """Accepts (and ignores) the keywords Locust's parser adds, such as ``include_in_web_ui``."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        for locust_only in ("include_in_web_ui", "is_secret", "is_required", "env_var"):
            kwargs.pop(locust_only, None)
        return super().add_argument(*args, **kwargs)


def _locust_help(provider: str, scenarios: Path) -> int:
    """The scenario's own options first (Locust's --help is printed before a locustfile is loaded, so it
    never lists them), then Locust's."""
    from harness import providers
    from harness.plugin import options as options_mod

    scenario = scenario_for(provider, scenarios)
    own = _PlainParser(
        prog=f"rtbench run {provider}", usage=f"rtbench run {provider} [options] [locust options]", add_help=False
    )
    options_mod.add_arguments(own)
    if provider in WORKLOADS:  # todo-app: its provider comes with --provider (add_app_arguments lists it)
        options_mod.add_app_arguments(own, "socketio")
    else:
        providers.load(provider).add_arguments(own)
    print(own.format_help().replace("options:", f"rtbench and {provider} options:", 1), flush=True)
    print("Locust options:", flush=True)
    return subprocess.call([sys.executable, "-m", "locust", "-f", str(scenario), "--help"])


def cmd_run(parser: Parser, args: argparse.Namespace) -> int:
    from harness.report import files

    locust_args = split_run_options(parser, args, args.locust_args, compare=False)
    scenarios = scenarios_dir(args.scenarios)
    if any(a in ("-h", "--help") for a in locust_args):
        return _locust_help(args.provider, scenarios)
    scenario_for(args.provider, scenarios)
    gates = parse_gates(args.gate)
    folder = Path(args.report_dir) if args.report_dir else files.default_folder(args.provider)
    outcome = run_provider(
        args.provider,
        locust_args,
        folder=folder,
        gates=gates,
        scenarios=scenarios,
        progress=not args.no_progress,
        verbose=args.verbose,
    )
    if outcome.code == EXIT_USAGE:
        raise UsageError(outcome.error)
    if outcome.summary is None:
        sys.stderr.write(f"rtbench: {outcome.error}\n")
    return outcome.code
