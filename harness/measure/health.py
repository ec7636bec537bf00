"""The harness watches itself (DESIGN rule 5): what a generator's loop lag and CPU samples add up to.

A generator whose loop is late records its own lateness as delivery latency; these samples let the
summary say so instead of blaming the provider. The sampling itself runs on the loop
(:mod:`harness.loop.monitor`); this module only keeps and reports what it is given.
"""

from __future__ import annotations

from harness.measure import hist
from harness.measure.records import HealthInterval, HealthWire

#: CPU samples kept (one a second): an hour, so soak runs stay bounded in memory.
CPU_SAMPLES_KEPT = 3600


class HealthSamples:
    """Loop-lag histogram (whole run and since the last interval) and per-second CPU samples."""

    def __init__(self) -> None:
        self.lag = hist.new()
        self.interval_lag = hist.new()
        self.cpu_samples: list[float] = []

    def record_lag_us(self, late_us: int) -> None:
        self.lag.record_value(max(1, late_us))
        self.interval_lag.record_value(max(1, late_us))

    def record_cpu(self, percent: float) -> None:
        self.cpu_samples.append(percent)
        del self.cpu_samples[:-CPU_SAMPLES_KEPT]

    def interval(self) -> HealthInterval:
        """CPU (last sample) and loop-lag p99 since the previous call, for timeseries.csv."""
        lag_p99 = hist.percentiles(self.interval_lag, [99.0])[0] / 1000.0 if self.interval_lag.total_count else 0.0
        self.interval_lag = hist.new()
        return {"cpu_pct": self.cpu_samples[-1] if self.cpu_samples else 0.0, "loop_lag_p99_ms": round(lag_p99, 3)}

    def to_wire(self) -> HealthWire:
        return {"lag": hist.encode(self.lag), "cpu_samples": list(self.cpu_samples)}
