"""``rtbench run``: a real headless run end to end, its folder, exit codes and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli
from harness.cli import run
from harness.cli.progress import Progress
from tests.report.conftest import CliResult, rtbench

RUN_FILES = {"summary.json", "latency.hlog", "timeseries.csv", "report.html", "locust.log"}


def test_run_writes_the_folder_and_passes(real_run: tuple[Path, CliResult]) -> None:
    folder, result = real_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name for p in folder.iterdir()} >= RUN_FILES
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["provider"] == "socketio" and summary["passed"] is True
    assert [g["expr"] for g in summary["gates"]] == ["p99<50ms", "loss==0"]
    assert summary["load"]["users"] == 10
    assert summary["connections"]["opened"] == 9  # -r defaulted to -u: every subscriber got spawned
    assert "delivery latency ms" in result.stdout and "verdict: PASSED" in result.stdout
    assert f"report: {folder / 'report.html'}" in result.stdout
    # not a terminal: the progress line is printed as plain lines on stderr
    assert "socketio" in result.stderr and "connections" in result.stderr


def test_a_failing_gate_exits_1(tmp_path: Path) -> None:
    result = rtbench(
        "run", "socketio", "-u", "3", "-t", "2s", "--no-progress", "--report-dir", str(tmp_path), "--gate", "p99<1us"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (tmp_path / "report.html").exists()
    assert "gate p99<1us" in result.stdout and "FAIL" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "nosuch"], "unknown provider 'nosuch'"),
        (["run", "socketio", "--gate", "p99<50"], "needs a time unit"),
        (["run"], "required: PROVIDER"),
        (["run", "socketio", "--scenarios", "/nonexistent"], "does not exist"),
        (["compare", "nosuch", "-u", "1"], "unknown provider 'nosuch'"),
        (["compare", "--from"], "expected at least one argument"),
        (["compare", "--from", "/nonexistent"], "no such file"),
        (["compare", "socketio", "--from", "/tmp"], "give no providers"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], fragment: str) -> None:
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtbench: error: ") and err.count("\n") == 1, err
    assert fragment in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--bogus-flag", "1"], "unrecognized arguments: --bogus-flag"),
        (["--publish-rate", "abc"], "--publish-rate must be a number"),
        (["-u", "0"], "-u/--users must be at least 1, got 0"),
    ],
)
def test_locust_refusals_come_back_as_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = rtbench("run", "socketio", "-t", "1s", "--report-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert result.stderr.startswith("rtbench: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr


def test_a_run_folder_that_is_a_file_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The same line plain Locust gives (tests/plugin/test_bad_options.py), before Locust is started."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert cli.main(["run", "socketio", "-u", "2", "-t", "1s", "--report-dir", str(a_file)]) == 2
    assert capsys.readouterr().err == f"rtbench: error: run folder {a_file}: exists and is not a folder\n"


def test_help_is_complete(capsys: pytest.CaptureFixture[str]) -> None:
    for command, must in (
        ([], ["run", "compare", "gate", "report", "Exit status"]),
        (
            ["run"],
            ["--gate", "--report-dir", "-u/--users", "--processes", "available providers", "socketio", "Exit status"],
        ),
        (["compare"], ["--from", "--out", "compare.csv", "index.html"]),
        (
            ["gate"],
            [
                "--junit",
                "GITHUB_STEP_SUMMARY",
                "connect_p95",
                "loss_rate",
                "deliveries_per_s",
                "<=",
                "us ms s",
                "Exit status",
            ],
        ),
        (["report"], ["RUN_DIR", "--output"]),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        for text in must:
            assert text in out, (command, text)


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("90", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("1h20m5s", 4805.0), ("abc", None), ("", None)],
)
def test_parse_timespan(text: str, seconds: float | None) -> None:
    assert run.parse_timespan(text) == seconds


def test_locust_command_defaults_spawn_rate_and_keeps_passthrough(tmp_path: Path) -> None:
    scenario = tmp_path / "socketio.py"
    command = run.locust_command(scenario, ["-u", "2000", "-t", "5s", "--publish-rate", "50"], tmp_path / "f", [])
    assert command[command.index("-r") + 1] == str(run.MAX_DEFAULT_SPAWN_RATE)
    assert command[-6:] == ["-t", "5s", "--publish-rate", "50", "--report-dir", str(tmp_path / "f")]
    command = run.locust_command(scenario, ["-u", "20", "--spawn-rate=3"], tmp_path, [])
    assert command.count("-r") == 0 and "--spawn-rate=3" in command


def test_options_after_the_provider_are_rtbench_s_own(tmp_path: Path) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(
        ["run", "socketio", "-u", "5", "--gate", "p99<1s", "-t", "2s", "--no-progress", "--report-dir", str(tmp_path)]
    )
    rest = run.split_run_options(parser, args, args.locust_args, compare=False)
    assert rest == ["-u", "5", "-t", "2s"]
    assert args.gate == ["p99<1s"] and args.no_progress and args.report_dir == str(tmp_path)


def test_progress_follows_the_time_series(tmp_path: Path) -> None:
    import io

    stream = io.StringIO()
    progress = Progress(tmp_path, "socketio", 30.0, stream)
    assert "starting" in progress.line()
    csv = tmp_path / "timeseries.csv"
    csv.write_text(
        "elapsed_s,connections,published,delivered,errors,dropped,p50_ms,p95_ms,p99_ms,max_ms\n"
        "1.0,100,10,1000,0,0,1.5,2.5,3.5,4.0\n2.0,100,10,2000,1,0,1.5,2.5,7.25,9.0\n2.5,10"
    )
    progress.poll()
    line = progress.line()
    assert "connections 100" in line and "deliveries/s 2,000" in line and "p99 7.25 ms" in line
    assert "errors 1" in line and "/30s" in line


def test_example_workflow_uses_valid_commands() -> None:
    import re

    from harness.measure import gates
    from tests.helpers import REPO

    text = (REPO / "examples" / "github-actions.yml").read_text()
    assert "rtbench run socketio" in text and "rtbench gate" in text and "--junit" in text
    exprs = re.findall(r"--gate '([^']+)'", text)
    assert exprs and all(gates.parse(e) for e in exprs)


def test_progress_tolerates_empty_and_new_columns(tmp_path: Path) -> None:
    import io

    progress = Progress(tmp_path, "sse", None, io.StringIO())
    (tmp_path / "timeseries.csv").write_text(
        "elapsed_s,connections,delivered,p99_ms,lost,cpu_pct\n1.0,5,50,2.5,,\n2.0,5,60,3.5,2,40.5\n"
    )
    progress.poll()
    line = progress.line()
    assert "connections 5" in line and "deliveries/s 60" in line and "lost 2" in line
