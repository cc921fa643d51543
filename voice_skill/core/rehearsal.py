"""A routine rehearsed: the real coach run on a virtual clock, with a stand-in speaker that
takes as long to say a line as espeak-ng would (``speechtime.estimate_seconds``).

The coach is the one source of its timeline. ``routines show``, routine lengths and the
training corpus's "own voice" sentences come from this rehearsal, so they cannot drift
from what the coach does (an earlier copy of the pacing rules in ``routine.py`` had).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Mapping

from voice_skill.core.coach import CancelSpeech, Coach, Emit, Messages, Say
from voice_skill.core.intents import Intent
from voice_skill.core.routine import Routine
from voice_skill.core.speechtime import DEFAULT_RATE_WPM, estimate_seconds

_FIRST_LINES = 3  # a routine's opening lines, rendered before anything else (fixed_sentences)
_MAX_ACTIONS = 100_000  # a routine is a few hundred lines; more means the coach is stuck


@dataclass(frozen=True)
class Line:
    """One line the coach says: when it starts and ends (seconds from the trigger), its kind
    (``intro``, ``step``, ``countdown``, ``cue``, ``release``, ``outro`` or the coach's own
    kind for anything else) and the step it belongs to (None for the intro and outro)."""

    start_s: float
    end_s: float
    kind: str
    text: str
    step: int | None = None
    step_id: str = ""


def rehearse(routine: Routine, *, messages: Messages | None = None, pace: float = 1.0,
             wpm: float = DEFAULT_RATE_WPM, leg: str | None = None) -> list[Line]:
    """Every line of ``routine`` as the coach says it from the trigger to the end of its outro,
    at ``pace`` (1 is normal; larger is slower) and ``wpm`` words a minute, for ``leg``."""
    coach = Coach({routine.id: routine}, messages, base_pace=pace)
    slots = {"leg": leg} if leg else {}
    intent = Intent("start" if routine.context == "active-cramp" else "stretch", "rehearsal", slots)
    lines: list[Line] = []
    finishing: list[tuple[float, int]] = []  # (end time, utterance id), a heap
    free_at = 0.0  # when the speaker has said everything queued so far
    step: int | None = None
    step_id = ""
    started = finished = False

    def take(actions: list, now: float) -> None:
        nonlocal free_at, step, step_id, started, finished
        for action in actions:
            if isinstance(action, Say):
                start = max(now, free_at)
                free_at = start + estimate_seconds(action.text, wpm)
                kind = action.kind
                if kind == "reply" and step is None:
                    kind = "intro"
                elif kind == "reply" and coach.phase == "closing":
                    kind, step, step_id = "outro", None, ""
                lines.append(Line(round(start, 3), round(free_at, 3), kind, action.text, step, step_id))
                heapq.heappush(finishing, (free_at, action.utterance_id))
            elif isinstance(action, CancelSpeech):
                raise RuntimeError(f"{routine.id}: the coach cut itself off in an uninterrupted rehearsal")
            elif isinstance(action, Emit) and action.event == "step":
                step, step_id = int(action.fields["index"]), str(action.fields["id"])
            elif isinstance(action, Emit) and action.event == "routine":
                started = started or action.fields.get("state") == "started"
                finished = action.fields.get("state") in ("finished", "stopped")

    take(coach.handle(intent, 0.0), 0.0)
    if not started:
        raise RuntimeError(f"{routine.id}: the coach did not start the routine")
    for _ in range(_MAX_ACTIONS):
        if finished:
            return lines
        deadline = coach.next_deadline()
        if finishing and (deadline is None or finishing[0][0] <= deadline + 1e-9):
            end, uid = heapq.heappop(finishing)
            take(coach.speech_finished(uid, end), end)
        elif deadline is not None:
            take(coach.tick(deadline), deadline)
        else:
            break
    raise RuntimeError(f"{routine.id}: the rehearsal did not reach the end of the routine")


def rehearsal_seconds(routine: Routine, **options) -> float:
    """How long ``routine`` takes from the trigger to the end of its outro (see ``rehearse``)."""
    return max(line.end_s for line in rehearse(routine, **options))


def _scripts(routines: Mapping[str, Routine] | None, messages: Messages) -> list[list[str]]:
    from voice_skill.core.routine import builtin_routines  # noqa: PLC0415

    routines = routines if routines is not None else builtin_routines()
    return [[line.text for line in rehearse(routine, messages=messages, leg=leg)]
            for routine in routines.values() for leg in (None, "left", "right")]


def opening_sentences(routines: Mapping[str, Routine] | None = None, messages: Messages | None = None) -> list[str]:
    """The first lines of every routine (for either leg or none): what a trigger is answered
    with, and so what the speech cache renders first."""
    out: dict[str, None] = {}
    for script in _scripts(routines, messages or Messages.load()):
        out.update(dict.fromkeys(script[:_FIRST_LINES]))
    return list(out)


def fixed_sentences(routines: Mapping[str, Routine] | None = None, messages: Messages | None = None) -> list[str]:
    """Every sentence the coach can say with these routines (the built-in ones by default) and
    messages, for either leg or none: the text the speech cache renders before it is needed.
    The first lines of every routine come first, so a cache being filled has them soonest."""
    from voice_skill.core.routine import fill_placeholders  # noqa: PLC0415

    messages = messages or Messages.load()
    out = dict.fromkeys(opening_sentences(routines, messages))
    for script in _scripts(routines, messages):
        out.update(dict.fromkeys(script))
    for text in messages.texts.values():
        for leg in (None, "left", "right"):
            out.setdefault(fill_placeholders(text, leg))
    return list(out)
