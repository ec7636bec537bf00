"""The todo-app scenario's provider choice, read before Locust parses the command line."""

from __future__ import annotations

import pytest

from harness.plugin.options import provider_from_argv  # no Locust here: pytest collects in one process


@pytest.mark.parametrize(
    ("argv", "name"),
    [([], "socketio"), (["--provider", "sse"], "sse"), (["-u", "3", "--provider=ably"], "ably")],
)
def test_the_provider_is_read_from_the_command_line(argv: list[str], name: str) -> None:
    assert provider_from_argv(argv) == name
