"""Time is injected, never read: the only wall-clock reads in the package live here.

``RealClock`` is for live use. ``VirtualClock`` is for recordings: its time is audio
time, moved forward by whoever drives it, so a three-minute routine replays in
milliseconds.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    # True for a clock whose time is audio time (recordings): whoever feeds audio moves it.
    follows_audio: bool

    def now(self) -> float:
        """Seconds on this clock."""
        ...

    def advance_to(self, t: float) -> None:
        """Move a clock that follows audio to ``t``; a real clock moves by itself."""
        ...


class RealClock:
    """Monotonic seconds since the clock was made."""

    follows_audio = False

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin

    def advance_to(self, t: float) -> None:
        """Real time cannot be moved: nothing to do."""

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """A clock that only moves when told to, and never backwards."""

    follows_audio = True

    def __init__(self, start_s: float = 0.0) -> None:
        self._now = start_s

    def now(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        if t > self._now:
            self._now = t


def local_hour_fraction() -> float:
    """The local time of day as hours (e.g. 23.5 for 23:30): for choosing night routines."""
    lt = time.localtime()
    return lt.tm_hour + lt.tm_min / 60.0
