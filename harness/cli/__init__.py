"""``rtbench``: headless runs with a live progress line, reports, side-by-side comparisons and CI gates.

Locust does the load; this module only drives it as a subprocess (``locust -f scenarios/<p>.py
--headless ...``) and works from the run folder it writes, so a run started by hand with ``locust``
can be reported, compared and gated the same way. Exit codes: 0 ok, 1 a gate or the run failed,
2 bad usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from harness.measure import gates as gates_mod

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOG_NAME = "locust.log"
MAX_DEFAULT_SPAWN_RATE = 500
PROGRESS_EVERY_S = 0.5
PLAIN_PROGRESS_EVERY_S = 5.0
STOP_GRACE_S = 90.0

GATE_HELP = """\
gate language: METRIC OP NUMBER[UNIT], e.g. 'p99<50ms', 'loss==0', 'connect_p95<1s', 'loss_rate<=0.1%%'
  metrics      p50 p90 p95 p99 p99.9 (= p999) max min mean    delivery latency
               connect_p50 connect_p95 connect_p99 connect_max  connect time
               loss dup reorder errors delivered published      message counts
               loss_rate                                        lost / expected (fraction, or with %%)
               deliveries_per_s                                 delivered / run duration
  comparators  <  <=  >  >=  ==
  units        us ms s (latency and connect metrics need one), %% (loss_rate only)
A latency gate fails when nothing was delivered. Without --gate the default is 'p99<50ms'."""


class UsageError(Exception):
    """Bad usage or configuration: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as UsageError (one line) instead of usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


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


def scenario_for(provider: str, scenarios: Path) -> Path:
    known = runnable_providers(scenarios)
    if provider not in known:
        raise UsageError(f"unknown provider {provider!r} (available: {', '.join(known) or 'none'})")
    return scenarios / f"{provider}.py"


def parse_gates(exprs: Sequence[str] | None) -> list[gates_mod.Gate]:
    try:
        return [gates_mod.parse(e) for e in exprs or ()]
    except gates_mod.GateError as exc:
        raise UsageError(str(exc)) from None


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


# -- progress -----------------------------------------------------------------------------------
class Progress:
    """Follows timeseries.csv, which the run flushes once per interval, and draws one status line."""

    def __init__(self, folder: Path, label: str, total_s: float | None, stream: IO[str], enabled: bool = True) -> None:
        self.path = folder / "timeseries.csv"
        self.label, self.total_s, self.stream, self.enabled = label, total_s, stream, enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.started: float | None = None  # when the run folder's time series appeared
        self._offset = 0
        self._header: list[str] = []
        self._last: dict[str, float] = {}
        self._prev_elapsed = 0.0
        self.rate = 0.0
        self._last_plain = 0.0
        self._drawn = False

    def poll(self) -> None:
        """Read rows appended since the last call."""
        try:
            with self.path.open(encoding="ascii") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        if self.started is None:
            self.started = time.monotonic()
        complete, _, _ = chunk.rpartition("\n")
        if not complete:
            return
        self._offset += len(complete) + 1
        for line in complete.split("\n"):
            cells = line.split(",")
            if not self._header:
                self._header = cells
                continue
            row = {}
            for key, cell in zip(self._header, cells, strict=False):
                try:
                    row[key] = float(cell)
                except ValueError:
                    continue  # an empty or future non-numeric cell
            if "elapsed_s" not in row:
                continue
            elapsed = row.get("elapsed_s", 0.0)
            span = elapsed - self._prev_elapsed
            if span > 0:
                self.rate = row.get("delivered", 0.0) / span
            self._prev_elapsed = elapsed
            self._last = row

    def line(self) -> str:
        parts = [self.label]
        if self.started is not None:
            elapsed = time.monotonic() - self.started
            if self.total_s:
                elapsed = min(elapsed, self.total_s)
            parts.append(f"{elapsed:4.0f}{f'/{self.total_s:g}' if self.total_s else ''}s")
        if self._last:
            parts += [
                f"connections {self._last.get('connections', 0):.0f}",
                f"deliveries/s {self.rate:,.0f}",
                f"p99 {self._last.get('p99_ms', 0):g} ms",
                f"errors {self._last.get('errors', 0):.0f}",
            ]
            if "lost" in self._last:  # newer run folders count losses per interval
                parts.append(f"lost {self._last['lost']:.0f}")
        else:
            parts.append("starting…")
        return "  ".join(parts)

    def tick(self) -> None:
        if not self.enabled:
            return
        self.poll()
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
            self._drawn = True
        elif self._last and time.monotonic() - self._last_plain >= PLAIN_PROGRESS_EVERY_S:
            self._last_plain = time.monotonic()
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


# -- one run ------------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    code: int
    folder: Path
    summary: dict[str, Any] | None
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
    from harness.report import rundata

    scenario = scenario_for(provider, scenarios)
    folder.mkdir(parents=True, exist_ok=True)
    command = locust_command(scenario, locust_args, folder, gates)
    total = parse_timespan(option_value(locust_args, "-t", "--run-time") or "")
    log_path = folder / LOG_NAME
    started = time.time()
    show = Progress(folder, label or provider, total, sys.stderr, enabled=progress and not verbose)
    with log_path.open("w", encoding="utf-8") as log:
        sink: IO[str] | None = None if verbose else log
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
        interrupted = False
        while proc.poll() is None:
            try:
                show.tick()
                proc.wait(PROGRESS_EVERY_S)
            except subprocess.TimeoutExpired:
                continue
            except KeyboardInterrupt:
                if interrupted:  # a second Ctrl-C: stop now
                    proc.kill()
                    proc.wait()
                    break
                interrupted = True  # the first: let Locust finish the measurement and write its folder
                show.done()
                sys.stderr.write(f"rtbench: stopping {provider}, writing the report (Ctrl-C again to kill)\n")
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
    summary = rundata.read_summary(summary_file)
    report_error = ""
    try:
        ensure_report(folder)
    except Exception as exc:
        report_error = f"report.html could not be written: {exc}"
        sys.stderr.write(f"rtbench: warning: {report_error}\n")
    if not quiet:
        print(format_text(summary, str(folder)))
        print(f"  report: {folder / rundata.REPORT}", flush=True)
    passed = bool(summary.get("passed")) and code in (0, 1)
    return RunOutcome(EXIT_OK if passed else EXIT_FAILED, folder, summary, report_error)


def ensure_report(folder: Path) -> Path:
    """Write report.html unless the run already wrote one newer than its summary."""
    from harness.report import html, rundata

    report, summary = folder / rundata.REPORT, folder / rundata.SUMMARY
    if report.exists() and report.stat().st_mtime >= summary.stat().st_mtime:
        return report
    return html.write_report(folder)


# -- argument parsing ---------------------------------------------------------------------------
def _run_options(parser: argparse.ArgumentParser, *, compare: bool = False) -> None:
    """rtbench's own options for run/compare; everything else goes to Locust untouched."""
    parser.add_argument(
        "--gate",
        action="append",
        metavar="EXPR",
        help="pass/fail gate, repeatable (default 'p99<50ms'); see 'rtbench gate --help'",
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
  --publish-rate N  --channels N  --payload-bytes N  --drain-timeout S  --timestamp-field NAME
and any provider option (see 'rtbench run PROVIDER --help' for the scenario's full list).
Without -H/--host the provider's embedded target is started. -r defaults to -u (all users at once,
at most {MAX_DEFAULT_SPAWN_RATE}/s) rather than Locust's 1 user/s.

The run folder gets summary.json, latency.hlog, timeseries.csv, report.html and {LOG_NAME}.
Exit status: 0 every gate passed, 1 a gate or the run failed, 2 bad usage.

example:
  rtbench run socketio -u 1000 -t 30s --gate 'p99<50ms' --gate 'loss==0'
"""

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

    run = sub.add_parser(
        "run",
        help="one headless run with a live progress line, report and gate verdict",
        description="Run one provider headless under Locust, show a live progress line, "
        "write the run folder with report.html and exit with the gate verdict.",
        epilog=f"{available}\n\n{RUN_EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        usage="rtbench run PROVIDER [options] [locust options]",
    )
    run.add_argument("provider", metavar="PROVIDER", help="provider name (registry: harness.providers)")
    _run_options(run)
    run.add_argument("locust_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    compare = sub.add_parser(
        "compare",
        help="run several providers with the same load, one side-by-side report",
        description="Run each provider with the identical load profile and build one "
        "side-by-side report, or build it from existing run folders.",
        epilog=f"{available}\n\n{COMPARE_EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        usage="rtbench compare [PROVIDER ...] [options] [locust options]\n"
        "       rtbench compare --from DIR [DIR ...] [--gate EXPR] [--out DIR]",
    )
    _run_options(compare, compare=True)
    compare.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    gate = sub.add_parser(
        "gate",
        help="check a summary.json against gates (exit 0/1/2), JUnit and CI output",
        description="Evaluate gates against a stored summary.json. Prints one line per "
        "gate; writes JUnit XML with --junit; appends a markdown table to "
        "$GITHUB_STEP_SUMMARY when that is set.",
        epilog=GATE_HELP + "\n\nExit status: 0 every gate passed, 1 a gate failed, "
        "2 bad usage (unreadable summary, bad expression).\n\n"
        "example:\n  rtbench gate reports/run/summary.json "
        "--gate 'p99<50ms' --gate 'loss==0' --junit rtbench.xml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
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

    report = sub.add_parser(
        "report",
        help="regenerate report.html from a run folder without rerunning",
        description="Rebuild report.html from a run folder's summary.json, timeseries.csv and latency.hlog.",
        epilog="Exit status: 0 written, 2 not a run folder.\n\nexample:\n"
        "  rtbench report reports/socketio-20250101T120000Z",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (or its summary.json)")
    report.add_argument("-o", "--output", metavar="FILE", help="write here instead of RUN_DIR/report.html")
    return parser


def _split_run_options(
    parser: argparse.ArgumentParser, namespace: argparse.Namespace, rest: Sequence[str], *, compare: bool
) -> list[str]:
    """rtbench options may also come after the provider: pick them out; the rest is Locust's."""
    picker = Parser(prog=parser.prog, add_help=False, allow_abbrev=False)
    _run_options(picker, compare=compare)
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
    providers.load(provider).add_arguments(own)
    print(own.format_help().replace("options:", f"rtbench and {provider} options:", 1), flush=True)
    print("Locust options:", flush=True)
    return subprocess.call([sys.executable, "-m", "locust", "-f", str(scenario), "--help"])


# -- commands -----------------------------------------------------------------------------------
def cmd_run(parser: Parser, args: argparse.Namespace) -> int:
    from harness.report import files

    locust_args = _split_run_options(parser, args, args.locust_args, compare=False)
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
    locust_args = _split_run_options(parser, args, rest, compare=True)
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
            run = load_run(outcome.folder)
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


def cmd_report(parser: Parser, args: argparse.Namespace) -> int:
    from harness.report import html
    from harness.report.rundata import RunDataError

    try:
        path = html.write_report(Path(args.run_dir), Path(args.output) if args.output else None)
    except RunDataError as exc:
        raise UsageError(str(exc)) from None
    print(path, flush=True)
    return EXIT_OK


COMMANDS = {"run": cmd_run, "compare": cmd_compare, "gate": cmd_gate, "report": cmd_report}


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM (CI cancelling a job) stops a run like Ctrl-C: Locust still writes the run folder."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the console script, not a test calling main() in-process
        signal.signal(signal.SIGTERM, _interrupt)
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["compare"] and not {"-h", "--help"} & set(arguments[1:]):
        # compare's arguments are sorted by _split_run_options: Locust options may come first
        arguments = ["compare", "--", *arguments[1:]]
    try:
        args = parser.parse_args(arguments)
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
