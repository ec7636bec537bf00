"""SSE target nodes sharing one real Redis: every node's streams get every publish with the same
cluster-wide ids, channels hold, Last-Event-ID resumes on another node, a Redis outage leaves each node
publishing alone (its own ids), and the cluster resumes after it.

Absence is proven with fences: one channel's events reach every node in id order, so once a later
event has arrived on a stream, nothing published before it is still coming.
"""

from __future__ import annotations

import argparse
import asyncio
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from targets.base import ArgumentParser, Faults, add_common_args
from targets.sse.server import SSETarget, add_args
from tests.scaleout.nodes import health, redis_nodes, subscribed, wait_health
from tests.sse.conftest import Reader

pytestmark = pytest.mark.timeout(90)

TARGET = "targets.sse"


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def publish(session: aiohttp.ClientSession, url: str, channel: str, data: str) -> dict[str, Any]:
    """HTTP publish on one node (bounded in time: it must answer even without Redis) -> {id, recipients}."""
    body = {"channel": channel, "data": data}
    async with session.post(f"{url}/api/publish", json=body, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


def ids_and_data(reader: Reader) -> list[tuple[str | None, str]]:
    return [(e.id, e.data) for e in reader.events]


def test_publishes_reach_every_node_with_the_same_ids() -> None:
    n = 20

    async def main(urls: list[str]) -> None:
        a, b = urls
        async with aiohttp.ClientSession() as session:
            on_a = await Reader(session, f"{a}/api/events?channel=c").open()
            on_b = await Reader(session, f"{b}/api/events?channel=c").open()
            elsewhere = await Reader(session, f"{b}/api/events?channel=d").open()
            try:
                sent = []
                for k in range(n):  # alternate nodes: one numbering for the cluster
                    result = await publish(session, urls[k % 2], "c", str(k))
                    assert result["recipients"] == 1  # the publishing node's own stream
                    sent.append((result["id"], str(k)))
                epoch = sent[0][0].rpartition("-")[0]
                assert [event_id for event_id, _ in sent] == [f"{epoch}-{k}" for k in range(1, n + 1)]
                for reader in (on_a, on_b):
                    await reader.wait_until(lambda r=reader: len(r.events) >= n)  # type: ignore[misc]
                    assert ids_and_data(reader) == sent
                fence = await publish(session, a, "d", "fence")
                assert fence["id"] == f"{epoch}-1"  # numbered per channel
                await elsewhere.wait_until(lambda: len(elsewhere.events) >= 1)
                assert ids_and_data(elsewhere) == [(fence["id"], "fence")]
                assert (await health(session, b))["redis"]["epoch"] == epoch
            finally:
                for reader in (on_a, on_b, elsewhere):
                    await reader.close()

    with redis_nodes(TARGET, 2) as (_, urls, _procs):
        run(main(urls))


def test_last_event_id_resumes_on_another_node() -> None:
    async def main(urls: list[str]) -> None:
        a, b = urls
        async with aiohttp.ClientSession() as session:
            first = await Reader(session, f"{a}/api/events?channel=c").open()
            seen = [(await publish(session, a, "c", f"seen-{k}"))["id"] for k in range(3)]
            await first.wait_until(lambda: len(first.events) == 3)
            await first.close()
            missed = [((await publish(session, a, "c", f"missed-{k}"))["id"], f"missed-{k}") for k in range(5)]
            # Back, on node B, from the last event it had: exactly what it missed, then live events.
            resumed = await Reader(session, f"{b}/api/events?channel=c", {"Last-Event-ID": seen[-1]}).open()
            live = await publish(session, a, "c", "live")
            await resumed.wait_until(lambda: "live" in resumed.data())
            assert ids_and_data(resumed) == [*missed, (live["id"], "live")]
            await resumed.close()

    with redis_nodes(TARGET, 2) as (_, urls, _procs):
        run(main(urls))


def test_redis_outage_publishes_alone_then_rejoins() -> None:
    async def main(redis: Any, urls: list[str]) -> None:
        a, b = urls
        async with aiohttp.ClientSession() as session:
            on_a = await Reader(session, f"{a}/api/events?channel=c").open()
            on_b = await Reader(session, f"{b}/api/events?channel=c").open()
            try:
                before = [((await publish(session, a, "c", f"before-{k}"))["id"], f"before-{k}") for k in range(2)]
                await on_b.wait_until(lambda: len(on_b.events) == 2)
                old_epoch = before[0][0].rpartition("-")[0]

                redis.stop()
                for url in urls:
                    await wait_health(session, url, subscribed(False))
                during = []
                for k in range(3):
                    result = await publish(session, a, "c", f"during-{k}")
                    assert result["recipients"] == 1
                    during.append((result["id"], f"during-{k}"))
                own_epoch = during[0][0].rpartition("-")[0]
                assert own_epoch != old_epoch
                assert [i for i, _ in during] == [f"{own_epoch}-{k}" for k in (1, 2, 3)]
                await on_a.wait_until(lambda: len(on_a.events) == 5)

                redis.start()  # empty: a new cluster epoch, never an old id again
                for url in urls:
                    await wait_health(session, url, subscribed(True))
                after = [((await publish(session, a, "c", f"after-{k}"))["id"], f"after-{k}") for k in range(2)]
                new_epoch = after[0][0].rpartition("-")[0]
                assert new_epoch not in (old_epoch, own_epoch)
                assert [i for i, _ in after] == [f"{new_epoch}-1", f"{new_epoch}-2"]
                await on_b.wait_until(lambda: len(on_b.events) == 4)
                await on_a.wait_until(lambda: len(on_a.events) == 7)
                assert ids_and_data(on_a) == [*before, *during, *after]
                assert ids_and_data(on_b) == [*before, *after]  # nothing crossed while Redis was away

                # Node A replays across its epochs: from the last event before the outage.
                again = await Reader(session, f"{a}/api/events?channel=c", {"Last-Event-ID": before[-1][0]}).open()
                await again.wait_until(lambda: len(again.events) == 5)
                assert ids_and_data(again) == [*during, *after]
                await again.close()
            finally:
                await on_a.close()
                await on_b.close()

    with redis_nodes(TARGET, 2) as (redis, urls, procs):
        run(main(redis, urls))
    for proc in procs:
        assert sum(" lost " in line for line in proc.stderr_lines) == 1, proc.stderr_text()


def test_a_client_ahead_of_its_node_gets_nothing_twice() -> None:
    """A client that saw cluster event 5 on another node reconnects here before event 4 and 5 reached
    this node (they are on their way through Redis): it gets neither again, only what follows."""
    parser = ArgumentParser()
    add_common_args(parser, 0)
    add_args(parser)
    args: argparse.Namespace = parser.parse_args(["--keepalive-s", "5"])
    target = SSETarget(args, Faults(), nodes=SimpleNamespace(epoch="cl"))  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_get("/api/events", target.events)

    async def main() -> None:
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            for seq in (1, 2, 3):
                target.deliver("c", "cl", seq, "message", str(seq))
            reader = await Reader(
                session, str(server.make_url("/api/events?channel=c")), {"Last-Event-ID": "cl-5"}
            ).open()
            await reader.wait_until(lambda: reader.parser.comments >= 1)  # registered: ": connected" arrived
            for seq in (4, 5, 6):
                target.deliver("c", "cl", seq, "message", str(seq))
            await reader.wait_until(lambda: len(reader.events) >= 1)
            target.deliver("c", "cl", 7, "message", "7")
            await reader.wait_until(lambda: len(reader.events) >= 2)
            assert ids_and_data(reader) == [("cl-6", "6"), ("cl-7", "7")]
            assert target.floored == {}
            await reader.close()

    run(main())
