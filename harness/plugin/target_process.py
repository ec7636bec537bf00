"""Targets for a run: start the reference server when no --host is given, or check the given one.

A user who types ``locust -f scenarios/socketio.py`` gets a working run with nothing else running; a
user who mistypes a host learns it in seconds with one line, not from a thousand connect errors.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import time

from harness.net.endpoint import Endpoint
from targets.parent import PARENT_ENV

READY_PREFIX = "rtbench-target "
START_TIMEOUT_S = 20.0
REACH_TIMEOUT_S = 3.0


class TargetError(RuntimeError):
    """The target cannot be used; the message is one line for the user."""


class EmbeddedTarget:
    """A reference target subprocess on a free loopback port, stopped when this process exits. It can be
    killed and started again on the same port (``rtbench check``: a server crash and its restart)."""

    def __init__(self, module: str, extra_args: list[str] | None = None) -> None:
        self.module = module
        self.extra_args = list(extra_args or [])
        self.port = 0
        atexit.register(self.stop)
        self.url = self.start()

    def start(self) -> str:
        """Start the target (on the port it had, after a kill) and return its URL once it listens."""
        cmd = [sys.executable, "-m", self.module, "--host", "127.0.0.1", "--port", str(self.port), *self.extra_args]
        # its own process group: a terminal's Ctrl-C stops the run, which drains against a live target and
        # then stops it; the parent's pid lets the target follow the run if the run is killed outright
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env, process_group=0)
        url = self._await_ready()
        self.port = Endpoint.parse(url).port
        return url

    def _await_ready(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                return line.rsplit(" ", 1)[-1].strip()
        self.stop()
        raise TargetError(f"embedded target {self.module} did not start (exit code {self.process.returncode})")

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to its clients, which find their connections gone."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def check_reachable(url: str, schemes: tuple[str, ...]) -> None:
    """Fail fast on a wrong scheme or a host nobody listens on."""
    try:
        endpoint = Endpoint.parse(url, schemes)
    except ValueError as exc:
        raise TargetError(f"--host: {exc}") from None
    try:
        with contextlib.closing(socket.create_connection((endpoint.host, endpoint.port), timeout=REACH_TIMEOUT_S)):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise TargetError(f"cannot reach {endpoint.netloc} ({reason})") from None
