"""Injected time.

Everything that waits or expires (visibility timeouts, delays, retention, long polls) reads a
`Clock` instead of the `time` module, so tests can run hours of queue time in microseconds.

Two readings: `time()` is wall-clock Unix seconds, for values shown to clients
(enqueueTime, nextVisibleTime) and retention; `monotonic()` orders due times and cannot jump.
`call_at(when, cb)` schedules `cb` at a monotonic instant and returns a handle with `cancel()`;
`sleep(seconds)` waits on the same clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Callable, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def time(self) -> float: ...
    def monotonic(self) -> float: ...
    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle: ...
    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """The event loop's clock (monotonic) plus the system's wall clock."""

    # The same clocks the event loop's timers use (CLOCK_MONOTONIC for both asyncio's loop and
    # uvloop's), read directly: several times cheaper than asking the running loop.
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_at(when, callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _FakeTimer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that only moves when told to; `advance()` fires the timers that fall due."""

    def __init__(self, start: float = 1_700_000_000.0):
        self._wall0 = start
        self._now = 0.0
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._wall0 + self._now

    def monotonic(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _FakeTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        timer = self.call_at(self._now + seconds, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            timer.cancel()

    def advance(self, seconds: float) -> None:
        """Move time forward, firing each due timer at its own instant, in order."""
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
        self._now = target
