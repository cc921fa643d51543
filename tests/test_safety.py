"""Issue 12, "Safe when it matters": the emergency answer, red flags as people say them,
sharp pain, pregnancy, and cramp episodes with the ten-minute rule on episode time.

Through the real session loop on the virtual clock with a scripted recognizer (timing and
decisions are the subject here); tests/test_safety_speech.py hears the same phrases
spoken by real voices through PocketSphinx.
"""

from __future__ import annotations

import pytest

from tests.scripted import SECONDS_PER_WORD, SOURCE, first, routine, run_script, run_script_with, says
from voice_skill.asr.base import Hypothesis
from voice_skill.core.coach import EPISODE_QUIET_S, TEN_MINUTES_S, Coach, Messages, Say
from voice_skill.core.intents import FAMILY_SLOT, INTENT_NAMES, IntentParser, PhraseTable
from voice_skill.core.routine import fill_placeholders, routine_from_dict
from voice_skill.errors import RoutineError

MESSAGES = Messages.load()
PARSER = IntentParser()

# Each family as people say it: the forms from the findings, and a few more.
FAMILIES: dict[tuple[str, str], list[str]] = {
    ("emergency", "call"): ["call for help", "I need help", "somebody help", "ambulance", "emergency",
                            "call an ambulance", "this is an emergency"],
    ("emergency", "chest"): ["my chest hurts", "chest pain", "I have a pain in my chest"],
    ("emergency", "breathing"): ["I can't breathe", "I'm short of breath", "it's hard to breathe"],
    ("emergency", "faint"): ["I feel faint", "I think I'm going to pass out", "I feel dizzy"],
    ("red_flag", "swelling"): ["it's swelling", "my leg is swollen", "my calf is swollen", "it's all puffy"],
    ("red_flag", "redness"): ["my calf is red", "it looks red", "there's some redness"],
    ("red_flag", "warmth"): ["my leg is hot", "it feels warm", "it's warm", "it's hot to touch"],
    ("red_flag", "weakness"): ["my leg is weak", "my leg feels weak", "there's no strength in it"],
    ("red_flag", "numbness"): ["it's numb", "tingling", "I've got pins and needles"],
    ("red_flag", "circulation"): ["my foot is cold", "my foot is pale", "my foot is blue", "it's turned blue"],
    ("red_flag", "injury"): ["I hurt my leg", "I pulled something", "I heard a pop", "I think I tore something"],
    ("red_flag", "weight"): ["I can't move it", "I can't stand", "I can't walk", "I can't put weight on it"],
}
EVERY_PHRASE = [(intent, family, text) for (intent, family), texts in FAMILIES.items() for text in texts]
IDS = [text for _, _, text in EVERY_PHRASE]


def fill(key: str, leg: str | None = None) -> str:
    return fill_placeholders(MESSAGES[key], leg)


def notice() -> str:
    return MESSAGES["notice"]


def started(events) -> list[str]:
    return [e["routine"] for e in events if e["event"] == "routine" and e["state"] == "started"]


def said(events) -> list[str]:
    return [text for _, text in says(events)]


def episodes(events) -> list[dict]:
    return [e for e in events if e["event"] == "episode"]


# ---- phrase families ------------------------------------------------------------------

@pytest.mark.parametrize("intent, family, text", EVERY_PHRASE, ids=IDS)
@pytest.mark.parametrize("frame", ["{}", "oh no, {}", "my calf cramp, {}, what do I do", "wait, {} now"])
def test_every_family_is_heard_in_any_sentence(intent, family, text, frame):
    """Safety outranks everything: a longer trigger or command in the same sentence
    does not hide it."""
    heard = PARSER.parse(frame.format(text))
    assert heard is not None and heard.name == intent, heard
    assert heard.slots.get(FAMILY_SLOT) == family


def test_every_intent_in_a_sentence_is_listed_the_one_taken_first():
    """Over the skill's voice a safety phrase made of its echo gives way to another one in the same
    words (session.py), so the parser lists them all, best first, each with its own family."""
    found = PARSER.parse_all("repeat that, it at puffy get help er i heard a pop, then don't stop")
    assert [(i.name, i.phrase) for i in found] == [
        ("emergency", "get help"), ("red_flag", "i heard a pop"), ("red_flag", "heard a pop"), ("red_flag", "puffy"),
        ("repeat", "repeat that"), ("repeat", "repeat"), ("help", "help")]  # "don't stop" is no "stop"
    assert found[0] == PARSER.parse("repeat that, it at puffy get help er i heard a pop, then don't stop")
    # the family is the intent's, as parse gives it: the first of the table's heard anywhere
    assert found[1].slots.get(FAMILY_SLOT) == PARSER.parse("puffy i heard a pop").slots.get(FAMILY_SLOT) == "swelling"
    assert "emergency" in found[1].also and "red_flag" in found[0].also
    assert PARSER.parse_all("nothing to hear here") == [] and PARSER.parse_all("") == []

@pytest.mark.parametrize("text", ["help", "what can I say"])
def test_plain_help_still_lists_the_commands(text):
    events = run_script([(1.0, text)], 3)
    assert said(events) == [MESSAGES["help"]]


@pytest.mark.parametrize("text, intent", [
    ("it won't stop", "still_cramping"), ("I can't stop it", "still_cramping"), ("it's not gone", "still_cramping"),
    ("still cramping", "still_cramping"), ("not done", "still_cramping"), ("I'm not done", "still_cramping"),
    ("it is not better", "still_cramping"), ("don't stop", None), ("it's not done yet", "still_cramping"),
])
def test_negations_never_stop_or_finish(text, intent):
    heard = PARSER.parse(text)
    assert (heard.name if heard else None) == intent


@pytest.mark.parametrize("text, intent", [
    ("I don't have a cramp", None), ("it's not a cramp", None), ("that was never a cramp", None),
    ("I don't have a calf cramp", None), ("not again, a charley horse", "start"),
    ("no more cramp", "done"), ("no more calf cramp", "done"), ("no longer cramping", "done"),
    ("the cramp went away", "done"), ("cramp gone", "done"), ("the cramp has passed", "done"),
    ("the cramp is finally gone", "done"), ("the cramp is no more", "done"), ("no cramp anymore", "done"),
    ("my calf cramp, it's better now", "done"), ("calf cramp all better", "done"),
    # the cramp going on, and pleas with words that could undo it: still a cramp
    ("the cramp is not gone", "still_cramping"), ("cramp, not any better", "start"),
    ("cramp please make it better", "start"), ("oh no cramp", "start"), ("I think it's a cramp", "start"),
    ("I don't know what to do, calf cramp", "start"), ("calf cramp, it won't go away", "start"),
])
def test_a_trigger_the_words_around_it_take_back_starts_nothing(text, intent):
    """``[retraction]`` in the phrase table: a negation before "cramp" leaves nothing, the
    cramp's passing said around it is its end; a plea or "not gone" keeps it the cramp."""
    heard = PARSER.parse(text)
    assert (heard.name if heard else None) == intent, heard
    assert heard is None or "start" not in heard.also or intent == "still_cramping"


@pytest.mark.parametrize("text", ["the cramp went away", "no more cramp", "I don't have a cramp"])
def test_the_cramps_end_said_with_nothing_running_starts_nothing(text):
    events = run_script([(1.0, text)], 30)
    assert started(events) == [] and not episodes(events)


def test_no_more_cramp_in_a_routine_ends_it_as_its_gone_does():
    events = run_script([(1.0, "calf cramp"), (3.0, "no more cramp")], 60)
    assert first(events, "heard", text="no more cramp")["intent"] == "done"
    assert episodes(events)[0]["ended_by"] == "gone"


@pytest.mark.parametrize("text, after", [
    ("I don't have a calf cramp", 6), ("it's not a leg cramp", 5), ("no more calf cramp", 4),
    ("the calf cramp is gone", 3), ("my leg cramp went away", 3),  # where the words after it begin
    ("calf cramp", None), ("calf cramp, it won't go away", None), ("the calf cramp is not gone", None),
    ("not again, a charley horse", None), ("I don't have a calf cramp, wait, calf cramp", None), ("hello", None),
])
def test_a_sentence_takes_its_trigger_back_only_where_no_trigger_stands(text, after):
    assert PARSER.takes_back(text) == after


def _spotted_then_heard(sentence: str, start: float = 0.2, spotted_at: float = 1.2, end: float = 1.9) -> list:
    """The trigger spotter's "calf cramp" the moment the phrase ended (at ``spotted_at``), then
    the grammar recognizer's whole sentence (``start`` to ``end``), as ``SpottingRecognizer``
    reports them."""
    return [Hypothesis("calf cramp", 0.99, spotted_at - 0.6, spotted_at), Hypothesis(sentence, 0.9, start, end)]


@pytest.mark.parametrize("sentence", ["i don't have a calf cramp", "it's not a leg cramp"])
def test_a_spotted_trigger_the_sentence_denies_is_withdrawn_with_its_episode(sentence):
    events = run_script(_spotted_then_heard(sentence), 30)
    assert started(events) == ["test-cramp"]
    stopped = first(events, "routine", state="stopped")
    assert stopped["reason"] == "taken back" and stopped["t"] == pytest.approx(1.9)
    assert first(events, "heard", text=sentence)["took_back"] is True
    assert episodes(events) == [{"t": 1.9, "event": "episode", "state": "withdrawn"}]
    assert said(events)[-1] == MESSAGES["taken_back"]
    assert [e for e in events if e["event"] == "step"] == [e for e in events if e["event"] == "step" and e["t"] < 1.9]


def test_a_spotted_trigger_the_sentence_ends_is_withdrawn_and_the_skill_is_glad():
    events = run_script(_spotted_then_heard("the calf cramp is gone"), 30)
    assert first(events, "routine", state="stopped")["reason"] == "taken back"
    assert [e["state"] for e in episodes(events)] == ["withdrawn"]
    assert said(events)[-1].startswith(MESSAGES["eased"])


def test_a_sentence_said_after_the_routine_began_withdraws_nothing():
    """Only the sentence the routine was started from: a denial said once the coaching has begun
    is the person talking about something else."""
    events = run_script([(1.0, "calf cramp")] + _spotted_then_heard("i don't have a calf cramp", 5.0, 6.2, 6.9), 30)
    assert not any(e["event"] == "routine" and e["state"] == "stopped" for e in events)
    assert "took_back" not in first(events, "heard", text="i don't have a calf cramp")


def test_a_withdrawn_routine_in_an_episode_leaves_the_episode_as_it_was():
    events = run_script([(1.0, "calf cramp"), (3.0, "stop")] + _spotted_then_heard("i don't have a calf cramp", 20.0,
                                                                                    21.2, 21.9), 60)
    assert started(events) == ["test-cramp", "test-cramp"]
    assert [e.get("reason") for e in events if e["event"] == "routine" and e["state"] == "stopped"] == [None, "taken back"]
    # the first cramp's episode goes on as it was: it ends, as stopped, a quiet period after the stop
    [episode] = episodes(events)
    assert (episode["state"], episode["how"]) == ("ended", "stopped")
    assert episode["t"] == pytest.approx(first(events, "routine", state="stopped")["t"] + EPISODE_QUIET_S)


def _doubted(text: str, start: float, end: float) -> Hypothesis:
    return Hypothesis(text, 0.8, start, end, safety_doubted=True)


@pytest.mark.parametrize("text, answer", [("i fell it's hot but calf cramp", "red_flag"),
                                          ("my calf is cramping it's pale move", "red_flag_circulation"),
                                          ("oh no my calf is red done why chest hurts", "emergency")])
def test_a_doubted_safety_phrase_in_the_trigger_words_pauses_with_the_whole_answer_and_a_way_back(text, answer):
    """``Hypothesis.safety_doubted`` (the safety head did not bear out a red flag heard in the very
    words that started the routine): the massage stops and the answer is said whole, but the
    routine is paused, not ended; "resume" carries on; no answer is held, so a cramp after a
    stop starts the routine again."""
    events = run_script([Hypothesis("calf cramp", 0.99, 0.6, 1.2), _doubted(text, 0.2, 1.9), (35.0, "resume"),
                         (55.0, "stop"), (65.0, "calf cramp")], 90)
    assert [e["state"] for e in events if e["event"] == "routine"] == ["started", "paused", "resumed", "stopped",
                                                                        "started", "finished"]
    warning = first(events, "warning")
    assert warning["doubted"] is True and warning["t"] == pytest.approx(1.9)
    assert first(events, "heard", text=text)["doubted"] is True
    doubted = next(t for t in said(events) if t.startswith(MESSAGES["doubted"]))
    assert fill(answer) in doubted and doubted.endswith(MESSAGES["doubted_resume"])
    assert sum(t == MESSAGES["resumed"] for t in said(events)) == 1


def test_a_doubted_red_flag_with_nothing_running_is_the_red_flag():
    events = run_script([_doubted("i fell it's hot", 0.2, 1.9)], 30)
    assert said(events)[0].startswith(fill("red_flag")) and "doubted" not in first(events, "warning")


def test_a_retraction_table_is_checked_when_loaded():
    base = {"intents": {"start": {"phrases": ["cramp"]}, "done": {"phrases": ["done"]}}}
    table = PhraseTable.from_dict({**base, "retraction": {"intents": ["start"], "denied": ["not"], "linking": ["a"]}})
    parser = IntentParser(table)
    assert parser.parse("not a cramp") is None and parser.parse("not again a cramp").name == "start"
    for bad in ({"intents": ["nope"]}, {"intents": ["start"], "ended_after": ["gone"]},
                {"intents": ["start"], "denied": "not"}, {"intents": ["start"], "window": 0},
                {"intents": ["start"], "linking": [1]}, ["start"]):
        with pytest.raises(RoutineError, match="retraction"):
            PhraseTable.from_dict({**base, "retraction": bad})


# ---- the emergency --------------------------------------------------------------------

EMERGENCY_PARTS = [
    "I cannot call anyone.",  # says plainly the skill cannot call
    "If this is an emergency, call your local emergency number now.",
    "Chest pain, trouble breathing or feeling faint",  # the warning signs, briefly
    "painful or swollen leg",
    "need urgent care.",
    "I'll stay quiet and keep listening.",
]


def test_the_emergency_answer_is_never_shortened():
    """A product safety rule, not from the sources: every part stays, and the coach says
    it whole, with nothing appended and nothing cutting it off."""
    text = MESSAGES["emergency"]
    assert MESSAGES.sources["emergency"] == "product safety rule"
    for part in EMERGENCY_PARTS:
        assert part in text
    assert len(text.split()) >= sum(len(p.split()) for p in EMERGENCY_PARTS)
    events = run_script([(1.0, "calf cramp"), (3.0, "call for help")], 40)
    assert (3.0, text) in says(events)
    assert not [e for e in events if e["event"] == "cut" and e["text"] == text]


@pytest.mark.parametrize("text", ["call for help", "I need help", "ambulance", "my chest hurts", "I can't breathe",
                                  "I feel faint"])
def test_the_emergency_ends_the_routine_and_the_skill_stays_quiet(text):
    events = run_script([(1.0, "calf cramp"), (3.0, text)], TEN_MINUTES_S + 60)
    assert first(events, "routine", state="stopped")["reason"] == "emergency"
    assert first(events, "warning", emergency=PARSER.parse(text).phrase)["t"] == 3.0
    after = [(t, s) for t, s in says(events) if t >= 3.0]
    assert after == [(3.0, MESSAGES["emergency"])]  # no ten-minute advice, no notice, no routine
    assert not [e for e in events if e["event"] == "step" and e["t"] > 3.0]
    assert episodes(events)[0]["how"] == "emergency"


def test_a_trigger_after_the_emergency_repeats_it_and_starts_no_massage():
    events = run_script([(1.0, "call an ambulance"), (30.0, "calf cramp")], 60)
    assert started(events) == []
    assert said(events) == [MESSAGES["emergency"], MESSAGES["emergency"]]


def test_with_nothing_running_a_safety_phrase_buried_in_other_speech_is_the_tv():
    news = "the news said an ambulance was called to the main road after the crash"
    events = run_script([(1.0, news), (8.0, "oh no I think my chest hurts")], 30)
    assert first(events, "heard", text=news)["ignored"] == "buried in other speech"
    assert said(events) == [MESSAGES["emergency"]]


def test_the_emergency_outside_a_routine_gets_the_same_answer():
    events = run_script([(1.0, "my chest hurts")], 20)
    assert said(events) == [MESSAGES["emergency"]]


# ---- red flags ------------------------------------------------------------------------

@pytest.mark.parametrize("intent, family, text", [p for p in EVERY_PHRASE if p[0] == "red_flag"],
                         ids=[t for i, _, t in EVERY_PHRASE if i == "red_flag"])
def test_each_red_flag_stops_the_massage_with_the_right_advice(intent, family, text):
    events = run_script([(1.0, "calf cramp"), (3.0, text)], 30)
    assert first(events, "routine", state="stopped")["reason"] == "red_flag"
    warning = first(events, "warning")
    assert warning["sign"] == family and warning["red_flag"] == PARSER.parse(text).phrase
    key = "red_flag_circulation" if family == "circulation" else "red_flag"
    assert warning["text"] == f"{fill(key)} {notice()}"
    assert "no heat" in warning["text"].lower() and "no rubbing" in warning["text"].lower()
    assert ("urgently" in warning["text"]) == (family == "circulation")
    assert not [e for e in events if e["event"] == "step" and e["t"] > 3.0]


def test_a_red_flag_said_over_the_skill_with_other_words_is_obeyed():
    """'Step one here.' is spoken from 1.4 s to 2.6 s; the user talks over it."""
    events = run_script([(1.0, "calf cramp"), (2.2, "oh no my leg is swollen")], 30)
    heard = first(events, "heard", text="oh no my leg is swollen")
    assert heard["intent"] == "red_flag" and "ignored" not in heard
    assert first(events, "routine", state="stopped")["reason"] == "red_flag"


def test_a_safety_phrase_the_skill_itself_was_saying_is_its_own_voice():
    # the built-in phrase table refuses such a line in a routine; one checked against another
    # table (``run --phrases``) may say it, and the guard must still know its own words
    other = PhraseTable.from_dict({"intents": {"start": {"phrases": ["calf cramp"]}, "stop": {"phrases": ["stop"]}}})
    r = routine_from_dict(routine(steps=[{"id": "look", "say": "See if it is swollen, then relax.", "hold_s": 3,
                                          "source": SOURCE}]), phrases=other)
    events = run_script([(1.0, "calf cramp"), (2.4, "it is swollen")], 20, routines=[r])
    heard = first(events, "heard", text="it is swollen")
    assert heard["ignored"] == "own voice"
    assert not [e for e in events if e["event"] == "routine" and e["state"] == "stopped"]


def test_a_trigger_after_a_red_flag_repeats_the_advice_and_starts_no_massage():
    events = run_script([(1.0, "calf cramp"), (3.0, "I heard a pop"), (60.0, "calf cramp")], 90)
    assert started(events) == ["test-cramp"]
    assert said(events)[-1] == fill("red_flag")


# ---- sharp or lasting pain ------------------------------------------------------------

@pytest.mark.parametrize("text", ["it's getting worse", "it hurts", "it's sharp", "it still hurts"])
def test_pain_in_a_routine_stops_the_massage(text):
    events = run_script([(1.0, "calf cramp"), (3.0, text)], 30)
    assert first(events, "routine", state="stopped")["reason"] == "worse"
    assert said(events)[-1] == f"{fill('worse')} {notice()}"
    assert started(events) == ["test-cramp"]


def test_worse_after_the_routine_gets_the_same_answer():
    events = run_script([(1.0, "calf cramp"), (60.0, "it's getting worse")], 90)
    assert first(events, "routine", state="finished")["t"] < 60.0
    assert (60.0, fill("worse")) in says(events)  # the notice came with the outro
    assert episodes(events)[0]["how"] == "worse"


def test_it_hurts_as_the_first_thing_said_is_answered():
    events = run_script([(1.0, "it hurts")], 20)
    assert said(events) == [f"{fill('worse')} {notice()}"]
    assert started(events) == []


def test_every_intent_outside_a_routine_gets_an_answer():
    for name, phrases in PARSER.table.intents:
        text = " ".join(phrases[0])
        events = run_script([(1.0, text)], 5)
        assert said(events), f"{name} ({text!r}) heard with nothing running got no answer"
    assert {name for name, _ in PARSER.table.intents} == set(INTENT_NAMES)


# ---- pregnancy ------------------------------------------------------------------------

def test_pregnancy_mid_routine_switches_to_the_gentle_routine_for_the_episode():
    events = run_script([(1.0, "calf cramp"), (3.0, "I'm pregnant"), (100.0, "still cramping")], 150)
    assert first(events, "routine", state="stopped")["reason"] == "pregnant"
    assert started(events) == ["test-cramp", "gentle", "gentle"]
    midwife = [s for s in said(events) if "midwife" in s]
    assert midwife == [MESSAGES["pregnancy"]]


def test_pregnancy_said_on_its_own_makes_the_next_trigger_gentle():
    events = run_script([(1.0, "I am pregnant"), (15.0, "calf cramp")], 60)
    assert said(events)[0] == MESSAGES["pregnancy"]
    assert started(events) == ["gentle"]


def test_pregnancy_and_a_cramp_in_one_sentence():
    events = run_script([(1.0, "I'm pregnant and I have a calf cramp")], 10)
    assert started(events) == ["gentle"]
    assert said(events)[0] == MESSAGES["pregnancy"]


def test_the_midwife_is_not_named_without_pregnancy():
    events = run_script([(1.0, "calf cramp"), (3.0, "it hurts"), (200.0, "calf cramp")], 260)
    assert not [s for s in said(events) if "midwife" in s]


# ---- episodes and the ten-minute rule -------------------------------------------------

def _routine_seconds() -> float:
    events = run_script([(1.0, "calf cramp")], 2)
    return first(events, "routine", state="finished")["t"] - 1.0


def test_the_ten_minute_rule_counts_episode_time_across_routines():
    """Routines back to back, each re-triggered as the last one ends ("calf cramp", "it
    won't stop"), the last one paused: the advice comes at exactly ten minutes from the
    first trigger, once, though no routine lasted even one minute."""
    length = _routine_seconds()
    assert length < 60
    every = length + 3.0
    script = [(1.0 + k * every, "it won't stop" if k % 2 else "calf cramp") for k in range(int(560 / every))]
    last = script[-1][0] + every
    script += [(last, "calf cramp"), (last + 2.0, "pause")]
    assert last < 1.0 + TEN_MINUTES_S < last + length
    events = run_script(script, 720)
    warnings = [e for e in events if e["event"] == "warning" and "ten minutes" in e["text"]]
    assert [w["t"] for w in warnings] == [pytest.approx(1.0 + TEN_MINUTES_S)]
    assert (pytest.approx(1.0 + TEN_MINUTES_S), MESSAGES["ten_minutes"]) in says(events)
    assert len(started(events)) == len(script) - 1
    last_start = max(e["t"] for e in events if e["event"] == "routine" and e["state"] == "started")
    assert not [e for e in episodes(events) if e["t"] <= last_start]  # one episode all along


def test_the_advice_waits_for_the_next_trigger_when_the_house_is_quiet():
    """At ten minutes nothing is running: nobody is woken; the next sign that the cramp
    goes on (still in the same episode) hears it first."""
    events = run_script([(1.0, "calf cramp"), (700.0, "it's not gone")], 760)
    warnings = [e for e in events if e["event"] == "warning" and "ten minutes" in e["text"]]
    assert [w["t"] for w in warnings] == [700.0]
    assert not [t for t, _ in says(events) if 100.0 < t < 700.0]
    at_700 = [s for t, s in says(events) if t >= 700.0]
    assert at_700[0] == MESSAGES["ten_minutes"]
    assert len(episodes(events)) == 1 and len(started(events)) == 2


def test_the_episode_ends_after_the_quiet_period():
    length = _routine_seconds()
    events = run_script([(1.0, "calf cramp"), (1.0 + length + EPISODE_QUIET_S + 5.0, "calf cramp")],
                        2 * EPISODE_QUIET_S)
    ends = episodes(events)
    assert len(ends) == 2
    assert ends[0]["ended_by"] == "quiet"
    assert ends[0]["t"] == pytest.approx(1.0 + length + EPISODE_QUIET_S, abs=0.05)
    assert ends[0]["duration_s"] == pytest.approx(length, abs=0.05)
    assert not [e for e in events if e["event"] == "warning"]


def test_its_gone_ends_the_episode_and_a_later_trigger_starts_another():
    events = run_script([(1.0, "calf cramp"), (3.0, "it's gone"), (100.0, "calf cramp")], 150)
    ends = episodes(events)
    assert ends[0]["ended_by"] == "gone" and ends[0]["t"] < 100.0
    assert len(ends) == 2


@pytest.mark.parametrize("text", ["it won't stop", "I can't stop it", "still cramping", "it's not gone"])
def test_a_cramp_that_goes_on_keeps_the_routine_going(text):
    events = run_script([(1.0, "calf cramp"), (3.0, text)], 60)
    assert not [e for e in events if e["event"] == "routine" and e["state"] == "stopped"]
    assert MESSAGES["still_cramping"] in said(events)
    assert first(events, "routine", state="finished")


@pytest.mark.parametrize("text", ["it won't stop", "he can't stop it", "it's back", "not gone", "it's still there"])
def test_a_cramp_going_on_with_no_cramp_heard_starts_nothing(text):
    """A television's "he can't stop it" or "it's back" is no cramp: with no routine and no
    episode, such words get a prompt to name the cramp; after one (the episode's minutes) they
    start the routine again."""
    events = run_script([(1.0, text)], 30)
    assert first(events, "heard", text=text)["intent"] == "still_cramping"
    assert said(events) == [MESSAGES["no_cramp_heard"]] and started(events) == []
    again = run_script([(1.0, "calf cramp"), (3.0, "stop"), (60.0, text)], 90)
    assert [e["state"] for e in again if e["event"] == "routine"][:3] == ["started", "stopped", "started"]
    assert MESSAGES["no_cramp_heard"] not in said(again)
    # ... and in the minutes after an episode that "it's gone" ended, not after 15 more
    for at, starts in ((120.0, True), (3.0 + EPISODE_QUIET_S + 200.0, False)):
        later = run_script([(1.0, "calf cramp"), (3.0, "it's gone"), (at, text)], at + 30)
        assert episodes(later)[0]["ended_by"] == "gone" and episodes(later)[0]["t"] < at
        assert (MESSAGES["no_cramp_heard"] not in said(later)) == starts, at
        assert len([e for e in later if e["event"] == "routine" and e["state"] == "started"]) == 1 + starts, at


@pytest.mark.parametrize("text", ["it's still cramping", "my calf is still cramping"])
def test_still_cramping_with_no_cramp_heard_before_is_a_trigger(text):
    events = run_script([(1.0, text)], 30)
    assert first(events, "heard", text=text)["intent"] == "still_cramping"
    first(events, "routine", state="started")


def test_still_cramping_in_the_aftercare_starts_the_routine_over():
    events = run_script([(1.0, "calf cramp"), (3.0, "it's gone"), (4.5, "it's still there")], 80)
    steps = [e["id"] for e in events if e["event"] == "step"]
    assert steps[:3] == ["one", "care", "one"]
    assert MESSAGES["once_more"] in said(events)
    assert len(episodes(events)) == 1


def test_not_done_does_not_skip_to_aftercare():
    events = run_script([(1.0, "calf cramp"), (3.0, "I'm not done")], 60)
    steps = [e["id"] for e in events if e["event"] == "step"]
    assert steps == ["one", "hold", "strokes", "care"]


# ---- the notice -----------------------------------------------------------------------

@pytest.mark.parametrize("ending", ["stop", "it's swollen", "it hurts"])
def test_the_notice_is_said_once_per_episode_however_it_ended(ending):
    events = run_script([(1.0, "calf cramp"), (3.0, ending), (3.0 + EPISODE_QUIET_S + 10, "calf cramp"),
                         (3.0 + EPISODE_QUIET_S + 12, "stop")], 2 * EPISODE_QUIET_S + 60)
    with_notice = [(t, s) for t, s in says(events) if notice() in s]
    assert len(with_notice) == 2 and with_notice[0][0] == 3.0
    assert not notice().startswith("A reminder")


def test_the_notice_comes_once_in_an_episode_of_several_routines():
    events = run_script([(1.0, "calf cramp"), (60.0, "calf cramp"), (120.0, "calf cramp")], 200)
    assert len([s for s in said(events) if notice() in s]) == 1


# ---- pace and position ----------------------------------------------------------------

def test_faster_never_shortens_a_hold_below_its_floor():
    steps = [{"id": "ball", "say": "Rest on the ball.", "settle_s": 4, "hold_s": 15, "min_hold_s": 15,
              "countdown": [15, 10, 5, 1], "release": "Release.", "pressure": "light", "source": SOURCE}]
    r = routine(steps=steps)
    ball_said = 1.0 + SECONDS_PER_WORD * 1 + SECONDS_PER_WORD * 4  # "Hello." then the step
    events = run_script([(1.0, "calf cramp"), (ball_said + 6.0, "faster"), (ball_said + 9.0, "faster")], 60,
                        routines=[r])
    assert first(events, "hold")["settle_s"] == 4
    fifteen = [t for t, s in says(events) if s == "Fifteen seconds."]
    assert fifteen == [pytest.approx(ball_said + 4.0)]  # time to get onto the ball first
    release = [t for t, s in says(events) if s == "Release."][0]
    assert release - fifteen[0] >= 15.0 - 1e-6


def test_the_coach_alone_tells_its_episodes_apart():
    """The same rules with no session around them: the coach is a pure state machine."""
    r = routine_from_dict(routine())
    coach = Coach({r.id: r}, MESSAGES)
    coach.handle(PARSER.parse("calf cramp"), 0.0)
    assert coach.in_episode and coach.episode_start == 0.0
    out = coach.handle(PARSER.parse("my foot is blue"), 2.0)
    assert [a.text for a in out if isinstance(a, Say)] == [f"{fill('red_flag_circulation')} {notice()}"]
    assert not coach.active and coach.in_episode
    assert coach.next_deadline() == pytest.approx(TEN_MINUTES_S)
    assert coach.tick(TEN_MINUTES_S) == []  # nothing running and a red flag given: no voice in the dark
    assert coach.next_deadline() == pytest.approx(2.0 + EPISODE_QUIET_S)
    ended = coach.tick(2.0 + EPISODE_QUIET_S)
    assert [a.fields for a in ended] == [{"state": "ended", "how": "red_flag", "ended_by": "quiet", "duration_s": 2.0}]
    assert not coach.in_episode and coach.next_deadline() is None


def test_frequent_and_episode_notes_do_not_clash():
    events = run_script_with(lambda coach: setattr(coach, "frequent_cramps", True), [(1.0, "calf cramp")], 60)
    outro = [s for s in said(events) if s.startswith("Bye now.")]
    assert outro == [f"Bye now. {MESSAGES['frequent']} {notice()}"]
