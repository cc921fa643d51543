"""A small hand-written recognizer that replays a script of hypotheses, for tests of the
coach and the session loop whose subject is timing, not recognition."""

from __future__ import annotations

import io
import json

from voice_skill.asr.base import Hypothesis
from voice_skill.audio.pcm import AudioChunk
from voice_skill.core.clock import VirtualClock
from voice_skill.core.coach import Coach
from voice_skill.core.intents import IntentParser
from voice_skill.core.routine import Routine, routine_from_dict
from voice_skill.runtime.eventlog import EventLog
from voice_skill.runtime.session import Session
from voice_skill.tts.virtual import VirtualSpeaker

SECONDS_PER_WORD = 0.4


class ScriptedRecognizer:
    name = "scripted"

    def __init__(self, script: list[tuple]) -> None:
        # (end time, text) or (end time, text, final, ...); each utterance lasts 0.5 s. A
        # Hypothesis is taken as it is.
        self.script = [item if isinstance(item, Hypothesis) else Hypothesis(item[1], 0.9, item[0] - 0.5, item[0],
                                                                            *item[2:]) for item in script]

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        due = [h for h in self.script if h.end_s <= chunk.end_s + 1e-9]
        self.script = [h for h in self.script if h.end_s > chunk.end_s + 1e-9]
        return due

    def flush(self) -> list[Hypothesis]:
        due, self.script = self.script, []
        return due

    def reset(self) -> None:
        pass


SOURCE = "001_7222d781596cc83e.txt#How to Massage a Calf Cramp (Step-by-Step)"  # a real section: it is checked


def routine(rid: str = "test-cramp", context: str = "active-cramp", **overrides) -> dict:
    data = {
        "id": rid, "title": "Test", "context": context, "max_pressure": "moderate",
        "intro": "Hello.", "outro": "Bye now.",
        "steps": [
            {"id": "one", "say": "Step one here.", "hold_s": 3, "source": SOURCE},
            {"id": "hold", "say": "Press and hold.", "hold_s": 15, "countdown": [15, 10, 5, 4, 3, 2, 1],
             "release": "Release.", "gap_s": 1, "pressure": "light", "source": SOURCE},
            {"id": "strokes", "say": "Stroke upward.", "hold_s": 12, "cue": "Up.", "cue_every_s": 4,
             "pressure": "light", "source": SOURCE},
            {"id": "care", "say": "Warmth and water.", "phase": "aftercare", "source": SOURCE},
        ],
    }
    data.update(overrides)
    return data


def run_script(script: list[tuple[float, str]], seconds: float, routines: list[dict | Routine] | None = None,
               chunk_s: float = 0.1) -> list[dict]:
    """Feed silence for ``seconds`` while the script is 'heard'; return the event log."""
    return run_script_with(None, script, seconds, routines, chunk_s)


def run_script_with(prepare, script: list[tuple[float, str]], seconds: float,
                    routines: list[dict | Routine] | None = None,
                    chunk_s: float = 0.1, recognizer: ScriptedRecognizer | None = None) -> list[dict]:
    """As run_script, calling ``prepare(coach)`` first (and hearing through ``recognizer``, a
    ``ScriptedRecognizer`` built on ``script``, where given)."""
    loaded = [r if isinstance(r, Routine) else routine_from_dict(r)
              for r in (routines or [routine(), routine("gentle", max_pressure="light", suits=["pregnancy"])])]
    clock = VirtualClock()
    out = io.StringIO()
    speaker = VirtualSpeaker(clock, lambda text: (len(text.split()) * SECONDS_PER_WORD, None))
    coach = Coach({r.id: r for r in loaded}, choose_routine=lambda intent, now: loaded[0].id)
    if prepare is not None:
        prepare(coach)
    session = Session(recognizer=recognizer or ScriptedRecognizer(script), parser=IntentParser(), coach=coach,
                      speaker=speaker, clock=clock, events=EventLog(out))
    n = int(round(seconds / chunk_s))
    silence = b"\0\0" * int(round(chunk_s * 16000))
    for i in range(n):
        session.feed(AudioChunk(silence, i * chunk_s))
    session.end_of_stream()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def says(events: list[dict]) -> list[tuple[float, str]]:
    return [(e["t"], e["text"]) for e in events if e["event"] == "say"]


def first(events: list[dict], event: str, **match) -> dict:
    for e in events:
        if e["event"] == event and all(e.get(k) == v for k, v in match.items()):
            return e
    raise AssertionError(f"no {event} event matching {match}")
