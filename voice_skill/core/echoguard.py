"""The self-hearing guard: keeps the skill from obeying its own voice (see ``EchoGuard``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voice_skill.core.intents import Intent, extra_words, tokens

if TYPE_CHECKING:
    from voice_skill.asr.base import Hypothesis

# Safety outranks the echo guard's doubts: one of these is dropped as the skill's own voice
# only when the skill was saying those very words, never for being mixed with its speech
# ("oh no, my leg is swollen" said over a step) nor for a weak trace through the canceller.
SAFETY_INTENTS = frozenset({"emergency", "red_flag", "worse", "pregnant"})


# Endings the skill's own words may carry beyond a command's word: its "Resuming." and
# "Paused." came back through the room as "resume" and "pause" (a simulated-room test).
_ENDINGS = ("", "s", "es", "d", "ed", "ing", "er", "ly")


def same_word(heard: str, spoken: str) -> bool:
    """Whether ``heard`` (a command's word) is ``spoken`` or ``spoken`` is it with an ending:
    pause/paused, resume/resuming, stop/stopping."""
    if heard == spoken:
        return True
    stem = heard[:-1] if heard.endswith("e") and len(heard) > 3 else heard
    if len(stem) < 3 or not spoken.startswith(stem):
        return False
    rest = spoken[len(stem):]
    return rest in _ENDINGS or (rest[:1] == stem[-1] and rest[1:] in _ENDINGS)


class EchoGuard:
    """Keeps the skill from obeying its own voice.

    It knows when the speaker was playing and what it said. A hypothesis that overlaps
    the skill's own speech (plus a tail for room echo and device latency) is ignored if it
    would start a routine, if the command it carries is made of words the skill was saying
    at that moment (``same_word``: "Paused." holds "pause"), or if it holds anything besides
    the command (the recognizer turning the skill's own sentence into words). A command said
    on its own, that the skill was not saying, gets through: that is barge-in. A safety
    phrase (``SAFETY_INTENTS``) gets through in any sentence unless the skill was saying
    those very words. Courtesy words around a command ("okay", "please": ``courtesy``) are
    not "anything besides" it, and neither are other words when a second recognizer, the
    command head, heard the same command in the same audio (``Hypothesis.sound_agrees``):
    over the skill's voice, the canceller's leftovers come out as a word beside the command.

    ``hears_speaker`` is False where the input cannot hold the skill's voice (a recording
    played in without a simulated room): the spans of speech on the virtual clock are then
    no evidence about the audio, and nothing is ignored for overlapping them.
    """

    def __init__(self, tail_s: float = 0.5, keep_s: float = 60.0, courtesy: frozenset[str] = frozenset(),
                 hears_speaker: bool = True) -> None:
        self.tail_s = tail_s
        self.keep_s = keep_s
        self.courtesy = courtesy
        self.hears_speaker = hears_speaker
        self._spans: dict[int, list] = {}  # uid -> [start, end | None, words]
        self._first: float | None = None  # when the skill first spoke

    def started(self, uid: int, t: float, text: str) -> None:
        self._spans[uid] = [t, None, set(tokens(text))]
        if self._first is None:
            self._first = t

    def ended(self, uid: int, t: float) -> None:
        if uid in self._spans:
            self._spans[uid][1] = t
        for key in [k for k, (s, e, _) in self._spans.items() if e is not None and e < t - self.keep_s]:
            del self._spans[key]

    def speaking(self, start_s: float, end_s: float) -> list[set[str]]:
        """The word sets of utterances that overlap [start_s, end_s]."""
        found = []
        for s, e, words in self._spans.values():
            if s <= end_s and (e is None or e + self.tail_s >= start_s):
                found.append(words)
        return found

    def first_started(self) -> float | None:
        return self._first

    def judge(self, hyp: Hypothesis, intent: Intent | None) -> str | None:
        """None to accept, or the reason the hypothesis is ignored."""
        if intent is None or not self.hears_speaker:
            return None
        overlapping = self.speaking(hyp.start_s, hyp.end_s)
        if not overlapping:
            return None
        if intent.name in ("start", "stretch"):
            return "own voice"
        phrase_words = intent.phrase.split()
        if any(all(any(same_word(w, s) for s in words) for w in phrase_words) for words in overlapping):
            return "own voice"
        if intent.name in SAFETY_INTENTS:
            return None
        if self.extra_words(hyp.text, intent.phrase) and not hyp.sound_agrees:
            return "mixed with own voice"
        return None

    def extra_words(self, text: str, phrase: str) -> list[str]:
        """The words of ``text`` besides one ``phrase`` and any courtesy words."""
        return extra_words(text, phrase, self.courtesy)
