"""The todo-app workload on the loop (issue 14): writers mutate ``/api/todos``, readers refetch it.

What the blueprint's React client does, driven by the pure query state of ``measure/refetch.py``: a
reader holds an ordinary push subscription (timed at the socket like every subscriber, so the app's
event is a delivery with exact accounting and ``event_ms`` is its latency), unwraps the probe from the
app's event (``probe.carried``), invalidates its ``['todos']`` query and does the GETs the policy asks
for on the process's shared HTTP session. A writer is a publisher handle whose publish is the app's
``POST /api/todos`` with the envelope in the probe header, so the open-model schedule, the ledgers and
the failure rules of ``GeneratorSession`` apply unchanged. Times are CLOCK_REALTIME like every due time;
a GET's completion is when its body was read (the loop's view, not a kernel stamp).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp

from harness.measure import probe
from harness.measure.accounting import SubscriberRecord
from harness.measure.appstats import AppStats
from harness.measure.recorder import Recorder
from harness.measure.refetch import TodosQuery
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


class TodoWriter(PublisherHandle):
    """A writer: each publish creates a todo, its envelope in the probe header; the POST's round trip
    is ``mutation_ms``. Raises for anything but 201, so the session counts a failed publish."""

    def __init__(self, url: str, stats: AppStats) -> None:
        self.url = url
        self.stats = stats
        self._n = 0

    async def publish(self, channel: str, text: str) -> None:
        due_ns = probe.decode(text).due_ns
        session = await shared_session()
        self._n += 1
        began = time.perf_counter_ns()
        ok = False
        try:
            async with session.post(self.url, json={"title": f"todo {self._n}"}, headers={PROBE_HEADER: text}) as resp:
                await resp.read()
                if resp.status != 201:
                    raise RuntimeError(f"POST {self.url} answered HTTP {resp.status}")
                ok = True
        finally:
            self.stats.mutated(due_ns, time.perf_counter_ns() - began, ok)

    async def close(self) -> None:
        """Nothing of its own: it posts on the shared session."""


#: what browsers allow a page per host over HTTP/1.1; without the bound, ``--refetch always`` against a slow
#: server opened a socket per event per reader until the generator ran out of file descriptors
BROWSER_CONNECTIONS_PER_HOST = 6


class TodoReader:
    """A reader's query and the GETs it asks for; ``bind`` makes the subscription's ``on_data``."""

    def __init__(self, url: str, recorder: Recorder, stats: AppStats) -> None:
        self.url = url
        self.recorder = recorder
        self.stats = stats
        self.query: TodosQuery = stats.reader()
        self._tasks: set[asyncio.Task[None]] = set()
        #: a browser's connections to one host: GETs beyond them wait their turn, as a page's fetches do
        self._connections = asyncio.Semaphore(BROWSER_CONNECTIONS_PER_HOST)

    def bind(self, record: SubscriberRecord) -> OnData:
        recorder, query = self.recorder, self.query

        def on_data(data: object, rx_ns: int) -> None:
            envelope = probe.carried(data)
            recorder.delivered_to(record, envelope, rx_ns)  # times and accounts the event (or counts an error)
            try:
                message = probe.decode(envelope)
            except probe.ProbeError:
                return
            if message.run_id == recorder.run_id:
                self._start(query.invalidate(str(envelope), message.due_ns, rx_ns))

        return on_data

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
                began = time.perf_counter_ns()
                probes = await self._fetch(session)
        except asyncio.CancelledError:
            self.query.in_flight -= 1  # the reader closed: this GET will never settle
            raise
        done_ns = time.time_ns()
        self.stats.refetched(time.perf_counter_ns() - began, probes is not None)
        fresh, again = self.query.settled(probes, done_ns)
        self.stats.made_fresh(fresh)
        self._start(again, RETRY_DELAY_S if probes is None else 0.0)

    async def _fetch(self, session: aiohttp.ClientSession) -> list[object] | None:
        """The ``probe`` of every todo ``GET`` lists; None (and the error counted by its kind: an HTTP
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
        return [todo.get("probe") for todo in body if isinstance(todo, dict)]

    def _failed(self, reason: str) -> list[object] | None:
        """Count a failed GET under its reason; None, what ``_fetch`` answers for it."""
        self.recorder.error(f"refetch failed: {reason}")
        return None

    async def close(self) -> None:
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
