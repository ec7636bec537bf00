"""Samples the generator's own health on its event loop: loop lag every 50 ms, process CPU every second."""

from __future__ import annotations

import asyncio
import time

import psutil

from harness.measure.health import HealthSamples

LAG_TICK_S = 0.05
CPU_TICK_S = 1.0


class HealthMonitor:
    """Feeds :class:`HealthSamples` from two tasks on the running loop; ``stop`` cancels them."""

    def __init__(self, samples: HealthSamples) -> None:
        self.samples = samples
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
            self.samples.record_lag_us((time.perf_counter_ns() - before) // 1000 - int(LAG_TICK_S * 1e6))

    async def _cpu_loop(self) -> None:
        while True:
            await asyncio.sleep(CPU_TICK_S)
            self.samples.record_cpu(float(self._process.cpu_percent(None)))
