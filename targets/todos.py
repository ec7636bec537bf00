"""The blueprint app's REST API, served by every reference target beside its push endpoints (issue 14).

Written once so the four targets serve the same app; each target only says how an event reaches its
clients (an ``Emit``), so a mutation's event takes the same fan-out, under the same fault plan
(``--delay-ms``, ``--drop-rate``, ``--corrupt-rate``), as any publish.

* ``GET /api/todos`` -> 200, a JSON array of the todos in creation order;
* ``POST /api/todos`` ``{"title": str (1..500 chars), "completed": bool (optional, false)}`` -> 201, the todo;
* ``PATCH /api/todos/{id}`` with ``title`` and/or ``completed`` -> 200, the todo;
* ``DELETE /api/todos/{id}`` -> 204.

A todo is ``{"id": int, "title": str, "completed": bool, "probe": str | null}``: ids count up from 1
and are never reused; ``probe`` is the probe envelope (harness/measure/probe.py) of the request that
created or last updated it, so a reader can tell whether a refetch holds a given mutation. A request
names its probe in the ``X-Rtbench-Probe`` header (any method, DELETE included, and the body keeps the
app's own shape); without one, ``probe`` is null. Errors are ``{"error": reason}``: 400 for bad JSON,
wrong fields or a header that is not an envelope, 404 for an unknown id, 413 for a body over 16 KiB,
507 once ``--max-todos`` todos exist. Fields other than ``title`` and ``completed`` are ignored.

Each mutation emits one event whose data is the JSON object ``{"type": "todo:created" | "todo:updated"
| "todo:deleted", "todo": <the todo; as it was, for a delete>, "probe": <this request's envelope or
null>}``: an object where the protocol carries one (Socket.IO arguments, Ably's ``json`` encoding), its
JSON text elsewhere (SSE ``data:``, Pusher ``data``). An object, not a bare envelope, because that is
what the app sends and what its clients read (SSE clients tell events apart by ``type``); a subscriber
that measures finds the envelope with ``harness.measure.probe.carried``.

``--api-delay-ms`` holds every ``GET /api/todos`` answer that long before the store is read: a slow list
query, the one every client's refetch runs (the stampede). Mutations are not held, so the delay shows in
the time to fresh data and not in the push. ``--max-todos`` bounds the store. The store is this
process's: nodes sharing a Redis each have their own (their events still reach every node's clients).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from harness.measure import probe
from targets.httpapi import BadRequest, json_error, read_json
from targets.serve import UsageError

__all__ = [
    "CREATED",
    "DELETED",
    "MAX_TITLE",
    "PROBE_HEADER",
    "TODOS",
    "TODOS_CHANNEL",
    "UPDATED",
    "Emit",
    "Todo",
    "TodoApi",
    "TodoEvent",
    "TodoStore",
    "add_args",
    "mount",
]

CREATED, UPDATED, DELETED = "todo:created", "todo:updated", "todo:deleted"
TODOS_CHANNEL = "todos"
"""The channel Pusher and Ably trigger the app's events on."""
PROBE_HEADER = "X-Rtbench-Probe"
MAX_TITLE = 500
MAX_BODY_BYTES = 16 * 1024
DEFAULT_MAX_TODOS = 10_000

_CORS = {"Access-Control-Allow-Origin": "*"}


def add_args(parser: argparse.ArgumentParser) -> None:
    """The app API's knobs, shared by every target (targets.base registers them)."""
    parser.add_argument(
        "--api-delay-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="hold every GET /api/todos answer this long, as a slow list query (default: 0)",
    )
    parser.add_argument(
        "--max-todos",
        type=int,
        default=DEFAULT_MAX_TODOS,
        metavar="N",
        help="todos the in-memory store holds; creating more gets HTTP 507 (default: %(default)s)",
    )


@dataclass(slots=True)
class Todo:
    id: int
    title: str
    completed: bool
    probe: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "completed": self.completed, "probe": self.probe}


@dataclass(frozen=True, slots=True)
class TodoEvent:
    """One mutation's event: its name, its data as an object and as JSON text (built once)."""

    name: str
    data: dict[str, Any]
    text: str

    @classmethod
    def of(cls, name: str, todo: Todo, envelope: str | None) -> TodoEvent:
        data = {"type": name, "todo": todo.to_json(), "probe": envelope}
        return cls(name, data, json.dumps(data, separators=(",", ":")))


Emit = Callable[[TodoEvent], Awaitable[object]]
"""A target's way to fan one event out to its clients (through its fault plan)."""


class StoreFull(Exception):
    pass


class TodoStore:
    """The todos in memory, in creation order (a dict keeps it), at most ``max_todos`` of them."""

    def __init__(self, max_todos: int) -> None:
        self.max_todos = max_todos
        self.todos: dict[int, Todo] = {}
        self._ids = itertools.count(1)

    def create(self, title: str, completed: bool, envelope: str | None) -> Todo:
        if len(self.todos) >= self.max_todos:
            raise StoreFull(f"the store is full ({self.max_todos} todos, --max-todos)")
        todo = Todo(next(self._ids), title, completed, envelope)
        self.todos[todo.id] = todo
        return todo

    def update(self, todo_id: int, changes: dict[str, Any], envelope: str | None) -> Todo:
        todo = self.todos[todo_id]
        todo.title = changes.get("title", todo.title)
        todo.completed = changes.get("completed", todo.completed)
        todo.probe = envelope
        return todo

    def delete(self, todo_id: int) -> Todo:
        return self.todos.pop(todo_id)


def _fields(obj: Any, *, partial: bool) -> dict[str, Any]:
    """The known fields of a create (``partial=False``: title required) or update body, validated."""
    if not isinstance(obj, dict):
        raise BadRequest(400, "body must be a JSON object")
    changes: dict[str, Any] = {}
    if "title" in obj or not partial:
        title = obj.get("title")
        if not isinstance(title, str) or not 1 <= len(title) <= MAX_TITLE:
            raise BadRequest(400, f"'title' must be a string of 1 to {MAX_TITLE} characters")
        changes["title"] = title
    if "completed" in obj:
        if not isinstance(obj["completed"], bool):
            raise BadRequest(400, "'completed' must be true or false")
        changes["completed"] = obj["completed"]
    if partial and not changes:
        raise BadRequest(400, "nothing to change: give 'title' and/or 'completed'")
    return changes


def _envelope(request: web.Request) -> str | None:
    text = request.headers.get(PROBE_HEADER)
    if text is None:
        return None
    try:
        probe.decode(text)
    except probe.ProbeError as exc:
        raise BadRequest(400, f"{PROBE_HEADER}: {exc}") from None
    return text


def _todo_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest(404, f"no todo with id {raw[:40]!r}")
    return int(raw)


def _answer(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers=_CORS)


class TodoApi:
    """The aiohttp handlers over one store; mutations answer once their event is handed to ``emit``."""

    def __init__(self, store: TodoStore, emit: Emit, delay_ms: float = 0.0) -> None:
        self.store = store
        self.emit = emit
        self.delay_s = delay_ms / 1000.0

    @classmethod
    def from_args(cls, args: argparse.Namespace, emit: Emit) -> TodoApi:
        delay_ms = float(getattr(args, "api_delay_ms", 0.0))
        max_todos = int(getattr(args, "max_todos", DEFAULT_MAX_TODOS))
        if not (math.isfinite(delay_ms) and delay_ms >= 0):
            raise UsageError("--api-delay-ms must be a finite number >= 0")
        if max_todos < 1:
            raise UsageError("--max-todos must be >= 1")
        return cls(TodoStore(max_todos), emit, delay_ms)

    async def _slow_query(self) -> None:
        """Wait out the delay on the monotonic clock (a loop timer may fire up to a tick early)."""
        if self.delay_s <= 0:
            return
        deadline = time.monotonic() + self.delay_s
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(left)

    async def index(self, request: web.Request) -> web.Response:
        await self._slow_query()
        return _answer([todo.to_json() for todo in self.store.todos.values()])

    async def create(self, request: web.Request) -> web.Response:
        try:
            envelope = _envelope(request)
            fields = _fields(await read_json(request, MAX_BODY_BYTES), partial=False)
            todo = self.store.create(fields["title"], fields.get("completed", False), envelope)
        except BadRequest as exc:
            return json_error(exc.status, str(exc))
        except StoreFull as exc:
            return json_error(507, str(exc))
        await self.emit(TodoEvent.of(CREATED, todo, envelope))
        return _answer(todo.to_json(), status=201)

    async def update(self, request: web.Request) -> web.Response:
        try:
            todo_id = _todo_id(request)
            envelope = _envelope(request)
            changes = _fields(await read_json(request, MAX_BODY_BYTES), partial=True)
            if todo_id not in self.store.todos:
                raise BadRequest(404, f"no todo with id {todo_id}")
        except BadRequest as exc:
            return json_error(exc.status, str(exc))
        todo = self.store.update(todo_id, changes, envelope)
        await self.emit(TodoEvent.of(UPDATED, todo, envelope))
        return _answer(todo.to_json())

    async def delete(self, request: web.Request) -> web.Response:
        try:
            todo_id = _todo_id(request)
            envelope = _envelope(request)
            if todo_id not in self.store.todos:
                raise BadRequest(404, f"no todo with id {todo_id}")
        except BadRequest as exc:
            return json_error(exc.status, str(exc))
        todo = self.store.delete(todo_id)
        await self.emit(TodoEvent.of(DELETED, todo, envelope))
        return web.Response(status=204, headers=_CORS)

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(
            status=204,
            headers={
                **_CORS,
                "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": f"Content-Type, {PROBE_HEADER}",
                "Access-Control-Max-Age": "600",
            },
        )


TODOS: web.AppKey[TodoApi] = web.AppKey("rtbench_todos", TodoApi)
"""The app API behind a target's app, for tests and embedding."""


def mount(app: web.Application, args: argparse.Namespace, emit: Emit) -> TodoApi:
    """Serve the app API on ``app``, its events going out through ``emit``. UsageError for bad knobs."""
    api = TodoApi.from_args(args, emit)
    app[TODOS] = api
    router = app.router
    router.add_get("/api/todos", api.index)
    router.add_post("/api/todos", api.create)
    router.add_route("OPTIONS", "/api/todos", api.preflight)
    router.add_route("PATCH", "/api/todos/{id}", api.update)
    router.add_route("DELETE", "/api/todos/{id}", api.delete)
    router.add_route("OPTIONS", "/api/todos/{id}", api.preflight)
    return api
