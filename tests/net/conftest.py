"""Transport tests need the kernel's receive timestamps switched on before their first connection."""

from __future__ import annotations

import pytest

from harness.net.stream import timestamps_ready


@pytest.fixture(scope="session", autouse=True)
def kernel_timestamps() -> None:
    # Linux switches receive stamping on later, from a work queue: without this, a test's first read can
    # come unstamped (and between tests, with every socket closed, it would switch off again).
    assert timestamps_ready(), "the kernel gives no SO_TIMESTAMPNS stamps on loopback"
