"""The injected clock: Lambda reads real time, the simulation and tests advance their own.

Domain rules never call ``datetime.now()``; services ask ``get_clock().now()``
so that a simulated week runs in seconds and DST tests are short.
"""

from __future__ import annotations

import threading
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


_clock: Clock = SystemClock()


def get_clock() -> Clock:
    """The process-wide clock (``SystemClock`` unless a runtime installed another)."""
    return _clock


def set_clock(clock: Clock) -> Clock:
    """Install ``clock`` process-wide and return the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous
