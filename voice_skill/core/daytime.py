"""Times of day: "HH:MM" read one way everywhere, and whether an hour is in the night hours.

Hours are fractional (23.5 is 23:30). Night hours wrap midnight when they start later than
they end (22:00 to 07:00); equal start and end mean no night hours at all.
"""

from __future__ import annotations

from typing import Callable

DEFAULT_NIGHT = ("22:00", "07:00")  # the one place the default night hours are written


def hhmm(text: str) -> tuple[int, int]:
    """``"23:30"`` -> (23, 30); ValueError for anything that is not a time of day as HH:MM."""
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() and 1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"{text!r} is not a time of day like 23:30")
    hour, minute = int(parts[0]), int(parts[1])
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"{text!r} is not a time of day like 23:30")
    return hour, minute


def parse_hhmm(text: str) -> float:
    """``"23:30"`` -> 23.5 (see ``hhmm``)."""
    hour, minute = hhmm(text)
    return hour + minute / 60.0


def is_night(hour: float, night: tuple[float, float]) -> bool:
    """Whether ``hour`` falls in the night hours ``(start, end)``."""
    start, end = night
    hour %= 24
    if start == end:
        return False
    return hour >= start or hour < end if start > end else start <= hour < end


DEFAULT_NIGHT_HOURS = (parse_hhmm(DEFAULT_NIGHT[0]), parse_hhmm(DEFAULT_NIGHT[1]))


def rates_in_a_day(rate: int, manners: Callable[[float], tuple[int, float]] | None) -> list[int]:
    """The day's speaking ``rate``, then any other that ``manners(hour)`` (rate, volume) gives
    at some quarter hour of the day: every rate the skill may speak at, for the speech cache."""
    rates = [rate]
    if manners is not None:
        rates += [manners(quarter / 4)[0] for quarter in range(24 * 4)]
    return list(dict.fromkeys(rates))
