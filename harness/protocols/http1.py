"""HTTP/1.1 client codec for long-lived response streams (RFC 9112), sans I/O.

Bytes in, events out; no sockets, no clock. :func:`request` builds the bytes to send;
:class:`ResponseParser` is fed the bytes exactly as they came off the socket (any split) and returns
:class:`Head`, then :class:`Body` pieces, then :class:`End`. Framing: ``Transfer-Encoding: chunked``
(extensions ignored, trailers kept, every CRLF checked), ``Content-Length``, or close-delimited (the
body ends at :meth:`ResponseParser.eof`). After a framed response that keeps the connection, the next
bytes start the next response, so a publisher can reuse one connection for many POSTs.

Hand-written rather than wrapping httptools (llhttp, in C). httptools decodes a one-chunk SSE event
faster (about 0.6 against 1.9 us on the project's 2-core box, ``benchmarks/http1_codec.py``; the SSE
parser behind either costs about 4 us), but it does not expose chunk boundaries, which tell whether a
read ended with a message (:attr:`ResponseParser.between_chunks`: an event that did not end its read
carries the stamp of the bytes behind it). It also sets no bound on the head, and would be one more
compiled dependency. The hot path (a read holding exactly one chunk) is one regex match.

Strict where leniency would hide a broken server: bare LF line ends, a chunk size that is not plain
hex, a missing CRLF after chunk data, ``Transfer-Encoding`` together with ``Content-Length``.
Compressed bodies are refused (:class:`ProtocolError` naming the coding): the requests built here
ask for ``identity``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_CHUNK_LINE",
    "DEFAULT_MAX_HEAD",
    "NODE_HEADER",
    "Body",
    "End",
    "Head",
    "Headers",
    "ProtocolError",
    "ResponseParser",
    "event_stream_request",
    "request",
    "server_node",
]

DEFAULT_MAX_HEAD = 64 * 1024
"""Bytes allowed in a response head (status line and fields, or the trailer section)."""

DEFAULT_MAX_CHUNK_LINE = 1024
"""Bytes allowed in one chunk-size line, extensions included."""

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([1-5][0-9][0-9])(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_FIELD_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_WHOLE_CHUNK = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n(.+)\r\n", re.DOTALL)
_HEXDIGITS = b"0123456789abcdefABCDEF"
_OWS = b" \t"
_NO_BODY_STATUS = frozenset({204, 304})

NODE_HEADER = "X-Rtbench-Node"
"""The response field a scaled-out target names its node with (on the websocket 101 and the SSE 200)."""

_NODE_ID = re.compile(r"[!#-+\--\[\]-~]{1,64}")  # visible ASCII but '"', ',' and backslash

# Parser states (ints: the chunked hot path compares them once per chunk).
_HEAD, _SIZE, _DATA, _CRLF, _TRAILER, _LENGTH, _CLOSE, _DONE, _FAILED = range(9)


class ProtocolError(ValueError):
    """The response broke HTTP/1.1; the message is a short reason a user reads. Drop the connection.

    ``before`` holds the events the same :meth:`ResponseParser.feed` produced ahead of the fault
    (body already received is still a delivery to count).
    """

    def __init__(self, reason: str, before: list[Head | Body | End] | None = None) -> None:
        super().__init__(reason)
        self.before: list[Head | Body | End] = before or []


@dataclass(frozen=True, slots=True)
class Headers:
    """Header fields in arrival order, names as sent; lookups ignore case.

    Repeated fields stay separate (``get_all``); ``get`` joins them with ", ", which is their meaning
    for every list-valued field (RFC 9110 section 5.3) though not for Set-Cookie.
    """

    fields: tuple[tuple[str, str], ...] = ()

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        key = name.lower()
        return [value for field, value in self.fields if field.lower() == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The combined value of ``name``, or ``default`` when absent."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def tokens(self, name: str) -> list[str]:
        """Comma-separated list elements of ``name``, lower-cased, empties dropped (Connection, codings)."""
        return [item.strip(" \t").lower() for value in self.get_all(name) for item in value.split(",") if item.strip()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(field.lower() == name.lower() for field, _ in self.fields)

    def __len__(self) -> int:
        return len(self.fields)


@dataclass(frozen=True, slots=True)
class Head:
    """The final response head (1xx interim responses are skipped)."""

    status: int
    reason: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class Body:
    """A piece of the body: one chunk's data (or what arrived of it), or what one read carried."""

    data: bytes


@dataclass(frozen=True, slots=True)
class End:
    """The response is complete; ``trailers`` holds a chunked body's trailer fields."""

    trailers: Headers = Headers()


def server_node(value: str | None) -> str | None:
    """The node id in an ``X-Rtbench-Node`` value, or None when there is none that can be trusted:
    absent, blank, repeated (joined with ", " by :meth:`Headers.get`), longer than 64 characters or
    holding anything but visible ASCII. It ends up in summary.json keys and report tables."""
    if value is None:
        return None
    node = value.strip(" \t")
    return node if _NODE_ID.fullmatch(node) else None


# -- requests ---------------------------------------------------------------------------------------


def request(
    method: str,
    target: str,
    host: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
) -> bytes:
    """An HTTP/1.1 request. With ``body`` (a POST, say) its Content-Length is added.

    Raises ValueError on anything that would let a value end a line early (header injection).
    """
    if not _TOKEN.fullmatch(method.encode("ascii", "replace")):
        raise ValueError(f"bad method {method!r}")
    if not target or any(c in target for c in " \t\r\n\x00"):
        raise ValueError(f"bad request target {target!r}")
    if not host or any(c in host for c in " \t\r\n\x00/"):
        raise ValueError(f"bad host {host!r}")
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in pairs:
        if not _TOKEN.fullmatch(name.encode("ascii", "replace")):
            raise ValueError(f"bad header name {name!r}")
        if any(c in value for c in "\r\n\x00"):
            raise ValueError(f"header {name} contains CR, LF or NUL")
        if name.lower() in ("host", "content-length", "transfer-encoding"):
            raise ValueError(f"{name} is set by request(), not by the caller")
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head + body if body else head


def event_stream_request(
    target: str,
    host: str,
    last_event_id: str = "",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
) -> bytes:
    """The GET an EventSource sends: ``Last-Event-ID`` only when non-empty, as browsers do."""
    extra = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    fields = [("Accept", "text/event-stream"), ("Cache-Control", "no-cache"), ("Accept-Encoding", "identity")]
    if last_event_id:
        fields.append(("Last-Event-ID", last_event_id))
    return request("GET", target, host, fields + extra)


# -- responses --------------------------------------------------------------------------------------


class ResponseParser:
    """Incremental parser for the responses on one connection, in order."""

    def __init__(self, max_head: int = DEFAULT_MAX_HEAD, max_chunk_line: int = DEFAULT_MAX_CHUNK_LINE) -> None:
        self.max_head = max_head
        self.max_chunk_line = max_chunk_line
        self.keep_alive = False
        """After End: whether the server keeps the connection open for another request."""
        self._state = _HEAD
        self._buf = b""
        self._scanned = 0  # head/trailer bytes already searched for the blank line
        self._remaining = 0  # of the current chunk or Content-Length body
        self._error = ""

    # -- public -------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Head | Body | End]:
        """Parse the next bytes. Raises ProtocolError (events before the fault in ``before``)."""
        if self._state == _SIZE and not self._buf:
            # The hot path: a read that holds exactly one whole chunk (a push stream's steady state).
            whole = _WHOLE_CHUNK.fullmatch(data)
            if whole is not None and len(whole[2]) == int(whole[1], 16):
                return [Body(whole[2])]
        elif self._state == _FAILED:
            raise ProtocolError(f"parser already failed: {self._error}")
        if self._buf:
            data = self._buf + data
            self._buf = b""
        out: list[Head | Body | End] = []
        try:
            self._parse(data, out)
        except ProtocolError as exc:
            self._state = _FAILED
            self._error = str(exc)
            raise ProtocolError(str(exc), out) from None
        return out

    def eof(self) -> list[Head | Body | End]:
        """The server closed the connection: End of a close-delimited body, else an error if mid-response.

        Between responses (nothing received since the last End) a close is not an error: ``[]``.
        """
        state = self._state
        if state == _CLOSE:
            self._state = _DONE
            return [End()]
        if (state == _HEAD and not self._buf) or state in (_DONE, _FAILED):
            self._state = _DONE
            return []
        where = {
            _HEAD: "inside the response head",
            _SIZE: "inside the chunked body",
            _DATA: f"with {self._remaining} bytes of a chunk missing",
            _CRLF: "inside the chunked body",
            _TRAILER: "inside the trailer section",
            _LENGTH: f"with {self._remaining} bytes of the body missing",
        }[state]
        self._state = _FAILED
        self._error = f"connection closed {where}"
        raise ProtocolError(self._error)

    @property
    def between_chunks(self) -> bool:
        """Inside a chunked body with nothing of the next chunk received yet.

        A close here truncates the response but cuts no message in two: a server that went away
        rather than one that broke (an EventSource reconnects without counting an error).
        """
        return self._state == _SIZE and not self._buf

    # -- parsing ------------------------------------------------------------------------------------
    def _parse(self, data: bytes, out: list[Head | Body | End]) -> None:
        pos = 0
        end = len(data)
        while True:
            state = self._state
            if state == _SIZE:
                nl = data.find(b"\n", pos, pos + self.max_chunk_line + 2)
                if nl < 0:
                    if end - pos > self.max_chunk_line + 1:
                        raise ProtocolError(f"chunk-size line longer than {self.max_chunk_line} bytes")
                    break
                if nl == pos or data[nl - 1] != 13:
                    raise ProtocolError("chunk-size line not ended by CRLF")
                line = data[pos : nl - 1]
                semi = line.find(b";")
                if semi >= 0:
                    if 13 in line:
                        raise ProtocolError("bare CR in chunk extension")
                    digits = line[:semi].rstrip(_OWS)
                else:
                    digits = line
                if not digits or len(digits) > 16 or digits.translate(None, _HEXDIGITS):
                    raise ProtocolError(f"bad chunk size {line[:40]!r}")
                size = int(digits, 16)
                pos = nl + 1
                if size == 0:
                    self._state = _TRAILER
                    self._scanned = pos
                    continue
                if end - pos >= size + 2:  # the whole chunk is here: the common case for SSE
                    stop = pos + size
                    if data[stop : stop + 2] != b"\r\n":
                        raise ProtocolError("chunk data not followed by CRLF")
                    out.append(Body(data[pos:stop]))
                    pos = stop + 2
                    continue
                self._remaining = size
                self._state = _DATA
            elif state == _DATA:
                if pos == end:
                    break
                pos = self._take_body(data, pos, end, out)
                if self._remaining == 0:
                    self._state = _CRLF
            elif state == _CRLF:
                if end - pos < 2:
                    if pos < end and data[pos] != 13:
                        raise ProtocolError("chunk data not followed by CRLF")
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                pos += 2
                self._state = _SIZE
            elif state in (_HEAD, _TRAILER):
                block_end = self._find_blank_line(data, pos)
                if block_end < 0:
                    break
                block = data[pos:block_end]
                pos = block_end
                if state == _HEAD:
                    self._head(block, out)
                else:
                    out.append(End(Headers(tuple(_fields(block.split(b"\r\n")[:-2], "trailer")))))
                    self._finish()
            elif state == _LENGTH:
                if pos == end:
                    break
                pos = self._take_body(data, pos, end, out)
                if self._remaining == 0:
                    out.append(End())
                    self._finish()
            elif state == _CLOSE:
                if pos < end:
                    out.append(Body(data[pos:] if pos else data))
                    pos = end
                break
            else:  # _DONE
                if pos < end:
                    raise ProtocolError("data after the last response on a closing connection")
                break
        if pos < end:
            self._buf = data[pos:]
        if self._state in (_HEAD, _TRAILER):
            self._scanned -= pos
        else:
            self._scanned = 0

    def _take_body(self, data: bytes, pos: int, end: int, out: list[Head | Body | End]) -> int:
        """Body bytes up to what the chunk or Content-Length still owes; returns the new position."""
        take = min(self._remaining, end - pos)
        out.append(Body(data[pos : pos + take]))
        self._remaining -= take
        return pos + take

    def _find_blank_line(self, data: bytes, pos: int) -> int:
        """End (exclusive) of a head or trailer block starting at ``pos``, or -1 if incomplete."""
        if self._state == _TRAILER and data[pos : pos + 2] == b"\r\n":
            return pos + 2  # no trailer fields, the usual case
        start = max(pos, self._scanned - 3)
        found = data.find(b"\r\n\r\n", start, pos + self.max_head)
        if found >= 0:
            return found + 4
        what = "response head" if self._state == _HEAD else "trailer section"
        if len(data) - pos >= self.max_head:
            raise ProtocolError(f"{what} larger than {self.max_head} bytes")
        if (
            b"\n\n" in data[start:]
            or b"\n\r\n" in data[start:]
            or (self._state == _TRAILER and data[pos : pos + 1] == b"\n")
        ):
            raise ProtocolError(f"{what} has a line not ended by CRLF")
        self._scanned = len(data)
        return -1

    def _head(self, block: bytes, out: list[Head | Body | End]) -> None:
        lines = block.split(b"\r\n")[:-2]
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise ProtocolError(f"bad status line {lines[0][:60]!r}")
        minor = int(status_line[1])
        status = int(status_line[2])
        reason = (status_line[3] or b"").decode("latin-1")
        headers = Headers(tuple(_fields(lines[1:], "header")))
        if status == 101:
            raise ProtocolError("unexpected 101 Switching Protocols")
        if status < 200:
            return  # interim response (100 Continue, 103 Early Hints): the real one follows
        out.append(Head(status, reason, headers))
        connection = headers.tokens("connection")
        persistent = "keep-alive" in connection if minor == 0 else "close" not in connection
        if status in _NO_BODY_STATUS:
            out.append(End())
            self._finish(persistent)
            return
        codings = [c for c in headers.tokens("content-encoding") if c != "identity"]
        if codings:
            raise ProtocolError(f"Content-Encoding {', '.join(codings)} is not supported")
        if "transfer-encoding" in headers:
            if minor == 0:
                raise ProtocolError("Transfer-Encoding in an HTTP/1.0 response")
            if "content-length" in headers:
                raise ProtocolError("both Transfer-Encoding and Content-Length")
            if headers.tokens("transfer-encoding") != ["chunked"]:
                raise ProtocolError(f"unsupported Transfer-Encoding {headers.get('transfer-encoding')!r}")
            self.keep_alive = persistent
            self._state = _SIZE
            return
        lengths = {v.strip(" \t") for v in (headers.get("content-length") or "").split(",")} - {""}
        if "content-length" in headers:
            if len(lengths) != 1 or not all(v.isascii() and v.isdigit() for v in lengths):
                raise ProtocolError(f"bad Content-Length {headers.get('content-length')!r}")
            self._remaining = int(lengths.pop())
            self.keep_alive = persistent
            if self._remaining == 0:
                out.append(End())
                self._finish()
            else:
                self._state = _LENGTH
            return
        self.keep_alive = False
        self._state = _CLOSE

    def _finish(self, persistent: bool | None = None) -> None:
        """The response ended: the next one may follow on a persistent connection."""
        if persistent is not None:
            self.keep_alive = persistent
        self._state = _HEAD if self.keep_alive else _DONE


def _fields(lines: list[bytes], what: str) -> list[tuple[str, str]]:
    """Parse field lines (obs-fold joined with a space, RFC 9112 section 5.2)."""
    fields: list[tuple[str, str]] = []
    for line in lines:
        folded = line[:1] in (b" ", b"\t")
        name, colon, value = (b"", b":", line) if folded else line.partition(b":")
        if folded and not fields:
            raise ProtocolError(f"{what} section starts with a continuation line")
        if not folded and (not colon or not _TOKEN.fullmatch(name)):
            raise ProtocolError(f"bad {what} line {line[:60]!r}")
        if _FIELD_VALUE_BAD.search(value):
            raise ProtocolError(f"{what} line has a control character: {line[:60]!r}")
        text = value.strip(_OWS).decode("latin-1")
        if folded:
            previous_name, previous = fields.pop()
            fields.append((previous_name, f"{previous} {text}" if previous and text else previous or text))
        else:
            fields.append((name.decode("ascii"), text))
    return fields
