"""The workout screen: the live panel drawn into a captured rich Console, the plain lines,
and the countdown it derives from events, checked against the coach's own spoken marks."""

import io
import re

import numpy as np
import pytest
from rich.console import Console

from tests.scripted import routine, run_script_with
from voice_skill.ui.screen import COMMANDS_ACTIVE, COMMANDS_IDLE, CoachState, LineView, LiveView, level_dbfs, make_view


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def terminal(width: int = 110) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=width, color_system=None, record=True)


def drawn(view: LiveView) -> str:
    view.console.print(view.render())
    return view.console.export_text()


RECORDS = [
    {"t": 3.41, "event": "heard", "text": "calf cramp", "intent": "start", "confidence": 0.88},
    {"t": 3.45, "event": "routine", "state": "started", "routine": "night-cramp"},
    {"t": 3.45, "event": "step", "index": 1, "id": "flex-foot"},
    {"t": 3.46, "event": "say", "text": "Ease your toes up toward your shin."},
    {"t": 6.0, "event": "hold", "step": "flex-foot", "seconds": 10.0},
    {"t": 6.0, "event": "say", "text": "Ten seconds."},
    {"t": 7.5, "event": "heard", "text": "pause", "intent": "pause", "confidence": 0.93},
]


def test_live_panel_shows_routine_step_countdown_heard_and_level():
    clock = FakeClock()
    view = make_view(terminal(), clock=clock)
    assert isinstance(view, LiveView)
    for record in RECORDS:
        clock.t = record["t"]
        view(record)
    view.set_level(-31.6)
    clock.t = 9.0  # 3 s into the 10 s hold
    text = drawn(view)
    assert "Night cramp" in text
    assert "2: flex-foot" in text
    assert "7 s left of 10" in text
    assert "━" in text  # the countdown bar
    assert '"pause" -> pause (confidence 93%)' in text
    assert "-32 dBFS" in text
    assert "Ten seconds." in text
    assert COMMANDS_ACTIVE.split(":")[0] in text


def test_live_panel_uses_routine_titles_and_step_counts_when_given():
    from voice_skill.core.routine import routine_from_dict

    loaded = routine_from_dict(routine("night-cramp", title="Night cramp, gently"))
    view = make_view(terminal(), clock=FakeClock(4.0), routines={loaded.id: loaded})
    for record in RECORDS[:3]:
        view(record)
    text = drawn(view)
    assert "Night cramp, gently" in text and "2 of 4: flex-foot" in text


def test_live_panel_when_idle_and_when_paused():
    clock = FakeClock(1.0)
    view = make_view(terminal(), clock=clock)
    text = drawn(view)
    assert 'waiting for "calf cramp"' in text and COMMANDS_IDLE[:20] in text
    for record in RECORDS[1:5]:
        view(record)
    view({"t": 8.0, "event": "routine", "state": "paused", "routine": "night-cramp"})
    view({"t": 8.0, "event": "hold", "step": "flex-foot", "remaining_s": 8.0, "running": False})
    clock.t = 30.0
    text = drawn(view)
    assert "8 s left of 10 (paused)" in text and "Paused. Say: resume" in text


def test_live_view_starts_and_stops_on_a_terminal():
    clock = FakeClock(5.0)
    view = make_view(terminal(), clock=clock)
    with view:
        for record in RECORDS:
            view(record)
    assert "flex-foot" in view.console.export_text()


def test_without_a_terminal_it_prints_plain_lines():
    out = io.StringIO()
    view = make_view(Console(file=out, width=40))  # not a terminal; narrow, yet lines must not wrap
    assert isinstance(view, LineView)
    view.start()
    for record in RECORDS:
        view(record)
    view.set_level(-20.0)  # the level is for the panel only
    view({"t": 9.0, "event": "pace", "pace": 1.25})
    view({"t": 9.5, "event": "warning", "text": "the speech model lacks the word 'charley'"})
    view({"t": 70.25, "event": "routine", "state": "stopped", "routine": "night-cramp", "reason": "worse"})
    view.stop()
    lines = out.getvalue().splitlines()
    assert lines == [
        '0:03.41  heard: "calf cramp" -> start (confidence 88%)',
        "0:03.45  routine started: night-cramp",
        "0:03.45  step 2: flex-foot",
        "0:03.46  said: Ease your toes up toward your shin.",
        "0:06.00  hold 10 s",
        "0:06.00  said: Ten seconds.",
        '0:07.50  heard: "pause" -> pause (confidence 93%)',
        "0:09.00  pace 1.25x",
        "0:09.50  warning: the speech model lacks the word 'charley'",
        "1:10.25  routine stopped: night-cramp (worse)",
    ]
    assert "\x1b" not in out.getvalue()


def test_plain_lines_for_rejected_and_ignored_speech():
    out = io.StringIO()
    view = make_view(Console(file=out))
    view({"t": 1.0, "event": "heard", "text": "hello there", "intent": None, "confidence": 0.412})
    view({"t": 2.0, "event": "heard", "text": "calf cramp", "intent": None, "confidence": 0.9, "ignored": "own voice"})
    assert out.getvalue().splitlines() == [
        '0:01.00  heard: "hello there" (not a command, confidence 41%)',
        '0:02.00  heard: "calf cramp" (ignored: own voice, confidence 90%)',
    ]


def test_countdown_shows_what_the_hold_events_say():
    state = CoachState()
    state.update({"t": 1.0, "event": "routine", "state": "started", "routine": "r", "pace": 1.25})
    assert state.pace == 1.25
    state.update({"t": 1.0, "event": "step", "index": 0, "id": "a"})
    assert state.hold_remaining(2.0) is None
    state.update({"t": 5.0, "event": "hold", "step": "a", "seconds": 10.0, "settle_s": 2.0, "remaining_s": 12.0,
                  "running": True})
    assert state.hold_total == 12.0 and state.hold_remaining(8.0) == pytest.approx(9.0)
    state.update({"t": 8.0, "event": "routine", "state": "paused", "routine": "r"})
    state.update({"t": 8.0, "event": "hold", "step": "a", "remaining_s": 9.0, "running": False})
    assert state.hold_remaining(100.0) == pytest.approx(9.0)  # frozen while paused
    state.update({"t": 30.0, "event": "routine", "state": "resumed", "routine": "r"})
    state.update({"t": 30.0, "event": "hold", "step": "a", "remaining_s": 9.0, "running": True})
    assert state.hold_remaining(31.0) == pytest.approx(8.0)
    # "slower" at 1.25: the coach says 10 s are left now; the screen takes its word for it
    state.update({"t": 31.0, "event": "pace", "pace": 1.5625})
    state.update({"t": 31.0, "event": "hold", "step": "a", "remaining_s": 10.0, "running": True})
    assert state.pace == 1.5625 and state.hold_remaining(32.0) == pytest.approx(9.0)
    assert state.hold_remaining(60.0) == 0.0
    state.update({"t": 40.0, "event": "step", "index": 1, "id": "b"})
    assert state.hold_remaining(40.0) is None
    state.update({"t": 41.0, "event": "hold", "step": "b", "seconds": 5.0, "remaining_s": 5.0, "running": True})
    state.update({"t": 42.0, "event": "routine", "state": "finished", "routine": "r"})
    assert state.hold_remaining(42.0) is None and state.routine is None
    # the next routine says its own pace: the screen does not assume one
    state.update({"t": 50.0, "event": "routine", "state": "started", "routine": "r", "pace": 0.8})
    assert state.pace == 0.8


def test_a_hold_event_from_an_older_log_without_remaining_s():
    state = CoachState()
    state.update({"t": 5.0, "event": "hold", "step": "a", "seconds": 10.0, "settle_s": 3.0})
    assert state.hold_remaining(6.0) == pytest.approx(12.0)


_COUNTDOWN_WORDS = {"Five.": 5, "Four.": 4, "Three.": 3, "Two.": 2, "One.": 1, "Ten.": 10}


@pytest.mark.parametrize("script", [
    [(1.0, "calf cramp")],
    [(1.0, "calf cramp"), (14.0, "pause"), (30.0, "resume")],
    [(1.0, "calf cramp"), (2.0, "slower")],
    [(1.0, "calf cramp"), (12.0, "slower"), (15.0, "faster")],
    [(1.0, "calf cramp"), (2.0, "slower"), (12.0, "slower")],
    [(1.0, "calf cramp"), (12.0, "pause"), (13.0, "slower"), (20.0, "resume")],
])
@pytest.mark.parametrize("base_pace", [1.0, 1.25])
def test_countdown_agrees_with_the_coachs_spoken_marks(script, base_pace):
    """Replaying a real session's events: wherever the coach says a countdown mark ("Five."),
    the screen's countdown shows that many seconds left, at any starting pace and after
    pauses and pace changes during the hold."""
    def at_pace(coach) -> None:
        coach.base_pace = coach.pace = base_pace

    events = run_script_with(at_pace, script, 90, routines=[routine()])
    state = CoachState()
    checked = 0
    for record in events:
        mark = _COUNTDOWN_WORDS.get(record.get("text", "")) if record["event"] == "say" else None
        if mark:
            assert state.hold_remaining(record["t"]) == pytest.approx(mark, abs=0.06), record
            checked += 1
        state.update(record)
    assert checked >= 5  # Five to One at least (a faster pace can skip marks above what is left)


def test_level_dbfs():
    assert level_dbfs(np.zeros(1600, dtype=np.int16)) == -90.0
    assert level_dbfs(np.zeros(0, dtype=np.int16)) == -90.0
    full_square = np.full(1600, 32767, dtype=np.int16)
    assert level_dbfs(full_square) == pytest.approx(0.0, abs=0.01)
    tone = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 3277).astype(np.int16)  # -20 dBFS peak
    assert level_dbfs(tone) == pytest.approx(-23.0, abs=0.1)  # a sine's RMS is 3 dB under its peak


def test_set_level_clamps_and_shows_loudness():
    view = make_view(terminal(), clock=FakeClock())
    view.set_level(float("-inf"))
    text = drawn(view)
    assert "-90 dBFS" in text and "quiet" in text
    view.set_level(3.0)
    text = drawn(view)
    assert "0 dBFS" in text and "too loud" in text
    assert not re.search(r"-?inf|nan", text)
