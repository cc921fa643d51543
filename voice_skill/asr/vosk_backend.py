"""Vosk (Kaldi) recognizer restricted to the skill's phrases with a runtime grammar.

How it keeps to the phrases:

- The phrases go to Vosk as a JSON list (``KaldiRecognizer(model, 16000, grammar)``),
  plus ``"[unk]"`` when the model has it, so speech outside the list has somewhere to go.
- Vosk turns that list into a word *bigram*, so it can output word sequences that are no
  phrase at all ("my leg is red" from "my leg is weak" + "it is red"). Each final result is
  therefore checked again here: only words that form whole phrases from the list are kept;
  an utterance with none is reported as rejected speech (empty text, confidence 0).
- Words the model does not know are named at start-up (``missing_words``, and a logger
  warning); phrases that contain one are left out of the grammar instead of being
  silently cut down to their known words.

Segmentation: Vosk does not decide where utterances end. PocketSphinx's endpointer
(WebRTC VAD, the same one the built-in recognizer uses) cuts the audio into fixed 30 ms
frames and finds speech; only speech frames reach Vosk, and the end of each speech
segment asks Vosk for its final result. Vosk's own endpointing waits about a second of
trailing silence and, measured here, fired at different times for identical audio once
other recognizers had used the same model; this way finals come 0.3 s after speech ends,
at the same frame every time, whatever the caller's chunk size, and silence costs only
the VAD. Times are seconds of audio, anchored on the chunks' ``start_s``.

Partial results: while an utterance is still in progress, a ``final=False`` hypothesis
is returned only for the safe early actions (``early_phrases``: the skill passes the stop
and pause phrases of its phrase table) once the partial result has shown the phrase for ``partial_stable_frames``
frames in a row. The final hypothesis for the same utterance still follows.

One module on purpose: the grammar, partial results and end-pointing are one decoder's
state.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from voice_skill.asr.base import Hypothesis
from voice_skill.audio.framing import Framer
from voice_skill.audio.pcm import SAMPLE_RATE, SAMPLE_WIDTH, AudioChunk
from voice_skill.errors import ModelError, RecognizerError
from voice_skill.models.check import ModelLayout, check_model_dir

log = logging.getLogger(__name__)

UNK = "[unk]"
# Early actions that are safe to take before the utterance is over: stopping or pausing
# the coach can always be undone by the next command.
# A partial result has no confidence from Vosk; this is what partial hypotheses carry.
PARTIAL_CONFIDENCE = 0.5

_stderr_lock = threading.Lock()


def _import_vosk():
    try:
        import vosk  # noqa: PLC0415  (optional heavy dependency, imported when used)
    except ImportError as exc:  # pragma: no cover - vosk is a declared dependency
        raise ModelError(f"the vosk package is not installed ({exc}); pip install vosk") from None
    vosk.SetLogLevel(-1)
    return vosk


class _CapturedStderr:
    """Capture what C code writes to file descriptor 2 (Kaldi/OpenFst log lines).

    Used only around model loading and recognizer creation, so the user's terminal
    stays clean and the last error line can be put into a one-line ModelError.
    """

    def __init__(self) -> None:
        self.text = ""

    def __enter__(self) -> "_CapturedStderr":
        _stderr_lock.acquire()
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        self._tmp = tempfile.TemporaryFile()
        try:
            self._saved = os.dup(2)
        except OSError:
            self._saved = None
        else:
            os.dup2(self._tmp.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._saved is not None:
                os.dup2(self._saved, 2)
                os.close(self._saved)
            self._tmp.seek(0)
            self.text = self._tmp.read().decode("utf-8", errors="replace")
            self._tmp.close()
        finally:
            _stderr_lock.release()
        for line in self.text.splitlines():
            if line.strip():
                log.debug("vosk: %s", line.strip())

    def errors(self) -> list[str]:
        return [ln.strip() for ln in self.text.splitlines() if ln.lstrip().startswith(("ERROR", "FATAL"))]


def _clean_kaldi_line(line: str) -> str:
    # "ERROR (VoskAPI:Read():kaldi-matrix.cc:1620) Failed to read ..." -> "Failed to read ..."
    if line.startswith("ERROR (") and ") " in line:
        line = line.split(") ", 1)[1]
    elif line.startswith("ERROR: "):
        line = line[len("ERROR: "):]
    return " ".join(line.split())


@dataclass
class VoskModel:
    """A loaded Vosk model and what the skill knows about it. Load once, share freely."""

    path: Path
    layout: ModelLayout
    model: object = field(repr=False)
    load_s: float = 0.0

    def has_word(self, word: str) -> bool:
        return self.model.vosk_model_find_word(word) >= 0  # type: ignore[attr-defined]

    @property
    def runtime_grammar(self) -> bool:
        return self.layout.runtime_grammar


_cache: dict[str, VoskModel] = {}
_cache_lock = threading.Lock()


def load_model(path: str | os.PathLike[str], *, use_cache: bool = True) -> VoskModel:
    """Check and load a Vosk model folder; ModelError (one line, naming the path) if unusable."""
    layout = check_model_dir(path)
    key = str(layout.path.resolve())
    with _cache_lock:
        if use_cache and key in _cache:
            return _cache[key]
        vosk = _import_vosk()
        t0 = time.perf_counter()
        model = None
        failure = ""
        with _CapturedStderr() as captured:
            try:
                model = vosk.Model(model_path=str(layout.path))  # a path only: never a name or a language
            except Exception as exc:  # the wrapper raises a plain Exception when the C side returns NULL
                failure = str(exc)
        errors = captured.errors()
        if model is None or errors:
            model = None
            detail = _clean_kaldi_line(errors[-1]) if errors else (failure or "unknown error")
            raise ModelError(f"Vosk could not load the model (corrupt or truncated file?): {detail}",
                             path=str(layout.path))
        loaded = VoskModel(layout.path, layout, model, time.perf_counter() - t0)
        log.info("loaded Vosk model %s in %.2f s", layout.path, loaded.load_s)
        if use_cache:
            _cache[key] = loaded
        return loaded


def _phrase_tokens(phrase: str) -> tuple[str, ...]:
    return tuple(phrase.lower().split())


def segment_phrases(words: Sequence[str], phrases: set[tuple[str, ...]],
                    max_len: int) -> list[tuple[int, int]]:
    """Cover as many of ``words`` as possible with whole phrases; returns [start, end) spans.

    Dynamic programming over positions; ties prefer fewer, longer phrases. ``[unk]`` is
    never part of a phrase, so a phrase cannot span out-of-vocabulary speech.
    """
    n = len(words)
    # best[i] = (covered words, -phrases used, spans) for words[i:]
    best: list[tuple[int, int, tuple[tuple[int, int], ...]]] = [(0, 0, ())] * (n + 1)
    for i in range(n - 1, -1, -1):
        cand = (best[i + 1][0], best[i + 1][1], best[i + 1][2])
        for length in range(1, min(max_len, n - i) + 1):
            if tuple(words[i:i + length]) in phrases:
                rest = best[i + length]
                option = (rest[0] + length, rest[1] - 1, ((i, i + length),) + rest[2])
                if option[:2] > cand[:2]:
                    cand = option
        best[i] = cand
    return list(best[0][2])


@dataclass(frozen=True)
class GrammarPlan:
    usable: tuple[tuple[str, ...], ...]  # phrases (as words) the model can hear
    missing_words: tuple[str, ...]  # words of the phrases that the model lacks, in phrase order
    dropped_phrases: tuple[str, ...]  # phrases left out because of a missing word
    grammar_json: str  # what Vosk gets: the usable phrases, plus "[unk]" when the model has it


def plan_grammar(phrases: Sequence[str], has_word) -> GrammarPlan:
    """Work out the runtime grammar for ``phrases`` given the model's ``has_word``."""
    token_phrases: dict[tuple[str, ...], None] = {}
    for p in phrases:
        t = _phrase_tokens(p)
        if t:
            token_phrases.setdefault(t)
    if not token_phrases:
        raise ModelError("the recognizer needs at least one phrase")
    known: dict[str, bool] = {}
    missing: dict[str, None] = {}
    usable: list[tuple[str, ...]] = []
    dropped: list[str] = []
    for t in token_phrases:
        lacking = [w for w in t if not known.setdefault(w, bool(has_word(w)))]
        for w in lacking:
            missing.setdefault(w)
        if lacking:
            dropped.append(" ".join(t))
        else:
            usable.append(t)
    grammar = [" ".join(t) for t in usable] + ([UNK] if has_word(UNK) else [])
    return GrammarPlan(tuple(usable), tuple(missing), tuple(dropped), json.dumps(grammar, ensure_ascii=False))


class VoskRecognizer:
    """Streaming Vosk recognizer for a fixed phrase list (see the module docstring)."""

    name = "vosk"

    def __init__(self, phrases: Sequence[str], model_path: str | os.PathLike[str] | VoskModel, *,
                 early_phrases: Sequence[str] = (),
                 partial_stable_frames: int = 2, use_cache: bool = True,
                 endpoint_window_s: float = 0.3, endpoint_ratio: float = 0.9) -> None:
        if partial_stable_frames < 1:
            raise ValueError("partial_stable_frames must be at least 1")
        self._vosk = _import_vosk()
        self.model = model_path if isinstance(model_path, VoskModel) else load_model(model_path, use_cache=use_cache)
        self._endpoint = (endpoint_window_s, endpoint_ratio)
        self._stable_needed = partial_stable_frames
        self._early_wanted = tuple(_phrase_tokens(p) for p in (early_phrases or ()))
        self.missing_words: list[str] = []
        self.dropped_phrases: list[str] = []
        self.unk_supported = self.model.has_word(UNK)
        self._pending_phrases: list[str] | None = None
        self._configure_phrases(list(phrases))
        self._rec = self._new_recognizer()
        self._reset_stream()
        self._fed_samples = 0  # samples given to this Vosk recognizer since it was created

    # ------------------------------------------------------------------ phrase set

    def _configure_phrases(self, phrases: list[str]) -> None:
        plan = plan_grammar(phrases, self.model.has_word)
        usable = plan.usable
        self.missing_words = list(plan.missing_words)
        self.dropped_phrases = list(plan.dropped_phrases)
        if not usable:  # the error alone: a warning listing every missing word first would bury it
            raise ModelError(f"the model knows none of the skill's phrases (is it for another language?); "
                             f"missing words include: {', '.join(self.missing_words[:8])}",
                             path=str(self.model.path))
        if self.missing_words:
            shown = ", ".join(self.missing_words[:8])
            more = len(self.missing_words) - 8
            log.warning("the Vosk model at %s lacks %d of the skill's words, so %d phrases cannot be heard; "
                        "missing words: %s%s", self.model.path, len(self.missing_words), len(self.dropped_phrases),
                        shown, f" and {more} more" if more > 0 else "")
            log.debug("every missing word: %s", ", ".join(self.missing_words))
        if not self.unk_supported:
            log.warning("the Vosk model at %s has no %s word: speech outside the phrases will be forced onto "
                        "phrase words and only the whole-phrase check rejects it", self.model.path, UNK)
        if not self.model.runtime_grammar:
            log.warning("the Vosk model at %s has a fixed graph (HCLG.fst) and cannot take a grammar: "
                        "it hears its whole vocabulary and only the whole-phrase check keeps to the phrases",
                        self.model.path)
        self.phrases = [" ".join(t) for t in usable]
        self._phrase_set = set(usable)
        self._max_len = max(len(t) for t in usable)
        self._early = {t for t in self._early_wanted if t in self._phrase_set}
        self.grammar_json = plan.grammar_json

    def _new_recognizer(self):
        with _CapturedStderr() as captured:
            if self.model.runtime_grammar:
                rec = self._vosk.KaldiRecognizer(self.model.model, SAMPLE_RATE, self.grammar_json)
            else:
                rec = self._vosk.KaldiRecognizer(self.model.model, SAMPLE_RATE)
        if captured.errors():
            raise ModelError(f"Vosk could not start a recognizer: {_clean_kaldi_line(captured.errors()[-1])}",
                             path=str(self.model.path))
        rec.SetWords(True)
        return rec

    def set_phrases(self, phrases: Sequence[str]) -> None:
        """Change the phrase list. Applied at the next utterance boundary (a final result or
        ``reset()``): changing a Vosk grammar in mid-utterance aborts the process."""
        self._pending_phrases = list(phrases)
        if not self._in_utterance():
            self._apply_pending_phrases()

    def _apply_pending_phrases(self) -> None:
        if self._pending_phrases is None:
            return
        phrases, self._pending_phrases = self._pending_phrases, None
        self._configure_phrases(phrases)
        if self.model.runtime_grammar:
            self._rec.SetGrammar(self.grammar_json)

    def _in_utterance(self) -> bool:
        return self._in_segment or self._samples_since_final > 0

    # ------------------------------------------------------------------ stream state

    def _reset_stream(self) -> None:
        from pocketsphinx import Endpointer

        self._ep = Endpointer(window=self._endpoint[0], ratio=self._endpoint[1])
        self._framer = Framer(self._ep.frame_bytes // SAMPLE_WIDTH)
        self._origin_s: float | None = None  # audio time of the first sample given to the endpointer
        self._in_segment = False
        self._anchor_s: float | None = None  # audio time of the first sample of this speech segment
        self._anchor_fed = 0  # _fed_samples at that point
        self._samples_since_final = 0
        self._partial_key: tuple[str, ...] | None = None
        self._partial_count = 0
        self._early_sent = False

    def _vosk_to_audio_s(self, t: float) -> float:
        return round((self._anchor_s or 0.0) + t - self._anchor_fed / SAMPLE_RATE, 3)

    def _now_s(self) -> float:
        # Samples fed to Vosk, not merely received: keeps partial times chunk-size invariant.
        return round((self._anchor_s or 0.0) + (self._fed_samples - self._anchor_fed) / SAMPLE_RATE, 3)

    # ------------------------------------------------------------------ protocol

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        if chunk.rate != SAMPLE_RATE or chunk.width != SAMPLE_WIDTH or chunk.channels != 1:
            raise RecognizerError(f"Vosk needs {SAMPLE_RATE} Hz mono 16-bit chunks, got {chunk.rate} Hz, "
                                  f"{chunk.channels} channel(s), {chunk.width * 8}-bit")
        if self._origin_s is None:
            self._origin_s = chunk.start_s
        out: list[Hypothesis] = []
        for frame in self._framer.cut(chunk.audio):
            out.extend(self._segment(self._ep.process(frame)))
        return out

    def _segment(self, speech: bytes | None) -> list[Hypothesis]:
        """Feed what the endpointer let through; finish the utterance when speech ends."""
        out: list[Hypothesis] = []
        if speech is not None:
            if not self._in_segment:
                self._in_segment = True
                self._anchor_s = round(self._origin_s + self._ep.speech_start, 3)
                self._anchor_fed = self._fed_samples
            out.extend(self._feed(speech))
        if self._in_segment and not self._ep.in_speech:
            self._in_segment = False
            out.extend(self._segment_final(round(self._origin_s + self._ep.speech_end, 3)))
        return out

    def _segment_final(self, end_s: float) -> list[Hypothesis]:
        """The final result of a speech segment, timed by the segment itself: Vosk's word
        times differ by up to 0.15 s between runs on identical audio, the endpointer's
        bounds do not."""
        start_s = self._anchor_s
        return [replace(h, start_s=start_s, end_s=max(start_s, end_s))
                for h in self._final(self._rec.FinalResult())]

    def flush(self) -> list[Hypothesis]:
        out: list[Hypothesis] = []
        if self._origin_s is not None:
            tail = self._framer.take_rest(pad=True) or bytes(self._framer.frame_bytes)
            out.extend(self._segment(self._ep.end_stream(tail)))
            if self._in_segment:
                self._in_segment = False
                out.extend(self._segment_final(round(self._origin_s + self._ep.speech_end, 3)))
        self._reset_stream()
        self._apply_pending_phrases()
        return out

    def reset(self) -> None:
        # Vosk's Reset() keeps the feature pipeline, whose look-ahead still holds the last
        # few hundred ms of audio: they would be decoded into the next utterance. A final
        # result (discarded) makes Vosk start a fresh pipeline on the next audio instead.
        # Never call Reset() after FinalResult(): it would reuse the finished pipeline.
        if self._in_segment:
            self._rec.FinalResult()
        self._reset_stream()
        self._apply_pending_phrases()

    # ------------------------------------------------------------------ internals

    def _feed(self, frame: bytes, allow_partial: bool = True) -> list[Hypothesis]:
        n = len(frame) // SAMPLE_WIDTH
        try:
            ended = self._rec.AcceptWaveform(frame)
        except Exception as exc:  # the wrapper raises a plain Exception on failure
            raise RecognizerError(f"Vosk failed while decoding: {exc}") from None
        self._fed_samples += n
        self._samples_since_final += n
        if ended:
            return self._final(self._rec.Result())
        if allow_partial and self._early and not self._early_sent:
            return self._partial(self._rec.PartialResult())
        return []

    def _final(self, raw: str) -> list[Hypothesis]:
        self._samples_since_final = 0
        self._partial_key, self._partial_count, self._early_sent = None, 0, False
        self._apply_pending_phrases()
        try:
            result = json.loads(raw)
        except ValueError:
            raise RecognizerError(f"Vosk returned unreadable JSON: {raw[:80]!r}") from None
        words = result.get("result") or []
        if not words:
            return []
        tokens = [str(w.get("word", "")).lower() for w in words]
        spans = segment_phrases(tokens, self._phrase_set, self._max_len)
        start_s = self._vosk_to_audio_s(float(words[0].get("start", 0.0)))
        end_s = self._vosk_to_audio_s(float(words[-1].get("end", 0.0)))
        if not spans:
            log.debug("rejected speech %.2f-%.2f s: %r", start_s, end_s, " ".join(tokens))
            return [Hypothesis("", 0.0, start_s, end_s)]
        kept = [i for a, b in spans for i in range(a, b)]
        if len(kept) < len(tokens):
            log.debug("kept %r of %r", " ".join(tokens[i] for i in kept), " ".join(tokens))
        text = " ".join(" ".join(tokens[a:b]) for a, b in spans)
        conf = sum(float(words[i].get("conf", 0.0)) for i in kept) / len(kept)
        return [Hypothesis(
            text=text,
            confidence=round(min(1.0, max(0.0, conf)), 3),
            start_s=self._vosk_to_audio_s(float(words[kept[0]].get("start", 0.0))),
            end_s=self._vosk_to_audio_s(float(words[kept[-1]].get("end", 0.0))),
        )]

    def _partial(self, raw: str) -> list[Hypothesis]:
        try:
            text = json.loads(raw).get("partial", "")
        except ValueError:
            return []
        tokens = [t for t in text.lower().split()]
        spans = segment_phrases(tokens, self._phrase_set, self._max_len)
        early = [tuple(tokens[a:b]) for a, b in spans if tuple(tokens[a:b]) in self._early]
        key = early[-1] if early else None
        if key is None or key != self._partial_key:
            self._partial_key, self._partial_count = key, (1 if key else 0)
        else:
            self._partial_count += 1
        if key is not None and self._partial_count >= self._stable_needed:
            self._early_sent = True
            now = self._now_s()
            return [Hypothesis(" ".join(key), PARTIAL_CONFIDENCE, now, now, final=False)]
        return []
