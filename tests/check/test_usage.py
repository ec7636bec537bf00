"""Bad usage of ``rtbench check`` ends in one line on stderr and exit 2, before any server starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness import cli
from tests.infra import free_port


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> int:
    """A port nobody listens on: bound, then released."""
    return free_port()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("socketio", "--host", "http://127.0.0.1:{closed}"), "cannot reach 127.0.0.1:{closed}"),
        (("sse", "--host", "ftp://127.0.0.1:{closed}"), "--host"),
        (("pusher", "--host", "nonsense://x"), "--host"),
        (("nats",), "unknown provider 'nats'"),
        (("all", "--host", "http://127.0.0.1:{closed}"), "check all runs embedded targets"),
        (("sse", "--host", "http://127.0.0.1:{closed}", "--kill-cmd", "true"), "go together"),
        (("sse", "--restart-cmd", "true"), "give its --host too"),
        (("sse", "--host", "http://h:1", "--restart-cmd", "a", "--kill-cmd", "b", "--start-cmd", "c"), "not both"),
        (("socketio", "--budget-ms", "0"), "--budget-ms"),
        (("socketio", "--budget-ms", "nan"), "--budget-ms"),
        (("socketio", "--events", "0"), "--events"),
        (("socketio", "--target-args", "'unterminated"), "--target-args"),
        (("socketio", "--no-such-option"), "--no-such-option"),
        (("all", "--sse-path", "/x"), "need one provider"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    closed = str(closed_port())
    code, out, err = check(capsys, *(a.replace("{closed}", closed) for a in args))
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("rtbench") and fragment.replace("{closed}", closed) in lines[-1], err
    assert not lines[-1].startswith("Traceback") and "Traceback" not in err
    assert "PASS" not in out and "FAIL" not in out  # nothing ran


def test_a_closed_port_is_refused_before_any_item(capsys: pytest.CaptureFixture[str]) -> None:
    """The port is really closed: connecting to it is refused, and check says so in its one line."""
    port = closed_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    code, out, err = check(capsys, "socketio", "--host", f"http://127.0.0.1:{port}")
    assert (code, out) == (2, "")
    assert err.strip().count("\n") == 0 and "refused" in err.lower(), err


def test_an_output_path_that_is_a_folder_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = check(capsys, "socketio", "--json", str(tmp_path))
    assert code == 2 and "is a folder" in err, err


def test_help_lists_the_items_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["check", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for word in ("connection", "event", "reconnect", "offline", "performance", "--restart-cmd", "Exit status"):
        assert word in out
