"""Socket.IO end to end: real target, real python-socketio clients, real Locust runs on loopback."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from harness.measure import hist
from tests.helpers import NODE_DIR, node_available, running_target
from tests.infra import free_port
from tests.runs import LOCUST, REPO, assert_accounted, delay_calibration, drop_calibration, run_scenario


def test_embedded_target_run_writes_the_documented_summary(tmp_path: Path) -> None:
    run = run_scenario("socketio", "-u", "11", "-r", "11", "-t", "4s", "--publish-rate", "20", folder=tmp_path)
    assert run.returncode in (0, 1), run.stderr
    s = run.summary
    for key in (
        "schema",
        "provider",
        "target",
        "load",
        "latency_ms",
        "connect_ms",
        "messages",
        "connections",
        "gates",
        "harness",
        "passed",
    ):
        assert key in s
    assert s["provider"] == "socketio" and s["target"] == "embedded"
    assert s["connections"]["opened"] == 10 and s["connections"]["failed"] == 0
    assert s["messages"]["lost"] == 0 and s["messages"]["delivered"] > 0
    assert_accounted(s)
    assert set(s["harness"]) >= {"trustworthy", "reasons", "loop_lag_ms", "cpu_peak_pct"}
    assert run.returncode == (0 if s["passed"] else 1)
    assert "delivery latency ms" in run.stdout
    assert s["rx_clock"] == "kernel" and s["ramp_ms"]["count"] > 0 and s["fanout_ms"]["count"] > 0
    assert s["fanout_ms"]["p50"] >= s["latency_ms"]["p50"]  # a message's last delivery is its slowest
    assert "fan-out ms" in run.stdout and "client lag ms (kernel clock)" in run.stdout
    # latency.hlog is a standard interval log of every delivery: steady state plus ramp-up
    lines = [ln for ln in (tmp_path / "latency.hlog").read_text().splitlines() if ln and not ln.startswith(("#", '"'))]
    total = hist.merge([ln.split(",")[3] for ln in lines])
    assert total.get_total_count() == s["latency_ms"]["count"] + s["ramp_ms"]["count"]
    rows = (tmp_path / "timeseries.csv").read_text().splitlines()
    assert rows[0].startswith("elapsed_s,connections") and len(rows) >= 3


def test_delay_calibration_reports_the_injected_delay(tmp_path: Path) -> None:
    delay_calibration("socketio", tmp_path, users=20)


def test_drop_calibration_reports_the_injected_loss(tmp_path: Path) -> None:
    drop_calibration("socketio", tmp_path)


def test_malformed_payloads_are_counted_as_errors_and_the_run_completes(tmp_path: Path) -> None:
    with running_target("targets.socketio", "--port", "0", "--corrupt-rate", "0.2", "--seed", "5") as url:
        run = run_scenario(
            "socketio", "--host", url, "-u", "6", "-r", "6", "-t", "4s", "--publish-rate", "20", folder=tmp_path
        )
    s = run.summary
    assert s["messages"]["errors"] > 0
    assert s["messages"]["lost"] > 0  # a corrupted delivery replaced a real one
    assert any("probe" in reason for reason in s["errors_by_reason"])
    assert_accounted(s)


@pytest.mark.load
def test_five_thousand_subscribers_in_one_generator_process_receive_everything(tmp_path: Path) -> None:
    run = run_scenario(
        "socketio",
        "-u",
        "5001",
        "-r",
        "1000",
        "-t",
        "20s",
        "--publish-rate",
        "1",
        "--drain-timeout",
        "30",
        folder=tmp_path,
        timeout=280,
    )
    s = run.summary
    assert s["load"]["processes"] == 1 and s["rx_clock"] == "kernel"
    assert s["connections"]["opened"] == 5000 and s["connections"]["failed"] == 0
    assert s["connections"]["dropped"] == 0
    assert s["messages"]["lost"] == 0 and s["messages"]["duplicated"] == 0 and s["messages"]["errors"] == 0
    assert s["messages"]["delivered"] >= 5000 * 10  # every subscriber got many messages
    assert s["fanout_ms"]["count"] > 0
    assert_accounted(s)


def _check_merged(folder: Path) -> None:
    s = json.loads((folder / "summary.json").read_text())
    generators = json.loads((folder / "generators.json").read_text())
    assert len(generators) == 2 and s["load"]["processes"] == 2
    assert sum(g["delivered"] for g in generators) == s["messages"]["delivered"]
    assert sum(g["counts"]["opened"] for g in generators) == s["connections"]["opened"]
    assert all(g["counts"]["opened"] > 0 for g in generators)  # both workers held subscribers
    union = hist.merge([g["latency"] for g in generators])
    assert hist.latency_summary(union) == s["latency_ms"]
    assert s["messages"]["lost"] == 0, (s["messages"], s["connections"], s["errors_by_reason"], s["latency_ms"])
    assert_accounted(s)


def test_processes_merge_exactly(tmp_path: Path) -> None:
    run = run_scenario(
        "socketio", "--processes", "2", "-u", "21", "-r", "21", "-t", "5s", "--publish-rate", "20", folder=tmp_path
    )
    assert run.returncode in (0, 1), run.stderr
    _check_merged(tmp_path)


@pytest.mark.parametrize("workers_first", [False, True], ids=["master-first", "workers-first"])
def test_master_and_workers_as_separate_commands(tmp_path: Path, workers_first: bool) -> None:
    """``--master --expect-workers 2`` and two ``--worker`` commands, as on other hosts: started in either
    order (a worker retries until its master is up), the headless run merges both exactly and every
    process exits cleanly."""
    scenario = str(REPO / "scenarios" / "socketio.py")
    with running_target("targets.socketio", "--port", "0") as url:
        port = free_port()
        master_cmd = [
            *LOCUST,
            "-f",
            scenario,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--headless",
            "--expect-workers",
            "2",
            "-u",
            "21",
            "-r",
            "21",
            "-t",
            "5s",
            "--host",
            url,
            "--publish-rate",
            "20",
            "--report-dir",
            str(tmp_path),
            "--only-summary",
        ]
        worker_cmd = [*LOCUST, "-f", scenario, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
        logs = [(tmp_path.parent / f"{tmp_path.name}-worker{i}.log").open("w+") for i in range(2)]
        workers: list[subprocess.Popen[bytes]] = []
        master: subprocess.Popen[str] | None = None
        try:
            if workers_first:
                workers = [subprocess.Popen(worker_cmd, cwd=REPO, stdout=log, stderr=log) for log in logs]
            master = subprocess.Popen(master_cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if not workers_first:
                workers = [subprocess.Popen(worker_cmd, cwd=REPO, stdout=log, stderr=log) for log in logs]
            out, _ = master.communicate(timeout=120)
            codes = [w.wait(timeout=30) for w in workers]
        finally:
            for proc in [*workers, *([master] if master else [])]:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        worker_output = []
        for log in logs:
            log.seek(0)
            worker_output.append(log.read())
            log.close()
    assert master.returncode in (0, 1), out
    assert codes == [0, 0], worker_output
    assert not any("Traceback" in text for text in [out, *worker_output]), (out, worker_output)
    assert (tmp_path / "generators.json").exists(), out  # both workers' finals reached the master
    _check_merged(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "cross_clock_ms" not in summary and "nodes" not in summary  # one host; a target naming no node


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--host", "http://127.0.0.1:9"], "cannot reach"),
        (["--host", "ftp://127.0.0.1:9"], "not an http, https, ws or wss URL"),
        (["--gate", "p99<fast"], "p99<fast"),
        (["--publish-rate", "-1"], "--publish-rate"),
        (["--payload-bytes", "lots"], "--payload-bytes"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    started = time.monotonic()
    run = run_scenario("socketio", "-u", "2", "-t", "3s", *args, folder=tmp_path, timeout=30)
    assert run.returncode == 2
    assert time.monotonic() - started < 15
    ours = [ln for ln in run.stderr.splitlines() if not ln.startswith("[")]
    assert len(ours) == 1 and ours[0].startswith("rtbench: error:") and fragment in ours[0], run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "summary.json").exists()


def test_bad_input_with_processes_still_exits_2(tmp_path: Path) -> None:
    run = run_scenario(
        "socketio", "--processes", "2", "-u", "2", "-t", "3s", "--gate", "p99<fast", folder=tmp_path, timeout=30
    )
    assert run.returncode == 2, run.stderr


@pytest.mark.node
@pytest.mark.skipif(not node_available(), reason="tests/node/node_modules missing: run `npm ci` in tests/node")
def test_plain_node_socketio_server_with_the_classic_broadcast(tmp_path: Path) -> None:
    assert (NODE_DIR / "socketio_broadcast_server.js").exists()
    with running_target("socketio_broadcast_server.js", "0") as url:
        run = run_scenario(
            "socketio", "--host", url, "-u", "21", "-r", "21", "-t", "5s", "--publish-rate", "20", folder=tmp_path
        )
    s = run.summary
    assert s["connections"]["opened"] == 20
    assert s["messages"]["lost"] == 0 and s["messages"]["errors"] == 0
    assert s["messages"]["delivered"] >= 20 * 40
    assert_accounted(s)


def test_two_processes_runs_at_once_keep_to_themselves(tmp_path: Path) -> None:
    """Each ``--processes`` run gets its own master port: neither fails to bind, neither merges the other's
    workers (Locust's default 5557 would make them collide)."""
    folders = [tmp_path / "a", tmp_path / "b"]
    args = ["--processes", "2", "-u", "21", "-r", "21", "-t", "5s", "--publish-rate", "20"]
    runs = [
        subprocess.Popen(
            [
                *LOCUST,
                "-f",
                str(REPO / "scenarios" / "socketio.py"),
                "--headless",
                "--only-summary",
                *args,
                "--report-dir",
                str(folder),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for folder in folders
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    for run, out, folder in zip(runs, outputs, folders, strict=True):
        assert run.returncode in (0, 1), out
        assert "Address already in use" not in out
        _check_merged(folder)  # exactly two generators each, merged exactly
