"""Shared fixtures for the Ably suites: the reference target on port 0, with a test key and the local key."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from targets.ably import DEFAULT_KEY
from tests.helpers import TargetProcess, start_target

TEST_KEY = "testapp.k1:s3cr3t-never-printed"
__all__ = ["DEFAULT_KEY", "TEST_KEY", "Target"]


class Target:
    def __init__(self, url: str, proc: TargetProcess) -> None:
        self.url, self.proc = url, proc
        self.port = int(urlsplit(url).port or 0)
        self.ws_url = url.replace("http://", "ws://", 1) + "/"


@pytest.fixture
def target() -> Iterator[Target]:
    url, proc = start_target(
        "targets.ably",
        "--port",
        "0",
        "--key",
        TEST_KEY,
        "--key",
        DEFAULT_KEY,
        "--max-message-size",
        "4096",
        "--max-idle-ms",
        "400",
    )
    try:
        yield Target(url, proc)
    finally:
        proc.stop()
