"""The server node behind a load balancer (``X-Rtbench-Node`` on the 101): read once per connection by the
shared websocket code and told to the hooks before that connection delivers, again on every reconnect.

A raw loopback server plays literal bytes: connection i answers the upgrade as node ``n<i>``, sends one
text frame ``m<i>`` in the same write, and the first connection then closes (a drop)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from harness.net.reconnect import Backoff
from harness.net.websocket import WebSocket
from harness.providers.base import SubscriberHooks
from harness.providers.lean import Connection, LeanSubscriber
from tests.net.servers import raw_server, read_upgrade, run


def text_frame(text: str) -> bytes:
    """An unmasked server text frame (RFC 6455 5.2), payload under 126 bytes."""
    payload = text.encode()
    return bytes([0x81, len(payload)]) + payload


def with_node(upgrade: bytes, node: str) -> bytes:
    """The 101 head ``read_upgrade`` made, with the node's field before its blank line."""
    return upgrade[:-2] + f"X-Rtbench-Node: {node}\r\n\r\n".encode()


@dataclass
class Events:
    """Every hook call, in order."""

    log: list[tuple[str, object]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def hooks(self) -> SubscriberHooks:
        def note(kind: str, value: object = None) -> None:
            self.log.append((kind, value))
            self.changed.set()

        return SubscriberHooks(
            on_data=lambda data, _rx: note("data", data),
            on_drop=lambda: note("drop"),
            on_resubscribed=lambda: note("back"),
            on_node=lambda node: note("node", node),
        )

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.log) < count:
                self.changed.clear()
                await self.changed.wait()


class Subscriber(LeanSubscriber):
    """The smallest lean subscriber: every text frame is a delivery."""

    backoff = Backoff(first_s=0.01, max_s=0.01)

    def __init__(self, url: str, hooks: SubscriberHooks) -> None:
        super().__init__(hooks, 2.0)
        self.url = url

    async def connect_and_subscribe(self) -> Connection:
        ws = await self.open_websocket(self.url, timeout=2)
        ws.deliver_to(
            lambda data, rx_ns: self.hooks.on_data(data, rx_ns), lambda _c, reason: self.connection_ended(reason)
        )
        return ws


def test_each_connection_tells_its_node_before_it_delivers_and_a_reconnect_tells_the_new_one() -> None:
    connections = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        index = connections
        writer.write(with_node(await read_upgrade(reader), f"n{index}") + text_frame(f"m{index}"))
        await writer.drain()
        if index == 1:
            writer.close()  # the first connection is lost: the subscriber comes back, on another node
            return
        await reader.read()

    async def main() -> None:
        events = Events()
        async with raw_server(script) as url:
            subscriber = Subscriber(url, events.hooks())
            await subscriber.start()
            await events.until(6)
            assert subscriber.node == "n2"
            await subscriber.close()
        assert events.log == [
            ("node", "n1"),
            ("data", "m1"),
            ("drop", None),
            ("node", "n2"),
            ("data", "m2"),
            ("back", None),
        ]

    run(main, "uvloop")


def test_an_upgrade_without_the_field_names_no_node() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await read_upgrade(reader))
        await reader.read()

    async def main() -> None:
        async with raw_server(script) as url:
            client = await WebSocket.connect(url, timeout=2)
            assert client.node is None
            client.close()
            events = Events()
            subscriber = Subscriber(url, events.hooks())
            await subscriber.start()
            assert subscriber.node is None and events.log == [("node", None)]
            await subscriber.close()

    run(main, "asyncio")
