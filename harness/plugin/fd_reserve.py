"""File descriptors put aside while a run goes, given back before it ends.

A run that opens more connections than the process may hold (EMFILE) would otherwise reach its end with
no descriptor left to import the report's modules or to write summary.json: the whole result lost for
a few connections too many. Holding some descriptors (``/dev/null``) from the start of a run and closing
them just before its finish leaves that room; the connections that failed are counted as any failure.
"""

from __future__ import annotations

import contextlib
import os

#: enough for the finish: imports read one file at a time, the run folder's files are written one by one
RESERVED = 64


class FdReserve:
    def __init__(self, size: int = RESERVED) -> None:
        self.size = size
        self._fds: list[int] = []

    @property
    def held(self) -> int:
        return len(self._fds)

    def hold(self) -> None:
        """Take up to ``size`` descriptors (fewer if the process has no more: nothing fails here)."""
        while len(self._fds) < self.size:
            try:
                self._fds.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                return

    def release(self) -> None:
        """Give every held descriptor back, for the finish to use."""
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


#: the process's reserve: held when a run starts (plugin/hooks.py), released before its files are written
RESERVE = FdReserve()
