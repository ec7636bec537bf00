"""Server-Sent Events: a lean, browser-faithful EventSource on the measuring transport; publish by POST.

Each subscriber holds one GET on its own non-blocking socket (:mod:`harness.net.stream`): every read
carries the kernel's receive time, goes through the HTTP/1.1 response codec (:mod:`harness.protocols.http1`)
and the SSE parser
(:mod:`harness.protocols.sse`), and reaches ``hooks.on_data(data, rx_ns)`` in the reader callback, with no
task or queue per event. Publishing POSTs on the shared aiohttp session.

Why not aiohttp-sse-client (0.2.1, unmaintained since 2021)? Against literal streams it strips every
leading space of a field value (payloads change), does not treat a lone CR as a line end (two events
arrive as one), carries a half-received event across a reconnect into the next one, doubles the
server's ``retry:`` delay on every reconnect, gives up for good when the server is briefly unreachable
after a cut (no retries once connected), and has no hook to time a reconnection.

Browser semantics, so the numbers are what a web app would see: ``Last-Event-ID`` on every reconnect,
the server's ``retry:`` as the delay before every reconnect attempt, network errors and clean stream
ends are retried for ever, while an HTTP error, a wrong content type or a 204 end the subscription (a
browser's EventSource goes to CLOSED); on the first connect they fail it, with the reason. Redirects
(301, 302, 303, 307, 308) are followed up to :data:`MAX_REDIRECTS` times; reconnects start again from
the original URL, as browsers do. A line over ``--sse-max-line`` characters makes the stream
untrustworthy: it is counted as an error and the stream reopened. A response that breaks HTTP/1.1
(garbage, a close in the middle of a chunk) is counted as an error with the codec's reason and reopened;
a close between chunks or a reset is the network taking the stream away, reopened without an error.

Channels: with one channel the subscriber opens ``--sse-path`` as is (any SSE endpoint works) and the
publisher posts ``{"channel": null, ...}``; with several, ``?channel=`` picks one, as the reference
target does.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from harness.measure import server_stamps
from harness.net.endpoint import HTTP_SCHEMES, Endpoint
from harness.net.reconnect import Backoff, GiveUp
from harness.net.stream import ConnectError, Stream, client_tls_context, note_shared
from harness.protocols import http1
from harness.protocols import sse as sse_protocol
from harness.providers.base import (
    BrowserPage,
    Provider,
    ProviderConfigError,
    PublisherHandle,
    SubscriberHandle,
    SubscriberHooks,
    listened_events,
)
from harness.providers.http import shared_session
from harness.providers.lean import Connection, LeanSubscriber

CONNECT_TIMEOUT_S = 15.0
DEFAULT_RECONNECT_MS = 1000
EVENT_STREAM = "text/event-stream"
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: how :class:`harness.net.stream.Stream` words an orderly close (FIN, TLS close_notify): only then does
#: the body's framing say whether the stream was complete
_ORDERLY_CLOSES = ("connection closed by the server", "TLS session closed by the server")

_Body, _Head, _Event = http1.Body, http1.Head, sse_protocol.Event


class SSEError(Exception):
    """The server broke the EventSource contract; the message is the reason a user reads."""


class StreamClosed(SSEError, GiveUp):
    """The subscription ended for good (HTTP error, wrong type, 204), as a browser would end it."""


@dataclass(frozen=True)
class ServerRetry(Backoff):
    """Browsers wait the server's ``retry:`` (else the configured delay) before every attempt, not a
    growing backoff."""

    current_s: Callable[[], float] = lambda: DEFAULT_RECONNECT_MS / 1000

    def delay(self, attempt: int) -> float:
        return self.current_s()


class EventStream:
    """One GET of the stream: the transport's protocol, and the subscriber's connection while it lasts.

    Until the response head arrives the subscriber's ``connect_and_subscribe`` waits on ``waiter``; the
    head is judged here, in the reader callback, so events that came in the same read are not held back.
    """

    __slots__ = (
        "accepted",
        "done",
        "failure",
        "failure_is_protocol",
        "head",
        "http",
        "live",
        "on_data",
        "on_error",
        "pending_end",
        "source",
        "sse",
        "stamped",
        "stream",
        "waiter",
        "wanted",
        "where",
    )

    def __init__(self, source: EventSource, stream: Stream, where: str) -> None:
        self.source = source
        self.stream = stream
        self.where = where
        self.http = http1.ResponseParser()
        self.sse = source.parser
        self.head: http1.Head | None = None
        self.accepted = False  # 200 text/event-stream: the body is events
        self.live = False  # the subscriber holds this connection: its end is reported as it happens
        self.done = False
        self.failure: str | None = None  # why no usable head came
        self.failure_is_protocol = False
        self.pending_end: str | None = None  # ended after the head, before the subscriber held it
        self.waiter: asyncio.Future[None] = stream.loop.create_future()
        self.on_data = source.hooks.on_data
        self.on_error = source.report_error
        self.wanted = source.events
        self.stamped = source.stamp is not None

    @property
    def rx_clock(self) -> str:
        return self.stream.rx_clock

    def close(self) -> None:
        self.done = True
        self.stream.close()

    # -- the stream's protocol (the hot path) ----------------------------------------------------
    def data_received(self, data: bytes, rx_ns: int) -> None:
        try:
            events = self.http.feed(data)
        except http1.ProtocolError as exc:
            self._handle(exc.before, rx_ns)
            self._end(f"bad HTTP response from {self.where}: {exc}", protocol=True)
            return
        if len(events) == 1 and self.accepted and type(events[0]) is _Body:  # one read, one chunk: the usual
            delivered = self._body(events[0].data, rx_ns)
        else:
            delivered = self._handle(events, rx_ns)
        if delivered > 1 or (delivered and not self.http.between_chunks):
            # events that did not end their read carry the stamp of the bytes behind them
            note_shared(delivered - 1 if self.http.between_chunks else delivered, rx_ns)

    def _handle(self, events: list[http1.Head | http1.Body | http1.End], rx_ns: int) -> int:
        delivered = 0
        for event in events:
            if self.done:
                break
            if type(event) is _Body:
                delivered += self._body(event.data, rx_ns)
            elif type(event) is _Head:
                self._head(event)
            else:
                self._end("the server ended the stream")
        return delivered

    def _body(self, data: bytes, rx_ns: int) -> int:
        """Parse one piece of body; returns how many wanted events it delivered."""
        delivered = 0
        too_long = None
        try:
            items = self.sse.feed(data)
        except sse_protocol.LineTooLong as exc:  # what came before the long line still counts
            items, too_long = exc.before, str(exc)
        for item in items:
            if type(item) is _Event:
                if item.type in self.wanted:
                    delivered += 1
                    if self.stamped:
                        self.source.deliver_stamped(item, rx_ns)
                    else:
                        self.on_data(item.data, rx_ns)
            else:
                self.on_error(item.reason)  # type: ignore[union-attr]
        if too_long is not None:
            self._end(too_long, protocol=True)
        return delivered

    def _head(self, head: http1.Head) -> None:
        self.head = head
        if head.status == 200 and is_event_stream(head):
            self.accepted = True
            self.source.landed(http1.server_node(head.headers.get(http1.NODE_HEADER)))
            self.sse.new_stream()
        else:  # judged by connect_and_subscribe: a redirect, or the end of the subscription
            self.close()
        if not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, reason: str) -> None:
        if self.done:
            return
        if reason not in _ORDERLY_CLOSES:
            self._end(reason)  # the network took it: a reset, a send that failed
            return
        between_chunks = self.http.between_chunks
        try:
            events = self.http.eof()
        except http1.ProtocolError as exc:
            if between_chunks:
                self._end(reason)
            else:
                self._end(f"bad HTTP response from {self.where}: {exc}", protocol=True)
            return
        self._handle(events, 0)  # an End (a close-delimited body), or nothing
        if not self.done:
            self._end(f"{reason} without answering" if self.head is None else reason)

    def _end(self, reason: str, protocol: bool = False) -> None:
        if self.done:
            return
        self.close()
        self.source.stream_ended(self, reason, protocol)


def is_event_stream(head: http1.Head) -> bool:
    media_type = (head.headers.get("content-type") or "").split(";", 1)[0].strip(" \t").lower()
    return media_type == EVENT_STREAM


class EventSource(LeanSubscriber):
    """One subscriber: a browser's EventSource on the measuring transport, reconnected by the shared driver."""

    def __init__(self, provider: SSEProvider, url: str, hooks: SubscriberHooks) -> None:
        self.provider = provider
        self.url = url
        self.path = urlsplit(url).path or "/"
        self.parser = sse_protocol.Parser(provider.max_line)
        self.backoff = ServerRetry(current_s=self.retry_s)
        super().__init__(hooks, CONNECT_TIMEOUT_S)
        self.events = listened_events(provider.options)
        self.stamp = provider.timestamp_spec
        self.sequence = server_stamps.SequenceGuess()
        self.started = False
        self.connects = 0

    def report_error(self, reason: str) -> None:
        self.hooks.on_error(f"sse: {reason}")

    def retry_s(self) -> float:
        """The server's last ``retry:``, else ``--sse-reconnect-ms``."""
        retry_ms = self.parser.retry_ms
        return (retry_ms if retry_ms is not None else self.provider.reconnect_ms) / 1000

    # -- connecting ----------------------------------------------------------------------------
    async def start(self) -> None:
        """The first connection: a failure raises with its reason. No outer timeout: connect_and_subscribe
        keeps its own deadline, so a timeout says what it waited for."""
        await self._open()
        self.started = True

    @property
    def resumes(self) -> bool:
        """A browser sends ``Last-Event-ID`` once the stream gave an id: the server can then replay the gap."""
        return bool(self.parser.last_event_id)

    async def connect_and_subscribe(self) -> Connection:
        """GET the stream, following redirects; return once the server answered 200 text/event-stream."""
        url = self.url
        doing = "connection"
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                for _ in range(MAX_REDIRECTS + 1):
                    endpoint = _endpoint(url)
                    request = _request_bytes(endpoint, self.parser.last_event_id)
                    doing = f"connection to {endpoint.host}:{endpoint.port}"
                    stream = await Stream.connect(
                        endpoint.host,
                        endpoint.port,
                        timeout=self.connect_timeout_s,
                        tls=self.provider.tls_context() if endpoint.tls else None,
                    )
                    doing = f"answer to GET {endpoint.target} from {endpoint.host}:{endpoint.port}"
                    response = await self._request(stream, endpoint, request)
                    head = response.head
                    assert head is not None
                    if response.accepted:
                        return self._hold(response)
                    location = head.headers.get("location")
                    if head.status in REDIRECTS and location:
                        url = urljoin(url, location)
                        continue
                    raise StreamClosed(self._refusal(head, endpoint))
        except TimeoutError:
            raise ConnectError(f"sse: no {doing} within {self.connect_timeout_s:g} s") from None
        raise StreamClosed(f"GET {self.path}: more than {MAX_REDIRECTS} redirects")

    async def _request(self, stream: Stream, endpoint: Endpoint, request: bytes) -> EventStream:
        response = EventStream(self, stream, f"{endpoint.host}:{endpoint.port}")
        stream.start(response)
        stream.write(request)
        try:
            await response.waiter
        except BaseException:
            response.close()
            raise
        if response.failure is not None:
            raise (SSEError if response.failure_is_protocol else ConnectError)(response.failure)
        return response

    def _hold(self, response: EventStream) -> EventStream:
        """The subscriber takes the stream (LeanSubscriber installs it as soon as this returns); an end
        that came with the head is reported right after, so it is a drop of a held connection."""
        response.live = True
        self.connects += 1
        if response.pending_end is not None:
            asyncio.get_running_loop().call_soon(self._report_end, response, response.pending_end)
        return response

    def _refusal(self, head: http1.Head, endpoint: Endpoint) -> str:
        if head.status == 204:
            return "server answered HTTP 204 No Content: reconnection stopped"
        if head.status in REDIRECTS:
            return f"GET {endpoint.target} answered HTTP {head.status} without a Location"
        if head.status != 200:
            return f"GET {self.path} answered HTTP {head.status}"
        return (
            f"GET {self.path} answered Content-Type {head.headers.get('content-type') or '(none)'!r}, "
            f"not {EVENT_STREAM}"
        )

    def _give_up(self, reason: str) -> None:
        self.report_error(reason)

    # -- ends ------------------------------------------------------------------------------------
    def stream_ended(self, response: EventStream, reason: str, protocol: bool) -> None:
        """A stream ended by itself (the server, the network, or a line too long)."""
        if protocol and (response.accepted or self.started):
            self.report_error(reason)  # on the first connect the failed connect carries it instead
        if not response.accepted:  # still connecting: this attempt failed
            response.failure = reason if protocol else f"{response.where}: {reason}"
            response.failure_is_protocol = protocol
            if not response.waiter.done():
                response.waiter.set_result(None)
        elif response.live:
            self._report_end(response, reason)
        else:
            response.pending_end = reason

    def _report_end(self, response: EventStream, reason: str) -> None:
        if self.connection is response:
            self.connection_ended(reason, self.retry_s())

    # -- --timestamp-field -----------------------------------------------------------------------
    def deliver_stamped(self, item: sse_protocol.Event, rx_ns: int) -> None:
        """A server-stamped event; one without a usable stamp is an error with its reason, not a delivery."""
        assert self.stamp is not None
        try:
            sent_ns = self.stamp.extract_ns(item.data)
        except server_stamps.TimestampError as exc:
            self.report_error(str(exc))
            return
        self.hooks.on_data(server_stamps.Stamped(sent_ns, "server", self.sequence.seq(item.id)), rx_ns)


def _request_bytes(endpoint: Endpoint, last_event_id: str) -> bytes:
    try:
        return http1.event_stream_request(endpoint.target, endpoint.host_header, last_event_id)
    except ValueError as exc:  # a Location with spaces, say: no request can be made of it
        raise StreamClosed(f"cannot request {endpoint.target!r}: {exc}") from None


def _endpoint(url: str) -> Endpoint:
    try:
        return Endpoint.parse(url, HTTP_SCHEMES)
    except ValueError as exc:
        raise StreamClosed(f"cannot open: {exc}") from None


class SSEPublisher(PublisherHandle):
    def __init__(self, provider: SSEProvider) -> None:
        self.provider = provider

    async def publish(self, channel: str, text: str) -> None:
        provider = self.provider
        body = {"channel": channel if provider.multi_channel else None, "event": provider.options.event, "data": text}
        session = await shared_session()
        async with session.post(provider.publish_url, json=body) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"POST {urlsplit(provider.publish_url).path} answered HTTP {resp.status}")
            await resp.read()

    async def close(self) -> None:
        """Nothing to release: publishing borrows the shared session."""


#: a browser probe's subscription (``BrowserPage``): the browser's own EventSource
SSE_PAGE = """
const source = new EventSource(cfg.url);
source.onopen = () => rtb.subscribed();
source.onerror = () => rtb.dropped();
source.addEventListener(cfg.event, (e) => rtb.deliver(e.data));
"""


class SSEProvider(Provider):
    name = "sse"
    browser_bundle = ""
    target_module = "targets.sse"
    event_default = "message"
    app_events = ("message",)  # the app's events are ``message`` events on the stream, ``type`` in their JSON

    def __init__(self, host: str, options: argparse.Namespace) -> None:
        super().__init__(host, options)
        self.multi_channel = int(options.channels) > 1
        self.events_url = self.host + _path(options.sse_path)
        self.publish_url = self.host + _path(options.sse_publish_path)
        self.max_line = int(options.sse_max_line)
        self.reconnect_ms = int(options.sse_reconnect_ms)
        spec = _timestamp_field(options)
        self.timestamp_spec = server_stamps.parse_spec(spec) if spec else None
        self.tls: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        """One client context for every https stream (certificates verified); loading the CA store per
        connection would cost milliseconds each."""
        if self.tls is None:
            self.tls = client_tls_context()
        return self.tls

    @classmethod
    def add_arguments(cls, group: Any) -> None:
        super().add_arguments(group)
        group.add_argument(
            "--sse-path", default="/api/events", help="SSE: the event stream's path (default: /api/events)"
        )
        group.add_argument(
            "--sse-publish-path",
            default="/api/publish",
            help="SSE: where the publisher POSTs {channel, event, data} (default: /api/publish)",
        )
        group.add_argument(
            "--sse-reconnect-ms",
            type=str,
            default=str(DEFAULT_RECONNECT_MS),
            help="SSE: reconnect delay until the server sends retry: (default: 1000)",
        )
        group.add_argument(
            "--sse-max-line",
            type=str,
            default=str(sse_protocol.DEFAULT_MAX_LINE),
            help="SSE: longest line or event accepted, in characters (default: 2 MiB)",
        )
        group.add_argument(
            "--timestamp-field",
            default="",
            help="SSE: measure from a timestamp the server puts in its events (no publisher): PATH[:UNIT], "
            "UNIT s|ms|us|ns|iso (default ms), e.g. timestamp or meta.sent_at:us",
        )

    @classmethod
    def validate(cls, options: argparse.Namespace) -> None:
        super().validate(options)
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
        spec = _timestamp_field(options)
        if spec:
            try:
                server_stamps.parse_spec(spec)
            except ValueError as exc:
                raise ProviderConfigError(str(exc)) from None

    @classmethod
    def publishes(cls, options: argparse.Namespace) -> bool:
        """With --timestamp-field the server stamps its own events: no publisher runs."""
        return not _timestamp_field(options)

    def stream_url(self, channel: str) -> str:
        if not self.multi_channel:
            return self.events_url
        sep = "&" if "?" in self.events_url else "?"
        return f"{self.events_url}{sep}{urlencode({'channel': channel})}"

    @classmethod
    def check_browser(cls, options: argparse.Namespace) -> None:
        super().check_browser(options)
        if _timestamp_field(options):
            raise ProviderConfigError("--browser-probes: pages time rtbench's own envelopes, not --timestamp-field")

    def browser_page(self, channel: str) -> BrowserPage:
        """The browser's native EventSource on the run's stream (cross-origin: the target must allow it)."""
        return BrowserPage(
            self.browser_bundle or "", SSE_PAGE, {"url": self.stream_url(channel), "event": str(self.options.event)}
        )

    async def open_subscriber(self, channel: str, hooks: SubscriberHooks) -> SubscriberHandle:
        source = EventSource(self, self.stream_url(channel), hooks)
        try:
            await source.start()
        except StreamClosed as exc:  # the reason reads "SSEError: ..." as before
            await source.close()
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


def _timestamp_field(options: argparse.Namespace) -> str:
    return str(getattr(options, "timestamp_field", "") or "")


PROVIDER = SSEProvider
