"""Server-Sent Events: a browser-faithful EventSource over the shared aiohttp session; publish by POST.

Why not aiohttp-sse-client (0.2.1, unmaintained since 2021)? Against literal streams it strips every
leading space of a field value (payloads change), does not treat a lone CR as a line end (two events
arrive as one), carries a half-received event across a reconnect into the next one, doubles the
server's ``retry:`` delay on every reconnect, gives up for good when the server is briefly unreachable
after a cut (no retries once connected), and has no hook to time a reconnection. Here the wire format
is :mod:`harness.protocols.sse` (sans I/O, tested byte for byte) and this module is the thin driver.

Browser semantics, so the numbers are what a web app would see: ``Last-Event-ID`` on every reconnect,
the server's ``retry:`` as the reconnect delay, network errors and clean stream ends are retried for
ever, while an HTTP error, a wrong content type or a 204 end the subscription (a browser's EventSource
goes to CLOSED). A line over ``--sse-max-line`` characters makes the stream untrustworthy: it is
counted as an error and the stream reopened.

Channels: with one channel the subscriber opens ``--sse-path`` as is (any SSE endpoint works) and the
publisher posts ``{"channel": null, ...}``; with several, ``?channel=`` picks one, as the reference
target does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from harness import timestamps
from harness.protocols import sse as sse_protocol
from harness.providers.base import (
    Provider,
    ProviderConfigError,
    PublisherHandle,
    SubscriberHandle,
    SubscriberHooks,
)
from harness.providers.http import shared_session

CONNECT_TIMEOUT_S = 15.0
DEFAULT_RECONNECT_MS = 1000
EVENT_STREAM = "text/event-stream"
READ_CHUNK = 64 * 1024


class SSEError(Exception):
    """The server broke the EventSource contract; the message is the reason a user reads."""


class StreamClosed(SSEError):
    """The subscription ended for good (HTTP error, wrong type, 204), as a browser would end it."""


class EventSource(SubscriberHandle):
    """One subscriber stream and its reconnect loop (a task on the bridge loop)."""

    def __init__(self, provider: SSEProvider, url: str, hooks: SubscriberHooks) -> None:
        self.provider = provider
        self.url = url
        self.hooks = hooks
        self.report_error: Callable[[str], None] = lambda reason: hooks.on_error(f"sse: {reason}")
        self.on_reconnect_ns = hooks.on_reconnect_ns
        self.parser = sse_protocol.Parser(provider.max_line)
        self.event = str(provider.options.event)
        self.stamp = provider.timestamp_spec
        self.sequence = timestamps.SequenceGuess()
        self.closing = False
        self.connects = 0
        self._response: aiohttp.ClientResponse | None = None
        self._task: asyncio.Task[None] | None = None

    # -- connecting ----------------------------------------------------------------------------
    async def _open(self) -> aiohttp.ClientResponse:
        """GET the stream; return once the server answered 200 text/event-stream (or raise)."""
        session = await shared_session()
        headers = {"Accept": EVENT_STREAM, "Cache-Control": "no-cache"}
        if self.parser.last_event_id:
            headers["Last-Event-ID"] = self.parser.last_event_id
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            response = await session.get(self.url, headers=headers, allow_redirects=True,
                                         auto_decompress=True)
        if response.status == 204:
            response.release()
            raise StreamClosed("server answered HTTP 204 No Content: reconnection stopped")
        if response.status != 200:
            response.release()
            raise StreamClosed(f"GET {urlsplit(self.url).path} answered HTTP {response.status}")
        if response.content_type != EVENT_STREAM:
            response.release()
            raise StreamClosed(f"GET {urlsplit(self.url).path} answered Content-Type "
                               f"{response.headers.get('Content-Type', '(none)')!r}, not {EVENT_STREAM}")
        self.parser.new_stream()
        self.connects += 1
        return response

    async def start(self) -> None:
        """First connection: failures raise (the generator counts a failed connect with the reason)."""
        self._response = await self._open()
        self._task = asyncio.ensure_future(self._run())

    # -- streaming -----------------------------------------------------------------------------
    async def _read(self, response: aiohttp.ClientResponse) -> None:
        """Until the stream ends. Raises LineTooLong or aiohttp errors; returns on a clean end."""
        content = response.content
        while True:
            chunk = await content.readany()
            if not chunk:
                return
            try:
                items = self.parser.feed(chunk)
            except sse_protocol.LineTooLong as exc:
                self._dispatch(exc.before)
                raise
            self._dispatch(items)

    def _dispatch(self, items: list[sse_protocol.Event | sse_protocol.Problem]) -> None:
        on_data, report_error, wanted = self.hooks.on_data, self.report_error, self.event
        for item in items:
            if isinstance(item, sse_protocol.Event):
                if item.type == wanted:
                    on_data(self._payload(item) if self.stamp is not None else item.data, time.time_ns())
            else:
                report_error(item.reason)

    def _payload(self, item: sse_protocol.Event) -> object:
        assert self.stamp is not None
        try:
            sent_ns = self.stamp.extract_ns(item.data)
        except timestamps.TimestampError as exc:
            return f"sse error: {exc}"
        return timestamps.Stamped(sent_ns, "server", self.sequence.seq(item.id))

    async def _run(self) -> None:
        response = self._response
        while not self.closing:
            if response is not None:
                try:
                    await self._read(response)
                except sse_protocol.LineTooLong as exc:
                    self.report_error(str(exc))
                except (TimeoutError, aiohttp.ClientError, OSError):
                    pass  # the network took the stream away: reconnect, as a browser does
                finally:
                    response.close()
                    self._response = None
            if self.closing:
                return
            lost_at = time.perf_counter_ns()
            self.hooks.on_drop()
            response = await self._reconnect()
            if response is None:
                return
            took_ns = time.perf_counter_ns() - lost_at
            self._response = response
            self.hooks.on_resubscribed()
            self.on_reconnect_ns(took_ns)

    async def _reconnect(self) -> aiohttp.ClientResponse | None:
        """Wait the server's retry delay and reopen, for ever on network errors; None when it ended."""
        while not self.closing:
            delay_ms = self.parser.retry_ms if self.parser.retry_ms is not None else self.provider.reconnect_ms
            await asyncio.sleep(delay_ms / 1000)
            if self.closing:
                return None
            try:
                return await self._open()
            except StreamClosed as exc:
                self.report_error(str(exc))
                return None
            except (TimeoutError, aiohttp.ClientError, OSError):
                continue
        return None

    async def close(self) -> None:
        self.closing = True
        if self._response is not None:
            self._response.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class SSEPublisher(PublisherHandle):
    def __init__(self, provider: SSEProvider) -> None:
        self.provider = provider

    async def publish(self, channel: str, text: str) -> None:
        provider = self.provider
        body = {"channel": channel if provider.multi_channel else None, "event": provider.options.event,
                "data": text}
        session = await shared_session()
        async with session.post(provider.publish_url, json=body) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"POST {urlsplit(provider.publish_url).path} answered HTTP {resp.status}")
            await resp.read()

    async def close(self) -> None:
        """Nothing to release: publishing borrows the shared session."""


class SSEProvider(Provider):
    name = "sse"
    target_module = "targets.sse"

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        super().__init__(host, options)
        self.multi_channel = int(options.channels) > 1
        self.events_url = self.host + _path(options.sse_path)
        self.publish_url = self.host + _path(options.sse_publish_path)
        self.max_line = int(options.sse_max_line)
        self.reconnect_ms = int(options.sse_reconnect_ms)
        spec = str(getattr(options, "timestamp_field", "") or "")
        self.timestamp_spec = timestamps.parse_spec(spec) if spec else None

    @classmethod
    def add_arguments(cls, group: Any) -> None:
        group.add_argument("--sse-path", default="/api/events",
                           help="SSE: the event stream's path (default: /api/events)")
        group.add_argument("--sse-publish-path", default="/api/publish",
                           help="SSE: where the publisher POSTs {channel, event, data} (default: /api/publish)")
        group.add_argument("--sse-reconnect-ms", type=str, default=str(DEFAULT_RECONNECT_MS),
                           help="SSE: reconnect delay until the server sends retry: (default: 1000)")
        group.add_argument("--sse-max-line", type=str, default=str(sse_protocol.DEFAULT_MAX_LINE),
                           help="SSE: longest line or event accepted, in characters (default: 2 MiB)")
        if not _has_option(group, "--event"):
            group.add_argument("--event", default="message",
                               help="SSE: event type subscribers listen to and publishers send (default: message)")

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        if not str(options.event).strip() or any(c in str(options.event) for c in "\r\n"):
            raise ProviderConfigError("--event must be a non-empty name on one line")
        for flag in ("sse_path", "sse_publish_path"):
            path = str(getattr(options, flag))
            if not path or any(c.isspace() for c in path):
                raise ProviderConfigError(f"--{flag.replace('_', '-')} must be a URL path, got {path!r}")
        for flag, low in (("sse_reconnect_ms", 0), ("sse_max_line", 64)):
            raw: object = getattr(options, flag)
            try:
                number = int(str(raw))
            except (TypeError, ValueError):
                raise ProviderConfigError(f"--{flag.replace('_', '-')} must be an integer, got {raw!r}") from None
            if number < low:
                raise ProviderConfigError(f"--{flag.replace('_', '-')} must be at least {low}, got {number}")
            setattr(options, flag, number)
        spec = str(getattr(options, "timestamp_field", "") or "")
        if spec:
            try:
                timestamps.parse_spec(spec)
            except ValueError as exc:
                raise ProviderConfigError(str(exc)) from None

    def stream_url(self, channel: str) -> str:
        if not self.multi_channel:
            return self.events_url
        sep = "&" if "?" in self.events_url else "?"
        return f"{self.events_url}{sep}{urlencode({'channel': channel})}"

    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        source = EventSource(self, self.stream_url(channel), hooks)
        try:
            await source.start()
        except StreamClosed as exc:
            raise SSEError(str(exc)) from None
        except BaseException:
            await source.close()
            raise
        return source

    async def open_publisher(self) -> PublisherHandle:
        return SSEPublisher(self)


def _path(value: object) -> str:
    text = str(value)
    return text if text.startswith("/") else "/" + text


def _has_option(group: Any, flag: str) -> bool:
    """Another provider in this process may have registered the same flag (argparse would refuse it)."""
    actions = getattr(group, "_option_string_actions", None)
    return isinstance(actions, dict) and flag in actions


PROVIDER = SSEProvider
