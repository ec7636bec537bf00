"""An app route you don't control: sends `event: message` with {"id","message","timestamp": ms} on its own.

No publish endpoint. Ids are sequential but every 5th is skipped, so a harness that accounts by id
gaps must report those as lost. Usage: python tests/sse/stamping_server.py PORT INTERVAL_MS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiohttp import web


async def events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    interval = request.app["interval_s"]
    n = 0
    while True:
        n += 1
        if n % 5 == 0:
            continue  # a gap in the ids
        body = json.dumps({"id": n, "message": f"tick {n}", "timestamp": int(time.time() * 1000)})
        await response.write(f"id: {n}\nevent: message\ndata: {body}\n\n".encode())
        await asyncio.sleep(interval)


def main() -> None:
    port, interval_ms = int(sys.argv[1]), float(sys.argv[2])
    app = web.Application()
    app["interval_s"] = interval_ms / 1000
    app.router.add_get("/api/events", events)

    runner = web.AppRunner(app)

    async def serve() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"rtbench-target stamping-sse listening http://127.0.0.1:{bound}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
