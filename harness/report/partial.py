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
from harness.measure.records import FinalReport, IntervalReport, LiveInterval

#: messages whose fan-out the live view follows per generator; past it ``fanout_ms`` waits for the end (the
#: master rebuilds the figure each second, and a long, fast run would make that rebuild too dear)
LIVE_FANOUT_MAX = 200_000


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
        #: per publisher stream, per sequence number: this generator's slowest delivery so far (us), from
        #: the live deltas; None once more than ``LIVE_FANOUT_MAX`` messages (the live fan-out stops there)
        self.fanout: dict[str, dict[int, int]] | None = {}
        self._fanout_messages = 0

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
            self._add_fanout(live.get("fanout", {}))

    def _add_fanout(self, delta: Mapping[str, list[list[int]]]) -> None:
        if self.fanout is None:
            return
        for stream, (seqs, values) in delta.items():
            slowest = self.fanout.setdefault(stream, {})
            before = len(slowest)
            for seq, value in zip(seqs, values, strict=True):
                if value > slowest.get(seq, -1):
                    slowest[seq] = value
            self._fanout_messages += len(slowest) - before
        if self._fanout_messages > LIVE_FANOUT_MAX:
            self.fanout = None

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
        if self.fanout is not None:
            final["fanout"] = {stream: [list(s), list(s.values())] for stream, s in self.fanout.items()}
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
