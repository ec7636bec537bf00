"""The Socket.IO reference target, end to end: real subprocess, real clients, loopback, port 0.

Synchronisation is by events only. Absence of a delivery is proven with ordering: Socket.IO keeps
per-connection order, so once a later broadcast (a "fence") has arrived, anything that was going to
arrive before it has.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from targets.base import CORRUPT_PAYLOAD, Faults
from targets.socketio.server import TARGET as TARGET_KEY
from targets.socketio.server import build_app
from tests.helpers import NODE_DIR, REPO, TargetProcess, node_available, start_target
from tests.targets.nesting import DEEP_JSON

pytestmark = pytest.mark.timeout(60)

TARGET = "targets.socketio"
needs_node = [
    pytest.mark.node,
    pytest.mark.skipif(not node_available(), reason="tests/node/node_modules missing: run `npm ci` in tests/node"),
]


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Client:
    """python-socketio AsyncClient (websocket only, as the harness uses it) recording every event."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        self._changed = asyncio.Event()
        self.sio.on("*", self._on_any)
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_any(self, event: str, *args: Any) -> None:
        self.events.append((event, args[0] if args else None))
        self._changed.set()

    async def _on_disconnect(self, *_: Any) -> None:
        self.disconnected.set()

    async def connect(self, url: str, transports: list[str] | None = None) -> None:
        await self.sio.connect(url, transports=transports or ["websocket"], wait_timeout=10)

    def got(self, event: str = "message") -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def wait_for(
        self, predicate: Callable[[list[Any]], bool], event: str = "message", timeout: float = 5.0
    ) -> None:
        """Wait until ``predicate(data of every `event` received so far)`` holds."""
        async with asyncio.timeout(timeout):
            while not predicate(self.got(event)):
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


def at_least(n: int) -> Callable[[list[Any]], bool]:
    return lambda got: len(got) >= n


@asynccontextmanager
async def connected(url: str, n: int, transports: list[str] | None = None) -> AsyncIterator[list[Client]]:
    """n connected clients, disconnected on exit (also when the test fails)."""
    clients = [Client() for _ in range(n)]
    try:
        await asyncio.gather(*(c.connect(url, transports) for c in clients))
        yield clients
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def http_json(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def fence(url: str, clients: list[Client], tag: str) -> None:
    """Broadcast a marker to everyone over HTTP and wait until every client has it."""
    status, body = await http_json("POST", f"{url}/api/publish", json={"event": "fence", "data": tag})
    assert status == 200 and body["recipients"] >= len(clients)
    await asyncio.gather(*(c.wait_for(lambda got: tag in got, "fence") for c in clients))


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    url, proc = start_target(TARGET, "--port", "0")
    yield url
    assert proc.stop() == 0, proc.stderr_text()


# -- startup, /healthz ----------------------------------------------------------------------------


def test_ready_line_and_healthz(target: str) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", target)

    async def scenario() -> None:
        assert await http_json("GET", f"{target}/healthz") == (
            200,
            {"ok": True, "target": "socketio", "connections": 0},
        )
        async with connected(target, 3):
            status, body = await http_json("GET", f"{target}/healthz")
            assert (status, body["connections"]) == (200, 3)

    run(scenario())


def test_ipv6_ready_line() -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    url, proc = start_target(TARGET, "--host", "::1", "--port", "0")
    try:
        assert re.fullmatch(r"http://\[::1\]:\d+", url)
        assert run(http_json("GET", f"{url}/healthz"))[1]["ok"] is True
    finally:
        assert proc.stop() == 0


# -- the event interface --------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["python", pytest.param("node", marks=needs_node)])
def test_message_broadcast_reaches_every_client_including_sender(server: str, target: str) -> None:
    """Same behaviour as the plain Node server `socket.on('message', d => io.emit('message', d))`."""
    proc: TargetProcess | None = None
    url = target
    if server == "node":
        url, proc = start_target("socketio_broadcast_server.js", "0")

    async def scenario() -> None:
        async with connected(url, 3) as clients:
            payload = {"seq": 1, "text": "héllo", "nested": [1, None, True]}
            await clients[0].sio.emit("message", payload)
            await asyncio.gather(*(c.wait_for(at_least(1)) for c in clients))
            assert [c.got() for c in clients] == [[payload]] * 3

    try:
        run(scenario())
    finally:
        if proc is not None:
            assert proc.stop() == 0


def test_rooms_socket_publish_and_http_publish(target: str) -> None:
    async def scenario() -> None:
        async with connected(target, 3) as (a, b, c):
            assert await a.sio.call("subscribe", "todos", timeout=5) is True
            assert await b.sio.call("subscribe", "other", timeout=5) is True
            assert await a.sio.call("subscribe", 42, timeout=5) is False

            # socket publish to a room: ack = recipients; only the member gets it, under the chosen event
            ack = await c.sio.call(
                "publish", {"channel": "todos", "event": "todo:created", "data": {"id": 1}}, timeout=5
            )
            assert ack == 1
            # HTTP publish (the "emit after a REST mutation" path), default event "message"
            status, body = await http_json(
                "POST", f"{target}/api/publish", json={"channel": "todos", "data": {"id": 2}}
            )
            assert (status, body) == (200, {"recipients": 1})
            await fence(target, [a, b, c], "f1")
            assert a.got("todo:created") == [{"id": 1}]
            assert a.got("message") == [{"id": 2}]
            for other in (b, c):
                assert [e for e, _ in other.events] == ["fence"]

            # no channel = everyone; unsubscribe stops deliveries
            assert await c.sio.call("publish", {"data": "all"}, timeout=5) == 3
            assert await a.sio.call("unsubscribe", "todos", timeout=5) is True
            assert await c.sio.call("publish", {"channel": "todos", "data": "gone"}, timeout=5) == 0
            await fence(target, [a, b, c], "f2")
            assert a.got("message") == [{"id": 2}, "all"]
            assert b.got("message") == c.got("message") == ["all"]

            # bad publish requests
            assert "error" in await c.sio.call("publish", {"channel": "todos"}, timeout=5)
            assert "error" in await c.sio.call("publish", {"event": "disconnect", "data": 1}, timeout=5)

    run(scenario())


def test_order_sizes_and_transports(target: str) -> None:
    """Websocket clients get pre-built frames written straight to their socket, polling clients go
    through engine.io's queue; both must see every size of payload, in publish order, while the
    publisher's own acks are interleaved with its deliveries."""

    async def scenario() -> None:
        async with connected(target, 2) as (ws_a, ws_b), connected(target, 1, ["polling"]) as (polling,):
            assert (ws_a.sio.transport(), polling.sio.transport()) == ("websocket", "polling")
            clients = [ws_a, ws_b, polling]
            assert await asyncio.gather(*(c.sio.call("subscribe", "o", timeout=5) for c in clients)) == [True] * 3

            # 125/126 and 65535/65536 bytes are where the websocket frame header changes size.
            sizes = [0, 1, 100, 125, 126, 127, 1000, 65_535, 65_536, 200_000]
            expected = [{"n": i, "pad": "é" * (size // 2) + "x" * (size % 2)} for i, size in enumerate(sizes)]
            expected += [{"n": len(expected) + i} for i in range(150)]
            for i, data in enumerate(expected):
                body = {"channel": "o", "data": data}
                if i % 3 == 0:  # no ack: the next call on the same connection is handled after it
                    await ws_a.sio.emit("publish", body)
                elif i % 3 == 1:
                    assert await ws_a.sio.call("publish", body, timeout=5) == 3
                else:
                    assert await http_json("POST", f"{target}/api/publish", json=body) == (
                        200,
                        {"recipients": 3},
                    )
            await asyncio.gather(*(c.wait_for(at_least(len(expected)), timeout=10) for c in clients))
            for c in clients:
                assert c.got() == expected

    run(scenario())


def test_http_publish_errors(target: str) -> None:
    url = f"{target}/api/publish"

    async def scenario() -> None:
        cases: list[tuple[dict[str, Any], int]] = [
            ({"data": b"{not json"}, 400),
            ({"json": ["a", "list"]}, 400),
            ({"json": {"channel": "x"}}, 400),  # missing data
            ({"json": {"channel": 5, "data": 1}}, 400),
            ({"json": {"event": "", "data": 1}}, 400),
            ({"json": {"event": "connect", "data": 1}}, 400),
            ({"data": b'{"data": "' + b"x" * (1024 * 1024) + b'"}'}, 413),
            ({"json": {"data": None}}, 200),
        ]
        for kwargs, expected in cases:
            status, body = await http_json("POST", url, **kwargs)
            assert status == expected, (kwargs.get("json"), body)
            assert ("error" in body) == (expected != 200)

    run(scenario())


# -- faults ---------------------------------------------------------------------------------------


def test_drop_rate_calibration() -> None:
    """--drop-rate 0.1: delivered count within 5 sigma of the binomial mean, never more than sent,
    no duplicates, order kept."""
    n_clients, n_messages, p_drop = 20, 200, 0.1
    url, proc = start_target(TARGET, "--port", "0", "--drop-rate", str(p_drop), "--seed", "1")

    async def scenario() -> None:
        async with connected(url, n_clients) as clients:
            acks = await asyncio.gather(*(c.sio.call("subscribe", "calib", timeout=5) for c in clients))
            assert acks == [True] * n_clients
            publisher = clients[0]
            for seq in range(n_messages):
                ack = await publisher.sio.call("publish", {"channel": "calib", "data": {"seq": seq}}, timeout=5)
                assert ack == n_clients  # recipients at publish time; drops are not subtracted
            # Sentinels are subject to drops too: keep sending until every client has one. Order per
            # connection then guarantees every earlier delivery has arrived (or was dropped).
            for k in range(50):
                await publisher.sio.call("publish", {"channel": "calib", "data": {"sentinel": k}}, timeout=5)
                try:
                    await asyncio.gather(
                        *(c.wait_for(lambda got: any("sentinel" in d for d in got), timeout=0.5) for c in clients)
                    )
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("sentinels never reached every client")

            total = 0
            for c in clients:
                seqs = [d["seq"] for d in c.got() if "seq" in d]
                assert seqs == sorted(set(seqs)), "duplicates or reordering"
                assert len(seqs) <= n_messages
                total += len(seqs)
            sent = n_clients * n_messages
            mean = sent * (1 - p_drop)
            sigma = math.sqrt(sent * p_drop * (1 - p_drop))
            assert mean - 5 * sigma <= total <= mean + 5 * sigma, (total, mean, sigma)
            assert total < sent

    try:
        run(scenario())
    finally:
        assert proc.stop() == 0


def test_delay_is_a_floor() -> None:
    url, proc = start_target(TARGET, "--port", "0", "--delay-ms", "50")

    async def scenario() -> None:
        async with connected(url, 1) as (client,):
            round_trips = []
            for seq in range(5):
                start = time.perf_counter()
                await client.sio.emit("message", {"seq": seq})
                await client.wait_for(at_least(seq + 1))
                round_trips.append(time.perf_counter() - start)
            assert client.got() == [{"seq": i} for i in range(5)]
            assert min(round_trips) >= 0.050, round_trips
            assert max(round_trips) < 2.0, round_trips

    try:
        run(scenario())
    finally:
        assert proc.stop() == 0


def test_corrupt_rate_one_replaces_every_delivery() -> None:
    url, proc = start_target(TARGET, "--port", "0", "--corrupt-rate", "1")

    async def scenario() -> None:
        async with connected(url, 2) as (a, b):
            assert await a.sio.call("subscribe", "c", timeout=5) is True
            assert await b.sio.call("subscribe", "c", timeout=5) is True
            status, body = await http_json("POST", f"{url}/api/publish", json={"channel": "c", "data": {"seq": 1}})
            assert (status, body) == (200, {"recipients": 2})
            await a.sio.emit("message", {"seq": 2})
            for c in (a, b):
                await c.wait_for(at_least(2))
                assert c.got() == [CORRUPT_PAYLOAD, CORRUPT_PAYLOAD]

    try:
        run(scenario())
    finally:
        assert proc.stop() == 0


# -- the official Node client ---------------------------------------------------------------------


@pytest.mark.node
@pytest.mark.skipif(not node_available(), reason="tests/node/node_modules missing: run `npm ci` in tests/node")
def test_official_node_client_receives_http_publish(target: str) -> None:
    async def scenario() -> None:
        probe = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / "socketio_client_probe.js"),
            target,
            "todos",
            "2",
            "10000",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert probe.stderr is not None
            line = await asyncio.wait_for(probe.stderr.readline(), 10)
            assert line.decode().strip() == "subscribed true"
            for body in (
                {"channel": "todos", "data": {"id": 1, "title": "first"}},
                {"channel": "elsewhere", "data": "not for the probe"},
                {"channel": "todos", "data": [2, "second"]},
            ):
                status, _ = await http_json("POST", f"{target}/api/publish", json=body)
                assert status == 200
            stdout, stderr = await asyncio.wait_for(probe.communicate(), 10)
        finally:
            if probe.returncode is None:
                probe.kill()
                await probe.wait()
        assert probe.returncode == 0, stderr.decode()
        assert [json.loads(x) for x in stdout.decode().splitlines()] == [
            {"id": 1, "title": "first"},
            [2, "second"],
        ]

    run(scenario())


# -- shutdown and usage errors --------------------------------------------------------------------


def test_sigterm_with_50_clients_exits_0_promptly() -> None:
    url, proc = start_target(TARGET, "--port", "0")

    async def scenario() -> None:
        async with connected(url, 50) as clients:
            assert (await http_json("GET", f"{url}/healthz"))[1]["connections"] == 50
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            status = await asyncio.to_thread(proc.wait, 10)
            elapsed = time.monotonic() - start
            assert status == 0, proc.stderr_text()
            assert elapsed < 3.0, elapsed
            # the server closed the websockets: every client notices without waiting for a ping timeout
            await asyncio.wait_for(asyncio.gather(*(c.disconnected.wait() for c in clients)), 5)

    try:
        run(scenario())
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drop-rate", "1.5"], "--drop-rate must be between 0 and 1"),
        (["--corrupt-rate", "-0.1"], "--corrupt-rate must be between 0 and 1"),
        (["--delay-ms", "-1"], "--delay-ms must be a finite number >= 0"),
        (["--port", "busy"], "address already in use"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], message: str) -> None:
    with socket.socket() as busy:  # a live listener: the target must refuse to share its port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = [str(busy.getsockname()[1]) if a == "busy" else a for a in args]
        done = subprocess.run(
            [sys.executable, "-m", TARGET, "--port", "0", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("targets.socketio: error: ")
    assert message in lines[0]


def test_fast_path_is_taken_in_process() -> None:
    """Guards the direct-write fan-out against engine.io internals moving: websocket clients must be
    served by pre-built frames, polling clients by engine.io's queue (tests above prove both correct)."""

    async def scenario() -> None:
        app = build_app(argparse.Namespace(), Faults())
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        target = app[TARGET_KEY]
        try:
            async with connected(url, 3) as ws_clients, connected(url, 1, ["polling"]) as (polling,):
                everyone = [*ws_clients, polling]
                for i in range(20):
                    assert target.broadcast("message", {"i": i}, None) == 4
                    await fence(url, everyone, f"f{i}")  # lets every writer go idle again
                assert all(c.got() == [{"i": i} for i in range(20)] for c in everyone)
                # 20 messages + 20 fences to 3 websockets; the polling client always goes through the queue
                assert target.sent_direct >= 0.9 * 40 * 3, (target.sent_direct, target.sent_queued)
                assert target.sent_queued >= 40
        finally:
            await runner.cleanup()

    run(scenario())


# -- hostile nesting (issue 11 item 12) -----------------------------------------------------------


def test_deeply_nested_json_is_refused_like_bad_json_and_everyone_keeps_being_served() -> None:
    """200 KB of ``[[[...]]]``: a 400 over HTTP; over engine.io (websocket or polling) a packet dropped as
    malformed ones are, the connection still answering; never a RecursionError."""
    url, proc = start_target(TARGET, "--port", "0")

    async def scenario() -> None:
        async with connected(url, 1) as (listener,), aiohttp.ClientSession() as session:
            async with session.post(f"{url}/api/publish", data=('{"data":' + DEEP_JSON + "}").encode()) as resp:
                assert resp.status == 400 and "nested deeper" in (await resp.json())["error"]
            ws = await session.ws_connect(url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket")
            assert (await ws.receive_str(timeout=5)).startswith("0")
            await ws.send_str("40")
            assert (await ws.receive_str(timeout=5)).startswith("40")
            await ws.send_str('42["message",' + DEEP_JSON + "]")  # a Socket.IO event
            await ws.send_str("4" + DEEP_JSON)  # an engine.io message whose payload engine.io parses as JSON
            await ws.send_str('421["subscribe","after-deep"]')
            assert await ws.receive_str(timeout=5) == "431[true]"
            await ws.close()
            polling = f"{url}/socket.io/?EIO=4&transport=polling"
            async with session.get(polling) as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            for body in ("40", "4" + DEEP_JSON):
                async with session.post(f"{polling}&sid={sid}", data=body.encode()) as resp:
                    assert resp.status == 200, body[:10]
            status, body = await http_json("POST", f"{url}/api/publish", json={"data": "after"})
            assert status == 200 and body["recipients"] >= 1
            await listener.wait_for(lambda got: "after" in got)
            assert listener.got() == ["after"]  # nothing of the deep packets was broadcast

    try:
        run(scenario())
    finally:
        proc.stop()
    assert "RecursionError" not in proc.stderr_text()
