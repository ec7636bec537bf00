"""harness.measure.server_stamps: --timestamp-field specs and extraction from a server's own events."""

from __future__ import annotations

import pytest

from harness.measure.server_stamps import FieldSpec, SequenceGuess, TimestampError, parse_spec


def test_parse_spec() -> None:
    assert parse_spec("timestamp") == FieldSpec(("timestamp",), "ms")
    assert parse_spec("meta.sent_at:us") == FieldSpec(("meta", "sent_at"), "us")
    assert parse_spec("at:iso") == FieldSpec(("at",), "iso")
    for bad in ("", "a..b", "ts:weeks"):
        with pytest.raises(ValueError):
            parse_spec(bad)


def test_extract_units() -> None:
    assert parse_spec("timestamp").extract_ns('{"id":1,"message":"hi","timestamp":1700000000123}') == (
        1_700_000_000_123_000_000
    )
    assert parse_spec("t:s").extract_ns('{"t": 1700000000.5}') == 1_700_000_000_500_000_000
    assert parse_spec("a.0.t:ns").extract_ns('{"a": [{"t": "17"}]}') == 17
    assert parse_spec("t:iso").extract_ns('{"t": "1970-01-01T00:00:01.5Z"}') == 1_500_000_000


@pytest.mark.parametrize(
    "data", ["not json", '{"x": 1}', '{"timestamp": "soon"}', '{"timestamp": true}', '{"timestamp": -5}']
)
def test_extract_errors(data: str) -> None:
    with pytest.raises(TimestampError):
        parse_spec("timestamp").extract_ns(data)


def test_sequence_guess_gives_up_on_opaque_ids() -> None:
    guess = SequenceGuess()
    assert guess.seq("41") == 41
    assert guess.seq("a-42") is None
    assert guess.seq("43") is None
