"""The official clients judge the presence members: pusher-js (Node) and our Pusher member on one presence
channel, ably-js (Node, msgpack) and our Ably member (JSON) on one channel, python-socketio's AsyncClient
and our Socket.IO member in one room of the reference target. Each side must see the other come and go,
with its info."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import pytest
import socketio

from harness.measure.presence import member_info
from harness.providers.ably import AblyProvider
from harness.providers.presence import Member, MemberHooks, open_member
from harness.providers.pusher import PusherProvider
from harness.providers.socketio import SocketIOProvider
from tests.ably.conftest import TEST_KEY
from tests.helpers import node_available, start_target
from tests.pusher.conftest import CREDENTIALS, provider_for, run
from tests.pusher.test_pusher_js import NodeProbe, auth_endpoint  # noqa: F401  (the fixture)

REMOVED = "presence:member_removed"


class Heard:
    """What a member's hooks were told, with a way to wait for it."""

    def __init__(self) -> None:
        self.listed: dict[str, Any] = {}
        self.added: dict[str, Any] = {}
        self.removed: list[str] = []
        self.errors: list[str] = []
        self.changed = asyncio.Event()

    def hooks(self) -> MemberHooks:
        def note(update: Any) -> None:
            update()
            self.changed.set()

        return MemberHooks(
            on_listed=lambda members: note(lambda: self.listed.update(members)),
            on_added=lambda member, info, _rx: note(lambda: self.added.__setitem__(member, info)),
            on_removed=lambda member, _rx: note(lambda: self.removed.append(member)),
            on_error=self.errors.append,
        )

    async def until(self, condition: Any, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@pytest.mark.node
@pytest.mark.skipif(not node_available(), reason="tests/node/node_modules missing: run `npm ci` in tests/node")
def test_pusher_js_and_our_member_see_each_other_come_and_go(auth_endpoint: str) -> None:  # noqa: F811
    url, target = start_target("targets.pusher", "--port", "0", *CREDENTIALS)
    probe = NodeProbe(url.rsplit(":", 1)[1], CREDENTIALS[3], auth_endpoint, "presence-todos")
    try:
        assert probe.expect(lambda m: m["type"] == "subscribed")["me"] == "node-1"

        async def body() -> None:
            provider: PusherProvider = provider_for(url)
            heard = Heard()
            info = member_info("run1", "clk", 0)
            member: Member = open_member(provider, "todos", "rtb-1", info, heard.hooks())
            await member.join()
            assert heard.listed == {"node-1": {"via": "node"}, "rtb-1": info}  # pusher lists the joiner too
            assert info["join_us"] == member.join_ns // 1000 > 0  # exact in JavaScript too (below 2^53)
            added = await asyncio.to_thread(probe.expect, lambda m: m["type"] == "member_added")
            assert added == {"type": "member_added", "channel": "presence-todos", "id": "rtb-1", "info": info}
            probe.send("join node-2 presence-todos")
            await heard.until(lambda: "node-2" in heard.added)
            assert heard.added == {"node-2": {"via": "node"}}
            probe.send("leave")
            await heard.until(lambda: heard.removed == ["node-2"])
            await member.leave()
            assert await asyncio.to_thread(probe.expect, lambda m: m["type"] == "member_removed") == {
                "type": "member_removed",
                "channel": "presence-todos",
                "id": "node-2",
            }
            gone = await asyncio.to_thread(probe.expect, lambda m: m["type"] == "member_removed")
            assert gone == {"type": "member_removed", "channel": "presence-todos", "id": "rtb-1"}
            assert heard.errors == []

        run(body())
    finally:
        probe.stop()
        target.stop()
    assert probe.proc.returncode == 0


def test_python_socketio_and_our_member_share_a_room_on_the_target() -> None:
    url, target = start_target("targets.socketio", "--port", "0")
    try:

        async def body() -> None:
            official = socketio.AsyncClient()
            events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
            for name in ("presence:member_added", "presence:member_removed"):
                official.on(name, lambda data, name=name: events.put_nowait((name, data)))
            await official.connect(url, transports=["websocket"])
            first = await official.call("presence:join", {"room": "todos", "id": "py-1", "info": {"via": "py"}})
            assert first == {"members": {}}

            options = argparse.Namespace(socketio_path="socket.io", channels=1, event="message")
            heard = Heard()
            info = member_info("run1", "clk", 0)
            member = open_member(SocketIOProvider(url, options), "todos", "rtb-1", info, heard.hooks())
            await member.join()
            assert heard.listed == {"py-1": {"via": "py"}}
            name, data = await asyncio.wait_for(events.get(), 5)
            assert (name, data) == ("presence:member_added", {"room": "todos", "id": "rtb-1", "info": info})

            second = socketio.AsyncClient()
            await second.connect(url, transports=["websocket"])
            answer = await second.call("presence:join", {"room": "todos", "id": "py-2", "info": None})
            assert answer == {"members": {"py-1": {"via": "py"}, "rtb-1": info}}
            await heard.until(lambda: "py-2" in heard.added)
            assert (await asyncio.wait_for(events.get(), 5))[1]["id"] == "py-2"
            await second.disconnect()  # a disconnect removes the member
            await heard.until(lambda: heard.removed == ["py-2"])
            assert await asyncio.wait_for(events.get(), 5) == (REMOVED, {"room": "todos", "id": "py-2"})
            await member.leave()
            assert await asyncio.wait_for(events.get(), 5) == (REMOVED, {"room": "todos", "id": "rtb-1"})
            bad = await official.call("presence:join", {"room": "", "id": "x"})
            assert bad == {"error": "presence:join needs a non-empty room and id"}
            await official.disconnect()
            assert heard.errors == []

        run(body())
    finally:
        target.stop()


@pytest.mark.node
@pytest.mark.skipif(not node_available(), reason="tests/node/node_modules missing: run `npm ci` in tests/node")
def test_ably_js_and_our_member_see_each_other_come_and_go() -> None:
    url, target = start_target("targets.ably", "--port", "0", "--key", TEST_KEY)
    port = url.rsplit(":", 1)[1]
    probe = NodeProbe(port, TEST_KEY, "js-1", "todos", script="ably_presence_probe.js")
    try:
        assert probe.expect(lambda m: m["type"] == "entered")["members"] == {"js-1": {"via": "js"}}

        async def body() -> None:
            options = argparse.Namespace(
                host=url, ably_key=TEST_KEY, ably_format="json", ably_publish="realtime", ably_endpoint="", event="e"
            )
            heard = Heard()
            info = member_info("run1", "clk", 0)
            member = open_member(AblyProvider(url, options), "todos", "rtb-1", info, heard.hooks())
            await member.join()
            assert heard.listed == {"js-1": {"via": "js"}}  # from the SYNC on attaching
            entered = await asyncio.to_thread(probe.expect, lambda m: m["type"] == "enter")
            assert entered == {"type": "enter", "clientId": "rtb-1", "data": info}
            probe.send("leave")
            await heard.until(lambda: heard.removed == ["js-1"])
            await member.leave()
            gone = await asyncio.to_thread(probe.expect, lambda m: m["type"] == "leave")
            assert (gone["type"], gone["clientId"]) == ("leave", "rtb-1")
            assert heard.added == {} and heard.errors == []

        run(body())
    finally:
        probe.stop()
        target.stop()
    assert probe.proc.returncode == 0
