"""How commands are taken around the skill's own speech: courtesy words ("okay", "please")
never make a command look mixed with the skill's voice, other words do; a recording with no
simulated room holds no skill voice to guard against; and a command the phrase spotter heard
on its own acts only while a routine runs."""

from __future__ import annotations

import pytest

from tests.scripted import first, run_script, says
from voice_skill.asr.base import Hypothesis
from voice_skill.errors import RoutineError
from voice_skill.core.intents import IntentParser, PhraseTable
from voice_skill.core.echoguard import EchoGuard

# "Hello." is said from 1.0 to 1.4 s and "Step one here." from 1.4 to 2.6 s (0.4 s a word);
# a scripted utterance lasts the 0.5 s before its time.


@pytest.mark.parametrize("text", ["okay pause please", "um pause", "pause thank you"])
def test_courtesy_words_around_a_command_said_over_the_skill_are_obeyed(text):
    events = run_script([(1.0, "calf cramp"), (2.2, text)], 20)
    heard = first(events, "heard", text=text)
    assert heard["intent"] == "pause" and "ignored" not in heard
    first(events, "routine", state="paused")


def test_other_words_around_a_command_said_over_the_skill_are_still_its_own_voice():
    events = run_script([(1.0, "calf cramp"), (2.2, "stroke slower up")], 20)
    heard = first(events, "heard", text="stroke slower up")
    assert heard["ignored"] == "mixed with own voice" and heard["intent"] is None


def test_the_courtesy_words_come_from_the_phrase_table():
    table = PhraseTable.load()
    assert {"okay", "please", "um"} <= table.courtesy
    guard = EchoGuard(courtesy=table.courtesy)
    assert guard.extra_words("okay stop please", "stop") == []
    assert guard.extra_words("stop the stroke", "stop") == ["the", "stroke"]
    with pytest.raises(RoutineError, match="courtesy"):
        PhraseTable.from_dict({"intents": {"stop": {"phrases": ["stop"]}}, "courtesy": ["okay", 3]})


def test_a_guard_for_input_without_the_skills_voice_ignores_nothing_for_overlap():
    parser = IntentParser()
    hyp = Hypothesis("stroke slower up", 0.9, 1.0, 1.5)
    for hears, verdict in ((True, "mixed with own voice"), (False, None)):
        guard = EchoGuard(hears_speaker=hears)
        guard.started(1, 0.5, "Stroke up from the ankle.")
        assert guard.judge(hyp, parser.parse(hyp.text)) == verdict


def test_a_spotted_command_with_no_routine_running_is_ignored_without_a_word():
    events = run_script([(1.0, "stop", True, True), (3.0, "next", True, True)], 10)
    assert [e["ignored"] for e in events if e["event"] == "heard"] == ["no routine to command"] * 2
    assert says(events) == []


def test_a_spotted_command_in_a_routine_is_obeyed():
    events = run_script([(1.0, "calf cramp"), (6.0, "stop", True, True)], 20)
    heard = first(events, "heard", text="stop")
    assert heard["intent"] == "stop" and "ignored" not in heard
    first(events, "routine", state="stopped")


@pytest.mark.parametrize("heard, spoken, same", [
    ("pause", "paused", True), ("resume", "resuming", True), ("stop", "stopping", True),
    ("next", "next", True), ("slower", "slower", True), ("stop", "stoop", False), ("go", "going", False),
    ("pause", "pauper", False), ("wait", "waiter", True), ("back", "background", False),
])
def test_a_command_word_is_the_skills_own_with_an_ending(heard, spoken, same):
    from voice_skill.core.echoguard import same_word

    assert same_word(heard, spoken) is same


def test_the_skills_own_resuming_heard_back_as_resume_is_its_own_voice():
    parser = IntentParser()
    guard = EchoGuard()
    guard.started(1, 10.0, "Resuming.")
    guard.ended(1, 10.8)
    hyp = Hypothesis("resume", 0.8, 10.1, 10.6)
    assert guard.judge(hyp, parser.parse(hyp.text)) == "own voice"


def test_other_words_around_a_command_the_command_head_also_heard_are_forgiven():
    """Over the skill's voice "pause" came back as "eat pause" (the canceller's leftovers as a
    word). When the command head heard "pause" in the same audio, two recognizers agree; the
    skill's own words are still its own whatever the head says."""
    parser = IntentParser()
    guard = EchoGuard()
    guard.started(1, 0.5, "Stroke up from the ankle.")
    mixed = Hypothesis("eat pause", 0.6, 1.0, 1.5)
    assert guard.judge(mixed, parser.parse(mixed.text)) == "mixed with own voice"
    agreed = Hypothesis("eat pause", 0.6, 1.0, 1.5, sound_agrees=True)
    assert guard.judge(agreed, parser.parse(agreed.text)) is None
    guard.started(2, 3.0, "Paused. Say resume when you are ready.")
    own = Hypothesis("paused resume", 0.6, 3.2, 3.8, sound_agrees=True)
    assert guard.judge(own, parser.parse(own.text)) == "own voice"


def test_a_command_with_a_stray_word_over_the_skill_is_obeyed_when_the_command_head_agrees():
    events = run_script([(1.0, "calf cramp"), (2.2, "eat pause", True, False, True)], 20)
    heard = first(events, "heard", text="eat pause")
    assert heard["intent"] == "pause" and heard["by_sound"] is True and "ignored" not in heard
    first(events, "routine", state="paused")
    alone = run_script([(1.0, "calf cramp"), (2.2, "eat pause")], 20)
    assert first(alone, "heard", text="eat pause")["ignored"] == "mixed with own voice"
    assert "by_sound" not in first(alone, "heard", text="eat pause")


def test_a_command_the_command_head_did_not_hear_is_ignored():
    events = run_script([(1.0, "calf cramp"), (6.0, "i'm fine", True, False, False, True)], 20)
    heard = first(events, "heard", text="i'm fine")
    assert heard["ignored"] == "not a command by its sound" and heard["intent"] is None
    believed = run_script([(1.0, "calf cramp"), (6.0, "i'm fine")], 20)
    ended = lambda evs: next(e["t"] for e in evs if e["event"] == "routine" and e["state"] == "finished")  # noqa: E731
    assert ended(believed) < 20 < ended(events)  # "it's gone" wraps the routine up; ignored, it runs on


def test_a_red_flag_heard_by_its_sound_in_a_routine_halts_it_with_the_plain_advice():
    """The safety head heard a red flag where the words made a command: the routine stops with
    the red flag's advice; the journal keeps what the recognizer heard, marked ``by_sound``; no
    family is made up (the circulation advice needs a cold, pale or blue foot said in words)."""
    heard_as = (6.0, "carry on car it's gone", True, True, False, False, "red_flag")
    events = run_script([(1.0, "calf cramp"), heard_as], 20)
    heard = first(events, "heard", text="carry on car it's gone")
    assert heard["intent"] == "red_flag" and heard["by_sound"] is True and "ignored" not in heard
    assert first(events, "routine", state="stopped")["reason"] == "red_flag"
    warning = first(events, "warning")
    assert "sign" not in warning and "doctor" in warning["text"]


def test_a_safety_intent_heard_by_its_sound_with_no_routine_running_is_ignored():
    events = run_script([(1.0, "rain", True, True, False, False, "emergency")], 10)
    assert [e.get("ignored") for e in events if e["event"] == "heard"] == ["no routine to command"]
    assert says(events) == []


def test_a_safety_intent_heard_by_its_sound_after_a_routine_in_the_same_episode_is_taken():
    """Once the routine has stopped, the episode stays open (15 minutes): a red flag the safety head
    heard then ("puffy" said as "wall old read up") gets its advice. A command so heard does not."""
    script = [(1.0, "calf cramp"), (5.0, "stop"), (9.0, "wall old read up", True, True, False, False, "red_flag"),
              (12.0, "stop", True, True)]
    events = run_script(script, 20)
    assert first(events, "routine", state="stopped")["t"] < 9.0
    heard = first(events, "heard", text="wall old read up")
    assert heard["intent"] == "red_flag" and "ignored" not in heard
    assert "doctor" in first(events, "warning")["text"]
    assert [e.get("ignored") for e in events if e["event"] == "heard" and e["text"] == "stop"][-1] == \
        "no routine to command"


def test_a_command_beside_a_trigger_that_failed_its_check_is_not_taken_a_red_flag_is():
    """Words the recognizer decoded where a trigger it placed failed its acoustic check ("I have a
    cramp" with "cramp" taken out) give no command: "done" would end the routine. A red flag
    there still counts (one missed costs more than one wrongly taken)."""
    done = Hypothesis("done", 0.9, 5.5, 6.0, unverified_trigger=True)
    events = run_script([(1.0, "calf cramp"), done], 25)
    heard = first(events, "heard", text="done")
    assert heard["ignored"] == "beside a trigger that did not check out" and heard["intent"] is None
    assert not [e for e in events if e["event"] == "routine" and e["state"] in ("finished", "stopped")
                and e["t"] < 20]
    believed = run_script([(1.0, "calf cramp"), (6.0, "done")], 25)
    assert "ignored" not in first(believed, "heard", text="done")
    flag = Hypothesis("i fell", 0.9, 5.5, 6.0, unverified_trigger=True)
    events = run_script([(1.0, "calf cramp"), flag], 25)
    assert first(events, "heard", text="i fell")["intent"] == "red_flag"
    first(events, "routine", state="stopped")
