"""The todo app's readers as presence members (``--presence``): joining, the events, and leaving at the end.

Every reader of a process joins room ``todos`` as a member on a connection of its own (the provider's
member, ``providers/presence.py``), with a unique id and its join time in its info; what each member
hears goes to ``PresenceStats`` (``measure/presence.py``). At the end of the run, before the final report,
the members leave one at a time, each once the members still present here were told of the last one's
leave (or a short wait passed): the leave storm is then exact, N(N-1)/2 member_removed events for N
members of one process, and each is timed against the leave it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from itertools import count

from harness.measure.presence import PresenceStats, Tally, member_info
from harness.providers.base import Provider, SubscriberHandle
from harness.providers.presence import Member, MemberHooks, open_member

#: the room the readers are members of (Pusher: channel ``presence-todos``)
ROOM = "todos"
#: how long a leave waits for this process's other members to be told, at most
LEAVE_WAIT_S = 2.0


class PresenceRoom:
    """This process's members, in the order they joined."""

    def __init__(self, stats: PresenceStats, on_error: Callable[[str], None]) -> None:
        self.stats = stats
        self.on_error = on_error
        self.members: list[Member] = []
        self._ids = count(1)
        #: a leaving member's id -> [members here still to hear of it, set when none is]
        self._leaving: dict[str, tuple[list[int], asyncio.Event]] = {}

    async def join(self, provider: Provider) -> Member:
        """A new member, joined; a refusal or timeout is counted and raised."""
        stats = self.stats
        member_id = f"rtb-{stats.run_id[:8]}-{os.getpid()}-{next(self._ids)}"
        tally = stats.tally(member_id)
        hooks = MemberHooks(
            on_listed=lambda members: stats.listed(tally, members),
            on_added=lambda other, info, rx_ns: stats.member_added(tally, other, info, rx_ns),
            on_removed=lambda other, rx_ns: self._removed(tally, other, rx_ns),
            on_error=self.on_error,
        )
        member = open_member(provider, ROOM, member_id, member_info(stats.run_id, stats.clock, 0), hooks)
        try:
            await member.join()
        except BaseException as exc:
            stats.tallies.remove(tally)
            stats.join_failed()
            self.on_error(f"presence join failed: {type(exc).__name__}: {str(exc)[:120]}")
            with contextlib.suppress(Exception):
                await member.leave()
            raise
        stats.joined(member.join_ns, time.time_ns())
        self.members.append(member)
        return member

    def _removed(self, tally: Tally, other: str, rx_ns: int) -> None:
        self.stats.member_removed(tally, other, rx_ns)
        waiting = self._leaving.get(other)
        if waiting is not None:
            left, done = waiting
            left[0] -= 1
            if left[0] <= 0:
                done.set()

    async def leave(self, member: Member) -> None:
        """One member leaves (a reader closed before the end); the others are not waited for."""
        if member in self.members:
            self.members.remove(member)
            self.stats.left(member.member_id, time.time_ns())
            await member.leave()

    async def leave_all(self, deadline: float, cut: Callable[[], bool] = lambda: False) -> None:
        """Every member leaves, one at a time, each once the rest here heard of the previous (or
        ``LEAVE_WAIT_S`` passed); after ``deadline`` (monotonic), or once ``cut()`` says so (a second
        Ctrl-C), the rest leave without waiting."""
        while self.members:
            member = self.members.pop(0)
            done = asyncio.Event()
            self._leaving[member.member_id] = ([len(self.members)], done)
            self.stats.left(member.member_id, time.time_ns())
            await member.leave()
            wait = min(LEAVE_WAIT_S, deadline - time.monotonic())
            if self.members and wait > 0 and not cut():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), wait)


class PresentReader(SubscriberHandle):
    """A reader that is also a member: closing it (a user stopped before the end) leaves the room too."""

    def __init__(self, reading: SubscriberHandle, room: PresenceRoom, member: Member) -> None:
        self.reading = reading
        self.room = room
        self.member = member

    @property
    def rx_clock(self) -> str:
        return self.reading.rx_clock

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.room.leave(self.member)
        await self.reading.close()
