"""Measuring from a timestamp the *server* puts in its events (``--timestamp-field``).

For servers you don't control and cannot publish to: latency = receive time - the server's stamp, so the
clock source is the server's (DESIGN rule 2: such numbers are kept apart and flagged). Self-contained:
a provider turns an event into a :class:`Stamped` delivery, and the recorder times it against the
server's stamp instead of a probe envelope's due time.

Field spec: ``PATH[:UNIT]`` where PATH is a dotted path into the event's JSON data (``timestamp``,
``meta.sent_at``; a list index is a number: ``items.0.ts``) and UNIT is one of s, ms (default), us, ns,
or iso (an ISO 8601 string; a trailing ``Z`` is accepted).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["UNITS", "FieldSpec", "SequenceGuess", "Stamped", "TimestampError", "parse_spec"]

UNITS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
"""Nanoseconds per unit; ``iso`` is handled apart."""


class TimestampError(ValueError):
    """The event carries no usable timestamp (the message is the reason a user reads)."""


@dataclass(frozen=True, slots=True)
class Stamped:
    """A delivery timed against the server's clock. ``seq`` is set when the server's ids are integers."""

    sent_ns: int
    stream: str
    seq: int | None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    path: tuple[str, ...]
    unit: str

    def extract_ns(self, data: str) -> int:
        """The stamp in ``data`` (JSON text) as Unix nanoseconds."""
        try:
            value: Any = json.loads(data)
        except ValueError:
            raise TimestampError("event data is not JSON") from None
        for key in self.path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                raise TimestampError(f"event data has no field {'.'.join(self.path)!r}")
        if self.unit == "iso":
            if not isinstance(value, str):
                raise TimestampError(f"timestamp {value!r} is not an ISO 8601 string")
            try:
                stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise TimestampError(f"timestamp {value[:40]!r} is not ISO 8601") from None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            delta = stamp - datetime(1970, 1, 1, tzinfo=UTC)
            return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise TimestampError(f"timestamp {value[:40]!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TimestampError(f"timestamp {value!r} is not a number")
        ns = value * UNITS[self.unit] if isinstance(value, int) else round(value * UNITS[self.unit])
        if ns <= 0:
            raise TimestampError(f"timestamp {value!r} is not positive")
        return ns


def parse_spec(text: str) -> FieldSpec:
    """``timestamp`` / ``meta.ts:us`` / ``sent_at:iso`` -> FieldSpec; ValueError with a one-line reason."""
    path_text, _, unit = text.strip().rpartition(":") if ":" in text else (text.strip(), "", "ms")
    unit = unit.strip().lower() or "ms"
    if unit not in UNITS and unit != "iso":
        raise ValueError(f"--timestamp-field unit must be one of {', '.join([*UNITS, 'iso'])}, got {unit!r}")
    path = tuple(part for part in path_text.strip().split("."))
    if not path or any(not part for part in path):
        raise ValueError(f"--timestamp-field {text!r} is not a dotted field path")
    return FieldSpec(path, unit)


class SequenceGuess:
    """Decides whether a server's event ids are sequential integers, so gaps can count as losses.

    Until the ids disprove it (a non-integer), every id is offered as a sequence number; afterwards
    deliveries are counted only (``seq`` None), as the issue asks for servers with opaque ids.
    """

    def __init__(self) -> None:
        self.sequential = True

    def seq(self, event_id: str) -> int | None:
        if not self.sequential:
            return None
        if event_id.isascii() and event_id.isdigit():
            return int(event_id)
        self.sequential = False
        return None
