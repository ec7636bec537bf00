"""The bridge runs coroutines on a native-thread loop and hands results back to greenlets."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def test_greenlets_wait_cooperatively_for_loop_results() -> None:
    # gevent must patch before anything else imports threading, as under Locust: a fresh interpreter.
    code = textwrap.dedent("""
        from gevent import monkey; monkey.patch_all()
        import asyncio, threading, gevent
        from harness.loop.bridge import get_bridge
        bridge = get_bridge()
        loop_threads = set()
        async def double(x):
            loop_threads.add(threading.get_ident())
            await asyncio.sleep(0.05)
            return 2 * x
        async def boom():
            raise ValueError("boom")
        ticks = []
        ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.005)) for _ in range(5)])
        jobs = [gevent.spawn(bridge.run, double(i)) for i in range(50)]
        gevent.joinall(jobs, timeout=10)
        assert [j.value for j in jobs] == [2 * i for i in range(50)], [j.exception for j in jobs]
        ticker.join(5)
        assert len(ticks) == 5  # other greenlets ran while results were pending
        try:
            bridge.run(boom(), timeout=5)
        except ValueError as exc:
            assert str(exc) == "boom"
        else:
            raise AssertionError("exception was not propagated")
        assert bridge.call(len, [1, 2, 3]) == 3
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_an_unawaited_error_on_the_loop_is_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A library's background task that fails must not print a traceback over the run's console."""
    import asyncio

    from harness.loop.bridge import report_loop_exception

    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level("WARNING", logger="rtbench"):
            report_loop_exception(loop, {"message": "Task exception was never retrieved", "exception": OSError("gone")})
    finally:
        loop.close()
    [record] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert record.getMessage() == "rtbench: event loop: Task exception was never retrieved: OSError: gone"
    assert record.exc_info is None


EXIT_WHILE_THE_LOOP_COMPLAINS = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import asyncio, logging, threading
    from harness.loop.bridge import get_bridge
    logging.basicConfig(level=logging.WARNING)
    bridge = get_bridge()
    async def complain_forever():
        # a client library whose server died: it reports an error on every turn of the loop
        loop = asyncio.get_running_loop()
        while True:
            loop.call_exception_handler({"message": "server gone", "exception": OSError("reset")})
            await asyncio.sleep(0)
    async def start():
        asyncio.get_running_loop().create_task(complain_forever())
        return threading.get_ident()
    bridge.run(start(), timeout=5)
    print("exiting")
""")


def test_a_process_exiting_while_its_loop_still_reports_errors_prints_no_traceback() -> None:
    """At exit the loop thread must be stopped first. Left running, it logs into a gevent being torn
    down: the exit hangs, or uvloop prints ``greenlet is being finalized`` tracebacks over the run's
    output (a CI run of tests/ably/test_faults.py saw the latter)."""
    for _ in range(5):  # the race needs the loop thread mid-log at finalization; a few exits find it
        out = subprocess.run(
            [sys.executable, "-c", EXIT_WHILE_THE_LOOP_COMPLAINS], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "exiting"
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        assert "rtbench: event loop: server gone: OSError: reset" in out.stderr
