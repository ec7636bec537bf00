"""Headless Chromium driven over the DevTools protocol (CDP), on the bridge's loop, with aiohttp's websocket.

rtbench's browser probes need a real browser but no browser download and no new dependency: Debian's
``chromium`` is started with ``--remote-debugging-port=0`` (it prints the endpoint it picked on stderr),
and pages are driven with a handful of CDP commands over one websocket (flattened target sessions).
A page reports back through ``Runtime.addBinding``: a call of the bound function in the page becomes a
``Runtime.bindingCalled`` event here, with no HTTP server in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable
from typing import Any

import aiohttp

#: where to look for the browser, first match wins; ``RTBENCH_CHROMIUM`` names one explicitly
BINARIES = ("chromium", "chromium-browser", "google-chrome", "chrome")
CHROMIUM_ENV = "RTBENCH_CHROMIUM"
#: headless, no sandbox (root in containers), nothing phoning home, and no throttling of pages that are
#: not in front: every probe page is a background tab, and a throttled timer or renderer would be latency
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--disable-features=Translate,MediaRouter,CalculateNativeWinOcclusion",
    "--remote-debugging-port=0",
)
DEVTOOLS_RE = re.compile(rb"DevTools listening on (ws://\S+)")
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0

EventHandler = Callable[[dict[str, Any]], None]


class ChromiumError(RuntimeError):
    """Chromium could not be found, started or driven; the message is one line."""


def find_chromium() -> str | None:
    """The Chromium binary to use (``$RTBENCH_CHROMIUM``, else the first on PATH), or None."""
    named = os.environ.get(CHROMIUM_ENV, "").strip()
    if named:
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless Chromium process and its browser-level DevTools connection."""

    def __init__(self, pid: int, stderr: asyncio.StreamReader, pipe: asyncio.BaseTransport, profile: str) -> None:
        self.pid = pid
        self.stderr = stderr
        self.pipe = pipe
        self.profile = profile
        self._exited = False
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        #: (session id, method) -> handler; session '' is the browser's own
        self._handlers: dict[tuple[str, str], EventHandler] = {}
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @classmethod
    async def launch(cls, binary: str, timeout_s: float = START_TIMEOUT_S) -> Chromium:
        """Start ``binary`` headless on a fresh profile and connect to its DevTools endpoint."""
        profile = tempfile.mkdtemp(prefix="rtbench-chromium-")
        argv = [*_with_parent(), os.path.abspath(binary), *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        try:
            pid, stderr, pipe = await _spawn(argv)
        except OSError as exc:
            shutil.rmtree(profile, ignore_errors=True)
            raise ChromiumError(f"cannot start {binary}: {exc}") from None
        browser = cls(pid, stderr, pipe, profile)
        try:
            url = await asyncio.wait_for(browser._devtools_url(), timeout_s)
            browser._http = aiohttp.ClientSession()
            browser._ws = await browser._http.ws_connect(url, max_msg_size=0, timeout=aiohttp.ClientWSTimeout())
        except BaseException as exc:
            await browser.close()
            if isinstance(exc, TimeoutError):
                raise ChromiumError(f"chromium printed no DevTools endpoint within {timeout_s:g} s") from None
            if isinstance(exc, aiohttp.ClientError | OSError):
                raise ChromiumError(f"cannot reach chromium's DevTools endpoint: {exc}") from None
            raise
        browser._reader = asyncio.ensure_future(browser._read())
        return browser

    async def _devtools_url(self) -> str:
        """Read stderr until Chromium names its endpoint, then keep draining it (a full pipe would stall it)."""
        stream = self.stderr
        while True:
            line = await stream.readline()
            if not line:
                raise ChromiumError("chromium exited before it opened its DevTools endpoint")
            found = DEVTOOLS_RE.search(line)
            if found:
                self._stderr = asyncio.ensure_future(_drain(stream))
                return found.group(1).decode()

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                ident = data.get("id")
                if ident is not None:
                    waiter = self._pending.pop(int(ident), None)
                    if waiter is not None and not waiter.done():
                        error = data.get("error")
                        if error:
                            waiter.set_exception(ChromiumError(str(error.get("message", error))))
                        else:
                            waiter.set_result(data.get("result", {}))
                    continue
                handler = self._handlers.get((str(data.get("sessionId", "")), str(data.get("method"))))
                if handler is not None:
                    handler(data.get("params", {}))
        finally:
            self.closed.set()
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(ChromiumError("chromium's DevTools connection closed"))
            self._pending.clear()

    async def call(
        self, method: str, params: dict[str, Any] | None = None, session: str = "", timeout_s: float = CALL_TIMEOUT_S
    ) -> dict[str, Any]:
        """Send one CDP command (to ``session``'s target, or the browser) and await its result."""
        ws = self._ws
        if ws is None or ws.closed or self.closed.is_set():
            raise ChromiumError("chromium's DevTools connection is closed")
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = waiter
        await ws.send_str(json.dumps(message))
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            raise ChromiumError(f"{method}: no answer within {timeout_s:g} s") from None
        finally:
            self._pending.pop(ident, None)

    def on(self, session: str, method: str, handler: EventHandler) -> None:
        """Call ``handler(params)`` for each ``method`` event of ``session`` ('' for the browser)."""
        self._handlers[(session, method)] = handler

    async def new_page(self) -> str:
        """A new blank tab; returns its (flattened) session id."""
        target = (await self.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        attached = await self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        return str(attached["sessionId"])

    async def close(self) -> None:
        """Close the browser (politely, then by signal) and remove its profile."""
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self.call("Browser.close", timeout_s=2.0)
        if not self._exited:
            self._exited = True
            with contextlib.suppress(TimeoutError):  # Browser.close ends it: its DevTools socket closes
                await asyncio.wait_for(self.closed.wait(), 5.0)
            with contextlib.suppress(ProcessLookupError, PermissionError):  # its renderers and helpers too
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):  # gevent's SIGCHLD handler may have reaped it already
                _original_os("waitpid")(self.pid, 0)
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        for task in (self._reader, self._stderr):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self.pipe.close()
        shutil.rmtree(self.profile, ignore_errors=True)


async def _spawn(argv: list[str]) -> tuple[int, asyncio.StreamReader, asyncio.BaseTransport]:
    """Start ``argv`` in a session of its own (a terminal's Ctrl-C is the run's to handle) with stderr on a
    pipe read by the loop. ``posix_spawn``, not asyncio's subprocesses: libuv's child watcher takes SIGCHLD
    over, and then gevent (Locust) never sees its own children exit (the embedded target's ``wait`` hangs)."""
    read_fd, write_fd = os.pipe()
    try:
        pid = _original_os("posix_spawn")(
            argv[0],
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, write_fd, 2),
            ],
            setsid=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0)
    )
    return pid, reader, transport


def _original_os(name: str) -> Any:
    """``os``'s own function, not gevent's: its patched ``posix_spawn``/``waitpid`` watch the child from a
    gevent hub, which this (the bridge loop's) thread does not run."""
    try:
        from gevent import monkey

        return monkey.get_original("os", name)
    except ImportError:  # gevent absent: nothing is patched
        return getattr(os, name)


def _with_parent() -> tuple[str, ...]:
    """A prefix that makes the browser die with the run, however the run dies: util-linux's ``setpriv``
    sets the parent-death signal and execs it (a ``preexec_fn`` would run Python in a child forked from a
    threaded, gevent-patched process, and can deadlock there)."""
    setpriv = shutil.which("setpriv")
    return (setpriv, "--pdeathsig", "KILL") if setpriv else ()


async def _drain(stream: asyncio.StreamReader) -> None:
    """Chromium's stderr after its endpoint line: read and dropped (it never carries a measurement)."""
    while await stream.read(65536):
        pass
