"""End to end through Locust: ``locust -f scenarios/sse.py --headless ...`` and its summary.json.

Calibration (measurement rule 8): the target injects delay, drops and corruption; the summary must
report exactly that (the delay as a shift against an undelayed run in the same test). Reconnection: the
test cuts every stream mid-run once publishing flows (a condition it observes on its own stream, not a
sleep); Last-Event-ID replay must leave zero lost.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import REPO, start_target
from tests.runs import delay_calibration
from tests.sse.conftest import Reader

pytestmark = pytest.mark.timeout(180)


def locust(
    tmp_path: Path, *args: str, users: int = 11, seconds: int = 6, timeout: float = 120
) -> tuple[int, dict[str, Any]]:
    report = tmp_path / "report"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        "scenarios/sse.py",
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--report-dir",
        str(report),
        "--only-summary",
        *args,
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    summary_file = report / "summary.json"
    assert summary_file.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return done.returncode, json.loads(summary_file.read_text())


def test_embedded_target_clean_run(tmp_path: Path) -> None:
    code, summary = locust(tmp_path, "--publish-rate", "40")
    msg = summary["messages"]
    assert (summary["provider"], summary["target"]) == ("sse", "embedded")
    assert summary["connections"]["opened"] == 10 and summary["connections"]["failed"] == 0
    assert msg["delivered"] == msg["expected"] > 1000 and msg["lost"] == 0 and msg["errors"] == 0
    assert msg["duplicated"] == 0 and msg["out_of_order"] == 0
    assert code == (0 if summary["passed"] else 1)


def test_calibration_delay(tmp_path: Path) -> None:
    delay_calibration("sse", tmp_path, users=20)


def test_calibration_drop_and_corrupt(tmp_path: Path) -> None:
    url, proc = start_target(
        "targets.sse", "--port", "0", "--drop-rate", "0.2", "--corrupt-rate", "0.05", "--seed", "7"
    )
    try:
        code, summary = locust(tmp_path, "--host", url, "--publish-rate", "50", "--gate", "loss==0")
    finally:
        proc.stop()
    msg = summary["messages"]
    assert msg["delivered"] + msg["lost"] == msg["expected"] > 1000
    expected_loss = 0.2 + 0.8 * 0.05  # a corrupted delivery is an error, and its message is missing
    assert abs(msg["lost"] / msg["expected"] - expected_loss) < 0.05
    assert abs(msg["errors"] / msg["expected"] - 0.8 * 0.05) < 0.03
    assert msg["duplicated"] == 0
    assert code == 1  # loss==0 fails


def _cut_when_flowing(url: str, subscribers: int, cuts: list[dict[str, Any]], failures: list[BaseException]) -> None:
    """Once probes flow and every subscriber is connected, cut all streams (close), let every client
    reconnect, then cut again (abort). Every wait is on a condition, bounded."""

    async def connections(session: aiohttp.ClientSession) -> int:
        async with session.get(f"{url}/healthz") as resp:
            return int((await resp.json())["connections"])

    async def until(predicate: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not await predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met")
            await asyncio.sleep(0.02)  # polling /healthz, bounded by the deadline

    def probes(reader: Reader) -> int:
        return sum(d.startswith("rtb1|") for d in reader.data())

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            for mode in ("close", "abort"):
                # Cut only once every subscriber is connected and has had events for a few probes: a stream
                # cut before its first event has no id to resume from (what it missed is lost by the
                # protocol, not by rtbench), and one cut before its client has taken the answer is not a
                # drop the client can see.
                observer = await Reader(session, f"{url}/api/events").open()
                await until(lambda: _ge(connections(session), subscribers + 1))
                seen = probes(observer)
                await observer.wait_until(lambda: probes(observer) >= seen + 5, 30)  # noqa: B023
                async with session.post(f"{url}/admin/cut?mode={mode}") as resp:
                    cuts.append(await resp.json())
                await observer.close()
            await until(lambda: _ge(connections(session), subscribers))

    try:
        asyncio.run(main())
    except BaseException as exc:
        failures.append(exc)


async def _ge(value: Any, bound: int) -> bool:
    return bool(await value >= bound)


def test_reconnection_after_cuts_loses_nothing(tmp_path: Path) -> None:
    url, proc = start_target("targets.sse", "--port", "0", "--retry-ms", "100", "--keepalive-s", "1")
    cuts: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    cutter = threading.Thread(target=_cut_when_flowing, args=(url, 20, cuts, failures), daemon=True)
    cutter.start()
    try:
        _, summary = locust(tmp_path, "--host", url, "--publish-rate", "50", "--gate", "loss==0", users=21, seconds=8)
    finally:
        cutter.join(30)
        proc.stop()
    assert not failures, failures
    assert len(cuts) == 2 and all(c["cut"] >= 20 for c in cuts)
    msg, conn = summary["messages"], summary["connections"]
    assert conn["dropped"] == conn["reconnected"] == 40
    assert msg["lost"] == 0 and msg["delivered"] == msg["expected"] > 1000
    assert msg["duplicated"] == 0 and msg["errors"] == 0


def test_server_with_wrong_content_type_counts_failed_connects(tmp_path: Path) -> None:
    from aiohttp import web

    ready = threading.Event()
    loop_box: list[Any] = []

    def serve() -> None:
        async def main() -> None:
            app = web.Application()
            app.router.add_get("/api/events", _html)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            loop_box.extend([asyncio.get_running_loop(), runner.addresses[0][1], asyncio.Event()])
            ready.set()
            await loop_box[2].wait()
            await runner.cleanup()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        code, summary = locust(tmp_path, "--host", f"http://127.0.0.1:{loop_box[1]}", seconds=3)
    finally:
        loop_box[0].call_soon_threadsafe(loop_box[2].set)
        thread.join(10)
    assert summary["connections"]["failed"] == 10 and summary["connections"]["opened"] == 0
    assert any("Content-Type 'text/html" in reason for reason in summary["errors_by_reason"])
    assert code == 1


async def _html(_request: Any) -> Any:
    from aiohttp import web

    return web.Response(text="<html>login</html>", content_type="text/html")


@pytest.mark.load
def test_two_thousand_subscribers_zero_lost(tmp_path: Path) -> None:
    url, proc = start_target("targets.sse", "--port", "0")
    try:
        _, summary = locust(
            tmp_path, "--host", url, "--publish-rate", "5", "--gate", "loss==0", users=2001, seconds=15, timeout=170
        )
    finally:
        proc.stop()
    msg, conn = summary["messages"], summary["connections"]
    print(json.dumps({k: summary[k] for k in ("latency_ms", "connect_ms", "messages", "connections")}))
    assert conn["opened"] == 2000 and conn["failed"] == 0 and conn["dropped"] == 0
    assert msg["lost"] == 0 and msg["delivered"] == msg["expected"] > 2000 * 40
    assert msg["errors"] == 0


def test_server_timestamps_from_an_app_you_do_not_control(tmp_path: Path) -> None:
    """--timestamp-field: no publisher; latency from the server's stamp; id gaps are losses; flagged."""
    import sys

    from tests.helpers import REPO, running_target
    from tests.runs import assert_accounted, run_scenario

    cmd = [sys.executable, str(REPO / "tests" / "sse" / "stamping_server.py")]
    with running_target(cmd, "0", "50") as url:
        run = run_scenario(
            "sse", "--host", url, "--timestamp-field", "timestamp", "-u", "5", "-r", "5", "-t", "4s", folder=tmp_path
        )
    s = run.summary
    assert s["clock"] == "server"
    assert s["messages"]["published"] == 0
    assert s["connections"]["opened"] == 5  # every user subscribes: there is no publisher
    assert s["messages"]["delivered"] >= 5 * 20
    assert s["messages"]["lost"] > 0  # every 5th id is skipped by the server
    assert s["messages"]["lost"] <= s["messages"]["delivered"] // 3
    assert_accounted(s)
    assert s["harness"]["trustworthy"] is False
    assert any("server's clock" in reason for reason in s["harness"]["reasons"])
    assert 0 <= s["latency_ms"]["p50"] < 1000
