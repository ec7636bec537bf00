"""One process's measurements: latency and connect histograms, counters, and the accounting state.

Everything here is touched only on the bridge's event-loop thread (DESIGN rule 3), so the hot path
(``delivered``) takes no lock. Other threads ask for ``interval_report`` / ``final_report`` through
the bridge, which runs them on that same thread.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Mapping
from typing import Any

from harness.measure import hist, probe, reasons
from harness.measure.accounting import Ledger, StreamTracker, SubscriberRecord, in_flight
from harness.measure.health import HealthSamples
from harness.measure.records import Counts, FinalReport, IntervalReport, LiveInterval
from harness.measure.server_stamps import Stamped

MAX_UI_SAMPLES = 200_000  # the live-UI feed is drained every second; cap it if nobody drains it
MAX_ERROR_REASONS = 1000  # distinct error reasons kept; the final report shows the 20 most common
OTHER_REASONS = "(other reasons)"
SLOWEST_CAP_US = 2**32 - 2  # the largest latency a fan-out slot holds (uint32 slot = latency + 1)
COUNTER_NAMES: tuple[str, ...] = tuple(Counts.__annotations__)  # "published", "errors", ...


class Slowest:
    """One publisher stream's slowest delivery (us) per sequence number in this process, for fanout_ms.

    Sequence numbers are consecutive from a publisher, so they index a packed uint32 array from the first
    one seen: 4 bytes a message where a dict entry took ~100. Every value stays: the collector takes each
    message's maximum over every generator, which a local histogram could not give. A slot holds
    latency + 1, 0 while no delivery with a latency of 0 or more was timed here (as the dict's missing
    key did); latencies past ~71 minutes are capped there, far beyond the histograms' 1 hour range."""

    __slots__ = ("base", "changed", "shipped_to", "values")

    def __init__(self, first_seq: int) -> None:
        self.base = first_seq
        self.values: array[int] = array("I")
        #: the live view (``delta``): sequence numbers below this were shipped; those of them changed since
        self.shipped_to = first_seq
        self.changed: set[int] = set()

    def note(self, seq: int, latency_us: int) -> None:
        slot = latency_us + 1 if latency_us < SLOWEST_CAP_US else SLOWEST_CAP_US + 1
        values, i = self.values, seq - self.base
        if i == len(values):  # the usual case: the next message
            values.append(slot if slot > 0 else 0)
            return
        if i < 0:  # an earlier message arrived after later ones
            values[0:0] = array("I", bytes(4 * -i))
            self.base, i = seq, 0
        elif i > len(values):
            values.extend(array("I", bytes(4 * (i - len(values)))))
            values.append(slot if slot > 0 else 0)
            return
        if slot > values[i]:
            values[i] = slot
            if seq < self.shipped_to:
                self.changed.add(seq)

    def delta(self) -> list[list[int]]:
        """``to_wire``'s shape for what changed since the last call: messages new since, and earlier ones
        whose slowest delivery grew (the live view keeps each message's maximum as these arrive)."""
        end = self.base + len(self.values)
        seqs = sorted(self.changed | set(range(max(self.shipped_to, self.base), end)))
        self.shipped_to, self.changed = end, set()
        timed = [(seq, self.values[seq - self.base] - 1) for seq in seqs if self.values[seq - self.base]]
        return [[seq for seq, _ in timed], [v for _, v in timed]]

    def to_wire(self) -> list[list[int]]:
        """[sequence numbers, slowest latency us of each], messages with a timed delivery only."""
        timed = [(self.base + i, v - 1) for i, v in enumerate(self.values) if v]
        return [[seq for seq, _ in timed], [v for _, v in timed]]


class Recorder:
    def __init__(self, run_id: str = "", clock_id: str = "") -> None:
        self.run_id = run_id
        #: this host's clock tag (``probe.stream_id``): streams tagged with another are timed apart; '' = any
        self.clock_id = clock_id
        self.latency = hist.new()  # cumulative steady state, folded in from ``_interval`` at each interval
        self.ramp = hist.new()  # deliveries due before the steady state began (spawning, then --warmup)
        self.client_lag = hist.new()  # handled - arrival: how far behind the arrivals the generator ran
        self.publish_lag = hist.new()  # actual send - due time: how late the open-model publisher sent
        #: deliveries of streams published on another host's clock (DESIGN rule 3): clock-dependent, apart
        self.cross_clock = hist.new()
        #: per server node, steady-state latency; filled only when connections name their node
        self.node_latency: dict[str, Any] = {}
        #: deliveries due before this time (ns) are ramp-up; 0 = no ramp (a Recorder used on its own)
        self.steady_from_ns = 0
        #: per publisher stream, per sequence number: this process's slowest delivery (us), for fanout_ms
        self.fanout: dict[str, Slowest] = {}
        self.rx_clocks: Counter[str] = Counter()  # subscribers per arrival clock (kernel, read, callback)
        self.connect = hist.new()
        self.reconnect = hist.new()
        self.reconnecting = 0  # subscribers dropped and not yet back (the final drain waits for them)
        self._interval = hist.new()
        self._interval_ramp = hist.new()
        self._interval_connect = hist.new()
        self.counts: Counter[str] = Counter({name: 0 for name in COUNTER_NAMES})
        self.delivered = 0
        self.error_reasons: Counter[str] = Counter()
        self.subscribers: list[SubscriberRecord] = []
        self.ledgers: dict[str, Ledger] = {}
        self.health = HealthSamples()
        self.ui_samples: list[float] = []  # latency ms, swapped out by the gevent side for Locust's UI
        self._interval_start_ms = int(time.time() * 1000)
        self._last_counts: Counter[str] = Counter()
        self._last_delivered = 0
        self._last_gaps = 0

    # -- hot path ---------------------------------------------------------------------------------
    def delivered_to(self, subscriber: SubscriberRecord, data: object, recv_ns: int) -> None:
        """One arrival at a subscriber (``recv_ns``: when its bytes reached the socket): decode, account,
        time. Called from provider callbacks, possibly long after the arrival when the loop is busy; that
        delay is recorded apart as client lag and never added to the latency."""
        lag_us = (time.time_ns() - recv_ns) // 1000
        if not self.client_lag.record_value(lag_us if lag_us > 0 else 1):
            self.counts["unrecordable"] += 1
        try:
            message = probe.decode(data)
        except probe.ProbeError as exc:
            if isinstance(data, Stamped):
                self._server_stamped(subscriber, data, recv_ns)
            else:
                self.error(str(exc))
            return
        if message.run_id != self.run_id:
            self.counts["foreign"] += 1
            return
        tracker = subscriber.streams.get(message.publisher_id)
        if tracker is None:
            tracker = subscriber.streams[message.publisher_id] = StreamTracker(self._other_clock(message.publisher_id))
        if tracker.receive(message.seq):
            latency_us = (recv_ns - message.due_ns) // 1000
            if tracker.cross_clock:
                self._time_cross_clock(latency_us)
                return
            self._time(subscriber, latency_us, message.due_ns)
            if message.due_ns < self.steady_from_ns:
                return
            slowest = self.fanout.get(message.publisher_id)
            if slowest is None:
                slowest = self.fanout[message.publisher_id] = Slowest(message.seq)
            slowest.note(message.seq, latency_us)

    def _server_stamped(self, subscriber: SubscriberRecord, data: Stamped, recv_ns: int) -> None:
        """``--timestamp-field``: timed against the server's clock; gaps in sequential ids are losses."""
        self.counts["server_clock"] += 1
        if data.seq is not None:
            tracker = subscriber.streams.get(data.stream)
            if tracker is None:
                tracker = subscriber.streams[data.stream] = StreamTracker()
            if not tracker.receive(data.seq):
                return
        latency_us = (recv_ns - data.sent_ns) // 1000
        if latency_us <= 0:
            self.counts["clock_skew"] += 1  # the server's clock is ahead of ours
        self._time(subscriber, latency_us, data.sent_ns)

    def _time(self, subscriber: SubscriberRecord, latency_us: int, due_ns: int) -> None:
        self.delivered += 1
        value = latency_us if latency_us > 0 else 1
        if due_ns >= self.steady_from_ns:
            histogram = self._interval
            node_latency = subscriber.node_latency
            if node_latency is not None:  # the server named its node (the same range: no second failure)
                node_latency.record_value(value)
        else:
            histogram = self._interval_ramp
        if not histogram.record_value(value):
            self.counts["unrecordable"] += 1
            self.error("latency outside the histogram's 1 us .. 1 h range")
        if len(self.ui_samples) < MAX_UI_SAMPLES:
            self.ui_samples.append(latency_us / 1000.0)

    def _other_clock(self, stream: str) -> bool:
        """Whether ``stream``'s due times come from another host's clock than ours (once per subscriber and
        stream, when its tracker is made); an untagged stream, or a recorder without a tag, shares it."""
        clock = probe.clock_of(stream)
        return bool(clock and self.clock_id and clock != self.clock_id)

    def _time_cross_clock(self, latency_us: int) -> None:
        """A delivery timed against another host's clock: counted and kept in ``cross_clock`` only, never in
        the latency, fan-out or gates (ramp-up included: every such figure is clock-dependent anyway)."""
        self.delivered += 1
        if not self.cross_clock.record_value(latency_us if latency_us > 0 else 1):
            self.counts["unrecordable"] += 1
            self.error("cross-clock latency outside the histogram's 1 us .. 1 h range")

    # -- connections --------------------------------------------------------------------------
    def new_subscriber(self, channel: str) -> SubscriberRecord:
        record = SubscriberRecord(channel)
        self.subscribers.append(record)
        return record

    def connected(self, connect_ns: int) -> None:
        self.counts["opened"] += 1
        us = max(1, connect_ns // 1000)
        if not self._interval_connect.record_value(us):
            self.counts["unrecordable"] += 1

    def connect_failed(self, reason: str) -> None:
        self.counts["failed"] += 1
        self.error(f"connect failed: {reason}")

    def dropped(self, subscriber: SubscriberRecord) -> None:
        """The provider lost a subscriber's connection without us asking. Its window stays owed: if it comes
        back (``resubscribed``) the gap is covered, if not (``down`` at the end) up to the end of the run."""
        if subscriber.subscribed:
            subscriber.close_window(time.time_ns())
            subscriber.down = True
            self.counts["dropped"] += 1
            self.reconnecting += 1

    def resubscribed(self, subscriber: SubscriberRecord) -> None:
        if not subscriber.windows:  # lost and back before its first connect was done: nothing was counted
            return
        now_ns = time.time_ns()
        if not subscriber.subscribed:
            self.reconnecting = max(0, self.reconnecting - 1)
            if (
                subscriber.down
            ):  # nobody asked it to leave: what was published meanwhile was owed (lost unless replayed)
                subscriber.windows[-1][1] = now_ns
        subscriber.down = False
        subscriber.open_window(now_ns)
        self.counts["reconnected"] += 1

    def closed(self, subscriber: SubscriberRecord) -> None:
        """We closed this subscriber (end of run or user stop)."""
        if subscriber.windows and not subscriber.subscribed:
            self.reconnecting = max(0, self.reconnecting - 1)  # it was down, waiting to come back
        subscriber.close_window(time.time_ns())

    def landed(self, subscriber: SubscriberRecord, node: str | None) -> None:
        """The subscriber's connection was answered by server node ``node`` (None: not named). From now on
        its steady-state deliveries also go to that node's histogram, and its windows are that node's."""
        if node == subscriber.node:
            return
        subscriber.move_to(node, time.time_ns())
        if node is None:
            subscriber.node_latency = None
            return
        histogram = self.node_latency.get(node)
        if histogram is None:
            histogram = self.node_latency[node] = hist.new()
        subscriber.node_latency = histogram

    def reconnect_time(self, ns: int) -> None:
        """From losing a subscription to having it back, as the provider measured it."""
        if not self.reconnect.record_value(max(1, ns // 1000)):
            self.counts["unrecordable"] += 1

    def error(self, reason: str) -> None:
        """Count an error under its reason; past MAX_ERROR_REASONS distinct ones (reasons quoting what
        arrived can all differ) the rest are counted together, so a long run's table stays bounded."""
        self.counts["errors"] += 1
        key = reasons.kind(reason)[:200]  # grouped by kind: no timestamps or ids
        if key not in self.error_reasons and len(self.error_reasons) >= MAX_ERROR_REASONS:
            key = OTHER_REASONS
        self.error_reasons[key] += 1

    # -- publishing ---------------------------------------------------------------------------
    def ledger(self, stream_id: str, channel: str) -> Ledger:
        ledger = self.ledgers.get(stream_id)
        if ledger is None:
            ledger = self.ledgers[stream_id] = Ledger(stream_id, channel)
        return ledger

    def published(self, ledger: Ledger, sent_ns: int, due_ns: int | None = None) -> int:
        """Note a send about to happen (and how late it is against its due time); returns its sequence number."""
        if due_ns is not None and due_ns >= self.steady_from_ns:  # the steady state's, as the latency
            self.publish_lag.record_value(max(1, (sent_ns - due_ns) // 1000))
        ledger.sent_ns.append(sent_ns)
        self.counts["published"] += 1
        return len(ledger.sent_ns) - 1

    def publish_failed(self, ledger: Ledger, seq: int, reason: str) -> None:
        ledger.failed.add(seq)
        self.counts["published"] -= 1
        self.error(f"publish failed: {reason}")

    # -- reports ------------------------------------------------------------------------------
    def in_flight(self) -> int:
        """Messages this generator's subscribers are known to be owed and still waiting for."""
        return in_flight(self.subscribers, self.ledgers.values())

    def open_subscriptions(self) -> int:
        return sum(1 for s in self.subscribers if s.subscribed)

    def interval_report(self) -> IntervalReport:
        """Close the current interval: its histograms and counter deltas, for hlog and timeseries."""
        now_ms = int(time.time() * 1000)
        hist.add(self.latency, self._interval)
        hist.add(self.ramp, self._interval_ramp)
        hist.add(self.connect, self._interval_connect)
        live = self._live(hist.encode(self._interval), hist.encode(self._interval_ramp))
        if self._interval_ramp.get_total_count():  # the interval log shows every delivery of the interval
            self._interval.add(self._interval_ramp)
        deltas = counts_record({k: self.counts[k] - self._last_counts[k] for k in COUNTER_NAMES})
        report: IntervalReport = {
            "start_ms": self._interval_start_ms,
            "end_ms": now_ms,
            "latency": hist.encode(self._interval),
            "connect": hist.encode(self._interval_connect),
            "delivered": self.delivered - self._last_delivered,
            "counts": deltas,
            "connections": self.open_subscriptions(),
            "lost": self._gap_delta(),  # provisional: a gap may still fill; the summary has the final count
            **self.health.interval(),
            "live": live,
        }
        self._interval, self._interval_ramp, self._interval_connect = hist.new(), hist.new(), hist.new()
        self._interval_start_ms = now_ms
        self._last_counts = Counter(self.counts)
        self._last_delivered = self.delivered
        return report

    def _live(self, steady: str, ramp: str) -> LiveInterval:
        """The web UI's live view of this process: a few encodes and a walk over the subscribers
        (about 0.5 ms of the loop a second at 1,000 subscribers)."""
        trackers = [t for s in self.subscribers for t in s.streams.values()]
        fanout = {stream: slowest.delta() for stream, slowest in self.fanout.items()}
        return {
            "fanout": {stream: pairs for stream, pairs in fanout.items() if pairs[0]},
            "steady": steady,
            "ramp": ramp,
            "publish_lag": hist.encode(self.publish_lag),
            "client_lag": hist.encode(self.client_lag),
            "loop_lag": hist.encode(self.health.lag),
            "duplicated": sum(t.dup for t in trackers),
            "out_of_order": sum(t.ooo for t in trackers),
            "rx_clocks": dict(self.rx_clocks),
            "steady_from_ns": self.steady_from_ns,
        }

    def _gap_delta(self) -> int:
        gaps = sum(len(t.missing) for s in self.subscribers for t in s.streams.values())
        delta, self._last_gaps = gaps - self._last_gaps, gaps
        return delta

    def final_report(self, end_ns: int) -> FinalReport:
        """Everything the collector needs for summary.json; call after a last ``interval_report``."""
        report: FinalReport = {
            "latency": hist.encode(self.latency),
            "connect": hist.encode(self.connect),
            "reconnect": hist.encode(self.reconnect),
            "ramp": hist.encode(self.ramp),
            "client_lag": hist.encode(self.client_lag),
            "publish_lag": hist.encode(self.publish_lag),
            "fanout": {stream: slowest.to_wire() for stream, slowest in self.fanout.items()},
            "rx_clocks": dict(self.rx_clocks),
            "steady_from_ns": self.steady_from_ns,
            "delivered": self.delivered,
            "counts": counts_record(self.counts),
            "error_reasons": dict(self.error_reasons.most_common(20)),
            "ledgers": [ledger.to_wire() for ledger in self.ledgers.values()],
            "subscribers": [s.to_wire(end_ns) for s in self.subscribers],
            "health": self.health.to_wire(),
        }
        if self.node_latency:
            report["node_latency"] = {node: hist.encode(h) for node, h in sorted(self.node_latency.items())}
        if self.cross_clock.get_total_count():
            report["cross_clock"] = hist.encode(self.cross_clock)
        return report

    def max_latency_us(self) -> int:
        return max(
            int(self.latency.get_max_value()),
            int(self._interval.get_max_value()),
            int(self.ramp.get_max_value()),
            int(self._interval_ramp.get_max_value()),
        )

    def take_ui_samples(self) -> list[float]:
        samples, self.ui_samples = self.ui_samples, []
        return samples


def counts_record(counts: Mapping[str, int]) -> Counts:
    """The counters as their wire record (a missing counter is 0)."""
    return {
        "published": counts.get("published", 0),
        "errors": counts.get("errors", 0),
        "opened": counts.get("opened", 0),
        "failed": counts.get("failed", 0),
        "dropped": counts.get("dropped", 0),
        "reconnected": counts.get("reconnected", 0),
        "foreign": counts.get("foreign", 0),
        "unrecordable": counts.get("unrecordable", 0),
        "server_clock": counts.get("server_clock", 0),
        "clock_skew": counts.get("clock_skew", 0),
    }
