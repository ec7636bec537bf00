"""Measurement rule 2: arrival is the kernel's receive time, so a stalled generator does not move latency.

Each provider's lean subscribers receive the same messages twice, once with the loop thread free and once with
it held busy for 200 ms right after each publish, while the deliveries are in flight: the recorded latencies
stay within 2 ms of the free run's, and the stall shows in client lag instead.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop

from harness import hist
from tests.generators import InProcessRun
from tests.helpers import running_target

PROVIDERS = ("socketio", "sse", "pusher", "ably")
#: publish paths that return only once the target has fanned the message out (a socket emit returns when
#: python-socketio has queued it, so the stall would hold the message back rather than its deliveries)
PUBLISH_ARGS = {"socketio": ("--publish-via", "http")}
SUBSCRIBERS = 40
MESSAGES = 8
STALL_S = 0.2


def measure(provider: str, url: str, stall: bool) -> dict[str, dict[str, float]]:
    async def main() -> dict[str, dict[str, float]]:
        run = InProcessRun(provider, url, *PUBLISH_ARGS.get(provider, ()))
        await run.open(SUBSCRIBERS)
        try:
            for k in range(MESSAGES):
                await run.publish()
                if stall:
                    time.sleep(STALL_S)  # the loop thread is busy while every delivery arrives
                await run.delivered((k + 1) * SUBSCRIBERS)
                await asyncio.sleep(0.05)  # spacing, so each message meets an idle target
            recorder = run.generator.recorder
            recorder.interval_report()
            assert recorder.rx_clocks == {"kernel": SUBSCRIBERS}
            return {"latency": hist.latency_summary(recorder.latency),
                    "client_lag": hist.latency_summary(recorder.client_lag)}
        finally:
            await run.close()

    return uvloop.run(main())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stalled_generator_does_not_move_latency(provider: str) -> None:
    with running_target(f"targets.{provider}", "--port", "0") as url:
        free = measure(provider, url, stall=False)
        stalled = measure(provider, url, stall=True)
    assert free["latency"]["count"] == stalled["latency"]["count"] == SUBSCRIBERS * MESSAGES
    for point in ("p50", "p99"):
        assert abs(stalled["latency"][point] - free["latency"][point]) <= 2.0, (free, stalled)
    assert stalled["client_lag"]["max"] >= STALL_S * 1000 * 0.9, stalled
    assert free["client_lag"]["max"] < STALL_S * 1000 / 2, free
