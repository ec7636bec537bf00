"""The todo-app workload on the loop (issue 14): writers mutate ``/api/todos``, readers refetch it.

What the blueprint's React client does, driven by the pure query state of ``measure/refetch.py``: a
reader holds an ordinary push subscription (timed at the socket like every subscriber, so the app's
event is a delivery with exact accounting and ``event_ms`` is its latency), unwraps the probe and the
todo's id from the app's event, invalidates its ``['todos']`` query and does the GETs the policy asks
for on the process's shared HTTP session. A writer is a publisher handle whose publish is one of the
app's mutations (``--mutation-mix``: ``POST``, ``PATCH`` or ``DELETE /api/todos``) with the envelope in
the probe header, so the open-model schedule, the ledgers and the failure rules of ``GeneratorSession``
apply unchanged. Times are CLOCK_REALTIME like every due time;
a GET's completion is when its body was read (the loop's view, not a kernel stamp).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import time
from typing import Any

import aiohttp

from harness.measure import probe
from harness.measure.accounting import SubscriberRecord
from harness.measure.appstats import AppStats
from harness.measure.recorder import Recorder
from harness.measure.refetch import Listing, TodosQuery
from harness.providers.base import OnData, PublisherHandle, SubscriberHandle
from harness.providers.http import shared_session

#: the header a request names its probe envelope in (targets/todos.py ``PROBE_HEADER``)
PROBE_HEADER = "X-Rtbench-Probe"
#: the channel Pusher and Ably carry the app's events on (targets/todos.py ``TODOS_CHANNEL``); Socket.IO
#: and SSE broadcast them to every client, whatever channel the harness names
APP_CHANNEL = "todos"
TODOS_PATH = "/api/todos"
#: a GET with no answer by then failed
REFETCH_TIMEOUT_S = 10.0
#: a failed GET is retried after this (TanStack Query's first retry delay)
RETRY_DELAY_S = 1.0


def todos_url(host: str, api_base: str = "", todos_path: str = TODOS_PATH) -> str:
    """The todos collection: ``--api-base`` (else the push host) joined with ``--todos-path``, so the
    workload can point at a team's own app whose API is not where its push is."""
    return (api_base or host).rstrip("/") + (todos_path or TODOS_PATH)


CREATE, UPDATE, DELETE = "create", "update", "delete"
KINDS = (CREATE, UPDATE, DELETE)


class MutationMix:
    """Which mutation comes next: a smooth weighted round robin over ``--mutation-mix``, so the kinds
    interleave evenly and their counts are exact (1:1:1 is create, update, delete, again)."""

    def __init__(self, weights: tuple[int, int, int]) -> None:
        self.weights = dict(zip(KINDS, weights, strict=True))
        self.total = sum(weights)
        self.credit = dict.fromkeys(KINDS, 0)

    def next(self) -> str:
        for kind, weight in self.weights.items():
            self.credit[kind] += weight
        chosen = max(KINDS, key=self.credit.__getitem__)  # a tie goes to the earlier kind
        self.credit[chosen] -= self.total
        return chosen


class TodoWriter(PublisherHandle):
    """A writer: each publish is the next mutation of the mix, its envelope in the probe header, and its
    round trip is ``mutation_ms``. It updates and deletes only todos it created (none yet: it creates),
    one request per todo at a time, so a todo's mutations are in its own schedule's order. Raises for an
    answer other than 201 / 200 / 204, so the session counts a failed publish. ``optimistic``: each
    mutation is applied to the writer's own list first and rolled back when refused (``rolled_back``)."""

    def __init__(
        self, url: str, stats: AppStats, mix: tuple[int, int, int] = (1, 0, 0), optimistic: bool = False
    ) -> None:
        self.url = url
        self.stats = stats
        self.mix = MutationMix(mix)
        self.optimistic = optimistic
        self._n = 0
        #: the todos this writer created and has not deleted, oldest first
        self._owned: collections.deque[int] = collections.deque()
        self._busy: set[int] = set()
        #: the writer's own view (``optimistic``): todo id (negative: a create not answered yet) -> title
        self.view: dict[int, str] = {}

    def _pick(self, kind: str) -> int | None:
        """A todo of this writer's that no request is changing: the oldest for a delete, the least
        recently updated for an update; None when there is none (the mutation becomes a create)."""
        for todo_id in list(self._owned):
            if todo_id not in self._busy:
                self._owned.remove(todo_id)
                if kind == UPDATE:
                    self._owned.append(todo_id)
                return todo_id
        return None

    async def publish(self, channel: str, text: str) -> None:
        due_ns = probe.decode(text).due_ns
        kind = self.mix.next()
        todo_id = self._pick(kind) if kind != CREATE else None
        if todo_id is None:
            kind = CREATE
        self._n += 1
        method, url, body, expected = {
            CREATE: ("POST", self.url, {"title": f"todo {self._n}"}, 201),
            UPDATE: ("PATCH", f"{self.url}/{todo_id}", {"title": f"todo {self._n}"}, 200),
            DELETE: ("DELETE", f"{self.url}/{todo_id}", None, 204),
        }[kind]
        key = -self._n if todo_id is None else todo_id  # a create's view entry until its id is known
        before = self._apply(kind, key, body)
        session = await shared_session()
        if todo_id is not None:
            self._busy.add(todo_id)
        began = time.perf_counter_ns()
        failure: str | None = "no answer"
        try:
            async with session.request(method, url, json=body, headers={PROBE_HEADER: text}) as resp:
                raw = await resp.read()
                if resp.status != expected:
                    failure = f"HTTP {resp.status}"
                    raise RuntimeError(f"{method} {url} answered HTTP {resp.status}")
                failure = None
                if kind == CREATE:
                    self._created(raw, key)
        except aiohttp.ClientError as exc:
            failure = type(exc).__name__
            raise
        finally:
            if todo_id is not None:
                self._busy.discard(todo_id)
                if failure is not None and kind == DELETE:
                    self._owned.appendleft(todo_id)  # refused: still this writer's to delete
            if failure is not None and self.optimistic:
                self._restore(key, before)
                self.stats.rolled_back(f"{method} answered {failure}")
            self.stats.mutated(due_ns, time.perf_counter_ns() - began, failure is None, kind)

    def _apply(self, kind: str, key: int, body: dict[str, Any] | None) -> str | None:
        """Apply the mutation to the writer's own view at once (``optimistic``); returns what ``key``
        held before (None: nothing), for ``_restore``."""
        if not self.optimistic:
            return None
        self.stats.applied_optimistically()
        before = self.view.get(key)
        if kind == DELETE:
            self.view.pop(key, None)
        else:
            self.view[key] = str((body or {}).get("title", ""))
        return before

    def _restore(self, key: int, before: str | None) -> None:
        """Roll a refused mutation back in the writer's view."""
        if before is None:
            self.view.pop(key, None)
        else:
            self.view[key] = before

    def _created(self, raw: bytes, key: int) -> None:
        """A 201: the new todo's id is this writer's to update and delete; its optimistic entry takes it."""
        try:
            todo_id = json.loads(raw)["id"]
        except (ValueError, TypeError, KeyError):
            return
        if isinstance(todo_id, int) and not isinstance(todo_id, bool):
            self._owned.append(todo_id)
            if self.optimistic:
                self.view[todo_id] = self.view.pop(key, "")

    async def close(self) -> None:
        """Nothing of its own: it posts on the shared session."""


#: what browsers allow a page per host over HTTP/1.1; without the bound, ``--refetch always`` against a slow
#: server opened a socket per event per reader until the generator ran out of file descriptors
BROWSER_CONNECTIONS_PER_HOST = 6


#: an app event's ``type`` when it deleted its todo (targets/todos.py ``DELETED``)
DELETED_TYPE = "todo:deleted"


def about(data: object) -> tuple[object, int | None, bool]:
    """An app event's probe envelope (what ``probe.carried`` finds), the id of the todo it is about (None
    when it names none) and whether it deleted it: targets/todos.py's ``{"type", "todo": {"id", ...},
    "probe"}``, or its JSON text."""
    if isinstance(data, str | bytes | bytearray) and data[:1] in ("{", b"{"):
        try:
            data = json.loads(data)
        except ValueError:
            return data, None, False
    if not isinstance(data, dict):
        return data, None, False
    todo = data.get("todo")
    todo_id = todo.get("id") if isinstance(todo, dict) else None
    if not isinstance(todo_id, int) or isinstance(todo_id, bool):
        todo_id = None
    return data.get("probe"), todo_id, data.get("type") == DELETED_TYPE


class TodoReader:
    """A reader's query and the GETs it asks for; ``bind`` makes the subscription's ``on_data``.
    ``jitter_s``: each GET an event starts first waits a random 0..jitter_s (``--refetch-jitter-ms``)."""

    def __init__(self, url: str, recorder: Recorder, stats: AppStats, jitter_s: float = 0.0) -> None:
        self.url = url
        self.recorder = recorder
        self.stats = stats
        self.jitter_s = jitter_s
        self.query: TodosQuery = stats.reader()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.TimerHandle | None = None
        #: a browser's connections to one host: GETs beyond them wait their turn, as a page's fetches do
        self._connections = asyncio.Semaphore(BROWSER_CONNECTIONS_PER_HOST)

    def bind(self, record: SubscriberRecord) -> OnData:
        recorder, query = self.recorder, self.query

        def on_data(data: object, rx_ns: int) -> None:
            envelope, todo_id, deletes = about(data)
            recorder.delivered_to(record, envelope, rx_ns)  # times and accounts the event (or counts an error)
            try:
                message = probe.decode(envelope)
            except probe.ProbeError:
                return
            if message.run_id == recorder.run_id:
                gets = query.invalidate(str(envelope), message.due_ns, rx_ns, todo_id, deletes)
                self._start(gets, random.uniform(0.0, self.jitter_s) if self.jitter_s else 0.0)
                if query.wake_at_ns and self._wake is None:
                    self._wake_when_stale()

        return on_data

    def _wake_when_stale(self) -> None:
        """Owe the GET for when the list goes stale (``--stale-ms``): a timer on the loop."""
        loop = asyncio.get_running_loop()

        def wake() -> None:
            self._wake = None
            self._start(self.query.wake())

        self._wake = loop.call_later(max(0.0, (self.query.wake_at_ns - time.time_ns()) / 1e9), wake)

    def _start(self, gets: int, delay_s: float = 0.0) -> None:
        for _ in range(gets):
            task = asyncio.ensure_future(self._get(delay_s))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _get(self, delay_s: float) -> None:
        try:
            if delay_s:
                await asyncio.sleep(delay_s)
            session = await shared_session()
            async with self._connections:
                began, started_ns = time.perf_counter_ns(), time.time_ns()
                listing = await self._fetch(session)
        except asyncio.CancelledError:
            self.query.in_flight -= 1  # the reader closed: this GET will never settle
            raise
        done_ns = time.time_ns()
        self.stats.refetched(time.perf_counter_ns() - began, listing is not None)
        fresh, again = self.query.settled(listing, done_ns, started_ns)
        self.stats.made_fresh(fresh)
        self._start(again, RETRY_DELAY_S if listing is None else 0.0)

    async def _fetch(self, session: aiohttp.ClientSession) -> Listing | None:
        """What ``GET`` listed (each todo's id and probe); None (and the error counted by its kind: an HTTP
        status, malformed JSON, not an array, a timeout, a connection failure) when it failed."""
        try:
            async with asyncio.timeout(REFETCH_TIMEOUT_S), session.get(self.url) as resp:
                raw = await resp.read()
        except TimeoutError:
            return self._failed(f"GET timed out after {REFETCH_TIMEOUT_S:g} s")
        except aiohttp.ClientError as exc:
            return self._failed(f"{type(exc).__name__}: {str(exc)[:120]}")
        if resp.status != 200:
            return self._failed(f"GET answered HTTP {resp.status}")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._failed("GET answered malformed JSON")
        if not isinstance(body, list):
            return self._failed("GET answered a body that is not a JSON array")
        return Listing(todo for todo in body if isinstance(todo, dict))

    def _failed(self, reason: str) -> Listing | None:
        """Count a failed GET under its reason; None, what ``_fetch`` answers for it."""
        self.recorder.error(f"refetch failed: {reason}")
        return None

    async def close(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)


class ReaderHandle(SubscriberHandle):
    """A reader's subscription and its query, closed together."""

    def __init__(self, subscription: SubscriberHandle, reader: TodoReader) -> None:
        self.subscription = subscription
        self.reader = reader

    @property
    def rx_clock(self) -> str:
        return self.subscription.rx_clock

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.subscription.close()
        await self.reader.close()
