"""Targets running as several nodes on one Redis, for the scale-out tests.

``with redis_nodes("targets.sse", 2) as (redis, urls):`` starts a throwaway Redis and two nodes on it
(``--node-id n0``, ``n1``, free ports), stops them on exit, and checks they exited cleanly.
``wait_health`` polls a node's /healthz until a condition holds: how a test learns that a node lost or
regained Redis (another process: there is no event to await).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp

from tests.helpers import TargetProcess, start_target
from tests.infra.redis import RedisServer, redis_server

__all__ = ["health", "redis_nodes", "start_nodes", "subscribed", "wait_health"]


def start_nodes(module: str, redis_url: str, count: int, *extra: str) -> list[tuple[str, TargetProcess]]:
    started: list[tuple[str, TargetProcess]] = []
    try:
        for k in range(count):
            started.append(
                start_target(
                    module, "--port", "0", "--redis", redis_url, "--node-id", f"n{k}", "--log-level", "info", *extra
                )
            )
    except BaseException:
        for _, proc in started:
            proc.stop()
        raise
    return started


@contextmanager
def redis_nodes(module: str, count: int, *extra: str) -> Iterator[tuple[RedisServer, list[str], list[TargetProcess]]]:
    with redis_server() as redis:
        started = start_nodes(module, redis.url, count, *extra)
        procs = [proc for _, proc in started]
        try:
            yield redis, [url for url, _ in started], procs
        finally:
            codes = [proc.stop() for proc in procs]
        for code, proc in zip(codes, procs, strict=True):
            assert code == 0, proc.stderr_text()
            assert "Traceback" not in proc.stderr_text(), proc.stderr_text()


async def health(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/healthz") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def wait_health(
    session: aiohttp.ClientSession, url: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while not predicate(body := await health(session, url)):
            await asyncio.sleep(0.02)  # polling another process's state, bounded by the timeout
    return body


def subscribed(flag: bool) -> Callable[[dict[str, Any]], bool]:
    return lambda body: body["redis"]["subscribed"] is flag
