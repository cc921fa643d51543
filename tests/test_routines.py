"""The built-in routines: they load, they fit the time and safety rules, they trace to the
seed texts without copying them, and the ``routines`` subcommand lists, shows and validates.

The seed texts live in ``shared/seeds`` beside the checkout; the tests that need them skip
when that folder is absent.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from voice_skill.cli.main import main as cli_main

from tests.scripted import ScriptedRecognizer
from voice_skill.audio.pcm import AudioChunk
from voice_skill.cli import routines as routines_cli
from voice_skill.core.clock import VirtualClock
from voice_skill.core.coach import Coach, Messages
from voice_skill.core.intents import IntentParser
from voice_skill.core.rehearsal import rehearse
from voice_skill.core.routine import (
    MAX_SENTENCES_BEFORE_TIMER,
    PRESSURES,
    Routine,
    builtin_routines,
    count_sentences,
    fill_placeholders,
    hold_lines,
    load_routine,
    number_words,
)
from voice_skill.core.speechtime import estimate_seconds
from voice_skill.errors import RoutineError
from voice_skill.runtime.eventlog import EventLog
from voice_skill.runtime.session import Session
from voice_skill.tts.virtual import VirtualSpeaker

ROUTINE_DIR = Path(routines_cli.__file__).resolve().parents[1] / "data" / "routines"
MESSAGES = Path(routines_cli.__file__).resolve().parents[1] / "data" / "messages.toml"
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
CRAMP_ROUTINES = ("night-cramp", "day-cramp", "workout-cramp", "gentle")
EXPECTED = ("night-cramp", "day-cramp", "workout-cramp", "gentle", "bedtime-stretches")

# Words the skill obeys, and words that start it: its own voice reaches its microphone.
COMMAND_WORDS = {"next", "back", "repeat", "pause", "wait", "resume", "continue", "slower", "faster",
                 "stop", "cancel", "done", "help", "skip", "again"}
TRIGGER_WORDS = {"cramp", "cramping", "cramps", "charley"}
SHARED_RUN = 8  # this many consecutive words in common with a seed counts as copying

# How long each built-in routine takes at normal pace, from the trigger to the end of its outro
# (with the not-medical-advice notice the first outro carries), in seconds. Measured by running
# the real session and coach on a virtual clock with a speaker that takes espeak-ng's time at
# 165 wpm for each line (``_session_seconds`` below; test_the_coach_takes_these_lengths checks
# they still hold). Written out so that what ``routines list`` and ``show`` print is compared
# with a figure of its own, not with the function that printed it. A change to a routine's
# text or timing changes these: measure again and update them with the change.
COACH_SECONDS = {
    "bedtime-stretches": 218.75,
    "day-cramp": 148.00,
    "gentle": 146.26,
    "night-cramp": 165.73,
    "workout-cramp": 127.43,
}


# ---- helpers --------------------------------------------------------------------------

def norm_words(text: str) -> list[str]:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[^a-z0-9']+", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def spoken_texts(routine: Routine) -> list[tuple[str, str]]:
    """(where, text) for every line the routine makes the coach say, placeholders filled."""
    out = [("intro", routine.intro), ("outro", routine.outro), ("title", routine.title)]
    for n, s in enumerate(routine.steps, start=1):
        for name in ("say", "cue", "release"):
            if getattr(s, name):
                out.append((f"step {n} ({s.id}) {name}", getattr(s, name)))
    return [(where, fill_placeholders(text, "left")) for where, text in out]


def message_texts() -> list[tuple[str, str]]:
    import tomllib

    found: list[tuple[str, str]] = []

    def walk(prefix: str, value: object) -> None:
        if prefix.endswith(".source"):
            return  # where a line comes from, not something said
        if isinstance(value, str):
            found.append((prefix, fill_placeholders(value.replace("{pace}", "normal"), "left")))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)

    walk("", tomllib.loads(MESSAGES.read_text(encoding="utf-8")))
    return found


class SeedIndex:
    """Normalised sentences and word runs of the seed texts, for spotting copied text."""

    def __init__(self, texts: list[str], run: int = SHARED_RUN) -> None:
        self.run = run
        self.sentences: set[str] = set()
        self.runs: set[tuple[str, ...]] = set()
        for text in texts:
            for s in sentences(text):
                words = norm_words(s)
                if words:
                    self.sentences.add(" ".join(words))
            for para in re.split(r"\n\s*\n", text):
                words = norm_words(para)
                self.runs.update(tuple(words[i:i + run]) for i in range(len(words) - run + 1))

    def copied(self, text: str) -> list[str]:
        """What in ``text`` is copied: whole sentences, and runs of ``run`` shared words."""
        problems = []
        for s in sentences(text):
            if " ".join(norm_words(s)) in self.sentences:
                problems.append(f"sentence {s!r}")
        words = norm_words(text)
        for i in range(len(words) - self.run + 1):
            if tuple(words[i:i + self.run]) in self.runs:
                problems.append(f"words {' '.join(words[i:i + self.run])!r}")
        return problems


def seed_headings(text: str) -> set[str]:
    """The short title lines of a seed text (not sentences, not list items)."""
    heads = set()
    for line in text.splitlines():
        s = " ".join(line.split())
        if s and len(s) <= 80 and not s.endswith(".") and not s.startswith(("\u2022", "http")):
            heads.add(s)
    return heads


@pytest.fixture(scope="module")
def routines() -> dict[str, Routine]:
    return builtin_routines()


@pytest.fixture(scope="module")
def seeds() -> dict[str, str]:
    if not SEEDS.is_dir():
        pytest.skip("the seed texts (shared/seeds beside the checkout) are not here")
    found = {p.name: p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))}
    if not found:
        pytest.skip("no seed texts in shared/seeds")
    return found


def all_steps(routines: dict[str, Routine]):
    for r in routines.values():
        for n, s in enumerate(r.steps, start=1):
            yield r, n, s


# ---- loading and timing ---------------------------------------------------------------

def test_every_builtin_routine_loads(routines):
    assert set(EXPECTED) <= set(routines)
    files = sorted(ROUTINE_DIR.glob("*.toml"))
    assert len(files) == len(routines)
    for path in files:
        routine = load_routine(path)
        assert routine.id == path.stem, f"{path.name}: id {routine.id!r} should match the file name"
        assert routine.steps == routines[routine.id].steps
        assert all(s.say and s.source for s in routine.steps)


def test_contexts_and_pressure_ceilings(routines):
    assert routines["night-cramp"].context == "active-cramp"
    assert routines["night-cramp"].max_pressure == "moderate"
    assert routines["workout-cramp"].context == "active-cramp"
    assert routines["gentle"].max_pressure == "light"
    assert routines["bedtime-stretches"].context == "prevention"


def _session_seconds(routines: dict[str, Routine], rid: str) -> float:
    """Run ``rid`` through the real session and coach on a virtual clock, triggered 1 s in,
    with every line taking espeak-ng's time at 165 wpm; seconds from its start to its finish."""
    clock, out = VirtualClock(), io.StringIO()
    speaker = VirtualSpeaker(clock, lambda text: (estimate_seconds(text, 165.0), None))
    coach = Coach(routines, Messages.load(), choose_routine=lambda intent, now: rid)
    session = Session(recognizer=ScriptedRecognizer([(1.0, "calf cramp")]), parser=IntentParser(), coach=coach,
                      speaker=speaker, clock=clock, events=EventLog(out))
    silence = b"\0\0" * 1600
    for i in range(4000):  # 400 s, far longer than any routine
        session.feed(AudioChunk(silence, i * 0.1))
    session.end_of_stream()
    states = {e["state"]: e["t"] for e in map(json.loads, out.getvalue().splitlines())
              if e["event"] == "routine" and e["routine"] == rid}
    assert set(states) == {"started", "finished"}, states
    return states["finished"] - states["started"]


def _mmss(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


@pytest.mark.parametrize("rid", EXPECTED)
def test_the_coach_takes_these_lengths(routines, rid):
    assert set(COACH_SECONDS) == set(routines)
    assert _session_seconds(routines, rid) == pytest.approx(COACH_SECONDS[rid], abs=0.01)


@pytest.mark.parametrize("rid", CRAMP_ROUTINES)
def test_cramp_routines_take_one_to_three_minutes(routines, rid):
    seconds = _session_seconds(routines, rid)
    assert 60 <= seconds <= 180, f"{rid} takes {seconds:.0f} s at normal pace"


def test_hold_lines_for_the_sustained_pressure_step(routines):
    step = next(s for s in routines["night-cramp"].steps if s.id == "sustained-pressure")
    assert step.hold_s == 15 and step.countdown == (15, 10, 5, 4, 3, 2, 1) and step.release == "Release."
    hold, lines = hold_lines(step)
    assert hold == 15
    assert [(r, t) for r, t, _ in lines] == [
        (15, "Fifteen seconds."), (10, "Ten."), (5, "Five."), (4, "Four."), (3, "Three."), (2, "Two."), (1, "One.")]


@pytest.mark.parametrize("pace", [1.0, 1.25, 0.8])
@pytest.mark.parametrize("rid", EXPECTED)
def test_the_rehearsal_follows_the_routine_data(routines, rid, pace):
    """``routines show`` prints the coach's own timeline. Checked here against the routine
    file, not against the coach: every line of the data is said once, in order, one at a
    time; a timed step's countdown starts ``settle_s`` after the step was said and its marks
    fall on whole seconds before the release; a gap of ``gap_s`` times the pace follows."""
    routine = routines[rid]
    lines = rehearse(routine, pace=pace)
    said = fill_placeholders  # no leg named: "{calf}" is said "calf"
    assert lines[0].start_s == 0 and lines[0].kind == "intro" and lines[0].text == said(routine.intro)
    assert lines[-1].kind == "outro" and lines[-1].text.startswith(said(routine.outro))
    for before, after in zip(lines, lines[1:]):
        assert after.start_s >= before.end_s - 1e-6, (before, after)  # one voice, one line at a time
    for line in lines:
        assert line.end_s - line.start_s == pytest.approx(estimate_seconds(line.text), abs=2e-3)
    step_lines = [line for line in lines if line.kind == "step"]
    assert [line.text for line in step_lines] == [said(step.say) for step in routine.steps]
    for i, step in enumerate(routine.steps):
        mine = [line for line in lines if line.step == i]
        assert mine[0].kind == "step" and mine[0].step_id == step.id
        if not step.has_timer:
            continue
        hold = max(round(step.hold_s * pace, 1), step.min_hold_s)
        hold_start = mine[0].end_s + step.settle_s
        hold_end = hold_start + hold
        countdown = [line for line in mine if line.kind == "countdown"]
        if step.countdown:
            assert countdown[0].start_s == pytest.approx(hold_start, abs=2e-3)
            for line in countdown[1:]:
                mark = next(n for n in range(1, 200) if line.text == f"{number_words(n).capitalize()}.")
                assert mark in step.countdown
                assert line.start_s == pytest.approx(max(hold_end - mark, 0), abs=0.6), line
        release = [line for line in mine if line.kind == "release"]
        if step.release:
            assert release[0].start_s >= hold_end - 1e-6 and release[0].text == said(step.release)
            end = release[0].end_s
        else:
            end = hold_end
        following = [line for line in lines if line.start_s > end + 1e-6 and line.step != i]
        if following and i + 1 < len(routine.steps):
            assert following[0].start_s == pytest.approx(end + step.gap_s * pace, abs=2e-3), step.id


# ---- safety ---------------------------------------------------------------------------

def test_active_cramp_steps_never_exceed_moderate(routines):
    for r, n, s in all_steps(routines):
        if r.context == "active-cramp":
            assert PRESSURES.index(s.pressure) <= PRESSURES.index("moderate"), f"{r.id} step {n} ({s.id})"


def test_first_massage_step_of_an_active_cramp_routine_is_light(routines):
    cramp = [r for r in routines.values() if r.context == "active-cramp"]
    assert {r.id for r in cramp} >= set(CRAMP_ROUTINES)
    for r in cramp:
        first = next(s for s in r.steps if s.pressure != "none")
        assert PRESSURES.index(first.pressure) <= PRESSURES.index("light"), f"{r.id}: {first.id} starts too firm"


def test_gentle_and_pregnancy_routines_stay_light(routines):
    light = PRESSURES.index("light")
    pregnancy = [r for r in routines.values()
                 if any(w in " ".join(t for _, t in spoken_texts(r)).lower() for w in ("pregnan", "midwife"))]
    for r in [routines["gentle"], *pregnancy]:
        assert PRESSURES.index(r.max_pressure) <= light, r.id
        for s in r.steps:
            assert PRESSURES.index(s.pressure) <= light, f"{r.id}: {s.id}"
    gentle_words = " ".join(norm_words(" ".join(t for _, t in spoken_texts(routines["gentle"]))))
    for deep in ("tennis ball", "deep pressure", "firm", "press hard", "dig"):
        assert deep not in gentle_words


def test_pregnancy_is_routed_to_a_light_routine(routines):
    intent = IntentParser().parse("I'm pregnant and I have a calf cramp")
    assert intent is not None and intent.name == "start"
    hint = intent.slots.get("routine")
    assert hint in routines, f"the pregnancy hint {hint!r} names no routine"
    assert PRESSURES.index(routines[hint].max_pressure) <= PRESSURES.index("light")


def test_at_most_two_short_sentences_before_a_countdown(routines):
    for r, n, s in all_steps(routines):
        if s.countdown:
            assert count_sentences(s.say) <= MAX_SENTENCES_BEFORE_TIMER, f"{r.id} step {n} ({s.id})"


def test_sentences_are_short(routines):
    for r in routines.values():
        for where, text in spoken_texts(r):
            for sentence in sentences(text):
                assert len(norm_words(sentence)) <= 16, f"{r.id} {where}: {sentence!r}"


def test_spoken_text_avoids_command_and_trigger_words(routines):
    parser = IntentParser()
    for r in routines.values():
        for line in rehearse(r):
            words = set(norm_words(line.text))
            assert not words & (COMMAND_WORDS | TRIGGER_WORDS), f"{r.id} says {line.text!r}"
            heard = parser.parse(line.text)
            assert heard is None, f"{r.id} says {line.text!r}, which the skill hears as {heard.name!r}"


def test_placeholders_name_the_leg(routines):
    assert any("{calf}" in t or "{leg}" in t for r in routines.values() if r.context == "active-cramp"
               for t in [r.intro, *(s.say for s in r.steps)])
    lines = rehearse(routines["night-cramp"], leg="left")
    assert any("left calf" in line.text for line in lines)
    assert not any("{" in line.text for r in routines.values() for line in rehearse(r))


# ---- sources --------------------------------------------------------------------------

def test_every_source_names_a_real_seed_section(routines, seeds):
    headings = {name: seed_headings(text) for name, text in seeds.items()}
    for r, n, s in all_steps(routines):
        seed, _, section = s.source.partition("#")
        assert seed in seeds, f"{r.id} step {n} ({s.id}): no seed file {seed!r}"
        assert section in headings[seed], f"{r.id} step {n} ({s.id}): {seed} has no section {section!r}"


def test_seed_headings_are_found(seeds):
    heads = seed_headings(seeds["001_7222d781596cc83e.txt"])
    assert {"Preparing for a Calf Massage", "How to Massage a Calf Cramp (Step-by-Step)",
            "Stretches That Help Calf Cramps", "When to See a Doctor", "How to Prevent Calf Cramps"} <= heads
    assert not any(h.startswith("Before starting") for h in heads)


def test_the_copy_detector_catches_copies(seeds):
    index = SeedIndex(list(seeds.values()))
    assert index.copied("Stretching restores proper muscle length and reduces future cramping.")  # a seed sentence
    assert index.copied("Okay: hydration and mineral balance are essential for healthy muscle function")
    assert not index.copied("Now stroke slowly from the ankle up to the knee, with light hands.")


def test_no_routine_or_message_copies_the_seeds(routines, seeds):
    index = SeedIndex(list(seeds.values()))
    texts = [(f"{r.id} {where}", t) for r in routines.values() for where, t in spoken_texts(r)]
    texts += [(f"messages.toml {where}", t) for where, t in message_texts()]
    copied = [(where, problem) for where, text in texts for problem in index.copied(text)]
    assert not copied


# ---- issue 12: the source details -----------------------------------------------------

# Words that mean the user changes position (a ball under the calf, a towel round the foot,
# a wall to lean on, the other side): a countdown after one of these needs time to get there.
POSITION_WORDS = ("tennis ball", "towel", "wall", "behind you", "switch sides", "sit ", "lie down", "stand")
SETTLE_MIN_S = 3.0


def test_a_countdown_after_a_change_of_position_waits_for_the_user(routines):
    checked = 0
    for r, n, s in all_steps(routines):
        if s.countdown and any(w in s.say.lower() for w in POSITION_WORDS):
            checked += 1
            assert s.settle_s >= SETTLE_MIN_S, f"{r.id} step {n} ({s.id}) counts down with no time to get there"
    assert checked >= 8  # the tennis ball (two routines), the wall stretches, the towels


@pytest.mark.parametrize("rid", ["night-cramp", "day-cramp"])
@pytest.mark.parametrize("pace", [0.64, 0.8, 1.0, 1.95])
def test_the_tennis_ball_is_an_option_held_at_least_fifteen_seconds(routines, rid, pace):
    """001 Step-by-Step: a tennis ball *if you need deeper pressure*, weight shifted onto it
    *gently*, held 15 to 20 seconds *until the discomfort softens*."""
    step = next(s for s in routines[rid].steps if "tennis ball" in s.say)
    said = step.say.lower()
    assert "if you need more pressure" in said and "gently" in said and "until it eases" in said
    hold, lines = hold_lines(step, pace)
    assert hold >= 15
    assert lines[0] == (hold, f"{number_words(int(round(hold))).capitalize()} seconds.", "countdown")
    timeline = [line for line in rehearse(routines[rid], pace=pace) if line.step_id == step.id]
    said_at = timeline[0].end_s
    countdown_at = next(line.start_s for line in timeline if line.kind == "countdown")
    release_at = next(line.start_s for line in timeline if line.kind == "release")
    assert countdown_at - said_at >= SETTLE_MIN_S  # time to get the calf onto the ball
    assert release_at - countdown_at >= 15 - 1e-6


def test_heat_and_ice_as_the_sources_give_them(routines):
    """Heat: after the massage (001 Step-by-Step) or before it (001 heat-or-ice); ice
    afterwards if the calf is sore (001 heat-or-ice)."""
    heat_or_ice = "001_7222d781596cc83e.txt#Should I use heat, ice, or massage for a calf cramp?"
    step_by_step = "001_7222d781596cc83e.txt#How to Massage a Calf Cramp (Step-by-Step)"
    for rid in CRAMP_ROUTINES:
        r = routines[rid]
        ice = [s for s in r.steps if s.source == heat_or_ice and "sore" in s.say and s.phase == "aftercare"]
        assert ice, f"{rid}: no ice-when-sore line"
        for i, s in enumerate(r.steps):
            if s.source == heat_or_ice and "warm" in s.say:  # heat cited to heat-or-ice comes before the massage
                assert all(t.pressure == "none" for t in r.steps[:i]), f"{rid}: {s.id} is heat after massage"
            if s.phase == "aftercare" and "warm" in s.say:
                assert s.source == step_by_step, f"{rid}: heat afterwards is the step-by-step's advice"


def test_no_line_can_be_heard_as_putting_weight_on_the_calf(routines):
    for r in routines.values():
        for line in rehearse(r):
            assert "rest on it" not in line.text.lower(), f"{r.id}: {line.text!r}"


def test_only_the_workout_routine_speaks_of_a_run_or_a_gym(routines):
    for r in routines.values():
        if r.id == "workout-cramp":
            continue
        words = " ".join(line.text.lower() for line in rehearse(r))
        for gym in ("workout", "session", "gym", " run", "halt", "sports drink"):
            assert gym not in words, f"{r.id} assumes a workout: {gym!r}"


def test_the_midwife_is_named_only_on_the_pregnancy_path(routines):
    messages = Messages.load()
    for r in routines.values():
        assert "midwife" not in " ".join(line.text.lower() for line in rehearse(r)), r.id
    assert [k for k, t in messages.texts.items() if "midwife" in t] == ["pregnancy"]


def test_every_message_names_its_source(seeds):
    """Every line the coach says outside routines traces to a seed section, to the
    product safety rule, or is plain interface talk."""
    headings = {name: seed_headings(text) for name, text in seeds.items()}
    messages = Messages.load()
    assert set(messages.sources) == set(messages.texts)
    for key, source in messages.sources.items():
        if source in ("product safety rule", "interface"):
            continue
        seed, _, section = source.partition("#")
        assert seed in seeds and section in headings[seed], f"messages.{key}: {source!r} is no seed section"
    for key in ("emergency", "notice"):
        assert messages.sources[key] == "product safety rule"
    for key in ("red_flag", "red_flag_circulation", "worse", "ten_minutes", "pregnancy"):
        assert "#" in messages.sources[key], f"messages.{key} gives health advice: it needs a seed section"


# ---- validation of bad files ----------------------------------------------------------

GOOD = '''\
id = "tiny"
title = "Tiny"
context = "active-cramp"
max_pressure = "moderate"
intro = "Here we go."
outro = "All finished."

[[steps]]
id = "settle"
say = "Settle your {leg}."
source = "001_7222d781596cc83e.txt#Preparing for a Calf Massage"

[[steps]]
id = "hold-it"
say = "Toes toward your shin."
hold_s = 10
countdown = [10, 5, 1]
release = "Relax."
pressure = "light"
source = "001_7222d781596cc83e.txt#Preparing for a Calf Massage"
'''


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad-routine.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_good_template_loads(tmp_path):
    routine = load_routine(_write(tmp_path, GOOD))
    assert [s.id for s in routine.steps] == ["settle", "hold-it"]


BAD = [
    ("missing field", 'say = "Toes toward your shin."\n', "", "step 2", "say"),
    ("bad type", "hold_s = 10\n", 'hold_s = "ten"\n', "step 2", "hold_s"),
    ("countdown upward", "countdown = [10, 5, 1]", "countdown = [1, 5, 10]", "step 2", "countdown"),
    ("countdown past hold", "countdown = [10, 5, 1]", "countdown = [12, 5, 1]", "step 2", "countdown"),
    ("countdown to zero", "countdown = [10, 5, 1]", "countdown = [10, 5, 0]", "step 2", "countdown"),
    ("countdown not numbers", "countdown = [10, 5, 1]", 'countdown = ["ten"]', "step 2", "countdown"),
    ("unknown field", 'pressure = "light"\n', 'pressure = "light"\nduration_s = 3\n', "step 2", "duration_s"),
    ("pressure above max", 'pressure = "light"', 'pressure = "firm"', "step 2", "pressure"),
    ("first massage too firm", 'pressure = "light"', 'pressure = "moderate"', "step 2", "pressure"),
    ("active cramp firm", 'max_pressure = "moderate"', 'max_pressure = "firm"', "routine", "max_pressure"),
    ("unknown placeholder", "Settle your {leg}.", "Settle your {foot}.", "step 1", "say"),
    ("unmatched brace", "Settle your {leg}.", "Settle your {leg.", "step 1", "say"),
    ("release without hold", 'say = "Settle your {leg}."', 'say = "Settle your {leg}."\nrelease = "Relax."',
     "step 1", "release"),
    ("source without section", 'source = "001_7222d781596cc83e.txt#Preparing for a Calf Massage"\n\n[[steps]]',
     'source = "001_7222d781596cc83e.txt#"\n\n[[steps]]', "step 1", "source"),
    ("three sentences before a countdown", 'say = "Toes toward your shin."',
     'say = "Sit up. Toes toward your shin. Keep breathing."', "step 2", "say"),
    ("cue without interval", 'release = "Relax."', 'release = "Relax."\ncue = "Keep breathing."', "step 2", "cue"),
    ("settle without hold", 'say = "Settle your {leg}."', 'say = "Settle your {leg}."\nsettle_s = 3',
     "step 1", "settle_s"),
    ("floor above hold", "hold_s = 10\n", "hold_s = 10\nmin_hold_s = 12\n", "step 2", "min_hold_s"),
    ("unknown situation", 'max_pressure = "moderate"', 'max_pressure = "moderate"\nsuits = ["gym"]', "routine", "suits"),
    ("pregnancy too firm", 'max_pressure = "moderate"', 'max_pressure = "moderate"\nsuits = ["pregnancy"]', "routine",
     "max_pressure"),
]


@pytest.mark.parametrize("case, old, new, where, field", BAD, ids=[b[0] for b in BAD])
def test_invalid_routine_names_file_step_and_field(tmp_path, case, old, new, where, field):
    assert old in GOOD, case
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(RoutineError) as caught:
        load_routine(path)
    message = str(caught.value)
    assert str(path) in message
    assert where in message
    assert f"'{field}'" in message
    assert caught.value.exit_code == 2
    assert "\n" not in message


def test_a_users_routine_takes_the_place_of_the_one_it_suits(tmp_path):
    """Routines are chosen by the situations they say they suit, never by a built-in id."""
    from voice_skill.core.intents import Intent
    from voice_skill.runtime.app import routine_chooser

    mine = load_routine(_write(tmp_path, GOOD.replace('max_pressure = "moderate"',
                                                      'max_pressure = "moderate"\nsuits = ["night"]', 1)))
    routines = {**builtin_routines(), mine.id: mine}
    trigger = Intent("start", "calf cramp")
    assert mine.suits == ("night",) and mine.id not in builtin_routines()
    assert routine_chooser(routines, 23.0)(trigger, 0.0) == mine.id
    assert routine_chooser(routines, 15.0)(trigger, 0.0) == "day-cramp"
    assert routine_chooser(routines, 23.0)(Intent("start", "cramp at the gym", {"routine": "workout"}), 0.0) \
        == "workout-cramp"
    assert routine_chooser(routines, 23.0)(Intent("start", "calf cramp", {"routine": "gentle"}), 0.0) == "gentle"
    # without the built-in ones, the one routine there is serves day and night
    assert routine_chooser({mine.id: mine}, 15.0)(trigger, 0.0) == mine.id


def test_the_built_in_routines_cover_every_situation(routines):
    from voice_skill.core.routine import SITUATIONS, suited_routine

    assert {s: suited_routine(routines, s) for s in SITUATIONS} == {
        "night": "night-cramp", "day": "day-cramp", "workout": "workout-cramp", "pregnancy": "gentle"}
    assert routines["gentle"].max_pressure == "light"


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(RoutineError, match="no such file"):
        load_routine(tmp_path / "missing.toml")
    with pytest.raises(RoutineError, match="not valid TOML"):
        load_routine(_write(tmp_path, 'id = "x\n'))


# ---- the routines subcommand ----------------------------------------------------------

def _run(argv: list[str]):
    parser = argparse.ArgumentParser(prog="voice-skill")
    routines_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["routines", *argv])
    return args.func(args)


def _timed_lines(out: str) -> list[tuple[int, str]]:
    lines = []
    for line in out.splitlines():
        m = re.match(r"^(\d\d):(\d\d)  (.*)$", line)
        if m:
            lines.append((int(m.group(1)) * 60 + int(m.group(2)), m.group(3)))
    return lines


def test_cli_list(routines, capsys):
    assert _run(["list"]) == 0
    out = capsys.readouterr().out
    for r in routines.values():
        row = next(line for line in out.splitlines() if line.split()[0] == r.id)
        assert r.title in row
        assert f"{len(r.steps)} steps" in row
        assert _mmss(COACH_SECONDS[r.id]) in row.split()


def test_cli_show_builtin(routines, capsys):
    assert _run(["show", "night-cramp"]) == 0
    out = capsys.readouterr().out
    timed = _timed_lines(out)
    times = [t for t, _ in timed]
    assert times == sorted(times) and times[0] == 0
    texts = [text for _, text in timed]
    assert any(t.startswith("countdown") and t.endswith("Fifteen seconds.") for t in texts)
    assert any(t.startswith("release") and t.endswith("Release.") for t in texts)
    assert any(t.startswith("cue") for t in texts)
    steps = [t for t in texts if t.startswith("step ")]
    assert len(steps) == len(routines["night-cramp"].steps)
    assert texts[-1] == "end"
    assert times[-1] == round(COACH_SECONDS["night-cramp"]) == 166  # 02:46
    # the last marks of the tennis-ball hold are one second apart, and the release follows
    start = next(i for i, t in enumerate(texts) if t.endswith("Fifteen seconds."))
    block = timed[start:start + 9]
    assert [text.split(None, 1)[1] for _, text in block] == [
        "Fifteen seconds.", "Ten.", "Five.", "Four.", "Three.", "Two.", "One.", "Release."] + [block[-1][1].split(None, 1)[1]]
    assert [b[0] - a[0] for a, b in zip(block[2:8], block[3:8])] == [1, 1, 1, 1, 1]
    assert block[1][0] - block[0][0] == 5


def test_cli_show_file_with_leg_and_pace(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text((ROUTINE_DIR / "night-cramp.toml").read_text(encoding="utf-8"), encoding="utf-8")
    assert _run(["show", str(path), "--leg", "left"]) == 0
    normal = capsys.readouterr().out
    assert "left calf" in normal and "{calf}" not in normal
    assert _run(["show", str(path), "--pace", "1.25"]) == 0
    slower = capsys.readouterr().out
    assert _timed_lines(slower)[-1][0] > _timed_lines(normal)[-1][0]


def test_cli_show_unknown_routine(capsys):
    with pytest.raises(RoutineError, match="no-such-routine"):
        _run(["show", "no-such-routine"])
    assert cli_main(["routines", "show", "no-such-routine"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no-such-routine" in err


def test_cli_validate_ok(capsys):
    files = [str(p) for p in sorted(ROUTINE_DIR.glob("*.toml"))]
    assert _run(["validate", *files]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{f}: ok" for f in files]


def test_cli_validate_bad_file(tmp_path, capsys):
    good = str(ROUTINE_DIR / "gentle.toml")
    bad = _write(tmp_path, GOOD.replace('hold_s = 10\n', 'hold_s = "ten"\n'))
    assert cli_main(["routines", "validate", good, str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{good}: ok"]
    err = captured.err.strip().splitlines()
    assert len(err) == 1
    assert str(bad) in err[0] and "step 2" in err[0] and "'hold_s'" in err[0]


# ---- what a routine may say, and where it comes from ------------------------------------

SPOKEN_BAD = [
    ("trigger in a cue", 'release = "Relax."', 'release = "Relax."\ncue = "Next, calf cramp."\ncue_every_s = 4',
     "step 2", "cue", "calf cramp"),
    ("command in a step", 'say = "Toes toward your shin."', 'say = "Stop and pull your toes up."', "step 2", "say",
     "stop"),
    ("command in the intro", 'intro = "Here we go."', 'intro = "Say done when it eases."', "routine", "intro",
     "done"),
    ("trigger made by a placeholder", 'say = "Settle your {leg}."', 'say = "Rub the {calf} cramp away."', "step 1",
     "say", "calf cramp"),
    ("command in a release", 'release = "Relax."', 'release = "Repeat that."', "step 2", "release", "repeat that"),
]


@pytest.mark.parametrize("case, old, new, where, field, phrase", SPOKEN_BAD, ids=[b[0] for b in SPOKEN_BAD])
def test_spoken_text_holding_a_phrase_the_skill_obeys_is_refused(tmp_path, case, old, new, where, field, phrase):
    assert old in GOOD, case
    with pytest.raises(RoutineError) as caught:
        load_routine(_write(tmp_path, GOOD.replace(old, new, 1)))
    message = str(caught.value)
    assert where in message and f"'{field}'" in message and f'"{phrase}"' in message, message


@pytest.mark.parametrize("source, problem", [
    ("001_7222d781596cc83e.txt#How to Massage a Calf Cramp", "does not have"),
    ("001_7222d781596cc83e.txt#Stretches That Help", "did you mean 'Stretches That Help Calf Cramps'"),
    ("002_nothing.txt#Preparing for a Calf Massage", "not one of the source texts"),
])
def test_a_source_must_name_a_section_the_texts_have(tmp_path, source, problem):
    text = GOOD.replace("001_7222d781596cc83e.txt#Preparing for a Calf Massage", source, 1)
    with pytest.raises(RoutineError) as caught:
        load_routine(_write(tmp_path, text))
    assert "step 1" in str(caught.value) and "'source'" in str(caught.value) and problem in str(caught.value)


def test_the_packaged_section_list_matches_the_texts(seeds):
    from voice_skill.core.routine import SEED_SECTIONS

    assert set(SEED_SECTIONS) == set(seeds)
    for name, sections in SEED_SECTIONS.items():
        lines = {" ".join(line.split()) for line in seeds[name].splitlines()}
        assert sections <= lines, sorted(sections - lines)
        assert sections <= seed_headings(seeds[name])


def test_validate_reports_every_file(tmp_path, capsys):
    good = str(ROUTINE_DIR / "gentle.toml")
    first = tmp_path / "first.toml"
    first.write_text(GOOD.replace('hold_s = 10\n', 'hold_s = "ten"\n'), encoding="utf-8")
    second = tmp_path / "second.toml"
    second.write_text(GOOD.replace('intro = "Here we go."', 'intro = "Next, calf cramp."'), encoding="utf-8")
    assert cli_main(["routines", "validate", str(first), good, str(second)]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{good}: ok"]
    err = captured.err.strip().splitlines()
    assert len(err) == 2 and str(first) in err[0] and str(second) in err[1], err
    assert '"calf cramp"' in err[1] and "(start, and words for next)" in err[1], err


# ---- the user's own routines ------------------------------------------------------------

MINE = GOOD.replace('id = "tiny"', 'id = "my-routine"').replace('title = "Tiny"', 'title = "My own routine"')


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("VOICE_SKILL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    folder = tmp_path / "cfg" / "voice-skill" / "routines"
    folder.mkdir(parents=True)
    return folder


def test_routines_list_shows_the_users_own(config_home, capsys):
    (config_home / "mine.toml").write_text(MINE, encoding="utf-8")
    assert cli_main(["routines", "list"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("my-routine"))
    assert "My own routine" in row and str(config_home / "mine.toml") in row
    assert any(line.startswith("night-cramp") and line.rstrip().endswith("built-in") for line in out.splitlines())
    assert str(config_home) in out


def test_a_bad_routine_of_the_users_is_named_not_skipped(config_home, capsys):
    (config_home / "broken.toml").write_text(GOOD.replace('hold_s = 10\n', 'hold_s = "ten"\n'), encoding="utf-8")
    assert cli_main(["routines", "list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(config_home / "broken.toml") in err[0]


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite makes the user's speech")
def test_run_starts_the_users_routine(config_home, tmp_path, capsys):
    from voice_skill.audio.pcm import write_wav
    from voice_skill.devtools.speechgen import compose

    (config_home / "mine.toml").write_text(MINE, encoding="utf-8")
    wav = tmp_path / "calf.wav"
    write_wav(wav, compose([1.0, ("calf cramp", "flite:slt"), 1.0]).samples)
    events = tmp_path / "events.jsonl"
    argv = ["run", "--input", str(wav), "--events", str(events), "--asr", "pocketsphinx", "--spotter", "off",
            "--time-of-day", "23:00"]
    assert cli_main([*argv, "--routine", "my-routine"]) == 0
    log = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["routine"] for e in log if e["event"] == "routine" and e["state"] == "started"] == ["my-routine"]
    # Without the setting, the time of day chooses as before.
    assert cli_main(argv) == 0
    log = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["routine"] for e in log if e["event"] == "routine" and e["state"] == "started"] == ["night-cramp"]
    capsys.readouterr()
    assert cli_main([*argv, "--routine", "no-such-routine"]) == 2
    assert "no-such-routine" in capsys.readouterr().err


def test_run_with_another_phrase_table_checks_the_routines_against_it(config_home, tmp_path, capsys):
    """A phrase file that makes "soft" mean stop: built-in routines say "soft", and would
    stop themselves."""
    phrases = tmp_path / "phrases.toml"
    phrases.write_text('[intents.start]\nphrases = ["calf cramp"]\n[intents.stop]\nphrases = ["soft"]\n',
                       encoding="utf-8")
    wav = tmp_path / "quiet.wav"
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 1600)
    assert cli_main(["run", "--input", str(wav), "--phrases", str(phrases), "--asr", "pocketsphinx",
                     "--spotter", "off"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "routines/" in err[0] and '"soft"' in err[0] and str(phrases) in err[0], err
