"""Timing rules of the coach, through the real session loop on the virtual clock.

Speech lasts 0.4 s a word here (tests.scripted), so every expected time can be worked
out by hand from the test routine in tests/scripted.py.
"""

import pytest

from tests.scripted import ScriptedRecognizer, first, routine, run_script, run_script_with, says
from voice_skill.core.coach import PACE_MAX, TEN_MINUTES_S, Messages
from voice_skill.core.intents import IntentParser
from voice_skill.core.routine import fill_placeholders as fill


def said_at(events, text):
    return [t for t, s in says(events) if s == text]


def test_trigger_starts_routine_and_speaks_at_once():
    events = run_script([(1.0, "calf cramp")], 5)
    heard = first(events, "heard")
    assert heard["intent"] == "start" and heard["t"] == 1.0
    assert first(events, "routine", state="started")["routine"] == "test-cramp"
    assert says(events)[0] == (1.0, "Hello.")
    assert first(events, "step", index=0)["id"] == "one"


class _ToldOfRoutines(ScriptedRecognizer):
    """Notes where in the audio it was told whether a routine runs (``set_routine``)."""

    def __init__(self, script) -> None:
        super().__init__(script)
        self.told: list[tuple[float, bool]] = []
        self._pending: bool | None = None

    def set_routine(self, running: bool) -> None:
        self._pending = running

    def accept(self, chunk):
        if self._pending is not None:
            self.told.append((round(chunk.start_s, 2), self._pending))
            self._pending = None
        return super().accept(chunk)


def test_the_recognizer_is_told_when_a_routine_runs_before_the_audio_after_it():
    script = [(1.0, "calf cramp"), (3.0, "stop")]
    rec = _ToldOfRoutines(script)
    events = run_script_with(None, script, 6, recognizer=rec)
    assert first(events, "routine", state="stopped")["t"] == 3.0
    # once at the start (nothing runs), then only when that changes: from the first frame after
    # the trigger was heard, and from the first frame after "stop"
    assert rec.told == [(0.0, False), (1.0, True), (3.0, False)]


def test_countdown_marks_fall_on_exact_seconds():
    events = run_script([(1.0, "calf cramp")], 30)
    start = said_at(events, "Fifteen seconds.")[0]
    # intro 0.4 s + step one 1.2 s + hold 3 s + gap 1 s + "Press and hold." 1.2 s
    assert start == pytest.approx(1.0 + 0.4 + 1.2 + 3 + 1 + 1.2)
    for mark, text in [(10, "Ten."), (5, "Five."), (4, "Four."), (3, "Three."), (2, "Two."), (1, "One.")]:
        assert said_at(events, text)[0] == pytest.approx(start + 15 - mark)
    assert said_at(events, "Release.")[0] == pytest.approx(start + 15)


def test_routine_runs_to_its_end_after_the_recording_ends():
    events = run_script([(1.0, "calf cramp")], 2)
    assert events[-2]["event"] == "routine" and events[-2]["state"] == "finished"
    assert events[-1]["event"] == "episode" and events[-1]["how"] == "finished"
    assert [e["id"] for e in events if e["event"] == "step"] == ["one", "hold", "strokes", "care"]


def test_pause_freezes_the_countdown_exactly():
    start = 1.0 + 0.4 + 1.2 + 3 + 1 + 1.2  # the hold starts here (see above)
    events = run_script([(1.0, "calf cramp"), (start + 7.0, "pause"), (start + 40.0, "resume")], 60)
    assert first(events, "routine", state="paused")["t"] == pytest.approx(start + 7.0)
    assert first(events, "routine", state="resumed")["t"] == pytest.approx(start + 40.0)
    # 8 s were left when paused: "Five." comes 3 s after resuming, the release 8 s after.
    assert said_at(events, "Five.")[0] == pytest.approx(start + 40.0 + 3.0)
    assert said_at(events, "Release.")[0] == pytest.approx(start + 40.0 + 8.0)
    # nothing of the routine was said while paused
    paused_lines = [s for t, s in says(events) if start + 7.0 <= t < start + 40.0]
    assert paused_lines == [Messages.load()["paused"]]


def test_pause_while_speaking_cuts_off_and_resume_says_it_again():
    events = run_script([(1.0, "calf cramp"), (2.0, "pause"), (10.0, "resume")], 20)
    cut = first(events, "cut")
    assert cut["text"] == "Step one here." and cut["t"] == pytest.approx(2.0)
    assert said_at(events, "Step one here.") == [pytest.approx(1.4), pytest.approx(10.4)]


def test_slower_stretches_holds_and_says_so():
    events = run_script([(1.0, "calf cramp"), (2.0, "slower")], 40)
    assert first(events, "pace")["pace"] == pytest.approx(1.25)
    assert "Slowing down." in [s for _, s in says(events)]
    start = said_at(events, "Nineteen seconds.")[0]  # 15 s at pace 1.25 = 18.75 s
    assert said_at(events, "Release.")[0] - start == pytest.approx(18.8, abs=0.01)
    assert said_at(events, "Ten.")[0] == pytest.approx(start + 8.8, abs=0.01)  # marks stay real seconds


def test_pace_has_bounds():
    script = [(1.0, "calf cramp")] + [(2.0 + i, "slower") for i in range(6)]
    events = run_script(script, 10)
    paces = [e["pace"] for e in events if e["event"] == "pace"]
    assert max(paces) <= PACE_MAX and len(paces) < 6
    assert "This is already my slowest pace." in [s for _, s in says(events)]


def test_next_back_and_repeat_move_between_steps():
    events = run_script([(1.0, "calf cramp"), (2.0, "next"), (4.0, "back"), (6.0, "repeat")], 8)
    steps = [(e["t"], e["id"]) for e in events if e["event"] == "step"][:4]
    assert steps == [(1.0, "one"), (2.0, "hold"), (4.0, "one"), (6.0, "one")]


def test_its_gone_skips_to_aftercare():
    events = run_script([(1.0, "calf cramp"), (3.0, "it's gone")], 10)
    assert [e["id"] for e in events if e["event"] == "step"] == ["one", "care"]
    assert first(events, "routine", state="finished")
    assert first(events, "episode")["how"] == "finished"


def test_stop_ends_the_routine_and_episode():
    events = run_script([(1.0, "calf cramp"), (3.0, "stop")], 10)
    assert first(events, "routine", state="stopped")["t"] == 3.0
    assert first(events, "episode")["how"] == "stopped"
    assert not [e for e in events if e["event"] == "step" and e["t"] > 3.0]


def test_worse_stops_the_massage_and_advises_a_doctor():
    """001, the active-spasm answer: pain that is sharp or lasting means stop massaging
    and see a doctor; no gentler massage takes over."""
    events = run_script([(1.0, "calf cramp"), (3.0, "it's getting worse")], 10)
    assert first(events, "routine", state="stopped")["reason"] == "worse"
    assert [e["routine"] for e in events if e["event"] == "routine" and e["state"] == "started"] == ["test-cramp"]
    assert (3.0, fill(Messages.load()["worse"]) + " " + Messages.load()["notice"]) in says(events)
    assert not [e for e in events if e["event"] == "step" and e["t"] > 3.0]


def test_red_flag_stops_massage_and_advises_a_doctor():
    events = run_script([(1.0, "calf cramp"), (3.0, "it's swollen")], 10)
    warning = first(events, "warning")
    assert "doctor" in warning["text"] and warning["red_flag"] == "it's swollen"
    assert first(events, "routine", state="stopped")["reason"] == "red_flag"


def test_ten_minute_watchdog_speaks_once():
    events = run_script([(1.0, "calf cramp"), (2.0, "pause")], TEN_MINUTES_S + 60)
    warnings = [e for e in events if e["event"] == "warning" and "ten minutes" in e["text"]]
    assert len(warnings) == 1 and warnings[0]["t"] == pytest.approx(1.0 + TEN_MINUTES_S)


def test_watchdog_is_silent_when_the_episode_ended_in_time():
    events = run_script([(1.0, "calf cramp"), (5.0, "stop")], TEN_MINUTES_S + 60)
    assert not [e for e in events if e["event"] == "warning"]


def test_help_lists_commands_and_the_step_resumes():
    events = run_script([(1.0, "calf cramp"), (2.0, "help")], 12)
    lines = [s for _, s in says(events)]
    assert any(s.startswith("You can say next") for s in lines)
    assert lines.count("Step one here.") == 2


def test_commands_without_a_routine_do_not_start_one():
    events = run_script([(1.0, "next"), (2.0, "it hurts"), (3.0, "pause")], 5)
    assert not [e for e in events if e["event"] == "routine"]


def test_the_leg_named_is_carried_into_speech():
    r = routine(intro="Let's ease your {calf}.")
    events = run_script([(1.0, "cramp in my left leg")], 3, routines=[r])
    assert says(events)[0][1] == "Let's ease your left calf."


def test_chunk_size_does_not_change_events():
    script = [(1.0, "calf cramp"), (9.0, "pause"), (14.0, "resume"), (20.0, "slower")]
    assert run_script(script, 30, chunk_s=0.02) == run_script(script, 30, chunk_s=0.1)


def test_frequent_cramps_are_mentioned_once_after_the_routine():
    from tests.scripted import run_script_with

    events = run_script_with(lambda coach: setattr(coach, "frequent_cramps", True),
                             [(1.0, "calf cramp"), (60.0, "calf cramp")], 90)
    mentions = [(t, s) for t, s in says(events) if "most days" in s]
    assert len(mentions) == 1
    finished = [e["t"] for e in events if e["event"] == "routine" and e["state"] == "finished"]
    assert finished[0] >= mentions[0][0] > first(events, "step", id="care")["t"]


def test_hold_event_announces_the_timer():
    events = run_script([(1.0, "calf cramp")], 30)
    holds = [(e["step"], e["seconds"]) for e in events if e["event"] == "hold" and "seconds" in e]
    assert holds[:2] == [("one", 3.0), ("hold", 15.0)]


def test_a_partial_stop_pauses_at_once_and_the_final_result_confirms_it():
    events = run_script([(1.0, "calf cramp"), (2.0, "stop", False), (2.4, "stop")], 6)
    assert first(events, "routine", state="paused")["t"] == 2.0
    assert first(events, "routine", state="stopped")["t"] == 2.4


def test_a_partial_stop_that_the_final_result_denies_is_undone():
    events = run_script([(1.0, "calf cramp"), (2.0, "stop", False), (2.4, "stock market")], 30)
    assert first(events, "routine", state="paused")["t"] == 2.0
    assert first(events, "routine", state="resumed")["t"] == 2.4
    assert not [e for e in events if e["event"] == "routine" and e["state"] == "stopped"]
    assert first(events, "routine", state="finished")


def test_the_coachs_own_lines_carry_no_command_or_trigger():
    """The skill hears itself: a reply that said "resume" would hide a user's "resume"
    spoken over it. Only the help text and the way back from a doubted red flag
    (``doubted_resume``) name commands, by design."""
    parser = IntentParser()
    for key, text in Messages.load().texts.items():
        if key == "emergency":
            # it names the signs it answers; the echo guard knows them as its own words
            assert parser.parse(text).name == "emergency"
        elif key not in ("help", "doubted_resume"):
            assert parser.parse(text) is None, f"messages.{key} would be heard as {parser.parse(text)}"


def test_device_notices_are_spoken_during_a_routine_only():
    """'I can't hear you' matters to someone mid-routine; at 3 a.m. with nothing running,
    a voice about a microphone would only wake the house."""
    from voice_skill.core.coach import Coach, Say
    from voice_skill.core.routine import routine_from_dict

    r = routine_from_dict(routine())
    messages = Messages.load()
    coach = Coach({r.id: r}, messages)
    assert coach.device_notice("microphone_lost") == []
    coach.handle(IntentParser().parse("calf cramp"), 1.0)
    said = [a.text for a in coach.device_notice("microphone_lost") if isinstance(a, Say)]
    assert said == [messages["microphone_lost"]]
    assert coach.active and coach.index == 0  # the routine itself is untouched
