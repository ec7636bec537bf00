"""A server that accepts TCP and never sends a byte: every subscriber is a failed connection with a reason,
the publisher's failure is counted, and the run ends close to ``-t`` plus the drain timeout (issue: socketio,
pusher and ably counted nothing; sse and pusher overran the run by several seconds)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runs import assert_accounted, run_scenario

pytestmark = pytest.mark.load

SUBSCRIBERS = 10
RUN_S, DRAIN_S = 6, 2


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """Accept every connection on 127.0.0.1 (port 0) and never answer; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.setblocking(False)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            while not stop.is_set():
                if selector.select(timeout=0.1):
                    with contextlib.suppress(BlockingIOError):
                        accepted.append(listener.accept()[0])

    thread = threading.Thread(target=serve, name="silent-server", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in [*accepted, listener]:
            sock.close()


@pytest.mark.parametrize("provider", ["sse", "socketio", "pusher", "ably"])
def test_a_server_that_never_answers_fails_every_connection_with_a_reason_on_time(
    tmp_path: Path, provider: str
) -> None:
    with silent_server() as port:
        began = time.monotonic()
        run = run_scenario(
            provider,
            "--host",
            f"http://127.0.0.1:{port}",
            "-u",
            str(SUBSCRIBERS + 1),
            "-r",
            str(SUBSCRIBERS + 1),
            "-t",
            f"{RUN_S}s",
            "--drain-timeout",
            str(DRAIN_S),
            folder=tmp_path,
            timeout=120,
        )
        took = time.monotonic() - began
    s = run.summary
    assert run.returncode == 1, run.stdout + run.stderr
    assert s["passed"] is False
    assert s["connections"]["failed"] == SUBSCRIBERS
    assert s["connections"]["opened"] == 0
    reasons = s["errors_by_reason"]
    assert sum(n for r, n in reasons.items() if r.startswith("connect failed: ")) == SUBSCRIBERS, reasons
    for reason in reasons:  # "connect failed: <why>", "publish failed: <why>": the why is never empty
        assert reason.split(": ", 1)[-1].strip() and ": " in reason, reasons
    publisher_failed = s["messages"]["publish_failed"] > 0 or any(
        r.startswith("publisher connect failed: ") for r in reasons
    )
    assert publisher_failed, reasons  # the publisher got no answer either, and that is counted
    assert_accounted(s)
    assert took < RUN_S + DRAIN_S + 10, f"the run took {took:.1f} s"
