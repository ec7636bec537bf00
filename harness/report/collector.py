"""Worker -> master: interval and final reports over Locust's runner messages, merged exactly.

Each generator process (the only process, or every worker) sends an interval report every second and
a final report when the master asks it to finish. Histograms travel encoded and are merged by adding
counts, so the master's percentiles are those of the union of all samples (DESIGN rule 3).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.measure import gates as gates_mod
from harness.measure import hist, probe
from harness.measure import summary as summary_mod
from harness.measure.records import FinalReport, GeneratorFinal, IntervalReport, Load, LoadRequest, Summary
from harness.report.files import IntervalRow, RunFolder
from harness.report.live import Series
from harness.report.partial import IntervalTally, LiveFanout

MSG_INTERVAL = "rtbench_interval"
MSG_FINAL = "rtbench_final"
MSG_FINISH = "rtbench_finish"


class Collector:
    """On the master (or the only process): merges what generators report, writes the run folder."""

    def __init__(self, provider: str, target: str, gates: list[gates_mod.Gate]) -> None:
        self.provider, self.target, self.gates = provider, target, gates
        self.run_id = ""
        self.folder: RunFolder | None = None
        self._pending: list[IntervalReport] = []
        self._connections: dict[str, int] = {}
        #: per generator, failed publishes not yet taken off a row's ``published`` (see ``add_interval``)
        self._unpublished: dict[str, int] = {}
        #: per generator, its open sequence gaps (the sum of its interval deltas)
        self._gaps: dict[str, int] = {}
        self.finals: dict[str, FinalReport] = {}
        self.tallies: dict[str, IntervalTally] = {}
        #: the web UI's live fan-out: each message's slowest delivery over every generator so far
        self.live_fanout = LiveFanout()
        #: generators whose final report never came: their part is built from their intervals
        self.lost_nodes: list[str] = []
        self.started_monotonic = 0.0
        self.started_at = ""
        self.last_summary: Summary | None = None
        #: the web UI's chart, and the live figures' version: it changes at each flush, begin and finalize
        self.series = Series()
        self.version = 0

    def begin(self, run_id: str, folder: Path) -> None:
        self.run_id = run_id
        self.started_monotonic = time.monotonic()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.folder = RunFolder(folder, int(time.time() * 1000))
        self._pending, self._connections, self.finals = [], {}, {}
        self.tallies, self.lost_nodes = {}, []
        self.live_fanout = LiveFanout()
        self._unpublished, self._gaps = {}, {}
        self.series = Series()
        self.version += 1

    @property
    def open_connections(self) -> int:
        """Subscriptions open at every generator's last interval."""
        return sum(self._connections.values())

    @property
    def open_gaps(self) -> int:
        """Sequence numbers skipped and not (yet) arrived, over every generator (provisional loss)."""
        return sum(self._gaps.values())

    @property
    def active(self) -> bool:
        return self.folder is not None

    def add_interval(self, node: str, report: IntervalReport) -> None:
        """A generator's interval. A publish that fails after its interval was reported is taken off the
        generator's next ``published`` that has room, so a row never shows a negative count (when
        publishes time out with nothing else sent, the delta alone would be -1)."""
        reported = report["counts"]["published"]
        net = reported - self._unpublished.get(node, 0)
        self._unpublished[node] = max(0, -net)
        if max(0, net) != reported:
            report = {**report, "counts": {**report["counts"], "published": max(0, net)}}
        self._pending.append(report)
        self._connections[node] = int(report["connections"])
        self.tallies.setdefault(node, IntervalTally()).add(report)
        self.live_fanout.add(report.get("live", {}).get("fanout", {}))
        self._gaps[node] = self._gaps.get(node, 0) + int(report.get("lost", 0))

    def add_final(self, node: str, final: FinalReport) -> None:
        self.finals[node] = final

    def finals_from_intervals(self) -> list[str]:
        """Every generator that reported intervals but no final report gets one built from its intervals;
        returns those generators (the summary is then partial)."""
        for node, tally in sorted(self.tallies.items()):
            if node not in self.finals:
                self.finals[node] = tally.as_final()
                self.lost_nodes.append(node)
        return list(self.lost_nodes)

    def flush(self) -> None:
        """Merge the interval reports received since the last flush into one hlog line and csv row."""
        if self.folder is None or not self._pending:
            return
        pending, self._pending = self._pending, []
        merged = hist.merge([r["latency"] for r in pending])
        row = IntervalRow(
            connections=sum(self._connections.values()),
            published=sum(r["counts"]["published"] for r in pending),
            delivered=sum(r["delivered"] for r in pending),
            errors=sum(r["counts"]["errors"] for r in pending),
            dropped=sum(r["counts"]["dropped"] for r in pending),
            open_gaps=sum(self._gaps.values()),
            cpu_pct=max(float(r.get("cpu_pct", 0)) for r in pending),
            loop_lag_p99_ms=max(float(r.get("loop_lag_p99_ms", 0)) for r in pending),
        )
        start = min(r["start_ms"] for r in pending)
        end = max(r["end_ms"] for r in pending)
        self.folder.write_interval(start, end, merged, row)
        self.series.add(round((end - self.folder.start_ms) / 1000.0, 3), (end - start) / 1000.0, merged, row.delivered)
        self.version += 1

    def finalize(
        self, load: LoadRequest, parameters: dict[str, Any] | None = None, *, interrupted: bool = False
    ) -> Summary:
        """Write summary.json (and per-generator histograms when there are several); close the folder.
        An ``interrupted`` run says so: its figures cover only the time that ran."""
        assert self.folder is not None
        self.flush()
        finals = [self.finals[node] for node in sorted(self.finals)]
        requested = load["payload_bytes"]
        sent = largest_message(self.run_id, finals, requested)
        measured: Load = {
            "users": load["users"],
            "publish_rate": load["publish_rate"],
            "channels": load["channels"],
            "payload_bytes": sent,
            "duration_s": round(time.monotonic() - self.started_monotonic, 3),
            "processes": len(finals),
        }
        if sent > requested:  # the envelope alone is longer than asked: the summary says what was sent
            measured["payload_bytes_requested"] = requested
        summary = summary_mod.build(
            provider=self.provider,
            target=self.target,
            load=measured,
            finals=finals,
            gates=self.gates,
            run_id=self.run_id,
            started_at=self.started_at,
        )
        if interrupted:
            summary["interrupted"] = True
        if self.lost_nodes:
            summary["partial"] = True
        if parameters:
            summary["parameters"] = parameters
        self.folder.write_json("summary.json", summary)
        if len(finals) > 1:
            generators: list[GeneratorFinal] = [
                {"node": node, "latency": f["latency"], "delivered": f["delivered"], "counts": f["counts"]}
                for node, f in sorted(self.finals.items())
            ]
            self.folder.write_json("generators.json", generators)
        self.folder.close()
        self.last_summary = summary
        self.version += 1
        return summary


def largest_message(run_id: str, finals: list[FinalReport], requested: int) -> int:
    """The largest message any publisher sent: ``requested`` bytes, or more where the probe envelope
    (run, stream, sequence number, due time) is longer than that and is sent unpadded."""
    return max(
        (
            len(probe.encode(run_id, ledger["stream_id"], len(ledger["sent_ns"]) - 1, ledger["sent_ns"][-1], requested))
            for final in finals
            for ledger in final["ledgers"]
            if ledger["sent_ns"]
        ),
        default=requested,
    )
