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
fresh when a GET response that lists it (a todo whose ``probe`` is the mutation's envelope) completes.
Only pending mutations can become fresh, so a response that races ahead of the event does not count:
``fresh_ms`` is the time until the reader, told of a change, holds data that shows it, and is never
below ``event_ms``. The coalesced follow-up guarantees such a response comes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

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


@dataclass(slots=True)
class TodosQuery:
    """One reader's query state. ``invalidate`` and ``settled`` return how many GETs to start now."""

    policy: str = DEFAULT_POLICY
    in_flight: int = 0
    #: an invalidation arrived while a GET was in flight (coalesced): one follow-up is owed
    invalid: bool = False
    #: envelope -> (due ns, event arrival ns) of mutations this reader was told of and has not seen yet
    pending: dict[str, tuple[int, int]] = field(default_factory=dict)
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

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"refetch policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")

    def invalidate(self, envelope: str | None, due_ns: int, event_ns: int) -> int:
        """An app event reached the reader at ``event_ns``; ``envelope`` (None: an event without one) is
        then pending. Returns the GETs to start (0 or 1)."""
        self.invalidations += 1
        if envelope is not None and envelope not in self.pending:
            self.pending[envelope] = (due_ns, event_ns)
        if self.policy == NONE:
            return 0
        if self.policy == COALESCED and self.in_flight:
            self.invalid = True
            self.coalesced += 1
            return 0
        return self._start()

    def settled(self, probes: Iterable[object] | None, done_ns: int) -> tuple[list[Fresh], int]:
        """A GET completed at ``done_ns``: ``probes`` are the ``probe`` fields of the todos it listed, or
        None when it failed. Returns the mutations it made fresh and the GETs to start now (a coalesced
        follow-up, or a retry of a failed GET that leaves mutations pending)."""
        assert self.in_flight > 0, "a GET settled that was never started"
        self.in_flight -= 1
        self.last_failed = probes is None
        if probes is not None:
            self.last_ok_ns = done_ns
        fresh: list[Fresh] = []
        if probes is not None and self.pending:
            for envelope in probes:
                if isinstance(envelope, str) and (told := self.pending.pop(envelope, None)) is not None:
                    fresh.append(Fresh(envelope, told[0], told[1], done_ns))
        retry = probes is None and bool(self.pending)
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
            STALE_UNLISTED if self.last_ok_ns > event_ns else STALE_UNANSWERED for _, event_ns in self.pending.values()
        )

    def _start(self) -> int:
        self.in_flight += 1
        self.started += 1
        return 1
