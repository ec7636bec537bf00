"""Per server node and cross-clock deliveries through the master: two generators' finals merged by the
Collector into summary.json's ``nodes`` and ``cross_clock_ms``, read back strictly, printed and rendered."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.measure import gates, hist, probe
from harness.measure.recorder import Recorder
from harness.measure.records import FinalReport, LoadRequest
from harness.measure.summary import format_text
from harness.report import collector as collector_mod
from harness.report import html, rundata
from harness.report.collector import Collector
from tests.unit.fake_reports import fake_clock

REQUEST: LoadRequest = {"users": 4, "publish_rate": 100.0, "channels": 1, "payload_bytes": 64}
T = 1_767_225_600_000_000_000
HERE, THERE = "34de93b1", "9f00aa17"
STREAM = probe.stream_id("p", 0, HERE)


def _generator(clock_id: str, ledger_sends: int, subscribers: dict[str, dict[int, int]]) -> FinalReport:
    """A generator on host ``clock_id``: per subscriber (named by its node) the sequence numbers it got and
    their latency in us (below 2048: held exactly); it publishes STREAM (on HERE) ``ledger_sends`` times."""
    rec = Recorder("run", clock_id)
    rec.steady_from_ns = T
    records = []
    for node in subscribers:
        record = rec.new_subscriber("c")
        rec.landed(record, node)
        record.open_window(T - 1)
        records.append(record)
    ledger = rec.ledger(STREAM, "c") if ledger_sends else None
    for seq in range(ledger_sends):
        assert ledger is not None
        rec.published(ledger, T + seq, T + seq)
    for record, got in zip(records, subscribers.values(), strict=True):
        for seq, latency_us in got.items():
            rec.delivered_to(record, probe.encode("run", STREAM, seq, T + seq, 64), T + seq + latency_us * 1000)
    rec.interval_report()
    return rec.final_report(end_ns=T + 10**9)


@pytest.fixture
def merged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """w1 (the publisher's host) has a subscriber on node a and one on b; w2, on another host, one on b."""
    fake_clock(monkeypatch, collector_mod)
    collector = Collector("socketio", "external", gates.parse_all(["p99<50ms"]))
    collector.begin("run", tmp_path / "run")
    w1 = _generator(HERE, 4, {"a": {0: 1000, 1: 1100, 2: 1200, 3: 1300}, "b": {0: 1400, 2: 1500, 3: 1600}})
    w2 = _generator(THERE, 0, {"b": {0: 900, 1: 950, 2: 1900, 3: 1950}})
    w2.setdefault("node_latency", {})["c"] = hist.encode(hist.new())  # answered a connect that then failed
    collector.add_final("w2", w2)
    collector.add_final("w1", w1)
    collector.finalize(REQUEST)
    return tmp_path / "run"


def test_the_master_merges_every_generators_nodes_exactly(merged: Path) -> None:
    summary = json.loads((merged / "summary.json").read_text())
    nodes = summary["nodes"]
    assert list(nodes) == ["a", "b"]
    assert {k: v for k, v in nodes["a"].items() if k != "latency_ms"} == {
        "subscribers": 1,
        "windows": 1,
        "expected": 4,
        "delivered": 4,
        "lost": 0,
    }
    assert {k: v for k, v in nodes["b"].items() if k != "latency_ms"} == {
        "subscribers": 2,
        "windows": 2,
        "expected": 8,
        "delivered": 7,
        "lost": 1,
    }
    union_a = hist.new()
    for value in (1000, 1100, 1200, 1300):
        union_a.record_value(value)
    assert nodes["a"]["latency_ms"] == hist.connect_summary(union_a)
    # w2's deliveries were timed on another host's clock: counted in b's accounting, not in its latency
    assert nodes["b"]["latency_ms"]["count"] == 3 and nodes["b"]["latency_ms"]["max"] == 1.6
    assert summary["cross_clock_ms"]["count"] == 4 and summary["cross_clock_ms"]["max"] == 1.95
    assert summary["latency_ms"]["count"] == 7
    assert summary["messages"]["expected"] == 12 and summary["messages"]["lost"] == 1
    keys = list(summary)
    assert keys.index("publish_lag_ms") < keys.index("cross_clock_ms") < keys.index("rx_clock")
    assert keys.index("reconnect_ms") < keys.index("nodes") < keys.index("clock")
    assert rundata.read_summary(merged / "summary.json") == summary  # the strict reader takes the new keys


def test_the_text_summary_has_a_line_per_node(merged: Path) -> None:
    summary = rundata.read_summary(merged / "summary.json")
    lines = format_text(summary, str(merged)).splitlines()
    node_lines = [ln for ln in lines if ln.startswith("  node ")]
    assert node_lines == [
        "  node a               subscribers 1 (windows 1)  expected 4  delivered 4  lost 0  latency ms p50 1.1  "
        "p95 1.3  p99 1.3  max 1.3  (n=4)",
        "  node b               subscribers 2 (windows 2)  expected 8  delivered 7  lost 1  latency ms p50 1.5  "
        "p95 1.6  p99 1.6  max 1.6  (n=3)",
    ]
    assert any(ln.startswith("  cross-clock ms") and "(n=4)" in ln for ln in lines)
    assert any("clock-dependent" in ln for ln in lines)


class _Table(HTMLParser):
    """The cells of each ``data-node`` row, and the text of element ids seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.ids: set[str] = set()
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "tr" and values.get("data-node"):
            self._row = str(values["data-node"])
            self.rows[self._row] = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self.rows[self._row].append("".join(self._cell))
            self._cell = None
        elif tag == "tr":
            self._row = None


def test_the_report_has_a_node_table_and_flags_cross_clock(merged: Path) -> None:
    page = _Table()
    page.feed(html.write_report(merged).read_text(encoding="utf-8"))
    assert page.rows == {
        "a": ["a", "1", "1", "4", "4", "0", "4", "1.1", "1.3", "1.3", "1.3"],
        "b": ["b", "2", "2", "8", "7", "1", "3", "1.5", "1.6", "1.6", "1.6"],
    }
    assert {"nodes", "cross-clock"} <= page.ids


def test_a_run_without_nodes_or_other_clocks_shows_neither(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_clock(monkeypatch, collector_mod)
    collector = Collector("socketio", "embedded", gates.parse_all(None))
    collector.begin("run", tmp_path / "run")
    final = _generator(HERE, 2, {"x": {0: 1000, 1: 1000}})
    del final["node_latency"]  # as a generator whose servers never named a node
    for subscriber in final["subscribers"]:
        del subscriber["nodes"]
    collector.add_final("local", final)
    summary = collector.finalize(REQUEST)
    assert "nodes" not in summary and "cross_clock_ms" not in summary
    page = html.write_report(tmp_path / "run").read_text(encoding="utf-8")
    assert 'id="nodes"' not in page and 'id="cross-clock"' not in page and "Per server node" not in page
