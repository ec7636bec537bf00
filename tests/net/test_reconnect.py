"""The shared reconnect driver, with a scripted connect coroutine and the waits between attempts recorded.

The driver's waits go through a recording stand-in for ``asyncio.sleep`` (patched into the module only), so
the delays are checked exactly and the tests take no time.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.net import reconnect
from harness.net.reconnect import Backoff, GiveUp, Reconnector


class Waits:
    """Stands in for ``asyncio.sleep`` inside the reconnect module: records each wait, yields once."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.hold: asyncio.Event | None = None  # when set up, a wait blocks until released
        self.waiting = asyncio.Event()  # set once the driver started a wait

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.waiting.set()
        if self.hold is not None:
            await self.hold.wait()
        await asyncio.sleep(0)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Waits]:
    recorder = Waits()
    public = {name: getattr(asyncio, name) for name in dir(asyncio) if not name.startswith("_")}
    patched = types.SimpleNamespace(**public)
    patched.sleep = recorder.sleep
    monkeypatch.setattr(reconnect, "asyncio", patched)
    yield recorder


DEFAULT_BACKOFF = Backoff(1.0, 8.0, 2.0)


class Script:
    """A fake connect: each attempt takes the next outcome (None: success, an exception: raised, a callable:
    called and then success) and records itself; the driver's reports are recorded too."""

    def __init__(self, *outcomes: BaseException | Callable[[], None] | None) -> None:
        self.outcomes = list(outcomes)
        self.attempts = 0
        self.drops = 0
        self.backs: list[int] = []
        self.give_ups: list[str] = []
        self.done = asyncio.Event()

    async def connect(self) -> None:
        self.attempts += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            outcome()

    def on_drop(self) -> None:
        self.drops += 1

    def on_back(self, took_ns: int) -> None:
        self.backs.append(took_ns)
        self.done.set()

    def on_give_up(self, reason: str) -> None:
        self.give_ups.append(reason)
        self.done.set()

    def reconnector(self, backoff: Backoff = DEFAULT_BACKOFF, timeout_s: float = 5.0) -> Reconnector:
        return Reconnector(
            self.connect,
            backoff=backoff,
            timeout_s=timeout_s,
            on_drop=self.on_drop,
            on_back=self.on_back,
            on_give_up=self.on_give_up,
        )


def run(main: Callable[[], Any]) -> Any:
    return asyncio.run(asyncio.wait_for(main(), 2))


# -- Backoff ---------------------------------------------------------------------------------------
def test_backoff_grows_by_its_factor_and_caps() -> None:
    assert [Backoff(0.5, 5.0, 2.0).delay(i) for i in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert [Backoff(1.0, 5.0, 1.5).delay(i) for i in range(3)] == [1.0, 1.5, 2.25]


def test_backoff_after_thousands_of_attempts_stays_at_the_cap() -> None:
    assert Backoff(0.5, 5.0, 2.0).delay(5000) == 5.0  # 2.0 ** 5000 would overflow a float


def test_backoff_without_growth() -> None:
    assert Backoff(1.0, 5.0, 1.0).delay(10) == 1.0
    assert Backoff(0.0, 5.0, 2.0).delay(10) == 0.0


# -- Reconnector -----------------------------------------------------------------------------------
def test_comes_back_after_failures_with_growing_capped_delays(waits: Waits) -> None:
    async def main() -> None:
        failure = ConnectionRefusedError("refused")
        script = Script(failure, failure, failure, failure, failure, None)
        driver = script.reconnector(Backoff(1.0, 8.0, 2.0))
        driver.lost("server went away")
        assert driver.reconnecting
        await script.done.wait()
        assert waits.delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
        assert script.attempts == 6
        assert script.drops == 1
        assert len(script.backs) == 1 and script.give_ups == []
        assert not driver.reconnecting  # done as soon as it reported

    run(main)


def test_on_back_gets_the_time_from_loss_to_return(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1_000_000_000, 1_250_000_000])
    monkeypatch.setattr(time, "perf_counter_ns", lambda: next(clock))

    async def main() -> None:
        script = Script(None)
        script.reconnector(Backoff(0.0, 0.0)).lost("dropped")
        await script.done.wait()
        assert script.backs == [250_000_000]

    run(main)


def test_a_real_wait_is_in_the_duration() -> None:
    async def main() -> None:
        script = Script(ConnectionResetError("reset"), None)
        script.reconnector(Backoff(0.01, 0.02)).lost("dropped")  # waits 10 ms, then 20 ms
        await script.done.wait()
        assert script.backs[0] >= 30_000_000

    run(main)


def test_first_delay_can_be_given_by_the_protocol(waits: Waits) -> None:
    async def main() -> None:
        script = Script(OSError("down"), None)
        script.reconnector(Backoff(1.0, 8.0)).lost("server asked us to wait", first_delay_s=3.5)
        await script.done.wait()
        assert waits.delays == [3.5, 2.0]  # then the backoff from its second step

    run(main)


def test_give_up_stops_with_the_reason(waits: Waits) -> None:
    async def main() -> None:
        script = Script(OSError("down"), GiveUp("4001: application does not exist"), None)
        driver = script.reconnector()
        driver.lost("dropped")
        await script.done.wait()
        assert script.give_ups == ["4001: application does not exist"]
        assert script.attempts == 2 and script.backs == []
        assert not driver.reconnecting
        assert waits.delays == [1.0, 2.0]

    run(main)


def test_close_stops_a_pending_reconnect(waits: Waits) -> None:
    async def main() -> None:
        waits.hold = asyncio.Event()  # every wait blocks: the reconnect stays pending
        script = Script(None)
        driver = script.reconnector()
        driver.lost("dropped")
        await waits.waiting.wait()  # the driver is now waiting to try
        await driver.close()
        assert not driver.reconnecting
        assert script.attempts == 0 and script.backs == [] and script.give_ups == []
        driver.lost("a late report from the old connection")
        assert script.drops == 1 and not driver.reconnecting

    run(main)


def test_close_during_an_attempt_reports_nothing(waits: Waits) -> None:
    async def main() -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow_connect() -> None:
            entered.set()
            await release.wait()

        script = Script()
        driver = Reconnector(
            slow_connect,
            backoff=Backoff(0.0, 0.0),
            timeout_s=5.0,
            on_drop=script.on_drop,
            on_back=script.on_back,
            on_give_up=script.on_give_up,
        )
        driver.lost("dropped")
        await entered.wait()
        await driver.close()
        assert script.backs == [] and not driver.reconnecting

    run(main)


def test_a_connection_lost_during_the_attempt_is_a_failed_attempt(waits: Waits) -> None:
    async def main() -> None:
        script = Script()
        driver = script.reconnector(Backoff(1.0, 8.0))
        # first attempt: the new connection dies before the attempt returns; second: fine
        script.outcomes = [lambda: driver.lost("died while subscribing"), None]
        driver.lost("dropped")
        await script.done.wait()
        assert script.attempts == 2
        assert script.drops == 1  # one drop: the death during the attempt is part of coming back
        assert waits.delays == [1.0, 2.0]  # counted as a failure: the backoff grew
        assert len(script.backs) == 1

    run(main)


def test_an_attempt_that_times_out_is_a_failed_attempt(waits: Waits) -> None:
    async def main() -> None:
        hangs = asyncio.Event()
        calls = 0

        async def connect() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                await hangs.wait()  # never set: this attempt hangs

        script = Script()
        driver = Reconnector(
            connect,
            backoff=Backoff(0.0, 0.0),
            timeout_s=0.01,
            on_drop=script.on_drop,
            on_back=script.on_back,
            on_give_up=script.on_give_up,
        )
        driver.lost("dropped")
        await script.done.wait()
        assert calls == 2 and len(script.backs) == 1

    run(main)


def test_a_later_loss_starts_a_new_reconnect(waits: Waits) -> None:
    async def main() -> None:
        script = Script(None, None)
        driver = script.reconnector()
        driver.lost("first drop")
        await script.done.wait()
        script.done.clear()
        driver.lost("second drop")
        await script.done.wait()
        assert script.drops == 2 and len(script.backs) == 2
        assert waits.delays == [1.0, 1.0]  # each outage starts from the first delay

    run(main)


def test_losses_while_reconnecting_do_not_report_more_drops(waits: Waits) -> None:
    async def main() -> None:
        waits.hold = asyncio.Event()
        script = Script(None)
        driver = script.reconnector()
        driver.lost("dropped")
        driver.lost("dropped again")
        waits.hold.set()
        await script.done.wait()
        assert script.drops == 1 and len(script.backs) == 1

    run(main)
