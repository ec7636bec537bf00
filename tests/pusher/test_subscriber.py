"""The lean Pusher subscriber on the measuring transport: arrival times from the kernel, reconnection by
close code as pusher-js does it (with the time back reported), liveness, and bad servers (garbage, broken
framing, silence) ending in counted errors with a reason, never a hang.

Servers run in the test's own loop on 127.0.0.1 port 0: the reference target (so a test can cut a
connection from the server side, as an operator would) or a small scripted server speaking just enough
Pusher to misbehave in one precise way.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web

from harness.net.stream import ConnectError
from harness.protocols import pusher as proto
from harness.providers.base import RX_KERNEL
from harness.providers.pusher import PusherConnectError, PusherProvider, PusherSubscriber
from tests.pusher.conftest import Inbox, provider_for, run, serving, target_here
from tests.tls import tls_contexts

Script = Callable[[web.WebSocketResponse, web.Request], Awaitable[None]]
CHANNEL = "rtbench-0"


def fast(provider: PusherProvider, connect_timeout_s: float = 2.0) -> PusherProvider:
    provider.connect_timeout_s = connect_timeout_s
    provider.pong_timeout_s = 0.3
    provider.subscribers.interval_s = 0.05
    return provider


class FakePusher:
    """Speaks just enough Pusher to misbehave: its n-th connection runs the n-th script (the last repeats),
    then it records what the client sends until the client goes."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = scripts
        self.connections = 0
        self.received: list[str] = []
        self.changed = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/app/{key}", self.handle)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        self.changed.set()
        await script(ws, request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.received.append(msg.data)
                self.changed.set()
        return ws

    async def until(self, condition: Callable[[], bool], timeout: float = 5) -> None:
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def handshake(ws: web.WebSocketResponse, activity_timeout: int = 120) -> str:
    """connection_established, read the subscribe, confirm it; returns the channel."""
    await ws.send_str(proto.connection_established("1.1", activity_timeout))
    frame = proto.decode((await ws.receive()).data)
    assert frame.event == "pusher:subscribe", frame
    channel = str(frame.data["channel"])
    await ws.send_str(proto.subscription_succeeded(channel))
    return channel


async def well_behaved(ws: web.WebSocketResponse, _request: web.Request) -> None:
    channel = await handshake(ws)
    await ws.send_str(proto.channel_event(channel, "rtbench", "after"))


# -- arrival time --------------------------------------------------------------------------------


def test_the_arrival_is_the_kernel_receive_time_not_the_callback() -> None:
    async def body() -> None:
        async with target_here() as (url, target):
            provider, inbox = provider_for(url), Inbox()
            try:
                subscriber = await provider.open_subscriber(CHANNEL, inbox.hooks())
                assert isinstance(subscriber, PusherSubscriber) and subscriber.ws is not None
                assert subscriber.rx_clock == RX_KERNEL
                stream = subscriber.ws.stream
                # The kernel turns receive stamping on for the whole host a moment after the first socket
                # asks (a deferred static key): until then reads carry no stamp and the transport falls back
                # to the read's time, counting them. Deliver until one read is stamped.
                for n in range(1, 50):
                    unstamped = stream.unstamped_reads
                    target.broadcast(CHANNEL, "rtbench", "warm-up")
                    await inbox.wait_for(n)
                    if stream.unstamped_reads == unstamped:
                        break
                count, unstamped = len(inbox.items), stream.unstamped_reads
                sent_ns = time.time_ns()
                assert target.broadcast(CHANNEL, "rtbench", "stamped") == 1
                time.sleep(0.1)  # the generator falls behind after the bytes arrived: the stall under test
                stall_end_ns = time.time_ns()
                assert (await inbox.wait_for(count + 1))[-1] == "stamped"
                assert stream.unstamped_reads == unstamped  # this read carried the kernel's stamp
                rx_ns, handled_ns = inbox.rx_ns[-1], inbox.handled_ns[-1]
                assert sent_ns <= rx_ns <= handled_ns  # never later than a clock read after it
                assert rx_ns < stall_end_ns - 50_000_000  # stamped when the bytes came, not when read
                assert handled_ns - rx_ns >= 90_000_000  # the stall is the generator's lag, not latency
            finally:
                await provider.aclose()

    run(body())


# -- reconnection by close code ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "min_s", "max_s", "error"),
    [
        (4200, 0.0, 0.9, None),  # 4200-4299: reconnect at once
        (4100, 1.0, 5.0, None),  # 4100-4199: back off (pusher-js: 1 s)
        (1000, 1.0, 5.0, None),  # any other close: back off
        ("abort", 1.0, 5.0, "pusher: connection"),  # no close frame: an abnormal end, counted with its cause
    ],
)
def test_a_cut_connection_comes_back_and_the_time_back_is_recorded(
    cut: int | str, min_s: float, max_s: float, error: str | None
) -> None:
    async def body() -> None:
        async with target_here() as (url, target):
            provider, inbox = provider_for(url, channel_type="private"), Inbox()
            try:
                await provider.open_subscriber(CHANNEL, inbox.hooks())
                (conn,) = target.connections.values()
                if cut == "abort":
                    conn.transport.abort()
                else:
                    await conn.ws.close(code=int(cut), message=b"cut by the test")
                await inbox.until(lambda: inbox.reconnect_ns != [], timeout=max_s + 3)
                assert inbox.drops == 1 and inbox.resubscribes == 1
                assert min_s * 1e9 <= inbox.reconnect_ns[0] < max_s * 1e9, inbox.reconnect_ns
                assert target.broadcast("private-" + CHANNEL, "rtbench", "after") == 1  # re-subscribed, re-signed
                assert await inbox.wait_for(1) == ["after"]
                if error is None:
                    assert inbox.errors == []
                else:
                    assert len(inbox.errors) == 1 and inbox.errors[0].startswith(error), inbox.errors
            finally:
                await provider.aclose()

    run(body())


@pytest.mark.parametrize("code", [4001, 4009, 4301])
def test_a_refusing_close_gives_up_with_its_reason(code: int) -> None:
    async def body() -> None:
        async with target_here() as (url, target):
            provider, inbox = provider_for(url), Inbox()
            try:
                subscriber = await provider.open_subscriber(CHANNEL, inbox.hooks())
                assert isinstance(subscriber, PusherSubscriber)
                (conn,) = target.connections.values()
                await conn.ws.close(code=code, message=b"go away")
                await inbox.until(lambda: inbox.errors != [])
                assert inbox.errors == [f"pusher: server closed the websocket with {code}: go away; not reconnecting"]
                assert inbox.drops == 1 and inbox.resubscribes == 0 and inbox.reconnect_ns == []
                assert not subscriber.reconnector.reconnecting and target.connections == {}
            finally:
                await provider.aclose()

    run(body())


def test_a_connection_whose_pong_never_comes_is_dropped_and_back_at_once() -> None:
    async def silent_after_subscribing(ws: web.WebSocketResponse, _request: web.Request) -> None:
        await handshake(ws, activity_timeout=1)  # and then ignore everything, pings included

    async def body() -> None:
        fake = FakePusher(silent_after_subscribing)
        async with serving(fake.app) as url:
            provider, inbox = fast(provider_for(url)), Inbox()
            try:
                started = time.monotonic()
                await provider.open_subscriber(CHANNEL, inbox.hooks())
                await inbox.until(lambda: inbox.reconnect_ns != [], timeout=5)
                assert time.monotonic() - started >= 1.3  # 1 s of silence, then 0.3 s without a pong
                assert fake.received.count(proto.client_ping()) == 1
                assert inbox.errors == ["pusher: no pong within 0.3 s of a ping"]
                assert inbox.drops == 1 and fake.connections == 2
                assert inbox.reconnect_ns[0] < 0.9e9  # pusher-js: retryIn(0)
            finally:
                await provider.aclose()

    run(body())


def test_server_pings_are_answered_and_a_quiet_line_is_pinged() -> None:
    async def pinging(ws: web.WebSocketResponse, _request: web.Request) -> None:
        await handshake(ws, activity_timeout=1)
        await ws.send_str(proto.ping())

    async def body() -> None:
        fake = FakePusher(pinging)
        async with serving(fake.app) as url:
            provider, inbox = fast(provider_for(url)), Inbox()
            try:
                await provider.open_subscriber(CHANNEL, inbox.hooks())
                await fake.until(lambda: proto.client_pong() in fake.received)
                await fake.until(lambda: proto.client_ping() in fake.received)  # nothing came for 1 s
                assert inbox.errors == [] and inbox.drops == 0
            finally:
                await provider.aclose()

    run(body())


# -- bad servers -----------------------------------------------------------------------------


def test_garbage_frames_are_counted_errors_and_the_subscription_lives_on() -> None:
    async def garbage(ws: web.WebSocketResponse, _request: web.Request) -> None:
        channel = await handshake(ws)
        await ws.send_str("not json")
        await ws.send_str("[1,2]")
        await ws.send_bytes(b"\x00\xff")
        await ws.send_str('{"event":"pusher:error","data":{"code":null,"message":"boom"}}')
        await ws.send_str(proto.channel_event("elsewhere", "rtbench", "not ours"))
        await ws.send_str(proto.channel_event(channel, "other-event", "not ours either"))
        await ws.send_str(proto.channel_event(channel, "rtbench", "ok"))

    async def body() -> None:
        fake = FakePusher(garbage)
        async with serving(fake.app) as url:
            provider, inbox = provider_for(url), Inbox()
            try:
                await provider.open_subscriber(CHANNEL, inbox.hooks())
                assert await inbox.wait_for(1) == ["ok"]
                assert [e.split(":", 2)[:2] for e in inbox.errors] == [
                    ["pusher", " malformed frame"],
                    ["pusher", " malformed frame"],
                    ["pusher", " malformed frame"],
                    ["pusher", "error boom"],
                ], inbox.errors
                assert "Invalid JSON" in inbox.errors[0] and "JSON object" in inbox.errors[1]
                assert inbox.drops == 0
            finally:
                await provider.aclose()

    run(body())


@pytest.mark.parametrize(
    ("raw", "hang_up", "reason"),
    [
        (b"\x81\x82\x00\x00\x00\x00hi", False, "pusher: websocket protocol error: server frame is masked"),
        (b"\xc1\x02hi", False, "pusher: websocket protocol error: reserved bits set"),
        (b"\x81\x7f" + (1 << 40).to_bytes(8, "big"), False, "pusher: websocket protocol error: message exceeds"),
        (b"\x81\x7e\x01\x00" + b"x" * 10, True, "pusher: connection closed by the server"),  # closed mid-frame
    ],
)
def test_broken_framing_is_an_error_a_drop_and_a_reconnect(raw: bytes, hang_up: bool, reason: str) -> None:
    subscribed = asyncio.Event()

    async def broken(ws: web.WebSocketResponse, request: web.Request) -> None:
        await handshake(ws)
        await subscribed.wait()  # broken bytes in the same read as the confirmation would fail the handshake
        assert request.transport is not None
        request.transport.write(raw)
        if hang_up:
            request.transport.close()

    async def body() -> None:
        fake = FakePusher(broken, well_behaved)
        async with serving(fake.app) as url:
            provider, inbox = provider_for(url), Inbox()
            try:
                await provider.open_subscriber(CHANNEL, inbox.hooks())
                subscribed.set()
                assert await inbox.wait_for(1, timeout=5) == ["after"]  # from the second connection
                assert len(inbox.errors) == 1 and inbox.errors[0].startswith(reason), inbox.errors
                assert inbox.drops == 1 and len(inbox.reconnect_ns) == 1
            finally:
                await provider.aclose()

    run(body())


@pytest.mark.parametrize(
    "stage", ["connecting", "waiting for pusher:connection_established", "waiting for the subscription to be confirmed"]
)
def test_a_server_that_never_answers_fails_the_connect_in_time_with_a_reason(stage: str) -> None:
    async def upgrade_only(ws: web.WebSocketResponse, _request: web.Request) -> None:
        if stage != "waiting for pusher:connection_established":
            await ws.send_str(proto.connection_established("1.1"))  # and never confirm the subscription

    async def body() -> None:
        fake = FakePusher(upgrade_only)
        with socket.socket() as listener:  # accepts TCP (the kernel's backlog) and never says a word
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            async with serving(fake.app) as fake_url:
                url = f"http://127.0.0.1:{listener.getsockname()[1]}" if stage == "connecting" else fake_url
                provider, inbox = fast(provider_for(url), connect_timeout_s=0.5), Inbox()
                started = time.monotonic()
                with pytest.raises(PusherConnectError) as info:
                    await provider.open_subscriber(CHANNEL, inbox.hooks())
                assert time.monotonic() - started < 1.5
                assert str(info.value) == f"{stage}: no answer within 0.5 s"
                assert not provider.subscribers.members and inbox.drops == 0
                await provider.aclose()

    run(body())


def test_closing_during_a_hopeless_reconnect_returns_at_once() -> None:
    async def cut(ws: web.WebSocketResponse, _request: web.Request) -> None:
        await handshake(ws)
        await ws.close(code=4200)

    done = asyncio.Event()

    async def silent(ws: web.WebSocketResponse, _request: web.Request) -> None:
        await done.wait()  # upgraded, then not a word until the test ends

    async def body() -> None:
        fake = FakePusher(cut, silent)
        async with serving(fake.app) as url:
            provider, inbox = fast(provider_for(url), connect_timeout_s=30), Inbox()
            subscriber = await provider.open_subscriber(CHANNEL, inbox.hooks())
            assert isinstance(subscriber, PusherSubscriber)
            await fake.until(lambda: fake.connections == 2)  # the reconnect waits for an answer that never comes
            assert inbox.drops == 1 and subscriber.reconnector.reconnecting
            started = time.monotonic()
            await subscriber.close()
            await provider.aclose()
            assert time.monotonic() - started < 0.5 and not subscriber.reconnector.reconnecting
            done.set()

    run(body())


# -- TLS ----------------------------------------------------------------------------------------


def test_wss_goes_through_the_same_transport_with_verification_on(tmp_path: Path) -> None:
    server_tls, client_tls = tls_contexts(tmp_path)

    async def body() -> None:
        async with target_here(ssl_context=server_tls) as (url, target):
            assert url.startswith("https://")
            # the system's CAs do not know this certificate: refused, with the reason
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await provider_for(url).open_subscriber(CHANNEL, Inbox().hooks())
            provider, inbox = provider_for(url, channel_type="presence"), Inbox()
            provider.tls_context = client_tls
            assert provider.endpoints.ws_url.startswith("wss://127.0.0.1:")
            try:
                subscriber = await provider.open_subscriber(CHANNEL, inbox.hooks())
                assert isinstance(subscriber, PusherSubscriber) and subscriber.rx_clock == RX_KERNEL
                sent_ns = time.time_ns()
                assert target.broadcast("presence-" + CHANNEL, "rtbench", "over tls") == 1
                assert await inbox.wait_for(1) == ["over tls"]
                assert sent_ns <= inbox.rx_ns[0] <= inbox.handled_ns[0]
            finally:
                await provider.aclose()

    run(body())
