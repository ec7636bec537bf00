"""The reader's refetch policy (harness/measure/refetch.py): exact GET counts and freshness, no I/O."""

from __future__ import annotations

import pytest

from harness.measure.refetch import ALWAYS, COALESCED, NONE, Fresh, Listing, TodosQuery

MS = 1_000_000


def env(k: int) -> str:
    return f"rtb1|run|w.0|{k}|{1000 + k}|"


def burst(query: TodosQuery, n: int, at_ns: int = 0) -> int:
    """``n`` events 5 ms apart (a burst of 20 in 100 ms); the GETs they start."""
    return sum(query.invalidate(env(k), due_ns=at_ns + k * 5 * MS, event_ns=at_ns + k * 5 * MS + MS) for k in range(n))


def test_coalesced_burst_with_a_slow_fetch_makes_two_gets() -> None:
    query = TodosQuery(COALESCED)
    assert burst(query, 20) == 1  # the first event's GET; 19 more arrive while it is in flight
    assert (query.in_flight, query.coalesced, query.invalid) == (1, 19, True)
    # the slow first GET (200 ms) was answered before most mutations were stored: it lists the first only
    fresh, start = query.settled([env(0)], done_ns=200 * MS)
    assert [f.envelope for f in fresh] == [env(0)]
    assert start == 1  # exactly one follow-up for the 19 coalesced invalidations
    fresh, start = query.settled([env(k) for k in range(20)], done_ns=400 * MS)
    assert len(fresh) == 19 and start == 0
    assert (query.started, query.in_flight, query.pending) == (2, 0, {})


def test_always_burst_makes_one_get_per_event() -> None:
    query = TodosQuery(ALWAYS)
    assert burst(query, 20) == 20
    assert (query.in_flight, query.coalesced) == (20, 0)
    everything = [env(k) for k in range(20)]
    made_fresh = 0
    for i in range(20):
        fresh, start = query.settled(everything, done_ns=(300 + i) * MS)
        made_fresh += len(fresh)
        assert start == 0
    assert (made_fresh, query.started, query.pending) == (20, 20, {})


def test_none_never_fetches_and_keeps_everything_pending() -> None:
    query = TodosQuery(NONE)
    assert burst(query, 5) == 0
    assert (query.started, query.coalesced, len(query.pending)) == (0, 0, 5)


def test_fresh_is_measured_from_the_intended_time_to_the_response() -> None:
    query = TodosQuery(COALESCED)
    assert query.invalidate(env(1), due_ns=10 * MS, event_ns=12 * MS) == 1
    fresh, _ = query.settled([None, "not an envelope", env(1)], done_ns=40 * MS)
    assert fresh == [Fresh(env(1), 10 * MS, 12 * MS, 40 * MS)]
    assert fresh[0].fresh_us == 30_000


def test_a_response_racing_ahead_of_the_event_does_not_make_it_fresh() -> None:
    """The GET for event 0 lists mutation 1 before event 1 arrived: 1 is fresh only from a response
    completed after its event, so fresh_ms is never below event_ms."""
    query = TodosQuery(COALESCED)
    query.invalidate(env(0), due_ns=0, event_ns=MS)
    fresh, start = query.settled([env(0), env(1)], done_ns=5 * MS)
    assert [f.envelope for f in fresh] == [env(0)] and start == 0
    assert query.invalidate(env(1), due_ns=2 * MS, event_ns=6 * MS) == 1
    fresh, _ = query.settled([env(0), env(1)], done_ns=9 * MS)
    assert fresh == [Fresh(env(1), 2 * MS, 6 * MS, 9 * MS)]
    assert all(f.fresh_ns >= f.event_ns for f in fresh)


def test_a_response_missing_a_pending_mutation_leaves_it_pending() -> None:
    query = TodosQuery(COALESCED)
    query.invalidate(env(0), due_ns=0, event_ns=MS)
    fresh, start = query.settled([], done_ns=3 * MS)
    assert (fresh, start) == ([], 0)
    assert env(0) in query.pending  # stale: the summary counts it


@pytest.mark.parametrize("policy", [COALESCED, ALWAYS])
def test_a_failed_get_is_retried_while_mutations_are_pending(policy: str) -> None:
    query = TodosQuery(policy)
    query.invalidate(env(0), due_ns=0, event_ns=MS)
    fresh, start = query.settled(None, done_ns=2 * MS)
    assert (fresh, start, query.retries) == ([], 1, 1)
    fresh, start = query.settled([env(0)], done_ns=4 * MS)
    assert len(fresh) == 1 and start == 0 and query.retries == 1


def test_a_failed_coalesced_get_with_invalidations_starts_one_follow_up_not_two() -> None:
    query = TodosQuery(COALESCED)
    burst(query, 3)
    _, start = query.settled(None, done_ns=50 * MS)
    assert (start, query.started, query.retries) == (1, 2, 0)


def test_duplicate_events_stay_one_pending_mutation_with_the_first_arrival() -> None:
    query = TodosQuery(COALESCED)
    query.invalidate(env(0), due_ns=0, event_ns=MS)
    query.invalidate(env(0), due_ns=0, event_ns=3 * MS)
    fresh, start = query.settled([env(0)], done_ns=5 * MS)
    assert fresh == [Fresh(env(0), 0, MS, 5 * MS)] and start == 1  # the duplicate still invalidated


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="coalesced"):
        TodosQuery("sometimes")


def at(k: int, due_ms: int) -> str:
    """Mutation ``k``'s envelope, intended at ``due_ms``."""
    return f"rtb1|run|w.0|{k}|{due_ms * MS}|"


def test_an_update_is_shown_by_its_own_envelope_or_a_later_mutation_of_the_same_todo() -> None:
    query = TodosQuery(ALWAYS)
    query.invalidate(at(1, 10), due_ns=10 * MS, event_ns=11 * MS, todo_id=5)
    query.invalidate(at(2, 20), due_ns=20 * MS, event_ns=21 * MS, todo_id=6)
    # todo 5 already carries a later update (due 30 ms); todo 6 still its creation (due 5 ms)
    listing = Listing([{"id": 5, "probe": at(3, 30)}, {"id": 6, "probe": at(0, 5)}])
    fresh, _ = query.settled(listing, done_ns=25 * MS, started_ns=22 * MS)
    assert [f.envelope for f in fresh] == [at(1, 10)]
    assert list(query.pending) == [at(2, 20)]  # an older state of todo 6 does not show its update


def test_a_delete_is_shown_only_by_a_get_started_after_its_event() -> None:
    query = TodosQuery(ALWAYS)
    query.invalidate(at(1, 10), due_ns=10 * MS, event_ns=12 * MS, todo_id=5, deletes=True)
    query.invalidate(at(1, 10), due_ns=10 * MS, event_ns=12 * MS, todo_id=5, deletes=True)
    empty = Listing([{"id": 4, "probe": None}])
    fresh, _ = query.settled(empty, done_ns=14 * MS, started_ns=11 * MS)  # may have read before todo 5 existed
    assert fresh == [] and at(1, 10) in query.pending
    fresh, _ = query.settled(empty, done_ns=16 * MS, started_ns=13 * MS)
    assert fresh == [Fresh(at(1, 10), 10 * MS, 12 * MS, 16 * MS)]


def test_a_todo_left_out_of_the_list_without_a_delete_stays_stale() -> None:
    """An app whose list omits a todo is stale, not fresh; once its delete is told, the update it
    superseded is shown by a list without it."""
    query = TodosQuery(ALWAYS)
    query.invalidate(at(1, 10), due_ns=10 * MS, event_ns=12 * MS, todo_id=5)
    fresh, _ = query.settled(Listing([]), done_ns=16 * MS, started_ns=13 * MS)
    assert fresh == [] and at(1, 10) in query.pending
    query.invalidate(at(2, 20), due_ns=20 * MS, event_ns=22 * MS, todo_id=5, deletes=True)
    fresh, _ = query.settled(Listing([]), done_ns=26 * MS, started_ns=23 * MS)
    assert [f.envelope for f in fresh] == [at(1, 10), at(2, 20)]


def test_events_inside_the_stale_window_owe_one_get_when_it_ends() -> None:
    query = TodosQuery(COALESCED, stale_ns=100 * MS)
    assert query.invalidate(env(0), due_ns=0, event_ns=MS) == 1  # nothing fetched yet: fetch at once
    query.settled([env(0)], done_ns=10 * MS)
    assert sum(query.invalidate(env(k), due_ns=k * MS, event_ns=(10 + k) * MS) for k in range(1, 6)) == 0
    assert (query.wake_at_ns, query.deferred) == (110 * MS, 5)
    assert query.wake() == 1 and query.wake() == 0  # one GET for the five, once
    fresh, start = query.settled([env(k) for k in range(6)], done_ns=120 * MS)
    assert (len(fresh), start, query.started) == (5, 0, 2)
    assert query.invalidate(env(9), due_ns=300 * MS, event_ns=301 * MS) == 1  # stale by then: at once
