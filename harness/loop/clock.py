"""This process's clock identity: which host clock its send and arrival times are read from.

Latency is arrival minus due time, so both must come from one clock (DESIGN rule 3). Every process and
container on one host reads the same ``CLOCK_REALTIME`` and sees the same kernel boot id, so the boot id
names the clock: publishers tag their streams with it (``probe.stream_id``) and a subscriber on another
host keeps their deliveries apart. Without ``/proc`` (not Linux) the host name stands in for it.
"""

from __future__ import annotations

import hashlib
import re
import socket
from functools import cache
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
CLOCK_ID_CHARS = 8  # 32 bits of the boot id: two hosts of a run share a tag once in 4 billion; 9 bytes a message


@cache
def clock_id() -> str:
    """A short hex tag of this host's clock, the same in every process on the host."""
    return clock_id_from(_read_boot_id(), socket.gethostname())


def clock_id_from(boot_id: str, hostname: str) -> str:
    """The tag for a boot id (a UUID as the kernel writes it), or for the host name when there is none."""
    digits = re.sub(r"[^0-9a-f]", "", boot_id.lower())
    if not digits:
        digits = hashlib.sha256(hostname.encode()).hexdigest()
    return digits[:CLOCK_ID_CHARS]


def _read_boot_id() -> str:
    try:
        return BOOT_ID.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return ""
