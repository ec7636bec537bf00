"""DESIGN rule 3: a delivery whose publisher ran on another host's clock is timed apart (``cross_clock``),
counted, and kept out of the latency, fan-out and gates; one clock per host, named by its boot id."""

from __future__ import annotations

from harness.loop import clock
from harness.measure import gates, hist, probe
from harness.measure.accounting import account
from harness.measure.recorder import Recorder
from harness.measure.records import FinalReport, Load
from harness.measure.summary import build, format_text

T = 1_767_225_600_000_000_000
HERE, THERE = "34de93b1", "9f00aa17"
LOAD: Load = {"users": 2, "publish_rate": 10.0, "channels": 1, "payload_bytes": 64, "duration_s": 1.0, "processes": 2}


def test_the_clock_is_the_boot_id_and_the_host_name_only_without_one() -> None:
    assert clock.clock_id_from("34de93b1-a974-4180-b35c-d1450b640289\n", "box") == "34de93b1"
    assert clock.clock_id_from("", "box") == clock.clock_id_from("", "box") != clock.clock_id_from("", "other")
    assert len(clock.clock_id_from("", "box")) == clock.CLOCK_ID_CHARS
    assert clock.clock_id() == clock.clock_id()  # one per process (and per host)
    assert clock.clock_id().isalnum() and len(clock.clock_id()) == clock.CLOCK_ID_CHARS


def test_a_stream_id_carries_its_clock_and_still_makes_a_valid_envelope() -> None:
    stream = probe.stream_id("1a2b3c4d", 3, HERE)
    assert stream == "1a2b3c4d.3@34de93b1"
    assert probe.clock_of(stream) == HERE and probe.clock_of("1a2b3c4d.3") == ""
    assert probe.stream_id("1a2b3c4d", 3, "") == "1a2b3c4d.3"
    envelope = probe.encode("run", stream, 7, T, 64)
    assert len(envelope) == 64 and probe.decode(envelope).publisher_id == stream


def _generator(clock_id: str, *, publish: bool, latencies_us: list[int], local_us: list[int]) -> FinalReport:
    """A generator on host ``clock_id`` with one subscriber receiving stream P (published on HERE) and an
    untagged stream Q (taken as its own clock)."""
    rec = Recorder("run", clock_id)
    rec.steady_from_ns = T
    sub = rec.new_subscriber("c")
    sub.open_window(T - 1)
    stream = probe.stream_id("p", 0, HERE)
    ledger = rec.ledger(stream, "c") if publish else None
    for seq, latency_us in enumerate(latencies_us):
        due = T + seq * 1000
        if ledger is not None:
            rec.published(ledger, due, due)
        rec.delivered_to(sub, probe.encode("run", stream, seq, due, 64), due + latency_us * 1000)
    for seq, latency_us in enumerate(local_us):
        rec.delivered_to(sub, probe.encode("run", "q.0", seq, T, 64), T + latency_us * 1000)
    rec.interval_report()
    return rec.final_report(end_ns=T + 10**9)


def test_a_subscriber_times_another_hosts_stream_apart_and_accounts_it_as_usual() -> None:
    publisher_host = _generator(HERE, publish=True, latencies_us=[1000, 1100, 1200], local_us=[])
    other_host = _generator(THERE, publish=False, latencies_us=[1500, 1600, 1700], local_us=[900])
    assert "cross_clock" not in publisher_host
    assert hist.decode(publisher_host["latency"]).get_total_count() == 3
    assert sorted(publisher_host["fanout"]) == ["p.0@34de93b1"]
    crossed = hist.decode(other_host["cross_clock"])
    assert crossed.get_total_count() == 3
    assert (crossed.get_min_value(), crossed.get_max_value()) == (1500, 1700)
    latency = hist.decode(other_host["latency"])  # only the stream on its own clock
    assert (latency.get_total_count(), latency.get_max_value()) == (1, 900)
    assert sorted(other_host["fanout"]) == ["q.0"]
    assert other_host["delivered"] == 4
    totals = account([*publisher_host["ledgers"]], [*publisher_host["subscribers"], *other_host["subscribers"]])
    assert (totals.expected, totals.delivered, totals.lost) == (7, 7, 0)  # Q has no ledger: outside, yet counted

    summary = build(
        provider="socketio",
        target="external",
        load=LOAD,
        finals=[publisher_host, other_host],
        gates=gates.parse_all(["p99<1.5ms"]),
        run_id="run",
        started_at="2026-01-01T00:00:00Z",
    )
    assert summary["latency_ms"]["count"] == 4 and summary["latency_ms"]["max"] == 1.2
    assert summary["fanout_ms"]["count"] == 4  # p's three messages timed on HERE, and q's one
    assert summary["gates"][0]["passed"]  # the cross-clock 1.7 ms never reaches a gate
    cross = summary.get("cross_clock_ms")
    assert cross is not None and cross["count"] == 3 and cross["min"] == 1.5 and cross["max"] == 1.7
    text = format_text(summary, "reports/x")
    [line] = [ln for ln in text.splitlines() if ln.lstrip().startswith("cross-clock ms")]
    assert "(n=3)" in line and "max 1.7" in line
    assert "clock-dependent" in text


def test_a_run_on_one_host_shows_no_cross_clock_section() -> None:
    final = _generator(HERE, publish=True, latencies_us=[1000], local_us=[])
    summary = build(
        provider="socketio",
        target="external",
        load=LOAD,
        finals=[final],
        gates=[],
        run_id="run",
        started_at="2026-01-01T00:00:00Z",
    )
    assert "cross_clock_ms" not in summary and "nodes" not in summary
    text = format_text(summary, "reports/x")
    assert "cross-clock" not in text and "clock-dependent" not in text and "  node " not in text


def test_a_recorder_without_a_clock_or_a_stream_without_a_tag_shares_the_clock() -> None:
    untagged_recorder = _generator("", publish=True, latencies_us=[1000, 1000], local_us=[])
    assert "cross_clock" not in untagged_recorder
    assert hist.decode(untagged_recorder["latency"]).get_total_count() == 2
