"""A Node fixture server run as a user's own server: started, killed and restarted only through the shell
scripts in tests/node, which is how ``rtbench check --host`` meets it (``--restart-cmd``, ``--kill-cmd``,
``--start-cmd``)."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import NODE_DIR
from tests.infra import free_port

START = NODE_DIR / "start_server.sh"
KILL = NODE_DIR / "kill_server.sh"
RESTART = NODE_DIR / "restart_server.sh"
#: start_server.sh gives a server this long to answer /healthz; the test's own bound is above it
START_TIMEOUT_S = 15
#: a port taken between free_port() and the server's bind: start again on another one, this many times
_PORT_TRIES = 3


@dataclass(frozen=True)
class ExternalServer:
    script: Path
    port: int
    pidfile: Path
    logfile: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self, script: Path, *args: Path | int) -> str:
        return shlex.join([str(script), *map(str, args)])

    @property
    def start_cmd(self) -> str:
        return self._command(START, self.script, self.port, self.pidfile, self.logfile)

    @property
    def restart_cmd(self) -> str:
        return self._command(RESTART, self.script, self.port, self.pidfile, self.logfile)

    @property
    def kill_cmd(self) -> str:
        return self._command(KILL, self.pidfile)

    def pid(self) -> int:
        """The running server's pid, as the last start wrote it."""
        return int(self.pidfile.read_text())

    def log(self) -> str:
        """Everything every start of the server printed."""
        return self.logfile.read_text() if self.logfile.exists() else ""

    def run(self, command: str, timeout: float = START_TIMEOUT_S + 10) -> subprocess.CompletedProcess[str]:
        """Run one of the commands as rtbench does (``sh -c``), its output captured."""
        return subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )


@contextmanager
def external_server(script: str | Path) -> Iterator[ExternalServer]:
    """Start ``script`` (a path, or a file name in tests/node) on a free port through start_server.sh; the
    server is killed at exit whatever happened, even if a test restarted it."""
    path = Path(script) if Path(script).is_absolute() else NODE_DIR / script
    with tempfile.TemporaryDirectory(prefix="rtbench-external-") as folder:
        tries: list[str] = []
        for _ in range(_PORT_TRIES):
            server = ExternalServer(path, free_port(), Path(folder) / "server.pid", Path(folder) / "server.log")
            started = server.run(server.start_cmd)
            if started.returncode == 0:
                break
            tries.append(started.stderr.strip() or started.stdout.strip())
            if "EADDRINUSE" not in tries[-1]:
                raise RuntimeError(f"{server.start_cmd} failed: {tries[-1]}")
        else:
            raise RuntimeError(f"{path.name} found no free port: {tries}")
        try:
            yield server
        finally:
            if server.pidfile.exists():
                server.run(server.kill_cmd)
