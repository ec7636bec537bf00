"""The todo-app workload's figures in one process, and summary.json ``todo_app`` from every generator's.

Kept apart from the recorder, which stays the push-latency instrument it is: the app's events are
ordinary timed deliveries there (so ``event_ms`` is ``latency_ms``, with its exact accounting), and this
adds what only the app has: the mutation's round trip, time to fresh data and the refetch stampede.
Like the recorder it is touched only on the loop thread and follows the same steady-state rule: a
mutation due before ``steady_from_ns`` counts in no percentile (``ramp_fresh`` counts its fresh samples).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from harness.measure import hist
from harness.measure.records import AppCounts, AppSummary, AppWire, FinalReport, LatencySummary
from harness.measure.refetch import STALE_REASONS, Fresh, TodosQuery

COUNTERS: tuple[str, ...] = tuple(AppCounts.__annotations__)
#: a mutation kind (loop/app.py ``KINDS``) -> its counter
KIND_COUNTERS = {"create": "created", "update": "updated", "delete": "deleted"}
MAX_UI_SAMPLES = 200_000  # the live-UI feed is drained every second; cap it if nobody drains it


class AppStats:
    def __init__(self, policy: str, stale_ms: float = 0.0, optimistic: bool = False) -> None:
        self.policy = policy
        self.stale_ns = int(stale_ms * 1_000_000)
        self.optimistic = optimistic
        self.rollbacks: Counter[str] = Counter()
        self.mutation_rate = 0.0  # what this process's writers mutate per second (set as they start)
        self.mutation = hist.new()  # POST round trip, us
        self.fresh = hist.new()  # intended time -> the refetch response that showed the mutation, us
        self.after_event = hist.new()  # the event's arrival -> the same response, us: what refetching adds
        self.refetch = hist.new()  # GET /api/todos round trip, us
        self.counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self.queries: list[TodosQuery] = []
        #: mutations due before this (ns) are ramp-up, as the recorder's deliveries (its ``steady_from_ns``)
        self.steady_from_ns = 0
        #: refetch round trips and fresh times (ms) for Locust's live UI, swapped out every second
        self.ui_refetch_ms: list[float] = []
        self.ui_fresh_ms: list[float] = []

    def reader(self) -> TodosQuery:
        query = TodosQuery(self.policy, self.stale_ns)
        self.queries.append(query)
        self.counts["readers"] += 1
        return query

    def mutated(self, due_ns: int, round_trip_ns: int, ok: bool, kind: str = "create") -> None:
        self.counts["mutations" if ok else "mutation_errors"] += 1
        if ok:
            self.counts[KIND_COUNTERS[kind]] += 1
        if ok and due_ns >= self.steady_from_ns:
            _record(self.mutation, round_trip_ns // 1000)

    def applied_optimistically(self) -> None:
        self.counts["optimistic_applied"] += 1

    def rolled_back(self, reason: str) -> None:
        self.counts["rollbacks"] += 1
        self.rollbacks[reason] += 1

    def refetched(self, round_trip_ns: int, ok: bool) -> None:
        self.counts["refetches"] += 1
        if not ok:
            self.counts["refetch_errors"] += 1
        _record(self.refetch, round_trip_ns // 1000)
        if len(self.ui_refetch_ms) < MAX_UI_SAMPLES:
            self.ui_refetch_ms.append(round_trip_ns / 1e6)

    def made_fresh(self, samples: list[Fresh]) -> None:
        for sample in samples:
            if sample.fresh_ns < sample.event_ns:
                self.counts["fresh_before_event"] += 1
            if sample.due_ns < self.steady_from_ns:
                self.counts["ramp_fresh"] += 1
                continue
            self.counts["fresh"] += 1
            _record(self.fresh, sample.fresh_us)
            if len(self.ui_fresh_ms) < MAX_UI_SAMPLES:
                self.ui_fresh_ms.append(sample.fresh_us / 1000)
            _record(self.after_event, (sample.fresh_ns - sample.event_ns) // 1000)

    def take_ui(self) -> tuple[list[float], list[float]]:
        """(refetch ms, fresh ms) since the last call, for the live UI (a swap: safe from another thread)."""
        refetch, self.ui_refetch_ms = self.ui_refetch_ms, []
        fresh, self.ui_fresh_ms = self.ui_fresh_ms, []
        return refetch, fresh

    def in_flight(self) -> int:
        """GETs in flight plus mutations told to a refetching reader and not yet fresh: the drain waits."""
        return sum(q.in_flight + (len(q.pending) if q.policy != "none" else 0) for q in self.queries)

    def to_wire(self) -> AppWire:
        counts = Counter(self.counts)
        for query in self.queries:
            counts["invalidations"] += query.invalidations
            counts["coalesced"] += query.coalesced
            counts["retries"] += query.retries
            counts["deferred"] += query.deferred
            if query.pending and query.policy != "none":
                counts["stale"] += len(query.pending)
                for reason, n in query.stale_reasons().items():
                    counts[STALE_REASONS[reason]] += n
        wire: AppWire = {
            "policy": self.policy,
            "mutation_rate": self.mutation_rate,
            "mutation": hist.encode(self.mutation),
            "fresh": hist.encode(self.fresh),
            "after_event": hist.encode(self.after_event),
            "refetch": hist.encode(self.refetch),
            "counts": cast(AppCounts, {name: int(counts[name]) for name in COUNTERS}),
        }
        if self.optimistic:
            wire["rollbacks_by_reason"] = dict(self.rollbacks)
        return wire


def _record(histogram: Any, value_us: int) -> None:
    histogram.record_value(min(max(value_us, 1), hist.HIGHEST_US))


def summary_section(finals: list[FinalReport], event_ms: LatencySummary, duration_s: float) -> AppSummary | None:
    """summary.json ``todo_app`` from the generators that ran the app workload; None when none did."""
    wires = [f["todo_app"] for f in finals if "todo_app" in f]
    if not wires:
        return None
    counts: Counter[str] = Counter()
    rollbacks: Counter[str] = Counter()
    for wire in wires:
        counts.update(wire["counts"])
        rollbacks.update(wire.get("rollbacks_by_reason", {}))
    mutation = hist.merge([w["mutation"] for w in wires])
    refetch = hist.merge([w["refetch"] for w in wires])
    api = hist.new()
    hist.add(api, mutation)
    hist.add(api, refetch)
    requests = counts["refetches"]
    section: AppSummary = {
        "policy": wires[0]["policy"],
        "mutation_rate": sum(w["mutation_rate"] for w in wires),
        "readers": counts["readers"],
        "mutations": counts["mutations"],
        "mutation_errors": counts["mutation_errors"],
        "mutations_by_kind": {kind: counts[counter] for kind, counter in KIND_COUNTERS.items()},
        "mutation_ms": hist.latency_summary(mutation),
        "event_ms": event_ms,
        "fresh_ms": hist.latency_summary(hist.merge([w["fresh"] for w in wires])),
        "after_event_ms": hist.latency_summary(hist.merge([w["after_event"] for w in wires])),
        "api_ms": hist.latency_summary(api),
        "refetch": {
            "requests": requests,
            "per_s": round(requests / duration_s, 3) if duration_s > 0 else 0.0,
            "latency_ms": hist.latency_summary(refetch),
            "errors": counts["refetch_errors"],
            "coalesced": counts["coalesced"],
            "retries": counts["retries"],
            "deferred": counts["deferred"],
        },
        "invalidations": counts["invalidations"],
        "fresh": counts["fresh"],
        "ramp_fresh": counts["ramp_fresh"],
        "stale": counts["stale"],
        "stale_by_reason": {reason: counts[key] for reason, key in STALE_REASONS.items() if counts[key]},
        "fresh_before_event": counts["fresh_before_event"],
    }
    if any("rollbacks_by_reason" in wire for wire in wires):
        section["optimistic"] = {
            "applied": counts["optimistic_applied"],
            "rolled_back": counts["rollbacks"],
            "rollbacks_by_reason": dict(rollbacks),
        }
    return section
