"""Shared options are validated once, with one line saying what is wrong (issue 11, item 10)."""

from __future__ import annotations

import pytest

from harness.plugin import options
from tests.generators import provider_options


@pytest.mark.parametrize("flag", ["--publish-rate", "--drain-timeout", "--warmup", "--channels", "--payload-bytes"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_with_the_flag_named(flag: str, value: str) -> None:
    with pytest.raises(options.OptionError, match=f"^{flag} must be"):
        provider_options("socketio", "http://127.0.0.1:1", f"{flag}={value}")


def test_finite_numbers_pass_and_are_normalised() -> None:
    parsed = provider_options("socketio", "http://127.0.0.1:1", "--publish-rate", "2.5", "--warmup", "0")
    assert parsed.publish_rate == 2.5 and parsed.warmup == 0.0 and parsed.client == "lean"
