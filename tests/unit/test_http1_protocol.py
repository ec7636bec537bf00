"""harness.protocols.http1: literal bytes in, literal events out (RFC 9112 message framing)."""

from __future__ import annotations

import pytest

from harness.protocols import sse
from harness.protocols.http1 import (
    Body,
    End,
    Head,
    Headers,
    ProtocolError,
    ResponseParser,
    event_stream_request,
    request,
)

Event = Head | Body | End

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
SSE_HEADERS = Headers((("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")))
EVENT_17 = b"id: 17\nevent: message\ndata: rtb1|17|x\n\n"  # 0x27 = 39 bytes
CHUNKED_STREAM = (
    SSE_HEAD
    + b"27\r\n" + EVENT_17 + b"\r\n"
    + b"5;name=value\r\nhello\r\n"
    + b"0\r\nExpires: never\r\n\r\n"
)  # fmt: skip
CHUNKED_EVENTS: list[Event] = [
    Head(200, "OK", SSE_HEADERS),
    Body(EVENT_17),
    Body(b"hello"),
    End(Headers((("Expires", "never"),))),
]


def feed_all(parser: ResponseParser, *pieces: bytes) -> list[Event]:
    out: list[Event] = []
    for piece in pieces:
        out.extend(parser.feed(piece))
    return out


def joined(events: list[Event]) -> list[Event]:
    """Adjacent Body pieces as one (splitting a read may split a chunk's data, nothing else)."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Body) and out and isinstance(out[-1], Body):
            out[-1] = Body(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def fed_bytewise(stream: bytes) -> list[Event]:
    parser = ResponseParser()
    return joined(feed_all(parser, *(stream[i : i + 1] for i in range(len(stream)))))


def error_of(*pieces: bytes, parser: ResponseParser | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        feed_all(parser or ResponseParser(), *pieces)
    return info.value


# -- requests ---------------------------------------------------------------------------------------


def test_event_stream_request_is_what_a_browser_sends() -> None:
    assert event_stream_request("/events?channel=a", "127.0.0.1:8080") == (
        b"GET /events?channel=a HTTP/1.1\r\n"
        b"Host: 127.0.0.1:8080\r\n"
        b"Accept: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\n"
        b"Accept-Encoding: identity\r\n"
        b"\r\n"
    )


def test_event_stream_request_resumes_with_last_event_id_utf8() -> None:
    assert event_stream_request("/e", "h", last_event_id="17\u00e9", headers={"User-Agent": "rtbench"}) == (
        b"GET /e HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Accept-Encoding: identity\r\nLast-Event-ID: 17\xc3\xa9\r\nUser-Agent: rtbench\r\n\r\n"
    )


def test_post_request_carries_its_body_and_length() -> None:
    body = b'{"channel":null,"data":"x"}'
    assert request("POST", "/publish", "localhost", [("Content-Type", "application/json")], body) == (
        b"POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 27\r\n\r\n" + body
    )
    assert request("POST", "/p", "h", (), b"") == b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "target", "host", "headers"),
    [
        ("GET", "/", "h", [("X-Id", "1\r\nInjected: yes")]),
        ("GET", "/", "h", [("X-Id", "a\nb")]),
        ("GET", "/", "h", [("X-Id", "a\x00")]),
        ("GET", "/", "h", [("Bad Name", "v")]),
        ("GET", "/", "h", [("X:Y", "v")]),
        ("GET", "/", "h", [("host", "other")]),
        ("GET", "/", "h", [("Content-Length", "5")]),
        ("GET", "/", "h", [("Transfer-Encoding", "chunked")]),
        ("GET", "/a b", "h", []),
        ("GET", "", "h", []),
        ("GET", "/\r\n", "h", []),
        ("GE T", "/", "h", []),
        ("GET", "/", "h\r\nX: 1", []),
        ("GET", "/", "", []),
    ],
)
def test_request_refuses_what_would_break_the_head(
    method: str, target: str, host: str, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(ValueError):
        request(method, target, host, headers)


# -- chunked ----------------------------------------------------------------------------------------


def test_chunked_stream_in_one_read() -> None:
    parser = ResponseParser()
    assert parser.feed(CHUNKED_STREAM) == CHUNKED_EVENTS
    assert parser.keep_alive


def test_chunked_stream_split_at_every_byte_boundary() -> None:
    for cut in range(1, len(CHUNKED_STREAM)):
        parser = ResponseParser()
        events = feed_all(parser, CHUNKED_STREAM[:cut], CHUNKED_STREAM[cut:])
        assert joined(events) == [CHUNKED_EVENTS[0], Body(EVENT_17 + b"hello"), CHUNKED_EVENTS[3]], cut
        ends = [0]
        for event in events:
            if isinstance(event, Body):
                ends.append(ends[-1] + len(event.data))
        assert len(EVENT_17) in ends, cut  # no Body holds data of two chunks


def test_chunked_stream_one_byte_at_a_time() -> None:
    assert fed_bytewise(CHUNKED_STREAM) == [CHUNKED_EVENTS[0], Body(EVENT_17 + b"hello"), CHUNKED_EVENTS[3]]


def test_one_read_per_chunk_gives_one_body_each() -> None:
    parser = ResponseParser()
    assert parser.feed(SSE_HEAD) == [Head(200, "OK", SSE_HEADERS)]
    assert parser.feed(b"27\r\n" + EVENT_17 + b"\r\n") == [Body(EVENT_17)]
    assert parser.feed(b"3\r\nabc\r\n") == [Body(b"abc")]
    assert parser.feed(b"3\r\nabc\r\n3\r\ndef\r\n") == [Body(b"abc"), Body(b"def")]
    assert parser.feed(b"0\r\n\r\n") == [End()]


@pytest.mark.parametrize(
    ("size_line", "data"),
    [
        (b"A", b"0123456789"),
        (b"a", b"0123456789"),
        (b"000a", b"0123456789"),
        (b"a;ext", b"0123456789"),
        (b'a ; ext=1 ; other="q;"', b"0123456789"),
        (b"a\t;e", b"0123456789"),
    ],
)
def test_chunk_size_forms(size_line: bytes, data: bytes) -> None:
    parser = ResponseParser()
    parser.feed(SSE_HEAD)
    assert parser.feed(size_line + b"\r\n" + data + b"\r\n0\r\n\r\n") == [Body(data), End()]


def test_chunk_data_may_contain_crlf_and_look_like_framing() -> None:
    parser = ResponseParser()
    parser.feed(SSE_HEAD)
    assert parser.feed(b"5\r\n0\r\n\r\n\r\n") == [Body(b"0\r\n\r\n")]
    assert parser.feed(b"0\r\n\r\n") == [End()]


def test_trailers_are_kept_with_duplicates() -> None:
    parser = ResponseParser()
    parser.feed(SSE_HEAD)
    assert parser.feed(b"0\r\nX-A: 1\r\nx-a: 2\r\nX-B:\r\n\r\n") == [
        End(Headers((("X-A", "1"), ("x-a", "2"), ("X-B", ""))))
    ]


def test_keep_alive_chunked_then_next_response_in_the_same_read() -> None:
    stream = SSE_HEAD + b"2\r\nhi\r\n0\r\n\r\n" + b"HTTP/1.1 204 No Content\r\n\r\n"
    expected = [Head(200, "OK", SSE_HEADERS), Body(b"hi"), End(), Head(204, "No Content", Headers()), End()]
    assert ResponseParser().feed(stream) == expected
    for cut in range(1, len(stream)):
        assert joined(feed_all(ResponseParser(), stream[:cut], stream[cut:])) == expected, cut


def test_bodies_feed_the_sse_parser() -> None:
    """The path an EventSource takes: chunk data straight into harness.protocols.sse."""
    http = ResponseParser()
    events = sse.Parser()
    out: list[sse.Event | sse.Problem] = []
    for event in http.feed(SSE_HEAD + b"27\r\n" + EVENT_17 + b"\r\n" + b"8\r\ndata: a\n\r\n1\r\n\n\r\n"):
        if isinstance(event, Body):
            out.extend(events.feed(event.data))
    assert out == [sse.Event("message", "rtb1|17|x", "17"), sse.Event("message", "a", "17")]


# -- Content-Length, close-delimited, no body ------------------------------------------------------

POST_REPLIES = (
    b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n{"ok":true}'
    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4, 4\r\nConnection: close\r\n\r\noops"
)
POST_EVENTS: list[Event] = [
    Head(200, "OK", Headers((("Content-Length", "11"), ("Content-Type", "application/json")))),
    Body(b'{"ok":true}'),
    End(),
    Head(202, "Accepted", Headers((("Content-Length", "0"),))),
    End(),
    Head(500, "Internal Server Error", Headers((("Content-Length", "4, 4"), ("Connection", "close")))),
    Body(b"oops"),
    End(),
]


def test_content_length_responses_back_to_back() -> None:
    parser = ResponseParser()
    assert parser.feed(POST_REPLIES) == POST_EVENTS
    assert not parser.keep_alive
    assert parser.eof() == []


def test_content_length_responses_split_at_every_byte_boundary() -> None:
    for cut in range(1, len(POST_REPLIES)):
        parser = ResponseParser()
        assert joined(feed_all(parser, POST_REPLIES[:cut], POST_REPLIES[cut:])) == POST_EVENTS, cut
    assert fed_bytewise(POST_REPLIES) == POST_EVENTS


def test_data_after_a_closing_response_is_an_error() -> None:
    parser = ResponseParser()
    feed_all(parser, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
    assert (
        str(error_of(b"HTTP/1.1 200 OK\r\n", parser=parser)) == "data after the last response on a closing connection"
    )


CLOSE_DELIMITED = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\ndata: b\n\n"


def test_close_delimited_body_ends_at_eof() -> None:
    parser = ResponseParser()
    assert parser.feed(CLOSE_DELIMITED) == [
        Head(200, "OK", Headers((("Content-Type", "text/event-stream"),))),
        Body(b"data: a\n\ndata: b\n\n"),
    ]
    assert parser.feed(b"more") == [Body(b"more")]
    assert not parser.keep_alive
    assert parser.eof() == [End()]
    assert parser.eof() == []


def test_close_delimited_split_at_every_byte_boundary() -> None:
    expected = [
        Head(200, "OK", Headers((("Content-Type", "text/event-stream"),))),
        Body(b"data: a\n\ndata: b\n\n"),
        End(),
    ]
    for cut in range(1, len(CLOSE_DELIMITED)):
        parser = ResponseParser()
        events = feed_all(parser, CLOSE_DELIMITED[:cut], CLOSE_DELIMITED[cut:]) + parser.eof()
        assert joined(events) == expected, cut


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nContent-Encoding: gzip\r\n\r\n",
    ],
)
def test_no_body_statuses_end_at_once(head: bytes) -> None:
    parser = ResponseParser()
    events = parser.feed(head)
    assert [type(e) for e in events] == [Head, End]


def test_interim_responses_are_skipped() -> None:
    stream = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    assert ResponseParser().feed(stream) == [Head(200, "OK", Headers((("Content-Length", "2"),))), Body(b"ok"), End()]
    assert fed_bytewise(stream) == [Head(200, "OK", Headers((("Content-Length", "2"),))), Body(b"ok"), End()]


# -- heads and headers ------------------------------------------------------------------------------


def test_header_values_lookups_and_folding() -> None:
    head = (
        b"HTTP/1.1 200 \r\n"
        b"content-type:text/event-stream \r\n"
        b"Set-Cookie: a=1\r\n"
        b"SET-COOKIE: b=2\r\n"
        b"X-Folded: one\r\n"
        b" \t two\r\n"
        b"Cache-Control: no-cache,\tno-store\r\n"
        b"X-Latin: caf\xe9\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    events = ResponseParser().feed(head)
    assert events == [
        Head(
            200,
            "",
            Headers(
                (
                    ("content-type", "text/event-stream"),
                    ("Set-Cookie", "a=1"),
                    ("SET-COOKIE", "b=2"),
                    ("X-Folded", "one two"),
                    ("Cache-Control", "no-cache,\tno-store"),
                    ("X-Latin", "caf\u00e9"),
                    ("Content-Length", "0"),
                )
            ),
        ),
        End(),
    ]
    assert isinstance(events[0], Head)
    headers = events[0].headers
    assert headers.get("Content-Type") == "text/event-stream"
    assert headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert headers.get("Set-Cookie") == "a=1, b=2"
    assert headers.tokens("cache-control") == ["no-cache", "no-store"]
    assert headers.get("Missing") is None
    assert headers.get("Missing", "dflt") == "dflt"
    assert "CONTENT-TYPE" in headers
    assert "missing" not in headers
    assert len(headers) == 7


def test_status_line_without_reason() -> None:
    assert ResponseParser().feed(b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n") == [
        Head(404, "", Headers((("Content-Length", "0"),))),
        End(),
    ]


def test_http10_keep_alive_and_http11_close() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
    assert parser.keep_alive
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 0\r\n\r\n")
    assert not parser.keep_alive


def test_head_at_the_size_limit_passes_and_one_byte_more_fails() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: "
    fill = 100 - len(head) - 4
    exact = head + b"p" * fill + b"\r\n\r\n"
    assert len(exact) == 100
    assert [type(e) for e in ResponseParser(max_head=100).feed(exact)] == [Head, End]
    over = head + b"p" * (fill + 1) + b"\r\n\r\n"
    assert str(error_of(over, parser=ResponseParser(max_head=100))) == "response head larger than 100 bytes"
    pieces = [over[i : i + 7] for i in range(0, len(over), 7)]
    assert str(error_of(*pieces, parser=ResponseParser(max_head=100))) == "response head larger than 100 bytes"


def test_head_that_never_ends_is_stopped_at_the_limit() -> None:
    parser = ResponseParser(max_head=1000)
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProtocolError, match="response head larger than 1000 bytes"):
        for _ in range(100):
            parser.feed(b"X-Forever: yes\r\n")


def test_oversized_trailer_section() -> None:
    parser = ResponseParser(max_head=200)
    parser.feed(SSE_HEAD + b"0\r\n")
    assert str(error_of(b"X: " + b"y" * 300 + b"\r\n\r\n", parser=parser)) == "trailer section larger than 200 bytes"


# -- malformed responses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status_line",
    [
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/2 200 OK",
        b"HTTP/2.0 200 OK",
        b"http/1.1 200 OK",
        b"HTTP/1.1  200 OK",
        b"HTTP/1.1 abc OK",
        b"HTTP/1.1 600 Weird",
        b"ICY 200 OK",
        b"HTTP/1.1 200 O\x00K",
        b"",
    ],
)
def test_bad_status_line(status_line: bytes) -> None:
    error = error_of(status_line + b"\r\nContent-Length: 0\r\n\r\n")
    assert str(error).startswith("bad status line"), error


@pytest.mark.parametrize(
    "size_line",
    [b"xyz", b"0x1f", b"-5", b"+5", b" 5", b"5 ", b"1_0", b"", b";ext", b"1" * 17, b"5\rX", b"5;a\rb"],
)
def test_bad_chunk_size(size_line: bytes) -> None:
    error = error_of(SSE_HEAD, size_line + b"\r\nhello\r\n")
    assert str(error).startswith(("bad chunk size", "bare CR in chunk extension")), error


@pytest.mark.parametrize(
    "pieces",
    [
        [b"5\r\nhelloXY"],
        [b"5\r\nhello\n"],
        [b"5\r\nhello\rX"],
        [b"5\r\nhello", b"X\r\n"],
        [b"5\r\nhello\r", b"\r\n"],
    ],
)
def test_missing_crlf_after_chunk_data(pieces: list[bytes]) -> None:
    assert str(error_of(SSE_HEAD, *pieces)) == "chunk data not followed by CRLF"


def test_missing_crlf_after_chunk_data_split_at_every_byte() -> None:
    stream = SSE_HEAD + b"5\r\nhello\r\n5\r\nworldXX0\r\n\r\n"
    for cut in range(len(SSE_HEAD), len(stream)):
        error = error_of(stream[:cut], stream[cut:])
        assert str(error) == "chunk data not followed by CRLF", cut


@pytest.mark.parametrize("size_line", [b"5\nhello\r\n", b"\nhello"])
def test_chunk_size_line_with_bare_lf(size_line: bytes) -> None:
    assert str(error_of(SSE_HEAD, size_line)) == "chunk-size line not ended by CRLF"


def test_chunk_size_line_limit() -> None:
    ext = b"a;" + b"e" * 98  # 100 bytes
    parser = ResponseParser(max_chunk_line=100)
    parser.feed(SSE_HEAD)
    assert parser.feed(ext + b"\r\n0123456789\r\n") == [Body(b"0123456789")]
    error = error_of(SSE_HEAD, ext + b"e\r\n0123456789\r\n", parser=ResponseParser(max_chunk_line=100))
    assert str(error) == "chunk-size line longer than 100 bytes"
    parser = ResponseParser(max_chunk_line=100)
    parser.feed(SSE_HEAD)
    with pytest.raises(ProtocolError, match="chunk-size line longer than 100 bytes"):
        for _ in range(60):
            parser.feed(b"ee")


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "response head has a line not ended by CRLF"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", "response head has a line not ended by CRLF"),
        (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "bad header line b'NoColon'"),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "bad header line b'Bad Name: x'"),
        (b"HTTP/1.1 200 OK\r\nName : x\r\n\r\n", "bad header line b'Name : x'"),
        (b"HTTP/1.1 200 OK\r\n: x\r\n\r\n", "bad header line b': x'"),
        (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "header line has a control character: b'X: a\\rb'"),
        (b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n", "header line has a control character: b'X: a\\x00'"),
        (b"HTTP/1.1 200 OK\r\n folded: first\r\n\r\n", "header section starts with a continuation line"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "unexpected 101 Switching Protocols"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "both Transfer-Encoding and Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "unsupported Transfer-Encoding 'gzip, chunked'",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", "unsupported Transfer-Encoding 'identity'"),
        (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "bad Content-Length 'abc'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length '-1'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "bad Content-Length '1, 2'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "bad Content-Length '1, 2'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", "bad Content-Length '+3'"),
    ],
)
def test_malformed_heads(head: bytes, reason: str) -> None:
    assert str(error_of(head)) == reason
    for cut in range(1, len(head)):
        assert str(error_of(head[:cut], head[cut:])) == reason, cut


def test_compressed_body_is_refused_after_its_head() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n\r\n"
    error = error_of(head)
    assert str(error) == "Content-Encoding gzip is not supported"
    assert error.before == [
        Head(200, "OK", Headers((("Content-Type", "text/event-stream"), ("Content-Encoding", "gzip"))))
    ]
    ok = b"HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\nContent-Length: 1\r\n\r\nx"
    assert [type(e) for e in ResponseParser().feed(ok)] == [Head, Body, End]


def test_error_keeps_the_events_before_it_and_the_parser_stays_failed() -> None:
    parser = ResponseParser()
    error = error_of(SSE_HEAD + b"2\r\nok\r\n3\r\nabc\r\nzz\r\n", parser=parser)
    assert str(error) == "bad chunk size b'zz'"
    assert error.before == [Head(200, "OK", SSE_HEADERS), Body(b"ok"), Body(b"abc")]
    with pytest.raises(ProtocolError, match=r"parser already failed: bad chunk size b'zz'"):
        parser.feed(b"0\r\n\r\n")
    assert parser.eof() == []


# -- eof --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Le", "connection closed inside the response head"),
        (SSE_HEAD, "connection closed inside the chunked body"),
        (SSE_HEAD + b"1", "connection closed inside the chunked body"),
        (SSE_HEAD + b"a\r\nabc", "connection closed with 7 bytes of a chunk missing"),
        (SSE_HEAD + b"3\r\nabc", "connection closed inside the chunked body"),
        (SSE_HEAD + b"3\r\nabc\r", "connection closed inside the chunked body"),
        (SSE_HEAD + b"0\r\n", "connection closed inside the trailer section"),
        (SSE_HEAD + b"0\r\nX: 1\r\n", "connection closed inside the trailer section"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "connection closed with 7 bytes of the body missing"),
    ],
)
def test_eof_mid_response_is_an_error(received: bytes, reason: str) -> None:
    parser = ResponseParser()
    parser.feed(received)
    with pytest.raises(ProtocolError) as info:
        parser.eof()
    assert str(info.value) == reason


def test_eof_between_responses_is_quiet() -> None:
    assert ResponseParser().eof() == []
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert parser.eof() == []


@pytest.mark.parametrize(
    ("received", "between"),
    [
        (SSE_HEAD, True),
        (SSE_HEAD + b"3\r\nabc\r\n", True),
        (SSE_HEAD + b"3\r\nabc\r\n1", False),  # a size line begun
        (SSE_HEAD + b"a\r\nabc", False),  # inside a chunk's data
        (SSE_HEAD + b"3\r\nabc\r", False),  # the CRLF after the data not complete
        (SSE_HEAD + b"0\r\n", False),  # the trailer section
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", False),
        (b"HTTP/1.1 200 OK\r\nContent-Le", False),
    ],
)
def test_between_chunks_says_a_close_would_cut_no_chunk(received: bytes, between: bool) -> None:
    parser = ResponseParser()
    parser.feed(received)
    assert parser.between_chunks is between
