"""SubscriberUser and PublisherUser: thin gevent handles over connections living on the bridge loop.

A Locust user here holds one connection and waits; all timing and accounting happen on the loop
thread, so a busy gevent hub cannot distort a latency.
"""

from __future__ import annotations

import time
from typing import Any

from locust import User, constant, task

from harness.loop.bridge import get_bridge
from harness.plugin.runtime import current

#: A user only holds its connection: its greenlet sleeps between (empty) tasks. A short wait would wake
#: thousands of greenlets every second, and each wake competes with the loop thread for the GIL.
HOLD_WAIT_S = 3600


class SubscriberUser(User):
    """One subscriber connection on one channel (channels assigned round robin per process)."""

    abstract = True
    wait_time = constant(HOLD_WAIT_S)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscription: Any = None

    def on_start(self) -> None:
        runtime = current()
        generator = runtime.generator
        assert generator is not None
        channel = generator.next_channel()
        started = time.perf_counter()
        exception: BaseException | None = None
        try:
            self._subscription = get_bridge().run(generator.open_subscriber(channel))
        except Exception as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type="WS",
            name="connect",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )

    @task
    def hold(self) -> None:
        """Nothing to do: deliveries are handled on the loop as they arrive."""

    def on_stop(self) -> None:
        generator = current().generator
        if self._subscription is not None and generator is not None:
            record, handle = self._subscription
            self._subscription = None
            get_bridge().run(generator.close_subscriber(record, handle), timeout=10)


class PublisherUser(User):
    """Publishes ``--publish-rate / fixed_count`` messages per second on the open-model schedule."""

    abstract = True
    fixed_count = 1
    wait_time = constant(HOLD_WAIT_S)

    def on_start(self) -> None:
        generator = current().generator
        assert generator is not None
        rate = float(self.environment.parsed_options.publish_rate) / max(1, type(self).fixed_count)
        started = time.perf_counter()
        exception: BaseException | None = None
        try:
            get_bridge().run(generator.start_publisher(rate))
        except Exception as exc:
            exception = exc
            get_bridge().call(generator.recorder.error, f"publisher connect failed: {exc}")
        self.environment.events.request.fire(
            request_type="WS",
            name="connect publisher",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )

    @task
    def hold(self) -> None:
        """Publishing runs on the loop; the user only keeps the slot."""
