"""Open a page in headless Chromium over the DevTools protocol: its text, console errors, a screenshot.

``--dump-dom`` cannot see console errors, so the test drives Chromium through CDP on its websocket
(``websockets`` sync client): enable Runtime/Log/Page, navigate, wait for load, then read the DOM.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-extensions",
    "--disable-sync",
    "--no-default-browser-check",
    "--hide-scrollbars",
)
DEVTOOLS_RE = re.compile(r"DevTools listening on (ws://\S+)")
METRICS_JS = (
    "JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-metric]')]"
    ".map(e => [e.dataset.metric, e.textContent.trim()])))"
)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Page:
    text: str = ""
    metrics: dict[str, str] = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    title: str = ""


class _Session:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 20.0
    ) -> dict[str, Any]:
        ident = next(self.ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 20.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(event)
            if event.get("method") == method:
                found: dict[str, Any] = event
                return found


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append(str(params.get("exceptionDetails", {}).get("text", "exception")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            out.append(str(params["entry"].get("text", "")))
    return out


class Tab:
    """One page of a running Chromium: navigate, evaluate JavaScript, wait for a condition, read errors."""

    def __init__(self, cdp: _Session, session: str) -> None:
        self.cdp, self.session = cdp, session

    def goto(self, url: str, timeout: float = 45.0) -> None:
        self.cdp.events = [e for e in self.cdp.events if e.get("method") != "Page.loadEventFired"]
        self.cdp.call("Page.navigate", {"url": url}, session=self.session)
        self.cdp.wait_event("Page.loadEventFired", timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 20.0) -> Any:
        """The value of ``expression`` (a promise is awaited)."""
        result = self.cdp.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy (the page renders on its own schedule); its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout}s: {expression}")
            time.sleep(interval)

    def metrics(self) -> dict[str, str]:
        """Every ``data-metric`` element's text, by metric name."""
        return dict(json.loads(str(self.evaluate(METRICS_JS))))

    def console_errors(self) -> list[str]:
        return _errors(self.cdp.events)


@contextlib.contextmanager
def browser(width: int = 1200, height: int = 900, timeout: float = 45.0) -> Iterator[Tab]:
    """A headless Chromium with one blank page, closed on exit."""
    binary = chromium()
    assert binary, "chromium is not installed"
    with tempfile.TemporaryDirectory(prefix="rtbench-chromium-") as profile:
        proc = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            url = None
            deadline = time.monotonic() + timeout
            while url is None and time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                match = DEVTOOLS_RE.search(line)
                if match:
                    url = match.group(1)
            assert url, "chromium did not print its DevTools URL"
            with connect(url, max_size=None, open_timeout=timeout) as ws:
                cdp = _Session(ws)
                target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
                session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
                for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                    cdp.call(domain, session=session)
                yield Tab(cdp, session)
                with contextlib.suppress(Exception):  # the socket may close before the reply
                    cdp.call("Browser.close", timeout=5)
        finally:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def open_page(path: Path, width: int = 1200, height: int = 900, timeout: float = 45.0) -> Page:
    """Load ``path`` (file://) and return what a reader would see, plus every console error."""
    with browser(width, height, timeout) as tab:
        tab.goto(path.resolve().as_uri(), timeout=timeout)
        time.sleep(0.3)  # late console messages (none expected: the page has no scripts)
        page = Page(
            text=str(tab.evaluate("document.body.innerText")),
            metrics=tab.metrics(),
            title=str(tab.evaluate("document.title")),
        )
        capture = {"format": "png", "captureBeyondViewport": True}
        shot = tab.cdp.call("Page.captureScreenshot", capture, session=tab.session, timeout=timeout)
        page.screenshot = base64.b64decode(shot["data"])
        page.console_errors = tab.console_errors()
    return page
