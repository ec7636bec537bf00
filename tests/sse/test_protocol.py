"""harness.protocols.sse: literal bytes in, literal events out (WHATWG "Parsing an event stream")."""

from __future__ import annotations

import pytest

from harness.protocols.sse import Event, LineTooLong, Parser, Problem


def feed_all(parser: Parser, *chunks: bytes) -> list[Event | Problem]:
    out: list[Event | Problem] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def test_basic_event_with_id_type_and_multiline_data() -> None:
    p = Parser()
    assert p.feed(b"id: 7\nevent: todo:created\ndata: a\ndata: b\n\n") == [Event("todo:created", "a\nb", "7")]
    assert p.last_event_id == "7"


def test_exactly_one_leading_space_is_removed() -> None:
    assert Parser().feed(b"data:  two\n\ndata:none\n\n") == [Event("message", " two", ""), Event("message", "none", "")]


@pytest.mark.parametrize("stream", [b"data: x\r\n\r\n", b"data: x\r\r", b"data: x\n\n", b"data: x\r\n\n"])
def test_every_line_ending(stream: bytes) -> None:
    assert Parser().feed(stream) == [Event("message", "x", "")]


def test_cr_then_lf_split_across_chunks_is_one_line_end() -> None:
    p = Parser()
    assert feed_all(p, b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [Event("message", "a\nb", "")]


def test_event_split_at_every_byte() -> None:
    stream = "id: 1\nevent: é\ndata: ü€\n\n".encode()
    p = Parser()
    assert feed_all(p, *(stream[i : i + 1] for i in range(len(stream)))) == [Event("é", "ü€", "1")]


def test_comments_and_blank_events_dispatch_nothing() -> None:
    p = Parser()
    assert p.feed(b": ping\r\n\r\n: keep-alive\n\nevent: x\n\n") == []
    assert p.comments == 2
    assert p.feed(b"data: y\n\n") == [Event("message", "y", "")]  # event type was reset


def test_id_persists_and_nul_id_is_ignored() -> None:
    p = Parser()
    out = p.feed(b"id: 5\ndata: a\n\ndata: b\n\nid: 6\x007\ndata: c\n\nid\ndata: d\n\n")
    assert out == [
        Event("message", "a", "5"),
        Event("message", "b", "5"),
        Problem("id field contains NUL (ignored)"),
        Event("message", "c", "5"),
        Event("message", "d", ""),
    ]
    assert p.last_event_id == ""


def test_id_without_data_still_sets_last_event_id() -> None:
    p = Parser()
    assert p.feed(b"id: 9\n\n") == []
    assert p.last_event_id == "9"


def test_retry_digits_only() -> None:
    p = Parser()
    assert p.feed(b"retry: 250\n\n") == []
    assert p.retry_ms == 250
    assert p.feed(b"retry: 1.5\nretry: -1\n\n") == [
        Problem("retry field is not a number: '1.5'"),
        Problem("retry field is not a number: '-1'"),
    ]
    assert p.retry_ms == 250


def test_data_field_without_colon_is_empty_line() -> None:
    assert Parser().feed(b"data\n\n") == [Event("message", "", "")]
    assert Parser().feed(b"data\ndata\n\n") == [Event("message", "\n", "")]


def test_unknown_field_and_bad_utf8_are_problems_not_crashes() -> None:
    p = Parser()
    assert p.feed(b"foo: bar\nthis line has no colon\ndata: \xff\xfe ok\n\n") == [
        Problem("stream is not valid UTF-8"),
        Problem("unknown field 'foo'"),
        Problem("unknown field 'this line has no colon'"),
        Event("message", "\ufffd\ufffd ok", ""),
    ]


def test_bom_is_dropped_at_stream_start_only() -> None:
    p = Parser()
    assert p.feed(b"\xef\xbb\xbfdata: a\n\n") == [Event("message", "a", "")]
    assert p.feed(b"\xef\xbb\xbfdata: b\n\n") == [Problem("unknown field '\\ufeffdata'")]


def test_incomplete_event_is_discarded_on_a_new_stream_but_id_kept() -> None:
    p = Parser()
    assert p.feed(b"id: 3\ndata: a\n\nid: 4\nevent: half\ndata: lost") == [Event("message", "a", "3")]
    p.new_stream()
    assert p.last_event_id == "3"
    assert p.feed(b"data: b\n\n") == [Event("message", "b", "3")]


def test_oversized_line_raises_even_without_a_newline() -> None:
    p = Parser(max_line=100)
    with pytest.raises(LineTooLong, match="longer than 100"):
        p.feed(b"data: " + b"x" * 200)
    with pytest.raises(LineTooLong):
        Parser(max_line=100).feed(b"data: " + b"x" * 200 + b"\n\n")


def test_oversized_event_from_many_data_lines_raises() -> None:
    p = Parser(max_line=100)
    with pytest.raises(LineTooLong, match="event data"):
        p.feed(b"data: " + b"x" * 60 + b"\n" + b"data: " + b"y" * 60 + b"\n")


def test_corrupt_payload_with_nul_is_delivered_as_data() -> None:
    assert Parser().feed(b"id: e-1\ndata: \x00not-an-envelope\n\n") == [Event("message", "\x00not-an-envelope", "e-1")]


def test_events_before_an_oversized_line_in_the_same_chunk_are_kept() -> None:
    with pytest.raises(LineTooLong) as info:
        Parser(max_line=100).feed(b"data: ok\n\ndata: " + b"x" * 200)
    assert info.value.before == [Event("message", "ok", "")]
