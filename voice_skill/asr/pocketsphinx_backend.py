"""The built-in recognizer: PocketSphinx with the English model that ships in its wheel.

Method (chosen by measurement, see ``scripts/bench_asr.py``):

1. Audio is re-framed into fixed 30 ms frames and run through PocketSphinx's
   ``Endpointer`` (WebRTC-style VAD with a short decision window). Silence costs only the
   VAD; the decoder runs on speech frames only, so CPU follows the amount of speech.
2. Each speech segment is decoded with a JSGF grammar: a free loop over *items*, where an
   item is either one of the skill's phrases (as a unit), a trigger's lead-in ("i've got a",
   as a unit that parses to nothing), or one *filler* word drawn from
   a few hundred common English words plus words that sound like the commands ("camp",
   "crab", "half", "decamp"...). Out-of-vocabulary speech is absorbed by fillers instead
   of being forced onto a command; a multi-word phrase costs one grammar transition
   while spelling it from fillers costs several, so real commands come out whole (and a
   lead-in spelled from fillers came out as the nearest phrase: "i've got a" as "i fell").
3. Trigger words get extra pronunciations (``_VARIANTS``: "cramp" as K R AH M P, K R AE M...,
   heard this way from formant-synthesis voices and in casual speech).
4. Utterance verification for triggers (a false start is costly): when the grammar path
   contains trigger words, the same segment is decoded again with a free phone loop
   (allphone search, second decoder; it runs only for those segments, so it costs
   nothing on ordinary speech). The log-likelihood ratio per frame between the grammar
   path and the phone loop over the trigger words' frames must exceed a threshold; a
   lone trigger word embedded in other speech ("...the cramp far dinner" for "the crab
   for dinner") needs a much better ratio than a whole trigger phrase. Rejected trigger
   words are dropped from the text. Measured on generated speech (``scripts/bench_asr.py``):
   without verification 37.5 false starts per hour of ordinary speech, with it ~0.
5. Every phrase word carries a posterior probability from the lattice (the confidence).
6. Noise that never goes quiet (babble, TV): the VAD then never ends the segment, and
   the trigger used to be decided only when the recording ended. Now a second grammar
   decoder with live CMN (its start value the batch mean of the audio so far) decodes a
   segment while it goes on, once it is longer than ``early_after_s``; every 60 ms its
   partial best path is checked, and a trigger phrase of two or more words that has stayed
   there unchanged for 0.15 s is verified as in 4, and emitted at once if it is also 6 dB
   louder than the room was 3 to 10 s before it (a TV's own words are not); the segment is
   cut after it. Segments are also cut at ``max_segment_s``, and in a segment longer than
   ``room_rule_after_s`` only the phrases 6 dB louder than the room before them are kept (the
   user over a TV; the TV's own words, in which the grammar places red flags, are not). In
   such a segment a command (``early_phrases``) found loud in the live path, and settled, is
   taken at once too: a command over a TV is taken when it is said, not when the 10-s piece
   ends.
   The final decode of each segment stays a batch decode (live CMN there took "crab" and "camp" said alone for "cramp").
   ``maxhmmpf`` 3000 (default 30000) halves the decoder's CPU in babble at no measured
   recall cost. Numbers: see the report in ``scripts/bench_asr.py``'s docstring.

Times are seconds of audio, taken from the chunks; the wall clock is never read. The
same audio fed in any chunk size gives the same hypotheses.

One module on purpose: the grammar, the verification pass and the room rule tune one
decoder together, and their constants were measured together (see the comments).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace
import math
import os
import re
import tomllib
from importlib import resources
from typing import Iterable, Mapping, Sequence

import numpy as np

from voice_skill.asr.base import Hypothesis
from voice_skill.audio.framing import Framer
from voice_skill.audio.pcm import SAMPLE_RATE, SAMPLE_WIDTH, AudioChunk
from voice_skill.errors import ModelError, RecognizerError

log = logging.getLogger(__name__)

# Filler words and extra pronunciations: English knowledge, in data/pocketsphinx-en.toml.
_LEXICON = tomllib.loads(
    (resources.files("voice_skill") / "data" / "pocketsphinx-en.toml").read_text(encoding="utf-8"))
_COMMON_WORDS: list[str] = list(_LEXICON["common_words"])
_CONFUSERS: list[str] = list(_LEXICON["confusers"])
# (the words that take a trigger back are grammar items of the same kind)
_LEAD_INS: list[str] = list(_LEXICON.get("lead_ins", [])) + list(_LEXICON.get("take_backs", []))
_VARIANTS: dict[str, tuple[str, ...]] = {word: tuple(prons) for word, prons in _LEXICON["pronunciations"].items()}

# Verification thresholds: log-likelihood ratio per 10 ms frame (logmath base 1.0001
# units) of grammar path vs free phone loop over the trigger words. Chosen on the
# benchmark: true triggers range about -58..-6, false ones -98..-25, and all false ones
# above -45 were a single trigger word inside other speech.
# A one-word trigger said on its own ("cramp") sits between: "crab" alone scores -38..-50,
# "cramp" alone -24..-38; "cram" and "cramped" alone score like "cramp" (inseparable).
# -40 favours the real trigger: a bare "crab" in a flite voice (-37.9) still gets through.
_LR_PHRASE = -60.0
_LR_SINGLE_WORD = -40.0
_LR_LONE_WORD = -20.0

# An early trigger (decided while the segment goes on, see ``_check_partial``) must be this
# much louder than the loud part (75th percentile) of what the room sounded like 3 to 10 s
# before it: someone calling out over a television is louder than it, the television's
# own words are not. Measured on 15 min of TV-like audio (three seeds): every TV early
# trigger -10.7..+4.0 dB. A user 10 dB over babble scores about +10 dB; with 10 s of
# babble before each trigger (10 dB SNR, 16 phrases) the rule cost 1 of 7 detections.
# Comparing with the speech earlier in the same segment instead rejected users' own
# sentences ("I've got a really bad calf cramp"): 20 dB recall fell from 48 to 37 of 64.
_ROOM_CONTRAST_DB = 6.0
_ROOM_PAST_S = (3.0, 10.0)  # the stretch before a trigger that stands for the room
# The same rule for triggers found when a segment (or a piece of one) is decoded at its
# end, when the segment has gone on this long: the room never went quiet (a TV, babble).
# Without it the 8-hour soak's TV stretches started 3 routines in 111 minutes, all from
# 10-s pieces of TV speech; short segments (a user in a quiet room, maybe just after the
# skill spoke) are left alone.
_ROOM_RULE_AFTER_S = 4.0

# Any other phrase (a command, a red flag) in a segment that never ends is taken early too, by
# the same loudness rule and no phone loop, once the path has gone on this long past its last
# word: decided sooner, "stop" would be taken from "stop it" (the same intent) but also "worse"
# from "worse than" and "i fell" from "i feel".
_PHRASE_SETTLED_S = 0.3

# The live decoder (``_check_partial``) starts once a segment is this long. Alone, PocketSphinx
# decides triggers early with it, so it starts soon. Behind the trigger spotter, which decides
# the triggers itself, what the live path adds before the room rule (``_ROOM_RULE_AFTER_S``)
# is only the grammar's second chance at a trigger the spotter scored but did not fire on;
# starting it at 3 s skips the second decode of every shorter segment (most sentences) and
# still has a command seen and settled by 4 s. Its CMN starts from the piece's first
# EARLY_AFTER_S either way. Ordinary talk, whole recognizer: 0.28 -> 0.20 CPU s per audio s
# (docs/measurements.md).
EARLY_AFTER_S = 1.0
EARLY_AFTER_BEHIND_SPOTTER_S = 3.0

# Decoder settings (measured with scripts/bench_asr.py).
_DECODER_DEFAULTS: dict[str, object] = {"bestpath": False, "fwdflat": False, "cmn": "batch", "maxhmmpf": 3000}

_FRAME_S = 0.03  # Endpointer/Vad frame length at 16 kHz (480 samples)
_JSGF_WORD = re.compile(r"^[a-z0-9'._-]+$")


def _default_triggers() -> list[str]:
    """The ``start`` phrases of the packaged phrase table (what a false start would be)."""
    try:
        from voice_skill.core.intents import PhraseTable  # noqa: PLC0415 - avoid an import cycle
        table = PhraseTable.load()
    except Exception as exc:  # noqa: BLE001 - verification is an add-on; say so and go on without
        log.warning("no trigger phrases for verification: %s", exc)
        return []
    return [" ".join(p) for name, phrases in table.intents if name == "start" for p in phrases]


def _model_paths(model_dir: str | None) -> tuple[str, str]:
    try:
        import pocketsphinx  # noqa: PLC0415 - optional at import time of the package
    except ImportError as exc:  # pragma: no cover - a runtime dependency
        raise ModelError(f"pocketsphinx is not installed: {exc}") from None
    base = model_dir or os.path.join(pocketsphinx.get_model_path(), "en-us")
    hmm = os.path.join(base, "en-us")
    dic = os.path.join(base, "cmudict-en-us.dict")
    for path in (hmm, dic):
        if not os.path.exists(path):
            raise ModelError("PocketSphinx English model not found (broken pocketsphinx install?)", path=path)
    return hmm, dic


class PocketSphinxRecognizer:
    """Grammar-restricted PocketSphinx, gated by a VAD endpointer. See the module docstring."""

    name = "pocketsphinx"

    def __init__(
        self,
        phrases: Sequence[str],
        *,
        min_confidence: float = 0.3,
        endpoint_window_s: float = 0.3,
        endpoint_ratio: float = 0.9,
        vad_mode: int = 1,
        filler_weight: float = 1e-10,
        extra_fillers: Iterable[str] = (),
        use_fillers: bool = True,
        lead_ins: Iterable[str] | None = None,
        model_dir: str | None = None,
        decoder_options: Mapping[str, object] | None = None,
        trigger_phrases: Iterable[str] | None = None,
        verify: bool = True,
        lr_phrase: float = _LR_PHRASE,
        lr_lone_word: float = _LR_LONE_WORD,
        lr_single_word: float = _LR_SINGLE_WORD,
        pronunciations: Mapping[str, Sequence[str]] | None = None,
        trigger_stable_s: float = 0.15,
        check_every_s: float = 0.06,
        max_segment_s: float = 10.0,
        early_after_s: float = EARLY_AFTER_S,
        early: bool = True,
        room_contrast_db: float = _ROOM_CONTRAST_DB,
        room_rule_after_s: float = _ROOM_RULE_AFTER_S,
        early_phrases: Iterable[str] = (),
        phrase_settled_s: float = _PHRASE_SETTLED_S,
        decode_once: bool = True,
        report_unverified: bool = False,
    ) -> None:
        import pocketsphinx  # noqa: PLC0415

        self._ps = pocketsphinx
        self.min_confidence = float(min_confidence)
        self.phrases = [" ".join(p.lower().split()) for p in phrases if p.strip()]
        if not self.phrases:
            raise ModelError("the recognizer needs at least one phrase")
        hmm, dic = _model_paths(model_dir)
        try:
            options = {**_DECODER_DEFAULTS, **(decoder_options or {})}
            config = pocketsphinx.Config(hmm=hmm, dict=dic, lm=None, loglevel="FATAL", logfn=os.devnull, **options)
            self._decoder = self._new_decoder(config, options)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"cannot load the PocketSphinx model: {exc}", path=hmm) from None

        phrase_words = {w for p in self.phrases for w in p.split()}
        missing = sorted(w for w in phrase_words if self._decoder.lookup_word(w) is None)
        if missing:
            raise ModelError(f"no pronunciation for {', '.join(missing)} in the PocketSphinx dictionary", path=dic)
        bad = sorted(w for w in phrase_words if not _JSGF_WORD.match(w))
        if bad:
            raise ModelError(f"phrase words PocketSphinx cannot use in a grammar: {', '.join(bad)}")
        self.phrase_words = frozenset(phrase_words)
        prons = _VARIANTS if pronunciations is None else pronunciations
        self._added_words: list[tuple[str, str]] = []
        try:
            for w, alts in prons.items():
                if w not in phrase_words:
                    continue
                n = 2
                while self._decoder.lookup_word(f"{w}({n})") is not None:
                    n += 1
                for alt in alts:
                    self._decoder.add_word(f"{w}({n})", alt, True)
                    self._added_words.append((f"{w}({n})", alt))
                    n += 1
        except RuntimeError as exc:
            raise ModelError(f"bad extra pronunciation: {exc}") from None
        single = {p for p in self.phrases if " " not in p}
        fillers: list[str] = []
        if use_fillers:
            seen: set[str] = set()
            for w in [*_COMMON_WORDS, *_CONFUSERS, *extra_fillers]:
                w = w.lower()
                if w in seen or w in single or not _JSGF_WORD.match(w):
                    continue
                seen.add(w)
                if self._decoder.lookup_word(w) is not None:
                    fillers.append(w)
        self.filler_words = frozenset(fillers)
        # lead-in words ("i've got a") as items of their own, when fillers are on and the
        # dictionary knows every word (see data/pocketsphinx-en.toml)
        leads: list[str] = []
        for lead in (_LEAD_INS if lead_ins is None else lead_ins) if use_fillers else ():
            lead = " ".join(lead.lower().split())
            if (lead and lead not in self.phrases and lead not in leads
                    and all(_JSGF_WORD.match(w) and self._decoder.lookup_word(w) is not None for w in lead.split())):
                leads.append(lead)
        self._grammar = self._jsgf([*self.phrases, *leads], fillers, filler_weight)
        try:
            self._decoder.add_jsgf_string("phrases", self._grammar)
            self._decoder.activate_search("phrases")
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"PocketSphinx rejected the phrase grammar: {exc}") from None
        self._logmath = self._decoder.get_logmath()
        if trigger_phrases is None:
            trigger_phrases = _default_triggers()
        seqs = {tuple(p.lower().split()) for p in trigger_phrases}
        self._trigger_seqs = sorted((q for q in seqs if q and " ".join(q) in self.phrases), key=len, reverse=True)
        # Every phrase, longest first, so that "cramp is gone" (done) is not read as a trigger.
        self._phrase_seqs = sorted({tuple(p.split()) for p in self.phrases}, key=len, reverse=True)
        common = set(_COMMON_WORDS)
        # The words whose frames are verified: a trigger's content words ("my", "in" are not evidence).
        self.trigger_words = frozenset(w for q in self._trigger_seqs for w in q if w not in common)
        self.lr_phrase = float(lr_phrase)
        self.lr_lone_word = float(lr_lone_word)
        self.lr_single_word = float(lr_single_word)
        self._verifier = None
        if verify and self.trigger_words:
            try:
                phone_lm = os.path.join(os.path.dirname(dic), "en-us-phone.lm.bin")
                # Batch CMN, like the grammar decode it checks; it also gives the live
                # decoder its starting CMN (see ``_feed_live``).
                voptions = {**options, "cmn": "batch"}
                vconfig = pocketsphinx.Config(hmm=hmm, allphone=phone_lm, lm=None, loglevel="FATAL",
                                              logfn=os.devnull, **voptions)
                self._verifier = self._new_decoder(vconfig, voptions)
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"cannot load the PocketSphinx phone loop for verification: {exc}", path=hmm) from None
        # The live grammar decoder for early trigger decisions (see ``_feed_live``).
        self._live = None
        if early and self._verifier is not None and any(len(q) > 1 for q in self._trigger_seqs):
            try:
                loptions = {**options, "cmn": "live"}
                lconfig = pocketsphinx.Config(hmm=hmm, dict=dic, lm=None, loglevel="FATAL", logfn=os.devnull,
                                              **loptions)
                self._live = self._new_decoder(lconfig, loptions)
                for name, pron in self._added_words:
                    self._live.add_word(name, pron, True)
                self._live.add_jsgf_string("phrases", self._grammar)
                self._live.activate_search("phrases")
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"cannot load the PocketSphinx live decoder: {exc}", path=hmm) from None
        self._speech = bytearray()
        self._frame_rate = int(self._decoder.config["frate"])
        self._bytes_per_dframe = SAMPLE_RATE // self._frame_rate * SAMPLE_WIDTH
        self._stable_frames = max(1, round(trigger_stable_s * self._frame_rate))
        self._check_every = max(1, round(check_every_s / _FRAME_S))
        self._max_bytes = max(1, int(max_segment_s * SAMPLE_RATE)) * SAMPLE_WIDTH
        self._early_after_bytes = int(early_after_s * SAMPLE_RATE) * SAMPLE_WIDTH
        # (started later than EARLY_AFTER_S, its CMN starts from that much of the piece, as it would have)
        self._cmn_start_bytes = (None if early_after_s <= EARLY_AFTER_S
                                 else int(EARLY_AFTER_S * SAMPLE_RATE) * SAMPLE_WIDTH)
        self._ep_args = (endpoint_window_s, endpoint_ratio, vad_mode)
        self.room_contrast_db = room_contrast_db
        self._room_rule_after_bytes = int(room_rule_after_s * SAMPLE_RATE) * SAMPLE_WIDTH
        self.early_phrases = frozenset(tuple(p.lower().split()) for p in early_phrases)
        self._settled_frames = max(1, round(phrase_settled_s * self._frame_rate))
        self.decode_once = bool(decode_once)
        # An utterance that was nothing but a trigger failing its check comes out as a hypothesis
        # without words (marked ``unverified_trigger``) instead of nothing: behind the trigger
        # spotter, whose bare-word head gives it a second opinion ("cramping", said alone).
        self.report_unverified = bool(report_unverified)
        log.debug("pocketsphinx: %d phrases, %d filler words", len(self.phrases), len(fillers))
        self.reset()

    def _new_decoder(self, config, options: Mapping[str, object]):
        """A decoder with ``options`` in force: the model's feat.params overrides some of them
        (notably ``cmn``) when the decoder loads, so they are set again afterwards."""
        decoder = self._ps.Decoder(config)
        if "cmn" in options and str(decoder.config["cmn"]) != str(options["cmn"]):
            decoder.config["cmn"] = options["cmn"]
            decoder.reinit_feat()
        return decoder

    @staticmethod
    def _jsgf(phrases: Sequence[str], fillers: Sequence[str], filler_weight: float) -> str:
        cmd = " | ".join(phrases)
        lines = ["#JSGF V1.0;", "grammar skill;", f"<cmd> = {cmd};"]
        if fillers:
            lines.append(f"<fill> = {' | '.join(fillers)};")
            lines.append(f"public <utt> = ( /1.0/ <cmd> | /{filler_weight:g}/ <fill> )+;")
        else:
            lines.append("public <utt> = <cmd>+;")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------ streaming

    def reset(self) -> None:
        """Forget any utterance in progress and the audio clock's origin."""
        window, ratio, mode = self._ep_args
        try:
            self._ep = self._ps.Endpointer(window=window, ratio=ratio, vad_mode=mode, sample_rate=SAMPLE_RATE,
                                           frame_length=_FRAME_S)
        except ValueError as exc:
            raise RecognizerError(f"bad endpointer settings: {exc}") from None
        self._frame_bytes = self._ep.frame_bytes
        # Mean power of every endpointer frame, far enough back to hold the room (3 to 10 s)
        # before a trigger at the start of the longest piece decoded.
        span_s = _ROOM_PAST_S[1] + self._max_bytes / (SAMPLE_RATE * SAMPLE_WIDTH) + 1.0
        self._levels: deque[float] = deque(maxlen=int(round(span_s / _FRAME_S)))
        # The VAD misjudges digital silence (exact zeros, common in files and muted
        # inputs) and then merges utterances; a fixed +-2 LSB dither, the same for every
        # frame, keeps it honest without making results depend on chunking or chance.
        self._dither = np.random.default_rng(0).integers(-2, 3, self._frame_bytes // SAMPLE_WIDTH).astype(np.int32)
        self._framer = Framer(self._frame_bytes // SAMPLE_WIDTH)
        self._t0: float | None = None  # audio time of the first sample fed since reset
        self._fed = 0  # frames fed to the endpointer
        self._in_utt = False
        self._utt_start_s = 0.0  # start of the audio in self._speech, seconds since self._t0
        self._speech = bytearray()
        self._segment_bytes = 0  # the whole VAD segment so far, across cuts
        self._stop_live()

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        if chunk.rate != SAMPLE_RATE or chunk.width != SAMPLE_WIDTH or chunk.channels != 1:
            raise RecognizerError(f"expected {SAMPLE_RATE} Hz 16-bit mono audio, got {chunk.rate} Hz "
                                  f"{8 * chunk.width}-bit {chunk.channels} channel(s)")
        if self._t0 is None:
            self._t0 = chunk.start_s
        out: list[Hypothesis] = []
        for frame in self._framer.cut(chunk.audio):
            out.extend(self._frame(frame))
        return out

    def flush(self) -> list[Hypothesis]:
        out: list[Hypothesis] = []
        if self._in_utt:
            try:
                tail = self._ep.end_stream(self._framer.take_rest() or bytes(SAMPLE_WIDTH))
            except (ValueError, IndexError) as exc:
                raise RecognizerError(f"endpointer failed at end of stream: {exc}") from None
            if tail:
                self._speech += tail
            out.extend(self._finish())
        t0 = self._t0
        fed = self._fed
        self.reset()
        # A later stream continues the same audio clock unless reset() is called.
        self._t0 = None if t0 is None else t0 + fed * _FRAME_S
        return out

    def _frame(self, raw: bytes) -> list[Hypothesis]:
        x = np.frombuffer(raw, dtype="<i2").astype(np.int32) + self._dither
        frame = np.clip(x, -32768, 32767).astype("<i2").tobytes()
        try:
            speech = self._ep.process(frame)
        except (ValueError, IndexError) as exc:
            raise RecognizerError(f"endpointer failed: {exc}") from None
        self._fed += 1
        xf = x.astype(np.float64)
        self._levels.append(float(np.dot(xf, xf)) / len(xf))
        out: list[Hypothesis] = []
        if speech is not None:
            if not self._in_utt:
                self._in_utt = True
                self._utt_start_s = self._ep.speech_start
                self._speech = bytearray()
                self._segment_bytes = 0
            self._speech += speech
            self._segment_bytes += len(speech)
            if self._live is not None:
                out.extend(self._feed_live(speech))
            if len(self._speech) >= self._max_bytes:
                out.extend(self._finish())
                self._in_utt = True  # the VAD segment goes on; decode it in pieces
        if self._in_utt and not self._ep.in_speech:
            out.extend(self._finish())
        return out

    # Early decisions. The segment is decoded in one batch when it ends (batch CMN: each
    # segment is normalised on its own, which measured best). In babble or under a TV the
    # VAD may never see silence, so a second grammar decoder with live CMN runs while a
    # segment goes on (only once it is longer than ``early_after_s``: short commands in a
    # quiet room cost nothing extra) and its partial best path is checked for triggers.

    def _feed_live(self, speech: bytes) -> list[Hypothesis]:
        live = self._live
        try:
            if not self._live_busy:
                if len(self._speech) < self._early_after_bytes:
                    return []
                # Start the live CMN from the batch mean of what has been heard, up to the
                # piece's first EARLY_AFTER_S (from the model's default it misdecodes the first
                # seconds; the same start however late the live decoder starts, so starting
                # later changes only the cost), then catch up.
                buffered = bytes(self._speech)
                self._decode_whole(self._verifier, buffered[:self._cmn_start_bytes],
                                   "PocketSphinx failed while decoding", no_search=True)
                live.set_cmn(self._verifier.get_cmn(False))
                live.start_utt()
                self._live_busy = True
                self._seen = {}
                self._rejected = set()
                live.process_raw(buffered, no_search=False, full_utt=False)
                self._live_bytes = len(buffered)
            else:
                live.process_raw(speech, no_search=False, full_utt=False)
                self._live_bytes += len(speech)
        except RuntimeError as exc:
            raise RecognizerError(f"PocketSphinx failed while decoding: {exc}") from None
        self._since_check += 1
        if self._since_check < self._check_every:
            return []
        self._since_check = 0
        return self._check_partial()

    def _stop_live(self) -> None:
        if getattr(self, "_live_busy", False):
            try:
                self._live.end_utt()
            except RuntimeError:
                pass
        self._live_busy = False
        self._live_bytes = 0  # of the piece in self._speech, fed to the live decoder
        self._since_check = 0
        self._seen: dict[tuple, int] = {}  # candidate phrase (words, start frames) -> frame first seen
        self._rejected: set[tuple] = set()

    def _check_partial(self) -> list[Hypothesis]:
        """Decide a phrase before the segment ends (the VAD may never see silence under a TV).

        A phrase in the live decoder's partial best path is a candidate once the same phrase
        (same words, same start frames) has stayed there for ``trigger_stable_s`` of audio
        (its last word's end keeps moving in babble, so that is not required to settle).

        - A trigger phrase of two or more words must be louder than the room before it and
          pass the phone-loop verification. A lone trigger word waits for the segment's end:
          decided early, "cramp" was taken from "cramp is gone".
        - A phrase of ``early_phrases`` (the skill passes its commands, never the safety
          phrases: see ``_without_quiet_phrases``) is taken early, marked ``routine_only``
          (a TV's loud "done" must not make an idle skill answer), only in a segment that has gone
          on for ``room_rule_after_s`` (the room never went quiet; in a quiet room the segment
          soon ends): it must be louder than the room before it, with that past heard, the
          path must have gone on ``phrase_settled_s`` past its end, and the words after it
          must not be the start of a longer phrase that begins with it.

        The first candidate that passes is emitted as the live path has it, and the segment
        is cut after it: what followed is decoded afresh, what came before is dropped.
        (Decoding the piece up to the phrase in one batch instead, as at a segment's end,
        took fewer commands right on the dev voices: 18 of 48 against 21.)
        """
        n = self._live.n_frames()
        words = self._words(self._live)
        seen: dict[tuple, int] = {}
        for first, last, trigger in self._phrase_spans(words):
            if trigger and last == first:
                continue
            if not trigger and tuple(w[0] for w in words[first:last + 1]) not in self.early_phrases:
                continue
            key = tuple((w[0], w[1]) for w in words[first:last + 1])
            seen[key] = self._seen.get(key, n)
            if key in self._rejected or n - seen[key] < self._stable_frames:
                continue
            if not trigger and (self._segment_bytes < self._room_rule_after_bytes
                                or n - 1 - words[last][2] < self._settled_frames
                                or self._may_grow(words, first, last)):
                continue
            # The cheap loudness check first: under a TV most candidates fail it, and then the
            # phone-loop decode over the whole segment is not needed.
            contrast = self._room_contrast(words, first, last, self._utt_start_s)
            if (contrast is None and not trigger) or (contrast is not None and contrast < self.room_contrast_db):
                log.debug("early %r rejected: %s dB over the room before it", " ".join(k[0] for k in key),
                          "-" if contrast is None else f"{contrast:.1f}")
                self._rejected.add(key)
                continue
            if trigger:
                speech = bytes(self._speech[: n * self._bytes_per_dframe])
                ok, ratio = self._verify(words, (first, last), speech)
                log.debug("early trigger verification %s: ratio %.1f, %s dB over the room before it",
                          "passed" if ok else "failed", ratio, "-" if contrast is None else f"{contrast:.1f}")
                if not ok:
                    self._rejected.add(key)
                    continue
            out = self._hypothesis(words[first:last + 1], self._utt_start_s)
            if not trigger:  # a command: outside a routine the session lets it pass without a word
                out = [replace(h, routine_only=True) for h in out]
            self._stop_live()
            cut = (words[last][2] + 1) * self._bytes_per_dframe
            self._utt_start_s += cut / (SAMPLE_RATE * SAMPLE_WIDTH)
            self._speech = self._speech[cut:]
            return out
        self._seen = seen
        return []

    def _may_grow(self, words: list[tuple], first: int, last: int) -> bool:
        """Whether the words after ``words[first..last]`` could still become a longer phrase
        that begins with it ("help", then "me": "help me please" may be on its way)."""
        phrase = tuple(w[0] for w in words[first:last + 1])
        after = tuple(w[0] for w in words[last + 1:])
        for q in self._phrase_seqs:
            if len(q) > len(phrase) and q[:len(phrase)] == phrase:
                rest = q[len(phrase):]
                if after[:len(rest)] == rest[:len(after)]:
                    return True
        return False

    def _room_contrast(self, words: list[tuple], first: int, last: int, start_s: float) -> float | None:
        """``_level_contrast`` over ``words[first..last]`` of audio that began at ``start_s``."""
        return self._level_contrast(start_s + words[first][1] / self._frame_rate,
                                    start_s + (words[last][2] + 1) / self._frame_rate)

    def _level_contrast(self, start_s: float, end_s: float) -> float | None:
        """How much louder (dB) the audio from ``start_s`` to ``end_s`` (seconds since
        ``self._t0``) is than the loud part of what the room sounded like 3 to 10 s before
        it; None when under 2 s of that past has been heard. The last 3 s are left out so
        that the user's own words leading up to the trigger ("I've got a really bad ...")
        do not count as the background."""
        fed_s = self._fed * _FRAME_S
        levels = list(self._levels)
        first_s = fed_s - len(levels) * _FRAME_S  # the time of levels[0]

        def index(t: float) -> int:
            return int(round((t - first_s) / _FRAME_S))

        past = levels[max(0, index(start_s - _ROOM_PAST_S[1])):max(0, index(start_s - _ROOM_PAST_S[0]))]
        trigger = levels[max(0, index(start_s)):max(0, index(end_s))]
        if len(past) * _FRAME_S < 2.0 or not trigger:
            return None
        return float(10 * np.log10((np.mean(trigger) + 1.0) / (np.percentile(past, 75) + 1.0)))

    def _finish(self) -> list[Hypothesis]:
        """Decode the segment (or the piece of it since the last cut) in one batch, or, in a
        room that never goes quiet, take the live decoder's path over the same piece."""
        self._in_utt = False
        speech = bytes(self._speech)
        words = self._live_words(len(speech))
        self._stop_live()
        self._speech = bytearray()
        start_s = self._utt_start_s
        self._utt_start_s = start_s + len(speech) / (SAMPLE_RATE * SAMPLE_WIDTH)
        if not speech:
            return []
        if words is None:
            self._decode_whole(self._decoder, speech, "PocketSphinx failed while decoding")
            words = self._words()
        return self._result(speech, start_s, words)

    @staticmethod
    def _decode_whole(decoder, speech: bytes, failure: str, no_search: bool = False) -> None:
        """``speech`` through ``decoder`` as one utterance in one batch (batch CMN)."""
        try:
            decoder.start_utt()
            decoder.process_raw(speech, no_search=no_search, full_utt=True)
            decoder.end_utt()
        except RuntimeError as exc:
            raise RecognizerError(f"{failure}: {exc}") from None

    def _live_words(self, piece_bytes: int) -> list[tuple] | None:
        """The live decoder's final path over the piece, when it has heard all of it in a
        segment that has gone on past the room rule; None otherwise (decode in one batch).

        Under a TV or babble the live decoder runs through every 10-s piece, which was then
        decoded a second time in one batch; its own path costs nothing more. A short segment
        (a user in a quiet room) keeps the batch decode, whose CMN measured best."""
        if not (self.decode_once and self._live_busy and self._live_bytes == piece_bytes
                and self._segment_bytes >= self._room_rule_after_bytes):
            return None
        try:
            self._live.end_utt()
        except RuntimeError as exc:
            raise RecognizerError(f"PocketSphinx failed while decoding: {exc}") from None
        self._live_busy = False
        return self._words(self._live)

    def _log_score(self, prob: float) -> float:
        """Segment scores come back as probabilities; back to logmath units (never -inf)."""
        return math.log(max(float(prob), 1e-300)) / math.log(1.0001)

    def _phone_loop_score(self, speech: bytes, first: int, last: int) -> float:
        """Acoustic score of the free phone loop over frames ``first..last`` (prorated)."""
        if self._verifier is None:
            raise RecognizerError("verification is switched off")
        self._decode_whole(self._verifier, speech, "PocketSphinx phone loop failed")
        total = 0.0
        for s in self._verifier.seg() or ():
            overlap = min(s.end_frame, last) - max(s.start_frame, first) + 1
            if overlap > 0:
                total += self._log_score(s.ascore) * overlap / (s.end_frame - s.start_frame + 1)
        return total

    def _phrase_spans(self, words: list[tuple]) -> list[tuple[int, int, bool]]:
        """Each phrase in the path as (first, last word index, is a trigger), in order.

        Phrases are matched longest first without overlap, so "cramp" inside "calf cramp"
        is one phrase, and two separate "cramp"s are two one-word phrases, not a phrase.
        """
        bases = [w[0] for w in words]
        taken: set[int] = set()
        spans: list[tuple[int, int, bool]] = []
        triggers = set(self._trigger_seqs)
        for q in self._phrase_seqs:
            n = len(q)
            for i in range(len(bases) - n + 1):
                if tuple(bases[i:i + n]) == q and not taken.intersection(range(i, i + n)):
                    taken.update(range(i, i + n))
                    spans.append((i, i + n - 1, q in triggers))
        return sorted(spans)

    def _trigger_spans(self, words: list[tuple]) -> list[tuple[int, int]]:
        return [(i, j) for i, j, trigger in self._phrase_spans(words) if trigger]

    def _verify(self, words: list[tuple], span: tuple[int, int], speech: bytes) -> tuple[bool, float]:
        """Likelihood-ratio test of one trigger phrase ``words[first..last]``; (accepted, ratio per frame)."""
        phrase = words[span[0]:span[1] + 1]
        trig = [w for w in phrase if w[0] in self.trigger_words] or phrase
        first = min(w[1] for w in trig)
        last = max(w[2] for w in trig)
        grammar = sum(w[4] for w in trig)
        ratio = (grammar - self._phone_loop_score(speech, first, last)) / max(1, last - first + 1)
        if len(phrase) > 1:
            threshold = self.lr_phrase
        elif len(words) > 1:
            threshold = self.lr_lone_word  # one trigger word amid other speech
        else:
            threshold = self.lr_single_word
        return ratio >= threshold, ratio

    def _words(self, decoder=None) -> list[tuple]:
        """The decoder's best path: (word, first frame, last frame, posterior, acoustic score)."""
        words = []
        for s in (decoder or self._decoder).seg() or ():
            w = s.word
            if w.startswith("<") or w.startswith("[") or w.startswith("+"):
                continue
            base = w.split("(", 1)[0]
            if not base:
                continue
            post = min(1.0, max(0.0, float(s.prob)))
            words.append((base, s.start_frame, s.end_frame, post, self._log_score(s.ascore)))
        return words

    def _result(self, speech: bytes, start_s: float, words: list[tuple]) -> list[Hypothesis]:
        """The segment's hypothesis from its decoded ``words``; ``start_s`` is where ``speech``
        began, since ``self._t0``."""
        seg_start = (self._t0 or 0.0) + start_s
        if not words:
            log.debug("segment %.2f s: nothing decoded", seg_start)
            return []
        if self._segment_bytes >= self._room_rule_after_bytes:
            # The room never went quiet (a TV, babble): only phrases that stood out of it count.
            words = self._without_quiet_phrases(words, start_s)
            if not words:
                return []
        drop: set[int] = set()
        for span in self._trigger_spans(words) if self._verifier is not None else ():
            ok, ratio = self._verify(words, span, speech)
            log.debug("trigger verification %s: ratio %.1f", "passed" if ok else "failed", ratio)
            if not ok:
                drop.update(range(span[0], span[1] + 1))
        if drop:
            dropped = [w for i, w in enumerate(words) if i in drop]
            words = [w for i, w in enumerate(words) if i not in drop]
            if not words:
                return self._unverified_only(dropped, start_s) if self.report_unverified else []
        return self._hypothesis(words, start_s, unverified_trigger=bool(drop))

    def _unverified_only(self, dropped: list[tuple], start_s: float) -> list[Hypothesis]:
        """An utterance that was nothing but a trigger that failed its check: no words, its times,
        marked ``unverified_trigger`` (for a second opinion by sound; see ``report_unverified``)."""
        first_s, end_s = self._span(dropped, start_s)
        log.debug("nothing but an unverified trigger [%.2f-%.2f]", first_s, end_s)
        return [Hypothesis("", 0.0, round(first_s, 3), round(end_s, 3), unverified_trigger=True)]

    def _span(self, words: list[tuple], start_s: float) -> tuple[float, float]:
        """Where ``words`` (decoded in the segment that began at ``start_s``) begin and end, in
        seconds of the stream."""
        seg_start = (self._t0 or 0.0) + start_s
        return (seg_start + words[0][1] / self._frame_rate,
                seg_start + (words[-1][2] + 1) / self._frame_rate)

    def _without_quiet_phrases(self, words: list[tuple], start_s: float) -> list[tuple]:
        """``words`` of a long segment without the phrases that are not ``room_contrast_db``
        louder than the room was before them (none are dropped while under 2 s of that past
        has been heard). Under a TV or babble the grammar places phrases in the background's
        words too ("i hurt it" from a newsreader); the user calling over it is louder. The
        other words stay: they are what tells a safety phrase amid a TV's talk (which the
        session ignores when no routine runs) from one called out on its own."""
        drop: set[int] = set()
        for i, j, _ in self._phrase_spans(words):
            contrast = self._room_contrast(words, i, j, start_s)
            if contrast is not None and contrast < self.room_contrast_db:
                drop.update(range(i, j + 1))
                log.debug("%r in a %.1f s segment dropped: only %.1f dB over the room before it",
                          " ".join(w[0] for w in words[i:j + 1]),
                          self._segment_bytes / (SAMPLE_RATE * SAMPLE_WIDTH), contrast)
        return [w for k, w in enumerate(words) if k not in drop]

    def _hypothesis(self, words: list[tuple], start_s: float, unverified_trigger: bool = False) -> list[Hypothesis]:
        seg_start = (self._t0 or 0.0) + start_s
        kept = []
        confs = []
        times = []
        for base, sf, ef, post, _ in words:
            if base in self.phrase_words and base not in self.filler_words:
                confs.append(post)
            kept.append(base)
            times.append((base, round(seg_start + sf / self._frame_rate, 3),
                          round(seg_start + (ef + 1) / self._frame_rate, 3)))
        text = " ".join(kept)
        confidence = min(confs) if confs else 0.0
        first_s, end_s = self._span(words, start_s)
        log.debug("heard %r conf=%.2f [%.2f-%.2f]", text, confidence, first_s, end_s)
        return [Hypothesis(text, round(confidence, 4), round(first_s, 3), round(end_s, 3), words=tuple(times),
                           unverified_trigger=unverified_trigger)]
