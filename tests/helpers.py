"""Test helpers shared across suites: start a target as a subprocess and learn its URL.

Every target (``python -m targets.<name>``, or a Node fixture server) prints one ready line
``rtbench-target <name> listening http://HOST:PORT`` once bound; starting on port 0 and reading that
line is how tests run in parallel without port clashes and without sleeping.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / "tests" / "node"
READY_RE = re.compile(r"^rtbench-target (?P<name>\S+) listening (?P<url>https?://\S+)$")

__all__ = [
    "NODE_DIR",
    "READY_RE",
    "REPO",
    "TargetProcess",
    "node_available",
    "running_target",
    "start_target",
]


class TargetProcess(subprocess.Popen[str]):
    """A Popen whose stdout/stderr are drained by threads (a full pipe would freeze the target)."""

    stdout_lines: list[str]
    stderr_lines: list[str]

    def stderr_text(self) -> str:
        return "".join(self.stderr_lines)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``. Returns the exit status."""
        if self.poll() is None:
            self.send_signal(signal.SIGTERM)
            try:
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.wait(timeout)
        return self.returncode


def _drain(stream: object, sink: list[str], ready: threading.Event | None, found: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line)
        if ready is not None and not ready.is_set():
            match = READY_RE.match(line.strip())
            if match:
                found.append(match["url"])
                ready.set()
    if ready is not None:
        ready.set()  # EOF: wake the waiter, which then sees no URL


def _command(module_or_cmd: str | Sequence[str], args: Sequence[str]) -> list[str]:
    if not isinstance(module_or_cmd, str):
        return [*module_or_cmd, *args]
    if module_or_cmd.endswith(".js"):
        script = Path(module_or_cmd)
        if not script.is_absolute():
            script = NODE_DIR / script if (NODE_DIR / script).exists() else REPO / script
        return ["node", str(script), *args]
    return [sys.executable, "-m", module_or_cmd, *args]


def start_target(
    module_or_cmd: str | Sequence[str],
    *args: str,
    timeout: float = 15.0,
    env: dict[str, str] | None = None,
) -> tuple[str, TargetProcess]:
    """Start a target and wait for its ready line -> (base URL, process).

    ``module_or_cmd``: a module (``"targets.socketio"`` -> ``python -m targets.socketio``), a Node script
    (``"socketio_broadcast_server.js"``, looked up in tests/node), or a full command (a list).
    The caller owns the process: ``proc.stop()`` (or use ``running_target``). Raises RuntimeError with the
    target's stderr if it exits or stays silent.
    """
    cmd = _command(module_or_cmd, args)
    proc = TargetProcess(
        cmd,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    proc.stdout_lines, proc.stderr_lines = [], []
    ready = threading.Event()
    found: list[str] = []
    threads = [
        threading.Thread(target=_drain, args=(stream, sink, event, found), daemon=True)
        for stream, sink, event in (
            (proc.stdout, proc.stdout_lines, ready),
            (proc.stderr, proc.stderr_lines, None),
        )
    ]
    for thread in threads:
        thread.start()
    if not ready.wait(timeout) or not found:
        proc.stop(timeout=2)
        for thread in threads:
            thread.join(1)  # collect the last stderr lines for the message
        raise RuntimeError(
            f"{' '.join(cmd)} did not report ready within {timeout}s "
            f"(exit status {proc.returncode}); stderr:\n{proc.stderr_text()}"
        )
    return found[0], proc


@contextmanager
def running_target(module_or_cmd: str | Sequence[str], *args: str, timeout: float = 15.0) -> Iterator[str]:
    """``with running_target("targets.socketio", "--port", "0") as url:``; stopped on exit."""
    url, proc = start_target(module_or_cmd, *args, timeout=timeout)
    try:
        yield url
    finally:
        proc.stop()


def node_available() -> bool:
    """True when the npm fixtures are installed (``npm ci`` in tests/node)."""
    return (NODE_DIR / "node_modules").is_dir()
