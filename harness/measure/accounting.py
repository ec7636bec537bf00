"""Every message accounted (DESIGN rule 4): per (publisher stream, subscriber) delivered, lost, dup, order.

Subscribers track what they received compactly (a contiguous range plus the exceptions); publishers
keep a ledger of when each sequence number was actually sent. Only at the end are the two joined:
a message is *expected* by a subscriber when it was sent while that subscriber was subscribed, and
anything it received outside those windows is counted as expected too (it evidently was), so that
``delivered + lost == expected`` always holds exactly. Both halves are plain dicts on the wire, so
the join works the same in one process or on a Locust master fed by many workers.

Behind a load balancer each subscription window also names the server node its connection landed on
(``X-Rtbench-Node``), and the join gives each node the same exact totals over its windows.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.measure.records import LedgerWire, StreamWire, SubscriberWire

#: the nodes section's name for windows whose connection named no node, in a run where others did
UNNAMED_NODE = "(unnamed)"


class StreamTracker:
    """What one subscriber received from one publisher stream, in O(losses) memory."""

    __slots__ = ("cross_clock", "dup", "early", "first", "missing", "next", "ooo")

    def __init__(self, cross_clock: bool = False) -> None:
        #: the stream's due times are on another host's clock: its latencies are kept apart (the recorder's)
        self.cross_clock = cross_clock
        self.first = -1  # first sequence number received
        self.next = -1  # one past the highest received
        self.missing: set[int] = set()  # gaps inside [first, next)
        self.early: set[int] = set()  # late arrivals below ``first``
        self.dup = 0
        self.ooo = 0

    def receive(self, seq: int) -> bool:
        """Note one arrival; True when it is the first arrival of ``seq`` (so it should be timed)."""
        nxt = self.next
        if seq == nxt:
            self.next = nxt + 1
            return True
        if nxt < 0:
            self.first, self.next = seq, seq + 1
            return True
        if seq > nxt:
            self.missing.update(range(nxt, seq))
            self.next = seq + 1
            return True
        if seq >= self.first:
            if seq in self.missing:
                self.missing.discard(seq)
                self.ooo += 1
                return True
            self.dup += 1
            return False
        if seq in self.early:
            self.dup += 1
            return False
        self.early.add(seq)
        self.ooo += 1
        return True

    @property
    def received(self) -> int:
        if self.next < 0:
            return 0
        return self.next - self.first - len(self.missing) + len(self.early)

    def received_between(self, lo: int, hi: int) -> int:
        """How many distinct sequence numbers in [lo, hi) arrived."""
        if self.next < 0 or hi <= lo:
            return 0
        count = max(0, min(hi, self.next) - max(lo, self.first))
        count -= sum(1 for m in self.missing if lo <= m < hi)
        count += sum(1 for e in self.early if lo <= e < hi)
        return count

    def has(self, seq: int) -> bool:
        if self.next < 0:
            return False
        if self.first <= seq < self.next:
            return seq not in self.missing
        return seq in self.early

    def to_wire(self) -> StreamWire:
        return {
            "first": self.first,
            "next": self.next,
            "missing": sorted(self.missing),
            "early": sorted(self.early),
            "dup": self.dup,
            "ooo": self.ooo,
        }

    @classmethod
    def from_wire(cls, data: StreamWire) -> StreamTracker:
        tracker = cls()
        tracker.first, tracker.next = int(data["first"]), int(data["next"])
        tracker.missing, tracker.early = set(data["missing"]), set(data["early"])
        tracker.dup, tracker.ooo = int(data["dup"]), int(data["ooo"])
        return tracker


class Ledger:
    """When each message of one publisher stream was handed to the provider (index = seq).

    The send times are a packed int64 array, 8 bytes a message instead of a list's ~36 (pointer and
    int object): a soak run at 1,000 messages/s keeps an hour of sends in 29 MB. They stay exact, each
    one, because the join (``account``) counts sends between subscription-window edges that other
    processes chose and this one never sees."""

    __slots__ = ("channel", "failed", "sent_ns", "stream_id")

    def __init__(self, stream_id: str, channel: str, sent_ns: Iterable[int] = (), failed: Iterable[int] = ()) -> None:
        self.stream_id = stream_id
        self.channel = channel
        self.sent_ns: array[int] = array("q", sent_ns)
        self.failed: set[int] = set(failed)

    def to_wire(self) -> LedgerWire:
        return {
            "stream_id": self.stream_id,
            "channel": self.channel,
            "sent_ns": self.sent_ns.tolist(),
            "failed": sorted(self.failed),
        }

    @classmethod
    def from_wire(cls, data: LedgerWire) -> Ledger:
        return cls(str(data["stream_id"]), str(data["channel"]), data["sent_ns"], data["failed"])


@dataclass
class SubscriberRecord:
    """One subscriber: which channel, when it was subscribed (and on which server node), and what arrived
    from each stream."""

    channel: str
    windows: list[list[int]] = field(default_factory=list)  # [start_ns, end_ns]; end -1 while open
    streams: dict[str, StreamTracker] = field(default_factory=dict)
    #: lost without being asked and not back yet: if it never comes back, what it missed since is lost
    down: bool = False
    #: the server node of the current connection (None: not named); each window keeps the node it opened on
    node: str | None = None
    window_nodes: list[str | None] = field(default_factory=list)  # parallel to windows; missing = None
    #: the recorder's steady-state latency histogram of ``node`` (None while no node is named: no cost)
    node_latency: Any = None

    def open_window(self, now_ns: int) -> None:
        if not self.windows or self.windows[-1][1] >= 0:
            self.window_nodes.extend([None] * (len(self.windows) - len(self.window_nodes)))
            self.windows.append([now_ns, -1])
            self.window_nodes.append(self.node)

    def move_to(self, node: str | None, now_ns: int) -> None:
        """The connection is now on ``node``. A window open on another node ends here and a new one opens
        on this one (a reconnect closes its window first, so this only splits a window whose connection
        changed without a drop)."""
        if node == self.node:
            return
        subscribed = self.subscribed
        if subscribed:
            self.close_window(now_ns)
        self.node = node
        if subscribed:
            self.open_window(now_ns)

    def close_window(self, now_ns: int) -> None:
        if self.windows and self.windows[-1][1] < 0:
            self.windows[-1][1] = now_ns

    @property
    def subscribed(self) -> bool:
        return bool(self.windows) and self.windows[-1][1] < 0

    def to_wire(self, end_ns: int) -> SubscriberWire:
        """Windows end at ``end_ns`` while open, and so does the last one of a subscriber still down: a
        connection lost for good does not excuse the messages it missed."""
        windows = [[start, end if end >= 0 else end_ns] for start, end in self.windows]
        if self.down and windows:
            windows[-1][1] = end_ns
        wire: SubscriberWire = {
            "channel": self.channel,
            "windows": windows,
            "streams": {sid: t.to_wire() for sid, t in self.streams.items()},
        }
        if any(node is not None for node in self.window_nodes):  # only runs whose servers name nodes
            wire["nodes"] = self.window_nodes[: len(windows)] + [None] * (len(windows) - len(self.window_nodes))
        return wire


def in_flight(subscribers: Iterable[SubscriberRecord], ledgers: Iterable[Ledger]) -> int:
    """Messages the subscribed ``subscribers`` are known to be owed and still waiting for: past the
    highest they received, up to what this process's ``ledgers`` sent in their window (failed publishes
    never come) or, for a stream published elsewhere, up to the highest a fellow subscriber of the channel
    received. Gaps below that are past losses, not in flight. The final drain waits for these: a
    slow server still writing the last message is late, not lost."""
    open_subscribers = [s for s in subscribers if s.subscribed]
    tails: dict[tuple[str, str], int] = {}  # (channel, stream) -> one past the highest seq known sent
    for sub in open_subscribers:
        for stream_id, tracker in sub.streams.items():
            key = (sub.channel, stream_id)
            tails[key] = max(tails.get(key, 0), tracker.next)
    by_stream = {ledger.stream_id: ledger for ledger in ledgers}
    for ledger in by_stream.values():
        tails[(ledger.channel, ledger.stream_id)] = len(ledger.sent_ns)
    streams_of: dict[str, list[tuple[str, int]]] = {}
    for (channel, stream_id), tail in tails.items():
        streams_of.setdefault(channel, []).append((stream_id, tail))
    owed = 0
    for sub in open_subscribers:
        for stream_id, tail in streams_of.get(sub.channel, ()):
            got, sent = sub.streams.get(stream_id), by_stream.get(stream_id)
            if sent is not None:  # owed from the first send in this window
                first = bisect_left(sent.sent_ns, sub.windows[-1][0])
            elif got is not None:
                first = got.first
            else:  # published elsewhere and never seen here: nothing is known about it
                continue
            after = max(first, got.next if got is not None else first)
            if after < tail:
                failed = sum(1 for seq in sent.failed if after <= seq < tail) if sent is not None else 0
                owed += tail - after - failed
    return owed


@dataclass
class NodeTotals:
    """One server node's share: the subscription windows on it, and the messages sent in them (expected),
    received (delivered) and never received (lost). ``delivered + lost == expected`` per node too;
    arrivals outside every window belong to no node (they are in the run's totals only)."""

    subscribers: int = 0  # distinct subscribers with a window on this node
    windows: int = 0
    expected: int = 0
    delivered: int = 0

    @property
    def lost(self) -> int:
        return self.expected - self.delivered


@dataclass
class Totals:
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unexpected: int = 0  # arrivals outside any subscription window (already inside expected)
    publish_failed: int = 0  # publishes the provider refused or did not acknowledge (each owed, so lost)
    #: per server node, when any subscriber's connection named one (empty otherwise)
    nodes: dict[str, NodeTotals] = field(default_factory=dict)


def account(ledgers: list[LedgerWire], subscribers: list[SubscriberWire]) -> Totals:
    """Join publisher ledgers with subscriber records (both in wire form) into exact totals."""
    by_channel: dict[str, list[Ledger]] = {}
    for raw in ledgers:
        ledger = Ledger.from_wire(raw)
        by_channel.setdefault(ledger.channel, []).append(ledger)
    totals = Totals(publish_failed=sum(len(ledger.failed) for group in by_channel.values() for ledger in group))
    named = any(sub.get("nodes") for sub in subscribers)
    for sub in subscribers:
        windows = [(int(a), int(b)) for a, b in sub["windows"]]
        trackers = {sid: StreamTracker.from_wire(raw) for sid, raw in sub["streams"].items()}
        nodes: list[NodeTotals | None] = [*_window_nodes(sub, totals.nodes)] if named else [None] * len(windows)
        in_window = 0
        for ledger in by_channel.get(str(sub["channel"]), []):
            tracker = trackers.get(ledger.stream_id)
            for (start, end), node in zip(windows, nodes, strict=True):
                lo, hi = bisect_left(ledger.sent_ns, start), bisect_left(ledger.sent_ns, end)
                got = tracker.received_between(lo, hi) if tracker is not None else 0
                totals.expected += hi - lo  # a failed publish is still owed: it never arrives, it is lost
                in_window += got
                if node is not None:
                    node.expected += hi - lo
                    node.delivered += got
        ledgered = {ledger.stream_id for ledger in by_channel.get(str(sub["channel"]), [])}
        received = 0
        for stream_id, tracker in trackers.items():
            received += tracker.received
            totals.duplicated += tracker.dup
            totals.out_of_order += tracker.ooo
            if stream_id not in ledgered:
                totals.expected += len(tracker.missing)  # no ledger (server-stamped ids): each gap is a loss
        totals.delivered += received
        outside = received - in_window  # streams with no ledger here fall wholly outside
        totals.unexpected += outside
        totals.expected += outside
    totals.lost = totals.expected - totals.delivered
    return totals


def _window_nodes(sub: SubscriberWire, into: dict[str, NodeTotals]) -> list[NodeTotals]:
    """Each of ``sub``'s windows' node totals in ``into`` (created as they are first seen), its windows
    and the subscriber counted on each."""
    names = sub.get("nodes") or []
    out: list[NodeTotals] = []
    for index in range(len(sub["windows"])):
        name = names[index] if index < len(names) else None
        node = into.setdefault(UNNAMED_NODE if name is None else str(name), NodeTotals())
        node.windows += 1
        if all(seen is not node for seen in out):
            node.subscribers += 1
        out.append(node)
    return out
