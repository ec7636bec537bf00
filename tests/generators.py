"""Drive a generator in-process, without Locust: a provider's subscribers and a publisher on this test's loop.

For tests that must reach inside a run (stall the loop thread at a chosen moment, read the recorder) where a
``locust`` subprocess would hide it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from harness import options as options_mod
from harness import probe, providers
from harness.accounting import SubscriberRecord
from harness.generator import Generator
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


class InProcessRun:
    """A generator with ``n`` subscribers and one publisher handle; messages are published by hand."""

    def __init__(self, provider: str, host: str, *argv: str) -> None:
        self.generator = Generator(providers.load(provider), host, provider_options(provider, host, *argv))
        self.subscriptions: list[tuple[SubscriberRecord, SubscriberHandle]] = []
        self.publisher: Any = None
        self.seq = 0

    async def open(self, subscribers: int) -> None:
        self.generator.begin("run")
        self.generator.steady_from(0)
        for _ in range(subscribers):
            self.subscriptions.append(await self.generator.open_subscriber(self.generator.next_channel()))
        self.publisher = await self.generator.provider.open_publisher()

    async def publish(self) -> int:
        """One message, due now; returns its due time."""
        recorder = self.generator.recorder
        ledger = recorder.ledger("pub.0", self.generator.next_channel())
        due = time.time_ns()
        text = probe.encode(recorder.run_id, ledger.stream_id, self.seq, due, 256)
        recorder.published(ledger, due, due)
        self.seq += 1
        await self.publisher.publish(ledger.channel, text)
        return due

    async def delivered(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` deliveries were recorded (polling the loop-owned counter)."""
        deadline = time.monotonic() + timeout
        while self.generator.recorder.delivered < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.generator.recorder.delivered} of {count} deliveries after {timeout} s; "
                                     f"errors: {dict(self.generator.recorder.error_reasons)}")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        for record, handle in self.subscriptions:
            await self.generator.close_subscriber(record, handle)
        if self.publisher is not None:
            await self.publisher.close()
        await self.generator.aclose()
