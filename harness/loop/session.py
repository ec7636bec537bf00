"""A load generator process, event-loop side: the provider, the recorder, the open-model publishers.

Every coroutine here runs on the bridge's loop; Locust's greenlets reach it only through the bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from harness.loop.app import APP_CHANNEL, ReaderHandle, TodoReader, TodoWriter, todos_url
from harness.loop.clock import clock_id
from harness.loop.monitor import HealthMonitor
from harness.loop.presence import PresenceRoom, PresentReader
from harness.loop.probes import BrowserProbes
from harness.measure import probe
from harness.measure.accounting import Ledger, SubscriberRecord
from harness.measure.appstats import AppStats
from harness.measure.presence import PresenceStats
from harness.measure.recorder import Recorder
from harness.measure.records import FinalReport, IntervalReport, RxStamps
from harness.net.stream import RX_STAMPS, timestamps_ready
from harness.providers.base import OnData, Provider, PublisherHandle, SubscriberHandle, SubscriberHooks
from harness.providers.http import close_shared_session

CONNECT_TIMEOUT_S = 30.0
#: a publish the provider has not accepted by then failed (a silent server must not stall the schedule)
PUBLISH_TIMEOUT_S = 5.0
#: at the end of a run, publishers get the drain timeout (at least this) to finish their publish in flight
PUBLISHERS_STOP_MIN_S = 1.0
#: how long a publisher or connection cut at the end of a run gets to unwind and be counted
CUT_WAIT_S = 1.0
DRAIN_QUIET_S = 0.25
#: at the end of a run, presence members get at least this long to leave one by one (``PresenceRoom.leave_all``)
PRESENCE_LEAVE_MIN_S = 5.0
STEADY_NOT_YET = 2**63 - 1
#: the publisher wakes this long before a message's due time (the loop's timers fire up to ~1 ms late),
#: then yields to the loop until the due time: a late send would count in every delivery's latency
PUBLISH_EARLY_WAKE_S = 0.0015  # before spawning completes, every delivery is ramp-up
RUN_ENDED = "still connecting when the run ended"

T = TypeVar("T")
log = logging.getLogger("rtbench")


class RunEnded(ConnectionError):
    """A connection still being made when the run ended: it never took part, so it counts as failed."""


class GeneratorSession:
    """One load generator's measurement on the bridge loop: the provider, the recorder, the open-model
    publishers and the drain at the end. Knows nothing of Locust; the plugin drives it."""

    def __init__(self, provider_cls: type[Provider], host: str, options: argparse.Namespace) -> None:
        self.provider_cls = provider_cls
        self.host = host
        self.options = options
        self.recorder = Recorder()
        self.monitor = HealthMonitor(self.recorder.health)
        #: set from any thread (a second Ctrl-C): the drain ends at its next check, with what has landed
        self.drain_cut = False
        self._provider: Provider | None = None
        self._publishers: list[asyncio.Task[None]] = []
        self._stop_publishing = asyncio.Event()
        self._channel_counter = 0
        self.ui_publish_ms: list[float] = []
        self._stamps_checked = False
        self._connecting = 0  # subscribers whose first connection is being made
        self._announced = 0  # app readers created whose connection has not begun (``announce_reader``)
        self._warmup_after_connects_s: float | None = None  # set when spawning completes, until steady
        self._stamps_at_begin: dict[str, int] = {}
        self.publish_timeout_s = PUBLISH_TIMEOUT_S
        self._opening: set[asyncio.Task[object]] = set()  # connects in flight (subscribers and publishers)
        self._cut: set[asyncio.Task[object]] = set()  # of those, the ones the end of the run cancelled
        #: the todo-app workload's figures (scenarios/todo_app.py: ``--refetch`` is set); None otherwise
        self.app: AppStats | None = None
        #: this run's todo-app readers (their GETs stop when the run's figures are final)
        self._readers: list[TodoReader] = []
        #: the subscriptions open now (closed when the run's figures are final)
        self._held: set[SubscriberHandle] = set()
        #: set once spawning is complete and every connection is open: the app's writers start then
        self._all_connected = asyncio.Event()
        #: the app's readers as presence members (``--presence``); None otherwise
        self.presence: PresenceRoom | None = None
        #: this run's browser pages (``--browser-probes``, on one generator only); None otherwise
        self.probes: BrowserProbes | None = None

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = self.provider_cls(self.host, self.options)
        return self._provider

    def begin(self, run_id: str) -> None:
        """A new run: fresh measurements under a new run id (the web UI can start many runs). Everything
        counts as ramp-up until ``steady_from`` is told when the steady state begins."""
        self.recorder = Recorder(run_id, clock_id())
        refetch = getattr(self.options, "refetch", None)
        self.app = (
            AppStats(
                str(refetch),
                float(getattr(self.options, "stale_ms", 0) or 0),
                bool(getattr(self.options, "optimistic", False)),
            )
            if refetch
            else None
        )
        self._readers = []
        self._held = set()
        presence = self.app is not None and bool(getattr(self.options, "presence", False))
        self.presence = PresenceRoom(PresenceStats(run_id, clock_id()), self.recorder.error) if presence else None
        if self.presence is not None:  # Ably sends the join storm to the readers' sockets too: not a steady read
            RX_STAMPS.shared_since_ns = STEADY_NOT_YET  # until steady_from
        self.drain_cut = False
        self._all_connected = asyncio.Event()
        self.recorder.steady_from_ns = STEADY_NOT_YET
        self._warmup_after_connects_s = None
        if not self._stamps_checked:  # once per process: the kernel switches stamping on lazily
            self._stamps_checked = True
            timestamps_ready()
        self._stamps_at_begin = RX_STAMPS.snapshot()
        self.monitor = HealthMonitor(self.recorder.health)
        self.monitor.start()
        self._stop_publishing = asyncio.Event()
        self._publishers = []

    def steady_from(self, ns: int) -> None:
        """Deliveries of messages due from ``ns`` on are the steady state (the headline figures)."""
        self.recorder.steady_from_ns = ns
        if self.probes is not None:
            self.probes.steady_from(ns)
        if self.app is not None:
            self.app.steady_from_ns = ns
        RX_STAMPS.shared_since_ns = ns

    def spawning_complete(self, warmup_s: float) -> None:
        """Every user is started; the steady state begins ``warmup_s`` after the last of their connections
        is made (Locust says spawning is complete while connections may still be opening)."""
        self._warmup_after_connects_s = warmup_s
        self._maybe_steady()

    def _maybe_steady(self) -> None:
        if self._warmup_after_connects_s is not None and self._connecting == 0 and self._announced <= 0:
            self._all_connected.set()
            self.steady_from(time.time_ns() + int(self._warmup_after_connects_s * 1e9))
            self._warmup_after_connects_s = None

    def next_channel(self) -> str:
        index = self._channel_counter % int(self.options.channels)
        self._channel_counter += 1
        return probe.channel_name(index)

    # -- browser probes ---------------------------------------------------------------------------
    async def start_browser_probes(self, count: int, binary: str, clients_dir: str, secrets: tuple[str, ...]) -> None:
        """Open ``count`` browser pages on the run's channels (``loop/probes.py``) and return once each has
        subscribed or failed; the steady state waits for them as for any connection."""
        probes = self.probes = BrowserProbes(
            self.provider, binary, Path(clients_dir), self.recorder.run_id, self.recorder.clock_id, secrets
        )
        probes.steady_from(self.recorder.steady_from_ns)
        channels = [probe.channel_name(i) for i in range(int(self.options.channels))]
        if self.app is not None:
            channels = [APP_CHANNEL]
        self._connecting += 1
        try:
            await probes.start(count, channels)
        finally:
            self._connecting -= 1
            self._maybe_steady()

    # -- subscribers ------------------------------------------------------------------------------
    async def open_subscriber(
        self, channel: str, bind: Callable[[SubscriberRecord], OnData] | None = None
    ) -> tuple[SubscriberRecord, SubscriberHandle]:
        """A subscriber timed and accounted by the recorder; ``bind`` makes its ``on_data`` instead (the
        app's readers: they hand each arrival to the recorder themselves, then act on it)."""
        recorder = self.recorder
        record = recorder.new_subscriber(channel)
        hooks = SubscriberHooks(
            on_data=bind(record) if bind else lambda data, rx_ns: recorder.delivered_to(record, data, rx_ns),
            on_drop=lambda: recorder.dropped(record),
            on_resubscribed=lambda: recorder.resubscribed(record),
            on_error=recorder.error,
            on_reconnect_ns=recorder.reconnect_time,
            on_node=lambda node: recorder.landed(record, node),
        )
        started = time.perf_counter_ns()
        self._connecting += 1
        try:
            handle = await self._open(self.provider.open_subscriber(channel, hooks))
        except BaseException as exc:
            recorder.subscribers.remove(record)
            recorder.connect_failed(_reason(exc))
            raise
        finally:
            self._connecting -= 1
            self._maybe_steady()
        recorder.connected(time.perf_counter_ns() - started)
        recorder.rx_clocks[handle.rx_clock] += 1
        record.open_window(time.time_ns())
        self._held.add(handle)
        return record, handle

    async def _open(self, opening: Awaitable[T]) -> T:
        """``opening`` within ``CONNECT_TIMEOUT_S``; one still pending when the run ends is cut (``finish``)
        and raises :class:`RunEnded`, so it is counted before the final report rather than never."""
        task = asyncio.current_task()
        assert task is not None
        self._opening.add(task)
        try:
            return await asyncio.wait_for(opening, CONNECT_TIMEOUT_S)
        except TimeoutError as exc:
            raise TimeoutError(str(exc) or f"not connected within {CONNECT_TIMEOUT_S:g} s") from None
        except asyncio.CancelledError:
            if task not in self._cut:
                raise
            task.uncancel()
            raise RunEnded(RUN_ENDED) from None
        finally:
            self._opening.discard(task)
            self._cut.discard(task)

    async def _cut_openings(self) -> None:
        """Cancel every connect still in flight; each counts itself failed (with ``RunEnded``) as it unwinds."""
        pending = list(self._opening)
        self._cut.update(pending)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CUT_WAIT_S)

    async def close_subscriber(self, record: SubscriberRecord, handle: SubscriberHandle) -> None:
        self.recorder.closed(record)
        self._held.discard(handle)
        with contextlib.suppress(Exception):
            await handle.close()

    # -- the todo app (scenarios/todo_app.py) --------------------------------------------------------
    def _app(self) -> AppStats:
        if self.app is None:
            raise RuntimeError("the todo-app workload needs --refetch (scenarios/todo_app.py)")
        return self.app

    def _todos_url(self) -> str:
        api_base, path = getattr(self.options, "api_base", ""), getattr(self.options, "todos_path", "")
        return todos_url(self.host, str(api_base or ""), str(path or ""))

    def announce_reader(self) -> None:
        """A reader user was created (posted from its constructor, so before Locust's spawning-complete
        hook reaches the loop): the writers and the steady state wait for its connection too, which its
        greenlet may not have begun when spawning is reported complete."""
        self._announced += 1

    async def open_reader(self) -> tuple[SubscriberRecord, SubscriberHandle]:
        """A reader: a subscription to the app's events whose arrivals invalidate and refetch its query.
        Settles one ``announce_reader``, whatever the outcome."""
        jitter_s = float(getattr(self.options, "refetch_jitter_ms", 0) or 0) / 1000
        reader = TodoReader(self._todos_url(), self.recorder, self._app(), jitter_s)
        self._readers.append(reader)
        self._connecting += 1  # counted before the announcement is settled, so the count never dips to 0
        self._announced -= 1
        try:
            record, handle = await self.open_subscriber(APP_CHANNEL, reader.bind)
            reading = ReaderHandle(handle, reader)
            if self.presence is not None:  # a member too, before the writers start: the join storm is measured
                with contextlib.suppress(Exception):  # a failed join is counted; the reader reads on
                    member = await self._open(self.presence.join(self.provider))
                    return record, PresentReader(reading, self.presence, member)
        except BaseException:
            if reader.query in self._app().queries:
                self._app().queries.remove(reader.query)
            raise
        finally:
            self._connecting -= 1
            self._maybe_steady()
        return record, reading

    async def start_writer(self, rate: float, limit: int = 0) -> None:
        """A writer: creates todos at ``rate`` on the open-model schedule (``limit`` at most; 0: no limit), the
        envelope in each request. Many app users mutate independently, so a POST goes at its due time
        whether the previous one was answered or not; the schedule starts once every reader is subscribed,
        so each mutation is owed to every reader."""
        app = self._app()
        app.mutation_rate += rate

        async def opening() -> PublisherHandle:
            mix = getattr(self.options, "mutation_mix", None) or (1, 0, 0)
            return TodoWriter(self._todos_url(), app, tuple(mix), app.optimistic)

        plan = Schedule(concurrent=True, limit=limit, after=self._all_connected)
        await self.start_publisher(rate, opening(), channels=[APP_CHANNEL], plan=plan)

    # -- publishers -------------------------------------------------------------------------------
    async def start_publisher(
        self,
        rate: float,
        opening: Awaitable[PublisherHandle] | None = None,
        *,
        channels: list[str] | None = None,
        payload_bytes: int | None = None,
        plan: Schedule | None = None,
    ) -> None:
        """Connect a publisher (the provider's, unless ``opening`` makes another), then publish in the
        background until ``finish``, on ``channels`` (default: the run's). A failed connect is counted here,
        once, whether it failed or the end of the run cut it."""
        try:
            handle = await self._open(opening if opening is not None else self.provider.open_publisher())
        except Exception as exc:
            self.recorder.error(f"publisher connect failed: {_reason(exc)}")
            raise
        names = channels or [probe.channel_name(c) for c in range(int(self.options.channels))]
        size = int(self.options.payload_bytes) if payload_bytes is None else payload_bytes
        task = asyncio.ensure_future(self._publish_loop(handle, rate, uuid.uuid4().hex[:8], names, size, plan))
        self._publishers.append(task)

    async def _publish_loop(
        self,
        handle: PublisherHandle,
        rate: float,
        publisher_id: str,
        channels: list[str],
        payload_bytes: int,
        plan: Schedule | None = None,
    ) -> None:
        """Open model (DESIGN rule 1): message k is due at t0 + k/rate and carries that due time."""
        recorder = self.recorder
        plan = plan or Schedule()
        ledgers = [
            recorder.ledger(probe.stream_id(publisher_id, c, recorder.clock_id), name)
            for c, name in enumerate(channels)
        ]
        interval_ns = int(1e9 / rate)
        stop = self._stop_publishing
        sending: set[asyncio.Task[None]] = set()
        k = 0
        try:
            if plan.after is not None:
                await _first(plan.after, stop)
            t0 = time.time_ns()
            while not stop.is_set() and (not plan.limit or k < plan.limit):
                due = t0 + k * interval_ns
                wait_s = (due - time.time_ns()) / 1e9 - PUBLISH_EARLY_WAKE_S
                if wait_s > 0:  # the loop's timers have 1 ms granularity: wake early, then step to the due time
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait_s)
                    if stop.is_set():
                        break
                while time.time_ns() < due:  # never send before the due time (latency would shrink)
                    await asyncio.sleep(0)  # one loop iteration: deliveries keep being read meanwhile
                ledger = ledgers[k % len(ledgers)]
                seq = len(ledger.sent_ns)
                text = probe.encode(recorder.run_id, ledger.stream_id, seq, due, payload_bytes)
                recorder.published(ledger, time.time_ns(), due)
                if plan.concurrent:  # the next one goes at its due time, answered or not
                    task = asyncio.ensure_future(self._send(handle, ledger, seq, text))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                else:
                    await self._send(handle, ledger, seq, text)
                k += 1
            if sending:
                await asyncio.wait(list(sending))
        finally:
            for task in list(sending):  # the run ended: each counts itself failed as it unwinds
                task.cancel()
            if sending:
                await asyncio.wait(list(sending), timeout=CUT_WAIT_S)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CUT_WAIT_S):
                    await handle.close()

    async def _send(self, handle: PublisherHandle, ledger: Ledger, seq: int, text: str) -> None:
        """One publish within ``publish_timeout_s``; a refusal, a timeout or the run's end is a failed publish."""
        recorder = self.recorder
        began = time.perf_counter_ns()
        deadline = asyncio.timeout(self.publish_timeout_s)
        try:
            async with deadline:
                await handle.publish(ledger.channel, text)
        except asyncio.CancelledError:  # the run ended while this one waited for its answer
            recorder.publish_failed(ledger, seq, "no answer when the run ended")
            raise
        except Exception as exc:
            expired = deadline.expired()
            recorder.publish_failed(
                ledger, seq, f"no answer within {self.publish_timeout_s:g} s" if expired else _reason(exc)
            )
        self.ui_publish_ms.append((time.perf_counter_ns() - began) / 1e6)

    # -- end of a run -----------------------------------------------------------------------------
    async def finish(self, drain_timeout_s: float) -> tuple[IntervalReport, FinalReport]:
        """Stop publishing, let in-flight deliveries land, and return (last interval, final report).

        Subscription windows end when publishing stops, so messages that were in flight then are
        still expected; the drain waits until none is known to be in flight (``Recorder.in_flight``) and
        deliveries go quiet, or the timeout passes: a server slow to write the last message is late, not lossy.
        """
        self._stop_publishing.set()
        started = time.monotonic()
        deadline = started + drain_timeout_s
        await self._stop_publishers(started + max(drain_timeout_s, PUBLISHERS_STOP_MIN_S))
        end_ns = time.time_ns()
        recorder = self.recorder
        max_latency_s = recorder.max_latency_us() / 1e6
        min_wait = min(drain_timeout_s, max(DRAIN_QUIET_S, 2 * max_latency_s))
        while time.monotonic() < deadline and not self.drain_cut:
            before = recorder.delivered
            pages_before = self.probes.delivered if self.probes is not None else 0
            await asyncio.sleep(DRAIN_QUIET_S)
            quiet = recorder.delivered == before and recorder.reconnecting == 0 and recorder.in_flight() == 0
            quiet = quiet and (self.app is None or self.app.in_flight() == 0)  # readers still to be fresh
            probes = self.probes
            if probes is not None:  # the pages too: late in the page is late, not lost
                quiet = quiet and probes.delivered == pages_before
                quiet = quiet and probes.in_flight(list(recorder.ledgers.values())) == 0
            if quiet and time.monotonic() - started >= min_wait:
                break
        await self._cut_openings()
        if self.presence is not None:  # the leave storm, measured before the final report
            # no delivery is measured from here on: presence frames on the readers' sockets (Ably sends a
            # channel's presence to every connection attached to it) must not count as shared stamps
            RX_STAMPS.shared_since_ns = STEADY_NOT_YET
            deadline = time.monotonic() + max(drain_timeout_s, PRESENCE_LEAVE_MIN_S)
            await self.presence.leave_all(deadline, cut=lambda: self.drain_cut)
        self.monitor.stop()
        last = recorder.interval_report()
        final = recorder.final_report(end_ns)
        final["rx_stamps"] = self._rx_stamps_since_begin()
        if self.app is not None:
            final["todo_app"] = self.app.to_wire()
        if self.presence is not None:
            final["presence"] = self.presence.stats.to_wire()
        if self.probes is not None:
            final["browser"] = self.probes.to_wire(end_ns)
            await self._close_probes()
        await self._let_go()
        return last, final

    async def _let_go(self) -> None:
        """The figures are final: close every subscription (no more reconnect attempts), stop the readers'
        GETs and close the pooled HTTP connections. Each holds a descriptor the run's files may need: a run
        that ran the process out of them still writes its result (plugin/fd_reserve.py)."""
        held, self._held = self._held, set()
        readers, self._readers = self._readers, []
        closes = [*(handle.close() for handle in held), *(reader.close() for reader in readers)]
        closing = [asyncio.ensure_future(_quietly(close)) for close in closes]
        if closing:
            await asyncio.wait(closing, timeout=CUT_WAIT_S)
        await close_shared_session()

    async def _close_probes(self) -> None:
        probes, self.probes = self.probes, None
        if probes is not None:
            try:
                await probes.close()
            except Exception:
                log.debug("rtbench: closing the browser probes failed", exc_info=True)

    async def _stop_publishers(self, deadline: float) -> None:
        """Let each publisher finish the publish in flight until ``deadline`` (or a second Ctrl-C), then cut
        the rest: their publish in flight counts as failed."""
        pending = {task for task in self._publishers if not task.done()}
        while pending and not self.drain_cut:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _done, pending = await asyncio.wait(pending, timeout=min(left, DRAIN_QUIET_S))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CUT_WAIT_S)

    def _rx_stamps_since_begin(self) -> RxStamps:
        """This run's share of the process-wide read counters (they keep counting across runs)."""
        now, begin = RX_STAMPS.snapshot(), self._stamps_at_begin
        return {
            "reads": now["reads"] - begin.get("reads", 0),
            "unstamped_reads": now["unstamped_reads"] - begin.get("unstamped_reads", 0),
            "shared_stamps": now["shared_stamps"] - begin.get("shared_stamps", 0),
        }

    async def aclose(self) -> None:
        await self._close_probes()
        if self._provider is not None:
            await self._provider.aclose()
        await close_shared_session()

    def take_ui_publish(self) -> list[float]:
        samples, self.ui_publish_ms = self.ui_publish_ms, []
        return samples


@dataclass(frozen=True, slots=True)
class Schedule:
    """How a publisher's open-model schedule runs: ``concurrent`` sends each message at its due time
    without waiting for the previous answer (many app users mutate independently); ``limit`` messages
    at most (0: until the run ends); ``after``: the schedule starts (t0) when this event is set."""

    concurrent: bool = False
    limit: int = 0
    after: asyncio.Event | None = None


async def _first(wanted: asyncio.Event, stop: asyncio.Event) -> None:
    """Wait for ``wanted``, or for ``stop`` (the run ended first)."""
    waiters = [asyncio.ensure_future(wanted.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _quietly(closing: Awaitable[None]) -> None:
    """A close whose failure changes nothing: the connection is gone either way."""
    with contextlib.suppress(Exception):
        await closing


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RunEnded):  # says what happened; the class name would add nothing
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
