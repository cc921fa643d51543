"""The coach: a pure state machine that paces a routine.

(state, intent | speech finished | clock tick) -> (new state, actions). No I/O, no
sleeping, no threads, no reading of the clock: every input carries ``now``. That is what
makes every timing rule (countdowns, pause, pace, the ten-minute watchdog) testable in
microseconds.

A step runs in phases: its text is spoken; when that speech has finished, its hold
starts (after the step's ``settle_s`` to get into position; countdown marks and pacing
cues are spoken at fixed remaining times); when the hold ends its release line is
spoken, then a short gap, then the next step. Timers are kept as time *remaining*, so a
pause freezes them exactly.

Episodes, not routines. An episode starts with the first cramp trigger and lasts until
the user says the cramp has gone, or until ``EPISODE_QUIET_S`` pass with no routine
running and no further trigger; more triggers ("calf cramp" again, "it won't stop")
continue it. The ten-minute advice is due at ten minutes of episode time, whatever the
routines did: said then if a routine is running, else at the next sign the cramp goes on
(a house that has gone back to sleep is not woken to hear it). The not-medical-advice
notice is said once per episode, with the first closing line of that episode (outro,
stop, red flag, pain), never after the emergency answer.

Taken back. A trigger spotted the moment "calf cramp" ended starts the routine before the rest
of the sentence is heard; when the sentence turns out to take it back ("I don't have a calf
cramp", "the calf cramp is gone"), ``take_back`` withdraws that routine and the episode it
opened, as if neither had been: the speech stops, the routine is stopped ("taken back"), the
episode is withdrawn (the journal forgets it), and the skill says it misheard, or, where the
sentence said the cramp is gone, that it is glad. Only a routine that began within that
sentence: one the user has already been coached in stays; an episode that was already running
goes on as it was before the trigger.

A red flag or emergency heard in the very words that started the routine, and doubted by a
second listener (``doubted``), stops the massage with its whole answer, but pauses the routine
instead of ending it and adds the way back ("say resume"); nothing is held for the episode.

Safety. The emergency answer, a red flag or sharp pain (``worse``) stop the massage at
once; for ``EPISODE_QUIET_S`` after it, a trigger repeats that answer instead of
starting a massage again (sharp pain only counts so inside an episode). Pregnancy,
once heard, holds for the rest of the session: every routine is the gentle one.

One module on purpose: the coach is one state machine with one timeline; split over files,
its rules drifted apart before (the screen and ``routine.script`` each kept a copy).
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable, Mapping

from voice_skill.core.intents import FAMILY_SLOT, Intent
from voice_skill.core.routine import Routine, Step, fill_placeholders, hold_lines, suited_routine

log = logging.getLogger(__name__)

PACE_STEP = 1.25
PACE_MIN = 0.64  # two steps faster than normal
PACE_MAX = 1.95  # three steps slower than normal
TEN_MINUTES_S = 600.0
EPISODE_QUIET_S = 900.0  # an episode ends after 15 minutes with no routine running and no trigger
HALTS = ("worse", "red_flag", "emergency")  # least to most severe


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
    """The coach's own lines by key, and where each comes from (``data/messages.toml``)."""

    texts: Mapping[str, str]
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> "Messages":
        raw = (resources.files("voice_skill") / "data" / "messages.toml").read_text(encoding="utf-8")
        return cls.from_dict(tomllib.loads(raw))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "Messages":
        """Each entry is a table with ``text`` and ``source``, or (older files) a bare string."""
        texts: dict[str, str] = {}
        sources: dict[str, str] = {}
        for key, value in data.items():
            if isinstance(value, str):
                texts[key] = value
            elif isinstance(value, Mapping) and isinstance(value.get("text"), str):
                texts[key] = value["text"]
                sources[key] = str(value.get("source", ""))
            else:
                raise ValueError(f"messages.{key}: needs a 'text' string")
        return cls(texts, sources)

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


@dataclass
class _Episode:
    start_s: float
    last_s: float  # the last sign of the cramp: a trigger, or the end of a routine
    how: str = "finished"  # how its coaching ended: finished, stopped, worse, red_flag, emergency
    gone: bool = False  # the user said it has gone: the episode ends with the routine
    watchdog: str = "due"  # due, pending (said at the next trigger), said, skipped
    notice_said: bool = False


class Coach:
    """Paces one routine at a time, within cramp episodes (see the module docstring)."""

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
        self.pregnant = False  # heard once, kept for the session: light pressure only
        self.routine: Routine | None = None
        self.index = 0
        self.phase = "idle"  # idle, speaking, hold, gap, closing
        self.paused = False
        self.leg: str | None = None
        self._after_speech = ""  # what a finished step utterance leads to: "hold" or "gap"
        self._awaiting: int | None = None
        self._timer: _Timer | None = None
        self._hold_total_s = 0.0  # settle + hold of the current hold timer, as stretched so far
        self._next_id = 0
        self._episode: _Episode | None = None
        self._episode_ended_s: float | None = None  # when the last episode ended
        self._began_s: float | None = None  # when the running cramp routine began
        self._began_episode = False  # ... and whether its trigger opened the episode
        self._last_before = 0.0  # the episode's last sign of the cramp before that trigger
        self._halt: tuple[str, str, float] | None = None  # (kind, answer, until) after a safety answer
        self._notice_said = False  # outside episodes (the bedtime stretches): once a session
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
        return self._episode is not None

    @property
    def episode_start(self) -> float | None:
        return None if self._episode is None else self._episode.start_s

    def next_deadline(self) -> float | None:
        times = []
        if self._timer is not None and not self.paused:
            due = self._timer.next_due()
            if due is not None:
                times.append(due)
        ep = self._episode
        if ep is not None:
            if ep.watchdog == "due":
                times.append(ep.start_s + TEN_MINUTES_S)
            if not self.active:
                times.append(ep.last_s + EPISODE_QUIET_S)
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

    def take_back(self, since: float, ended: bool, now: float) -> list[Action]:
        """The sentence heard from ``since`` took back the trigger in it (see the module
        docstring): withdraw the cramp routine that began in it, and the episode if that trigger
        opened it. ``ended``: the sentence said the cramp has gone. Nothing where no such
        routine runs."""
        out: list[Action] = []
        began, ep = self._began_s, self._episode
        if not self.active or began is None or began < since or ep is None:
            return out
        log.debug("the trigger that began the routine at %.2f s was taken back", began)
        how, last = ep.how, self._last_before
        out.append(CancelSpeech())
        self._end_routine("stopped", now, out, reason="taken back")
        if self._began_episode:
            out.append(Emit("episode", {"state": "withdrawn"}))
            self._episode = None
            self.leg = None
        else:
            ep.how, ep.last_s = how, last  # the episode goes on as it was before the trigger
        if ended:  # as "it's gone" with nothing running: glad, and the episode ends
            self._on_done(Intent("done", ""), now, out)
        else:
            self._say(self.messages["taken_back"], "reply", out)
        return out

    def doubted(self, intent: Intent, now: float) -> list[Action]:
        """A red flag or emergency heard in the very words that started the routine, which a second
        listener does not bear out (``Hypothesis.safety_doubted``): the massage stops as for any
        red flag and the answer is said whole, but the routine is paused, not ended, and the answer
        ends with the way back ("say resume"); no safety answer is held for the episode. With no
        routine running, it is the red flag or emergency itself."""
        if not self.active or intent.name not in ("red_flag", "emergency"):
            return self.handle(intent, now)
        out: list[Action] = [CancelSpeech()]
        if not self.paused:
            self._pause(now, out)
        self._give_safety_answer(intent, out, doubted=True)
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
        ep = self._episode
        if ep is not None and ep.watchdog == "due" and now >= ep.start_s + TEN_MINUTES_S - 1e-9:
            if self._halted(now):
                ep.watchdog = "skipped"  # the safety answer already sent them to a doctor
            elif self.active:
                self._ten_minutes(out)
            else:
                ep.watchdog = "pending"
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
        ep = self._episode
        if ep is not None and not self.active and now >= ep.last_s + EPISODE_QUIET_S - 1e-9:
            self._end_episode(now, "quiet", out)
        return out

    # ---- intent handlers: the cramp -------------------------------------------------

    def _on_start(self, intent: Intent, now: float, out: list[Action]) -> None:
        if "pregnant" in intent.also:
            self._note_pregnancy(out)
        if self.active and self.routine.context == "active-cramp":
            log.debug("trigger heard while a routine runs: the episode goes on")
            self._touch(now)
            self._ten_minutes_if_pending(now, out)
            return
        if self.active:  # a bedtime stretch, and now a real cramp
            out.append(CancelSpeech())
            self._end_routine("stopped", now, out, reason="cramp")
        self._trigger(intent, now, out)

    def _on_still_cramping(self, intent: Intent, now: float, out: list[Action]) -> None:
        """"It won't stop", "still cramping": the episode goes on, and counts toward the rule.
        With no cramp heard (no routine, no episode, none ended in the last 15 minutes), words that
        tell of one only after one ("it's back", "not gone": a television's "he can't stop it"
        started a routine) get a prompt to name it instead; with "cramp" in them ("it's still
        cramping") they are a trigger."""
        recent = self._episode_ended_s is not None and now - self._episode_ended_s < EPISODE_QUIET_S
        if not self.active and self._episode is None and not recent and "start" not in intent.also:
            self._say(self.messages["no_cramp_heard"], "reply", out)
            return
        if not (self.active and self.routine.context == "active-cramp"):
            if self.active:
                out.append(CancelSpeech())
                self._end_routine("stopped", now, out, reason="cramp")
            self._trigger(intent, now, out, still=True)
            return
        out.append(CancelSpeech())
        self._unpause(now, out)
        self._touch(now)
        if self._episode is not None:
            self._episode.gone = False
        self._ten_minutes_if_pending(now, out)
        if self.phase == "closing" or self._step().phase == "aftercare":
            self._say(self.messages["once_more"], "reply", out)  # the routine again, from the top
            self._advance(0, now, out)
        else:
            self._say(self.messages["still_cramping"], "reply", out)
            self._continue_phase(now, out)

    def _on_stretch(self, intent: Intent, now: float, out: list[Action]) -> None:
        if self.active:
            return
        rid = next((r.id for r in self.routines.values() if r.context == "prevention"), None)
        self._begin(rid or self._choose(intent, now), now, out)

    def _on_done(self, intent: Intent, now: float, out: list[Action]) -> None:
        if self._episode is not None:
            self._episode.gone = True
        if self.active and self.phase == "closing":
            return  # the routine is saying its last line; the episode ends with it
        if self.active:
            out.append(CancelSpeech())
            self._unpause(now, out)
            self._say(self.messages["done"], "reply", out)
            after = self.routine.first_aftercare()
            target = after if after is not None and after > self.index else len(self.routine.steps)
            self._advance(target, now, out)
            return
        self._say(self._with_notice(self.messages["eased"]), "reply", out)
        if self._episode is not None:
            self._end_episode(now, "gone", out)

    def _on_pregnant(self, intent: Intent, now: float, out: list[Action]) -> None:
        gentle = suited_routine(self.routines, "pregnancy")
        switch = (self.active and self.routine.context == "active-cramp" and gentle is not None
                  and self.routine.id != gentle)
        if self.active:
            out.append(CancelSpeech())
            self._unpause(now, out)
        self._note_pregnancy(out)
        if switch:
            self._end_routine("stopped", now, out, reason="pregnant")
            self._begin(gentle, now, out, announce=False)
        elif self.active:
            self._continue_phase(now, out)
        elif intent.also & {"start", "still_cramping"}:
            self._trigger(intent, now, out)

    # ---- intent handlers: safety ----------------------------------------------------

    def _on_emergency(self, intent: Intent, now: float, out: list[Action]) -> None:
        """Product safety rule: the skill cannot call anyone. Everything stops, the user is
        told to call their local emergency number, and the skill then stays quiet."""
        out.append(CancelSpeech())
        if self.active:
            self._unpause(now, out)
            self._end_routine("stopped", now, out, reason="emergency")
        self._set_halt("emergency", self._give_safety_answer(intent, out), now)

    def _on_red_flag(self, intent: Intent, now: float, out: list[Action]) -> None:
        out.append(CancelSpeech())
        if self.active:
            self._unpause(now, out)
            self._end_routine("stopped", now, out, reason="red_flag")
        self._set_halt("red_flag", self._give_safety_answer(intent, out), now)

    def _give_safety_answer(self, intent: Intent, out: list[Action], doubted: bool = False) -> str:
        """Say the answer to a red flag or the emergency, with the warning that names what was
        heard, and return the answer to hold for the episode. The emergency answer is said as it
        is, never shortened; a red flag's carries the notice and the leg where they belong.
        ``doubted`` (see ``doubted``): between the doubt and the way back, and so marked."""
        if intent.name == "emergency":
            answer = said = self.messages["emergency"]
            fields: dict[str, object] = {"emergency": intent.phrase}
        else:
            family = intent.slots.get(FAMILY_SLOT)
            answer = self.messages["red_flag_circulation" if family == "circulation" else "red_flag"]
            said = fill_placeholders(self._with_notice(answer), self.leg)
            fields = {"red_flag": intent.phrase}
            if family:
                fields["sign"] = family
        text = f"{self.messages['doubted']} {said} {self.messages['doubted_resume']}" if doubted else said
        warning: dict[str, object] = {"text": text, **fields}
        if doubted:
            warning["doubted"] = True
        out.append(Emit("warning", warning))
        self._say(text, "advice", out)
        return answer

    def _on_worse(self, intent: Intent, now: float, out: list[Action]) -> None:
        """Sharp or lasting pain: no more massage, a doctor if it goes on, rest for comfort
        (the source's answer on massaging a calf in spasm)."""
        out.append(CancelSpeech())
        if self.active:
            self._unpause(now, out)
            self._end_routine("stopped", now, out, reason="worse")
        answer = self.messages["worse"]
        self._say(self._with_notice(answer), "advice", out)
        if self._episode is not None:
            self._set_halt("worse", answer, now)

    # ---- intent handlers: commands --------------------------------------------------

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
        else:
            self._say(self.messages["nothing_to_do"], "reply", out)

    def _on_pause(self, intent: Intent, now: float, out: list[Action]) -> None:
        if not self.active:
            self._say(self.messages["nothing_to_do"], "reply", out)
            return
        if self.paused:
            return
        out.append(CancelSpeech())
        self._pause(now, out)
        self._say(self.messages["paused"], "reply", out)

    def _pause(self, now: float, out: list[Action]) -> None:
        """Freeze the running routine where it is (its timer, what it waits for), in the event log too."""
        self.paused = True
        if self._timer is not None:
            self._timer.freeze(now)
        self._awaiting = None
        out.append(Emit("routine", {"state": "paused", "routine": self.routine.id}))
        self._emit_hold(now, out)

    def _on_resume(self, intent: Intent, now: float, out: list[Action]) -> None:
        if not self.active:
            self._say(self.messages["nothing_to_do"], "reply", out)
            return
        if not self.paused:
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
            self._say(self.messages["nothing_to_do"], "reply", out)
            return
        out.append(CancelSpeech())
        self._say(self._with_notice(self.messages["stopped"]), "reply", out)
        self._end_routine("stopped", now, out)

    def _on_help(self, intent: Intent, now: float, out: list[Action]) -> None:
        if self.active and self.phase == "speaking" and not self.paused:
            out.append(CancelSpeech())
            self._say(self.messages["help"], "reply", out)
            self._continue_phase(now, out)
        else:
            self._say(self.messages["help"], "reply", out)

    # ---- episodes -------------------------------------------------------------------

    def _trigger(self, intent: Intent, now: float, out: list[Action], still: bool = False) -> None:
        """A sign of a cramp with no cramp routine running: start or continue the episode."""
        halted = self._halted(now)
        before = None if self._episode is None else self._episode.last_s
        if self._episode is None and halted is None:
            self._episode = _Episode(start_s=now, last_s=now)
        elif self._episode is not None:
            self._touch(now)
            self._episode.gone = False
        if halted is not None:
            self._say(halted, "advice", out)  # no massage after a safety answer: say it again
            self._set_halt(self._halt[0], halted, now)
            return
        self._ten_minutes_if_pending(now, out)
        if still:
            self._say(self.messages["still_cramping"], "reply", out)
        self._begin(self._routine_for(intent, now), now, out, announce=not still)
        if before is not None:
            self._last_before = before

    def _routine_for(self, intent: Intent, now: float) -> str:
        if self.pregnant and (gentle := suited_routine(self.routines, "pregnancy")):
            return gentle
        return self._choose(intent, now)

    def _touch(self, now: float) -> None:
        if self._episode is not None:
            self._episode.last_s = max(self._episode.last_s, now)

    def _ten_minutes_if_pending(self, now: float, out: list[Action]) -> None:
        ep = self._episode
        if ep is not None and ep.watchdog in ("due", "pending") and now >= ep.start_s + TEN_MINUTES_S - 1e-9:
            self._ten_minutes(out)

    def _ten_minutes(self, out: list[Action]) -> None:
        assert self._episode is not None
        self._episode.watchdog = "said"
        text = self.messages["ten_minutes"]
        out.append(Emit("warning", {"text": text}))
        self._say(text, "advice", out)

    def _set_halt(self, kind: str, answer: str, now: float) -> None:
        if self._halt is not None and self._halted(now) and HALTS.index(self._halt[0]) > HALTS.index(kind):
            kind, answer = self._halt[0], self._halt[1]  # a graver answer stands
        self._halt = (kind, answer, now + EPISODE_QUIET_S)
        ep = self._episode
        if ep is not None:
            ep.last_s = max(ep.last_s, now)
            if ep.how not in HALTS or HALTS.index(ep.how) < HALTS.index(kind):
                ep.how = kind

    def _halted(self, now: float) -> str | None:
        """The safety answer still in force, if any."""
        if self._halt is not None and now < self._halt[2]:
            return self._halt[1]
        return None

    def _with_notice(self, text: str) -> str:
        """``text`` with the not-medical-advice notice after it, the first time in an episode
        (outside episodes: the first time in the session)."""
        ep = self._episode
        said = ep.notice_said if ep is not None else self._notice_said
        if said:
            return text
        if ep is not None:
            ep.notice_said = True
        else:
            self._notice_said = True
        return f"{text} {self.messages['notice']}"

    def _note_pregnancy(self, out: list[Action]) -> None:
        self.pregnant = True
        self._say(self.messages["pregnancy"], "advice", out)

    def _end_episode(self, now: float, ended_by: str, out: list[Action]) -> None:
        ep = self._episode
        assert ep is not None
        out.append(Emit("episode", {"state": "ended", "how": ep.how, "ended_by": ended_by,
                                    "duration_s": round(max(ep.last_s, ep.start_s) - ep.start_s, 2)}))
        self._episode = None
        self._episode_ended_s = now
        self.leg = None

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
        self._began_s = now if routine.context == "active-cramp" else None
        # (``_trigger`` opens the episode of a trigger just before)
        self._began_episode = self._episode is None or self._episode.start_s == now
        self._last_before = now  # (``_trigger`` sets what it was before its trigger)
        if routine.context == "active-cramp" and self._episode is None:
            self._episode = _Episode(start_s=now, last_s=now)
        out.append(Emit("routine", {"state": "started", "routine": routine.id, "pace": round(self.pace, 3)}))
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
            self._speak_phase(self._with_notice(outro), "reply", out)
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
        total = step.settle_s + hold  # a few seconds to get into position, then the hold
        self.phase = "hold"
        self._timer = _Timer("hold", now + total, total, lines)
        self._hold_total_s = total
        self._emit_hold(now, out, hold)
        out.extend(self.tick(now))

    def _emit_hold(self, now: float, out: list[Action], seconds: float | None = None) -> None:
        """Say where the current hold stands: when it starts (with its ``seconds`` and
        ``settle_s``), and again whenever a pause, a resume or a pace change moves its end.
        ``remaining_s`` counts to the end of the hold, settling in included; ``running`` is
        false while paused. Screens count down from this alone."""
        timer = self._timer
        if timer is None or timer.kind != "hold":
            return
        step = self._step()
        fields: dict[str, object] = {"step": step.id}
        if seconds is not None:
            fields["seconds"] = seconds
            if step.settle_s:
                fields["settle_s"] = step.settle_s
        fields["remaining_s"] = round(timer.remaining(now), 3)
        fields["running"] = not self.paused
        out.append(Emit("hold", fields))

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
        self._emit_hold(now, out)

    def _change_pace(self, factor: float, now: float, out: list[Action]) -> None:
        new = self.pace * factor
        if new > PACE_MAX + 1e-6 or new < PACE_MIN - 1e-6:
            self._say(self.messages["slowest" if factor > 1 else "fastest"], "reply", out)
            return
        self.pace = new
        timer = self._timer
        if timer is not None:
            # Stretch what is left of the current hold or gap; countdown marks keep their
            # meaning (they are real seconds remaining), pacing cues stretch with it. A hold
            # never ends sooner than its step's floor (``min_hold_s`` after settling in).
            remaining = timer.remaining(now)
            stretched = remaining * factor
            if timer.kind == "hold":
                step = self._step()
                elapsed = self._hold_total_s - remaining
                stretched = max(stretched, step.settle_s + step.min_hold_s - elapsed)
                self._hold_total_s = elapsed + stretched
            lines = [(r if kind == "countdown" else r * factor, text, kind)
                     for r, text, kind in timer.lines if (r if kind == "countdown" else r * factor) <= stretched]
            timer.lines = sorted(lines, key=lambda item: -item[0])
            if timer.end_s is None:
                timer.remaining_s = stretched
            else:
                timer.end_s = now + stretched
        out.append(Emit("pace", {"pace": round(self.pace, 3)}))
        self._emit_hold(now, out)
        self._say(self.messages["slower" if factor > 1 else "faster"], "reply", out)

    def _end_routine(self, state: str, now: float, out: list[Action], reason: str | None = None) -> None:
        assert self.routine is not None
        routine = self.routine
        fields: dict[str, object] = {"state": state, "routine": routine.id}
        if reason:
            fields["reason"] = reason
        out.append(Emit("routine", fields))
        self.routine = None
        self._began_s = None
        self.phase = "idle"
        self.paused = False
        self._timer = None
        self._awaiting = None
        self.pace = self.base_pace
        ep = self._episode
        if ep is None or routine.context != "active-cramp":
            if ep is None:
                self.leg = None
            return
        ep.last_s = max(ep.last_s, now)
        if ep.how not in HALTS:
            ep.how = reason if reason in HALTS else state
        if ep.gone and state == "finished":
            self._end_episode(now, "gone", out)
