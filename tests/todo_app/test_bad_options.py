"""The todo app's options, refused with one line and exit code 2 before anything starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--provider", "nosuch"], "unknown provider 'nosuch' (known: ably, pusher, socketio, sse)"),
        (["--channels", "2"], "--channels: the todo app's events go to every reader on one channel"),
        (["--mutation-rate", "0"], "--mutation-rate must be between"),
        (["--mutations", "-1"], "--mutations must be between"),
        (["--api-delay-ms", "nan"], "--api-delay-ms must be a finite number"),
        (["--refetch", "sometimes"], "invalid choice: 'sometimes'"),
        (["--provider", "pusher", "--channel-type", "private"], "public channel 'todos': --channel-type public"),
        (["--api-base", "ftp://127.0.0.1:1"], "--api-base must be an http:// or https:// URL"),
        (["--api-base", "http://127.0.0.1:99999"], "--api-base must be an http:// or https:// URL"),
        (["--api-base", "http://127.0.0.1:1/?x=1"], "--api-base must be an http:// or https:// URL"),
        (["--todos-path", "api/todos"], "--todos-path must be a path starting with /"),
        (["--todos-path", "/api/to dos"], "--todos-path must be a path starting with /"),
        (["--app-event", "todo:created,,todo:updated"], "--app-event must be event names without spaces"),
        (["--app-event", "todo created"], "--app-event must be event names without spaces"),
        (["--mutation-mix", "1:1"], "--mutation-mix must be CREATE:UPDATE:DELETE whole numbers"),
        (["--mutation-mix", "0:1:1"], "--mutation-mix must be CREATE:UPDATE:DELETE whole numbers"),
        (["--mutation-mix", "1:x:1"], "--mutation-mix must be CREATE:UPDATE:DELETE whole numbers"),
        (["--stale-ms", "-1"], "--stale-ms must be between"),
        (["--refetch-jitter-ms", "inf"], "--refetch-jitter-ms must be a finite number"),
    ],
)
def test_bad_app_options_exit_2_with_one_line(args: list[str], fragment: str) -> None:
    cmd = [sys.executable, "-m", "locust", "-f", "scenarios/todo_app.py", "--headless", "-u", "1", "-t", "1s", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr
