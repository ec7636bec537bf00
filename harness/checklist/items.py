"""The five items. Each opens its own clients, measures, and returns one result with its reason: what the
server did wrong is a FAIL line, never an exception.

Figures are made as every run makes them: latency is the receive time of the bytes at the subscriber's
socket minus the time the event was due, so a slow check machine does not make a server look slow.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from harness.checklist.clients import CHANNEL, Clients, Inbox, Subscriber
from harness.checklist.facts import ProtocolFacts
from harness.checklist.outcome import ItemResult, failed, passed, skipped
from harness.checklist.restart import Restarter, RestartError
from harness.providers.lean import LeanSubscriber

#: mutations the offline client queues while it is away
QUEUED_MUTATIONS = 5
#: events published while a client is away (offline) and after the server's restart (reconnect)
GAP_EVENTS = 3
#: the first publish of the performance item is due this long after the publisher is ready
_START_NS = 50_000_000


@dataclass(frozen=True)
class Settings:
    connect_timeout_s: float = 5.0
    reconnect_timeout_s: float = 20.0
    #: how long an event may take to arrive before it counts as lost
    arrival_timeout_s: float = 5.0
    budget_ms: float = 50.0
    events: int = 100
    rate: float = 20.0


@dataclass
class Context:
    clients: Clients
    facts: ProtocolFacts
    restarter: Restarter
    settings: Settings

    async def subscriber(self) -> Subscriber:
        return await self.clients.subscriber(self.settings.connect_timeout_s)

    async def publish(self, stream: str, count: int, *, replay: bool = False) -> None:
        """``count`` events of ``stream`` in order, each accepted before the next, from a new publisher."""
        publisher = await self.clients.publisher(self.settings.connect_timeout_s)
        for seq in range(count):
            await publisher.publish(CHANNEL, self.clients.envelope(stream, seq, replay=replay))

    async def back(self, inbox: Inbox) -> str | None:
        """Wait for a dropped client to come back by itself; None once it has, else why not (an error the
        client reported on the way, such as an abnormal close, is not a failure unless it stays away)."""
        timeout = self.settings.reconnect_timeout_s
        if await inbox.until(lambda: inbox.returns > 0, timeout):
            return None
        if inbox.drops == 0:
            return "the client's connection never dropped"
        last = f" (last error: {inbox.errors[-1]})" if inbox.errors else ""
        return f"the client did not come back within {timeout:g} s{last}"


Item = Callable[[Context], Awaitable[ItemResult]]


def _ms(ns: float) -> float:
    return round(ns / 1e6, 1)


def _said(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    return str(exc) or type(exc).__name__


def sequence_fault(got: list[int], expected: int) -> str | None:
    """What is wrong with receiving ``got`` where ``0..expected-1`` each once, in order, was due; None if
    nothing."""
    if got == list(range(expected)):
        return None
    missing = [seq for seq in range(expected) if seq not in got]
    doubled = sorted({seq for seq in got if got.count(seq) > 1})
    faults = []
    if missing:
        faults.append(f"lost {len(missing)} of {expected} (#{', #'.join(map(str, missing))})")
    if doubled:
        faults.append(f"duplicated #{', #'.join(map(str, doubled))}")
    if not faults:
        faults.append(f"out of order: {got}")
    return "; ".join(faults)


async def connection(ctx: Context) -> ItemResult:
    started = time.perf_counter_ns()
    try:
        await ctx.subscriber()
    except TimeoutError:
        return failed("connection", f"not connected and subscribed within {ctx.settings.connect_timeout_s:g} s")
    except Exception as exc:
        return failed("connection", f"cannot connect: {_said(exc)}")
    took = _ms(time.perf_counter_ns() - started)
    return passed("connection", f"connected and subscribed in {took} ms", took)


async def event(ctx: Context) -> ItemResult:
    """Client A publishes; client B, another connection, receives it once; A hears it back only if the
    protocol says a sender does (and, where a client can ask not to, one that asked does not)."""
    settings, facts = ctx.settings, ctx.facts
    timeout, rule = settings.arrival_timeout_s, facts.echo_rule
    own = Inbox(ctx.clients.run_id)
    try:
        b = await ctx.subscriber()
        a = await ctx.clients.publisher(settings.connect_timeout_s, peer=True)
        hears_own = await a.watch_own(CHANNEL, own.on_data)
        await a.publish(CHANNEL, ctx.clients.envelope("event", 0))
    except Exception as exc:
        return failed("event", f"cannot publish from client A: {_said(exc)}")
    if not await b.inbox.until(lambda: bool(b.inbox.of("event")), timeout):
        hint = f"; {facts.refused_hint}" if facts.refused_hint else ""
        told = f" (the server told A: {a.errors[-1].rstrip('.')}{hint})" if a.errors else ""
        return failed("event", f"client B did not receive A's event within {timeout:g} s{told}")
    latency = _ms(b.inbox.of("event")[0].latency_ns)
    copies = len(b.inbox.of("event"))
    if copies != 1:
        return failed("event", f"client B received A's event {copies} times", latency)
    if not hears_own:
        return passed(
            "event",
            f"client B received A's event in {latency} ms; A has no connection to hear its own event on ({rule})",
            latency,
        )
    if not facts.echoes_sender:
        fault = await _unheard(ctx, own, "event", "A")
        if fault:
            return failed("event", fault, latency)
        return passed("event", f"client B received A's event in {latency} ms; A did not hear it back ({rule})", latency)
    if not await own.until(lambda: bool(own.of("event")), timeout):
        return failed("event", f"A never heard its own event back, but {rule}", latency)
    echo = "A heard it back"
    if facts.echo_optout:
        fault = await _quiet_sender(ctx, b.inbox)
        if fault:
            return failed("event", fault, latency)
        echo += "; a client connected with echo off did not hear its own"
    return passed("event", f"client B received A's event in {latency} ms; {echo} ({rule})", latency)


async def _unheard(ctx: Context, own: Inbox, stream: str, who: str) -> str | None:
    """Why it is wrong that ``who`` (``own``: its connection) heard its ``stream`` event back, or None: shown by an
    event published after it, which an echo would have come before (one connection's events stay in order)."""
    later, timeout = f"after-{stream}", ctx.settings.arrival_timeout_s
    try:
        await ctx.publish(later, 1)
    except Exception as exc:
        return f"cannot publish the event that shows whether {who} hears its own: {_said(exc)}"
    if not await own.until(lambda: bool(own.of(later)), timeout):
        return f"{who} received nothing published after its own event within {timeout:g} s"
    if own.of(stream):
        return f"{who} heard its own event back, but {ctx.facts.echo_rule}"
    return None


async def _quiet_sender(ctx: Context, b: Inbox) -> str | None:
    """A client that asked not to hear its own events publishes: B receives it, the client does not."""
    who, timeout = "a client connected with echo off", ctx.settings.arrival_timeout_s
    own = Inbox(ctx.clients.run_id)
    try:
        quiet = await ctx.clients.publisher(ctx.settings.connect_timeout_s, peer=True, echo=False)
        await quiet.watch_own(CHANNEL, own.on_data)
        await quiet.publish(CHANNEL, ctx.clients.envelope("quiet", 0))
    except Exception as exc:
        return f"cannot publish from {who}: {_said(exc)}"
    if not await b.until(lambda: bool(b.of("quiet")), timeout):
        return f"client B did not receive the event of {who} within {timeout:g} s"
    return await _unheard(ctx, own, "quiet", who)


async def reconnect(ctx: Context) -> ItemResult:
    """Kill the server and start it again: the client comes back by itself and hears what follows."""
    if ctx.restarter.unavailable is not None:
        return skipped("reconnect", ctx.restarter.unavailable)
    settings = ctx.settings
    try:
        b = await ctx.subscriber()
    except Exception as exc:
        return failed("reconnect", f"cannot connect before the restart: {_said(exc)}")
    try:
        await ctx.restarter.restart()
    except RestartError as exc:
        return failed("reconnect", str(exc))
    why_not = await ctx.back(b.inbox)
    if why_not is not None:
        return failed("reconnect", f"after the server's restart {why_not}")
    took = _ms(b.inbox.reconnect_ns[-1])
    try:
        await ctx.publish("restarted", GAP_EVENTS)
    except Exception as exc:
        return failed("reconnect", f"cannot publish after the restart: {_said(exc)}", took)
    arrived = await b.inbox.until(lambda: len(b.inbox.of("restarted")) >= GAP_EVENTS, settings.arrival_timeout_s)
    fault = sequence_fault(b.inbox.seqs("restarted"), GAP_EVENTS)
    if not arrived or fault:
        return failed("reconnect", f"events published after the restart: {fault}", took)
    return passed(
        "reconnect",
        f"back by itself {took} ms after its connection dropped; {GAP_EVENTS} of {GAP_EVENTS} events "
        "published after the restart arrived",
        took,
    )


async def offline(ctx: Context) -> ItemResult:
    """Client A loses its network; its mutations meanwhile are queued in order; once it is back by itself
    the queue replays, and client B receives every replayed mutation once, in order."""
    settings = ctx.settings
    try:
        a, b = await ctx.subscriber(), await ctx.subscriber()
        await ctx.publish("before", 1)  # both live; an SSE stream now carries an id to resume from
    except Exception as exc:
        return failed("offline", f"cannot set up clients A and B: {_said(exc)}")
    if not await a.inbox.until(lambda: bool(a.inbox.of("before")), settings.arrival_timeout_s):
        return failed("offline", "client A did not receive the event published before it went offline")
    if not isinstance(a.handle, LeanSubscriber) or not a.handle.sever():
        return skipped("offline", "this client cannot be cut from its side")
    resumes = a.handle.resumes
    queued = list(range(QUEUED_MUTATIONS))  # A's offline queue: its mutations, persisted in order
    try:
        await ctx.publish("meanwhile", GAP_EVENTS)  # B's side keeps publishing while A is away
    except Exception as exc:
        return failed("offline", f"cannot publish while A is offline: {_said(exc)}")
    why_not = await ctx.back(a.inbox)
    if why_not is not None:
        return failed("offline", f"after going offline {why_not}")
    back_ns = time.time_ns()
    try:
        replayer = await ctx.clients.publisher(settings.connect_timeout_s)
        for seq in queued:
            await replayer.publish(CHANNEL, ctx.clients.envelope("queued", seq, replay=True))
        await replayer.publish(CHANNEL, ctx.clients.envelope("after", 0))
    except Exception as exc:
        return failed("offline", f"cannot replay A's queue: {_said(exc)}")
    if not await b.inbox.until(lambda: bool(b.inbox.of("after")), settings.arrival_timeout_s):
        return failed("offline", f"client B stopped receiving: nothing within {settings.arrival_timeout_s:g} s")
    replayed = b.inbox.of("queued")
    replay_ms = _ms(max((r.rx_ns for r in replayed), default=back_ns) - back_ns)
    fault = sequence_fault([r.seq for r in replayed], len(queued))
    if fault:
        return failed("offline", f"A's replayed queue at client B: {fault}", replay_ms, queued=len(queued))
    gap = sequence_fault(a.inbox.seqs("meanwhile"), GAP_EVENTS)
    if resumes and gap:
        return failed("offline", f"A resumed from its last event id, yet events sent while it was away: {gap}")
    got = len(set(a.inbox.seqs("meanwhile")))
    missed = f"A got {got} of {GAP_EVENTS} events sent while it was away" + (
        " (it resumed from its last event id)" if resumes else "" if got == GAP_EVENTS else " (no replay promised)"
    )
    return passed(
        "offline",
        f"{len(queued)} queued mutations replayed in order, each received once by B, in {replay_ms} ms; {missed}",
        replay_ms,
        queued=len(queued),
    )


def _p99(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


async def performance(ctx: Context) -> ItemResult:
    """``events`` events on a fixed schedule, each timed from when it was due to the socket: every one of
    them (not a percentile) must be under the budget."""
    settings = ctx.settings
    count = settings.events
    try:
        b = await ctx.subscriber()
        publisher = await ctx.clients.publisher(settings.connect_timeout_s)
        start_ns = time.time_ns() + _START_NS
        for seq in range(count):
            due_ns = start_ns + int(seq * 1e9 / settings.rate)
            wait_s = (due_ns - time.time_ns()) / 1e9
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            await publisher.publish(CHANNEL, ctx.clients.envelope("perf", seq, due_ns=due_ns))
    except Exception as exc:
        return failed("performance", f"cannot publish: {_said(exc)}")
    inbox = b.inbox
    await inbox.until(lambda: len({a.seq for a in inbox.of("perf")}) >= count, settings.arrival_timeout_s)
    first: dict[int, int] = {}
    for arrival in inbox.of("perf"):
        first.setdefault(arrival.seq, arrival.latency_ns)
    if not first:
        return failed("performance", f"none of {count} events arrived")
    worst_seq = max(first, key=lambda seq: first[seq])
    worst, p99 = _ms(first[worst_seq]), _ms(_p99(list(first.values())))
    figures = {"max_ms": worst, "p99_ms": p99}
    missing = count - len(first)
    if missing:
        return failed("performance", f"{missing} of {count} events never arrived; max {worst} ms", worst, **figures)
    over = sum(1 for ns in first.values() if ns > settings.budget_ms * 1e6)
    if over:
        return failed(
            "performance",
            f"{over} of {count} events over the {settings.budget_ms:g} ms budget: max {worst} ms (#{worst_seq}), "
            f"p99 {p99} ms",
            worst,
            **figures,
        )
    return passed(
        "performance",
        f"all {count} events under {settings.budget_ms:g} ms: max {worst} ms, p99 {p99} ms",
        worst,
        **figures,
    )


ITEMS: dict[str, Item] = {
    "connection": connection,
    "event": event,
    "reconnect": reconnect,
    "offline": offline,
    "performance": performance,
}
