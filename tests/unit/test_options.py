"""Shared options are validated once, with one line saying what is wrong (issue 11, item 10)."""

from __future__ import annotations

from pathlib import Path

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


# -- provider options belong to the provider (issue 10) -------------------------------------------
def test_timestamp_field_is_an_sse_option_only() -> None:
    from harness.providers.sse import SSEProvider

    stamped = provider_options("sse", "http://127.0.0.1:1", "--timestamp-field", "meta.at:us")
    assert stamped.timestamp_field == "meta.at:us" and not SSEProvider.publishes(stamped)
    assert SSEProvider.publishes(provider_options("sse", "http://127.0.0.1:1"))
    with pytest.raises(SystemExit):  # argparse: unknown option for a provider without it
        provider_options("socketio", "http://127.0.0.1:1", "--timestamp-field", "timestamp")
    assert not hasattr(provider_options("pusher", "http://127.0.0.1:1"), "timestamp_field")


def test_a_bad_timestamp_field_is_refused_by_the_sse_spec() -> None:
    from harness.providers.base import ProviderConfigError

    with pytest.raises(ProviderConfigError, match="unit"):
        provider_options("sse", "http://127.0.0.1:1", "--timestamp-field", "t:weeks")


@pytest.mark.parametrize(
    ("provider", "default"),
    [("socketio", "message"), ("sse", "message"), ("pusher", "rtbench"), ("ably", "todo:created")],
)
def test_event_is_one_option_with_each_providers_default(provider: str, default: str) -> None:
    from harness import providers
    from harness.providers.base import ProviderConfigError

    assert provider_options(provider, "http://127.0.0.1:1").event == default
    assert provider_options(provider, "http://127.0.0.1:1", "--event", "my-event").event == "my-event"
    assert providers.load(provider).publishes(provider_options(provider, "http://127.0.0.1:1"))
    for bad in (" ", "two\nlines"):
        with pytest.raises(ProviderConfigError, match="--event"):
            provider_options(provider, "http://127.0.0.1:1", "--event", bad)


def test_ably_event_keeps_its_old_spelling() -> None:
    assert provider_options("ably", "http://127.0.0.1:1", "--ably-event", "todo:updated").event == "todo:updated"


# -- users and the run folder: refused before anything starts (issue 11 item 10) -------------------
@pytest.mark.parametrize("users", ["0", "-5"])
def test_fewer_than_one_user_is_refused(users: str) -> None:
    parsed = provider_options("socketio", "http://127.0.0.1:1")
    parsed.num_users = int(users)  # Locust's -u, which its own parser takes as any int
    with pytest.raises(options.OptionError) as refused:
        options.validate(parsed)
    assert str(refused.value) == f"-u/--users must be at least 1, got {users}"


def test_users_not_given_are_left_to_locust() -> None:
    parsed = provider_options("socketio", "http://127.0.0.1:1")
    parsed.num_users = None  # the web UI asks for them
    options.validate(parsed)
    parsed.num_users = 1
    options.validate(parsed)


def test_a_report_dir_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("")
    with pytest.raises(options.OptionError) as refused:
        provider_options("socketio", "http://127.0.0.1:1", "--report-dir", str(path))
    assert str(refused.value) == f"run folder {path}: exists and is not a folder"


def test_a_report_dir_that_cannot_be_created_is_refused_in_one_line() -> None:
    with pytest.raises(options.OptionError) as refused:
        provider_options("socketio", "http://127.0.0.1:1", "--report-dir", "/proc/x")
    assert str(refused.value) == "run folder /proc/x: cannot create or write it (No such file or directory)"


def test_a_report_dir_below_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    below = tmp_path / "a-file" / "run"
    with pytest.raises(options.OptionError) as refused:
        provider_options("socketio", "http://127.0.0.1:1", "--report-dir", str(below))
    assert str(refused.value) == f"run folder {below}: cannot create or write it (Not a directory)"


def test_a_report_dir_is_created_when_checked(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "one"
    provider_options("socketio", "http://127.0.0.1:1", "--report-dir", str(folder))
    assert folder.is_dir() and list(folder.iterdir()) == []  # the write probe left nothing behind
