"""Socket.IO target nodes sharing one real Redis: every node's clients get every publish, rooms hold,
a Redis outage leaves each node serving its own clients, and cross-node delivery resumes after it.

Absence is proven with fences (Socket.IO keeps order per connection, and one node's publishes reach
the others in its order): once a later marker has arrived, nothing sent before it is still coming.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.scaleout.nodes import health, redis_nodes, subscribed, wait_health
from tests.targets.test_socketio_target import Client

pytestmark = pytest.mark.timeout(90)

TARGET = "targets.socketio"


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def publish(session: aiohttp.ClientSession, url: str, **body: Any) -> int:
    """HTTP publish on one node (bounded in time: it must answer even without Redis) -> its recipients."""
    async with session.post(f"{url}/api/publish", json=body, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        assert resp.status == 200, await resp.text()
        recipients: int = (await resp.json())["recipients"]
        return recipients


async def client(url: str, room: str | None = None) -> Client:
    c = Client()
    await c.connect(url)
    if room is not None:
        assert await c.sio.call("subscribe", room, timeout=5) is True
    return c


def test_publishes_reach_every_node_and_rooms_hold() -> None:
    n = 25

    async def main(urls: list[str]) -> None:
        a, b = urls
        on_a, on_b, elsewhere = await client(a, "room"), await client(b, "room"), await client(b, "other")
        try:
            async with aiohttp.ClientSession() as session:
                for k in range(n):  # HTTP on node A: A's recipients only
                    assert await publish(session, a, channel="room", data=k) == 1
                for c in (on_a, on_b):
                    await c.wait_for(lambda got: len(got) >= n)
                    assert c.got() == list(range(n))
                # The socket `publish` event on node B reaches node A's client too; its ack is B's count.
                assert await on_b.sio.call("publish", {"channel": "room", "data": "from-b"}, timeout=5) == 1
                await on_a.wait_for(lambda got: "from-b" in got)
                await on_b.wait_for(lambda got: "from-b" in got)
                # A fence on the other room, from node A: the client there got it and nothing before it.
                assert await publish(session, a, channel="other", data="fence") == 0
                await elsewhere.wait_for(lambda got: "fence" in got)
                assert elsewhere.got() == ["fence"]
                assert on_a.got() == on_b.got() == [*range(n), "from-b"]
                assert (await health(session, b))["redis"]["received"] == n + 1
                assert (await health(session, a))["redis"]["received"] == 1
        finally:
            await asyncio.gather(*(c.close() for c in (on_a, on_b, elsewhere)))

    with redis_nodes(TARGET, 2) as (_, urls, _procs):
        run(main(urls))


def test_redis_outage_keeps_local_delivery_and_recovers() -> None:
    before, during, after = 5, 10, 5

    async def main(redis: Any, urls: list[str]) -> None:
        a, b = urls
        on_a, on_b = await client(a), await client(b)
        try:
            async with aiohttp.ClientSession() as session:
                for k in range(before):
                    await publish(session, a, data=f"before-{k}")
                await on_b.wait_for(lambda got: len(got) >= before)

                redis.stop()
                for url in urls:
                    await wait_health(session, url, subscribed(False))
                for k in range(during):  # answered at once, delivered on node A only
                    assert await publish(session, a, data=f"during-{k}") == 1
                await on_a.wait_for(lambda got: len(got) >= before + during)
                assert (await health(session, a))["redis"]["dropped"] == during

                redis.start()
                for url in urls:
                    await wait_health(session, url, subscribed(True))
                for k in range(after):
                    await publish(session, a, data=f"after-{k}")
                await on_b.wait_for(lambda got: "after-4" in got)

                sent = [f"before-{k}" for k in range(before)], [f"during-{k}" for k in range(during)]
                resumed = [f"after-{k}" for k in range(after)]
                assert on_a.got() == [*sent[0], *sent[1], *resumed]
                assert on_b.got() == [*sent[0], *resumed]  # nothing crossed while Redis was away
                for url in urls:
                    assert (await health(session, url))["redis"]["losses"] == 1
        finally:
            await asyncio.gather(*(c.close() for c in (on_a, on_b)))

    with redis_nodes(TARGET, 2) as (redis, urls, procs):
        run(main(redis, urls))
    for proc in procs:
        lines = [line for line in proc.stderr_lines if "redis" in line]
        assert sum(" lost " in line for line in lines) == 1, proc.stderr_text()
        assert len(lines) <= 4, proc.stderr_text()  # subscribed, lost, subscribed again: no line per message
