"""A throwaway Debian ``redis-server`` on a free loopback port, for tests of nodes sharing one Redis.

``with redis_server() as redis: ... redis.url ...``: started without persistence in a temporary
directory, ready once it answers PING, stopped on exit. ``redis.stop()`` / ``redis.start()`` take it
away mid-test and bring it back on the same port (empty: nothing is saved), as an outage would.
Tests that need it call ``require_redis()`` first: a skip with the reason when it is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.infra import free_port

__all__ = ["REDIS_SERVER", "RedisServer", "redis_server", "require_redis"]

REDIS_SERVER = "/usr/bin/redis-server"
READY_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 5


def require_redis() -> str:
    """The redis-server binary, or skip the calling test saying how to get it."""
    found = REDIS_SERVER if Path(REDIS_SERVER).exists() else shutil.which("redis-server")
    if found is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    return found


def _pings(port: int) -> bool:
    """True when a Redis answers PING on the port now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process, restartable on the port it first got."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.directory = binary, directory
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start on ``self.port`` (a restart), or on a free port found now, retrying on a bind clash."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("redis-server is already running")
        fixed = self.port != 0
        for _ in range(1 if fixed else PORT_ATTEMPTS):
            port = self.port if fixed else free_port()
            if self._launch(port):
                self.port = port
                return
        raise RuntimeError(f"redis-server did not start; its log:\n{self.log()}")

    def _launch(self, port: int) -> bool:
        command = [
            self.binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # exited: most likely the port was taken meanwhile
                return False
            if _pings(port):
                return True
            time.sleep(0.01)  # polling a readiness condition, bounded by the deadline
        self.stop()
        return False

    def stop(self) -> None:
        """SIGTERM and wait: its clients see their connections close, as when Redis goes down."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A running redis-server on a free loopback port; skips the test if there is none to run."""
    binary = require_redis()
    with tempfile.TemporaryDirectory(prefix="rtbench-redis-") as directory:
        server = RedisServer(binary, Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()
