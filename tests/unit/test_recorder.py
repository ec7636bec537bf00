from __future__ import annotations

from harness.measure import hist, probe
from harness.measure.accounting import account
from harness.measure.recorder import Recorder


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


def test_a_resubscribe_before_the_first_window_counts_nothing() -> None:
    rec = Recorder("run")
    sub = rec.new_subscriber("c")
    rec.dropped(sub)  # lost while its first connect was still being made
    rec.resubscribed(sub)
    assert rec.counts["dropped"] == 0 and rec.counts["reconnected"] == 0 and not sub.windows


def test_ramp_up_is_kept_apart_and_fan_out_is_each_messages_slowest_delivery() -> None:
    rec = Recorder("run")
    rec.steady_from_ns = 2 * 10**9
    ledger = rec.ledger("p", "c")
    subs = [rec.new_subscriber("c") for _ in range(3)]
    for sub in subs:
        sub.open_window(0)
    ramp_due, steady_due = 10**9, 3 * 10**9
    rec.published(ledger, ramp_due + 7_000_000, ramp_due)  # late, but in the ramp: not publisher lag
    rec.published(ledger, steady_due + 3_000_000, steady_due)
    for sub, delay_ms in zip(subs, (4, 9, 6), strict=True):
        rec.delivered_to(sub, probe.encode("run", "p", 0, ramp_due), ramp_due + delay_ms * 1_000_000)
        rec.delivered_to(sub, probe.encode("run", "p", 1, steady_due), steady_due + delay_ms * 1_000_000)
    interval = rec.interval_report()
    assert hist.decode(interval["latency"]).get_total_count() == 6  # the interval log shows every delivery
    final = rec.final_report(end_ns=4 * 10**9)
    assert hist.decode(final["latency"]).get_total_count() == 3
    assert hist.decode(final["ramp"]).get_total_count() == 3
    assert final["fanout"] == {"p": [[1], [9000]]}  # steady messages only, the slowest of three
    publish_lag = hist.decode(final["publish_lag"])
    assert publish_lag.get_total_count() == 1 and abs(publish_lag.get_max_value() - 3000) <= 3
    assert final["steady_from_ns"] == 2 * 10**9


def test_client_lag_is_handled_minus_arrival_and_never_part_of_latency() -> None:
    import time

    rec = Recorder("run")
    sub = rec.new_subscriber("c")
    sub.open_window(0)
    arrival = time.time_ns() - 250_000_000  # handled 250 ms after its bytes arrived
    due = arrival - 5_000_000
    rec.delivered_to(sub, probe.encode("run", "p", 0, due), arrival)
    rec.interval_report()
    assert abs(hist.latency_summary(rec.latency)["max"] - 5.0) <= 0.01
    assert 250.0 <= hist.latency_summary(rec.client_lag)["max"] < 1000.0


def test_slowest_delta_ships_new_messages_and_grown_ones_once() -> None:
    """The live view's fan-out: each call gives the messages new since the last one and the earlier ones
    whose slowest delivery grew (an earlier sequence number arriving late included), nothing twice."""
    from harness.measure.recorder import Slowest

    slowest = Slowest(10)
    slowest.note(10, 500)
    slowest.note(11, 700)
    assert slowest.delta() == [[10, 11], [500, 700]]
    assert slowest.delta() == [[], []]
    slowest.note(10, 400)  # not slower: nothing to say
    slowest.note(11, 900)  # slower: said again
    slowest.note(13, 300)  # 12 skipped (no delivery timed here yet)
    slowest.note(8, 250)  # an earlier message, after later ones
    assert slowest.delta() == [[8, 11, 13], [250, 900, 300]]
    slowest.note(12, 100)
    assert slowest.delta() == [[12], [100]]
    assert slowest.to_wire() == [[8, 10, 11, 12, 13], [250, 500, 900, 100, 300]]
