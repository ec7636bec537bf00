"""A reader's ``['todos']`` query, as TanStack Query keeps it: when to refetch and when data is fresh.

The todo-app workload (issue 14) models a React client: each app event invalidates the query and the
client refetches ``GET /api/todos``. This module is that client's decision logic and nothing else, with
no I/O and no clock (times come in as arguments), so its counts can be tested exactly; the loop's driver
(``harness/loop/app.py``) does the GETs it asks for.

Policies (``--refetch``):

* ``none``: events never refetch (only ``event_ms`` is measured; nothing becomes fresh);
* ``always``: every event starts its own GET at once, however many are in flight;
* ``coalesced`` (TanStack's behaviour with the default ``cancelRefetch: false`` on a query already
  fetching): at most one GET in flight; every invalidation that arrives meanwhile marks the query
  invalid again, and exactly one follow-up GET starts when the one in flight completes.

Freshness: a mutation is *pending* at a reader from the moment its event reached the reader; it becomes
fresh when a GET response that shows it completes. Only pending mutations can become fresh, so a response
that races ahead of the event does not count: ``fresh_ms`` is the time until the reader, told of a
change, holds data that shows it, and is never below ``event_ms``. The coalesced follow-up guarantees
such a response comes. A response shows a mutation of todo ``id`` (``Listing.shows``) when

* it lists a todo whose ``probe`` is the mutation's envelope (the todo as that mutation left it); or
* it lists todo ``id`` with the envelope of a later mutation of the same todo (one writer mutates a todo,
  on its own schedule, so a later intended time is a later state: superseded is shown); or
* it does not list todo ``id``, the reader was told the todo was deleted, and the GET *started* after
  that delete's event arrived. (Absence proves nothing otherwise: a GET started earlier may have read
  the store before the todo was created, and an app whose list leaves a todo out is stale, not fresh.)

``stale_ms`` (``--stale-ms``) is TanStack's ``staleTime`` applied to event-driven refetches: for that
long after a list was fetched the reader holds it as fresh; an event then starts no GET but owes one
when the window ends (``wake_at_ns``, then ``wake``), so a reader makes at most one GET per window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from harness.measure import probe

NONE, ALWAYS, COALESCED = "none", "always", "coalesced"
POLICIES = (NONE, ALWAYS, COALESCED)
DEFAULT_POLICY = COALESCED
#: why a mutation a refetching reader was told of was never seen fresh by the end of the run
STALE_FAILED = "the last refetch failed"
STALE_UNANSWERED = "no refetch answered after its event"
STALE_UNLISTED = "refetches answered without it"
STALE_REASONS = {
    STALE_FAILED: "stale_refetch_failed",
    STALE_UNANSWERED: "stale_unanswered",
    STALE_UNLISTED: "stale_unlisted",
}
"""reason -> its counter (``AppCounts``)"""


@dataclass(frozen=True, slots=True)
class Fresh:
    """One mutation that became fresh at a reader: its intended time, its event's arrival and the
    completion of the response that first showed it (ns since the epoch)."""

    envelope: str
    due_ns: int
    event_ns: int
    fresh_ns: int

    @property
    def fresh_us(self) -> int:
        return (self.fresh_ns - self.due_ns) // 1000


@dataclass(frozen=True, slots=True)
class Pending:
    """A mutation a reader was told of: its intended time, its event's arrival (ns since the epoch) and
    the todo it changed (None: the event named none, so only its envelope can show it)."""

    due_ns: int
    event_ns: int
    todo_id: int | None = None


class Listing:
    """What one GET answered: the envelopes its todos carry, and each todo's id -> its envelope."""

    __slots__ = ("_due", "by_id", "probes")

    def __init__(self, todos: Iterable[Mapping[str, object]]) -> None:
        self.probes: set[str] = set()
        self.by_id: dict[int, object] = {}
        self._due: dict[int, int] = {}
        for todo in todos:
            envelope, todo_id = todo.get("probe"), todo.get("id")
            if isinstance(envelope, str):
                self.probes.add(envelope)
            if isinstance(todo_id, int) and not isinstance(todo_id, bool):
                self.by_id[todo_id] = envelope

    @classmethod
    def of(cls, listed: Listing | Iterable[object]) -> Listing:
        """A listing, or one made of bare envelopes (todos without ids)."""
        return listed if isinstance(listed, Listing) else cls({"probe": envelope} for envelope in listed)

    def shows(self, envelope: str, told: Pending, started_ns: int | None, deleted_ns: int | None) -> bool:
        """Whether this answer, from a GET started at ``started_ns``, shows the mutation (module doc);
        ``deleted_ns``: when the event that deleted the mutation's todo reached the reader, if one did."""
        if envelope in self.probes:
            return True
        if told.todo_id is None:
            return False
        if told.todo_id not in self.by_id:
            return deleted_ns is not None and started_ns is not None and started_ns >= deleted_ns
        return self._due_of(told.todo_id) >= told.due_ns

    def _due_of(self, todo_id: int) -> int:
        """The intended time of the mutation a listed todo carries; -1 when it carries none (decoded once)."""
        due = self._due.get(todo_id)
        if due is None:
            try:
                due = probe.decode(self.by_id[todo_id]).due_ns
            except probe.ProbeError:
                due = -1
            self._due[todo_id] = due
        return due


@dataclass(slots=True)
class TodosQuery:
    """One reader's query state. ``invalidate`` and ``settled`` return how many GETs to start now."""

    policy: str = DEFAULT_POLICY
    #: ``--stale-ms`` in ns: how long a fetched list counts as fresh (0: every event refetches)
    stale_ns: int = 0
    in_flight: int = 0
    #: an invalidation arrived while a GET was in flight (coalesced): one follow-up is owed
    invalid: bool = False
    #: envelope -> the mutations this reader was told of and has not seen yet
    pending: dict[str, Pending] = field(default_factory=dict)
    #: todo id -> when the event that deleted it arrived (ns)
    deleted: dict[int, int] = field(default_factory=dict)
    invalidations: int = 0
    #: GETs started: by invalidations, coalesced follow-ups and retries
    started: int = 0
    #: invalidations that did not start a GET of their own (folded into the one in flight's follow-up)
    coalesced: int = 0
    #: GETs started again because one failed while mutations were pending
    retries: int = 0
    #: the last GET to complete failed (why a mutation still pending at the end was never seen fresh)
    last_failed: bool = False
    #: when the last GET that answered a list completed (ns)
    last_ok_ns: int = 0
    #: a refetch owed when the list goes stale (``stale_ns``), at this time (ns); 0: none owed
    wake_at_ns: int = 0
    #: invalidations that waited for the list to go stale instead of refetching at once
    deferred: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"refetch policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")

    def invalidate(
        self, envelope: str | None, due_ns: int, event_ns: int, todo_id: int | None = None, deletes: bool = False
    ) -> int:
        """An app event about ``todo_id`` (``deletes``: deleting it) reached the reader at ``event_ns``;
        ``envelope`` (None: an event without one) is then pending. Returns the GETs to start (0 or 1); when
        the list is still fresh (``stale_ns``) none, and ``wake_at_ns`` says when to call ``wake``."""
        self.invalidations += 1
        if deletes and todo_id is not None:
            self.deleted.setdefault(todo_id, event_ns)
        if envelope is not None and envelope not in self.pending:
            self.pending[envelope] = Pending(due_ns, event_ns, todo_id)
        if self.policy == NONE:
            return 0
        if self.wake_at_ns or (self.stale_ns and self.last_ok_ns and event_ns < self.last_ok_ns + self.stale_ns):
            self.deferred += 1
            if not self.wake_at_ns:
                self.wake_at_ns = self.last_ok_ns + self.stale_ns
            return 0
        return self._fetch_now()

    def wake(self) -> int:
        """The list went stale with a refetch owed: the GETs to start (0 or 1)."""
        if not self.wake_at_ns:
            return 0
        self.wake_at_ns = 0
        return self._fetch_now()

    def _fetch_now(self) -> int:
        if self.policy == COALESCED and self.in_flight:
            self.invalid = True
            self.coalesced += 1
            return 0
        return self._start()

    def settled(
        self, listed: Listing | Iterable[object] | None, done_ns: int, started_ns: int | None = None
    ) -> tuple[list[Fresh], int]:
        """A GET started at ``started_ns`` completed at ``done_ns``: ``listed`` is what it answered (a
        ``Listing``, or the bare ``probe`` fields of its todos), None when it failed. Returns the mutations
        it made fresh and the GETs to start now (a coalesced follow-up, or a retry of a failed GET that
        leaves mutations pending)."""
        assert self.in_flight > 0, "a GET settled that was never started"
        self.in_flight -= 1
        self.last_failed = listed is None
        fresh: list[Fresh] = []
        if listed is not None:
            self.last_ok_ns = done_ns
            if self.pending:
                listing = Listing.of(listed)
                for envelope, told in list(self.pending.items()):
                    deleted_ns = self.deleted.get(told.todo_id) if told.todo_id is not None else None
                    if listing.shows(envelope, told, started_ns, deleted_ns):
                        del self.pending[envelope]
                        fresh.append(Fresh(envelope, told.due_ns, told.event_ns, done_ns))
        retry = listed is None and bool(self.pending)
        if self.policy == COALESCED and self.invalid:
            self.invalid = False
            return fresh, self._start()
        if retry and not (self.policy == COALESCED and self.in_flight):
            self.retries += 1
            return fresh, self._start()
        return fresh, 0

    def stale_reasons(self) -> Counter[str]:
        """Why each mutation still pending never became fresh (``STALE_REASONS``): the last GET failed; a
        list answered after its event without it; or no GET answered after its event (the end cut it off)."""
        if self.last_failed:
            return Counter({STALE_FAILED: len(self.pending)})
        return Counter(
            STALE_UNLISTED if self.last_ok_ns > told.event_ns else STALE_UNANSWERED for told in self.pending.values()
        )

    def _start(self) -> int:
        self.in_flight += 1
        self.started += 1
        return 1
