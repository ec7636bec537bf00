"""A team's own app for the todo-app runs: its REST API on another port and path than the push server.

``python tests/todo_app/app_server.py PUSH_URL PATH MODE`` serves ``PATH`` (e.g. ``/v2/items``) on a
free loopback port. A POST is forwarded, body and probe header as sent, to the reference target's
``/api/todos`` at ``PUSH_URL``, which stores the todo and emits its event to the readers: the push side
is a real target, only the API the readers GET is this app's. ``MODE`` says how GET answers:

* ``proxy``: the target's list, as it is;
* ``http500``: HTTP 500 every time;
* ``malformed``: 200 with a body that is not JSON;
* ``omit-newest``: the target's list without its newest todo, forever.

``GET /requests`` says how many GETs and POSTs ``PATH`` answered, so a test can tell the run used it.
Prints ``rtbench-target app listening http://127.0.0.1:PORT`` once bound (tests/helpers.py waits for it).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

PROBE_HEADER = "X-Rtbench-Probe"
MODES = ("proxy", "http500", "malformed", "omit-newest")
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


def handlers(push_url: str, mode: str) -> tuple[web.Handler, web.Handler, web.Handler]:
    upstream = push_url.rstrip("/") + "/api/todos"
    counts = {"GET": 0, "POST": 0}

    async def requests(request: web.Request) -> web.Response:
        return web.json_response(counts)

    async def create(request: web.Request) -> web.Response:
        counts["POST"] += 1
        headers = {k: v for k, v in request.headers.items() if k in (PROBE_HEADER, "Content-Type")}
        async with request.app[SESSION].post(upstream, data=await request.read(), headers=headers) as resp:
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    async def index(request: web.Request) -> web.Response:
        counts["GET"] += 1
        if mode == "http500":
            return web.json_response({"error": "the database is down"}, status=500)
        if mode == "malformed":
            return web.Response(text='[{"id": 1, "probe": ', content_type="application/json")
        async with request.app[SESSION].get(upstream) as resp:
            todos = await resp.json()
        if mode == "omit-newest" and todos:
            todos = [t for t in todos if t["id"] != max(t["id"] for t in todos)]
        return web.json_response(todos)

    return index, create, requests


def main() -> None:
    push_url, path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}")
    app = web.Application()
    index, create, requests = handlers(push_url, mode)
    app.router.add_get("/requests", requests)
    app.router.add_get(path, index)
    app.router.add_post(path, create)

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession()
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)

    async def serve() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"rtbench-target app listening http://127.0.0.1:{bound}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
