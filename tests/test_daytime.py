"""Times of day are read one way everywhere: the settings, the command line and the chooser."""

from __future__ import annotations

import pytest

from voice_skill.cli.main import build_parser
from voice_skill.core.daytime import DEFAULT_NIGHT_HOURS, is_night, parse_hhmm, rates_in_a_day
from voice_skill.settings import Settings, resolve


@pytest.mark.parametrize("text, hours", [("23:30", 23.5), ("7:05", 7 + 5 / 60), ("00:00", 0.0), (" 22:15 ", 22.25)])
def test_parse_hhmm(text, hours):
    assert parse_hhmm(text) == pytest.approx(hours)


@pytest.mark.parametrize("text", ["24:00", "12:60", "1230", "12:3:4", "ab:cd", "-1:30", "+1:30", "", "12:"])
def test_parse_hhmm_refuses(text):
    with pytest.raises(ValueError, match="time of day"):
        parse_hhmm(text)


@pytest.mark.parametrize("hour, night, expected", [
    (23.0, (22.0, 7.0), True), (3.0, (22.0, 7.0), True), (7.0, (22.0, 7.0), False), (22.0, (22.0, 7.0), True),
    (12.0, (22.0, 7.0), False), (25.0, (22.0, 7.0), True),  # past midnight on the skill's clock
    (13.0, (12.0, 14.0), True), (14.0, (12.0, 14.0), False), (3.0, (5.0, 5.0), False),
])
def test_is_night(hour, night, expected):
    assert is_night(hour, night) is expected


def test_the_settings_and_the_command_line_read_times_alike(tmp_path):
    settings = resolve({"night_start": "21:45", "night_end": "6:30"}, env={}, path=tmp_path / "none.toml")
    assert settings.night_hours == (21.75, 6.5)
    assert settings.is_night(22.0) and not settings.is_night(6.5)
    args = build_parser().parse_args(["run", "--time-of-day", "21:45", "--input", "x.wav"])
    assert args.time_of_day == pytest.approx(21.75)
    assert Settings().night_hours == DEFAULT_NIGHT_HOURS == (22.0, 7.0)


def test_the_rates_of_a_day_are_the_days_then_the_nights_once_each() -> None:
    def manners(hour: float) -> tuple[int, float]:
        return (140, 0.5) if is_night(hour, (22.0, 7.0)) else (165, 1.0)

    assert rates_in_a_day(165, manners) == [165, 140]
    assert rates_in_a_day(165, None) == [165]
    assert rates_in_a_day(130, lambda hour: (130, 1.0)) == [130]
