"""Server-Sent Events stream parser, sans I/O (WHATWG HTML, "Parsing an event stream").

Bytes in, events out; no sockets, no clock. The provider feeds it whatever the HTTP body yields and
acts on what comes back. Beyond the spec, it reports what a benchmark must not silently ignore
(lines the spec says to skip, bad UTF-8, an unbounded line) as :class:`Problem`, so a misbehaving
server shows up as counted errors rather than as missing deliveries.

Spec points that real clients get wrong, and that are tested here with literal bytes: CR, LF and CRLF
all end a line (a CR at the end of one chunk and an LF at the start of the next are one line end);
exactly one space after the colon is removed; ``id`` persists across events and one containing NUL is
ignored; ``retry`` must be all ASCII digits; an event with no data is not dispatched; a UTF-8 BOM at
the start of a stream is dropped; what is pending when a stream ends is discarded.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_LINE", "Event", "LineTooLong", "Parser", "Problem"]

DEFAULT_MAX_LINE = 2 * 1024 * 1024
"""Characters allowed in one line and in one event's data (probe payloads go up to 1 MiB)."""

_KNOWN_FIELDS = frozenset({"event", "data", "id", "retry"})


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event. ``type`` is ``message`` when the server sent no ``event:`` field."""

    type: str
    data: str
    id: str


@dataclass(frozen=True, slots=True)
class Problem:
    """Input the spec tells a client to skip; the stream goes on (a benchmark counts it as an error)."""

    reason: str


class LineTooLong(ValueError):
    """A line (or one event's data) grew past the limit: the stream cannot be trusted any further.

    ``before`` holds what the same chunk yielded ahead of the offending line, still to be acted on.
    """

    def __init__(self, message: str, before: list[Event | Problem] | None = None) -> None:
        super().__init__(message)
        self.before: list[Event | Problem] = before or []


class Parser:
    """Incremental parser for one EventSource: survives reconnections (``last_event_id``, ``retry_ms``)."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self.comments = 0
        self.new_stream()

    def new_stream(self) -> None:
        """A new HTTP response begins: drop whatever was pending, keep the last event id and retry."""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._start = True
        self._skip_lf = False
        self._buf = ""
        self._data: list[str] = []
        self._data_len = 0
        self._type = ""
        self._id = self.last_event_id
        self._bad_utf8_reported = False

    def feed(self, chunk: bytes) -> list[Event | Problem]:
        """Parse the next piece of the body. Raises LineTooLong (the caller should drop the stream)."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        out: list[Event | Problem] = []
        if "\ufffd" in text and not self._bad_utf8_reported:
            self._bad_utf8_reported = True  # once per stream: one bad server, one reason
            out.append(Problem("stream is not valid UTF-8"))
        if self._start:
            self._start = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        buf = self._buf + text if self._buf else text
        if "\r" in buf:
            self._skip_lf = buf.endswith("\r")  # its LF, if any, arrives with the next chunk
            buf = buf.replace("\r\n", "\n").replace("\r", "\n")
        lines = buf.split("\n")
        self._buf = lines.pop()
        try:
            for line in lines:
                self._line(line, out)
        except LineTooLong as exc:
            self._buf = ""
            raise LineTooLong(str(exc), out) from None
        if len(self._buf) > self.max_line:
            self._buf = ""
            raise LineTooLong(f"SSE line longer than {self.max_line} characters", out)
        return out

    def _line(self, line: str, out: list[Event | Problem]) -> None:
        if not line:
            self._dispatch(out)
            return
        if len(line) > self.max_line:
            raise LineTooLong(f"SSE line longer than {self.max_line} characters")
        if line[0] == ":":
            self.comments += 1
            return
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_len += len(value) + 1
            if self._data_len > self.max_line:
                raise LineTooLong(f"SSE event data longer than {self.max_line} characters")
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id":
            if "\x00" in value:
                out.append(Problem("id field contains NUL (ignored)"))
            else:
                self._id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry_ms = int(value)
            else:
                out.append(Problem(f"retry field is not a number: {value[:40]!r}"))
        elif name not in _KNOWN_FIELDS:
            out.append(Problem(f"unknown field {name[:40]!r}"))

    def _dispatch(self, out: list[Event | Problem]) -> None:
        self.last_event_id = self._id
        if not self._data:
            self._type = ""
            return
        out.append(Event(self._type or "message", "\n".join(self._data), self._id))
        self._data = []
        self._data_len = 0
        self._type = ""
