"""Browser probes (``--browser-probes N``): N headless Chromium pages subscribed with the provider's
official JavaScript client, beside the synthetic subscribers, timed in the page.

Each page is served from a small aiohttp server on a free loopback port (the page and the client's
browser bundle, read from the local browser clients folder: no CDN), subscribes as the provider's page
script says (``Provider.browser_page``), and reports each arrival through a DevTools binding with the
page's own clock, ``performance.timeOrigin + performance.now()``: the same host's wall clock the
publisher stamped the due time with, read where an app's code would see the event. The reports feed a
recorder of their own (``measure/browser.py``): ``browser_latency_ms`` and the pages' accounting are
never mixed into the socket-level figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from harness.measure import browser
from harness.measure.accounting import Ledger, SubscriberRecord, in_flight
from harness.measure.recorder import Recorder
from harness.measure.records import BrowserWire
from harness.net.chromium import Chromium, ChromiumError
from harness.providers.base import BrowserPage, Provider

log = logging.getLogger("rtbench")
#: the function the page calls to report (``Runtime.addBinding``)
BINDING = "rtbReport"
SUBSCRIBE_TIMEOUT_S = 30.0
MAX_REASON = 300

#: what every page shares: ``rtb`` (the reporting side of ``BrowserPage.script``) and the envelope's head.
#: Only the envelope's fields travel back (not its padding), stamped before anything else is done.
SHARED_JS = r"""
"use strict";
const rtbHead = (d) => {
  if (typeof d === "string" && d[0] === "{") { try { d = JSON.parse(d); } catch (e) { /* not JSON */ } }
  if (d && typeof d === "object" && "probe" in d) d = d.probe;
  if (typeof d !== "string") return String(JSON.stringify(d)).slice(0, 200);
  const parts = d.split("|", 5);
  return d.startsWith("rtb1|") && parts.length === 5 ? parts.join("|") + "|" : d.slice(0, 200);
};
const rtb = {
  deliver: (data) => {
    const t = performance.timeOrigin + performance.now();
    globalThis.rtbReport("d" + t + " " + rtbHead(data));
  },
  subscribed: () => globalThis.rtbReport("s"),
  dropped: () => globalThis.rtbReport("x"),
  error: (text) => globalThis.rtbReport("e" + String(text).slice(0, 300)),
};
window.addEventListener("error", (e) => rtb.error("page error: " + e.message));
window.addEventListener("unhandledrejection", (e) => {
  rtb.error("page error: " + ((e.reason && e.reason.message) || e.reason));
});
"""

PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>rtbench browser probe {index}</title>
{bundle}<script>
const cfg = {config};
{shared}
(() => {{
{script}
}})();
</script></head><body>rtbench browser probe {index}</body></html>
"""


class ProbeError(RuntimeError):
    """The probes could not run (no browser client bundle, Chromium failed); one line."""


@dataclass
class ProbePage:
    """One page: its accounting record, the DevTools session it runs in, and when it began subscribing."""

    index: int
    channel: str
    spec: BrowserPage
    record: SubscriberRecord
    session: str = ""
    started_ns: int = field(default_factory=time.perf_counter_ns)
    subscribed: asyncio.Future[None] | None = None


def bundle_path(clients_dir: Path, spec: BrowserPage) -> Path | None:
    """The local file of the page's client bundle (None: the browser has the client built in)."""
    return clients_dir / spec.bundle if spec.bundle else None


class BrowserProbes:
    """N pages in one headless Chromium, reporting into their own recorder."""

    def __init__(
        self, provider: Provider, binary: str, clients_dir: Path, run_id: str, clock_id: str, secrets: tuple[str, ...]
    ) -> None:
        self.provider = provider
        self.binary = binary
        self.clients_dir = clients_dir
        self.recorder = Recorder(run_id, clock_id)
        self.pages: list[ProbePage] = []
        self.asked = 0
        self._secrets = tuple(s for s in secrets if s)
        self._chromium: Chromium | None = None
        self._runner: web.AppRunner | None = None
        self._base_url = ""
        self._watch: asyncio.Task[None] | None = None
        self._closing = False
        #: each client bundle's bytes, by its path in the clients folder
        self._bundles: dict[str, bytes] = {}

    # -- starting -----------------------------------------------------------------------------------
    async def start(self, count: int, channels: list[str]) -> None:
        """Open ``count`` pages, page i on ``channels[i % len(channels)]``, and return once each one has
        subscribed or failed (counted as a failed connection with its reason: the run goes on without it)."""
        self.asked = count
        for index in range(count):
            channel = channels[index % len(channels)]
            self.pages.append(
                ProbePage(index, channel, self.provider.browser_page(channel), self.recorder.new_subscriber(channel))
            )
        try:
            self._read_bundles()
            await self._serve()
            self._chromium = await Chromium.launch(self.binary)
        except (ProbeError, ChromiumError, OSError) as exc:
            for page in self.pages:
                self._failed(page, str(exc))
            return
        self._watch = asyncio.ensure_future(self._watch_browser(self._chromium))
        await asyncio.gather(*(self._open(page) for page in list(self.pages)))

    def _read_bundles(self) -> None:
        """Each client bundle, read once, here: aiohttp's ``FileResponse`` reads in an executor thread, and
        under Locust's gevent those threads never run."""
        for page in self.pages:
            path = bundle_path(self.clients_dir, page.spec)
            if path is None or page.spec.bundle in self._bundles:
                continue
            try:
                self._bundles[page.spec.bundle] = path.read_bytes()
            except OSError as exc:
                raise ProbeError(f"cannot read {page.spec.bundle} in {self.clients_dir}: {exc.strerror}") from None

    async def _serve(self) -> None:
        """The pages and their client bundles, on a free loopback port."""
        app = web.Application()
        app.router.add_get("/page/{index}", self._page)
        app.router.add_get("/client/{index}.js", self._bundle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self._base_url = f"http://127.0.0.1:{port}"

    def _page_of(self, request: web.Request) -> ProbePage:
        try:
            return self.pages[int(request.match_info["index"])]
        except (ValueError, IndexError):
            raise web.HTTPNotFound() from None

    async def _page(self, request: web.Request) -> web.Response:
        page = self._page_of(request)
        spec = page.spec
        bundle = f'<script src="/client/{page.index}.js"></script>\n' if spec.bundle else ""
        config = json.dumps(spec.config).replace("</", "<\\/")  # never ends the script element
        html = PAGE_HTML.format(index=page.index, bundle=bundle, config=config, shared=SHARED_JS, script=spec.script)
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _bundle(self, request: web.Request) -> web.Response:
        body = self._bundles.get(self._page_of(request).spec.bundle)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="text/javascript")

    async def _open(self, page: ProbePage) -> None:
        chromium = self._chromium
        assert chromium is not None
        page.subscribed = asyncio.get_running_loop().create_future()
        page.started_ns = time.perf_counter_ns()
        try:
            page.session = await chromium.new_page()
            chromium.on(page.session, "Runtime.bindingCalled", lambda params: self._on_report(page, params))
            chromium.on(page.session, "Runtime.exceptionThrown", lambda params: self._on_exception(params))
            await chromium.call("Runtime.enable", session=page.session)
            await chromium.call("Runtime.addBinding", {"name": BINDING}, session=page.session)
            await chromium.call("Page.navigate", {"url": f"{self._base_url}/page/{page.index}"}, session=page.session)
            await asyncio.wait_for(asyncio.shield(page.subscribed), SUBSCRIBE_TIMEOUT_S)
        except TimeoutError:
            self._failed(page, f"not subscribed within {SUBSCRIBE_TIMEOUT_S:g} s")
        except ChromiumError as exc:
            self._failed(page, str(exc))

    def _failed(self, page: ProbePage, reason: str) -> None:
        """A page that never subscribed: a failed connection (summary.json ``browser.failed``), said once."""
        if page.record in self.recorder.subscribers:
            self.recorder.subscribers.remove(page.record)
            self.recorder.connect_failed(self._redact(reason))
            log.warning("rtbench: browser probe %d did not subscribe: %s", page.index, self._redact(reason))

    async def _watch_browser(self, chromium: Chromium) -> None:
        """Chromium gone mid-run: every subscribed page is dropped (what it misses is lost), once."""
        await chromium.closed.wait()
        if self._closing:
            return
        self.recorder.error("chromium exited during the run")
        for page in self.pages:
            self.recorder.dropped(page.record)

    # -- what pages report --------------------------------------------------------------------------
    def _on_report(self, page: ProbePage, params: dict[str, object]) -> None:
        """One binding call: ``d<ms> <envelope head>`` a delivery, ``s`` subscribed, ``x`` dropped, ``e<text>``."""
        if params.get("name") != BINDING:
            return
        payload = str(params.get("payload", ""))
        kind, rest = payload[:1], payload[1:]
        record, recorder = page.record, self.recorder
        if kind == "d":
            stamp, _, data = rest.partition(" ")
            try:
                arrival_ns = int(float(stamp) * 1e6)
            except ValueError:
                recorder.error("a page reported a delivery without its arrival time")
                return
            recorder.delivered_to(record, data, arrival_ns)  # client lag: how late the harness heard of it
        elif kind == "s":
            if not record.windows:  # the first subscription: the page's connect time
                recorder.connected(time.perf_counter_ns() - page.started_ns)
                record.open_window(time.time_ns())
                if page.subscribed is not None and not page.subscribed.done():
                    page.subscribed.set_result(None)
            elif not record.subscribed:
                recorder.resubscribed(record)
        elif kind == "x":
            recorder.dropped(record)
        elif kind == "e":
            recorder.error(self._redact(rest[:MAX_REASON]))

    def _on_exception(self, params: dict[str, object]) -> None:
        details = params.get("exceptionDetails")
        text = ""
        if isinstance(details, dict):
            exception = details.get("exception")
            described = exception.get("description") if isinstance(exception, dict) else None
            text = str(described or details.get("text", "exception"))
        self.recorder.error(
            self._redact("page exception: " + text.splitlines()[0][:MAX_REASON] if text else "page exception")
        )

    def _redact(self, text: str) -> str:
        """A page's reason may quote its options: the provider's secrets never reach a report."""
        for secret in self._secrets:
            text = text.replace(secret, "*****")
        for pattern in self.provider.secret_patterns:
            text = pattern.sub("*****", text)
        return text

    # -- the run's end ------------------------------------------------------------------------------
    @property
    def delivered(self) -> int:
        return self.recorder.delivered

    def steady_from(self, ns: int) -> None:
        self.recorder.steady_from_ns = ns

    def in_flight(self, ledgers: list[Ledger]) -> int:
        """Messages the subscribed pages are owed by this process's publishers and still waiting for."""
        return in_flight(self.recorder.subscribers, ledgers)

    def to_wire(self, end_ns: int) -> BrowserWire:
        return browser.to_wire(self.recorder, self.asked, end_ns)

    async def close(self) -> None:
        self._closing = True
        if self._chromium is not None:
            await self._chromium.close()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(BaseException):
                await self._watch
        if self._runner is not None:
            await self._runner.cleanup()
