"""The generator watches itself: a blocked loop shows up as loop lag, CPU is sampled, and stopping ends both."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.loop import monitor
from harness.measure import hist
from harness.measure.health import CPU_SAMPLES_KEPT, HealthSamples

BLOCK_S = 0.2


async def until(condition: object, timeout_s: float = 5.0) -> None:
    """Yield to the loop until ``condition()`` holds (bounded)."""
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the monitor never sampled"
        await asyncio.sleep(0.005)


def test_a_blocked_loop_is_recorded_as_lag_and_cpu_is_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor, "CPU_TICK_S", 0.05)

    async def scenario() -> HealthSamples:
        samples = HealthSamples()
        watcher = monitor.HealthMonitor(samples)
        watcher.start()
        await asyncio.sleep(0)  # the samplers take their first timestamps
        time.sleep(BLOCK_S)  # the fault: nothing runs on the loop for 200 ms
        await until(lambda: samples.lag.total_count >= 1 and len(samples.cpu_samples) >= 1)
        tasks = list(watcher._tasks)
        watcher.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(t.cancelled() for t in tasks)
        return samples

    samples = asyncio.run(scenario())
    # the first lag sample waited out the whole block: at least the block minus one tick, never less
    assert samples.lag.get_max_value() >= (BLOCK_S - monitor.LAG_TICK_S) * 1e6
    assert all(cpu >= 0.0 for cpu in samples.cpu_samples)


def test_interval_reports_lag_since_the_last_one_and_resets() -> None:
    samples = HealthSamples()
    for late_us in (1_000, 2_000, 40_000):
        samples.record_lag_us(late_us)
    samples.record_cpu(37.5)
    first = samples.interval()
    assert first["cpu_pct"] == 37.5
    assert first["loop_lag_p99_ms"] == pytest.approx(40.0, rel=0.01)
    assert samples.interval() == {"cpu_pct": 37.5, "loop_lag_p99_ms": 0.0}  # nothing since
    assert samples.lag.total_count == 3  # the whole run keeps every sample


def test_lag_is_at_least_one_microsecond_and_cpu_samples_are_bounded() -> None:
    samples = HealthSamples()
    samples.record_lag_us(-30)  # the timer fired early: recorded as the smallest lag, not dropped
    assert samples.lag.total_count == 1 and samples.lag.get_min_value() == 1
    for i in range(CPU_SAMPLES_KEPT + 10):
        samples.record_cpu(float(i))
    assert len(samples.cpu_samples) == CPU_SAMPLES_KEPT and samples.cpu_samples[0] == 10.0
    wire = samples.to_wire()
    assert hist.decode(wire["lag"]).total_count == 1 and len(wire["cpu_samples"]) == CPU_SAMPLES_KEPT
