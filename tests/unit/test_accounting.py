from __future__ import annotations

from harness.measure.accounting import Ledger, StreamTracker, SubscriberRecord, account, in_flight


def test_tracker_counts_gaps_late_arrivals_and_duplicates() -> None:
    t = StreamTracker()
    firsts = [t.receive(s) for s in (5, 6, 9, 7, 7, 3, 3, 10)]
    assert firsts == [True, True, True, True, False, True, False, True]
    assert t.received == 6  # 3, 5, 6, 7, 9, 10
    assert t.dup == 2 and t.ooo == 2
    assert t.missing == {8}
    assert t.received_between(0, 8) == 4 and t.received_between(8, 11) == 2
    assert t.has(3) and not t.has(8) and not t.has(4)
    assert StreamTracker.from_wire(t.to_wire()).to_wire() == t.to_wire()


def _ledger(n: int, channel: str = "c", step: int = 10, failed: set[int] | None = None) -> dict:
    return Ledger("pub.0", channel, [1000 + i * step for i in range(n)], failed or set()).to_wire()


def _subscriber(channel: str, windows: list[list[int]], seqs: list[int]) -> dict:
    record = SubscriberRecord(channel, windows=windows)
    tracker = StreamTracker()
    for s in seqs:
        tracker.receive(s)
    if seqs:
        record.streams["pub.0"] = tracker
    return record.to_wire(end_ns=10**9)


def test_expected_counts_only_messages_sent_while_subscribed() -> None:
    # 10 messages at t=1000..1090; subscribed from 1025 to 1065 -> seqs 3, 4, 5, 6 expected
    totals = account([_ledger(10)], [_subscriber("c", [[1025, 1065]], [3, 4, 6])])
    assert (totals.expected, totals.delivered, totals.lost) == (4, 3, 1)


def test_arrivals_outside_the_window_are_expected_too() -> None:
    totals = account([_ledger(10)], [_subscriber("c", [[1025, 1065]], [2, 3, 4, 5, 6])])
    assert (totals.expected, totals.delivered, totals.lost, totals.unexpected) == (5, 5, 0, 1)


def test_reconnect_windows_and_other_channels() -> None:
    subs = [
        _subscriber("c", [[1000, 1030], [1060, 1100]], [0, 1, 2, 6, 8, 9]),  # 7 lost, 3-5 not expected
        _subscriber("other", [[1000, 1100]], []),  # no ledger on its channel: nothing expected
    ]
    totals = account([_ledger(10)], subs)
    assert (totals.expected, totals.delivered, totals.lost) == (7, 6, 1)


def test_failed_publishes_are_still_owed_and_counted() -> None:
    """A publish the provider refused is lost to every subscriber subscribed then (a dead target must not
    pass), unless it arrived after all."""
    ledger = _ledger(5, failed={1, 2})
    totals = account([ledger], [_subscriber("c", [[0, 10**6]], [0, 2, 3, 4])])
    assert (totals.expected, totals.delivered, totals.lost, totals.publish_failed) == (5, 4, 1, 2)


def test_a_subscriber_down_for_good_owes_what_was_published_after_its_drop() -> None:
    record = SubscriberRecord("c")
    record.open_window(1000)
    record.close_window(1025)  # dropped after seq 0-2 (sent at 1000, 1010, 1020)
    record.down = True
    wire = record.to_wire(end_ns=10**6)
    assert wire["windows"] == [[1000, 10**6]]
    record.down = False  # back again: the time away is not owed
    assert record.to_wire(end_ns=10**6)["windows"] == [[1000, 1025]]


def test_invariant_delivered_plus_lost_equals_expected() -> None:
    subs = [_subscriber("c", [[1000 + k, 1100 - k]], list(range(k % 3, 10, 2))) for k in range(30)]
    totals = account([_ledger(10)], subs)
    assert totals.delivered + totals.lost == totals.expected
    assert totals.lost >= 0


def _open_subscriber(channel: str, start_ns: int, seqs: list[int], stream_id: str = "pub.0") -> SubscriberRecord:
    record = SubscriberRecord(channel, windows=[[start_ns, -1]])
    tracker = record.streams[stream_id] = StreamTracker()
    for seq in seqs:
        tracker.receive(seq)
    return record


def test_in_flight_is_the_tail_a_subscriber_still_waits_for_from_this_process_sends() -> None:
    ledger = Ledger("pub.0", "c", [1000 + i * 10 for i in range(10)], failed={9})
    behind = _open_subscriber("c", 1000, [0, 1, 2, 4, 5])  # 3 is a past loss; 6, 7, 8 in flight; 9 failed
    late_joiner = SubscriberRecord("c", windows=[[1075, -1]])  # owed 8 (sent at 1080) only
    done = _open_subscriber("c", 1000, list(range(9)))
    assert in_flight([behind], [ledger]) == 3
    assert in_flight([late_joiner], [ledger]) == 1
    assert in_flight([done], [ledger]) == 0
    assert in_flight([behind, late_joiner, done], [ledger]) == 4
    other_channel = _open_subscriber("d", 1000, [])
    assert in_flight([other_channel], [ledger]) == 0


def test_in_flight_of_a_stream_published_elsewhere_is_what_a_fellow_subscriber_already_has() -> None:
    ahead = _open_subscriber("c", 1000, [0, 1, 2, 3, 4], stream_id="far.0")
    behind = _open_subscriber("c", 1000, [0, 1], stream_id="far.0")
    never_saw_it = SubscriberRecord("c", windows=[[1000, -1]])
    assert in_flight([ahead, behind, never_saw_it], []) == 3  # nothing is known of what it was owed


def test_closed_or_dropped_subscribers_wait_for_nothing() -> None:
    ledger = Ledger("pub.0", "c", [1000, 1010, 1020])
    closed = SubscriberRecord("c", windows=[[1000, 1030]])
    dropped = _open_subscriber("c", 1000, [0])
    dropped.close_window(1015)
    assert in_flight([closed, dropped], [ledger]) == 0
