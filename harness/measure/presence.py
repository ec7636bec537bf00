"""Presence in one process (``--presence``: the app's readers join as members), and summary.json
``todo_app.presence`` from every generator's.

Why it matters: each member who joins is news to every member already there, so N members joining make
N(N-1)/2 member_added events and each client's share grows with N. What a user wants to know is how long
"X is online" takes to reach the others (``member_added_ms``, ``member_removed_ms``) and how hard that
storm hits each client (member_added per second at a member, members joining per second).

Presence events carry no send time of their own, so a member carries its join time in its info
(:func:`member_info`: this run's id, the host's clock tag, the wall-clock time the join request was
sent, in microseconds); a receiver on the same clock times the member_added it gets against its kernel
receive time. A member's leave time is known only to its own process (:meth:`PresenceStats.left`), which times the
member_removed events of its own members. Anything without a comparable time is counted, never timed.
Touched only on the loop thread.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from harness.measure import hist
from harness.measure.records import PresenceCounts, PresenceRates, PresenceSummary, PresenceWire

COUNTERS: tuple[str, ...] = tuple(PresenceCounts.__annotations__)
NS_PER_S = 1_000_000_000


def member_info(run_id: str, clock: str, join_ns: int) -> dict[str, Any]:
    """What a member carries as its presence info/data: enough for a receiver to time its arrival. The join
    time goes in microseconds: an integer JavaScript reads exactly (nanoseconds since 1970 exceed 2^53, and
    pusher-js or ably-js would hand on a rounded value)."""
    return {"rtb": run_id, "clock": clock, "join_us": join_ns // 1000}


class Tally:
    """One member's member_added events per second (the join storm as that client feels it)."""

    __slots__ = ("member_id", "seconds")

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.seconds: Counter[int] = Counter()


class PresenceStats:
    def __init__(self, run_id: str = "", clock: str = "") -> None:
        self.run_id = run_id
        self.clock = clock
        self.counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self.join = hist.new()  # join request sent -> joined, with the member list, us
        self.added = hist.new()  # a member's join request sent -> its member_added at another member, us
        self.removed = hist.new()  # a member's leave sent -> its member_removed at another member, us
        self.join_seconds: Counter[int] = Counter()
        self.event_seconds: Counter[int] = Counter()
        self.tallies: list[Tally] = []
        #: member id -> when it left (ns), for this process's own members
        self.left_ns: dict[str, int] = {}

    def tally(self, member_id: str) -> Tally:
        tally = Tally(member_id)
        self.tallies.append(tally)
        return tally

    def joined(self, join_ns: int, done_ns: int) -> None:
        self.counts["members"] += 1
        self.join_seconds[join_ns // NS_PER_S] += 1
        _record(self.join, (done_ns - join_ns) // 1000)

    def join_failed(self) -> None:
        self.counts["join_failed"] += 1

    def listed(self, tally: Tally, members: dict[str, Any]) -> None:
        """The members a new member was told of on joining (itself excluded): ours are accounted."""
        for member_id, info in members.items():
            if member_id != tally.member_id:
                self.counts["listed" if self._ours(info) else "foreign"] += 1

    def member_added(self, tally: Tally, member_id: str, info: Any, rx_ns: int) -> None:
        self.counts["events"] += 1
        second = rx_ns // NS_PER_S  # the join storm: what users joining do to every member
        tally.seconds[second] += 1
        self.event_seconds[second] += 1
        if member_id == tally.member_id:
            return
        if not self._ours(info):
            self.counts["foreign"] += 1
            return
        self.counts["added"] += 1
        join_us = info.get("join_us")
        if info.get("clock") == self.clock and type(join_us) is int:
            _record(self.added, rx_ns // 1000 - join_us)
        else:
            self.counts["untimed"] += 1

    def member_removed(self, tally: Tally, member_id: str, rx_ns: int) -> None:
        """Counted and timed, not in the storm's rates: the run's end paces the leaves (``PresenceRoom``)."""
        self.counts["events"] += 1
        self.counts["removed"] += 1
        left = self.left_ns.get(member_id)
        if left is None:
            self.counts["untimed"] += 1
        else:
            _record(self.removed, (rx_ns - left) // 1000)

    def left(self, member_id: str, ns: int) -> None:
        self.left_ns[member_id] = ns

    def _ours(self, info: Any) -> bool:
        return isinstance(info, dict) and info.get("rtb") == self.run_id

    def to_wire(self) -> PresenceWire:
        return {
            "counts": cast(PresenceCounts, {name: int(self.counts[name]) for name in COUNTERS}),
            "join": hist.encode(self.join),
            "added": hist.encode(self.added),
            "removed": hist.encode(self.removed),
            "join_seconds": {str(s): n for s, n in sorted(self.join_seconds.items())},
            "event_seconds": {str(s): n for s, n in sorted(self.event_seconds.items())},
            "client_peaks": [max(t.seconds.values(), default=0) for t in self.tallies],
        }


def _record(histogram: Any, value_us: int) -> None:
    histogram.record_value(min(max(value_us, 1), hist.HIGHEST_US))


def _rates(seconds: Counter[int]) -> PresenceRates:
    """The busiest second, and the total over the span from the first to the last second (at least 1 s)."""
    if not seconds:
        return {"peak": 0.0, "mean": 0.0}
    span = max(seconds) - min(seconds) + 1
    return {"peak": float(max(seconds.values())), "mean": round(sum(seconds.values()) / span, 3)}


def _merge_seconds(wires: list[PresenceWire], key: str) -> Counter[int]:
    merged: Counter[int] = Counter()
    for wire in wires:
        for second, n in cast(dict[str, int], wire[key]).items():  # type: ignore[literal-required]
            merged[int(second)] += n
    return merged


def summary_section(wires: list[PresenceWire]) -> PresenceSummary | None:
    """summary.json ``todo_app.presence`` from the generators whose readers were members; None when none were."""
    if not wires:
        return None
    counts: Counter[str] = Counter()
    for wire in wires:
        counts.update(wire["counts"])
    members = counts["members"]
    expected = members * (members - 1)
    peaks = [p for wire in wires for p in wire["client_peaks"]]
    return {
        "members": members,
        "join_failed": counts["join_failed"],
        "join_ms": hist.latency_summary(hist.merge([w["join"] for w in wires])),
        "member_added": counts["added"],
        "listed": counts["listed"],
        "expected": expected,
        "unaccounted": expected - counts["added"] - counts["listed"],
        "member_removed": counts["removed"],
        "member_added_ms": hist.latency_summary(hist.merge([w["added"] for w in wires])),
        "member_removed_ms": hist.latency_summary(hist.merge([w["removed"] for w in wires])),
        "untimed": counts["untimed"],
        "foreign": counts["foreign"],
        "joins_per_s": _rates(_merge_seconds(wires, "join_seconds")),
        "events": counts["events"],
        "events_per_s": _rates(_merge_seconds(wires, "event_seconds")),
        "client_events_per_s": {
            "peak": float(max(peaks, default=0)),
            "mean": round(sum(peaks) / len(peaks), 3) if peaks else 0.0,
        },
    }


def format_lines(section: PresenceSummary | None) -> list[str]:
    """The printout's presence lines."""
    if section is None:
        return []
    added, removed = section["member_added_ms"], section["member_removed_ms"]
    return [
        f"  presence             members {section['members']} (join failed {section['join_failed']})  "
        f"member_added {section['member_added']} + listed {section['listed']} of {section['expected']}  "
        f"member_removed {section['member_removed']}",
        f"  member_added ms      p50 {added['p50']}  p99 {added['p99']}  max {added['max']}  (n={added['count']})",
        f"  member_removed ms    p50 {removed['p50']}  p99 {removed['p99']}  max {removed['max']}  "
        f"(n={removed['count']})",
        f"  presence join storm  joins/s peak {section['joins_per_s']['peak']:g}  member_added/s peak "
        f"{section['events_per_s']['peak']:g}  per client peak {section['client_events_per_s']['peak']:g} "
        f"(mean {section['client_events_per_s']['mean']:g})",
    ]
