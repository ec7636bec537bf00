"""The reference target on the wire: raw WebSocket frames and REST requests, no Ably SDK involved."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgpack
import pytest

from harness.protocols import ably as proto
from tests.ably.conftest import DEFAULT_KEY, TEST_KEY, Target
from tests.helpers import start_target
from tests.targets.nesting import DEEP_JSON, DEEP_MSGPACK, nested_json

Run = Callable[[Awaitable[Any]], Any]


def run(coro: Awaitable[Any], timeout: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


class Raw:
    """A bare websocket speaking the protocol, for frames the official clients would never send."""

    def __init__(self, session: aiohttp.ClientSession, target: Target, fmt: str = "json", **query: str) -> None:
        self.session, self.target, self.fmt = session, target, fmt
        self.query = {"key": TEST_KEY, "format": fmt, "v": "5", **query}
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> dict[str, Any]:
        self.ws = await self.session.ws_connect(self.target.ws_url, params=self.query)
        return await self.recv()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        payload = proto.encode(message, self.fmt)
        await (self.ws.send_bytes(payload) if self.fmt == "msgpack" else self.ws.send_str(payload.decode()))

    async def recv(self, skip_heartbeats: bool = True) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            frame = await self.ws.receive(timeout=5)
            if frame.type == aiohttp.WSMsgType.BINARY:
                message = msgpack.unpackb(frame.data, raw=False)
            elif frame.type == aiohttp.WSMsgType.TEXT:
                message = json.loads(frame.data)
            else:
                return {"closed": frame.type.name}
            if not (skip_heartbeats and message.get("action") == 0 and "id" not in message):
                return dict(message)


def test_connected_attach_publish_ack_heartbeat_and_echo(target: Target) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            sub = Raw(session, target, "msgpack", clientId="sub-1")
            quiet = Raw(session, target, "json", echo="false")
            connected = await sub.open()
            assert connected["action"] == 4 and connected["connectionId"]
            details = connected["connectionDetails"]
            for field in (
                "clientId",
                "connectionKey",
                "maxMessageSize",
                "maxInboundRate",
                "maxFrameSize",
                "serverId",
                "connectionStateTtl",
                "maxIdleInterval",
            ):
                assert field in details, field
            assert details["clientId"] == "sub-1" and details["maxMessageSize"] == 4096
            assert (await quiet.open())["action"] == 4
            for raw in (sub, quiet):
                await raw.send({"action": 10, "channel": "room"})
                attached = await raw.recv()
                assert attached["action"] == 11 and attached["channel"] == "room"
                assert attached["flags"] & int(proto.Flag.all_modes()) == int(proto.Flag.all_modes())
            await sub.send({"action": 0, "id": "hb-7"})
            assert await sub.recv() == {"action": 0, "id": "hb-7"}
            # the json, echo=false connection publishes: the msgpack one receives, the publisher does not
            before = time.time() * 1000
            await quiet.send(
                {
                    "action": 15,
                    "channel": "room",
                    "msgSerial": 0,
                    "messages": [{"name": "ev", "data": "one"}, {"name": "ev", "data": "two"}],
                }
            )
            assert await quiet.recv() == {"action": 1, "msgSerial": 0, "count": 1}
            delivered = await sub.recv()
            assert delivered["action"] == 15 and delivered["channel"] == "room"
            assert [m["data"] for m in delivered["messages"]] == ["one", "two"]
            quiet_id = delivered["connectionId"]
            for i, m in enumerate(delivered["messages"]):
                assert m["id"] == f"{quiet_id}:0:{i}" and m["connectionId"] == quiet_id
                assert before - 1 <= m["timestamp"] <= time.time() * 1000 + 1
            # serials continue; a second publish on the same connection is ACKed by its own serial
            await quiet.send(
                {"action": 15, "channel": "room", "msgSerial": 1, "messages": [{"data": "AQ==", "encoding": "base64"}]}
            )
            assert await quiet.recv() == {"action": 1, "msgSerial": 1, "count": 1}
            second = (await sub.recv())["messages"][0]
            assert (second["data"], second["encoding"]) == ("AQ==", "base64")
            # server heartbeats keep an idle connection inside maxIdleInterval (400 ms here)
            assert await sub.recv(skip_heartbeats=False) == {"action": 0}
            await sub.send({"action": 12, "channel": "room"})
            assert await sub.recv() == {"action": 13, "channel": "room"}
            await sub.send({"action": 7})
            assert await sub.recv() == {"action": 8}
            assert (await sub.recv())["closed"] in ("CLOSE", "CLOSED", "CLOSING")

    run(scenario())


def test_bad_input_gets_ably_errors_and_the_target_keeps_serving(target: Target) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            good = Raw(session, target)
            await good.open()
            await good.send({"action": 10, "channel": "room"})
            await good.recv()
            for query, code in (
                ({"key": "testapp.k1:wrong"}, 40101),
                ({"key": "nope.k9:x"}, 40400),
                ({"key": "not-a-key"}, 40101),
                ({"format": "xml"}, 40003),
                ({"key": "", "accessToken": "forged.token"}, 40143),
            ):
                raw = Raw(session, target, **query)
                error = await raw.open()
                assert error["action"] == 9 and error["error"]["code"] == code, (query, error)
                assert "channel" not in error
                assert "closed" in await raw.recv()
            for frame in (b"\xc1\xc1", "not json", '{"channel":"x"}', "[1]"):
                raw = Raw(session, target)
                await raw.open()
                assert raw.ws is not None
                await (raw.ws.send_bytes(frame) if isinstance(frame, bytes) else raw.ws.send_str(frame))
                error = await raw.recv()
                assert error["action"] == 9 and error["error"]["code"] == 40000, (frame, error)
                assert "closed" in await raw.recv()
            pub = Raw(session, target)
            await pub.open()
            await pub.send({"action": 15, "channel": "room", "msgSerial": 0, "messages": [{"data": "x" * 5000}]})
            nack = await pub.recv()
            assert nack["action"] == 2 and nack["msgSerial"] == 0 and nack["count"] == 1
            assert nack["error"]["code"] == 40009 and nack["error"]["statusCode"] == 400
            await pub.send({"action": 15, "channel": "room", "msgSerial": 1, "messages": [{"data": {"a": 1}}]})
            assert (await pub.recv())["error"]["code"] == 40013
            await pub.send({"action": 15, "channel": "", "msgSerial": 2, "messages": [{"data": "x"}]})
            assert (await pub.recv())["error"]["code"] == 40010
            await pub.send({"action": 10, "channel": ""})
            assert (await pub.recv())["error"]["code"] == 40010
            # the same connection, and everyone else, carry on
            await pub.send({"action": 15, "channel": "room", "msgSerial": 3, "messages": [{"data": "fine"}]})
            assert await pub.recv() == {"action": 1, "msgSerial": 3, "count": 1}
            assert (await good.recv())["messages"][0]["data"] == "fine"
            async with session.get(f"{target.url}/healthz") as resp:
                assert (await resp.json())["connections"] == 2

    run(scenario())


def test_presence_enter_sync_and_leave_on_disconnect(target: Target) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            member = Raw(session, target, clientId="ann")
            await member.open()
            await member.send({"action": 10, "channel": "lobby"})
            await member.recv()
            await member.send(
                {"action": 14, "channel": "lobby", "msgSerial": 0, "presence": [{"action": 2, "data": "hi"}]}
            )
            entered = await member.recv()
            assert entered["action"] == 14 and entered["presence"][0]["clientId"] == "ann"
            assert await member.recv() == {"action": 1, "msgSerial": 0, "count": 1}
            watcher = Raw(session, target)
            await watcher.open()
            await watcher.send({"action": 10, "channel": "lobby"})
            attached = await watcher.recv()
            assert attached["flags"] & int(proto.Flag.HAS_PRESENCE)
            sync = await watcher.recv()
            assert sync["action"] == 16 and sync["channelSerial"].endswith(":")
            assert [(p["clientId"], p["action"], p["data"]) for p in sync["presence"]] == [("ann", 1, "hi")]
            assert member.ws is not None
            await member.ws.close()
            left = await watcher.recv()
            assert left["action"] == 14 and left["presence"][0]["action"] == 3

    run(scenario())


def test_rest_publish_basic_and_token_json_and_msgpack_and_time(target: Target) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            sub = Raw(session, target)
            await sub.open()
            await sub.send({"action": 10, "channel": "news"})
            await sub.recv()
            basic = "Basic " + base64.b64encode(TEST_KEY.encode()).decode()
            url = f"{target.url}/channels/news/messages"
            async with session.post(
                url, json={"name": "ev", "data": "by-basic", "id": "abc:0"}, headers={"Authorization": basic}
            ) as resp:
                assert resp.status == 201
                body = await resp.json()
                assert body["channel"] == "news" and body["messageId"] == "abc" and len(body["serials"]) == 1
            message = (await sub.recv())["messages"][0]
            assert (message["data"], message["id"], message["name"]) == ("by-basic", "abc:0", "ev")
            # token: a TokenRequest signed as the docs say, then msgpack with Bearer base64(token)
            key_name, secret = proto.parse_key(TEST_KEY)
            token_request = {"keyName": key_name, "timestamp": int(time.time() * 1000), "nonce": "f" * 16, "ttl": 60000}
            token_request["mac"] = proto.token_request_mac(
                secret,
                key_name=key_name,
                ttl=60000,
                capability=None,
                client_id=None,
                timestamp=token_request["timestamp"],
                nonce="f" * 16,
            )
            async with session.post(f"{target.url}/keys/{key_name}/requestToken", json=token_request) as resp:
                assert resp.status == 200
                details = await resp.json()
            assert details["keyName"] == key_name and details["expires"] - details["issued"] == 60000
            bearer = "Bearer " + base64.b64encode(details["token"].encode()).decode()
            body = msgpack.packb([{"data": "m1"}, {"data": "m2"}], use_bin_type=True)
            async with session.post(
                url,
                data=body,
                headers={
                    "Authorization": bearer,
                    "Accept": "application/x-msgpack",
                    "Content-Type": "application/x-msgpack",
                },
            ) as resp:
                assert resp.status == 201 and resp.content_type == "application/x-msgpack"
            assert [m["data"] for m in (await sub.recv())["messages"]] == ["m1", "m2"]
            for headers, status, code in (
                ({"Authorization": "Basic " + base64.b64encode(b"testapp.k1:no").decode()}, 401, 40101),
                ({"Authorization": "Bearer " + base64.b64encode(b"x.y").decode()}, 401, 40143),
                ({}, 401, 40101),
            ):
                async with session.post(url, json={"data": "x"}, headers=headers) as resp:
                    assert resp.status == status and (await resp.json())["error"]["code"] == code
            async with session.post(url, json={"data": "x" * 5000}, headers={"Authorization": basic}) as resp:
                assert resp.status == 400 and (await resp.json())["error"]["code"] == 40009
            bad_mac = {**token_request, "mac": "AAAA"}
            async with session.post(f"{target.url}/keys/{key_name}/requestToken", json=bad_mac) as resp:
                assert resp.status == 401 and (await resp.json())["error"]["code"] == 40101
            async with session.get(f"{target.url}/time") as resp:
                (server_ms,) = await resp.json()
                assert abs(server_ms - time.time() * 1000) < 5000

    run(scenario())


def test_bad_key_option_is_a_usage_error() -> None:
    with pytest.raises(RuntimeError, match="--key must look like"):
        start_target("targets.ably", "--port", "0", "--key", "nonsense", timeout=10)


def test_default_key_is_accepted_without_key_option() -> None:
    url, proc = start_target("targets.ably", "--port", "0")
    try:

        async def scenario() -> dict[str, Any]:
            async with aiohttp.ClientSession() as session:
                raw = Raw(session, Target(url, proc), key=DEFAULT_KEY)
                return await raw.open()

        assert run(scenario())["action"] == 4
    finally:
        proc.stop()


def test_deeply_nested_input_gets_ably_errors_and_the_target_keeps_serving(target: Target) -> None:
    """200 KB of ``[[[...]]]`` (issue 11 item 12): REST answers 400/40001 as for any undecodable body; a
    realtime frame gets the ERROR 40000 an undecodable frame gets (fatal to that connection, as in Ably);
    every other connection, and new ones, carry on."""

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            good = Raw(session, target, "msgpack")
            await good.open()
            await good.send({"action": 10, "channel": "room"})
            await good.recv()
            basic = {"Authorization": "Basic " + base64.b64encode(TEST_KEY.encode()).decode()}
            url = f"{target.url}/channels/room/messages"
            for body, content_type in (
                (DEEP_JSON.encode(), "application/json"),
                (b'{"data":"x","extras":' + nested_json(200).encode() + b"}", "application/json"),
                (DEEP_MSGPACK, "application/x-msgpack"),
                (b"\x81\xa6extras" + b"\x91" * 200 + b"\xc0", "application/x-msgpack"),
            ):
                headers = {**basic, "Content-Type": content_type}
                async with session.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 400 and (await resp.json())["error"]["code"] == 40001, body[:20]
            for fmt, frame in (
                ("json", DEEP_JSON),
                ("json", '{"action":15,"channel":"room","messages":[{"data":"x","extras":' + nested_json(200) + "}]}"),
                ("msgpack", DEEP_MSGPACK),
            ):
                raw = Raw(session, target, fmt)
                await raw.open()
                assert raw.ws is not None
                await (raw.ws.send_bytes(frame) if isinstance(frame, bytes) else raw.ws.send_str(frame))
                error = await raw.recv()
                assert error["action"] == 9 and error["error"]["code"] == 40000, (fmt, error)
                assert "closed" in await raw.recv()
            token = base64.urlsafe_b64encode(nested_json(3000).encode()).decode().rstrip("=") + ".sig"
            error = await Raw(session, target, key="", accessToken=token).open()
            assert error["action"] == 9 and error["error"]["code"] == 40143
            after = Raw(session, target)
            await after.open()
            await after.send({"action": 10, "channel": "room"})
            assert (await after.recv())["action"] == 11
            async with session.post(url, json={"data": "still-here"}, headers=basic) as resp:
                assert resp.status == 201
            for sub in (good, after):
                assert (await sub.recv())["messages"][0]["data"] == "still-here"

    run(scenario())
    assert "RecursionError" not in target.proc.stderr_text()


def test_unknown_encodings_are_refused_with_40013(target: Target) -> None:
    """Ably accepts chains of json, utf-8, base64 and a named cipher; anything else is 40013 (REST 400, a
    realtime NACK), and the chains the official clients send keep working."""

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            basic = {"Authorization": "Basic " + base64.b64encode(TEST_KEY.encode()).decode()}
            url = f"{target.url}/channels/enc/messages"
            for encoding in ("base64/cipher", "gzip", "utf-16", "json/", "cipher+", "vcdiff"):
                async with session.post(url, json={"data": "AQ==", "encoding": encoding}, headers=basic) as resp:
                    assert resp.status == 400, encoding
                    assert (await resp.json())["error"]["code"] == 40013, encoding
            for encoding in ("json", "utf-8/base64", "json/utf-8/cipher+aes-128-cbc/base64", "cipher+aes-256-cbc", ""):
                async with session.post(url, json={"data": "AQ==", "encoding": encoding}, headers=basic) as resp:
                    assert resp.status == 201, encoding
            pub = Raw(session, target)
            await pub.open()
            message = {"action": 15, "channel": "enc", "msgSerial": 0, "messages": [{"data": "x", "encoding": "rot13"}]}
            await pub.send(message)
            nack = await pub.recv()
            assert nack["action"] == 2 and nack["error"]["code"] == 40013
            await pub.send({**message, "msgSerial": 1, "messages": [{"data": "e30=", "encoding": "json/base64"}]})
            assert await pub.recv() == {"action": 1, "msgSerial": 1, "count": 1}

    run(scenario())
