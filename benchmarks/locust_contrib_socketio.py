"""Baseline for BENCHMARKS.md: Locust's own ``locust.contrib.socketio.SocketIOUser`` (gevent, sync client).

Its ``on_message`` computes latency from the same rtbench envelope (intended send time) and records it
in an HdrHistogram of the same shape, so the two harnesses are compared on equal terms: like rtbench,
messages due before spawning completed + ``$BASELINE_WARMUP`` seconds (default 1) are ramp-up, kept apart
from the steady-state ``latency_ms``. It writes ``$BASELINE_OUT`` (JSON) when Locust quits. Publishing
comes from a separate rtbench run with ``-u 1``.
"""

from __future__ import annotations

import json
import os
import time

from locust import constant, events, task
from locust.contrib.socketio import SocketIOUser

from harness.measure import hist, probe

LATENCY = hist.new()  # steady state
RAMP = hist.new()  # due before spawning completed + warmup
WARMUP_S = float(os.environ.get("BASELINE_WARMUP", "1"))
STEADY_FROM_NS = [1 << 62]  # every delivery is ramp-up until spawning completes
COUNTS = {"delivered": 0, "errors": 0, "connected": 0}


class ContribSubscriber(SocketIOUser):
    wait_time = constant(1)
    options = {"reconnection": False}

    def on_start(self) -> None:
        self.sio.on("message", self.on_probe)
        self.sio.connect(self.host, transports=["websocket"], wait_timeout=30)  # type: ignore[no-untyped-call]
        COUNTS["connected"] += 1

    def on_probe(self, data: object) -> None:
        now = time.time_ns()
        try:
            message = probe.decode(data)
        except probe.ProbeError:
            COUNTS["errors"] += 1
            return
        histogram = LATENCY if message.due_ns >= STEADY_FROM_NS[0] else RAMP
        histogram.record_value(max(1, (now - message.due_ns) // 1000))
        COUNTS["delivered"] += 1
        self.environment.events.request.fire(
            request_type="WSR",
            name="message",
            response_time=(now - message.due_ns) / 1e6,
            response_length=len(str(data)),
            exception=None,
            context={},
        )

    @task
    def hold(self) -> None:
        pass

    def on_stop(self) -> None:
        self.sio.disconnect()


def _steady(**_kw: object) -> None:
    STEADY_FROM_NS[0] = time.time_ns() + int(WARMUP_S * 1e9)


def _write(environment: object, **_kw: object) -> None:
    out = os.environ.get("BASELINE_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(
                {"latency_ms": hist.latency_summary(LATENCY), "ramp_ms": hist.latency_summary(RAMP), **COUNTS}, fh
            )


events.spawning_complete.add_listener(_steady)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_write)  # type: ignore[no-untyped-call]
