"""Shared fixtures for the SSE suites: the reference target on port 0 and an SSE reader for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import aiohttp
import pytest

from harness.protocols.sse import Event, Parser, Problem
from tests.helpers import TargetProcess, start_target


@pytest.fixture
def target() -> Iterator[tuple[str, TargetProcess]]:
    url, proc = start_target("targets.sse", "--port", "0", "--retry-ms", "50", "--keepalive-s", "0.5")
    try:
        yield url, proc
    finally:
        proc.stop()


class Reader:
    """A raw GET on the stream, parsed with harness.protocols.sse, recording everything."""

    def __init__(self, session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> None:
        self.session, self.url, self.headers = session, url, headers or {}
        self.parser = Parser()
        self.items: list[Event | Problem] = []
        self.ended = asyncio.Event()
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.response: aiohttp.ClientResponse | None = None

    async def open(self) -> Reader:
        self.response = await self.session.get(self.url, headers=self.headers)
        self._task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self.response is not None
        try:
            async for chunk in self.response.content.iter_any():
                self.items.extend(self.parser.feed(chunk))
                self._changed.set()
        except (aiohttp.ClientError, OSError) as exc:
            self.error = exc
        finally:
            self.ended.set()
            self._changed.set()

    @property
    def events(self) -> list[Event]:
        return [i for i in self.items if isinstance(i, Event)]

    def data(self) -> list[str]:
        return [e.data for e in self.events]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        if self.response is not None:
            self.response.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
