"""SubscriberUser and PublisherUser: thin gevent handles over connections living on the bridge loop.

A Locust user here holds one connection and waits; all timing and accounting happen on the loop
thread, so a busy gevent hub cannot distort a latency. Users reach their process's generator session
through ``self.environment``.
"""

from __future__ import annotations

import time
from typing import Any

from locust import User, constant, task

from harness.loop.bridge import get_bridge
from harness.loop.session import GeneratorSession
from harness.plugin import generator_role

#: A user only holds its connection: its greenlet sleeps between (empty) tasks. A short wait would wake
#: thousands of greenlets every second, and each wake competes with the loop thread for the GIL.
HOLD_WAIT_S = 3600


class RtbenchUser(User):
    """Shared by both user kinds: the session, and connect timings in Locust's stats."""

    abstract = True
    wait_time = constant(HOLD_WAIT_S)

    @property
    def session(self) -> GeneratorSession:
        session = generator_role.of(self.environment).session
        assert session is not None, "a user started before its run began"
        return session

    def _report_connect(self, name: str, started: float, exception: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )

    @task
    def hold(self) -> None:
        """Nothing to do: deliveries and publishes are handled on the loop."""


class SubscriberUser(RtbenchUser):
    """One subscriber connection on one channel (channels assigned round robin per process)."""

    abstract = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscription: Any = None

    def on_start(self) -> None:
        session = self.session
        channel = session.next_channel()
        started = time.perf_counter()
        exception: BaseException | None = None
        try:
            self._subscription = get_bridge().run(session.open_subscriber(channel))
        except Exception as exc:
            exception = exc
        self._report_connect("connect", started, exception)

    def on_stop(self) -> None:
        if self._subscription is not None:
            record, handle = self._subscription
            self._subscription = None
            get_bridge().run(self.session.close_subscriber(record, handle), timeout=10)


class PublisherUser(RtbenchUser):
    """Publishes ``--publish-rate / fixed_count`` messages per second on the open-model schedule."""

    abstract = True
    fixed_count = 1

    def on_start(self) -> None:
        session = self.session
        rate = float(self.environment.parsed_options.publish_rate) / max(1, type(self).fixed_count)
        started = time.perf_counter()
        exception: BaseException | None = None
        try:
            get_bridge().run(session.start_publisher(rate))
        except Exception as exc:  # the session has counted it
            exception = exc
        self._report_connect("connect publisher", started, exception)


class ReaderUser(SubscriberUser):
    """The todo app's reader: a subscription to the app's events that refetches ``GET /api/todos`` on
    each, as ``--refetch`` says (harness/loop/app.py)."""

    abstract = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        get_bridge().loop.call_soon_threadsafe(self.session.announce_reader)  # ahead of spawning complete

    def on_start(self) -> None:
        started = time.perf_counter()
        exception: BaseException | None = None
        try:
            self._subscription = get_bridge().run(self.session.open_reader())
        except Exception as exc:
            exception = exc
        self._report_connect("connect reader", started, exception)


class WriterUser(RtbenchUser):
    """The todo app's writer: creates ``--mutation-rate / fixed_count`` todos per second, open model, from
    when every user is connected (``--mutations``: that many in all, then it stops)."""

    abstract = True
    fixed_count = 1

    def on_start(self) -> None:
        options, writers = self.environment.parsed_options, max(1, type(self).fixed_count)
        rate = float(options.mutation_rate) / writers
        limit = -(-int(options.mutations) // writers)  # each writer's share, rounded up; 0: no limit
        started = time.perf_counter()
        exception: BaseException | None = None
        try:
            get_bridge().run(self.session.start_writer(rate, limit))
        except Exception as exc:  # the session has counted it
            exception = exc
        self._report_connect("start writer", started, exception)
