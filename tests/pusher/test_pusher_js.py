"""The official clients judge compatibility: pusher-js (Node) against the target, fed by the official
Python SDK, authorized through an auth endpoint this test serves with the SDK's ``authenticate``."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pusher
import pytest

from harness.providers.http import close_shared_session
from tests.helpers import NODE_DIR, node_available, start_target
from tests.pusher.conftest import APP_ID, CREDENTIALS, KEY, SECRET, Inbox, provider_for, run

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(not node_available(), reason="tests/node/node_modules missing: run `npm ci` in tests/node"),
]


class _AuthHandler(BaseHTTPRequestHandler):
    """POST /pusher/auth as an app's backend would answer it, with the official SDK."""

    sdk = pusher.Pusher(APP_ID, KEY, SECRET)
    wrong = pusher.Pusher(APP_ID, KEY, "not-the-secret")

    def do_POST(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
        channel, socket_id = form["channel_name"], form["socket_id"]
        signer = self.wrong if channel == "private-badsig" else self.sdk
        custom = {"user_id": form["user_id"], "user_info": {"via": "node"}} if channel.startswith("presence-") else None
        body = json.dumps(signer.authenticate(channel, socket_id, custom)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        """Keep the auth endpoint quiet in test output (the default writes every request to stderr)."""


@pytest.fixture
def auth_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pusher/auth"
    finally:
        server.shutdown()
        server.server_close()


class NodeProbe:
    """A Node script (tests/node, default the pusher-js probe) writing JSON lines, driven by lines on stdin."""

    def __init__(self, *args: str, script: str = "pusher_client_probe.js") -> None:
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / script), *args],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def expect(self, match: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for line in self.seen:
            if match(line):
                self.seen.remove(line)
                return line
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
                raise AssertionError(f"no matching line within {timeout}s; seen {self.seen}; {stderr}") from None
            if match(line):
                return line
            self.seen.append(line)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.send("quit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def test_pusher_js_connects_subscribes_and_receives_sdk_triggers(auth_endpoint: str) -> None:
    url, target = start_target("targets.pusher", "--port", "0", *CREDENTIALS)
    port = int(url.rsplit(":", 1)[1])
    channels = ["todos", "private-todos", "presence-todos", "private-badsig"]
    probe = NodeProbe(str(port), KEY, auth_endpoint, *channels)
    try:
        assert probe.expect(lambda m: m["type"] == "connected")["socket_id"]
        for name in channels[:3]:
            subscribed = probe.expect(lambda m, n=name: m["type"] == "subscribed" and m["channel"] == n)
            if name.startswith("presence-"):
                assert subscribed["members"] == 1 and subscribed["me"] == "node-1"
        refused = probe.expect(lambda m: m["type"] == "subscription_error")
        assert refused["channel"] == "private-badsig" and "AuthError" in refused["error"]

        sdk = pusher.Pusher(APP_ID, KEY, SECRET, host="127.0.0.1", port=port, ssl=False)
        for name in channels[:3]:
            assert sdk.trigger(name, "todo:created", {"id": 7, "on": name}) == {}
        for name in channels[:3]:
            event = probe.expect(lambda m, n=name: m["type"] == "event" and m["channel"] == n)
            assert event["event"] == "todo:created" and event["data"] == {"id": 7, "on": name}

        probe.send("join node-2 presence-todos")
        added = probe.expect(lambda m: m["type"] == "member_added")
        assert added == {"type": "member_added", "channel": "presence-todos", "id": "node-2", "info": {"via": "node"}}
        probe.expect(lambda m: m["type"] == "joined" and m["id"] == "node-2")
        probe.send("leave")
        assert probe.expect(lambda m: m["type"] == "member_removed")["id"] == "node-2"

        # a client event from pusher-js reaches the other subscriber, with the sender's user id
        probe.send("join node-3 presence-todos")
        probe.expect(lambda m: m["type"] == "joined" and m["id"] == "node-3")
        probe.send('client presence-todos client-typing {"who":"node-1"}')
        assert probe.expect(lambda m: m["type"] == "client_sent")["ok"] is True
        relayed = probe.expect(lambda m: m["type"] == "second_event")
        assert relayed == {
            "type": "second_event",
            "channel": "presence-todos",
            "event": "client-typing",
            "data": {"who": "node-1"},
            "user_id": "node-1",
        }
        sdk.trigger("todos", "todo:deleted", {"id": 7})  # ordered after the client event: nothing echoed before it
        assert probe.expect(lambda m: m["type"] == "event" and m["event"] == "todo:deleted")
        assert not any(m.get("event") == "client-typing" for m in probe.seen if m["type"] == "event")
    finally:
        probe.stop()
        target.stop()
    assert probe.proc.returncode == 0


def test_client_events_between_our_clients_and_pusher_js(auth_endpoint: str) -> None:
    """``rtbench check``'s client A (a peer sending client events) is heard by pusher-js, pusher-js's client
    events reach our subscriber, and A hears pusher-js's but never its own."""
    url, target = start_target("targets.pusher", "--port", "0", *CREDENTIALS)
    probe = NodeProbe(url.rsplit(":", 1)[1], KEY, auth_endpoint, "private-todos")

    async def body() -> None:
        provider = provider_for(url, channel_type="private")
        b, own = Inbox(), Inbox()
        try:
            subscriber = await provider.open_subscriber("todos", b.hooks())
            peer = await provider.open_peer("todos")
            assert await peer.watch_own("todos", own.hooks().on_data)
            await peer.publish("todos", "from-rtbench")
            heard = await asyncio.to_thread(probe.expect, lambda m: m.get("event") == "client-rtbench")
            assert heard == {
                "type": "event",
                "channel": "private-todos",
                "event": "client-rtbench",
                "data": "from-rtbench",
            }
            probe.send('client private-todos client-rtbench {"from":"pusher-js"}')
            assert await b.wait_for(2) == ["from-rtbench", '{"from":"pusher-js"}']  # the server relays data as text
            assert await own.wait_for(1) == ['{"from":"pusher-js"}']  # its own would have come first
            assert peer.errors == []
            await subscriber.close()
            await peer.close()
        finally:
            await provider.aclose()
            await close_shared_session()

    try:
        probe.expect(lambda m: m["type"] == "subscribed" and m["channel"] == "private-todos")
        run(body())
    finally:
        probe.stop()
        target.stop()
    assert probe.proc.returncode == 0
