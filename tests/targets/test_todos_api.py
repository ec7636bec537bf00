"""The blueprint app's ``/api/todos`` on the four reference targets (targets/todos.py), end to end.

Real targets as subprocesses on loopback port 0, aiohttp clients, and each provider's own lean subscriber
listening for the app's events. Exactly-once is proven with fences: a second round of mutations whose
events, once they have arrived, follow anything the first round could have delivered (each connection
keeps the target's publish order).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import pytest

from harness import providers
from harness.measure import probe
from harness.providers.base import SubscriberHandle, SubscriberHooks
from targets.todos import CREATED, DELETED, MAX_TITLE, PROBE_HEADER, TODOS_CHANNEL, UPDATED
from tests.generators import provider_options
from tests.helpers import start_target

pytestmark = pytest.mark.timeout(90)

TARGETS = ["socketio", "sse", "pusher", "ably"]
EVENTS = (CREATED, UPDATED, DELETED)


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextmanager
def serving(name: str, *args: str) -> Iterator[str]:
    url, proc = start_target(f"targets.{name}", "--port", "0", *args)
    try:
        yield url
    finally:
        assert proc.stop() == 0, proc.stderr_text()


def envelope(seq: int) -> str:
    return probe.encode("todos", "app.0", seq, time.time_ns(), size=64)


class Api:
    """``/api/todos`` over one aiohttp session: (status, JSON body or None) per request."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = f"{url}/api/todos"

    async def call(
        self, method: str, path: str = "", *, body: Any = None, raw: bytes | None = None, probe_text: str | None = None
    ) -> tuple[int, Any]:
        headers = {PROBE_HEADER: probe_text} if probe_text is not None else {}
        kwargs: dict[str, Any] = {"json": body} if raw is None else {"data": raw}
        if body is None and raw is None:
            kwargs = {}
        async with self.session.request(method, self.url + path, headers=headers, **kwargs) as resp:
            payload = await resp.read()
            return resp.status, (await resp.json(content_type=None)) if payload else None


@asynccontextmanager
async def api(url: str) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, url)


def todo(id_: int, title: str, completed: bool = False, probe_text: str | None = None) -> dict[str, Any]:
    return {"id": id_, "title": title, "completed": completed, "probe": probe_text}


# -- the REST API --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TARGETS)
def test_crud_round_trip(name: str) -> None:
    async def scenario(url: str) -> None:
        async with api(url) as todos:
            assert await todos.call("GET") == (200, [])
            p1, p2, p3 = envelope(1), envelope(2), envelope(3)
            assert await todos.call("POST", body={"title": "milk"}, probe_text=p1) == (201, todo(1, "milk", False, p1))
            assert await todos.call("POST", body={"title": "eggs", "completed": True}) == (201, todo(2, "eggs", True))
            assert await todos.call("GET") == (200, [todo(1, "milk", False, p1), todo(2, "eggs", True)])
            assert await todos.call("PATCH", "/1", body={"completed": True}, probe_text=p2) == (
                200,
                todo(1, "milk", True, p2),
            )
            assert await todos.call("PATCH", "/2", body={"title": "ham", "completed": False}) == (200, todo(2, "ham"))
            assert await todos.call("DELETE", "/1", probe_text=p3) == (204, None)
            assert await todos.call("GET") == (200, [todo(2, "ham")])
            assert await todos.call("POST", body={"title": "x" * MAX_TITLE}) == (201, todo(3, "x" * MAX_TITLE))
            assert [t["id"] for t in (await todos.call("GET"))[1]] == [2, 3]  # creation order, ids never reused

    with serving(name) as url:
        run(scenario(url))


BAD_BODIES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "", {"raw": b"{not json"}),
    ("POST", "", {"body": ["milk"]}),
    ("POST", "", {"body": {}}),
    ("POST", "", {"body": {"title": ""}}),
    ("POST", "", {"body": {"title": "x" * (MAX_TITLE + 1)}}),
    ("POST", "", {"body": {"title": 7}}),
    ("POST", "", {"body": {"title": "milk", "completed": "yes"}}),
    ("POST", "", {"body": {"title": "milk"}, "probe_text": "not an envelope"}),
    ("PATCH", "/1", {"raw": b"[[["}),
    ("PATCH", "/1", {"body": {}}),
    ("PATCH", "/1", {"body": {"title": None}}),
    ("PATCH", "/1", {"body": {"completed": 1}}),
    ("DELETE", "/1", {"probe_text": "rtb1|truncated"}),
]


@pytest.mark.parametrize("name", TARGETS)
def test_bad_requests_get_400_and_unknown_ids_404_and_change_nothing(name: str) -> None:
    async def scenario(url: str) -> None:
        async with api(url) as todos:
            assert (await todos.call("POST", body={"title": "milk"}))[0] == 201
            for method, path, kwargs in BAD_BODIES:
                status, body = await todos.call(method, path, **kwargs)
                assert status == 400 and isinstance(body["error"], str) and body["error"], (method, kwargs, body)
            for method, path in [("PATCH", "/2"), ("DELETE", "/2"), ("PATCH", "/abc"), ("DELETE", "/-1")]:
                status, body = await todos.call(method, path, body={"title": "x"} if method == "PATCH" else None)
                assert status == 404 and body["error"], (method, path, body)
            assert await todos.call("GET") == (200, [todo(1, "milk")])

    with serving(name) as url:
        run(scenario(url))


@pytest.mark.parametrize("name", TARGETS)
def test_the_store_is_bounded(name: str) -> None:
    async def scenario(url: str) -> None:
        async with api(url) as todos:
            for i in (1, 2):
                assert (await todos.call("POST", body={"title": f"t{i}"}))[0] == 201
            status, body = await todos.call("POST", body={"title": "t3"})
            assert status == 507 and "--max-todos" in body["error"]
            assert await todos.call("DELETE", "/1") == (204, None)
            assert await todos.call("POST", body={"title": "t3"}) == (201, todo(3, "t3"))
            assert await todos.call("GET") == (200, [todo(2, "t2"), todo(3, "t3")])

    with serving(name, "--max-todos", "2") as url:
        run(scenario(url))


@pytest.mark.parametrize("name", TARGETS)
def test_api_delay_holds_the_list_query_not_the_mutations(name: str) -> None:
    """Baseline and delayed targets answer in turns, so both see the same machine load: every GET of the
    delayed one is at least 30 ms slower than the fastest baseline GET; its POSTs are not held."""
    rounds = 8

    async def timed(todos: Api, method: str, **kwargs: Any) -> float:
        start = time.perf_counter()
        status, _ = await todos.call(method, **kwargs)
        assert status in (200, 201)
        return time.perf_counter() - start

    async def scenario(fast_url: str, slow_url: str) -> None:
        times: dict[tuple[str, str], list[float]] = {}
        async with api(fast_url) as fast, api(slow_url) as slow:
            for i in range(rounds):
                method, kwargs = ("GET", {}) if i % 2 else ("POST", {"body": {"title": f"t{i}"}})
                for which, todos in (("fast", fast), ("slow", slow)):
                    times.setdefault((which, method), []).append(await timed(todos, method, **kwargs))
        assert min(times["slow", "GET"]) >= 0.030, times
        assert min(times["slow", "GET"]) - min(times["fast", "GET"]) >= 0.030, times
        assert min(times["slow", "POST"]) - min(times["fast", "POST"]) < 0.030, times  # mutations are not held

    with serving(name) as fast_url, serving(name, "--api-delay-ms", "30") as slow_url:
        run(scenario(fast_url, slow_url))


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--api-delay-ms", "-1"], "--api-delay-ms must be a finite number >= 0"),
        (["--api-delay-ms", "nan"], "--api-delay-ms must be a finite number >= 0"),
        (["--max-todos", "0"], "--max-todos must be >= 1"),
    ],
)
def test_bad_knobs_are_usage_errors(args: list[str], error: str) -> None:
    with pytest.raises(RuntimeError, match=r"(?s)exit status 2\).*error: " + re.escape(error)):
        start_target("targets.sse", "--port", "0", *args)


# -- the events ----------------------------------------------------------------------------------------

# The wire event each target's subscribers listen for, per app event: SSE carries all three as ``message``.
WIRE_EVENTS = {
    "socketio": {e: e for e in EVENTS},
    "sse": {e: "message" for e in EVENTS},
    "pusher": {e: e for e in EVENTS},
    "ably": {e: e for e in EVENTS},
}


class Inbox:
    """One subscriber's deliveries, with a wait on them (woken by every delivery, no polling)."""

    def __init__(self) -> None:
        self.data: list[object] = []
        self.errors: list[str] = []
        self.changed = asyncio.Event()

    def hooks(self) -> SubscriberHooks:
        def on_data(data: object, _rx_ns: int) -> None:
            self.data.append(data)
            self.changed.set()

        def on_error(reason: str) -> None:
            self.errors.append(reason)
            self.changed.set()

        return SubscriberHooks(on_data=on_data, on_error=on_error)

    def carried(self) -> list[object]:
        return [probe.carried(d) for d in self.data]

    async def until_carried(self, text: str) -> None:
        while text not in self.carried():
            self.changed.clear()
            await self.changed.wait()


def as_object(data: object) -> Any:
    """An event's data as the app reads it: an object, whether it came as one or as JSON text."""
    return json.loads(data) if isinstance(data, str | bytes) else data


@pytest.mark.parametrize("faults", [[], ["--delay-ms", "20"]], ids=["plain", "delayed"])
@pytest.mark.parametrize("name", TARGETS)
def test_each_mutation_reaches_a_subscriber_once_with_its_probe(name: str, faults: list[str]) -> None:
    """One subscriber per wire event (SSE: one, getting all three in order); the fan-out's fault knobs apply."""
    wire = sorted(set(WIRE_EVENTS[name].values()))

    async def scenario(url: str) -> None:
        subscribers: list[SubscriberHandle] = []
        inboxes = {event: Inbox() for event in wire}
        opened = [providers.load(name)(url, provider_options(name, url, "--event", event)) for event in wire]
        try:
            for event, provider in zip(wire, opened, strict=True):
                subscribers.append(await provider.open_subscriber(TODOS_CHANNEL, inboxes[event].hooks()))
            sent: dict[str, list[str]] = {event: [] for event in wire}
            async with api(url) as todos:
                for round_ in (1, 2):  # round 2 fences round 1
                    probes = {event: envelope(10 * round_ + i) for i, event in enumerate(EVENTS)}
                    status, created = await todos.call("POST", body={"title": "milk"}, probe_text=probes[CREATED])
                    assert status == 201
                    path = f"/{created['id']}"
                    done = {"completed": True}
                    assert (await todos.call("PATCH", path, body=done, probe_text=probes[UPDATED]))[0] == 200
                    assert (await todos.call("DELETE", path, probe_text=probes[DELETED]))[0] == 204
                    for event in EVENTS:
                        sent[WIRE_EVENTS[name][event]].append(probes[event])
            for event in wire:
                await asyncio.wait_for(inboxes[event].until_carried(sent[event][-1]), 10)
            for event in wire:
                inbox = inboxes[event]
                assert inbox.errors == []
                assert inbox.carried() == sent[event], (event, inbox.data)  # exactly once, in order, intact
                for text in inbox.carried():
                    assert isinstance(text, str) and probe.decode(text).run_id == "todos"
                objects = [as_object(d) for d in inbox.data]
                types = [o["type"] for o in objects]
                assert types == ([CREATED, UPDATED, DELETED] * 2 if name == "sse" else [event, event])
                for obj in objects:
                    assert set(obj) == {"type", "todo", "probe"}
                    assert obj["todo"]["title"] == "milk"
                    assert obj["todo"]["completed"] == (obj["type"] != CREATED)
        finally:
            for subscriber in subscribers:
                await subscriber.close()
            for provider in opened:
                await provider.aclose()

    with serving(name, *faults) as url:
        run(scenario(url))


def test_carried_finds_the_envelope_and_leaves_anything_else_to_decode() -> None:
    text = envelope(1)
    assert probe.carried({"type": CREATED, "probe": text}) == text
    assert probe.carried(json.dumps({"type": CREATED, "probe": text})) == text
    assert probe.carried(text.encode()) == text.encode()
    assert probe.carried(text) == text
    assert probe.carried("{broken") == "{broken"
    assert probe.carried({"todo": {}}) is None
