"""The injected clock: Lambda reads real time, the simulation and tests advance their own.

Domain rules never call ``datetime.now()``; services ask ``get_clock().now()``
so that a simulated week runs in seconds and DST tests are short.

Waiting is part of the clock too: :func:`sleep` and :func:`monotonic` (rate-limit
waits, HTTP retry backoff, send deadlines, a Lambda context's remaining time)
go through the installed clock. On :class:`SystemClock` they are ``time.sleep``
and ``time.monotonic``; on a :class:`ManualClock` a sleep moves the clock forward
instantly, so a simulated burst of posts waits the way a real one does (4 s, then
4 s more, …) instead of every wait being counted from the same frozen instant.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...


class SystemClock:
    """The real wall clock (what Lambda uses)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        if seconds > 0:
            time.sleep(seconds)

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and elapsed time)."""
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to (simulation and tests)."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (never backwards: time in a simulation is monotonic)."""
        when = when.astimezone(UTC)
        with self._lock:
            if when < self._now:
                raise ValueError(f"clock cannot move backwards from {self._now} to {when}")
            self._now = when

    def advance(self, delta: timedelta) -> None:
        """Move forward by ``delta``."""
        self.set(self.now() + delta)

    def sleep(self, seconds: float) -> None:
        """A wait: the clock moves forward by ``seconds`` at once."""
        if seconds > 0:
            with self._lock:
                self._now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        """The simulated time in seconds (monotonic: this clock never goes back)."""
        return self.now().timestamp()


_clock: Clock = SystemClock()


def get_clock() -> Clock:
    """The process-wide clock (``SystemClock`` unless a runtime installed another)."""
    return _clock


def set_clock(clock: Clock) -> Clock:
    """Install ``clock`` process-wide and return the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def sleep(seconds: float) -> None:
    """Wait ``seconds`` on the installed clock (instant on a simulated one)."""
    waiter = getattr(_clock, "sleep", None)
    if waiter is None:  # a minimal Clock with only now(): wait in real time
        if seconds > 0:
            time.sleep(seconds)
        return
    waiter(seconds)


def monotonic() -> float:
    """Seconds on the installed clock's monotonic scale (deadlines, elapsed time)."""
    reader = getattr(_clock, "monotonic", None)
    if reader is None:
        return time.monotonic()
    return float(reader())
