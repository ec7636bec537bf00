from __future__ import annotations

import pytest

from harness.measure import probe


def test_round_trip_keeps_every_field() -> None:
    text = probe.encode("run1", "pub.0", 42, 1_700_000_000_123_456_789, size=0)
    assert probe.decode(text) == probe.Probe("run1", "pub.0", 42, 1_700_000_000_123_456_789)


def test_padding_reaches_the_requested_size_and_still_decodes() -> None:
    text = probe.encode("r", "p", 7, 123456789, size=256)
    assert len(text.encode()) == 256
    assert probe.decode(text).seq == 7


def test_size_smaller_than_header_is_not_truncated() -> None:
    text = probe.encode("run", "pub", 1, 99, size=4)
    assert probe.decode(text).due_ns == 99


def test_bytes_are_accepted() -> None:
    assert probe.decode(probe.encode("r", "p", 3, 5).encode()).seq == 3


@pytest.mark.parametrize(
    "data",
    [
        "",
        "hello",
        "rtb1|r|p|x|5|",
        "rtb1|r|p|1|",
        "rtb2|r|p|1|5|",
        "rtb1|r|p|-1|5|",
        "rtb1|r|p|1|0|",
        None,
        17,
        {"seq": 1},
        b"\xff\xfe",
    ],
)
def test_anything_else_is_a_probe_error(data: object) -> None:
    with pytest.raises(probe.ProbeError):
        probe.decode(data)
