"""Generators' reports made in-process, without sockets: a real Recorder fed chosen deliveries on a fake clock.

The cluster shape is kept: one generator publishes stream ``STREAM`` on ``CHANNEL``, every generator's
subscribers receive it, and the master joins the ledger with every subscriber record. Latencies are whole
microseconds below 2048, which a 3-significant-digit histogram holds exactly, so tests can state values.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from time import struct_time
from typing import Any

import pytest

from harness.measure import hist, probe
from harness.measure import recorder as recorder_mod
from harness.measure.recorder import Recorder, counts_record
from harness.measure.records import Counts, FinalReport, IntervalReport

RUN_ID = "run"
STREAM = "A.0"
CHANNEL = "ch.0"
T0_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: message k is due at T0_NS + k * STEP_NS
STEP_NS = 1_000_000
PUBLISH_LATE_US = 100  # every message leaves this late against its due time
NOW_NS = T0_NS + 50 * STEP_NS  # the fake clock: when the recorder handles each arrival


class FakeClock:
    """The parts of ``time`` the recorder and collector read, standing still unless moved."""

    def __init__(self, now_ns: int = NOW_NS) -> None:
        self.now_ns = now_ns
        self.monotonic_s = 1000.0
        self.strftime = time.strftime

    def time_ns(self) -> int:
        return self.now_ns

    def time(self) -> float:
        return self.now_ns / 1e9

    def monotonic(self) -> float:
        return self.monotonic_s

    def gmtime(self, secs: float | None = None) -> struct_time:
        return time.gmtime(self.time() if secs is None else secs)


def fake_clock(monkeypatch: pytest.MonkeyPatch, *modules: Any) -> FakeClock:
    """Give the recorder (and any other module named) the fake clock instead of ``time``, for this test."""
    clock = FakeClock()
    for module in (recorder_mod, *modules):
        monkeypatch.setattr(module, "time", clock)
    return clock


def generator(
    latencies_us: Sequence[Sequence[int | None]],
    *,
    publishes: bool,
    steady_from_ns: int = T0_NS,
    connect_us: int = 1500,
    loop_lag_us: int = 500,
    cpu: Sequence[float] = (20.0,),
    errors: Sequence[str] = (),
    foreign: int = 0,
    shared_stamps: int = 0,
) -> tuple[IntervalReport, FinalReport]:
    """One generator's last interval and final report. ``latencies_us[i][k]``: subscriber i got message k
    that long after its due time (None: never). Call under :func:`fake_clock`."""
    rec = Recorder(RUN_ID)
    rec.steady_from_ns = steady_from_ns
    subscribers = []
    for _ in latencies_us:
        subscriber = rec.new_subscriber(CHANNEL)
        rec.connected(connect_us * 1000)
        rec.rx_clocks["kernel"] += 1
        subscriber.open_window(T0_NS - 1)
        subscribers.append(subscriber)
    ledger = rec.ledger(STREAM, CHANNEL) if publishes else None
    for seq in range(len(latencies_us[0])):
        due = T0_NS + seq * STEP_NS
        if ledger is not None:
            assert rec.published(ledger, due + PUBLISH_LATE_US * 1000, due) == seq
        for subscriber, row in zip(subscribers, latencies_us, strict=True):
            latency = row[seq]
            if latency is not None:
                rec.delivered_to(subscriber, probe.encode(RUN_ID, STREAM, seq, due, 64), due + latency * 1000)
    for _ in range(foreign):
        rec.delivered_to(subscribers[0], probe.encode("another-run", STREAM, 0, T0_NS, 64), NOW_NS)
    for reason in errors:
        rec.error(reason)
    rec.health.record_lag_us(loop_lag_us)
    for pct in cpu:
        rec.health.record_cpu(pct)
    interval = rec.interval_report()
    final = rec.final_report(end_ns=NOW_NS)
    reads = sum(1 for row in latencies_us for latency in row if latency is not None)
    final["rx_stamps"] = {"reads": reads, "unstamped_reads": 0, "shared_stamps": shared_stamps}
    return interval, final


# Two generators of one cluster: A publishes STREAM to its two subscribers and B's one; B's steady state
# begins two messages later (its first two deliveries are ramp-up). None: that message never arrived.
A_LATENCIES_US: tuple[list[int | None], ...] = (
    [1000, 1200, 1400, 1600, 1800, 2000],
    [1100, None, 1300, 1300, None, 1500],
)
B_LATENCIES_US: tuple[list[int | None], ...] = ([1500, 1700, 1900, 1100, None, 1200],)
B_STEADY_FROM_NS = T0_NS + 2 * STEP_NS


def two_generators() -> tuple[tuple[IntervalReport, FinalReport], tuple[IntervalReport, FinalReport]]:
    """A's and B's (last interval, final report); call under :func:`fake_clock`."""
    a = generator(A_LATENCIES_US, publishes=True, cpu=(20.0, 35.5), errors=("boom", "boom"))
    b = generator(
        B_LATENCIES_US,
        publishes=False,
        steady_from_ns=B_STEADY_FROM_NS,
        connect_us=1800,
        loop_lag_us=700,
        cpu=(10.0,),
        errors=("boom", "bang"),
        foreign=1,
    )
    return a, b


def arrivals(latencies_us: Sequence[Sequence[int | None]], *, ramp_before: int = 0) -> tuple[list[int], list[int]]:
    """(steady, ramp-up) latencies of the deliveries that happened; messages below ``ramp_before`` are ramp."""
    steady: list[int] = []
    ramp: list[int] = []
    for row in latencies_us:
        for seq, latency in enumerate(row):
            if latency is not None:
                (ramp if seq < ramp_before else steady).append(latency)
    return steady, ramp


def client_lags_us(latencies_us: Sequence[Sequence[int | None]], foreign: int = 0) -> list[int]:
    """How late the fake clock says each arrival was handled: NOW - (due + latency); foreign ones on arrival."""
    lags = [
        (NOW_NS - T0_NS - seq * STEP_NS) // 1000 - latency
        for row in latencies_us
        for seq, latency in enumerate(row)
        if latency is not None
    ]
    return lags + [1] * foreign  # handled the instant it arrived: the histogram's floor


def histogram(values_us: Sequence[int]) -> Any:
    out = hist.new()
    for value in values_us:
        assert out.record_value(value)
    return out


def interval(
    start_ms: int,
    end_ms: int,
    latencies_us: Sequence[int],
    *,
    connections: int,
    published: int,
    dropped: int = 0,
    errors: int = 0,
    lost: int = 0,
    cpu_pct: float = 0.0,
    loop_lag_p99_ms: float = 0.0,
) -> IntervalReport:
    """An interval report as a generator would send it, its latency histogram made of ``latencies_us``."""
    counts: Counts = counts_record({"published": published, "errors": errors, "dropped": dropped})
    return {
        "start_ms": start_ms,
        "end_ms": end_ms,
        "latency": hist.encode(histogram(latencies_us)),
        "connect": hist.encode(hist.new()),
        "delivered": len(latencies_us),
        "counts": counts,
        "connections": connections,
        "lost": lost,
        "cpu_pct": cpu_pct,
        "loop_lag_p99_ms": loop_lag_p99_ms,
    }
