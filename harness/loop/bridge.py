"""One asyncio (uvloop) event loop per process, in a native thread, callable from gevent greenlets.

Locust users are greenlets; the real client libraries are asyncio. Running every connection on one
native-thread loop keeps the libraries unmodified and keeps gevent's monkey-patching out of their
way. Results come back through a gevent ``async_`` watcher (the one thread-safe doorway into a gevent
hub), so a greenlet waiting on ``run`` yields to others instead of blocking the process.

The loop starts lazily on first use, after Locust has forked its ``--processes`` workers; a forked
child that inherits a started bridge starts its own.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("rtbench")

#: How long one thread may hold the GIL before another gets it. CPython's 5 ms default would let the
#: gevent thread (Locust's stats, the UI) delay a delivery callback by up to 5 ms; 0.5 ms caps that.
GIL_SWITCH_INTERVAL_S = 0.0005


#: How long the exiting process waits for the loop thread to stop before it finalizes anyway.
STOP_AT_EXIT_S = 2.0


def _native(name: str) -> Callable[..., Any]:
    """``_thread``'s own function, not gevent's patched one: the loop runs in a real thread."""
    try:
        from gevent import monkey

        return monkey.get_original("_thread", name)  # type: ignore[no-any-return]
    except ImportError:  # gevent absent: plain threads are native already
        import _thread

        return getattr(_thread, name)  # type: ignore[no-any-return]


class BridgeError(RuntimeError):
    pass


def report_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An error nobody awaited (a library's background task, a callback): one line in the log, no
    traceback on the console; what it cost the run is counted where it happened.

    Never raises: an exception here makes uvloop log a traceback of its own, and while the
    interpreter finalizes, logging itself fails under gevent (``greenlet is being finalized``)."""
    if sys.is_finalizing():
        return
    exc = context.get("exception")
    detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    try:
        log.warning("rtbench: event loop: %s%s", context.get("message", "unhandled error"), detail)
        log.debug("rtbench: event loop error context: %r", context)
    except Exception:  # the process is going down: the line is not worth a traceback
        pass


class Bridge:
    def __init__(self) -> None:
        self._pid = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: Any = None
        self._results: collections.deque[Callable[[], None]] = collections.deque()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._pid != os.getpid():
            self._start()
        assert self._loop is not None
        return self._loop

    def _start(self) -> None:
        import gevent
        import uvloop

        loop = uvloop.new_event_loop()
        loop.set_exception_handler(report_loop_exception)
        ready: collections.deque[bool] = collections.deque()

        stopped = _native("allocate_lock")()
        stopped.acquire()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            ready.append(True)
            try:
                loop.run_forever()
            finally:
                stopped.release()

        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self._results = collections.deque()
        self._waker = gevent.get_hub().loop.async_()
        self._waker.start(self._deliver_results)
        _native("start_new_thread")(serve, ())
        while not ready:  # the thread sets its loop before anything is scheduled on it
            gevent.sleep(0.001)
        self._loop, self._pid = loop, os.getpid()
        atexit.register(_stop_at_exit, loop, stopped, os.getpid())

    def _deliver_results(self) -> None:
        """Runs in the gevent hub: hand each finished result to its waiting greenlet."""
        results = self._results
        while results:
            results.popleft()()

    def _post(self, callback: Callable[[], None]) -> None:
        """From the loop thread: schedule ``callback`` on the gevent side."""
        self._results.append(callback)
        self._waker.send()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop; the calling greenlet waits cooperatively for its result."""
        from gevent.event import AsyncResult

        waiter: AsyncResult = AsyncResult()
        loop = self.loop

        def finished(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                self._post(lambda: waiter.set_exception(BridgeError("cancelled")))
                return
            exc = task.exception()
            if exc is not None:
                self._post(lambda: waiter.set_exception(exc))
            else:
                result = task.result()
                self._post(lambda: waiter.set(result))

        def start() -> None:
            loop.create_task(coro).add_done_callback(finished)

        loop.call_soon_threadsafe(start)
        return waiter.get(timeout=timeout)  # type: ignore[no-any-return]

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run a plain function on the loop thread (to read loop-owned state without races)."""

        async def wrapper() -> T:
            return fn(*args)

        return self.run(wrapper(), timeout=timeout)


def _stop_at_exit(loop: asyncio.AbstractEventLoop, stopped: Any, pid: int) -> None:
    """Stop the loop thread before the interpreter finalizes: a thread still running callbacks then
    (a library noticing its server died) would log into a half-torn-down gevent and print tracebacks."""
    if os.getpid() != pid or loop.is_closed():
        return
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:  # closed meanwhile
        return
    stopped.acquire(True, STOP_AT_EXIT_S)


_BRIDGE = Bridge()


def get_bridge() -> Bridge:
    return _BRIDGE
