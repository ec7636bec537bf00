"""One aiohttp ClientSession per process and loop, shared by every connection a provider opens."""

from __future__ import annotations

import asyncio
import socket

import aiohttp

_sessions: dict[int, aiohttp.ClientSession] = {}


def _native_socket_factory(addr_info: tuple[int, int, int, str, tuple[str, int]]) -> socket.socket:
    """A real (not gevent-patched) socket: this session lives on the bridge's native thread."""
    family, type_, proto, _, _ = addr_info
    try:
        from gevent import monkey

        native = monkey.get_original("socket", "socket")
    except ImportError:
        native = socket.socket
    sock: socket.socket = native(family=family, type=type_, proto=proto)
    sock.setblocking(False)
    return sock


async def shared_session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _sessions.get(id(loop))
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, socket_factory=_native_socket_factory)
        session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None, connect=15))
        _sessions[id(loop)] = session
    return session


async def close_shared_session() -> None:
    session = _sessions.pop(id(asyncio.get_running_loop()), None)
    if session is not None:
        await session.close()
