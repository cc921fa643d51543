"""The coach: a pure state machine that paces a routine.

(state, intent | speech finished | clock tick) -> (new state, actions). No I/O, no
sleeping, no threads, no reading of the clock: every input carries ``now``. That is what
makes every timing rule (countdowns, pause, pace, the ten-minute watchdog) testable in
microseconds.

A step runs in phases: its text is spoken; when that speech has finished, its hold
starts (countdown marks and pacing cues are spoken at fixed remaining times); when the
hold ends its release line is spoken, then a short gap, then the next step. Timers are
kept as time *remaining*, so a pause freezes them exactly.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable, Mapping

from voice_skill.intents import Intent
from voice_skill.routine import Routine, Step, fill_placeholders, hold_lines

log = logging.getLogger(__name__)

PACE_STEP = 1.25
PACE_MIN = 0.64  # two steps faster than normal
PACE_MAX = 1.95  # three steps slower than normal
TEN_MINUTES_S = 600.0


# ---- actions ------------------------------------------------------------------------

@dataclass(frozen=True)
class Say:
    text: str
    utterance_id: int
    kind: str  # step, countdown, cue, release, reply, advice, notice


@dataclass(frozen=True)
class CancelSpeech:
    """Cut off the utterance in progress and drop queued ones (barge-in)."""


@dataclass(frozen=True)
class Emit:
    """An event for the log (the session stamps it with ``t``)."""

    event: str
    fields: Mapping[str, object] = field(default_factory=dict)


Action = Say | CancelSpeech | Emit


@dataclass(frozen=True)
class Messages:
    texts: Mapping[str, str]

    @classmethod
    def load(cls) -> "Messages":
        raw = (resources.files("voice_skill") / "data" / "messages.toml").read_text(encoding="utf-8")
        return cls(tomllib.loads(raw))

    def __getitem__(self, key: str) -> str:
        return self.texts[key]


# ---- timers -------------------------------------------------------------------------

@dataclass
class _Timer:
    """A hold or a gap: remaining time, and lines due at given remaining times."""

    kind: str  # "hold" or "gap"
    end_s: float | None  # absolute end while running; None while paused
    remaining_s: float  # valid while paused
    lines: list[tuple[float, str, str]]  # (remaining_s at which it is due, text, kind), due order

    def remaining(self, now: float) -> float:
        return self.remaining_s if self.end_s is None else max(0.0, self.end_s - now)

    def freeze(self, now: float) -> None:
        self.remaining_s = self.remaining(now)
        self.end_s = None

    def thaw(self, now: float) -> None:
        self.end_s = now + self.remaining_s

    def next_due(self) -> float | None:
        if self.end_s is None:
            return None
        if self.lines:
            return self.end_s - self.lines[0][0]
        return self.end_s


class Coach:
    """Paces one routine at a time; an episode runs from a trigger to done, stop or a red flag."""

    def __init__(
        self,
        routines: Mapping[str, Routine],
        messages: Messages | None = None,
        choose_routine: Callable[[Intent, float], str] | None = None,
        base_pace: float = 1.0,
    ) -> None:
        if not routines:
            raise ValueError("the coach needs at least one routine")
        self.routines = dict(routines)
        self.messages = messages or Messages.load()
        self._choose = choose_routine or self._first_cramp_routine
        self.base_pace = min(max(base_pace, PACE_MIN), PACE_MAX)
        self.pace = self.base_pace
        self.frequent_cramps = False  # set from the cramp journal; mentioned once after a routine
        self.routine: Routine | None = None
        self.index = 0
        self.phase = "idle"  # idle, speaking, hold, gap, closing
        self.paused = False
        self.leg: str | None = None
        self._after_speech = ""  # what a finished step utterance leads to: "hold" or "gap"
        self._awaiting: int | None = None
        self._timer: _Timer | None = None
        self._next_id = 0
        self._episode_start: float | None = None
        self._watchdog_said = False
        self._notice_said = False
        self._last_said = ""
        self._phase_text = ""
        self._phase_kind = "step"

    def _first_cramp_routine(self, intent: Intent, now: float) -> str:
        return next((r.id for r in self.routines.values() if r.context == "active-cramp"), next(iter(self.routines)))

    # ---- queries --------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """A routine is running (possibly paused)."""
        return self.routine is not None

    @property
    def in_episode(self) -> bool:
        return self._episode_start is not None

    def next_deadline(self) -> float | None:
        times = []
        if self._timer is not None and not self.paused:
            due = self._timer.next_due()
            if due is not None:
                times.append(due)
        if self._episode_start is not None and not self._watchdog_said:
            times.append(self._episode_start + TEN_MINUTES_S)
        return min(times) if times else None

    # ---- inputs ---------------------------------------------------------------------

    def handle(self, intent: Intent, now: float) -> list[Action]:
        """React to something the user said."""
        out: list[Action] = []
        if intent.slots.get("leg"):
            self.leg = intent.slots["leg"]
        handler = getattr(self, f"_on_{intent.name}", None)
        if handler is None:
            log.debug("no handler for intent %s", intent.name)
            return out
        handler(intent, now, out)
        return out

    def speech_finished(self, utterance_id: int, now: float) -> list[Action]:
        """The speaker has finished (not cancelled) an utterance."""
        out: list[Action] = []
        if utterance_id != self._awaiting or self.paused:
            return out
        self._awaiting = None
        if self.phase == "closing":
            self._end_routine("finished", now, out)
        elif self.phase == "speaking":
            if self._after_speech == "hold":
                self._start_hold(now, out)
            else:
                self._start_gap(now, out)
        return out

    def device_notice(self, key: str) -> list[Action]:
        """Tell the user about a device change (``microphone_lost``, ``microphone_back``),
        only while a routine is running: between episodes nobody is listening, and a
        voice in the dark would wake the house. The routine itself goes on untouched."""
        out: list[Action] = []
        if self.active:
            self._say(self.messages[key], "notice", out)
        return out

    def tick(self, now: float) -> list[Action]:
        """Do whatever is due at ``now``."""
        out: list[Action] = []
        if self._episode_start is not None and not self._watchdog_said and now >= self._episode_start + TEN_MINUTES_S:
            self._watchdog_said = True
            text = self.messages["ten_minutes"]
            out.append(Emit("warning", {"text": text}))
            self._say(text, "advice", out)
        timer = self._timer
        while timer is not None and not self.paused and timer is self._timer:
            due = timer.next_due()
            if due is None or due > now + 1e-9:
                break
            if timer.lines:
                _, text, kind = timer.lines.pop(0)
                self._say(text, kind, out)
                continue
            self._timer = None
            if timer.kind == "hold":
                step = self._step()
                if step.release:
                    self.phase = "speaking"
                    self._after_speech = "gap"
                    self._speak_phase(step.release, "release", out)
                else:
                    self._start_gap(now, out)
            else:
                self._advance(self.index + 1, now, out)
        return out

    # ---- intent handlers ------------------------------------------------------------

    def _on_start(self, intent: Intent, now: float, out: list[Action]) -> None:
        if self.active:
            log.debug("trigger heard while a routine runs; ignored")
            return
        self._begin(self._choose(intent, now), now, out)

    def _on_stretch(self, intent: Intent, now: float, out: list[Action]) -> None:
        if self.active:
            return
        rid = "bedtime-stretches" if "bedtime-stretches" in self.routines else self._choose(intent, now)
        self._begin(rid, now, out)

    def _on_next(self, intent: Intent, now: float, out: list[Action]) -> None:
        if self._require_active(out):
            self._jump(self.index + 1, now, out)

    def _on_back(self, intent: Intent, now: float, out: list[Action]) -> None:
        if self._require_active(out):
            self._jump(max(0, self.index - 1), now, out)

    def _on_repeat(self, intent: Intent, now: float, out: list[Action]) -> None:
        if self.active and self.phase != "closing":
            self._jump(self.index, now, out)
        elif self._last_said:
            self._say(self._last_said, "reply", out)

    def _on_pause(self, intent: Intent, now: float, out: list[Action]) -> None:
        if not self.active or self.paused:
            return
        out.append(CancelSpeech())
        self.paused = True
        if self._timer is not None:
            self._timer.freeze(now)
        self._awaiting = None
        out.append(Emit("routine", {"state": "paused", "routine": self.routine.id}))
        self._say(self.messages["paused"], "reply", out)

    def _on_resume(self, intent: Intent, now: float, out: list[Action]) -> None:
        if not self.active or not self.paused:
            return
        self._unpause(now, out)
        self._say(self.messages["resumed"], "reply", out)
        self._continue_phase(now, out)

    def _on_slower(self, intent: Intent, now: float, out: list[Action]) -> None:
        self._change_pace(PACE_STEP, now, out)

    def _on_faster(self, intent: Intent, now: float, out: list[Action]) -> None:
        self._change_pace(1 / PACE_STEP, now, out)

    def _on_stop(self, intent: Intent, now: float, out: list[Action]) -> None:
        if not self.active:
            return
        out.append(CancelSpeech())
        self._say(self.messages["stopped"], "reply", out)
        self._end_routine("stopped", now, out)

    def _on_done(self, intent: Intent, now: float, out: list[Action]) -> None:
        if not self.active or self.phase == "closing":
            return
        out.append(CancelSpeech())
        self._unpause(now, out)
        self._say(self.messages["done"], "reply", out)
        after = self.routine.first_aftercare()
        target = after if after is not None and after > self.index else len(self.routine.steps)
        self._advance(target, now, out)

    def _on_worse(self, intent: Intent, now: float, out: list[Action]) -> None:
        if not self.active and "start" not in intent.also:
            log.debug("'%s' heard with no cramp named and no routine running; ignored", intent.phrase)
            return
        out.append(CancelSpeech())
        self._say(self.messages["worse"], "advice", out)
        gentle = "gentle" if "gentle" in self.routines else None
        if self.active and (gentle is None or self.routine.id == gentle):
            self._unpause(now, out)
            self._continue_phase(now, out)
            return
        if gentle is None:
            return
        if self.active:
            self._unpause(now, out)
            out.append(Emit("routine", {"state": "stopped", "routine": self.routine.id, "reason": "worse"}))
            self.routine = None
            self._timer = None
        self._begin(gentle, now, out, announce=False)

    def _on_red_flag(self, intent: Intent, now: float, out: list[Action]) -> None:
        out.append(CancelSpeech())
        text = self.messages["red_flag"]
        out.append(Emit("warning", {"text": text, "red_flag": intent.phrase}))
        self._say(text, "advice", out)
        if self.active:
            self._end_routine("stopped", now, out, reason="red_flag")

    def _on_help(self, intent: Intent, now: float, out: list[Action]) -> None:
        if self.active and self.phase == "speaking" and not self.paused:
            out.append(CancelSpeech())
            self._say(self.messages["help"], "reply", out)
            self._continue_phase(now, out)
        else:
            self._say(self.messages["help"], "reply", out)

    # ---- mechanics ------------------------------------------------------------------

    def _require_active(self, out: list[Action]) -> bool:
        if self.active and self.phase != "closing":
            return True
        if not self.active:
            self._say(self.messages["nothing_to_do"], "reply", out)
        return False

    def _say(self, text: str, kind: str, out: list[Action]) -> int:
        self._next_id += 1
        text = fill_placeholders(text, self.leg)
        out.append(Say(text, self._next_id, kind))
        if kind in ("step", "reply", "advice", "release"):
            self._last_said = text
        return self._next_id

    def _step(self) -> Step:
        assert self.routine is not None
        return self.routine.steps[self.index]

    def _begin(self, rid: str, now: float, out: list[Action], announce: bool = True) -> None:
        routine = self.routines[rid]
        self.routine = routine
        self.paused = False
        self._timer = None
        if self._episode_start is None and routine.context == "active-cramp":
            self._episode_start = now
            self._watchdog_said = False
        out.append(Emit("routine", {"state": "started", "routine": routine.id}))
        if announce:
            self._say(routine.intro, "reply", out)
        self._advance(0, now, out)

    def _jump(self, index: int, now: float, out: list[Action]) -> None:
        """A user-requested move: cut off speech, leave any pause, go to ``index``."""
        out.append(CancelSpeech())
        self._unpause(now, out)
        self._advance(index, now, out)

    def _advance(self, index: int, now: float, out: list[Action]) -> None:
        assert self.routine is not None
        self._timer = None
        if index >= len(self.routine.steps):
            self.phase = "closing"
            outro = self.routine.outro
            if self.frequent_cramps and self.routine.context == "active-cramp":
                self.frequent_cramps = False  # said once, after the routine
                outro = f"{outro} {self.messages['frequent']}"
            if not self._notice_said:
                self._notice_said = True
                outro = f"{outro} {self.messages['notice']}"
            self._speak_phase(outro, "reply", out)
            return
        self.index = index
        step = self.routine.steps[index]
        out.append(Emit("step", {"index": index, "id": step.id}))
        self.phase = "speaking"
        self._after_speech = "hold" if step.has_timer else "gap"
        self._speak_phase(step.say, "step", out)

    def _speak_phase(self, text: str, kind: str, out: list[Action]) -> None:
        """Say the utterance the current phase waits for."""
        self._phase_text, self._phase_kind = text, kind
        self._awaiting = self._say(text, kind, out)

    def _start_hold(self, now: float, out: list[Action]) -> None:
        step = self._step()
        hold, lines = hold_lines(step, self.pace)
        self.phase = "hold"
        self._timer = _Timer("hold", now + hold, hold, lines)
        out.append(Emit("hold", {"step": step.id, "seconds": hold}))
        out.extend(self.tick(now))

    def _start_gap(self, now: float, out: list[Action]) -> None:
        gap = self._step().gap_s * self.pace
        self.phase = "gap"
        self._timer = _Timer("gap", now + gap, gap, [])
        out.extend(self.tick(now))

    def _continue_phase(self, now: float, out: list[Action]) -> None:
        """Pick the current phase up again after a pause or an interruption: an utterance
        that was cut off is spoken again from its start; a timer simply runs on."""
        if self.phase in ("speaking", "closing") and self._phase_text:
            self._awaiting = self._say(self._phase_text, self._phase_kind, out)

    def _unpause(self, now: float, out: list[Action]) -> None:
        if not self.paused:
            return
        self.paused = False
        if self._timer is not None:
            self._timer.thaw(now)
        out.append(Emit("routine", {"state": "resumed", "routine": self.routine.id}))

    def _change_pace(self, factor: float, now: float, out: list[Action]) -> None:
        new = self.pace * factor
        if new > PACE_MAX + 1e-6 or new < PACE_MIN - 1e-6:
            self._say(self.messages["slowest" if factor > 1 else "fastest"], "reply", out)
            return
        self.pace = new
        timer = self._timer
        if timer is not None:
            # Stretch what is left of the current hold or gap; countdown marks keep their
            # meaning (they are real seconds remaining), pacing cues stretch with it.
            remaining = timer.remaining(now)
            stretched = remaining * factor
            lines = [(r if kind == "countdown" else r * factor, text, kind)
                     for r, text, kind in timer.lines if (r if kind == "countdown" else r * factor) <= stretched]
            timer.lines = sorted(lines, key=lambda item: -item[0])
            if timer.end_s is None:
                timer.remaining_s = stretched
            else:
                timer.end_s = now + stretched
        out.append(Emit("pace", {"pace": round(self.pace, 3)}))
        self._say(self.messages["slower" if factor > 1 else "faster"], "reply", out)

    def _end_routine(self, state: str, now: float, out: list[Action], reason: str | None = None) -> None:
        assert self.routine is not None
        fields: dict[str, object] = {"state": state, "routine": self.routine.id}
        if reason:
            fields["reason"] = reason
        out.append(Emit("routine", fields))
        if self._episode_start is not None:
            out.append(Emit("episode", {"state": "ended", "how": reason or state,
                                        "duration_s": round(now - self._episode_start, 2)}))
        self.routine = None
        self.phase = "idle"
        self.paused = False
        self._timer = None
        self._awaiting = None
        self._episode_start = None
        self.pace = self.base_pace
        self.leg = None
