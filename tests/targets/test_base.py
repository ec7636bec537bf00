"""targets.base without sockets: fault decisions, the delay line, CLI validation."""

from __future__ import annotations

import asyncio
import time

import pytest

from targets.base import DelayLine, Faults, url_for


def test_faults_inactive_by_default_and_draw_nothing() -> None:
    faults = Faults()
    assert not faults.active
    assert faults.delay_s == 0
    assert not any(faults.drop() or faults.corrupt() for _ in range(1000))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop_rate": 1.01}, "--drop-rate must be between 0 and 1"),
        ({"drop_rate": float("nan")}, "--drop-rate must be between 0 and 1"),
        ({"corrupt_rate": -0.5}, "--corrupt-rate must be between 0 and 1"),
        ({"delay_ms": -1.0}, "--delay-ms must be a finite number >= 0"),
        ({"delay_ms": float("inf")}, "--delay-ms must be a finite number >= 0"),
    ],
)
def test_faults_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**kwargs)  # type: ignore[arg-type]


def test_faults_are_seeded_and_calibrated() -> None:
    a, b = Faults(drop_rate=0.25, seed=7), Faults(drop_rate=0.25, seed=7)
    draws = [a.drop() for _ in range(20_000)]
    assert draws == [b.drop() for _ in range(20_000)]
    assert abs(sum(draws) / len(draws) - 0.25) < 0.02
    assert Faults(delay_ms=20).active and Faults(delay_ms=20).delay_s == pytest.approx(0.02)
    assert all(Faults(drop_rate=1).drop() for _ in range(100))
    assert all(Faults(corrupt_rate=1).corrupt() for _ in range(100))


def test_delay_line_keeps_order_and_never_fires_early() -> None:
    async def scenario() -> list[tuple[int, float]]:
        line = DelayLine(0.03)
        fired: list[tuple[int, float]] = []
        done = asyncio.Event()
        queued: list[float] = []
        for i in range(200):
            queued.append(time.monotonic())

            def cb(i: int = i) -> None:
                fired.append((i, time.monotonic() - queued[i]))
                if len(fired) == 200:
                    done.set()

            line.call(cb)
        await asyncio.wait_for(done.wait(), 5)
        assert len(line) == 0
        return fired

    fired = asyncio.run(scenario())
    assert [i for i, _ in fired] == list(range(200))
    assert min(delay for _, delay in fired) >= 0.03


def test_url_for_brackets_ipv6() -> None:
    assert url_for("127.0.0.1", 80) == "http://127.0.0.1:80"
    assert url_for("::1", 3001) == "http://[::1]:3001"
