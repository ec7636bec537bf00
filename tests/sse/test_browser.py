"""A real browser receives events: headless Chromium's EventSource on a page served by this test.

The page reports back to the test server (``/opened``, ``/result``), so the test waits on those
requests, never on time. Skipped when no Chromium is installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.helpers import TargetProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install -y chromium"),
]

PAGE = """<!doctype html><meta charset="utf-8"><title>rtbench sse</title><script>
const got = [];
const es = new EventSource(%(events)s);
es.onopen = () => fetch("/opened", {method: "POST"});
es.addEventListener("todo:created", (e) => {
  got.push({data: e.data, id: e.lastEventId});
  if (got.length === 3) fetch("/result", {method: "POST", body: JSON.stringify(got)});
});
</script>"""


def test_headless_chromium_eventsource_gets_published_events(target: tuple[str, TargetProcess], tmp_path: Path) -> None:
    url, _ = target
    assert CHROMIUM is not None

    async def main() -> None:
        opened, result = asyncio.Event(), asyncio.get_running_loop().create_future()

        async def page(_: web.Request) -> web.Response:
            return web.Response(text=PAGE % {"events": json.dumps(f"{url}/api/events")}, content_type="text/html")

        async def on_opened(_: web.Request) -> web.Response:
            opened.set()
            return web.Response()

        async def on_result(request: web.Request) -> web.Response:
            if not result.done():
                result.set_result(await request.json())
            return web.Response()

        app = web.Application()
        app.router.add_get("/", page)
        app.router.add_post("/opened", on_opened)
        app.router.add_post("/result", on_result)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        page_url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        browser = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--remote-debugging-port=0",
                page_url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await asyncio.wait_for(opened.wait(), 45)
            async with aiohttp.ClientSession() as session:
                sent: list[dict[str, Any]] = []
                for k in range(3):
                    body = {"event": "todo:created", "data": json.dumps({"id": k, "title": f"todo {k}"})}
                    async with session.post(f"{url}/api/publish", json=body) as resp:
                        sent.append({"data": body["data"], "id": (await resp.json())["id"]})
            assert await asyncio.wait_for(result, 20) == sent
        finally:
            browser.kill()
            browser.wait(10)
            await runner.cleanup()

    asyncio.run(main())
