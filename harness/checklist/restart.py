"""How the reconnect item kills a server and starts it again: rtbench's own embedded target (same port),
the user's shell commands for their own server, or not at all (the item is then skipped, with why)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from abc import ABC, abstractmethod
from typing import IO

from harness.plugin.target_process import EmbeddedTarget

#: how much of a failed command's output a result line quotes
_TAIL_CHARS = 200


class RestartError(RuntimeError):
    """The server could not be killed or started; the message is the reason a result line gives."""


class Restarter(ABC):
    #: None when it can restart the server, else why the reconnect item is skipped
    unavailable: str | None = None

    @abstractmethod
    async def restart(self) -> None:
        """Kill the server and start it again on the same address; raises RestartError."""


class NoRestart(Restarter):
    unavailable = "no way to restart an external server: give --restart-cmd, or --kill-cmd and --start-cmd"

    async def restart(self) -> None:
        raise RestartError(self.unavailable or "")


class EmbeddedRestart(Restarter):
    """SIGKILL the embedded target (a crash: no goodbye) and start it again on its port."""

    def __init__(self, target: EmbeddedTarget) -> None:
        self.target = target

    async def restart(self) -> None:
        def crash_and_start() -> None:
            self.target.kill()
            self.target.start()

        try:
            await asyncio.to_thread(crash_and_start)
        except Exception as exc:
            raise RestartError(f"the embedded target did not come back: {exc}") from None


class CommandRestart(Restarter):
    """The user's commands (``sh -c``), each bounded by ``timeout_s``: one restart command, or a kill then
    a start."""

    def __init__(self, commands: list[tuple[str, str]], timeout_s: float) -> None:
        self.commands = commands  # (flag, command): the flag names it in a failure line
        self.timeout_s = timeout_s

    async def restart(self) -> None:
        for flag, command in self.commands:
            await self._run(flag, command)

    async def _run(self, flag: str, command: str) -> None:
        # Output goes to a file, not a pipe: a start command that leaves the server running in the
        # background (``node server.js &``) would hold a pipe open and look like a command that never ends.
        with tempfile.TemporaryFile() as output:
            process = await asyncio.create_subprocess_shell(
                command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a timeout kills the command and whatever it started in the foreground
            )
            try:
                await asyncio.wait_for(process.wait(), self.timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
                raise RestartError(f"{flag} did not finish within {self.timeout_s:g} s") from None
            if process.returncode != 0:
                raise RestartError(f"{flag} exited with status {process.returncode}{_last_line(output)}")


def _last_line(output: IO[bytes]) -> str:
    """``": <the command's last line of output>"``, or nothing when it printed nothing."""
    output.seek(0)
    lines = output.read().decode(errors="replace").strip().splitlines()
    return f": {lines[-1][-_TAIL_CHARS:]}" if lines else ""


def restarter_for(
    target: EmbeddedTarget | None,
    restart_cmd: str | None,
    kill_cmd: str | None,
    start_cmd: str | None,
    timeout_s: float,
) -> Restarter:
    if restart_cmd:
        return CommandRestart([("--restart-cmd", restart_cmd)], timeout_s)
    if kill_cmd and start_cmd:
        return CommandRestart([("--kill-cmd", kill_cmd), ("--start-cmd", start_cmd)], timeout_s)
    if target is not None:
        return EmbeddedRestart(target)
    return NoRestart()
