"""Routines as data: TOML files of steps, validated on load.

The code knows nothing about calves. A routine is a list of steps; each step is spoken,
then held for ``hold_s`` seconds (scaled by the pace), during which countdown marks and
pacing cues are spoken, then released. Every problem in a file is reported as one
``RoutineError`` naming the file, the step and the field.

One module on purpose: the routine file format, its checks and the choice of a routine
for the time of day and context read the same fields; split, they would drift apart.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from voice_skill.errors import RoutineError

if TYPE_CHECKING:
    from voice_skill.core.intents import IntentParser, PhraseTable

PRESSURES = ("none", "light", "moderate", "firm")
PHASES = ("main", "aftercare")
CONTEXTS = ("active-cramp", "prevention")
# When a trigger starts a routine (``suits`` in a routine file): at night, by day, when the
# words name a workout, for someone pregnant (light pressure only). The code names these
# situations, never a routine's id, so a user's routine can take the place of a built-in one.
SITUATIONS = ("night", "day", "workout", "pregnancy")
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
MAX_SENTENCES_BEFORE_TIMER = 2
MAX_HOLD_S = 120.0
MAX_SETTLE_S = 15.0
PLACEHOLDERS = ("calf", "leg")  # filled in by the coach: "{calf}" -> "left calf" or "calf"
CUE_CLEARANCE_S = 2.0  # no pacing cue this close to a countdown mark or the release (as the coach)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# Safety rules for routines used during a cramp: a muscle in active spasm gets worse
# under heavy pressure (001_7222d781596cc83e.txt, "Is massaging a calf spasm safe ...").
ACTIVE_CRAMP_MAX_PRESSURE = "moderate"
ACTIVE_CRAMP_FIRST_PRESSURE = "light"


# The sections of the two source texts (shared/seeds), by file. Every step names the
# passage it follows as "FILE#Section". The texts themselves are not shipped (the skill
# must not depend on a folder beside its checkout), so their section titles are listed
# here; tests/test_routines.py checks this list against the texts wherever they are present.
SEED_SECTIONS: Mapping[str, frozenset[str]] = {
    "000_221f2455f934c1ce.txt": frozenset({
        "How does a calf release massage work on calf cramps?", "Understanding Calf Cramps",
        "How Calf Release Massage Works", "Improving Blood Circulation", "Relaxing the Muscles",
        "Stimulating the Nervous System", "Types of Calf Release Massage", "Swedish Massage",
        "Deep Tissue Massage", "Sports Massage", "Leg and Thigh Massage", "Acupressure Calf",
        "Leg and Butt Massage", "Benefits of Calf Release Massage", "Reducing Stress and Anxiety",
        "Improving Flexibility and Range of Motion", "Preventing Future Cramps", "Conclusion",
    }),
    "001_7222d781596cc83e.txt": frozenset({
        "Calf Cramp Massage: Simple Steps to Relieve Tight, Cramping Muscles Fast", "What Causes Calf Cramps?",
        "What Is a Calf Cramp Massage?", "Why Calf Cramp Massage Works", "Preparing for a Calf Massage",
        "How to Massage a Calf Cramp (Step-by-Step)", "Best Techniques for Calf Muscle Cramps",
        "Stretches That Help Calf Cramps", "Calf Cramp Massage", "How to Prevent Calf Cramps",
        "When to See a Doctor", "Frequently Asked Questions",
        "Does calf cramp massage actually help stop muscle cramps?",
        "What causes calf cramps, and when is massage the best treatment?",
        "How long should I massage a calf cramp for fast relief?",
        "Why do calf cramps happen at night, and can massage help?",
        "Can you use calf cramp massage during pregnancy?",
        "Is massaging a calf spasm safe when the muscle feels very tight?",
        "What\u2019s the best way to prevent calf cramps from coming back?",
        "Should I use heat, ice, or massage for a calf cramp?", "Conclusion",
    }),
}
SPOKEN_FIELDS = ("intro", "outro", "say", "cue", "release")


@dataclass(frozen=True)
class Step:
    id: str
    say: str
    hold_s: float = 0.0
    countdown: tuple[int, ...] = ()
    cue: str = ""
    cue_every_s: float = 0.0
    release: str = ""
    gap_s: float = 1.0
    pressure: str = "none"
    phase: str = "main"
    source: str = ""
    settle_s: float = 0.0  # time to get into position after the text, before the hold and its countdown
    min_hold_s: float = 0.0  # the hold never gets shorter than this, whatever the pace

    @property
    def has_timer(self) -> bool:
        return self.hold_s > 0


@dataclass(frozen=True)
class Routine:
    id: str
    title: str
    context: str
    max_pressure: str
    intro: str
    outro: str
    steps: tuple[Step, ...]
    path: str = ""
    suits: tuple[str, ...] = ()  # the SITUATIONS it is meant for

    def first_aftercare(self) -> int | None:
        for i, step in enumerate(self.steps):
            if step.phase == "aftercare":
                return i
        return None


def suited_routine(routines: Mapping[str, Routine], situation: str) -> str | None:
    """The id of the routine meant for ``situation`` (see ``routine.SITUATIONS``): the last
    one that suits it, so a user's routine (loaded after the built-in ones) takes its place."""
    found = [r.id for r in routines.values() if r.context == "active-cramp" and situation in r.suits]
    return found[-1] if found else None


def count_sentences(text: str) -> int:
    return len([p for p in _SENTENCE_END.split(text.strip()) if p.strip()])


def _above(pressure: str, limit: str) -> bool:
    return PRESSURES.index(pressure) > PRESSURES.index(limit)


class _Checker:
    def __init__(self, path: str, phrases: "PhraseTable | None" = None) -> None:
        self.path = path
        self._phrases = phrases
        self._parser: "IntentParser | None" = None

    def spoken(self, text: str, key: str, where: str) -> None:
        """Spoken text must not hold a phrase the skill obeys: its own voice reaches its
        microphone, and "Next, calf cramp" in a cue would restart the routine. Checked as
        the coach says it: placeholders filled with and without a leg."""
        if not text:
            return
        if self._parser is None:
            from voice_skill.core.intents import IntentParser  # noqa: PLC0415 (intents imports this module's error)

            self._parser = IntentParser(self._phrases)
        for leg in (None, "left", "right"):
            heard = self._parser.parse(fill_placeholders(text, leg))
            if heard is not None:
                also = f", and words for {', '.join(sorted(heard.also))}" if heard.also else ""
                raise self.fail(where, f"field '{key}' says \"{heard.phrase}\", which the skill obeys "
                                       f"({heard.name}{also}); it would hear itself and act on it: reword it")

    def source(self, source: str, where: str) -> None:
        seed, _, section = source.partition("#")
        seed, section = seed.strip(), section.strip()
        if not seed or not section:
            raise self.fail(where, "field 'source' must name a seed file and section as 'FILE#Section'")
        if seed not in SEED_SECTIONS:
            raise self.fail(where, f"field 'source' names {seed!r}, not one of the source texts "
                                   f"({', '.join(sorted(SEED_SECTIONS))})")
        if section not in SEED_SECTIONS[seed]:
            close = difflib.get_close_matches(section, sorted(SEED_SECTIONS[seed]), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail(where, f"field 'source' names a section {section!r} that {seed} does not have{hint}")

    def fail(self, where: str, problem: str) -> RoutineError:
        return RoutineError(f"{where}: {problem}", path=self.path)

    def text(self, table: Mapping[str, Any], key: str, where: str, required: bool = True) -> str:
        value = table.get(key, None)
        if value is None:
            if required:
                raise self.fail(where, f"field '{key}' is missing")
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(where, f"field '{key}' must be a non-empty string")
        for name in _PLACEHOLDER.findall(value):
            if name not in PLACEHOLDERS:
                raise self.fail(where, f"field '{key}' has an unknown placeholder {{{name}}}; "
                                       f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        if "{" in _PLACEHOLDER.sub("", value) or "}" in _PLACEHOLDER.sub("", value):
            raise self.fail(where, f"field '{key}' has an unmatched brace")
        return " ".join(value.split())

    def number(self, table: Mapping[str, Any], key: str, where: str, default: float, lo: float, hi: float) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise self.fail(where, f"field '{key}' must be a number, not {value!r}")
        if not lo <= value <= hi:
            raise self.fail(where, f"field '{key}' is {value}; allowed {lo:g} to {hi:g}")
        return float(value)

    def choice(self, table: Mapping[str, Any], key: str, where: str, allowed: tuple[str, ...], default: str | None) -> str:
        value = table.get(key, default)
        if value not in allowed:
            raise self.fail(where, f"field '{key}' is {value!r}; allowed: {', '.join(allowed)}")
        return value


_STEP_KEYS = {"id", "say", "hold_s", "countdown", "cue", "cue_every_s", "release", "gap_s", "pressure", "phase", "source",
              "settle_s", "min_hold_s"}
_ROUTINE_KEYS = {"id", "title", "context", "max_pressure", "intro", "outro", "steps", "suits"}


def routine_from_dict(data: Mapping[str, Any], path: str = "<routine>", phrases: "PhraseTable | None" = None) -> Routine:
    """A checked Routine; RoutineError naming the file, the step and the field. Spoken text
    is checked against ``phrases`` (default: the built-in phrase table)."""
    c = _Checker(path, phrases)
    unknown = set(data) - _ROUTINE_KEYS
    if unknown:
        raise c.fail("routine", f"unknown field '{sorted(unknown)[0]}'")
    rid = c.text(data, "id", "routine")
    if not _ID.match(rid):
        raise c.fail("routine", f"field 'id' is {rid!r}; use lower-case words joined by '-'")
    title = c.text(data, "title", "routine")
    context = c.choice(data, "context", "routine", CONTEXTS, None)
    max_pressure = c.choice(data, "max_pressure", "routine", PRESSURES, None)
    if context == "active-cramp" and _above(max_pressure, ACTIVE_CRAMP_MAX_PRESSURE):
        raise c.fail("routine", f"field 'max_pressure' is {max_pressure!r}; a routine for an active cramp "
                                f"goes no higher than {ACTIVE_CRAMP_MAX_PRESSURE!r}")
    suits = data.get("suits", [])
    if not isinstance(suits, list) or not all(isinstance(x, str) for x in suits):
        raise c.fail("routine", "field 'suits' must be a list of words")
    for situation in suits:
        if situation not in SITUATIONS:
            raise c.fail("routine", f"field 'suits' holds {situation!r}; allowed: {', '.join(SITUATIONS)}")
    if suits and context != "active-cramp":
        raise c.fail("routine", "field 'suits' chooses cramp routines; a routine for "
                                f"{context!r} is started by its own words")
    if "pregnancy" in suits and _above(max_pressure, "light"):
        raise c.fail("routine", f"field 'max_pressure' is {max_pressure!r}; a routine for pregnancy "
                                "goes no higher than 'light'")
    intro = c.text(data, "intro", "routine")
    outro = c.text(data, "outro", "routine")
    c.spoken(intro, "intro", "routine")
    c.spoken(outro, "outro", "routine")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise c.fail("routine", "needs at least one [[steps]] table")
    steps: list[Step] = []
    seen: set[str] = set()
    pressed = False  # has an earlier step put pressure on the muscle?
    for n, raw in enumerate(raw_steps, start=1):
        if not isinstance(raw, dict):
            raise c.fail(f"step {n}", "must be a table")
        label = f"step {n}"
        sid = c.text(raw, "id", label)
        label = f"step {n} ({sid})"
        if not _ID.match(sid):
            raise c.fail(label, f"field 'id' is {sid!r}; use lower-case words joined by '-'")
        if sid in seen:
            raise c.fail(label, "field 'id' repeats an earlier step's id")
        seen.add(sid)
        unknown = set(raw) - _STEP_KEYS
        if unknown:
            raise c.fail(label, f"unknown field '{sorted(unknown)[0]}'")
        say = c.text(raw, "say", label)
        hold_s = c.number(raw, "hold_s", label, 0.0, 0.0, MAX_HOLD_S)
        countdown_raw = raw.get("countdown", [])
        if not isinstance(countdown_raw, list) or not all(isinstance(m, int) and not isinstance(m, bool) for m in countdown_raw):
            raise c.fail(label, "field 'countdown' must be a list of whole seconds")
        countdown = tuple(countdown_raw)
        if countdown:
            if hold_s <= 0:
                raise c.fail(label, "field 'countdown' needs a positive 'hold_s'")
            if list(countdown) != sorted(set(countdown), reverse=True):
                raise c.fail(label, "field 'countdown' must count down without repeats")
            if countdown[-1] < 1 or countdown[0] > hold_s:
                raise c.fail(label, f"field 'countdown' marks must lie between 1 and hold_s ({hold_s:g})")
            if count_sentences(say) > MAX_SENTENCES_BEFORE_TIMER:
                raise c.fail(label, f"field 'say' has more than {MAX_SENTENCES_BEFORE_TIMER} sentences before a countdown")
        cue = c.text(raw, "cue", label, required=False)
        cue_every_s = c.number(raw, "cue_every_s", label, 0.0, 0.0, MAX_HOLD_S)
        if bool(cue) != (cue_every_s > 0):
            raise c.fail(label, "fields 'cue' and 'cue_every_s' go together")
        if cue and hold_s <= 0:
            raise c.fail(label, "field 'cue' needs a positive 'hold_s'")
        release = c.text(raw, "release", label, required=False)
        if release and hold_s <= 0:
            raise c.fail(label, "field 'release' needs a positive 'hold_s' (it is spoken when the hold ends)")
        gap_s = c.number(raw, "gap_s", label, 1.0, 0.0, 30.0)
        settle_s = c.number(raw, "settle_s", label, 0.0, 0.0, MAX_SETTLE_S)
        if settle_s and hold_s <= 0:
            raise c.fail(label, "field 'settle_s' needs a positive 'hold_s' (it is the time before the hold)")
        min_hold_s = c.number(raw, "min_hold_s", label, 0.0, 0.0, MAX_HOLD_S)
        if min_hold_s > hold_s:
            raise c.fail(label, f"field 'min_hold_s' is {min_hold_s:g}, longer than 'hold_s' ({hold_s:g})")
        pressure = c.choice(raw, "pressure", label, PRESSURES, "none")
        if PRESSURES.index(pressure) > PRESSURES.index(max_pressure):
            raise c.fail(label, f"field 'pressure' is {pressure!r}, above the routine's max_pressure {max_pressure!r}")
        if context == "active-cramp" and not pressed and _above(pressure, ACTIVE_CRAMP_FIRST_PRESSURE):
            raise c.fail(label, f"field 'pressure' is {pressure!r}; the first massage step of a routine for an "
                                f"active cramp starts gentle ({ACTIVE_CRAMP_FIRST_PRESSURE!r} at most)")
        pressed = pressed or pressure != "none"
        phase = c.choice(raw, "phase", label, PHASES, "main")
        source = c.text(raw, "source", label)
        c.source(source, label)
        for key, text in (("say", say), ("cue", cue), ("release", release)):
            c.spoken(text, key, label)
        steps.append(Step(sid, say, hold_s, countdown, cue, cue_every_s, release, gap_s, pressure, phase, source,
                          settle_s, min_hold_s))
    phases = [s.phase for s in steps]
    if "aftercare" in phases and "main" in phases[phases.index("aftercare"):]:
        raise c.fail("routine", "aftercare steps must come after all main steps")
    return Routine(rid, title, context, max_pressure, intro, outro, tuple(steps), path, tuple(suits))


def check_spoken_text(routine: Routine, phrases: "PhraseTable") -> None:
    """Check a loaded routine's spoken text against another phrase table (``run --phrases``):
    RoutineError naming the routine's file, the step and the field."""
    c = _Checker(routine.path or routine.id, phrases)
    c.spoken(routine.intro, "intro", "routine")
    c.spoken(routine.outro, "outro", "routine")
    for n, step in enumerate(routine.steps, start=1):
        for key in ("say", "cue", "release"):
            c.spoken(getattr(step, key), key, f"step {n} ({step.id})")


def load_routine(path: str | Path, phrases: "PhraseTable | None" = None) -> Routine:
    name = str(path)
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RoutineError("no such file", path=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutineError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", path=name) from None
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise RoutineError(f"not valid TOML: {exc}", path=name) from None
    return routine_from_dict(data, name, phrases)


def builtin_routines() -> dict[str, Routine]:
    """The routines that ship with the package, by id."""
    found: dict[str, Routine] = {}
    folder = resources.files("voice_skill") / "data" / "routines"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            with resources.as_file(entry) as p:
                routine = load_routine(p)
            found[routine.id] = routine
    return found


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str:
    """Whole numbers 0..999 in words, for spoken countdowns."""
    if n < 0 or n > 999:
        raise ValueError(n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    hundreds, rest = divmod(n, 100)
    return f"{_ONES[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")


# ---- the spoken script and its timing ------------------------------------------------
#
# ``voice-skill routines show`` and the routine tests need to know how long a routine
# takes and when each line is heard. This mirrors the coach's pacing (voice_skill/core/coach.py)
# with an estimated speaking time per utterance and a speaker that says one thing at a
# time; tests/test_routines.py checks it against the coach itself.


def fill_placeholders(text: str, leg: str | None = None) -> str:
    """``{calf}`` and ``{leg}`` as the coach says them: "left calf" once a leg is named, else "calf"."""
    side = f"{leg} " if leg else ""
    return text.replace("{calf}", f"{side}calf").replace("{leg}", f"{side}leg")


def hold_lines(step: Step, pace: float = 1.0) -> tuple[float, list[tuple[float, str, str]]]:
    """A step's hold length at ``pace`` (never under its ``min_hold_s``) and what is said
    during it, as the coach schedules them: (seconds remaining when due, text, kind), in
    the order they are due. The step's ``settle_s`` comes before all of it."""
    hold = max(round(step.hold_s * pace, 1), step.min_hold_s)
    lines: list[tuple[float, str, str]] = []
    marks = [m for m in step.countdown if m < hold]
    if step.countdown:
        lines.append((hold, f"{number_words(int(round(hold))).capitalize()} seconds.", "countdown"))
    for m in marks:
        lines.append((float(m), f"{number_words(m).capitalize()}.", "countdown"))
    if step.cue:
        every = step.cue_every_s * pace
        t = every
        while hold - t > CUE_CLEARANCE_S:
            r = hold - t
            if all(abs(r - m) >= CUE_CLEARANCE_S for m in marks) and (not step.countdown or r < hold - CUE_CLEARANCE_S):
                lines.append((r, step.cue, "cue"))
            t += every
    lines.sort(key=lambda item: -item[0])
    return hold, lines
