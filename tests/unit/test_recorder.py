from __future__ import annotations

from harness import hist, probe
from harness.accounting import account
from harness.recorder import Recorder


def test_deliveries_are_timed_from_the_due_time_and_accounted() -> None:
    rec = Recorder("run")
    ledger = rec.ledger("pub.0", "c")
    sub = rec.new_subscriber("c")
    sub.open_window(0)
    due = 1_000_000_000
    for seq in range(5):
        assert rec.published(ledger, due + seq) == seq
    for seq, delay_ms in [(0, 3), (1, 7), (1, 7), (3, 20)]:
        rec.delivered_to(sub, probe.encode("run", "pub.0", seq, due, 64), due + delay_ms * 1_000_000)
    rec.interval_report()
    final = rec.final_report(end_ns=due + 10**9)
    merged = hist.decode(final["latency"])
    assert merged.get_total_count() == 3
    assert abs(hist.latency_summary(merged)["max"] - 20.0) <= 0.02  # 3 significant digits
    totals = account(final["ledgers"], final["subscribers"])
    assert (totals.expected, totals.delivered, totals.lost, totals.duplicated) == (5, 3, 2, 1)


def test_foreign_runs_and_malformed_payloads_are_counted_not_recorded() -> None:
    rec = Recorder("run")
    sub = rec.new_subscriber("c")
    rec.delivered_to(sub, probe.encode("other-run", "p", 0, 5), 10**9)
    rec.delivered_to(sub, "\x00not-an-envelope", 10**9)
    rec.delivered_to(sub, {"json": "object"}, 10**9)
    assert rec.counts["foreign"] == 1
    assert rec.counts["errors"] == 2
    assert rec.delivered == 0
    assert sum(rec.error_reasons.values()) == 2


def test_interval_reports_carry_deltas_and_fold_into_the_cumulative_histogram() -> None:
    rec = Recorder("run")
    ledger = rec.ledger("p", "c")
    sub = rec.new_subscriber("c")
    rec.published(ledger, 1)
    rec.delivered_to(sub, probe.encode("run", "p", 0, 10**9), 10**9 + 2_000_000)
    first = rec.interval_report()
    second = rec.interval_report()
    assert first["delivered"] == 1 and first["counts"]["published"] == 1
    assert second["delivered"] == 0 and second["counts"]["published"] == 0
    assert hist.decode(second["latency"]).get_total_count() == 0
    assert rec.latency.get_total_count() == 1


def test_drops_and_resubscribes_open_and_close_windows() -> None:
    rec = Recorder("run")
    sub = rec.new_subscriber("c")
    sub.open_window(100)
    rec.dropped(sub)
    rec.dropped(sub)  # a second drop while already down is not counted again
    rec.resubscribed(sub)
    assert rec.counts["dropped"] == 1 and rec.counts["reconnected"] == 1
    assert len(sub.windows) == 2 and sub.subscribed
