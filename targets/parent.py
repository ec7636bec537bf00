"""An embedded target dies with the run that started it, whatever happens to that run.

rtbench starts its target in a process group of its own, so a terminal's Ctrl-C reaches only the run,
which then drains against a live target and stops it. If the run itself is killed (SIGKILL, a crash),
the kernel's parent-death signal ends the target instead of leaving it orphaned.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

#: set by the parent to its pid: the target must not outlive that process
PARENT_ENV = "RTBENCH_TARGET_PARENT"
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask for SIGTERM when the parent named in the environment dies (Linux); exit now if it already has."""
    wanted = os.environ.get(PARENT_ENV, "")
    if not wanted.isdigit():
        return  # started by hand: nobody to follow
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(wanted):  # the parent died before the request took effect
        raise SystemExit(0)
