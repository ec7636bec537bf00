"""Which node answered: ``--node-id`` puts ``X-Rtbench-Node`` on every response (the websocket 101 and
the SSE stream included) and the id on /healthz; a lone target sends none; ``--redis`` alone defaults
it to HOSTNAME:PORT. A node that cannot reach Redis at startup exits 2 with one line."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from targets.base import NODE_HEADER
from tests.helpers import REPO, running_target
from tests.infra.redis import redis_server, require_redis

pytestmark = pytest.mark.timeout(60)


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def upgrade_headers(url: str, path: str) -> tuple[str, dict[str, str]]:
    """A raw websocket upgrade: (status line, headers) of the answer, as the bytes say."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    writer.close()
    status, *lines = head.strip().split("\r\n")
    return status, {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}


async def get(session: aiohttp.ClientSession, url: str) -> tuple[dict[str, Any], str | None]:
    async with session.get(f"{url}/healthz") as resp:
        return await resp.json(), resp.headers.get(NODE_HEADER)


def test_socketio_websocket_upgrade_and_http_carry_the_node() -> None:
    async def main(url: str) -> None:
        status, headers = await upgrade_headers(url, "/socket.io/?EIO=4&transport=websocket")
        assert status.startswith("HTTP/1.1 101"), status
        assert headers[NODE_HEADER.lower()] == "node-7"
        async with aiohttp.ClientSession() as session:
            body, header = await get(session, url)
            assert (body["node"], header) == ("node-7", "node-7")
            async with session.post(f"{url}/api/publish", json={"data": 1}) as resp:
                assert resp.headers[NODE_HEADER] == "node-7"
            async with session.get(f"{url}/socket.io/?EIO=4&transport=polling") as resp:  # engine.io's own
                assert resp.status == 200 and resp.headers[NODE_HEADER] == "node-7"

    with running_target("targets.socketio", "--port", "0", "--node-id", "node-7") as url:
        run(main(url))


def test_sse_stream_carries_the_node() -> None:
    async def main(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/api/events") as resp:
                assert resp.content_type == "text/event-stream"
                assert resp.headers[NODE_HEADER] == "b"
            async with session.post(f"{url}/api/publish", json={"data": 1}) as resp:
                assert resp.headers[NODE_HEADER] == "b"
            async with session.get(f"{url}/nowhere") as resp:
                assert resp.status == 404 and resp.headers[NODE_HEADER] == "b"

    with running_target("targets.sse", "--port", "0", "--node-id", "b") as url:
        run(main(url))


def test_a_lone_target_names_no_node() -> None:
    async def main(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            body, header = await get(session, url)
            assert header is None and "node" not in body and "redis" not in body

    with running_target("targets.sse", "--port", "0") as url:
        run(main(url))


@pytest.mark.parametrize("module", ["targets.socketio", "targets.sse"])
def test_redis_without_node_id_defaults_to_host_and_port(module: str) -> None:
    async def main(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            body, header = await get(session, url)
            expected = f"{socket.gethostname()}:{url.rsplit(':', 1)[1]}"
            assert (body["node"], header) == (expected, expected)
            assert body["redis"]["subscribed"] is True

    with redis_server() as redis, running_target(module, "--port", "0", "--redis", redis.url) as url:
        run(main(url))


@pytest.mark.parametrize("module", ["targets.socketio", "targets.sse"])
def test_unreachable_redis_at_startup_exits_2_with_one_line(module: str) -> None:
    require_redis()  # the same skip as the other node tests: no Redis here, no claim about one
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", module, "--port", "0", "--redis", f"redis://:secret@127.0.0.1:{port}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # never reported ready
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{module}: error: cannot reach Redis at "), done.stderr
    assert "secret" not in done.stderr


def test_bad_node_id_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "targets.sse", "--port", "0", "--node-id", "a b"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "targets.sse: error: --node-id must be 1-64 visible ASCII characters"
