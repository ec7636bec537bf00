"""report.html from a run folder: self-contained, says what summary.json says, redacts secrets."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness import cli
from harness.report import html, rundata
from tests.report.conftest import SECRET, make_summary, synthetic_run, write_summary


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, str] = {}
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self._metric: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        for key in ("src", "href", "xlink:href", "action", "data"):
            if values.get(key):
                self.urls.append(str(values[key]))
        self._metric = values.get("data-metric")
        if self._metric:
            self.metrics[self._metric] = ""

    def handle_data(self, data: str) -> None:
        if self._metric:
            self.metrics[self._metric] += data

    def handle_endtag(self, tag: str) -> None:
        self._metric = None


def parse(text: str) -> _Collector:
    collector = _Collector()
    collector.feed(text)
    return collector


def test_report_is_one_self_contained_file(synthetic: Path) -> None:
    path = html.write_report(synthetic)
    text = path.read_text(encoding="utf-8")
    page = parse(text)
    assert "script" not in page.tags  # nothing to run, nothing to fetch
    assert all(u.startswith(("data:", "#")) for u in page.urls), page.urls
    assert not re.search(r"url\(\s*['\"]?https?:", text)
    assert text.count("<svg") >= 4  # distribution, latency over time, throughput, connect
    assert "Content-Security-Policy" in text


def test_headline_numbers_equal_the_summary(synthetic: Path) -> None:
    summary = json.loads((synthetic / "summary.json").read_text())
    page = parse(html.write_report(synthetic).read_text(encoding="utf-8"))
    for key in (
        "latency_ms.p50",
        "latency_ms.p95",
        "latency_ms.p99",
        "latency_ms.p999",
        "latency_ms.max",
        "messages.delivered",
        "messages.lost",
        "connect_ms.p95",
        "load.users",
        "load.duration_s",
    ):
        assert float(page.metrics[key]) == html.lookup(summary, key), key
    assert page.metrics["provider"] == "socketio"


def test_report_shows_verdicts_accounting_and_health(synthetic: Path) -> None:
    text = html.write_report(synthetic).read_text(encoding="utf-8")
    assert "FAILED" in text  # loss==0 fails: 7 lost
    assert "<code>loss==0</code>" in text and "<code>p99&lt;50ms</code>" in text
    for heading in (
        "Latency distribution",
        "Latency over time",
        "Connections and deliveries over time",
        "Message accounting",
        "Connect time",
        "Harness health",
        "Run parameters",
    ):
        assert heading in text
    assert "trustworthy" in text
    # the percentile axis goes to 99.99% like HdrHistogram's plots
    assert "99.99%" in text and "50%" in text


def test_untrustworthy_runs_say_why(tmp_path: Path) -> None:
    folder = synthetic_run(
        tmp_path / "r",
        harness={
            "trustworthy": False,
            "reasons": ["generator 0: event-loop lag p99 9 ms exceeds 5 ms"],
            "loop_lag_ms": {"p99": 9.0, "max": 20.0, "limit": 5.0},
            "cpu_peak_pct": 99.0,
            "generators": [],
        },
    )
    text = html.write_report(folder).read_text(encoding="utf-8")
    assert "NOT TRUSTWORTHY" in text and "event-loop lag p99 9 ms exceeds 5 ms" in text


def test_secrets_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHER_SECRET", SECRET)
    folder = synthetic_run(
        tmp_path / "r",
        parameters={
            "host": "https://user:hunter2hunter2@example.test:443/x",
            "pusher_secret": "anything",
            "ably_api_key": "APPID.KEYID:abcdefSECRET",
            "note": f"the secret is {SECRET}",
            "publish_rate": 10,
        },
    )
    text = html.write_report(folder).read_text(encoding="utf-8")
    for leaked in (SECRET, "hunter2hunter2", "abcdefSECRET", "anything"):
        assert leaked not in text
    assert "https://user:" in text and "example.test" in text  # the rest of the URL is kept
    assert "options.publish_rate" in text


def test_redact_rules() -> None:
    out = html.redact(
        {
            "key": "k",
            "api_key": "x",
            "secret": "y",
            "token": "z",
            "host": "http://h:1",
            "nested": {"password": "p", "url": "redis://:pw12345@r:6379"},
            "empty_key": "",
        }
    )
    assert out["key"] == out["api_key"] == out["secret"] == out["token"] == html.REDACTED
    assert out["host"] == "http://h:1" and out["empty_key"] == ""
    assert out["nested"]["password"] == html.REDACTED and "pw12345" not in out["nested"]["url"]


def test_missing_intervals_and_hlog_still_render(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    write_summary(folder, make_summary(latency_ms={"count": 0}))
    text = html.write_report(folder).read_text(encoding="utf-8")
    assert "No deliveries were recorded" in text and "No interval data" in text


def test_rundata_reads_back_what_was_written(synthetic: Path) -> None:
    run = rundata.load_run(synthetic)
    assert run.latency is not None
    assert run.latency.get_total_count() == run.summary["latency_ms"]["count"]
    assert len(run.timeseries) == 12 and run.timeseries["deliveries_per_s"].iloc[-1] == pytest.approx(200.0)
    pcts, values = rundata.percentile_curve(run.latency)
    assert pcts[0] == pytest.approx(50.0) and pcts[-1] == pytest.approx(99.99)
    assert values == sorted(values) and values[-1] == pytest.approx(45.0, rel=0.01)


def test_rtbench_report_regenerates(synthetic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert not (synthetic / "report.html").exists()
    assert cli.main(["report", str(synthetic)]) == 0
    assert (synthetic / "report.html").stat().st_size > 10_000
    other = synthetic / "elsewhere.html"
    assert cli.main(["report", str(synthetic), "-o", str(other)]) == 0 and other.exists()
    capsys.readouterr()
    assert cli.main(["report", str(synthetic / "nothing-here")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtbench: error: ") and err.count("\n") == 1
