"""The harness watches itself (DESIGN rule 5): event-loop lag and process CPU of a load generator.

A generator whose loop is late records its own lateness as delivery latency; these samples let the
summary say so instead of blaming the provider.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psutil

from harness import hist

LAG_TICK_S = 0.05
CPU_TICK_S = 1.0


class HealthMonitor:
    """Samples loop lag every 50 ms and CPU every second; runs on the generator's event loop."""

    def __init__(self) -> None:
        self.lag = hist.new()
        self.interval_lag = hist.new()
        self.cpu_samples: list[float] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._process = psutil.Process()

    def start(self) -> None:
        self._process.cpu_percent(None)  # first call only primes the counter
        self._tasks = [asyncio.ensure_future(self._lag_loop()), asyncio.ensure_future(self._cpu_loop())]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    async def _lag_loop(self) -> None:
        while True:
            before = time.perf_counter_ns()
            await asyncio.sleep(LAG_TICK_S)
            late_us = (time.perf_counter_ns() - before) // 1000 - int(LAG_TICK_S * 1e6)
            self.lag.record_value(max(1, late_us))
            self.interval_lag.record_value(max(1, late_us))

    async def _cpu_loop(self) -> None:
        while True:
            await asyncio.sleep(CPU_TICK_S)
            self.cpu_samples.append(float(self._process.cpu_percent(None)))
            del self.cpu_samples[:-3600]  # keep an hour: bounded memory on soak runs

    def interval(self) -> dict[str, float]:
        """CPU (last sample) and loop-lag p99 since the previous call, for timeseries.csv."""
        lag_p99 = hist.percentiles(self.interval_lag, [99.0])[0] / 1000.0 if self.interval_lag.total_count else 0.0
        self.interval_lag = hist.new()
        return {"cpu_pct": self.cpu_samples[-1] if self.cpu_samples else 0.0, "loop_lag_p99_ms": round(lag_p99, 3)}

    def to_wire(self) -> dict[str, Any]:
        return {"lag": hist.encode(self.lag), "cpu_samples": list(self.cpu_samples)}
