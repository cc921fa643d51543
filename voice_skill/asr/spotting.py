"""The trigger spotter in front of a grammar recognizer, behind the one ``Recognizer`` protocol.

Both hear every chunk. The spotter (``asr.spotter``) decides a trigger phrase the moment it
ends and is reported at once, as the text of the first spotted phrase; the grammar
recognizer (PocketSphinx or Vosk) goes on hearing everything else: commands, answers, red
flags, and the triggers the spotter leaves to it (the bare word "cramp", which only the
whole sentence tells apart from "the cramp is gone").

With a command head (``TriggerSpotter.commands``), an utterance the grammar recognizer
heard but could not make a phrase of ("walk year more slowly three" for "okay, more slowly
please" over a fan) gets a second chance by its sound: when the head is sure enough
(``command_threshold``, never under ``LONG_UTTERANCE_THRESHOLD``; ``SHORT_UTTERANCE_THRESHOLD``
over an utterance under 4 s) that a short command ended within it, that command is reported,
as its intent's first phrase, marked ``routine_only``. A command the grammar recognizer did place is checked against the head over
the same utterance:

- the head is that sure of the same command: the hypothesis is marked ``sound_agrees``; two
  recognizers heard it, and the echo guard then forgives the other words around it (over the
  skill's voice, "pause" comes back as "eat pause": the canceller's leftovers decoded as a word);
- the head gives it less than ``OVERRIDE_BELOW`` and is that sure of another command, or (over
  a short utterance) less than ``OVERRIDE_DOUBTED`` and ``OVERRIDE_CERTAIN`` of another ("i'm
  okay right repeat" for "okay, repeat", placed as done): the head's command is reported
  instead, marked ``routine_only`` ("slow down" placed as pause from "told bad oh wait", heard
  as slower), unless the words heard were the command's phrase whole, with nothing but courtesy
  words around it: then the words decide. Over the skill's voice the head gave a user's "pause"
  almost nothing and was sure of "stop", and a live run stopped the routine when it was asked
  to pause;
- the head gives it less than ``OVERRIDE_BELOW``, is sure of nothing, and the command is "it's
  gone" (``VETO_UNHEARD``), which ends the routine: it is marked ``sound_vetoed`` and the session
  ignores it. "I'm fine" placed in a television's talk or in the skill's echo was the most common
  wrong command. Other commands stand: in babble and TV-like sound the head gave some right ones
  less than 0.1 (a veto for all of them cost as many right commands on dev as it saved wrong
  ones; docs/commands.md).

With a safety head (``TriggerSpotter.safety``), red flags and emergencies get the same kind of
second chance, over short utterances only (under ``SHORT_UTTERANCE_S``: the room went quiet
around them). Where the head is sure (``SAFETY_SURE``) that one ended in an utterance the grammar
recognizer made nothing of ("rain" for "chest pain" over a fan), or made a command with other
words of ("carry on car it's gone" for "hey, I can't stand") while the command head is sure of
no command, or made the other safety intent of that the head gives almost nothing, the safety
intent is reported by its name (``Hypothesis.sound_intent``), marked ``routine_only``. By name,
not by a phrase: the phrase would name a family (a cold foot, a swelling) that the head cannot
tell. A command heard whole, with only courtesy words around it, stands: the safety head was
sure of an emergency in "go back please", its own phrases so often end in "please". In a long
piece of babble or a television's talk the head is sure of a red flag every few minutes, so
there it is not asked.

Where the words placed one thing among other words and a head is all but certain of another,
the head decides (stop 31, chosen on dev runs of commands and safety phrases said alone):

- a command the command head does not hear, while the safety head is at ``SAFETY_OVER_COMMAND``:
  the safety intent, even though the command head is sure of some other command ("can't move my
  leg, now" came back as "stop" with the safety head at 0.9995); where the words made nothing and
  both heads are sure, the command stays the answer (the safety head gave "uh repeat that please"
  0.99);
- a red flag or emergency the safety head gives under ``SAFETY_UNHEARD``, while the command head
  is at ``COMMAND_OVER_SAFETY``: the command ("okay, what was that" came back as "say again of
  was i fell", the command head at 0.994 for repeat).

A trigger said alone ("calf cramp", nothing before or after it) is the trigger head's weak case:
in some voices its score peaks at 0.95-0.99, under the firing rule, and the grammar recognizer
makes something else of the two words ("bought three name"), so neither path starts anything.
Such an utterance (no longer than ``ALONE_MAX_S``, words that made no intent, the safety head
sure of nothing in it, and the trigger head at ``ALONE_SURE`` or more at its end) is a near
trigger. One alone starts nothing: "a leg of lamb" scores as high in some voices (docs/spotter.md,
stop 30). A second one within ``REPEAT_S`` of the first is the trigger said again, as a person
whose "calf cramp" went unanswered says it: it is reported by its intent
(``Hypothesis.sound_intent``), with the words the recognizer heard.

The same short utterance can come back as a red flag or the emergency: espeak-ng's New York
voices' "calf cramp" said alone is "tingling him" or "can't breathe him" to PocketSphinx. With
nothing running, one no longer than ``MISHEARD_MAX_S`` that the trigger head scored
``MISHEARD_SURE`` or more at its end and the safety head gives under ``SAFETY_DOUBTED`` (or no
longer than ``BARE_MAX_S``, that the bare-word head is ``BARE_AGAIN_SURE`` of over its end and the
safety head gives under ``OVERRIDE_BELOW``: almost nothing) is the trigger
(``Hypothesis.sound_intent``), followed by the safety phrase marked ``safety_doubted``,
as in the utterance the spotter fired in (below): the routine starts and pauses at once with the
answer and the way back. Before, the answer was held for the episode, and saying the trigger
again only repeated it. A command so placed ("help done" for "calf cramp" over a fan) is the
trigger alone where both the trigger head (``MISHEARD_SURE`` at its end) and the bare-word head
(``BARE_AGAIN_SURE`` over it) take it for one, the command head gives the command under
``OVERRIDE_DOUBTED``, and its words would not take a trigger back ("it's gone", "no more"): each
head alone is sure of a real command now and then ("i'm fine", "that stop at way"). The bare-word
head alone decides only over a single word's length (``MISHEARD_WORD_S``: "done" for "cramp"),
where it is all but certain (``BARE_ALONE_SURE``).

A trigger from the grammar recognizer is a second chance, not a veto-free path: it counts
only if the spotter scored the same stretch of audio at least ``confirm_threshold`` (lower
than the firing threshold) or already fired there; otherwise the hypothesis is dropped. That
second opinion keeps the grammar recognizer's own false starts ("the crab for dinner" heard as
"cramp") out.

Where the spotter's denial head kept a detection back (the words before the trigger deny it:
"I don't have a calf cramp"; ``TriggerSpotter.denied_within``), a trigger in any form reported
for an utterance over the same stretch (the grammar's words, the bare-word head's, a near
trigger said again) is dropped too: the grammar recognizer often hears such a sentence as the
trigger with its lead-in ("i do not i have a leg cramp").

The bare word ("cramp", "I have a cramp", "cramping") is the trigger head's blind spot: at
the moment "cramp" ends, "the cramp is gone" sounds the same. The bare-word head
(``TriggerSpotter.bare``) decides later, once a moment of quiet has followed: it was trained to be
sure from 0.24 s after a trigger ending in "cramp" or "cramping" ended the utterance, and of
nothing in "the cramp is gone". Where the grammar recognizer heard a trigger in a short utterance
(``BARE_MAX_S``) that the trigger head did not confirm, or one that failed PocketSphinx's own
check (``Hypothesis.unverified_trigger``: its words were dropped, so the utterance made nothing
or a command of what was left), the bare-word head at ``BARE_SURE`` or more over the utterance's
end (``BARE_END_S``) makes it the trigger (``Hypothesis.sound_intent``), unless the words kept
take the dropped word back ("no more" for "no more cramp": ``[retraction]``). A failed trigger's
utterance ends before the word PocketSphinx dropped, so it is held back until the bare-word head
is sure over the stretch after it, or the spotter has heard ``HOLD_S`` past it: a bare word
decided so comes 0.5-1.3 s after the words the recognizer kept (and whatever the recognizer
heard next waits behind it, so the session hears everything in the order it was said). Where
PocketSphinx heard no trigger at all ("ramp", "on thing" for "cramp"), the bare-word head alone
starts the routine only where it is all but certain (``BARE_ALONE_SURE``; the heads before stop 37
were that sure of something in talk with no trigger every quarter hour or more often, stop 37's,
trained on "no more cramp" and its kin too, far less often); at ``BARE_AGAIN_SURE`` the utterance
is a near trigger, and the bare word said again starts the routine as the near trigger said again
does.

The grammar recognizer's plain copy of a spotted trigger is dropped (the trigger was already
reported). Its version of an utterance the spotter fired in is often garbled
("though go on got took calf cramp" for "oh no, I've got a calf cramp", when "go on" meant
next). What it says there about the person (the trigger with its leg or pregnancy, it has
gone, it hurts, a red flag, an emergency) is kept; a navigation command is dropped: nobody
says "go back" in the same breath as "calf cramp". A red flag or emergency placed there that
the safety head gives less than ``SAFETY_DOUBTED`` over the utterance is marked
``safety_doubted``: the trigger's own words are often misheard as one ("I've got a" as "i fell",
"cramp in my calf" as "cannot breathe"), and the session then pauses the routine and gives the
answer with a way back instead of ending it. Words that made nothing are passed on too:
where they take the spotted trigger back ("i don't have a calf cramp"), the session withdraws the
routine the trigger started (``Coach.take_back``).

With a transcriber (``asr.moonshine``, stop 41), every utterance shorter than ``WHOLE_MAX_S``
that the grammar recognizer ended and the spotter did not fire in is heard again, whole, by an
open-vocabulary recognizer, before any of the rules above: where its words make an intent the
grammar's did not (a command, a safety phrase, or, with ``TRANSCRIBED_TRIGGERS``, a trigger),
they are the hypothesis (``transcribed``; the command head still vouches for a command over the
skill's voice); where they make none or the same, the rules above judge the grammar's words.
It also hears again, running or not, a short utterance the spotter fired in, and one that would
start a routine with nothing running: where its words take the trigger back as the cramp's end
("no more calf cramp", "the cramp stopped"; not a denial, which the denial head hears) and the
grammar's did not, they are the hypothesis, with a word it spelt like "cramp" put right ("no
more calf crab"), so the session withdraws the routine the spotter started, or starts none
(``TAKE_BACK_IN_WORDS``).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace
from typing import Protocol

import numpy as np

from voice_skill.asr.base import Hypothesis, Recognizer
from voice_skill.asr.spotter import TriggerSpotter
from voice_skill.audio.pcm import SAMPLE_RATE, AudioChunk
from voice_skill.core.intents import Intent, IntentParser, extra_words

log = logging.getLogger(__name__)

SPAN_MARGIN_S = 0.3  # the grammar recognizer's word times are approximate by this much
COMMAND_MARGIN_S = 0.2  # a command's end frame, around the grammar's utterance
# The command head decides at its own threshold (chosen on its dev clips) over a long utterance,
# and at this lower one over an utterance shorter than SHORT_UTTERANCE_S: its opinion is the
# highest probability over the utterance's frames, and a 10-s piece of a television's talk has
# many more frames to be wrong in than a command said on its own. Chosen on dev runs of the whole
# skill (docs/commands.md): at 0.85 for every utterance, 3 more commands of 49 right and one wrong
# fewer, but a "slower" taken from a 10-s piece of TV-like talk in 24 minutes of routine.
SHORT_UTTERANCE_THRESHOLD = 0.85
SHORT_UTTERANCE_S = 4.0
# Over a longer utterance never at less than this, whatever the head's own threshold (the shipped
# head's own): with stop 40's candidate head, whose own was 0.86, a "back" and a "slower" were
# taken from 10-s pieces of a TV's talk with nobody speaking that 0.92 did not take (found on the
# test voices, not shipped; docs/commands.md). A head retrained by ``make commands-train`` keeps
# this floor.
LONG_UTTERANCE_THRESHOLD = 0.92
# Below this probability from the command head, a command the grammar recognizer placed gives
# way to another the head is sure of (a round number set before measuring; docs/commands.md).
OVERRIDE_BELOW = 0.1
# ... and below this one, to another the head is all but certain of, over a short utterance
# ("i'm okay right repeat" for "okay, repeat" placed as done, which the head gave 0.15 and repeat
# 0.997). Chosen on dev runs of commands said alone (scripts/eval_utterances.py, docs/commands.md, stop 35).
OVERRIDE_DOUBTED = 0.3
OVERRIDE_CERTAIN = 0.98
# The safety head decides over a short utterance at this probability (chosen on dev runs of the
# whole skill, docs/commands.md).
SAFETY_SURE = 0.9
# Where the two heads and the words disagree over a short utterance (see the module docstring):
# the safety head this sure takes a safety intent over a command the command head is sure of but
# the words did not place, and the command head this sure takes a command over a safety intent
# placed among other words that the safety head gives under SAFETY_UNHEARD. Chosen on dev runs of
# commands and safety phrases said alone (scripts/eval_utterances.py, docs/commands.md, stop 31).
SAFETY_OVER_COMMAND = 0.98
COMMAND_OVER_SAFETY = 0.95
SAFETY_UNHEARD = 0.5
# A red flag or emergency placed in the utterance the spotter fired in, which the safety head gives
# less than this over it, is doubted (see the module docstring). Chosen on dev runs of trigger
# utterances said with and without one (scripts/eval_trigger_words.py, docs/commands.md, stop 38):
# a doubted one still stops the massage and gets its answer, so a real one the head does not
# hear costs little; of 52 dev trigger utterances said alone, 13 came back with one, 1 at 0.9.
SAFETY_DOUBTED = 0.9
# Placed commands that the head's doubt alone sets aside (see the module docstring).
VETO_UNHEARD = frozenset({"done"})
# A near trigger (see the module docstring): a short utterance the trigger head scored this high at
# its end (from this long before its end to this long after); two within REPEAT_S are the trigger
# said again. Chosen on dev runs of the whole skill (scripts/eval_utterances.py, docs/spotter.md).
ALONE_MAX_S = 1.05
ALONE_SURE = 0.94
ALONE_END_S = (0.3, 0.4)
REPEAT_S = 12.0
# The bare-word head (see the module docstring): its probability over the end of an utterance
# no longer than BARE_MAX_S (from this long before its end to this long after) that makes a
# grammar trigger the trigger head did not confirm, or one that failed PocketSphinx's check, the
# trigger. Chosen on dev runs of the whole skill (scripts/eval_utterances.py, docs/spotter.md):
# the utterances it took from the bare words said alone were at most 1.04 s long (a failed
# trigger's words are not in the utterance's times), the one false start in speech with none 1.4 s.
# With stop 37's head (trained on "no more cramp" and its kin too) 0.7 took 6 more of 156 dev bare
# words than 0.9, and no more false starts.
BARE_SURE = 0.7
BARE_MAX_S = 1.2
BARE_END_S = (0.1, 0.8)
# A short utterance with a trigger that failed PocketSphinx's check ends where the words it kept
# end, before the dropped "cramp" ("i've got a" for "I've got a cramp"): it is held until the
# spotter has heard HOLD_S past its end, and the bare-word head asked over up to HOLD_S - 0.1 s
# after it. Chosen on dev runs of the whole skill (docs/spotter.md, stop 35).
HOLD_S = 1.3
# A short utterance whose words made nothing (PocketSphinx heard "cramp" alone as "ramp", "well",
# "on thing") and that the bare-word head is BARE_ALONE_SURE of is the trigger; at BARE_AGAIN_SURE,
# a near trigger: said again within REPEAT_S, it is the trigger. Chosen on dev runs of the whole
# skill (docs/spotter.md): the heads before stop 37 were that sure of something in speech with no
# trigger every quarter hour or more often, so it was only ever a near trigger; stop 37's head, at
# 0.98, of nothing in 0.5 dev hours dense with near misses (10 more of 156 dev bare words started).
BARE_ALONE_SURE = 0.98
BARE_AGAIN_SURE = 0.9
BARE_WORD = "cramp"  # the text of a bare-word trigger heard in an utterance without words
# A red flag or emergency placed in an utterance no longer than MISHEARD_MAX_S, with nothing
# running, that the trigger head scored MISHEARD_SURE or more at its end (ALONE_END_S) and the
# safety head gives under SAFETY_DOUBTED, is the trigger misheard ("tingling him" for "calf cramp"
# in espeak-ng's New York voices): see ``_misheard_trigger``. Stop 31's measurement, on dev. The
# bare-word head's "cramp" counts too where the safety head gives the red flag under
# OVERRIDE_BELOW: at under SAFETY_DOUBTED it would have taken a dev "i cannot breathe" heard as
# "i fell oh three" (0.26) and "only oh i hurt it" in talk (0.24) for triggers (stop 46).
MISHEARD_MAX_S = ALONE_MAX_S
MISHEARD_SURE = ALONE_SURE
# A command placed in an utterance no longer than this, with nothing running, that the bare-word
# head is BARE_ALONE_SURE of and the command head does not hear, is the bare word misheard ("done"
# for "cramp", "hold on" for "ow cramp"): see ``_misheard_command``. Chosen on dev (stop 47,
# scripts/eval_utterances.py): the bare words it saved were 0.25-0.5 s long; at 1.05 s it would
# have started a routine for an "i'm fine" said in talk (0.88 s, the head at 0.995).
MISHEARD_WORD_S = 0.6
# An utterance shorter than this that the grammar recognizer ended (and the spotter did not
# fire in) is heard again by the transcriber (``asr.moonshine``), over its audio and this much
# on either side (the grammar's word times are approximate); its words, where they make an
# intent other than the trigger, are taken instead. Longer pieces are a room's talk. Only while a
# routine runs (``set_routine``): outside one it would add a red flag now and then (said alone, test,
# stop 41: 85 -> 88 of 120 found), at the CPU of every short sentence of a conversation.
WHOLE_MAX_S = 4.0
WHOLE_MARGIN_S = 0.3
AUDIO_KEPT_S = WHOLE_MAX_S + 4.0  # audio kept for it (the grammar ends an utterance late)
# Intents the grammar placed that the transcriber's words replace only with a safety intent: a red
# flag or a cramp missed is worse than a command missed ("wait, someone help me" written "wait
# some one help me" is pause; stop 41, dev). A trigger keeps its own checks (the spotter's).
SAFETY_FIRST = frozenset({"emergency", "red_flag", "worse"})
KEPT_OVER_COMMANDS = SAFETY_FIRST | {"start"}
# A trigger in those words started a routine too: on dev (stop 41) one more bare word of 156
# and one more false start in half an hour ("the cramp is gone" heard as "... is going"): off.
TRANSCRIBED_TRIGGERS = False
# The transcriber hears again, whole, a short utterance the spotter fired in or that would start a
# routine with nothing running, and where its words take the trigger back as the cramp's end and
# the grammar's did not, they are the hypothesis (``_taken_back_in_words``): the trigger head fires
# as "cramp" ends, before "is gone", and the grammar hears such words only where they are its
# items (stop 39: 82 of 122 routines started by test take-back sentences left running).
TAKE_BACK_IN_WORDS = True
# ... with a word of at least [0] letters at most [1] letters from BARE_WORD read as it: on dev
# (stop 48) Moonshine wrote the take-back words of espeak-ng's voices right and "cramp" as "crab",
# "tramp", "crump" or "cram" ("no more calf crab"); "crumbs", "crayons" and "club" are further.
TRIGGER_SPELLINGS = (4, 2)
# Done (a command, and news about the cramp) placed in the utterance the spotter fired in stands
# only where it takes the trigger in its words back, or ends later than this after the firing
# ("it's gone" said after the trigger): before, its sound is the trigger's own, misheard (stop 49:
# dev "my calf is cramping" as "large off years two up year done", and the routine skipped to its end).
DONE_AFTER_FIRING_S = 0.25


def takes_back_beside(parser: IntentParser, words: str) -> bool:
    """Whether ``words`` would take back a trigger said just before or just after them ("it's
    gone", "no more"): such words are never a trigger misheard."""
    return (parser.takes_back(f"{BARE_WORD} {words}") is not None
            or parser.takes_back(f"{words} {BARE_WORD}") is not None)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein's distance between ``a`` and ``b``: letters put in, taken out or changed."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def with_trigger_word(text: str) -> list[str]:
    """``text`` (a transcriber's words), and where no word in it begins with the trigger word
    (``BARE_WORD``), ``text`` with each word spelt like it (``TRIGGER_SPELLINGS``) put right: Moonshine writes
    "cramp" said by a formant voice as "crab", "tramp" or "crump" ("no more calf crab"), and the
    words that take it back around it are what is asked about."""
    words = text.split()
    if any(w.startswith(BARE_WORD) for w in words) or not words:
        return [text]
    return [text] + [" ".join(words[:i] + [BARE_WORD] + words[i + 1:]) for i, w in enumerate(words)
                     if len(w) >= TRIGGER_SPELLINGS[0] and edit_distance(w, BARE_WORD) <= TRIGGER_SPELLINGS[1]]


class Transcriber(Protocol):
    name: str

    def transcribe(self, samples: np.ndarray) -> tuple[str, float]: ...


# intents that tell something about the person, kept even inside the utterance the spotter fired in
ABOUT_THE_PERSON = frozenset({"start", "done", "worse", "red_flag", "emergency", "still_cramping", "pregnant"})


class SpottingRecognizer:
    """``spotter`` + ``grammar``: see the module docstring."""

    def __init__(self, spotter: TriggerSpotter, grammar: Recognizer, parser: IntentParser,
                 trigger_text: str, confirm_threshold: float | None = None,
                 transcriber: Transcriber | None = None) -> None:
        self.spotter = spotter
        self.grammar = grammar
        self.transcriber = transcriber
        # whether the transcriber is asked (``set_routine``): outside a routine the session takes
        # no command, and a room's talk cost 1.7x the CPU with it (stop 41)
        self.routine_running = True
        self._audio: deque[tuple[int, np.ndarray]] = deque()  # (first sample, samples), the last AUDIO_KEPT_S
        self.parser = parser
        self.trigger_text = trigger_text
        self.confirm_threshold = (spotter.head.confirm_threshold if confirm_threshold is None
                                  else confirm_threshold)
        self.name = f"spotter+{getattr(grammar, 'name', 'recognizer')}"
        self._fired: list[float] = []  # end times of the spotter's recent detections
        self._near: float | None = None  # where the last near trigger ended
        # the grammar's hypotheses not yet judged, in order: a failed trigger waiting for the
        # bare-word head's frames (HOLD_S), and what came after it
        self._waiting: list[Hypothesis] = []
        self.command_threshold = spotter.commands.threshold if spotter.commands is not None else 1.0
        # what a command heard by its sound is reported as: its intent's first phrase
        self._command_text = {name: " ".join(phrases[0]) for name, phrases in parser.table.intents}

    @property
    def missing_words(self):
        return getattr(self.grammar, "missing_words", ())

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        if self.transcriber is not None:
            self._keep(chunk)
        out = [Hypothesis(self.trigger_text, d.score, d.start_s, d.end_s) for d in self.spotter.accept(chunk)]
        for hyp in out:
            self._fired = [t for t in self._fired if t > hyp.end_s - 60.0] + [hyp.end_s]
        self._waiting += self.grammar.accept(chunk)
        heard_to = self.spotter.heard_to_s
        due = 0
        for hyp in self._waiting:
            if self._held_back(hyp) and (heard_to is None or hyp.end_s + HOLD_S > heard_to) \
                    and self._bare_sure_at(hyp) is None:
                break
            due += 1
        judged, self._waiting = self._waiting[:due], self._waiting[due:]
        return out + self._second_opinion(judged)

    def flush(self) -> list[Hypothesis]:
        # the end of the audio: nothing more is coming to wait for
        judged, self._waiting = self._waiting + self.grammar.flush(), []
        return self._second_opinion(judged)

    def set_routine(self, running: bool) -> None:
        """Whether a routine runs (``asr.base``): the transcriber is asked only while one does."""
        self.routine_running = running

    def reset(self) -> None:
        self.spotter.reset()
        self.grammar.reset()
        self._near = None
        self._waiting = []
        self._audio.clear()

    def _keep(self, chunk: AudioChunk) -> None:
        samples = chunk.as_array()
        first = int(round(chunk.start_s * SAMPLE_RATE))
        self._audio.append((first, samples))
        while self._audio and self._audio[0][0] + len(self._audio[0][1]) < first + len(samples) - AUDIO_KEPT_S * SAMPLE_RATE:
            self._audio.popleft()

    def _samples(self, start_s: float, end_s: float) -> np.ndarray:
        """The audio kept from ``start_s`` to ``end_s`` (what is left of it)."""
        lo, hi = int(round(start_s * SAMPLE_RATE)), int(round(end_s * SAMPLE_RATE))
        parts = [s[max(0, lo - at):max(0, hi - at)] for at, s in self._audio if at < hi and at + len(s) > lo]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def _transcribed(self, hyp: Hypothesis, placed: Intent | None) -> Hypothesis | None:
        """``hyp`` (whose words the parser placed as ``placed``) with the words the transcriber
        heard over the same audio, where those make an intent the grammar's words did not; None
        where they make none or the same."""
        if hyp.end_s - hyp.start_s >= WHOLE_MAX_S:
            return None
        text, p = self.transcriber.transcribe(self._samples(hyp.start_s - WHOLE_MARGIN_S, hyp.end_s + WHOLE_MARGIN_S))
        intent = self.parser.parse(text) if text else None
        log.debug("%r at %.2f-%.2f s: %s heard %r (%.2f): %s", hyp.text, hyp.start_s, hyp.end_s,
                  self.transcriber.name, text, p, intent.name if intent else "no intent")
        if intent is None or (intent.name == "start" and not TRANSCRIBED_TRIGGERS):
            return None
        if placed is not None and placed.name == intent.name:
            return None  # the grammar's words agree, and they know when each word was said
        if placed is not None and placed.name in KEPT_OVER_COMMANDS and intent.name not in SAFETY_FIRST:
            return None  # a red flag or a cramp missed is worse than a command missed: as before
        commands = self.spotter.commands
        agrees = (commands is not None and intent.name in commands.classes
                  and self._command_p(hyp, intent.name) >= self._sure(hyp))
        return self._in_words(hyp, text, p, agrees)

    @staticmethod
    def _in_words(hyp: Hypothesis, text: str, p: float, agrees: bool = False) -> Hypothesis:
        """``hyp`` as the transcriber's ``text`` (probability ``p``): no word times, no head's verdict."""
        return replace(hyp, text=text, confidence=p, words=(), sound_agrees=agrees, sound_vetoed=False,
                       sound_intent=None, unverified_trigger=False, transcribed=True)

    def _starts(self, hyp: Hypothesis) -> bool:
        """Whether the session would start a routine for ``hyp`` with nothing running: the trigger
        heard by its sound, or words with a trigger phrase standing in them ("it's still cramping")."""
        if hyp.sound_intent is not None:
            return hyp.sound_intent == "start"
        intent = self.parser.parse(hyp.text)
        return intent is not None and (intent.name == "start" or "start" in intent.also)

    def _ends_trigger(self, words: str) -> bool:
        """Whether ``words`` take a trigger in them back as the cramp's end ("no more calf cramp",
        "the cramp stopped": the parser makes ``done`` of them). Not a denial ("it's not a calf
        cramp"): the denial head hears those before the trigger fires, and Moonshine wrote two dev
        voices' "I've got a calf cramp" as "i'm not a calf cramp" (stop 48)."""
        ended = self.parser.table.retraction.ended_as
        return self.parser.takes_back(words) is not None and (intent := self.parser.parse(words)) is not None \
            and intent.name == ended

    def _taken_back_in_words(self, hyp: Hypothesis, judged: list[Hypothesis]) -> Hypothesis | None:
        """The transcriber's words for ``hyp`` where they take a trigger back as the cramp's end ("the
        cramp stopped", "no more calf cramp": ``_ends_trigger``; its word spelt like the trigger's put
        right, ``with_trigger_word``) and the grammar's did not: asked over an utterance shorter than
        ``WHOLE_MAX_S`` that the spotter fired in (its routine has begun, and these words withdraw
        it, ``Coach.take_back``), or that would start a routine with nothing running (``judged``);
        None otherwise. See ``TAKE_BACK_IN_WORDS``."""
        if self.transcriber is None or not hyp.final or hyp.end_s - hyp.start_s >= WHOLE_MAX_S:
            return None
        if not (self._spotted(hyp) or (not self.routine_running and any(self._starts(h) for h in judged))):
            return None
        if self.parser.takes_back(hyp.text) is not None:
            return None  # the grammar's words take it back themselves
        text, p = self.transcriber.transcribe(self._samples(hyp.start_s - WHOLE_MARGIN_S, hyp.end_s + WHOLE_MARGIN_S))
        back = next((t for t in with_trigger_word(text) if self._ends_trigger(t)), None) if text else None
        log.debug("%r at %.2f-%.2f s: %s heard %r, which %s", hyp.text, hyp.start_s, hyp.end_s, self.transcriber.name,
                  text, "takes nothing back" if back is None else f"takes the trigger back ({back!r})")
        return None if back is None else self._in_words(hyp, back, p)

    def close(self) -> None:
        close = getattr(self.grammar, "close", None)
        if close is not None:
            close()

    def _sure(self, hyp: Hypothesis) -> float:
        """The probability at which the command head is sure of a command over ``hyp``."""
        if hyp.end_s - hyp.start_s < SHORT_UTTERANCE_S:
            return min(self.command_threshold, SHORT_UTTERANCE_THRESHOLD)
        return max(self.command_threshold, LONG_UTTERANCE_THRESHOLD)

    def _command_p(self, hyp: Hypothesis, name: str) -> float:
        """The command head's probability for ``name`` ending within ``hyp`` (``COMMAND_MARGIN_S``
        either side)."""
        return self.spotter.probability(name, hyp.start_s - COMMAND_MARGIN_S, hyp.end_s + COMMAND_MARGIN_S)

    def _safety_by_sound(self, hyp: Hypothesis, placed: Intent | None) -> Hypothesis | None:
        """The red flag or emergency the safety head is sure ended within a short utterance that
        the grammar recognizer made nothing of, a command of, or the other safety intent of
        (``placed``); None where the head is not asked, not sure, or the intent placed stands."""
        safety = self.spotter.safety
        if safety is None or hyp.end_s - hyp.start_s >= SHORT_UTTERANCE_S:
            return None
        lo, hi = hyp.start_s - COMMAND_MARGIN_S, hyp.end_s + COMMAND_MARGIN_S
        label, p = self.spotter.best(lo, hi, "safety")
        name = placed.name if placed is not None else None
        if label is None or p < SAFETY_SURE or label == name:
            return None
        if name in safety.classes:  # the other safety intent: stands unless the head gives it almost nothing
            if self.spotter.probability(name, lo, hi) >= OVERRIDE_BELOW:
                return None
        elif name in ABOUT_THE_PERSON - {"done"}:  # news about the person stands ("it's gone" is also a command)
            return None
        elif placed is not None and self._heard_whole(hyp, placed):
            return None  # a command heard whole, with nothing but courtesy words around it, stands
        elif self.spotter.best(lo, hi)[1] >= self._sure(hyp) and (
                name is None or p < SAFETY_OVER_COMMAND or self.spotter.probability(name, lo, hi) >= self._sure(hyp)):
            # the command head is sure of a command: the heads disagree, and the words decide; unless
            # they placed a command that head does not hear and the safety head is all but certain
            return None
        log.debug("%r placed as %s heard by its sound as %s (%.2f)", hyp.text, name, label, p)
        return replace(hyp, confidence=p, routine_only=True, sound_intent=label)

    def _command_heard(self, label: str, p: float, hyp: Hypothesis) -> Hypothesis:
        """The command head's ``label`` over the span of ``hyp``, as its intent's first phrase,
        marked ``routine_only``: what a head heard by its sound means nothing outside a routine."""
        return Hypothesis(self._command_text[label], p, hyp.start_s, hyp.end_s, routine_only=True)

    def _heard_whole(self, hyp: Hypothesis, placed: Intent) -> bool:
        """Whether the words of ``hyp`` are the phrase of the intent placed in it, with nothing
        but courtesy words around it: then the words decide over either head."""
        return not extra_words(hyp.text, placed.phrase, self.parser.table.courtesy)

    def _by_sound(self, hyp: Hypothesis) -> Hypothesis:
        """A rejected utterance, or the safety intent or command a head is sure ended within it."""
        safety = self._safety_by_sound(hyp, None)
        if safety is not None:
            return safety
        label, p = self.spotter.best(hyp.start_s - COMMAND_MARGIN_S, hyp.end_s + COMMAND_MARGIN_S)
        if label is None or p < self._sure(hyp) or label not in self._command_text:
            return hyp
        log.debug("%r heard by its sound as %r (%.2f)", hyp.text, label, p)
        return self._command_heard(label, p, hyp)

    def _checked_by_sound(self, hyp: Hypothesis, placed: Intent) -> Hypothesis:
        """A placed intent against the heads: a safety intent the safety head is sure of instead;
        for a safety intent among other words, the command the command head is all but certain of;
        for a command, agreed, replaced by the command the command head is sure of, vetoed, or
        left as it was (see the module docstring)."""
        safety = self._safety_by_sound(hyp, placed)
        if safety is not None:
            return safety
        name = placed.name
        commands = self.spotter.commands
        safety_head = self.spotter.safety
        if hyp.final and commands is not None and safety_head is not None and name in safety_head.classes:
            return self._command_over_safety(hyp, placed)
        if not hyp.final or commands is None or name not in commands.classes:
            return hyp
        lo, hi = hyp.start_s - COMMAND_MARGIN_S, hyp.end_s + COMMAND_MARGIN_S
        p = self._command_p(hyp, name)
        sure = self._sure(hyp)
        if p >= sure:
            return replace(hyp, sound_agrees=True)
        doubted = hyp.end_s - hyp.start_s < SHORT_UTTERANCE_S and p < OVERRIDE_DOUBTED
        if p >= OVERRIDE_BELOW and not doubted:
            return hyp
        label, best = self.spotter.best(lo, hi)
        if (label is not None and label != name and best >= (sure if p < OVERRIDE_BELOW else OVERRIDE_CERTAIN)
                and label in self._command_text and not self._heard_whole(hyp, placed)):
            log.debug("%r placed as %s (%.2f by its sound) heard by its sound as %r (%.2f)", hyp.text, name, p,
                      label, best)
            return self._command_heard(label, best, hyp)
        if name in VETO_UNHEARD and p < OVERRIDE_BELOW:
            log.debug("%r placed as %s, which its sound gives %.2f: vetoed", hyp.text, name, p)
            return replace(hyp, sound_vetoed=True)
        return hyp

    def _command_over_safety(self, hyp: Hypothesis, placed: Intent) -> Hypothesis:
        """A red flag or emergency the words placed among other words in a short utterance, where
        the command head is all but certain of a command and the safety head does not hear the
        safety intent: the command ("say again of was i fell" for "okay, what was that")."""
        if hyp.end_s - hyp.start_s >= SHORT_UTTERANCE_S or self._heard_whole(hyp, placed):
            return hyp
        lo, hi = hyp.start_s - COMMAND_MARGIN_S, hyp.end_s + COMMAND_MARGIN_S
        label, p = self.spotter.best(lo, hi)
        if (label is None or p < COMMAND_OVER_SAFETY or label not in self._command_text
                or self.spotter.probability(placed.name, lo, hi) >= SAFETY_UNHEARD):
            return hyp
        log.debug("%r placed as %s heard by its sound as %r (%.2f)", hyp.text, placed.name, label, p)
        return self._command_heard(label, p, hyp)

    def _near_score(self, hyp: Hypothesis) -> float:
        """How sure a head is that ``hyp`` (words that made nothing) was a trigger said alone: the
        trigger head's score at its end, or else the bare-word head's probability over it (see the
        module docstring); 0 where neither is sure enough."""
        if hyp.end_s - hyp.start_s <= ALONE_MAX_S and (score := self._end_score(hyp)) >= ALONE_SURE:
            return score
        if (p := self._bare_said_alone(hyp)) >= BARE_AGAIN_SURE:
            return p
        return 0.0

    def _end_score(self, hyp: Hypothesis) -> float:
        """The trigger head's highest score around the end of ``hyp`` (``ALONE_END_S``): how much
        it sounded like the trigger said alone."""
        return self.spotter.max_score(hyp.end_s - ALONE_END_S[0], hyp.end_s + ALONE_END_S[1])

    def _bare_said_alone(self, hyp: Hypothesis) -> float:
        """The bare-word head's probability that ``hyp`` (words that made nothing) was a bare word
        said alone: 0 where it is too long for one or its words take the word back ("no more")."""
        if hyp.end_s - hyp.start_s > BARE_MAX_S or (hyp.text and not self._stands_with_word(hyp.text)):
            return 0.0
        return self.bare_probability(hyp)

    def _bare_alone(self, hyp: Hypothesis) -> Hypothesis | None:
        """``hyp`` (words that made nothing, no safety phrase heard in it by its sound) as the
        bare-word trigger, where the bare-word head is all but certain it was one said alone
        (``BARE_ALONE_SURE``); None otherwise."""
        if (p := self._bare_said_alone(hyp)) < BARE_ALONE_SURE:
            return None
        log.debug("%r (%.2f s) heard by its sound alone as the bare-word trigger (%.3f)", hyp.text,
                  hyp.end_s - hyp.start_s, p)
        return replace(hyp, text=hyp.text or BARE_WORD, confidence=p, sound_intent="start")

    def _said_again(self, hyp: Hypothesis, otherwise: Hypothesis) -> Hypothesis:
        """``hyp`` (words that made nothing) as the trigger when it is the second near trigger
        within ``REPEAT_S`` (see the module docstring); otherwise ``otherwise``: ``hyp`` itself,
        or the command the command head heard in it (the head hears "stop" in some voices'
        "calf cramp"; outside a routine such a command means nothing)."""
        score = self._near_score(hyp)
        if not score:
            return otherwise
        if self._near is None or hyp.start_s - self._near > REPEAT_S:
            log.debug("%r (%.2f s, %.3f at its end): a near trigger", hyp.text, hyp.end_s - hyp.start_s, score)
            self._near = hyp.end_s
            return otherwise
        log.debug("%r (%.2f s, %.3f at its end): a near trigger again, the trigger said again", hyp.text,
                  hyp.end_s - hyp.start_s, score)
        self._near = None
        return replace(hyp, confidence=score, sound_intent="start")

    def bare_probability(self, hyp: Hypothesis) -> float:
        """The bare-word head's probability over the end of ``hyp`` (0 without the head); after a
        trigger that failed its check, over the longer stretch it was held for: there, the
        probability at the first frame that reached ``BARE_SURE`` (where the hold ended, the same
        frame whatever the chunk size), else the highest."""
        if self.spotter.bare is None:
            return 0.0
        if hyp.unverified_trigger and (sure := self._bare_sure_at(hyp)) is not None:
            return sure[1]
        after = HOLD_S - 0.1 if hyp.unverified_trigger else BARE_END_S[1]
        return self.spotter.best(hyp.end_s - BARE_END_S[0], hyp.end_s + after, "bare")[1]

    def _bare_sure_at(self, hyp: Hypothesis) -> tuple[float, float] | None:
        """The first frame after a failed trigger's kept words at which the bare-word head was
        sure (``BARE_SURE``), and its probability; None where it has not been (yet)."""
        return self.spotter.first_sure(hyp.end_s - BARE_END_S[0], hyp.end_s + HOLD_S - 0.1, BARE_SURE, "bare")

    def _bare_trigger(self, hyp: Hypothesis, intent: Intent | None) -> Hypothesis | None:
        """``hyp`` as the trigger, where the grammar recognizer heard one that the trigger head did
        not confirm or that failed its check, and the bare-word head is sure of it (see the
        module docstring); None otherwise."""
        heard = intent is not None and intent.name == "start"
        if not (heard or hyp.unverified_trigger) or not hyp.final or hyp.end_s - hyp.start_s > BARE_MAX_S:
            return None
        if intent is not None and not heard and intent.name in ABOUT_THE_PERSON:
            return None  # a red flag, "it's gone" or "it hurts more" beside it: the words decide
        if not heard and hyp.text and not self._stands_with_word(hyp.text):
            return None  # the words kept take the dropped "cramp" back: "no more", "don't"
        p = self.bare_probability(hyp)
        if p < BARE_SURE:
            return None
        log.debug("%r (%s) heard by its sound as the bare-word trigger (%.2f)", hyp.text,
                  "a trigger unconfirmed" if heard else "beside a trigger that failed its check", p)
        # an utterance without words (nothing but the failed trigger) is reported as the head's word
        return replace(hyp, text=hyp.text or BARE_WORD, confidence=p, sound_intent="start")

    def _doubted(self, hyp: Hypothesis, intent: Intent) -> Hypothesis:
        """``hyp`` (the utterance the spotter fired in), marked ``safety_doubted`` where it places
        a red flag or emergency that the safety head gives less than ``SAFETY_DOUBTED``."""
        safety = self.spotter.safety
        if safety is None or intent.name not in safety.classes:
            return hyp
        p = self.spotter.probability(intent.name, hyp.start_s - COMMAND_MARGIN_S, hyp.end_s + COMMAND_MARGIN_S)
        if p >= SAFETY_DOUBTED:
            return hyp
        log.debug("%r: %s in the spotted utterance, which the safety head gives %.2f: doubted", hyp.text,
                  intent.name, p)
        return replace(hyp, safety_doubted=True)

    def _stands_with_word(self, kept: str) -> bool:
        """Whether the words kept beside a trigger that failed its check, with the bare word
        after them (where the dropped trigger was), still make the trigger: not after a word that
        takes it back ("no more", "not": the phrase table's ``[retraction]``)."""
        intent = self.parser.parse(f"{kept} {BARE_WORD}")
        return intent is not None and intent.name == "start"

    def _held_back(self, hyp: Hypothesis) -> bool:
        """Whether ``hyp`` waits for the bare-word head's frames after the trigger it lost (up to
        ``HOLD_S``, or until the head is sure)."""
        return (hyp.final and hyp.unverified_trigger and self.spotter.bare is not None
                and hyp.end_s - hyp.start_s <= BARE_MAX_S)

    def _second_opinion(self, hyps: list[Hypothesis]) -> list[Hypothesis]:
        """What the session hears of the grammar recognizer's ``hyps`` (see the module docstring)."""
        kept = []
        for hyp in hyps:
            intent = self.parser.parse(hyp.text) if hyp.final else None
            judged = self._misheard_trigger(hyp, intent)
            if not judged:
                one = self._judge(hyp, intent)
                judged = [] if one is None else [one]
            if TAKE_BACK_IN_WORDS and (back := self._taken_back_in_words(hyp, judged)) is not None:
                kept.append(back)
                continue
            denied = self.spotter.denied_within(hyp.start_s - SPAN_MARGIN_S, hyp.end_s + SPAN_MARGIN_S)
            for heard in judged:
                if denied and (heard.sound_intent == "start" or self._is_trigger(heard)):
                    log.debug("trigger %r at %.2f-%.2f s: the spotter heard it denied by the words before it, "
                              "dropped", heard.text, hyp.start_s, hyp.end_s)
                    continue
                kept.append(heard)
        return kept

    def _misheard_trigger(self, hyp: Hypothesis, intent: Intent | None) -> list[Hypothesis]:
        """A red flag or emergency (``intent``) the grammar recognizer placed in a short utterance
        with nothing running, which the trigger spotter did not fire in, but which sounds like the
        trigger said alone (a near trigger's score at its end) and which the safety head does not
        bear out ("tingling him" for "calf cramp"): the trigger, then the safety phrase
        ``safety_doubted``, as in the utterance the spotter fired in (see the module docstring).
        A command so placed ("help done" for "calf cramp", "done" for "cramp") that the heads take
        for the trigger and the command head does not bear out: the trigger alone
        (``_misheard_command``). Empty otherwise."""
        safety = self.spotter.safety
        length = hyp.end_s - hyp.start_s
        if self.routine_running or not hyp.final or length > max(MISHEARD_MAX_S, BARE_MAX_S) or intent is None:
            return []
        if self._spotted(hyp):
            return []  # judged as the utterance the spotter fired in (``_doubted``)
        commands = self.spotter.commands
        if commands is not None and intent.name in commands.classes:
            return self._misheard_command(hyp, intent)
        if safety is None or intent.name not in safety.classes:
            return []
        p = self.spotter.probability(intent.name, hyp.start_s - COMMAND_MARGIN_S, hyp.end_s + COMMAND_MARGIN_S)
        if p >= SAFETY_DOUBTED:
            return []
        score = 0.0
        if length <= MISHEARD_MAX_S:
            score = self._end_score(hyp)
        if score < MISHEARD_SURE and p < OVERRIDE_BELOW and length <= BARE_MAX_S:
            # the bare-word head's "cramp", where the safety head gives the red flag almost nothing
            score = self.spotter.best(hyp.end_s - BARE_END_S[0], hyp.end_s + BARE_END_S[1], "bare")[1]
            if score < BARE_AGAIN_SURE:
                return []
        elif score < MISHEARD_SURE:
            return []
        log.debug("%r (%.2f s): %s the safety head gives %.2f, a head %.3f for the trigger at its end: the "
                  "trigger misheard", hyp.text, length, intent.name, p, score)
        return [replace(hyp, confidence=score, sound_intent="start"), replace(hyp, safety_doubted=True)]

    def _misheard_command(self, hyp: Hypothesis, intent: Intent) -> list[Hypothesis]:
        """``hyp`` (a command, ``intent``, placed with nothing running, see ``_misheard_trigger``)
        as the trigger where it is no longer than ``MISHEARD_MAX_S``, the command head gives the
        command under ``OVERRIDE_DOUBTED``, its words do not take a trigger back ("no more",
        "gone"), and either the trigger head scored ``MISHEARD_SURE`` or more at its end and the
        bare-word head is ``BARE_AGAIN_SURE`` of a "cramp" over it, or, over a single word's length
        (``MISHEARD_WORD_S``), the bare-word head is ``BARE_ALONE_SURE`` of one; empty otherwise.
        Either head alone is sure of longer real commands now and then: the bare-word head of an
        "i'm fine" in dev talk (0.995 over 0.88 s), the trigger head of "that stop at way" (0.96)."""
        length = hyp.end_s - hyp.start_s
        if length > MISHEARD_MAX_S or takes_back_beside(self.parser, hyp.text):
            return []
        if self.spotter.probability(intent.name, hyp.start_s - COMMAND_MARGIN_S,
                                    hyp.end_s + COMMAND_MARGIN_S) >= OVERRIDE_DOUBTED:
            return []
        bare = self.bare_probability(hyp)
        if (score := self._end_score(hyp)) >= MISHEARD_SURE and bare >= BARE_AGAIN_SURE:
            log.debug("%r (%.2f s): %s, which the command head does not hear, and the trigger head %.3f at its "
                      "end: the trigger misheard", hyp.text, length, intent.name, score)
            return [replace(hyp, confidence=score, sound_intent="start")]
        if length <= MISHEARD_WORD_S and bare >= BARE_ALONE_SURE:
            log.debug("%r (%.2f s): %s, which the command head does not hear, and the bare-word head %.3f: the "
                      "bare word misheard", hyp.text, length, intent.name, bare)
            return [replace(hyp, confidence=bare, sound_intent="start")]
        return []

    def _trigger_heard_as_done(self, hyp: Hypothesis) -> bool:
        """Whether ``hyp`` (placed as done in an utterance the spotter fired in) is the grammar's
        reading of the trigger itself: its words hold no trigger that they take back, and they end
        by ``DONE_AFTER_FIRING_S`` after the spotter fired. "the calf cramp is gone" withdraws the
        routine (the session's take-back), but "help done" for "calf cramp", "wood talk talk two
        all better" for "I've got a calf cramp" would end the routine just started."""
        if self.parser.takes_back(hyp.text) is not None:
            return False
        return any(t - TriggerSpotter.PHRASE_S <= hyp.end_s <= t + DONE_AFTER_FIRING_S for t in self._fired)

    def _spotted(self, hyp: Hypothesis) -> bool:
        """Whether the spotter fired within ``hyp`` (its phrase ending there, ``SPAN_MARGIN_S`` either side)."""
        lo, hi = hyp.start_s - SPAN_MARGIN_S, hyp.end_s + SPAN_MARGIN_S
        return any(lo <= t and t - TriggerSpotter.PHRASE_S <= hi for t in self._fired)

    def _is_trigger(self, hyp: Hypothesis) -> bool:
        intent = self.parser.parse(hyp.text) if hyp.final else None
        return intent is not None and intent.name == "start"

    def _judge(self, hyp: Hypothesis, intent: Intent | None) -> Hypothesis | None:
        """``hyp`` (whose words the parser placed as ``intent``; None for a partial result) as the
        session is to hear it, or None where it is dropped."""
        lo, hi = hyp.start_s - SPAN_MARGIN_S, hyp.end_s + SPAN_MARGIN_S
        spotted = self._spotted(hyp)
        if self.transcriber is not None and self.routine_running and hyp.final and not spotted and \
                (whole := self._transcribed(hyp, intent)) is not None:
            return whole
        if not spotted and (intent is None or intent.name != "start"):
            bare = self._bare_trigger(hyp, intent)  # beside a trigger that failed its check
            if bare is not None:
                return bare
        if not hyp.text:
            return None  # nothing but a trigger that failed its check, and no head heard it
        if intent is None and hyp.final and not spotted:
            by_sound = self._by_sound(hyp)
            return by_sound if by_sound.sound_intent else self._bare_alone(hyp) or self._said_again(hyp, by_sound)
        if intent is None or (intent.name != "start" and not spotted):
            return self._checked_by_sound(hyp, intent) if intent is not None else hyp
        if spotted:
            if intent.name == "start" and not intent.slots and not intent.also:
                log.debug("%r: the grammar recognizer's copy of the spotted trigger, dropped", hyp.text)
            elif intent.name == "done" and self._trigger_heard_as_done(hyp):
                log.debug("%r: done in the spotted trigger's own sound, no trigger in it to take back: dropped",
                          hyp.text)
            elif intent.name in ABOUT_THE_PERSON:
                return self._doubted(hyp, intent)  # a leg, a routine hint, news about the cramp
            else:
                log.debug("%r heard in the utterance the spotter fired in: dropped", hyp.text)
            return None
        score = self.spotter.max_score(lo, hi)
        if score >= self.confirm_threshold:
            return replace(hyp, confidence=min(hyp.confidence, score) if hyp.confidence else score)
        if (bare := self._bare_trigger(hyp, intent)) is not None:  # unconfirmed: the bare-word head's turn
            return bare
        log.debug("trigger %r at %.2f-%.2f s not confirmed by the spotter (%.2f < %.2f): dropped",
                  hyp.text, hyp.start_s, hyp.end_s, score, self.confirm_threshold)
        return None
