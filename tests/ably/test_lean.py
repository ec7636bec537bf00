"""The lean Ably subscriber on the measuring transport: deliveries timed at the socket, liveness from the
connection's state, and bad servers met with counted, explained failures.

Servers are real and on loopback port 0: the reference target (killed and restarted on its port), a scripted
Ably-protocol server (aiohttp) for what the target never does, raw TCP servers for what is not Ably at all,
and a TLS proxy with a test CA in front of the target for ``wss``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from harness.net.stream import ConnectError
from harness.net.websocket import WebSocket
from harness.protocols import websocket as ws_proto
from harness.providers.ably import (
    AblyBackoff,
    AblyProvider,
    LeanAblySubscriber,
    idle_grace_ms,
)
from harness.providers.base import RX_KERNEL, SubscriberHooks
from tests.ably.conftest import TEST_KEY, Target
from tests.helpers import start_target
from tests.tls import tls_contexts

SECRET = TEST_KEY.split(":", 1)[1]


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def options(**kw: Any) -> argparse.Namespace:
    base = {
        "ably_key": TEST_KEY,
        "ably_publish": "realtime",
        "ably_format": "msgpack",
        "event": "ev",
        "ably_endpoint": "",
        "host": "http://set-on-the-command-line",
        "client": "lean",
    }
    return argparse.Namespace(**{**base, **kw})


class Seen:
    """What the hooks were told, and a way to wait for it (woken by every hook call, no polling)."""

    def __init__(self) -> None:
        self.data: list[tuple[object, int, int]] = []  # (payload, rx_ns, time it was handled)
        self.drops = 0
        self.back = 0
        self.reconnect_ns: list[int] = []
        self.errors: list[str] = []
        self._changed = asyncio.Event()

    def hooks(self) -> SubscriberHooks:
        return SubscriberHooks(
            on_data=self._data,
            on_drop=self._drop,
            on_resubscribed=self._back,
            on_error=self._error,
            on_reconnect_ns=self._reconnect,
        )

    def _data(self, data: object, rx_ns: int) -> None:
        self.data.append((data, rx_ns, time.time_ns()))
        self._changed.set()

    def _drop(self) -> None:
        self.drops += 1
        self._changed.set()

    def _back(self) -> None:
        self.back += 1
        self._changed.set()

    def _error(self, reason: str) -> None:
        self.errors.append(reason)
        self._changed.set()

    def _reconnect(self, ns: int) -> None:
        self.reconnect_ns.append(ns)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


# -- the reference target ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_both_formats_deliver_with_the_kernel_receive_time(target: Target, fmt: str) -> None:
    async def scenario() -> None:
        provider = AblyProvider(target.url, options(ably_format=fmt))
        seen = Seen()
        sub = await provider.open_subscriber("chan", seen.hooks())
        assert isinstance(sub, LeanAblySubscriber) and sub.rx_clock == RX_KERNEL
        publisher = await provider.open_publisher()
        before = time.time_ns()
        for i in range(5):
            await publisher.publish("chan", f"probe-{i}")
        await seen.until(lambda: len(seen.data) == 5, 10)
        after = time.time_ns()
        assert [d for d, _, _ in seen.data] == [f"probe-{i}" for i in range(5)]
        for _, rx_ns, handled_ns in seen.data:
            assert before <= rx_ns <= handled_ns <= after
        assert [rx for _, rx, _ in seen.data] == sorted(rx for _, rx, _ in seen.data)
        assert seen.drops == 0 and seen.errors == []
        await publisher.close()
        await sub.close()
        await provider.aclose()

    run(scenario())


def test_target_killed_and_restarted_on_its_port_is_a_drop_and_a_timed_reconnect() -> None:
    """SIGKILL: the kernel ends the sockets, so the drop is seen at once (ably-python took ~25 s)."""
    args = ("--key", TEST_KEY, "--max-idle-ms", "400")
    url, proc = start_target("targets.ably", "--port", "0", *args)
    port = url.rsplit(":", 1)[1]
    procs = [proc]

    async def scenario() -> None:
        provider = AblyProvider(url, options(ably_publish="rest"))
        seen = Seen()
        sub = await provider.open_subscriber("chan", seen.hooks())
        killed_at = time.monotonic()
        proc.kill()
        await seen.until(lambda: seen.drops == 1, 5)
        restarted = asyncio.ensure_future(asyncio.to_thread(start_target, "targets.ably", "--port", port, *args))
        await seen.until(lambda: seen.back == 1, 15)
        back_after = time.monotonic() - killed_at
        procs.append((await restarted)[1])
        assert back_after < 10, f"reconnected after {back_after:.1f} s"
        assert len(seen.reconnect_ns) == 1 and 0 < seen.reconnect_ns[0] < back_after * 1e9
        assert seen.drops == 1 and seen.errors == []
        publisher = await provider.open_publisher()
        await publisher.publish("chan", "after-restart")
        await seen.until(lambda: len(seen.data) == 1, 10)
        assert seen.data[0][0] == "after-restart"
        await publisher.close()
        await sub.close()
        await provider.aclose()

    try:
        run(scenario(), timeout=40)
    finally:
        for p in procs:
            p.stop()


# -- a scripted Ably server -------------------------------------------------------------------------
class FakeAbly:
    """Speaks JSON Ably to each connection: optionally a first frame of its own (garbage, an ERROR),
    CONNECTED with ``max_idle_ms``, ATTACHED when asked (if ``answer_attach``); the test pushes the rest."""

    def __init__(self) -> None:
        self.first_frame: str | None = None
        self.send_connected = True
        self.answer_attach = True
        self.max_idle_ms = 60_000
        self.live: list[web.WebSocketResponse] = []
        self.attaches: list[str] = []
        self.queries: list[dict[str, str]] = []
        self.port = 0

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.queries.append(dict(request.query))
        if self.first_frame is not None:
            await ws.send_str(self.first_frame)
        if self.send_connected:
            await ws.send_str(
                json.dumps(
                    {
                        "action": 4,
                        "connectionId": f"fake{len(self.live)}",
                        "connectionDetails": {"maxIdleInterval": self.max_idle_ms},
                    }
                )
            )
        self.live.append(ws)
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            if message.get("action") == 10:
                self.attaches.append(message["channel"])
                if self.answer_attach:
                    await ws.send_str(json.dumps({"action": 11, "channel": message["channel"], "flags": 0}))
        return ws

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def fake_ably() -> AsyncIterator[FakeAbly]:
    fake = FakeAbly()
    app = web.Application()
    app.router.add_get("/", fake.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake
    finally:
        await runner.cleanup()


async def lean(fake: FakeAbly, seen: Seen, timeout_s: float = 5.0) -> LeanAblySubscriber:
    provider = AblyProvider(fake.url, options(ably_format="json"))
    provider.connect_timeout_s = timeout_s
    sub = await provider.open_subscriber("chan", seen.hooks())
    assert isinstance(sub, LeanAblySubscriber)
    return sub


def test_connect_query_and_a_delivery_from_the_scripted_server() -> None:
    async def scenario() -> None:
        async with fake_ably() as fake:
            seen = Seen()
            sub = await lean(fake, seen)
            assert fake.queries == [
                {"key": TEST_KEY, "format": "json", "heartbeats": "true", "v": "6", "echo": "false"}
            ]
            assert fake.attaches == ["chan"]
            await fake.live[0].send_str(
                '{"action":15,"channel":"chan","messages":[{"name":"ev","data":"aGk=",'
                '"encoding":"utf-8/base64"},{"name":"no","data":"x"}]}'
            )
            await seen.until(lambda: len(seen.data) == 1, 5)
            assert seen.data[0][0] == "hi"
            await sub.close()

    run(scenario())


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ('{"action":13,"channel":"chan","error":{"message":"gone","code":90198,"statusCode":500}}', None),
        ('{"action":6,"error":{"message":"going away","code":80003,"statusCode":503}}', None),
        ('{"action":9,"error":{"message":"internal","code":50000,"statusCode":500}}', None),
        ('{"action":9,"channel":"chan","error":{"message":"later","code":90000,"statusCode":500}}', None),
        ('{"action":8}', None),
        ("not json at all", "Ably sent an undecodable frame: Unable to decode json protocol message"),
    ],
)
def test_what_ends_a_subscription_is_a_drop_then_a_fresh_connection_and_attach(frame: str, error: str | None) -> None:
    async def scenario() -> None:
        async with fake_ably() as fake:
            seen = Seen()
            sub = await lean(fake, seen)
            await fake.live[0].send_str(frame)
            await seen.until(lambda: seen.back == 1, 10)
            assert seen.drops == 1 and len(seen.reconnect_ns) == 1
            assert len(fake.live) == 2 and fake.attaches == ["chan", "chan"]
            if error is None:
                assert seen.errors == []
            else:
                assert len(seen.errors) == 1 and seen.errors[0].startswith(error)
            await fake.live[1].send_str('{"action":15,"channel":"chan","messages":[{"name":"ev","data":"again"}]}')
            await seen.until(lambda: len(seen.data) == 1, 5)
            await sub.close()

    run(scenario())


def test_a_fatal_error_ends_in_giving_up_with_ablys_reason() -> None:
    async def scenario() -> None:
        async with fake_ably() as fake:
            seen = Seen()
            sub = await lean(fake, seen)
            refusal = '{"action":9,"error":{"message":"Key revoked","code":40101,"statusCode":401}}'
            fake.first_frame, fake.send_connected = refusal, False  # every new connection is refused
            await fake.live[0].send_str(refusal)
            await seen.until(lambda: bool(seen.errors), 10)
            assert seen.errors == ["40101 Key revoked"]
            assert seen.drops == 1 and seen.back == 0 and not sub.reconnector.reconnecting
            assert len(fake.queries) == 2  # one attempt to come back, refused, and no more
            await sub.close()

    run(scenario())


def test_silence_past_max_idle_interval_is_a_drop() -> None:
    """The server stops sending (no heartbeats): dropped after maxIdleInterval + grace, not never."""

    async def scenario() -> None:
        async with fake_ably() as fake:
            fake.max_idle_ms = 200
            seen = Seen()
            sub = await lean(fake, seen)
            started = time.monotonic()
            await seen.until(lambda: seen.drops == 1, 5)
            silent = time.monotonic() - started
            assert (200 + idle_grace_ms(200)) / 1000 - 0.2 <= silent < 3.0
            await seen.until(lambda: seen.back == 1, 5)  # and it comes back on a fresh connection
            assert len(fake.live) == 2
            await sub.close()

    run(scenario())


def test_heartbeats_keep_a_quiet_connection_alive(target: Target) -> None:
    """The target's heartbeats come every 200 ms (maxIdleInterval 400, so 1.4 s of silence would drop):
    nothing is published for 2 s and the connection stays up."""

    async def scenario() -> None:
        provider = AblyProvider(target.url, options())
        seen = Seen()
        sub = await provider.open_subscriber("chan", seen.hooks())
        connection = sub.connection if isinstance(sub, LeanAblySubscriber) else None
        assert isinstance(connection, WebSocket)
        with pytest.raises(TimeoutError):
            await seen.until(lambda: seen.drops > 0 or bool(seen.errors), 2.0)
        assert time.time_ns() - connection.last_rx_ns < 400_000_000 and not connection.closed
        await sub.close()
        await provider.aclose()

    run(scenario())


# -- servers that are not Ably ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("first_frame", "Ably sent an undecodable frame: Unable to decode json protocol message"),
        ("no_connected", "no CONNECTED from Ably within"),
        ("no_attached", "no ATTACHED from Ably within"),
    ],
)
def test_a_bad_handshake_is_a_failed_connect_with_a_reason(script: str, reason: str) -> None:
    async def scenario() -> None:
        async with fake_ably() as fake:
            if script == "first_frame":
                fake.first_frame = "<html>not Ably</html>"
            elif script == "no_connected":
                fake.send_connected = False
            else:
                fake.answer_attach = False
            seen = Seen()
            started = time.monotonic()
            with pytest.raises(ConnectionError) as info:
                await lean(fake, seen, timeout_s=1.0)
            assert time.monotonic() - started < 1.5
            assert str(info.value).startswith(reason), str(info.value)
            assert SECRET not in str(info.value) and seen.drops == 0

    run(scenario())


@asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer a websocket upgrade correctly (so what follows is the test)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    key = next(
        line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("sec-websocket-key:")
    )
    writer.write(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {ws_proto.accept_for(key)}\r\n\r\n"
        ).encode("latin-1")
    )


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("silent", "no websocket upgrade from 127.0.0.1:"),
        ("http", "websocket upgrade refused: server answered HTTP 404"),
        ("bad_frame", "websocket protocol error: reserved bits set"),
        ("cut_mid_frame", "connection closed by the server"),
    ],
)
def test_servers_that_are_not_ably_fail_the_connect_in_time(behaviour: str, reason: str) -> None:
    held: list[asyncio.StreamWriter] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # never closed by us while the client waits: silence is the point
        if behaviour == "silent":
            return
        if behaviour == "http":
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        await upgrade(reader, writer)
        if behaviour == "bad_frame":
            writer.write(b"\xf1\x02hi")  # RSV bits set: no extension was negotiated
        else:
            writer.write(b"\x81\x7e\x01\x00" + b"{" * 10)  # a 256-byte text frame, cut after 10 bytes
            await writer.drain()
            writer.close()

    async def scenario() -> None:
        async with raw_server(handler) as port:
            provider = AblyProvider(f"http://127.0.0.1:{port}", options(ably_format="json"))
            provider.connect_timeout_s = 1.0
            seen = Seen()
            started = time.monotonic()
            with pytest.raises(ConnectionError) as info:
                await provider.open_subscriber("chan", seen.hooks())
            assert time.monotonic() - started < 1.5
            assert reason in str(info.value), str(info.value)
            assert SECRET not in str(info.value)
            for writer in held:
                writer.close()

    run(scenario())


def test_garbage_on_a_live_connection_is_a_counted_error_and_a_drop() -> None:
    async def scenario() -> None:
        async with fake_ably() as fake:
            seen = Seen()
            sub = await lean(fake, seen)
            await fake.live[0].send_bytes(b"\x00\x01binary on a json connection")
            await seen.until(lambda: seen.drops == 1 and bool(seen.errors), 5)
            assert seen.errors[0].startswith("Ably sent an undecodable frame: Unable to decode json protocol message")
            await sub.close()

    run(scenario())


# -- TLS and the real service's address -------------------------------------------------------------
def test_wss_through_tls_with_the_certificate_verified(target: Target, tmp_path: Path) -> None:
    """A TLS proxy (test CA, ``localhost``) in front of the target: the lean client speaks wss over the
    same timestamped reads, and refuses the certificate when it does not trust the CA."""
    server_tls, client_tls = tls_contexts(tmp_path)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def scenario() -> None:
        server = await asyncio.start_server(proxy, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        try:
            secure = AblyProvider(f"https://localhost:{port}", options(host=f"https://localhost:{port}"))
            secure.tls_context = client_tls
            seen = Seen()
            sub = await secure.open_subscriber("chan", seen.hooks())
            assert sub.rx_clock == RX_KERNEL
            plain = AblyProvider(target.url, options())
            publisher = await plain.open_publisher()
            before = time.time_ns()
            await publisher.publish("chan", "over-tls")
            await seen.until(lambda: len(seen.data) == 1, 10)
            assert seen.data[0][0] == "over-tls" and before <= seen.data[0][1] <= seen.data[0][2]
            await publisher.close()
            await sub.close()
            untrusting = AblyProvider(f"https://localhost:{port}", options(host=f"https://localhost:{port}"))
            with pytest.raises(ConnectError, match="certificate verify failed") as info:
                await untrusting.open_subscriber("chan", Seen().hooks())
            assert SECRET not in str(info.value)
            for provider in (secure, plain, untrusting):
                await provider.aclose()
        finally:
            server.close()

    run(scenario())


def test_cloud_mode_connects_to_the_endpoints_realtime_host_over_wss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABLY_API_KEY", raising=False)
    cloud = AblyProvider("https://rest.ably.io", options(host=None))
    assert cloud._ws_url.startswith("wss://main.realtime.ably.net/?key=testapp.k1%3A")
    sandbox = AblyProvider(
        "https://rest.ably.io", options(host=None, ably_endpoint="nonprod:sandbox", ably_format="json")
    )
    assert sandbox._ws_url.startswith("wss://sandbox.realtime.ably-nonprod.net/?key=")
    assert "format=json" in sandbox._ws_url and "echo=false" in sandbox._ws_url
    local = AblyProvider("http://127.0.0.1:8081", options(host="http://127.0.0.1:8081"))
    assert local._ws_url.startswith("ws://127.0.0.1:8081/?key=") and "format=msgpack" in local._ws_url
    assert cloud.tls_context is None  # the system's trust store, verification on


def test_retry_delays_follow_ably_js() -> None:
    backoff = AblyBackoff()
    for attempt, coefficient in ((1, 4 / 3), (2, 5 / 3), (3, 2.0), (9, 2.0)):
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0.8 * coefficient - 1e-9 <= d <= coefficient + 1e-9 for d in delays)
        assert max(delays) - min(delays) > 0.05 * coefficient  # jittered, so a crowd does not retry in step
    assert idle_grace_ms(15_000) == 5_000 and idle_grace_ms(400) == 1_000 and idle_grace_ms(60_000) == 10_000
