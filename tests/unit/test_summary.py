"""summary.json from generators' final reports: fan-out merged exactly, the arrival clock, the trust rules."""

from __future__ import annotations

from typing import Any

from harness.measure import gates, hist
from harness.measure.summary import build, fanout_histogram, format_text


def final(
    *,
    latency_ms: list[float],
    fanout: dict[str, list[list[int]]] | None = None,
    rx_clocks: dict[str, int] | None = None,
    client_lag_ms: float = 1.0,
    publish_lag_ms: float = 0.05,
    shared: int = 0,
    ramp_ms: list[float] | None = None,
) -> dict[str, Any]:
    def encoded(values_ms: list[float]) -> str:
        h = hist.new()
        for value in values_ms:
            h.record_value(int(value * 1000))
        return hist.encode(h)

    return {
        "latency": encoded(latency_ms),
        "connect": encoded([1.0]),
        "reconnect": encoded([]),
        "ramp": encoded(ramp_ms or []),
        "client_lag": encoded([client_lag_ms] * len(latency_ms)),
        "publish_lag": encoded([publish_lag_ms]),
        "fanout": fanout or {},
        "rx_clocks": rx_clocks or {"kernel": 1},
        "steady_from_ns": 10**18,
        "delivered": len(latency_ms) + len(ramp_ms or []),
        "counts": {"published": 0, "errors": 0, "opened": 1},
        "error_reasons": {},
        "ledgers": [],
        "subscribers": [],
        "health": {"lag": encoded([0.1]), "cpu_samples": [10.0]},
        "rx_stamps": {"reads": len(latency_ms), "unstamped_reads": 0, "shared_stamps": shared},
    }


def summary(finals: list[dict[str, Any]], exprs: tuple[str, ...] = ("p99<50ms",)) -> dict[str, Any]:
    load = {"users": 2, "publish_rate": 1.0, "channels": 1, "payload_bytes": 256, "duration_s": 10.0, "processes": 1}
    return build(
        provider="socketio",
        target="embedded",
        load=load,
        finals=finals,
        gates=gates.parse_all(list(exprs)),
        run_id="r",
        started_at="",
    )


def test_fan_out_is_the_slowest_delivery_of_each_message_over_every_generator() -> None:
    a = final(latency_ms=[1.0], fanout={"p.0": [[0, 1, 2], [5000, 7000, 9000]]})
    b = final(latency_ms=[1.0], fanout={"p.0": [[0, 1], [8000, 2000]], "q.0": [[0], [4000]]})
    merged = fanout_histogram([a, b])
    assert merged.get_total_count() == 4  # (p.0, 0..2) and (q.0, 0)
    got = [hist.percentiles(merged, [q])[0] for q in (25, 50, 75, 100)]
    assert [round(v, -2) for v in got] == [4000, 7000, 8000, 9000]  # 3 significant digits
    s = summary([a, b], ("fanout_p99<10ms",))
    assert s["fanout_ms"]["count"] == 4 and s["gates"][0]["passed"]
    assert "fan-out ms" in format_text(s, "folder")


def test_arrival_clock_is_named_or_mixed() -> None:
    assert summary([final(latency_ms=[1.0])])["rx_clock"] == "kernel"
    mixed = summary([final(latency_ms=[1.0]), final(latency_ms=[1.0], rx_clocks={"callback": 3})])
    assert mixed["rx_clock"] == "mixed" and mixed["rx_clocks"] == {"kernel": 1, "callback": 3}


def test_a_generator_that_kept_up_is_trustworthy_whatever_its_loop_did() -> None:
    s = summary([final(latency_ms=[2.0] * 100, client_lag_ms=300.0)])  # read late, but stamped by the kernel
    assert s["harness"]["trustworthy"], s["harness"]["reasons"]
    assert s["client_lag_ms"]["max"] >= 299


def test_late_publishing_late_reading_and_shared_stamps_are_each_a_reason() -> None:
    late_publisher = summary([final(latency_ms=[2.0] * 100, publish_lag_ms=12.0)])["harness"]
    assert not late_publisher["trustworthy"] and "publisher lag" in late_publisher["reasons"][0]
    far_behind = summary([final(latency_ms=[2.0] * 100, client_lag_ms=1500.0)])["harness"]
    assert not far_behind["trustworthy"] and "client lag" in far_behind["reasons"][0]
    shared = summary([final(latency_ms=[2.0] * 100, shared=2)])["harness"]
    assert not shared["trustworthy"] and "2 messages" in shared["reasons"][0]
    assert summary([final(latency_ms=[2.0] * 100, shared=1)])["harness"]["trustworthy"]  # 1% is tolerated


def test_a_run_that_never_reached_its_steady_state_says_so() -> None:
    s = summary([final(latency_ms=[], ramp_ms=[3.0, 4.0])])
    assert s["latency_ms"]["count"] == 0 and s["ramp_ms"]["count"] == 2
    assert not s["harness"]["trustworthy"] and "steady state" in s["harness"]["reasons"][-1]
    assert not s["passed"]  # a latency gate with no steady deliveries fails
