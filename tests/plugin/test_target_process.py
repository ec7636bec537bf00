"""The embedded target: started on a free port when no --host is given, stopped with the run; and a
given host checked in seconds with one line."""

from __future__ import annotations

import pytest

from harness.plugin.target_process import EmbeddedTarget, TargetError, check_reachable


def test_an_embedded_target_serves_until_stopped() -> None:
    target = EmbeddedTarget("targets.sse")
    try:
        assert target.url.startswith("http://127.0.0.1:")
        check_reachable(target.url, ("http", "https"))  # listening: no error
    finally:
        target.stop()
    assert target.process.returncode is not None  # it is gone, not orphaned
    with pytest.raises(TargetError, match=r"cannot reach 127\.0\.0\.1:\d+"):
        check_reachable(target.url, ("http", "https"))


def test_a_target_that_cannot_start_says_so() -> None:
    with pytest.raises(TargetError, match=r"embedded target targets\.no_such_target did not start \(exit code 1\)"):
        EmbeddedTarget("targets.no_such_target")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ws://127.0.0.1:1", "scheme must be one of http://, https://"),
        ("http://:80", "has no host name"),
        ("http://127.0.0.1:99999", "has an invalid port"),
    ],
)
def test_a_bad_host_is_one_line(url: str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason):
        check_reachable(url, ("http", "https"))
