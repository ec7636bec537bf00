"""The probe envelope: what every published message carries so a subscriber can time and account it.

Text, not JSON, so it survives any provider that forwards a string untouched, and so decoding on the
hot path is one ``split``. Layout: ``rtb1|<run>|<publisher>|<seq>|<due_ns>|<padding>``.

The publisher field is a stream id, ``<publisher>.<channel>@<clock>``: the clock tag names the host clock
the due time was read from (the kernel's boot id, shared by every process and container on one host), so a
subscriber knows when it arrives whether its own clock can time it (DESIGN rule 3). A stream id without
a tag (``stream_id(..., clock="")``) is taken to share the subscriber's clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAGIC = "rtb1"
_SEP = "|"
CLOCK_SEP = "@"
_MIN_LEN = len(MAGIC) + 5


class ProbeError(ValueError):
    """Raised for data that is not a probe envelope (counted as an error by the recorder)."""


@dataclass(frozen=True, slots=True)
class Probe:
    run_id: str
    publisher_id: str
    seq: int
    due_ns: int


def encode(run_id: str, publisher_id: str, seq: int, due_ns: int, size: int = 0) -> str:
    """Envelope padded with ``x`` to ``size`` characters (ASCII, so characters == bytes)."""
    head = f"{MAGIC}|{run_id}|{publisher_id}|{seq}|{due_ns}|"
    pad = size - len(head)
    return head + "x" * pad if pad > 0 else head


def decode(data: object) -> Probe:
    """Parse an envelope; anything else raises ProbeError with a short reason."""
    if isinstance(data, bytes | bytearray):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ProbeError("payload is not ASCII") from exc
    if not isinstance(data, str):
        raise ProbeError(f"payload is {type(data).__name__}, not a probe string")
    if len(data) < _MIN_LEN or not data.startswith(MAGIC + _SEP):
        raise ProbeError("payload is not a probe envelope")
    parts = data.split(_SEP, 5)
    if len(parts) != 6:
        raise ProbeError("probe envelope is truncated")
    try:
        seq = int(parts[3])
        due_ns = int(parts[4])
    except ValueError as exc:
        raise ProbeError("probe envelope has a non-numeric field") from exc
    if seq < 0 or due_ns <= 0:
        raise ProbeError("probe envelope has an out-of-range field")
    return Probe(parts[1], parts[2], seq, due_ns)


def carried(data: object) -> object:
    """The envelope an app event carries in its ``probe`` field (the reference targets' ``/api/todos``
    events, targets/todos.py: an object, or its JSON text); anything else is returned as it is, for
    ``decode`` to judge."""
    if isinstance(data, str | bytes | bytearray) and data[:1] in ("{", b"{"):
        try:
            data = json.loads(data)
        except ValueError:
            return data
    if isinstance(data, dict):
        return data.get("probe")
    return data


def stream_id(publisher: str, channel_index: int, clock: str) -> str:
    """One publisher's stream on its ``channel_index``-th channel, tagged with its ``clock``."""
    base = f"{publisher}.{channel_index}"
    return f"{base}{CLOCK_SEP}{clock}" if clock else base


def clock_of(stream: str) -> str:
    """The clock tag of a stream id; '' when it has none."""
    _, sep, clock = stream.rpartition(CLOCK_SEP)
    return clock if sep else ""


def channel_name(index: int) -> str:
    """The channel (room, stream) a generator's ``index``-th subscriber and publisher share."""
    return f"rtbench-{index}"
