"""The fault plan every target applies to its fan-out: drop, corrupt, delay (DESIGN.md, measurement rule 6),
and what becomes of a replayed offline mutation (``--replay-fault``).

Written once so the four targets cannot drift apart: a seeded run makes the same decisions in the same
order whichever protocol carries the deliveries, and the harness can compare their loss and error counts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["CORRUPT_PAYLOAD", "REPLAY_FAULTS", "REPLAY_SUFFIX", "DelayLine", "FaultPlan", "Faults"]

log = logging.getLogger("targets")

CORRUPT_PAYLOAD = "\x00not-an-envelope"
"""What a corrupted delivery carries instead of the data: valid for the transport, but not a probe
envelope, so the harness must count it as an error (never as a delivery)."""

REPLAY_SUFFIX = "|replay"
"""How a replayed offline mutation's payload ends (``rtbench check``'s offline item marks its queue so:
harness/checklist/clients.py REPLAY_MARK; the targets do not import the harness)."""

REPLAY_FAULTS = ("none", "drop", "duplicate")
"""``--replay-fault``: replayed mutations fanned out once (none), never (drop) or twice (duplicate)."""

_REPLAY_BYTES = REPLAY_SUFFIX.encode()

R = TypeVar("R")
"""A recipient (a connection, a stream, an engine.io sid)."""
F = TypeVar("F")
"""What is written to a recipient (a frame, prepared packets)."""


def _rate(flag: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{flag} must be between 0 and 1")
    return value


@dataclass
class Faults:
    """Per-delivery fault decisions. One seeded RNG, drawn in delivery order, so a run is reproducible."""

    delay_ms: float = 0.0
    drop_rate: float = 0.0
    corrupt_rate: float = 0.0
    seed: int | None = None
    replay_fault: str = "none"
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay_ms) and self.delay_ms >= 0):
            raise ValueError("--delay-ms must be a finite number >= 0")
        _rate("--drop-rate", self.drop_rate)
        _rate("--corrupt-rate", self.corrupt_rate)
        if self.replay_fault not in REPLAY_FAULTS:
            raise ValueError(f"--replay-fault must be one of {', '.join(REPLAY_FAULTS)}")
        self._rng = random.Random(self.seed)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Faults:
        return cls(
            delay_ms=args.delay_ms,
            drop_rate=args.drop_rate,
            corrupt_rate=args.corrupt_rate,
            seed=args.seed,
            replay_fault=args.replay_fault,
        )

    @property
    def active(self) -> bool:
        """True when any fault is configured: targets then take their slower per-recipient path."""
        return self.delay_ms > 0 or self.drop_rate > 0 or self.corrupt_rate > 0

    @property
    def delay_s(self) -> float:
        return self.delay_ms / 1000.0

    def drop(self) -> bool:
        """Should this delivery be dropped? Draws nothing when dropping is off (keeps seeds comparable)."""
        return self.drop_rate > 0 and self._rng.random() < self.drop_rate

    def corrupt(self) -> bool:
        """Should this delivery carry CORRUPT_PAYLOAD instead of its data?"""
        return self.corrupt_rate > 0 and self._rng.random() < self.corrupt_rate

    def copies(self, payload: object) -> int:
        """How many times to fan out a published message whose payload (the string its publisher sent) is
        ``payload``: 1, but a replayed offline mutation (ending with ``|replay``) 0 under
        ``--replay-fault drop`` and 2 under ``duplicate``. Decided once per publish, before the per-recipient
        faults, so the answer to the publisher never changes: only what subscribers get does."""
        if self.replay_fault == "none":
            return 1
        if isinstance(payload, str):
            replayed = payload.endswith(REPLAY_SUFFIX)
        elif isinstance(payload, bytes | bytearray):
            replayed = payload.endswith(_REPLAY_BYTES)
        else:
            return 1
        if not replayed:
            return 1
        return 0 if self.replay_fault == "drop" else 2


class DelayLine:
    """Runs callbacks ``delay_s`` after they are queued, strictly in queue order, with one timer.

    A timer per delivery would not keep order (timers due at the same instant may fire in any order)
    and awaiting sleeps one after another would add the delays up. Due times use time.monotonic(),
    not loop.time() (uvloop's has 1 ms resolution), so no callback ever runs before its delay.
    """

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._queue: deque[tuple[float, Callable[[], object]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def call(self, callback: Callable[[], object]) -> None:
        """Schedule ``callback()`` to run ``delay_s`` from now, after everything queued before it."""
        self._queue.append((time.monotonic() + self.delay_s, callback))
        if self._timer is None:
            self._arm()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()

    def _arm(self) -> None:
        wait = self._queue[0][0] - time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(wait, 0.0), self._release)

    def _release(self) -> None:
        self._timer = None
        queue = self._queue
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, callback = queue.popleft()
            try:
                callback()
            except Exception:
                log.exception("delayed delivery failed")
        if queue:  # not due yet (the timer fired early, or more was queued): wait again
            self._arm()


class FaultPlan(Generic[R, F]):
    """One target's fan-out under its faults: which recipient gets what, and when.

    ``send`` decides every recipient's fate at publish time, in recipient order (one RNG draw sequence,
    so a seeded run is reproducible), then hands the whole plan to ``deliver`` at once: now, or after the
    delay on one DelayLine, which keeps publish order. A fan-out never awaits, so concurrent publishes
    cannot interleave. The corrupted payload is built at most once per publish, and only when needed.
    """

    def __init__(self, faults: Faults, deliver: Callable[[list[tuple[R, F]]], object]) -> None:
        self.faults = faults
        self._deliver = deliver
        self._delay = DelayLine(faults.delay_s) if faults.delay_ms > 0 else None

    def decide(self, recipients: Sequence[R], good: F, corrupted: Callable[[], F]) -> list[tuple[R, F]]:
        """(recipient, payload) for every delivery that is not dropped; ``corrupted()`` is called once at most."""
        if not self.faults.active:
            return [(r, good) for r in recipients]
        faults = self.faults
        bad: list[F] = []
        plan: list[tuple[R, F]] = []
        for recipient in recipients:
            if faults.drop():
                continue
            if faults.corrupt():
                if not bad:
                    bad.append(corrupted())
                plan.append((recipient, bad[0]))
            else:
                plan.append((recipient, good))
        return plan

    def send(self, recipients: Sequence[R], good: F, corrupted: Callable[[], F]) -> int:
        """Fan ``good`` out to ``recipients`` under the faults. Returns the recipients at publish time
        (drops not subtracted: the harness counts losses from what arrives)."""
        plan = self.decide(recipients, good, corrupted)
        if self._delay is None:
            self._deliver(plan)
        elif plan:
            self._delay.call(lambda: self._deliver(plan))
        return len(recipients)

    @property
    def pending(self) -> int:
        """Publishes waiting on the delay line."""
        return 0 if self._delay is None else len(self._delay)

    def cancel(self) -> None:
        """Shutdown: forget what is still delayed."""
        if self._delay is not None:
            self._delay.cancel()
