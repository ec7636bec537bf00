"""Drive a generator in-process, without Locust: a provider's subscribers and a publisher on this test's loop.

For tests that must reach inside a run (stall the loop thread at a chosen moment, read the recorder) where a
``locust`` subprocess would hide it.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import threading
import time
from typing import Any

import uvloop

from harness import providers
from harness.loop.session import GeneratorSession
from harness.measure import probe
from harness.measure.accounting import SubscriberRecord
from harness.plugin import options as options_mod
from harness.providers.base import SubscriberHandle


def provider_options(provider: str, host: str, *argv: str) -> argparse.Namespace:
    """The options a run would have, parsed and validated as the runtime does."""
    cls = providers.load(provider)
    parser = _Parser()
    options_mod.add_arguments(parser)
    cls.add_arguments(parser)
    options = parser.parse_args(list(argv))
    options.host = host
    options_mod.validate(options)
    cls.validate(options)
    return options


class _Parser(argparse.ArgumentParser):
    """Takes Locust's extra ``add_argument`` keyword; importing Locust would monkey-patch this process."""

    def add_argument(self, *args: Any, include_in_web_ui: bool = True, **kwargs: Any) -> Any:
        return super().add_argument(*args, **kwargs)


class PublisherThread:
    """A provider's publisher on its own loop in its own thread, so a test can stall the subscribers' loop
    while a message is published and fanned out (published from the subscribers' loop, its deliveries would
    be read while that loop awaits the publish)."""

    def __init__(self, provider: str, host: str, options: argparse.Namespace) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.provider = providers.load(provider)(host, options)
        self.handle: Any = self.call(self.provider.open_publisher()).result(30)

    def call(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        async def shut() -> None:
            await self.handle.close()
            await self.provider.aclose()
            from harness.providers.http import close_shared_session

            await close_shared_session()

        self.call(shut()).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class InProcessRun:
    """A generator with ``n`` subscribers and a publisher in its own thread; messages are published by hand."""

    def __init__(self, provider: str, host: str, *argv: str) -> None:
        self.provider, self.host = provider, host
        self.generator = GeneratorSession(providers.load(provider), host, provider_options(provider, host, *argv))
        self.subscriptions: list[tuple[SubscriberRecord, SubscriberHandle]] = []
        self.publisher: PublisherThread | None = None
        self.seq = 0

    async def open(self, subscribers: int) -> None:
        self.generator.begin("run")
        self.generator.steady_from(0)
        for _ in range(subscribers):
            self.subscriptions.append(await self.generator.open_subscriber(self.generator.next_channel()))
        options = self.generator.options
        self.publisher = await asyncio.to_thread(PublisherThread, self.provider, self.host, options)

    def publish(self) -> concurrent.futures.Future[Any]:
        """Start publishing one message, due now, from the publisher's thread; returns its future."""
        assert self.publisher is not None
        recorder = self.generator.recorder
        ledger = recorder.ledger("pub.0", self.generator.next_channel())
        due = time.time_ns()
        text = probe.encode(recorder.run_id, ledger.stream_id, self.seq, due, 256)
        recorder.published(ledger, due, due)
        self.seq += 1
        return self.publisher.call(self.publisher.handle.publish(ledger.channel, text))

    async def delivered(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` deliveries were recorded (polling the loop-owned counter)."""
        deadline = time.monotonic() + timeout
        while self.generator.recorder.delivered < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.generator.recorder.delivered} of {count} deliveries after {timeout} s; "
                    f"errors: {dict(self.generator.recorder.error_reasons)}"
                )
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        for record, handle in self.subscriptions:
            await self.generator.close_subscriber(record, handle)
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.close)
        await self.generator.aclose()
