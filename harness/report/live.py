"""The web UI's live figures (``GET /rtbench/live``): the run so far while it runs, the summary at the end.

While a run goes, the figures are built by the summary's own code (``measure/summary.py: build``) from
every generator's interval reports added up exactly (``report/partial.py: IntervalTally.live_final``),
so the percentiles are those of the merged HdrHistograms, not Locust's rounded ones. Two things only
the final reports carry are provisional until then: the accounting (``expected`` and ``lost`` come from
the open sequence gaps; the ledgers that settle them travel at the end) and ``fanout_ms`` (a message's
slowest delivery over every generator): each generator ships the messages whose slowest delivery is new
or grew each second, the master keeps each one's maximum, so the live figure is the final one's so far
(a message still reaching subscribers counts with its slowest delivery yet); past ``LIVE_FANOUT_MAX``
messages in a generator it is ``null`` until the end. Once the run is written, the figures are
summary.json's, key for key.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, TypedDict

from harness.measure import gates as gates_mod
from harness.measure import hist
from harness.measure import summary as summary_mod
from harness.measure.records import Load, LoadRequest, Summary

if TYPE_CHECKING:
    from harness.report.collector import Collector

#: chart points kept (one a second: an hour); older ones leave the chart, never the run folder
MAX_POINTS = 3600
#: the summary.json blocks the live figures carry, the same keys at the end as in the file
BLOCKS = ("latency_ms", "ramp_ms", "fanout_ms", "connect_ms", "messages", "connections", "gates", "harness", "passed")


class Point(TypedDict):
    """One second of the chart: every delivery of the interval (as timeseries.csv), and their rate."""

    t: float
    p50: float
    p99: float
    deliveries_per_s: float


class Series:
    """The chart's points, one per collector flush, bounded."""

    def __init__(self) -> None:
        self.points: deque[Point] = deque(maxlen=MAX_POINTS)

    def add(self, elapsed_s: float, length_s: float, histogram: Any, delivered: int) -> None:
        lat = hist.latency_summary(histogram)
        rate = delivered / length_s if length_s > 0 else 0.0
        self.points.append({"t": elapsed_s, "p50": lat["p50"], "p99": lat["p99"], "deliveries_per_s": round(rate, 1)})


class LiveView:
    """The figures built once per version of the collector (a flush a second, the run's start and end):
    every reader in between sees the same figures under the same version, and building them (a few
    histogram merges) costs at most once a second however many pages and scripts poll."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self._cached: dict[str, Any] | None = None

    def figures(self, load: LoadRequest, state: str) -> dict[str, Any]:
        cached = self._cached
        if cached is None or cached["version"] != self.collector.version or cached["run_id"] != self.collector.run_id:
            cached = self._cached = figures(self.collector, load, state)
        return {**cached, "state": state}


def figures(collector: Collector, load: LoadRequest, state: str) -> dict[str, Any]:
    """What ``GET /rtbench/live`` answers: the run's identity, its figures, the chart."""
    summary = collector.last_summary
    final = summary is not None and bool(collector.run_id) and summary.get("run_id") == collector.run_id
    payload: dict[str, Any] = {
        "state": state,
        "run_id": collector.run_id,
        "final": final,
        "version": collector.version,
    }
    if final:
        assert summary is not None
        payload.update({key: summary[key] for key in BLOCKS})  # type: ignore[literal-required]
        payload["connections"] = {**summary["connections"], "open": collector.open_connections}
    elif collector.active:
        payload.update(_live_blocks(collector, load))
    payload["series"] = list(collector.series.points)
    return payload


def _live_blocks(collector: Collector, load: LoadRequest) -> dict[str, Any]:
    """The figures of the run so far, by the summary's code; accounting provisional, fan-out at the end."""
    nodes = sorted(collector.tallies)
    finals = [collector.tallies[node].live_final() for node in nodes]
    measured: Load = {
        "users": load["users"],
        "publish_rate": load["publish_rate"],
        "channels": load["channels"],
        "payload_bytes": load["payload_bytes"],
        "duration_s": round(time.monotonic() - collector.started_monotonic, 3),
        "processes": len(finals),
    }
    summary: Summary = summary_mod.build(
        provider=collector.provider,
        target=collector.target,
        load=measured,
        finals=finals,
        gates=collector.gates,
        run_id=collector.run_id,
        started_at=collector.started_at,
    )
    tallies = [collector.tallies[node] for node in nodes]
    delivered = sum(t.delivered for t in tallies)
    open_gaps = collector.open_gaps
    summary["messages"].update(
        {
            "expected": delivered + open_gaps,
            "delivered": delivered,
            "lost": open_gaps,
            "duplicated": sum(t.live["duplicated"] for t in tallies if t.live is not None),
            "out_of_order": sum(t.live["out_of_order"] for t in tallies if t.live is not None),
        }
    )
    summary["gates"] = gates_mod.evaluate_all(collector.gates, summary)
    summary["passed"] = all(g["passed"] for g in summary["gates"])
    blocks: dict[str, Any] = {key: summary[key] for key in BLOCKS}  # type: ignore[literal-required]
    blocks["fanout_ms"] = collector.live_fanout.summary()
    blocks["connections"] = {**summary["connections"], "open": collector.open_connections}
    return blocks


def rows(payload: dict[str, Any]) -> list[dict[str, str]]:
    """The figures as (figure, value) rows, for the table in Locust's own rtbench tab (it shows text)."""
    # no run state here: Locust's UI stops polling once a run leaves "running", so a state row would stay
    # at "stopping" while the figures are already the final ones
    figures_of = "final (summary.json)" if payload["final"] else "live"
    out: list[tuple[str, Any]] = [("figures", figures_of if payload["run_id"] else "no run yet")]
    out.append(("version", payload["version"]))
    if "messages" not in payload:
        return [{"figure": k, "value": shown(v)} for k, v in out]
    for block, label in (("latency_ms", "delivery"), ("fanout_ms", "fan-out"), ("connect_ms", "connect")):
        figures_ = payload[block]
        if figures_ is None:
            out.append((f"{label} ms", "at the end of the run"))
            continue
        out += [(f"{label} {key} ms" if key != "count" else f"{label} count", v) for key, v in figures_.items()]
    out += [(f"messages {key}", v) for key, v in payload["messages"].items()]
    out += [(f"connections {key}", v) for key, v in payload["connections"].items()]
    out += [(f"gate {g['expr']}", f"{_verdict(g['passed'])} (value {shown(g['value'])})") for g in payload["gates"]]
    out.append(("verdict", "PASSED" if payload["passed"] else "FAILED"))
    health = payload["harness"]
    out.append(("harness", "trustworthy" if health["trustworthy"] else "NOT trustworthy"))
    out += [(f"harness reason {i + 1}", reason) for i, reason in enumerate(health["reasons"])]
    for gen in health["generators"]:
        out += [(f"generator {gen['generator']} {key}", v) for key, v in gen.items() if key != "generator"]
    return [{"figure": k, "value": shown(v)} for k, v in out]


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def shown(value: Any) -> str:
    """A value as the tab shows it: numbers as JavaScript's ``String()`` writes them, for the ones seen here."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
