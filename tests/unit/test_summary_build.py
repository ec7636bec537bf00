"""summary.build on two generators' real final reports: every figure of summary.json, exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.measure import gates, hist
from harness.measure.records import FinalReport, Load, Summary
from harness.measure.summary import build
from tests.unit.fake_reports import (
    A_LATENCIES_US,
    B_LATENCIES_US,
    B_STEADY_FROM_NS,
    PUBLISH_LATE_US,
    arrivals,
    client_lags_us,
    fake_clock,
    histogram,
    two_generators,
)

LOAD: Load = {"users": 3, "publish_rate": 1000.0, "channels": 1, "payload_bytes": 64, "duration_s": 6.0, "processes": 2}


def summarize(finals: list[FinalReport], exprs: tuple[str, ...] = ("p99<50ms", "loss==0")) -> Summary:
    return build(
        provider="socketio",
        target="embedded",
        load=LOAD,
        finals=finals,
        gates=gates.parse_all(list(exprs)),
        run_id="run",
        started_at="2026-01-01T00:00:00Z",
    )


@pytest.fixture
def finals(monkeypatch: pytest.MonkeyPatch) -> list[FinalReport]:
    fake_clock(monkeypatch)
    (_, a), (_, b) = two_generators()
    return [a, b]


def _p99_max_ms(values_us: list[int]) -> tuple[float, float]:
    h = histogram(values_us)
    return round(hist.percentiles(h, [99.0])[0] / 1000, 3), round(h.get_max_value() / 1000, 3)


def test_every_figure_of_the_summary_is_the_union_of_the_generators(finals: list[FinalReport]) -> None:
    summary: dict[str, Any] = dict(summarize(finals))
    a_steady, _ = arrivals(A_LATENCIES_US)
    b_steady, b_ramp = arrivals(B_LATENCIES_US, ramp_before=2)
    a_client, b_client = client_lags_us(A_LATENCIES_US), client_lags_us(B_LATENCIES_US, foreign=1)
    histograms = summary.pop("histograms")
    assert summary == {
        "schema": 1,
        "provider": "socketio",
        "target": "embedded",
        "run_id": "run",
        "started_at": "2026-01-01T00:00:00Z",
        "load": LOAD,
        # 1000 1100 1100 1200 1200 1300 1300 1400 1500 1600 1800 1900 2000 us (B's first two are ramp-up)
        "latency_ms": {
            "count": 13,
            "min": 1.0,
            "p50": 1.3,
            "p90": 1.9,
            "p95": 1.9,
            "p99": 2.0,
            "p999": 2.0,
            "max": 2.0,
            "mean": 1.415,
        },
        # per message, its slowest steady delivery over both generators: 1100 1200 1900 1600 1800 2000 us
        "fanout_ms": {
            "count": 6,
            "min": 1.1,
            "p50": 1.6,
            "p90": 1.9,
            "p95": 2.0,
            "p99": 2.0,
            "p999": 2.0,
            "max": 2.0,
            "mean": 1.6,
        },
        "ramp_ms": {
            "count": 2,
            "min": 1.5,
            "p50": 1.5,
            "p90": 1.7,
            "p95": 1.7,
            "p99": 1.7,
            "p999": 1.7,
            "max": 1.7,
            "mean": 1.6,
        },
        "client_lag_ms": hist.latency_summary(histogram(a_client + b_client)),
        "publish_lag_ms": {
            "count": 6,
            "min": 0.1,
            "p50": 0.1,
            "p90": 0.1,
            "p95": 0.1,
            "p99": 0.1,
            "p999": 0.1,
            "max": 0.1,
            "mean": 0.1,
        },
        "rx_clock": "kernel",
        "rx_clocks": {"kernel": 3},
        "connect_ms": {"count": 3, "p50": 1.5, "p95": 1.8, "p99": 1.8, "max": 1.8},
        "messages": {
            "published": 6,
            "publish_failed": 0,
            "expected": 18,  # 6 messages x 3 subscribers, all subscribed throughout
            "delivered": 15,  # ramp-up deliveries are delivered too
            "lost": 3,
            "duplicated": 0,
            "out_of_order": 0,
            "outside_windows": 0,
            "errors": 4,
        },
        "connections": {"opened": 3, "failed": 0, "dropped": 0, "reconnected": 0},
        "reconnect_ms": {"count": 0, "p50": 0, "p95": 0, "p99": 0, "max": 0},
        "clock": "harness",
        "errors_by_reason": {"boom": 3, "bang": 1},
        "foreign_messages": 1,
        "harness": {
            "trustworthy": True,
            "reasons": [],
            "loop_lag_ms": {"p99": 0.7, "max": 0.7, "limit": 5.0},  # limit: 10% of the p99<50ms gate
            "cpu_peak_pct": 35.5,
            "generators": [
                {
                    "generator": 0,
                    "loop_lag_p99_ms": 0.5,
                    "loop_lag_max_ms": 0.5,
                    "publish_lag_p99_ms": PUBLISH_LATE_US / 1000,
                    "publish_lag_max_ms": PUBLISH_LATE_US / 1000,
                    "client_lag_p99_ms": _p99_max_ms(a_client)[0],
                    "client_lag_max_ms": _p99_max_ms(a_client)[1],
                    "cpu_peak_pct": 35.5,
                },
                {
                    "generator": 1,
                    "loop_lag_p99_ms": 0.7,
                    "loop_lag_max_ms": 0.7,
                    "publish_lag_p99_ms": 0.0,  # B publishes nothing
                    "publish_lag_max_ms": 0.0,
                    "client_lag_p99_ms": _p99_max_ms(b_client)[0],
                    "client_lag_max_ms": _p99_max_ms(b_client)[1],
                    "cpu_peak_pct": 10.0,
                },
            ],
        },
        "rx_stamps": {"reads": 15, "unstamped_reads": 0, "shared_stamps": 0},
        "steady_from_ns": B_STEADY_FROM_NS,  # the later of the generators' steady states
        "gates": [
            {"expr": "p99<50ms", "value": 2.0, "passed": True},
            {"expr": "loss==0", "value": 3.0, "passed": False},
        ],
        "passed": False,
    }
    assert sorted(a_steady + b_steady) == [1000, 1100, 1100, 1200, 1200, 1300, 1300, 1400, 1500, 1600, 1800, 1900, 2000]
    assert hist.latency_summary(histogram(a_steady + b_steady)) == summary["latency_ms"]
    assert hist.latency_summary(histogram(b_ramp)) == summary["ramp_ms"]
    assert hist.latency_summary(hist.decode(histograms["ramp"])) == summary["ramp_ms"]
    assert hist.latency_summary(hist.decode(histograms["fanout"])) == summary["fanout_ms"]
    assert hist.connect_summary(hist.decode(histograms["connect"])) == summary["connect_ms"]
    assert set(histograms) == {"connect", "ramp", "fanout"}


def test_keys_come_in_the_record_order_and_the_summary_is_strict_json(finals: list[FinalReport]) -> None:
    summary = summarize(finals)
    optional = (
        "cross_clock_ms",
        "nodes",
        "todo_app",
        "browser_latency_ms",
        "browser",
        "interrupted",
        "partial",
        "parameters",
    )
    assert list(summary) == [key for key in Summary.__annotations__ if key not in optional]
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_the_order_of_the_finals_only_renumbers_the_generators(finals: list[FinalReport]) -> None:
    forward, backward = summarize(finals), summarize(finals[::-1])
    assert [g["cpu_peak_pct"] for g in backward["harness"]["generators"]] == [10.0, 35.5]
    for key in ("latency_ms", "fanout_ms", "ramp_ms", "messages", "errors_by_reason", "rx_stamps", "steady_from_ns"):
        assert forward[key] == backward[key], key


def test_a_final_without_read_stamps_or_a_steady_state_counts_as_none(finals: list[FinalReport]) -> None:
    a, b = finals
    del b["rx_stamps"]
    b["steady_from_ns"] = 2**63 - 1  # spawning never completed on B
    summary = summarize([a, b])
    assert summary["rx_stamps"] == {"reads": 10, "unstamped_reads": 0, "shared_stamps": 0}
    assert summary["steady_from_ns"] == a["steady_from_ns"]
    assert summarize([b])["steady_from_ns"] is None
