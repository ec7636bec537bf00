"""The reference target's protocol behaviour, through raw websockets and signed HTTP requests."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest
from pusher.pusher_client import PusherClient

from harness.protocols import pusher as proto
from tests.helpers import TargetProcess, start_target
from tests.pusher.conftest import APP_ID, KEY, SECRET, Client, run, signed, ws_url
from tests.pusher.helpers import client_event
from tests.targets.nesting import DEEP_JSON, nested_json

Target = tuple[str, TargetProcess]


def _events_body(channel: str, data: str = "hello", name: str = "ev", **extra: object) -> bytes:
    return json.dumps({"name": name, "channels": [channel], "data": data, **extra}).encode()


async def _trigger(
    session: aiohttp.ClientSession, url: str, channel: str, data: str = "hello", **extra: object
) -> aiohttp.ClientResponse:
    path = f"/apps/{APP_ID}/events"
    body = _events_body(channel, data, **extra)
    resp = await session.post(
        url + path, params=signed("POST", path, body), data=body, headers={"Content-Type": "application/json"}
    )
    await resp.read()
    return resp


def test_connection_established_follows_the_protocol(target: Target) -> None:
    async def body() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(ws_url(target[0]))
            msg = await ws.receive(timeout=5)
            raw = json.loads(msg.data)
            assert raw["event"] == "pusher:connection_established"
            assert isinstance(raw["data"], str)  # a JSON string inside the JSON frame
            data = json.loads(raw["data"])
            assert proto.SOCKET_ID_RE.match(data["socket_id"])
            assert data["activity_timeout"] > 0
            await ws.close()

    run(body())


@pytest.mark.parametrize(
    ("key", "query", "code"),
    [
        ("wrong-key", "?protocol=7", 4001),
        (KEY, "?client=js", 4008),
        (KEY, "?protocol=seven", 4006),
        (KEY, "?protocol=3", 4007),
    ],
)
def test_refused_connections_get_pusher_error_and_the_close_code(
    target: Target, key: str, query: str, code: int
) -> None:
    async def body() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(ws_url(target[0], key, query))
            msg = await ws.receive(timeout=5)
            frame = json.loads(msg.data)
            assert frame["event"] == "pusher:error"
            assert frame["data"]["code"] == code and frame["data"]["message"]
            closing = await ws.receive(timeout=5)
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == code
            # the target keeps serving everyone else
            other = await Client.connect(session, target[0])
            assert (await other.subscribe("after-refusal")).event == "pusher_internal:subscription_succeeded"
            await other.close()

    run(body())


def test_bad_channel_auth_gets_subscription_error_and_the_connection_lives_on(target: Target) -> None:
    async def body() -> None:
        async with aiohttp.ClientSession() as session:
            client = await Client.connect(session, target[0])
            refused = await client.subscribe("private-secret", secret="not-the-secret")
            assert refused.event == "pusher:subscription_error"
            data = proto.data_object(refused.data)
            assert data["type"] == "AuthError" and data["status"] == 401 and SECRET not in json.dumps(data)
            await client.send(proto.subscribe("private-secret"))  # no auth at all
            assert (await client.expect("pusher:subscription_error", "private-secret")).channel == "private-secret"
            await client.send(proto.subscribe("presence-room", "k:s"))  # presence without channel_data
            assert (await client.expect("pusher:subscription_error", "presence-room")).channel == "presence-room"
            # a signature made for another socket is refused too
            await client.send(
                proto.subscribe("private-secret", proto.channel_auth(KEY, SECRET, "1.1", "private-secret"))
            )
            assert (await client.expect("pusher:subscription_error", "private-secret")).channel == "private-secret"
            ok = await client.subscribe("private-secret")
            assert ok.event == "pusher_internal:subscription_succeeded" and ok.data == "{}"
            await client.close()

    run(body())


def test_malformed_frames_get_pusher_error_and_everyone_keeps_being_served(target: Target) -> None:
    async def body() -> None:
        async with aiohttp.ClientSession() as session:
            bad = await Client.connect(session, target[0])
            good = await Client.connect(session, target[0])
            for client in (bad, good):
                await client.subscribe("malformed-test")
            for text in (
                "{not json",
                "[1]",
                '{"data":{}}',
                '{"event":"pusher:subscribe","data":"nope"}',
                '{"event":"pusher:subscribe","data":{"channel":"bad name"}}',
            ):
                await bad.send(text)
                error = await bad.next()
                assert error.event == "pusher:error" and error.data["code"] is None, (text, error)
            await bad.ws.send_bytes(b"\x00\x01")
            assert (await bad.next()).event == "pusher:error"
            resp = await _trigger(session, target[0], "malformed-test", "still-here")
            assert resp.status == 200
            for client in (bad, good):
                event = await client.expect("ev", "malformed-test")
                assert event.data == "still-here"
            assert await bad.roundtrip() == []
            for client in (bad, good):
                await client.close()

    run(body())


def test_presence_members_join_and_leave(target: Target) -> None:
    async def body() -> None:
        async with aiohttp.ClientSession() as session:
            alice = await Client.connect(session, target[0])
            first = await alice.subscribe("presence-room", user_id="alice")
            assert proto.data_object(first.data) == {
                "presence": {"ids": ["alice"], "hash": {"alice": {"n": "alice"}}, "count": 1}
            }
            bob = await Client.connect(session, target[0])
            second = proto.data_object((await bob.subscribe("presence-room", user_id="bob")).data)["presence"]
            assert second["count"] == 2 and set(second["ids"]) == {"alice", "bob"}
            added = await alice.expect("pusher_internal:member_added", "presence-room")
            assert proto.data_object(added.data) == {"user_id": "bob", "user_info": {"n": "bob"}}
            # a second connection of the same user is no new member
            bob2 = await Client.connect(session, target[0])
            again = proto.data_object((await bob2.subscribe("presence-room", user_id="bob")).data)["presence"]
            assert again["count"] == 2
            assert await alice.roundtrip() == []
            # GET /channels/{name} counts users and subscriptions
            path = f"/apps/{APP_ID}/channels/presence-room"
            params = signed("GET", path, params={"info": "user_count,subscription_count"})
            async with session.get(target[0] + path, params=params) as resp:
                assert resp.status == 200, await resp.text()
                assert await resp.json() == {"occupied": True, "user_count": 2, "subscription_count": 3}
            await bob2.close()
            assert await alice.roundtrip() == []  # bob still has a connection
            await bob.send(proto.unsubscribe("presence-room"))
            removed = await alice.expect("pusher_internal:member_removed", "presence-room")
            assert proto.data_object(removed.data) == {"user_id": "bob"}
            for client in (alice, bob):
                await client.close()

    run(body())


def test_client_events_reach_the_others_and_are_never_echoed(target: Target) -> None:
    async def body() -> None:
        async with aiohttp.ClientSession() as session:
            a, b = await Client.connect(session, target[0]), await Client.connect(session, target[0])
            for client, user in ((a, "a"), (b, "b")):
                await client.subscribe("presence-chat", user_id=user)
                await client.subscribe("private-chat")
            await a.expect("pusher_internal:member_added", "presence-chat")
            await a.send(client_event("private-chat", "client-typing", {"who": "a"}))
            got = await b.expect("client-typing", "private-chat")
            assert proto.data_object(got.data) == {"who": "a"} and got.user_id is None
            await a.send(client_event("presence-chat", "client-typing", {"who": "a"}))
            got = await b.expect("client-typing", "presence-chat")
            assert got.user_id == "a"
            assert await a.roundtrip() == []  # nothing echoed to the sender
            # refused: public channel, not subscribed, no channel
            await a.subscribe("public-chat")
            for frame in (
                client_event("public-chat", "client-x", {}),
                client_event("private-elsewhere", "client-x", {}),
                '{"event":"client-x","data":{}}',
            ):
                await a.send(frame)
                error = await a.next()
                assert error.event == "pusher:error" and "Client event rejected" in error.data["message"]
            assert await b.roundtrip() == []
            for client in (a, b):
                await client.close()

    run(body())


def test_http_publish_needs_a_valid_fresh_signature(target: Target) -> None:
    async def body() -> None:
        url = target[0]
        path = f"/apps/{APP_ID}/events"
        payload = _events_body("signed-test")
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:
            listener = await Client.connect(session, url)
            await listener.subscribe("signed-test")
            cases = [
                ({}, 401),  # unsigned
                (signed("POST", path, payload, secret="wrong"), 401),
                (signed("POST", path, payload, timestamp=time.time() - 3600), 401),  # stale
                (signed("POST", path, payload + b" "), 401),  # body_md5 of another body
                (dict(signed("POST", path, payload), auth_key="other"), 401),
            ]
            for params, status in cases:
                async with session.post(url + path, params=params, data=payload, headers=headers) as resp:
                    assert resp.status == status
                    assert "error" in await resp.json()
                    assert SECRET not in await resp.text()
            async with session.post(
                url + "/apps/999/events",
                params=signed("POST", "/apps/999/events", payload),
                data=payload,
                headers=headers,
            ) as resp:
                assert resp.status == 404
            assert await listener.roundtrip() == []  # none of them was delivered
            bad_bodies = [
                (b"{nope", 400),
                (json.dumps({"name": "e", "channels": ["x"]}).encode(), 400),
                (_events_body("x", name="pusher:fake"), 400),
                (_events_body("bad name"), 400),
                (_events_body("x", data="y" * (proto.MAX_EVENT_DATA_BYTES + 1)), 413),
            ]
            for bad, status in bad_bodies:
                async with session.post(
                    url + path, params=signed("POST", path, bad), data=bad, headers=headers
                ) as resp:
                    assert resp.status == status, (bad[:60], await resp.text())
            resp = await _trigger(session, url, "signed-test", "ok", info="subscription_count")
            assert resp.status == 200
            assert await resp.json() == {"channels": {"signed-test": {"subscription_count": 1}}}
            assert (await listener.expect("ev", "signed-test")).data == "ok"
            await listener.close()

    run(body())


def test_the_official_python_sdk_triggers_batches_and_queries(target: Target) -> None:
    url = target[0]
    port = int(url.rsplit(":", 1)[1])
    sdk = PusherClient(APP_ID, KEY, SECRET, host="127.0.0.1", port=port, ssl=False)

    async def body() -> None:
        async with aiohttp.ClientSession() as session:
            a = await Client.connect(session, url)
            b = await Client.connect(session, url)
            await a.subscribe("sdk-a")
            await b.subscribe("presence-sdk", user_id="u1")
            excluded = await Client.connect(session, url)
            await excluded.subscribe("sdk-a")
            loop = __import__("asyncio").get_running_loop()
            assert (
                await loop.run_in_executor(
                    None, lambda: sdk.trigger(["sdk-a", "presence-sdk"], "both", {"x": 1}, excluded.socket_id)
                )
                == {}
            )
            assert proto.data_object((await a.expect("both", "sdk-a")).data) == {"x": 1}
            assert (await b.expect("both", "presence-sdk")).channel == "presence-sdk"
            assert await excluded.roundtrip() == []  # socket_id excluded it
            batch = [
                {"channel": "sdk-a", "name": "one", "data": "1"},
                {"channel": "presence-sdk", "name": "two", "data": "2"},
            ]
            assert await loop.run_in_executor(None, lambda: sdk.trigger_batch(batch)) == {}
            assert (await a.expect("one", "sdk-a")).data == "1"
            assert (await b.expect("two", "presence-sdk")).data == "2"
            channels = await loop.run_in_executor(None, lambda: sdk.channels_info("presence-", ["user_count"]))
            assert channels == {"channels": {"presence-sdk": {"user_count": 1}}}
            info = await loop.run_in_executor(None, lambda: sdk.channel_info("sdk-a", ["subscription_count"]))
            assert info == {"occupied": True, "subscription_count": 2}
            users = await loop.run_in_executor(None, lambda: sdk.users_info("presence-sdk"))
            assert users == {"users": [{"id": "u1"}]}
            async with session.get(url + "/healthz") as resp:
                assert (await resp.json())["connections"] >= 3
            for client in (a, b, excluded):
                await client.close()

    run(body())


def test_silent_clients_are_pinged_then_closed_with_4201() -> None:
    url, proc = start_target("targets.pusher", "--port", "0", "--activity-timeout", "1", "--pong-timeout", "0.5")
    try:

        async def body() -> None:
            async with aiohttp.ClientSession() as session:
                client = await Client.connect(session, url, proto.LOCAL_KEY)
                started = time.monotonic()
                assert (await client.next(timeout=5)).event == "pusher:ping"
                assert time.monotonic() - started >= 0.9
                msg = await client.ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == proto.CloseCode.PONG_NOT_RECEIVED
                # a client that answers stays
                alive = await Client.connect(session, url, proto.LOCAL_KEY)
                assert (await alive.next(timeout=5)).event == "pusher:ping"
                await alive.send(proto.client_pong())
                assert (await alive.next(timeout=5)).event == "pusher:ping"  # pinged again, not closed
                await alive.close()

        run(body())
    finally:
        proc.stop()


def test_bad_credentials_flags_are_usage_errors() -> None:
    import subprocess
    import sys

    from tests.helpers import REPO

    for args, fragment in ((["--app-id", "abc"], "--app-id"), (["--activity-timeout", "0"], "--activity-timeout")):
        proc = subprocess.run(
            [sys.executable, "-m", "targets.pusher", "--port", "0", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert proc.returncode == 2
        assert fragment in proc.stderr and "Traceback" not in proc.stderr


def test_deeply_nested_json_is_refused_like_bad_json_and_the_connection_lives_on(target: Target) -> None:
    """200 KB of ``[[[...]]]`` (issue 11 item 12): a 400 over HTTP; over the websocket a ``pusher:error`` with
    a null code (an error that keeps the connection, as for any malformed frame), then service as usual."""

    async def body() -> None:
        async with aiohttp.ClientSession() as session:
            path = f"/apps/{APP_ID}/events"
            for raw in (DEEP_JSON, '{"name":"ev","channels":["deep"],"data":' + DEEP_JSON + "}"):
                payload = raw.encode()
                resp = await session.post(
                    target[0] + path,
                    params=signed("POST", path, payload),
                    data=payload,
                    headers={"Content-Type": "application/json"},
                )
                assert resp.status == 400 and "nested deeper" in (await resp.json())["error"]
            client = await Client.connect(session, target[0])
            for text in (
                DEEP_JSON,
                '{"event":"pusher:subscribe","data":' + DEEP_JSON + "}",
                json.dumps({"event": "pusher:subscribe", "data": DEEP_JSON}),  # data as a JSON string
                '{"event":"client-x","channel":"private-deep","data":' + nested_json(200) + "}",
            ):
                await client.send(text)
                error = await client.next()
                assert error.event == "pusher:error" and error.data["code"] is None, text[:40]
                assert "nested deeper" in error.data["message"]
            channel_data = json.dumps({"user_id": "u1", "user_info": json.loads(nested_json(200))})
            auth = proto.channel_auth(KEY, SECRET, client.socket_id, "presence-deep", channel_data)
            await client.send(proto.subscribe("presence-deep", auth, channel_data))
            refused = await client.expect("pusher:subscription_error", "presence-deep")
            assert "nested deeper" in proto.data_object(refused.data)["error"]
            assert (await client.subscribe("after-deep")).event == "pusher_internal:subscription_succeeded"
            assert (await _trigger(session, target[0], "after-deep", "fine")).status == 200
            assert (await client.expect("ev", "after-deep")).data == "fine"
            await client.close()

    run(body())
    assert "RecursionError" not in target[1].stderr_text()
