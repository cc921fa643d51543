"""The loop: audio chunks -> recognizer -> intents -> echo guard -> coach -> speaker.

One ``Session`` class drives both worlds. With a recording it runs on a ``VirtualClock``
whose time is audio time: it jumps straight to the next thing due (a countdown mark, the
end of an utterance), so a three-minute routine replays in the recognizer's own cost.
Live, the same methods are called with a ``RealClock`` as chunks arrive.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace
from typing import Callable, Iterable

import numpy as np

from voice_skill.asr.base import Hypothesis, Recognizer, tell_routine
from voice_skill.audio.aec import EchoCancelling
from voice_skill.audio.echocheck import unexplained_db
from voice_skill.audio.echotape import EchoTape
from voice_skill.audio.framing import Framer
from voice_skill.audio.pcm import SAMPLE_RATE, AudioChunk
from voice_skill.core.clock import Clock
from voice_skill.core.coach import CancelSpeech, Coach, Emit, Say
from voice_skill.core.echoguard import SAFETY_INTENTS, EchoGuard
from voice_skill.core.intents import SAFE_EARLY_INTENTS, Intent, IntentParser, tokens, word_span
from voice_skill.runtime.eventlog import EventLog
from voice_skill.tts.base import Speaker

log = logging.getLogger(__name__)

# The echo canceller learns the room from the skill's first words. Until it has
# (``EchoCanceller.learned``), and at most this long into the skill's first speech, a red flag
# or emergency the safety head heard by its sound in other words over that speech is not taken:
# live, the skill's own intro came back as "i was you what was that" with the head sure of an
# emergency (stop 43, ``scripts/eval_live_echo.py``). One the recognizer placed in words is
# judged there as anywhere, on its phrase's own words (``_phrase_times``). Until stop 43 only the
# phrase said alone counted in this time (an early build heard its intro back as "my leg is weak
# ... felt a pop", before the echo check existed): live, red flags said over the skill's first
# sentences were then taken 1 time in 12, now 6 in 12, with no false one from its own voice in
# 24 first starts (simulated, ``eval_commands.py --echo --safety``: dev 13 -> 18 of 50, test
# 10 -> 16 of 49, no false one added).
ECHO_LEARNING_S = 8.0
# Any other command said over the skill's first words ever, before the canceller has explained
# some of them (``EchoCanceller.learned``), is not taken either: 0.2 s into the skill's first
# sentence, its own "I'm with you" came back as "quit", whole and alone, and stopped the
# routine (a fresh-clone CI run). Only the first words: where the microphone hears no echo at
# all (a headset, a loudspeaker far away) the canceller never learns, and a user's "stop" over
# the skill must still be obeyed. The user can say it again once the sentence ends.
FIRST_WORDS_S = 4.0
# With nothing running, a safety phrase buried in a long stretch of other speech is the
# television or a conversation, not someone calling to the skill: measured on 4 minutes
# of generated TV audio, all 23 emergency and red-flag phrases PocketSphinx found came
# with 6 or more other words; someone calling out ("oh no, my chest hurts") uses fewer.
IDLE_SAFETY_EXTRA_WORDS = 5
# Over the skill's own speech a safety phrase is judged by the sound of its own words instead
# (the echo checks in ``_on_hypothesis``, ``ROOM_OVER_MIN_DB``). Until stop 44 one heard with more
# than eight other words there was also dropped ("buried in own voice": before the phrase's own
# words were checked, PocketSphinx made "ah too slow egg yet but up ah at it's blue skip there
# repeat that done" of a routine's sentence, and the red flag stopped the massage). By then it
# dropped mostly users' calls the recognizer had run into a babble's or a TV's words: without
# it, red flags said over the skill on the dev voices (``eval_commands.py --split dev --echo
# --safety``) 18 -> 22 right of 50, 9 -> 10 taken as another safety or command intent; the cost,
# a red flag from babble or TV talk over the skill's speech before the user's (1 more in the
# same run, 1 more in ``--echo``'s commands run), as when the skill is silent in a routine.
# Where the recognizer placed a trigger that failed its acoustic check (``Hypothesis.
# unverified_trigger``), the other words were decoded in the same misheard stretch: said alone in
# the dev voices, "I have a cramp" and the like came back so 62 times of 156, six of them as a
# command (five times "done", in the words or by the command head's ear: the skill answered that
# the cramp had eased, and in a routine it would have ended it; once "wait oh no", a pause) and
# twice as a red flag ("i fell but"). A command said alone never came with one (0 of 312 dev
# utterances), nor did a safety phrase (0 of 156), so only what tells of the person's safety or
# cramp still counts there; a red flag wrongly taken costs less than one missed.
BESIDE_UNVERIFIED_TRIGGER = SAFETY_INTENTS | {"start", "still_cramping"}
FRAME_SAMPLES = 160  # 10 ms: the grid on which the session feeds the recognizer and moves the clock
# A command heard over the skill's own speech must have kept at least this much of the
# microphone's energy through the echo canceller: a user's word over an echo 6 dB down
# keeps about -1 dB; the skill's own words, misheard from what the canceller left of them
# ("Ten." heard as "done" while the filter was still learning the room), keep far less.
SURVIVED_MIN_DB = -6.0
SURVIVAL_KEEP_S = 30.0  # how far back that can be looked up (longer than any utterance)
# The second opinion (``audio.echocheck``), which needs no converged filter: a command heard
# over the skill's speech is the skill's own voice when a least-squares fit of the reference
# to the seconds around it explains all but this much of the microphone there. Measured on
# live loopback runs: the skill's own garbled words -23 to -47 dB, a user's word over an echo
# 6 dB down -0.1 to -3 dB; on the simulated room of ``scripts/eval_commands.py --split dev
# --echo``, the skill's own garble -16 to -19 dB, users' commands 0 to -3 dB (noise that is
# not the loudspeaker's, TV or a fan, counts as unexplained: in noise the check says less).
# The same for safety phrases: -12 dB is a sixteenth of the energy, no one calling out.
UNEXPLAINED_MIN_DB = -12.0
# A word beside a command is judged on its middle: this much off each edge, leaving at least
# WORD_MIDDLE_S (the check's 64-ms frames reach half their length past a stretch's edge).
WORD_EDGE_S = 0.04
WORD_MIDDLE_S = 0.05
# Beside a command the loudspeaker cannot have said, this many words it cannot have said either
# are forgiven: a user's "stop" came back as "stop not" over the skill's voice. More such words
# are someone talking (a television, babble), whose command-like word is not taken over the
# skill's speech.
STRAY_WORDS = 1
# A sentence that takes back the trigger in it ("I don't have a calf cramp") withdraws the routine
# the spotter started on that trigger: one that began no earlier than this before the sentence
# did (the recognizer's word times are approximate by about this much).
TAKE_BACK_MARGIN_S = 0.3
# What the loudspeaker cannot explain of a phrase said over the skill's speech must be this much
# louder than the room: the quiet part (a percentile) of what the microphone heard while the
# loudspeaker played nothing, in the seconds kept for the echo check. Over a fan a third of the
# microphone's energy, the skill's own "Now stroke slowly" came back as "puffy" with the check above
# at -4.5 dB, the fan being what it could not explain, and stopped the massage. On the dev voices
# with the echo (``eval_commands.py --split dev --echo``, with ``--safety`` and ``--listen-only
# 120``), the intents nobody said that got that far were -0.3 to 5.2 dB over the room (three
# "puffy"s over a fan or a TV, a "repeat" in babble), every user's phrase taken 9 dB or more (9.1
# to 11.4 at 6 dB of fan); with nobody speaking over 23 minutes of routine, 5 false intents -> 1.
ROOM_OVER_MIN_DB = 6.0
ROOM_GAP_S = 0.3  # not the moment just before the phrase (its onset)
ROOM_MIN_S = 0.5  # less than this heard with the loudspeaker silent: no judgment
ROOM_FLOOR_PERCENTILE = 20
ECHO_CHECK_KEEP_S = 12.0  # microphone and reference kept for it
ECHO_CHECK_BEFORE_S = 1.5  # context fitted before a hypothesis (the echo path before the word)
ECHO_CHECK_AFTER_S = 0.5
ECHO_CHECK_MAX_S = 8.0  # fit at most this much (a long hypothesis: its last seconds)


class Session:
    def __init__(
        self,
        *,
        recognizer: Recognizer,
        parser: IntentParser,
        coach: Coach,
        speaker: Speaker,
        clock: Clock,
        events: EventLog,
        guard: EchoGuard | None = None,
        room: Callable[[AudioChunk], AudioChunk] | None = None,
        input_to_clock: Callable[[float], float | None] | None = None,
        echo_canceller: EchoCancelling | None = None,
        echo_tape: EchoTape | None = None,
    ) -> None:
        self.recognizer = recognizer
        self._told_routine: bool | None = None  # what the recognizer was last told (``asr.base.tell_routine``)
        self.parser = parser
        self.coach = coach
        self.speaker = speaker
        self.clock = clock
        self.events = events
        self.guard = guard or EchoGuard(courtesy=parser.table.courtesy)
        self.room = room  # a simulated room between the speaker and the input (``audio.room``)
        self.echo_canceller = echo_canceller
        self.echo_tape = echo_tape  # what the canceller saw, for a post-mortem (``audio.echotape``)
        # Live input is stamped in stream time; this maps it onto the clock the speaker uses.
        self.input_to_clock = input_to_clock
        self._early_pause = False  # a partial result paused the routine; the final decides
        # (clock time, energy in, energy out) of the echo canceller's recent blocks
        self._survival: deque[tuple[float, float, float]] = deque(maxlen=int(SURVIVAL_KEEP_S * SAMPLE_RATE
                                                                              / FRAME_SAMPLES))
        self._echo_learned_at: float | None = None  # clock time the canceller had learned the room
        # (clock time, microphone block, reference block or None, the canceller's offset on its
        # tape) for the second opinion
        self._heard: deque[tuple[float, np.ndarray, np.ndarray | None, int | None]] = deque(
            maxlen=int(ECHO_CHECK_KEEP_S * SAMPLE_RATE / FRAME_SAMPLES))
        self._framer = Framer(FRAME_SAMPLES)  # input cut into the frame grid
        self._origin_s: float | None = None  # input time of the frame grid's first sample

    # ---- feeding --------------------------------------------------------------------

    def feed(self, chunk: AudioChunk) -> None:
        """Process a chunk of input audio of any size.

        It is cut into fixed frames first, so the recognizer sees the same frames and the
        clock stops at the same instants whatever the caller's chunk size: the same
        recording in 20 ms or 100 ms chunks gives the same events.
        """
        framer = self._framer
        if self._origin_s is None or abs(chunk.start_s - self._time_at(framer.samples_in)) > 1e-6:
            # the first chunk, or a gap in the input: start a new frame grid here
            self._origin_s = chunk.start_s
            framer.clear()
        first = framer.samples_out
        for i, frame in enumerate(framer.cut(chunk.audio)):
            self._feed_frame(AudioChunk(frame, self._time_at(first + i * FRAME_SAMPLES)))

    def _time_at(self, sample: int) -> float:
        """Seconds of input at a sample count since the grid's origin (exact: no summed steps)."""
        return self._origin_s + sample / SAMPLE_RATE

    def _feed_frame(self, chunk: AudioChunk) -> None:
        follows = self.clock.follows_audio
        self.advance_to(chunk.start_s if follows else self.clock.now())
        if self.room is not None:
            chunk = self.room(chunk)
        if self.echo_canceller is not None:
            chunk = self._cancel_echo(chunk)
        if self.coach.active is not self._told_routine:
            self._told_routine = self.coach.active
            tell_routine(self.recognizer, self._told_routine)
        hyps = self.recognizer.accept(chunk)
        self.advance_to(chunk.end_s if follows else self.clock.now())
        self.hear(hyps)

    def hear(self, hyps: Iterable[Hypothesis]) -> None:
        for hyp in hyps:
            self._on_hypothesis(self._on_clock(hyp))

    def _on_clock(self, hyp: Hypothesis) -> Hypothesis:
        if self.input_to_clock is None:
            return hyp
        start = self.input_to_clock(hyp.start_s)
        if start is None:
            return hyp
        shift = start - hyp.start_s
        return replace(hyp, start_s=start, end_s=hyp.end_s + shift,
                       words=tuple((w, a + shift, b + shift) for w, a, b in hyp.words))

    def end_of_stream(self, limit_s: float = 3600.0) -> None:
        """The recording ended: finish the last utterance, then let the routine run out on
        the virtual clock, as if the room had gone quiet, and the episode with it (it ends
        after the coach's quiet period, ``coach.EPISODE_QUIET_S``)."""
        start = self._framer.samples_out
        rest = self._framer.take_rest()
        if rest:
            self._feed_frame(AudioChunk(rest, self._time_at(start)))
        self.hear(self.recognizer.flush())
        stop_at = self.clock.now() + limit_s
        while self.coach.active or self.speaker.busy or self.coach.in_episode:
            due = self._next_due()
            if due is None or due > stop_at:
                break
            self.advance_to(due)
        self._pump()

    # ---- time -----------------------------------------------------------------------

    def device_notice(self, key: str) -> None:
        """Say a device change to the user if the coach thinks they should hear it."""
        self._apply(self.coach.device_notice(key))

    def next_due(self) -> float | None:
        """When something is next due (a timer, the end of an utterance), or None."""
        return self._next_due()

    def _next_due(self) -> float | None:
        times = [t for t in (self.coach.next_deadline(), self.speaker.next_event_time()) if t is not None]
        return min(times) if times else None

    def advance_to(self, t: float) -> None:
        """Run everything due up to ``t``, in time order."""
        for _ in range(100_000):
            self._pump()
            due = self._next_due()
            if due is None or due > t:
                break
            self.clock.advance_to(due)  # a real clock is there already
            self._apply(self.coach.tick(self.clock.now()))
        else:  # pragma: no cover - a coach bug, not a user error
            raise RuntimeError("the coach keeps scheduling work at the same instant")
        self.clock.advance_to(t)
        self._pump()
        self._apply(self.coach.tick(self.clock.now()))

    def _pump(self) -> None:
        """Deliver what the speaker reports: starts, ends and cut-offs."""
        for ev in self.speaker.poll():
            if ev.kind == "started":
                self.guard.started(ev.utterance_id, ev.t, ev.text)
                self.events.write(ev.t, "say", text=ev.text)
            else:
                self.guard.ended(ev.utterance_id, ev.t)
                if ev.kind == "finished":
                    self._apply(self.coach.speech_finished(ev.utterance_id, ev.t))
                else:
                    self.events.write(ev.t, "cut", text=ev.text)

    def _apply(self, actions: Iterable[object]) -> None:
        now = self.clock.now()
        for action in actions:
            if isinstance(action, Say):
                self.speaker.say(action.text, action.utterance_id)
            elif isinstance(action, CancelSpeech):
                self.speaker.cancel()
                self._pump()
            elif isinstance(action, Emit):
                self.events.write(now, action.event, **action.fields)

    # ---- hearing --------------------------------------------------------------------

    def _on_hypothesis(self, hyp: Hypothesis) -> None:
        # an intent a head heard by its sound: what the recognizer heard is all its phrase
        intent = (self.parser.parse(hyp.text) if hyp.sound_intent is None
                  else Intent(hyp.sound_intent, " ".join(tokens(hyp.text))))
        verdict = self.guard.judge(hyp, intent)
        if verdict == "mixed with own voice" and intent is not None and self._others_are_echo(hyp, intent):
            verdict = None
        if verdict is None and intent is not None and hyp.sound_vetoed:
            verdict = "not a command by its sound"
        if verdict is None and intent is not None and hyp.unverified_trigger \
                and intent.name not in BESIDE_UNVERIFIED_TRIGGER:
            verdict = "beside a trigger that did not check out"
        if verdict is None and intent is not None and self.echo_canceller is not None \
                and self.guard.speaking(hyp.start_s, hyp.end_s):
            # Said over the skill's own speech: the user's voice passes the echo canceller,
            # what is left of the skill's own (garbled into "done", "repeat") does not. A red flag
            # or emergency is judged on its own words: the recognizer runs the skill's echo and a
            # user's call into one utterance ("it's numb at the gym"), mostly the echo's.
            if intent.name in SAFETY_INTENTS:
                intent, verdict = self._safety_over_own_voice(hyp, intent)
            else:
                verdict = self._echo_verdict(hyp.start_s, hyp.end_s)
            first = self.guard.first_started()
            learning = first is not None and (self._echo_learned_at is None or hyp.start_s < self._echo_learned_at)
            if (verdict is None and learning and intent.name not in SAFETY_INTENTS
                    and hyp.start_s < first + FIRST_WORDS_S):
                verdict = "over own voice before the echo canceller learned the room"
            elif (verdict is None and learning and intent.name in SAFETY_INTENTS and hyp.sound_intent is not None
                  and hyp.start_s < first + ECHO_LEARNING_S):
                verdict = "heard by its sound over own voice while the echo canceller learns"
        if (verdict is None and intent is not None and hyp.routine_only and not self.coach.active
                and not (hyp.sound_intent in SAFETY_INTENTS and self.coach.in_episode)):
            # (a red flag the safety head heard counts in the minutes after a routine as well: a
            # calf that swells once the cramp has gone is the sign to hear)
            verdict = "no routine to command"
        if (verdict is None and intent is not None and intent.name in SAFETY_INTENTS and not self.coach.active
                and _other_words(hyp, intent) > IDLE_SAFETY_EXTRA_WORDS):
            verdict = "buried in other speech"
        if not hyp.final:
            self._on_partial(hyp, intent, verdict)
            return
        early, self._early_pause = self._early_pause, False
        after = self.parser.takes_back(hyp.text) if hyp.sound_intent is None and self.coach.active else None
        if after is not None and self._taken_back_by_user(hyp, after):
            # the sentence the routine was started from, heard whole
            withdrawn = self.coach.take_back(hyp.start_s - TAKE_BACK_MARGIN_S,
                                             intent is not None and intent.name == "done", self.clock.now())
            if withdrawn:
                self._log_heard(hyp, intent, None, took_back=True)
                self._apply(withdrawn)
                return
        self._log_heard(hyp, intent, verdict)
        if intent is None or verdict is not None:
            if early:  # the partial result was wrong: carry on as before
                self._apply(self.coach.handle(Intent("resume", ""), self.clock.now()))
            return
        if early and intent.name == "pause":
            return  # already paused by the partial result
        if hyp.safety_doubted:  # in the very words that started the routine: paused, with a way back
            self._apply(self.coach.doubted(intent, self.clock.now()))
            return
        self._apply(self.coach.handle(intent, self.clock.now()))

    def _taken_back_by_user(self, hyp: Hypothesis, after: int) -> bool:
        """Whether the words that take back the trigger in ``hyp`` after it (from word ``after``:
        ``IntentParser.takes_back``) are the user's. The sentence began before the skill spoke
        (the routine began within it), but those words overlap the skill's first words: where the
        recognizer's word times tell when they were said, and the loudspeaker's reference explains
        the microphone there (``unexplained_db``), they are the skill's own voice misheard ("is
        over"), and the routine stands."""
        words = hyp.words
        if self.echo_canceller is None or not words or after >= len(words) or len(words) != len(tokens(hyp.text)):
            return True
        said = self.unexplained_db(words[after][1], words[-1][2])
        if said is not None and said < UNEXPLAINED_MIN_DB:
            log.debug("%r: the words that take the trigger back are the loudspeaker's (%.1f dB)", hyp.text, said)
            return False
        return True

    def _echo_verdict(self, start_s: float, end_s: float) -> str | None:
        """Why what the microphone heard from ``start_s`` to ``end_s`` (clock time), over the
        skill's speech, is the skill's own voice and not someone's; None if it is not."""
        survived = self.survived_db(start_s, end_s)
        if survived is not None and survived < SURVIVED_MIN_DB:
            return "echo left over"
        unexplained = self.unexplained_db(start_s, end_s)
        if unexplained is not None and unexplained < UNEXPLAINED_MIN_DB:
            return "the loudspeaker's own sound"
        over = self.over_room_db(start_s, end_s, unexplained)
        if over is not None and over < ROOM_OVER_MIN_DB:
            return "no louder than the room"
        return None

    def _safety_over_own_voice(self, hyp: Hypothesis, intent: Intent) -> tuple[Intent, str | None]:
        """A red flag or emergency heard over the skill's speech, judged on its phrase's own
        words; where those are the skill's echo, another red flag or emergency in the same words
        whose own words are not is taken instead. Live, the recognizer ran the echo and a user's
        call into one utterance that held a safety phrase of each: "it at puffy get help er i
        heard a pop" (the echo's "get help", an emergency, outranked the user's red flag and was
        rightly dropped, and the user's "i heard a pop" with it)."""
        span = self._phrase_times(hyp, intent)
        verdict = self._echo_verdict(*span)
        if verdict is None or hyp.sound_intent is not None:
            return intent, verdict
        # each stretch judged once (an echo fit each): without the recognizer's word times every
        # phrase's stretch is the whole utterance
        judged = {span}
        for other in self.parser.parse_all(hyp.text):
            if other.name not in SAFETY_INTENTS:
                continue
            times = self._phrase_times(hyp, other)
            if times not in judged:
                judged.add(times)
                if self._echo_verdict(*times) is None:
                    return other, None
        return intent, verdict

    @staticmethod
    def _phrase_times(hyp: Hypothesis, intent: Intent) -> tuple[float, float]:
        """Where the words that make ``intent`` were said within ``hyp`` (the recognizer's word
        times), or all of ``hyp`` where that is not known."""
        if hyp.sound_intent is None and hyp.words and len(hyp.words) == len(tokens(hyp.text)):
            span = word_span([w for w, _, _ in hyp.words], intent.phrase)
            if span is not None:
                return hyp.words[span[0]][1], hyp.words[span[1]][2]
        return hyp.start_s, hyp.end_s

    def _others_are_echo(self, hyp: Hypothesis, intent: Intent) -> bool:
        """Whether a command heard with other words over the skill's speech ("eat pause") was
        said on its own, the other words being what the canceller left of the skill's voice or
        a stray word of the user's: the recognizer's word times (``Hypothesis.words``) place the
        command's words where the loudspeaker's reference cannot explain the microphone
        (``unexplained_db``), and every other word where it can, but for at most
        ``STRAY_WORDS`` of them. Live, a user's "pause" over the skill came back as "eat pause"
        in every try of some runs, and a "stop" as "stop not" (the word's own release, not the
        loudspeaker's) in some loaded runs, and both were ignored as mixed with the skill's own
        voice."""
        if self.echo_canceller is None or not hyp.words:
            return False
        span = word_span([w for w, _, _ in hyp.words], intent.phrase)
        if span is None:
            return False
        first, last = span
        said = self.unexplained_db(hyp.words[first][1], hyp.words[last][2])
        if said is None or said < UNEXPLAINED_MIN_DB:
            return False
        others = [(a, b) for i, (w, a, b) in enumerate(hyp.words)
                  if not first <= i <= last and not set(tokens(w)) <= self.guard.courtesy]
        strays = 0
        for start, end in others:
            # (its middle: the frames at a word's edge reach into the next word, and word times
            # are approximate)
            edge = min(WORD_EDGE_S, max(0.0, (end - start - WORD_MIDDLE_S) / 2))
            echo = self.unexplained_db(start + edge, end - edge)
            if echo is None:
                return False
            strays += echo >= UNEXPLAINED_MIN_DB
        if not others or strays > STRAY_WORDS:
            return False
        log.debug("%r: the words beside %r are the loudspeaker's own sound or %d stray word", hyp.text,
                  intent.phrase, strays)
        return True

    def _on_partial(self, hyp: Hypothesis, intent: Intent | None, verdict: str | None) -> None:
        """Act early on a partial result only where that is safe and reversible: "stop" and
        "pause" silence the skill at once by pausing; the final result confirms (stop),
        keeps (pause) or undoes (anything else) it."""
        if (intent is None or intent.name not in SAFE_EARLY_INTENTS or verdict is not None
                or self._early_pause or not self.coach.active or self.coach.paused):
            return
        self._early_pause = True
        self.events.write(self.clock.now(), "heard", text=hyp.text, intent=intent.name, partial=True,
                          confidence=round(hyp.confidence, 3))
        self._apply(self.coach.handle(Intent("pause", intent.phrase), self.clock.now()))

    def _log_heard(self, hyp: Hypothesis, intent: Intent | None, verdict: str | None,
                   took_back: bool = False) -> None:
        fields: dict[str, object] = {
            "text": hyp.text,
            "intent": intent.name if intent and verdict is None else None,
            "confidence": round(hyp.confidence, 3),
            "start_s": round(hyp.start_s, 3),
            "end_s": round(hyp.end_s, 3),
        }
        if verdict:
            fields["ignored"] = verdict
        if hyp.sound_agrees or hyp.sound_intent:
            fields["by_sound"] = True  # a head heard the same command, or the intent logged
        if intent and intent.slots:
            fields["slots"] = dict(intent.slots)
        if took_back:
            fields["took_back"] = True  # the trigger the routine was started from
        if hyp.transcribed:
            fields["transcribed"] = True  # the words are Moonshine's, heard again over a short utterance
        if hyp.safety_doubted and intent is not None and intent.name in SAFETY_INTENTS:
            fields["doubted"] = True  # a safety intent the safety head did not bear out
        self.events.write(self.clock.now(), "heard", **fields)

    def _cancel_echo(self, chunk: AudioChunk) -> AudioChunk:
        start = chunk.start_s if self.input_to_clock is None else self.input_to_clock(chunk.start_s)
        mic = chunk.as_array().astype(np.float64)
        cleaned = self.echo_canceller.process_at(mic, int(round(chunk.start_s * SAMPLE_RATE)), start)
        if self.echo_tape is not None:
            self.echo_tape.write(mic, self.echo_canceller.last_reference, cleaned, start)
        if start is not None:
            self._survival.append((start, float(mic @ mic), float(cleaned @ cleaned)))
            ref = self.echo_canceller.last_reference
            self._heard.append((start, mic.astype(np.float32),
                                None if ref is None else np.asarray(ref, dtype=np.float32),
                                getattr(self.echo_canceller, "offset", None)))
            if self._echo_learned_at is None and self.echo_canceller.learned:
                self._echo_learned_at = start
                first = self.guard.first_started()
                log.info("echo canceller: learned the room %.1f s after the skill first spoke",
                         start - first if first is not None else 0.0)
        if cleaned is mic:
            return chunk
        return AudioChunk(np.clip(np.round(cleaned), -32768, 32767).astype("<i2").tobytes(), chunk.start_s)

    def survived_db(self, start_s: float, end_s: float) -> float | None:
        """How much of what the microphone heard from ``start_s`` to ``end_s`` (clock time)
        the echo canceller let through, in dB (0: all of it); None if nothing was recorded."""
        heard = left = 0.0
        for t, before, after in self._survival:
            if start_s <= t < end_s:
                heard += before
                left += after
        if heard <= 0.0:
            return None
        return 10.0 * float(np.log10((left + 1.0) / (heard + 1.0)))

    def over_room_db(self, start_s: float, end_s: float, unexplained_db: float | None) -> float | None:
        """How much louder (dB) the part of the microphone from ``start_s`` to ``end_s`` (clock
        time) that the loudspeaker cannot explain (``unexplained_db`` of it) is than the room: the
        quiet part (``ROOM_FLOOR_PERCENTILE``) of what the microphone heard in the seconds before
        while the loudspeaker played nothing. None where that is not known."""
        if unexplained_db is None:
            return None
        said = [heard for t, heard, _ in self._survival if start_s <= t < end_s]
        room = [float(mic.astype(np.float64) @ mic) for t, mic, ref, _ in self._heard
                if t < start_s - ROOM_GAP_S and (ref is None or not ref.any())]
        if not said or len(room) * FRAME_SAMPLES < ROOM_MIN_S * SAMPLE_RATE:
            return None
        unexplained = 10.0 ** (unexplained_db / 10.0) * float(np.mean(said))
        return 10.0 * float(np.log10((unexplained + 1.0) / (float(np.percentile(room, ROOM_FLOOR_PERCENTILE)) + 1.0)))

    def unexplained_db(self, start_s: float, end_s: float) -> float | None:
        """How much of what the microphone heard from ``start_s`` to ``end_s`` (clock time)
        the loudspeaker's reference cannot explain, in dB (``echocheck``); None where that
        cannot be judged (nothing kept, nothing played around it)."""
        lo = max(start_s - ECHO_CHECK_BEFORE_S, end_s + ECHO_CHECK_AFTER_S - ECHO_CHECK_MAX_S)
        blocks = [b for b in self._heard if lo <= b[0] < end_s + ECHO_CHECK_AFTER_S]
        if not blocks or all(ref is None for _, _, ref, _ in blocks):
            return None
        mic = np.concatenate([m for _, m, _, _ in blocks])
        ref = np.concatenate([np.zeros(len(m)) if r is None else r for _, m, r, _ in blocks])
        first = blocks[0][0]
        start = max(0, int(round((start_s - first) * SAMPLE_RATE)))
        end = int(round((end_s - first) * SAMPLE_RATE))
        # where the canceller moved its reference onto a moved echo
        at = np.cumsum([0] + [len(m) for _, m, _, _ in blocks])
        moves = [int(at[i]) for i in range(1, len(blocks)) if blocks[i][3] != blocks[i - 1][3]]
        return unexplained_db(mic, ref, start, end, moves)


def _other_words(hyp: Hypothesis, intent: Intent) -> int:
    """How many words were heard besides the intent's phrase (the safety rules' measure)."""
    return len(tokens(hyp.text)) - len(intent.phrase.split())
