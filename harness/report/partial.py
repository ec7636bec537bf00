"""What a lost generator leaves behind: its interval reports, folded into a final report of their own.

A worker that dies (SIGKILL, out of memory) never sends its final report. Rather than a summary of
zeros, the master builds that worker's part from the intervals it did send: latency, connections and
counters up to its last second. Ledgers and subscriber records travel only in a final report, so the
accounting cannot cover that worker: such a summary is marked ``partial`` and never passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

from harness.measure import hist
from harness.measure.recorder import COUNTER_NAMES, counts_record
from harness.measure.records import FinalReport, IntervalReport, LatencySummary, LiveInterval

#: messages whose fan-out the live view follows; past it ``fanout_ms`` waits for the end (the master rebuilds
#: the figure each second it is asked for, and a long, fast run would make that rebuild too dear)
LIVE_FANOUT_MAX = 100_000


class LiveFanout:
    """Each message's slowest delivery over every generator so far (us), from the generators' live deltas
    (``Slowest.delta``): one entry a message however many generators, the figure summary.json's
    ``fanout_ms`` will be, so far. None past ``LIVE_FANOUT_MAX`` messages."""

    def __init__(self) -> None:
        self.slowest: dict[tuple[str, int], int] | None = {}

    def add(self, delta: Mapping[str, list[list[int]]]) -> None:
        slowest = self.slowest
        if slowest is None:
            return
        for stream, (seqs, values) in delta.items():
            for seq, value in zip(seqs, values, strict=True):
                key = (stream, seq)
                if value > slowest.get(key, -1):
                    slowest[key] = value
        if len(slowest) > LIVE_FANOUT_MAX:
            self.slowest = None

    def summary(self) -> LatencySummary | None:
        if self.slowest is None:
            return None
        histogram = hist.new()
        for value in self.slowest.values():
            histogram.record_value(max(1, value))
        return hist.latency_summary(histogram)


class IntervalTally:
    """One generator's interval reports added up as they arrive (bounded: a few histograms and sums)."""

    def __init__(self) -> None:
        self.latency: Any = hist.new()
        self.connect: Any = hist.new()
        self.counts: Counter[str] = Counter()
        self.delivered = 0
        self.cpu_samples: list[float] = []
        #: the web UI's live view: steady and ramp deliveries apart, the latest cumulative figures
        self.steady: Any = hist.new()
        self.ramp: Any = hist.new()
        self.live: LiveInterval | None = None

    def add(self, report: IntervalReport) -> None:
        hist.add(self.latency, hist.decode(report["latency"]))
        hist.add(self.connect, hist.decode(report["connect"]))
        self.counts.update(cast(Mapping[str, int], report["counts"]))  # every counter is an int
        self.delivered += int(report["delivered"])
        self.cpu_samples.append(float(report.get("cpu_pct", 0.0)))
        live = report.get("live")
        if live is not None:
            hist.add(self.steady, hist.decode(live["steady"]))
            hist.add(self.ramp, hist.decode(live["ramp"]))
            self.live = live

    def live_final(self) -> FinalReport:
        """A final report of the run so far, for the live view: what ``as_final`` holds, with the steady
        state and ramp apart and the health histograms, so the summary's code reads it as it reads a
        final one (still no ledgers: the live accounting comes from the counts, see ``report/live.py``)."""
        final = self.as_final()
        if self.live is None:
            return final
        live = self.live
        final.update(
            {
                "latency": hist.encode(self.steady),
                "ramp": hist.encode(self.ramp),
                "client_lag": live["client_lag"],
                "publish_lag": live["publish_lag"],
                "rx_clocks": dict(live["rx_clocks"]),
                "steady_from_ns": int(live["steady_from_ns"]),
                "health": {"lag": live["loop_lag"], "cpu_samples": self.cpu_samples},
            }
        )
        return final

    def as_final(self) -> FinalReport:
        """A final report with what the intervals carried; no ledgers or subscriber records."""
        empty = hist.encode(hist.new())
        return {
            "latency": hist.encode(self.latency),
            "connect": hist.encode(self.connect),
            "reconnect": empty,
            "ramp": empty,
            "client_lag": empty,
            "publish_lag": empty,
            "fanout": {},
            "rx_clocks": {},
            "steady_from_ns": 0,
            "delivered": self.delivered,
            "counts": counts_record({k: self.counts.get(k, 0) for k in COUNTER_NAMES}),
            "error_reasons": {},
            "ledgers": [],
            "subscribers": [],
            "health": {"lag": empty, "cpu_samples": self.cpu_samples},
        }
