"""Fixtures of the checklist tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import TargetProcess, start_target


@pytest.fixture
def server() -> Iterator[tuple[str, TargetProcess]]:
    """A Socket.IO reference target the test owns, as a user's own server (``--host``): (URL, process)."""
    url, proc = start_target("targets.socketio", "--port", "0")
    try:
        yield url, proc
    finally:
        proc.stop()
