"""A trained phrase spotter for the cramp triggers.

Audio becomes one 96-number speech embedding every 80 ms through two frozen feature models
that ship in ``data/spotter/`` (a log-mel front end and Google's speech-embedding network,
as packaged by openWakeWord 0.5.1; both Apache-2.0, see ``data/spotter/MODEL_CARD.md``). A
small head of this project's own, trained from synthetic speech by
``scripts/train_spotter.py``, reads the last 16 embeddings (about 2 s of audio) and scores
whether a trigger phrase ("calf cramp", "charley horse", "my leg is cramping", ...) has just
ended. The spotter decides at the frame the phrase ends instead of waiting for silence.

The arithmetic is fixed to the sample grid: the mel front end always runs on the same
992-sample blocks at multiples of 640 samples from the start of the stream, so the same
recording gives the same scores at the same frames whatever the chunk size it arrives in.
Times are seconds of audio from the chunks; nothing here reads a clock or opens a device.

One module on purpose: the feature models, the head and the detector share the one frame
grid that keeps scores chunk-size invariant.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from voice_skill.audio.pcm import SAMPLE_RATE, AudioChunk
from voice_skill.errors import ModelError

log = logging.getLogger(__name__)

MEL_WINDOW = 512  # samples per mel frame
MEL_HOP = 160  # samples between mel frames (10 ms)
MEL_BINS = 32
MEL_BLOCK_FRAMES = 4  # the front end runs on 4 frames at a time: 992 samples every 640
MEL_BLOCK_SAMPLES = MEL_HOP * (MEL_BLOCK_FRAMES - 1) + MEL_WINDOW
MEL_BLOCK_HOP = MEL_HOP * MEL_BLOCK_FRAMES
EMB_WINDOW = 76  # mel frames per embedding (0.775 s)
EMB_HOP = 8  # mel frames between embeddings (80 ms)
EMB_DIM = 96
HOP_SAMPLES = MEL_HOP * EMB_HOP
HOP_S = HOP_SAMPLES / SAMPLE_RATE
# The audio an embedding j covers ends at sample 1280 j + 12512 of the stream.
FIRST_END_SAMPLE = MEL_HOP * (EMB_WINDOW - 1) + MEL_WINDOW

DATA = "data/spotter"
MEL_MODEL = "melspectrogram.onnx"
EMBEDDING_MODEL = "embedding_model.onnx"
HEAD = "trigger_head.npz"
COMMAND_HEAD = "command_head.npz"
SAFETY_HEAD = "safety_head.npz"
BARE_HEAD = "bare_head.npz"
DENIAL_HEAD = "denial_head.npz"


def embedding_end_s(index: int) -> float:
    """Seconds of audio (from the start of a stream or clip) where embedding ``index`` ends."""
    return (HOP_SAMPLES * index + FIRST_END_SAMPLE) / SAMPLE_RATE


def _data_path(name: str, folder: str | Path | None) -> Path:
    if folder is not None:
        return Path(folder) / name
    return Path(str(resources.files("voice_skill") / DATA / name))


def onnx_session(path: Path, what: str, arena: bool = True, patterns: bool = True):
    """An onnxruntime session for the model at ``path`` on one thread (a bedside Pi has few
    cores); a missing onnxruntime or a file that does not load is a ``ModelError`` naming
    ``what``. ``arena``: onnxruntime's memory arena (it keeps its peak for the process's life);
    ``patterns``: its memory plans, one kept per input shape."""
    try:
        import onnxruntime as ort  # noqa: PLC0415 (optional native dependency)
    except ImportError as exc:
        raise ModelError(f"{what} needs onnxruntime ({exc})") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = arena
    opts.enable_mem_pattern = patterns
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for missing and corrupt files
        raise ModelError(f"cannot load {what}: {exc}", path=str(path)) from None


class FeatureModels:
    """The two frozen ONNX feature models, run on one thread each."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self._sessions = [onnx_session(_data_path(name, folder), "the spotter's feature model")
                          for name in (MEL_MODEL, EMBEDDING_MODEL)]
        self._mel, self._emb = self._sessions
        self.silence: np.ndarray | None = None  # filled by silence_embedding()

    def mel_blocks(self, blocks: np.ndarray) -> np.ndarray:
        """(n, 992) float samples in int16 units -> (n, 4, 32) scaled log-mel frames.

        One block per call: the front end floors its decibels relative to the loudest value
        of the whole call (80 dB below it), so a batch would make a block's frames depend on
        its neighbours; block by block, training, files and live input see the same numbers.
        """
        x = np.ascontiguousarray(blocks, dtype=np.float32)
        out = np.empty((len(x), MEL_BLOCK_FRAMES, MEL_BINS), dtype=np.float32)
        for i in range(len(x)):
            out[i] = self._mel.run(None, {"input": x[i:i + 1]})[0].reshape(MEL_BLOCK_FRAMES, MEL_BINS)
        return out / 10.0 + 2.0

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """(n, 76, 32) mel windows -> (n, 96) embeddings."""
        x = np.ascontiguousarray(windows, dtype=np.float32)[..., None]
        return self._emb.run(None, {"input_1": x})[0].reshape(len(windows), EMB_DIM)


def clip_embeddings(models: FeatureModels, samples: np.ndarray, batch: int = 512) -> np.ndarray:
    """Every embedding of a whole clip at once (training and evaluation): the same blocks
    and windows the streaming path uses, batched. Row j ends at ``embedding_end_s(j)``."""
    x = np.asarray(samples, dtype=np.float32)
    n_blocks = (len(x) - MEL_BLOCK_SAMPLES) // MEL_BLOCK_HOP + 1 if len(x) >= MEL_BLOCK_SAMPLES else 0
    if n_blocks <= 0:
        return np.zeros((0, EMB_DIM), dtype=np.float32)
    idx = np.arange(n_blocks)[:, None] * MEL_BLOCK_HOP + np.arange(MEL_BLOCK_SAMPLES)[None, :]
    mel = np.concatenate([models.mel_blocks(x[idx[i:i + batch]]) for i in range(0, n_blocks, batch)])
    mel = mel.reshape(-1, MEL_BINS)
    n_emb = (len(mel) - EMB_WINDOW) // EMB_HOP + 1
    if n_emb <= 0:
        return np.zeros((0, EMB_DIM), dtype=np.float32)
    widx = np.arange(n_emb)[:, None] * EMB_HOP + np.arange(EMB_WINDOW)[None, :]
    return np.concatenate([models.embed(mel[widx[i:i + batch]]) for i in range(0, n_emb, batch)])


class StreamingEmbedder:
    """Samples in, embeddings out as soon as the audio they cover has arrived."""

    def __init__(self, models: FeatureModels) -> None:
        self.models = models
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # stream sample index of _buf[0]
        self._blocks = 0  # mel blocks computed so far
        self._mel: deque[np.ndarray] = deque(maxlen=EMB_WINDOW + MEL_BLOCK_FRAMES)
        self._mel_frames = 0
        self.embeddings = 0  # embeddings emitted so far

    def accept(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Feed int16 samples; returns (index, embedding) for each embedding now complete."""
        self._buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float32)])
        out: list[tuple[int, np.ndarray]] = []
        while True:
            lo = self._blocks * MEL_BLOCK_HOP - self._buf_start
            if lo + MEL_BLOCK_SAMPLES > len(self._buf):
                break
            frames = self.models.mel_blocks(self._buf[None, lo:lo + MEL_BLOCK_SAMPLES])[0]
            self._blocks += 1
            self._mel.extend(frames)
            self._mel_frames += MEL_BLOCK_FRAMES
            if self._mel_frames >= EMB_WINDOW and (self._mel_frames - EMB_WINDOW) % EMB_HOP == 0:
                window = np.stack(list(self._mel)[-EMB_WINDOW:])
                out.append((self.embeddings, self.models.embed(window[None])[0]))
                self.embeddings += 1
        keep_from = self._blocks * MEL_BLOCK_HOP - self._buf_start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._buf_start += keep_from
        return out


@dataclass(frozen=True)
class SpotterHead:
    """The trained head: a two-hidden-layer perceptron over the last ``window`` embeddings, or
    the mean of several (``others``: perceptrons trained alike with other seeds or data, whose
    probabilities are averaged with the first one's; each has its own input normalisation).

    Stored as one ``.npz`` with the weights (``w0``..``w5``, then ``m1_w0``.. for the second
    perceptron, and so on) and a JSON ``meta`` string (the decision thresholds chosen on the
    development voices, the training set-up, the figures).
    """

    weights: tuple[np.ndarray, ...]
    mean: np.ndarray
    scale: np.ndarray
    meta: dict
    others: tuple[tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray], ...] = ()

    @property
    def window(self) -> int:
        return int(self.meta.get("window", 16))

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    @property
    def confirm_threshold(self) -> float:
        return float(self.meta.get("confirm_threshold", self.threshold))

    @property
    def min_frames(self) -> int:
        return int(self.meta.get("min_frames", 1))

    @property
    def support(self) -> float:
        """The level the frames around a peak must reach (``Decision``); the threshold by default."""
        return float(self.meta.get("support", self.threshold))

    @property
    def classes(self) -> list[str]:
        """What a multi-class head's outputs mean ("none" first); [] for a one-score head."""
        return list(self.meta.get("classes", []))

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SpotterHead":
        path = Path(path) if path is not None else _data_path(HEAD, None)

        def member(data, prefix: str) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
            weights = tuple(np.asarray(data[f"{prefix}w{i}"], dtype=np.float32) for i in range(6))
            mean, scale = np.asarray(data[f"{prefix}mean"], np.float32), np.asarray(data[f"{prefix}scale"], np.float32)
            return weights, mean, scale

        try:
            with np.load(path, allow_pickle=False) as data:
                first = member(data, "")
                extra = sorted({int(n[1:n.index("_")]) for n in data.files if n.startswith("m") and "_" in n})
                others = tuple(member(data, f"m{k}_") for k in extra)
                meta = json.loads(str(data["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"not a spotter head: {exc}", path=str(path)) from None
        head = cls(*first, meta, others)
        for weights, mean, _ in (first, *others):
            if weights[0].shape[0] != head.window * EMB_DIM or mean.shape != (head.window * EMB_DIM,):
                raise ModelError(f"spotter head expects {weights[0].shape[0]} inputs, not {head.window} x {EMB_DIM}",
                                 path=str(path))
        return head

    def save(self, path: str | Path) -> None:
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        for k, (weights, mean, scale) in enumerate(self.others, 1):
            arrays |= {f"m{k}_w{i}": w for i, w in enumerate(weights)}
            arrays |= {f"m{k}_mean": mean, f"m{k}_scale": scale}
        np.savez_compressed(path, mean=self.mean, scale=self.scale, meta=json.dumps(self.meta, sort_keys=True),
                            **arrays)

    def members(self) -> tuple:
        """Each perceptron as (weights, mean, scale), the first one first."""
        return ((self.weights, self.mean, self.scale), *self.others)

    @staticmethod
    def _logits(windows: np.ndarray, weights, mean, scale) -> np.ndarray:
        x = (np.asarray(windows, dtype=np.float32).reshape(len(windows), -1) - mean) * scale
        w1, b1, w2, b2, w3, b3 = weights
        h = np.maximum(x @ w1 + b1, 0.0)
        h = np.maximum(h @ w2 + b2, 0.0)
        return h @ w3 + b3

    def score(self, windows: np.ndarray) -> np.ndarray:
        """(n, window, 96) embeddings -> (n,) probabilities that a trigger just ended."""
        return np.mean([1.0 / (1.0 + np.exp(-np.clip(self._logits(windows, *m).reshape(-1), -30.0, 30.0)))
                        for m in self.members()], axis=0)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """(n, window, 96) embeddings -> (n, classes) probabilities of a multi-class head."""
        out = []
        for m in self.members():
            z = self._logits(windows, *m)
            e = np.exp(z - z.max(axis=1, keepdims=True))
            out.append(e / e.sum(axis=1, keepdims=True))
        return np.mean(out, axis=0)


def _optional_head(name: str, path: str | Path | None) -> SpotterHead | None:
    path = Path(path) if path is not None else _data_path(name, None)
    return SpotterHead.load(path) if path.exists() else None


def command_head(path: str | Path | None = None) -> SpotterHead | None:
    """The shipped command head (or the one at ``path``); None where there is none."""
    return _optional_head(COMMAND_HEAD, path)


def safety_head(path: str | Path | None = None) -> SpotterHead | None:
    """The shipped head for red flags and emergencies (or the one at ``path``); None where there is none."""
    return _optional_head(SAFETY_HEAD, path)


def bare_head(path: str | Path | None = None) -> SpotterHead | None:
    """The shipped head for the bare-word trigger at an utterance's end ("I have a cramp", then
    quiet), or the one at ``path``; None where there is none."""
    return _optional_head(BARE_HEAD, path)


def denial_head(path: str | Path | None = None) -> SpotterHead | None:
    """The shipped denial head, which hears a trigger denied by the words before it ("I don't
    have a calf cramp"), or the one at ``path``; None where there is none."""
    return _optional_head(DENIAL_HEAD, path)


def clip_scores(models: FeatureModels, head: SpotterHead, samples: np.ndarray) -> np.ndarray:
    """The head's score at every embedding of a clip (row j ends at ``embedding_end_s(j)``);
    the first ``window - 1`` rows see leading silence, as a fresh stream does."""
    emb = clip_embeddings(models, samples)
    if len(emb) == 0:
        return np.zeros(0, dtype=np.float32)
    lead = np.repeat(silence_embedding(models)[None], head.window - 1, axis=0)
    padded = np.concatenate([lead, emb])
    idx = np.arange(len(emb))[:, None] + np.arange(head.window)[None, :]
    return head.score(padded[idx])


def silence_embedding(models: FeatureModels) -> np.ndarray:
    """The embedding of digital silence: what fills the window before a stream has 2 s of audio."""
    if models.silence is None:
        models.silence = clip_embeddings(models, np.zeros(FIRST_END_SAMPLE, dtype=np.int16))[0]
    return models.silence


@dataclass(frozen=True)
class Detection:
    """A trigger the spotter heard end at ``end_s`` (seconds of audio), with its score."""

    score: float
    start_s: float
    end_s: float


class Decision:
    """One output's firing rule: ``min_frames`` scores in a row at or above ``support``, at
    least one of them at or above ``threshold``, fire once; it fires again only after the
    score has fallen below half the threshold, so one phrase gives one detection.

    ``support`` (at most ``threshold``; the threshold itself when not given) is for a phrase
    that ends between two 80 ms frames: its peak is then split over them, one frame over the
    threshold and its neighbour just under it. With ``support == threshold`` this is the plain
    rule of ``min_frames`` frames in a row over the threshold.
    """

    def __init__(self, threshold: float, min_frames: int, support: float | None = None) -> None:
        self.threshold = threshold
        self.min_frames = max(1, int(min_frames))
        self.support = threshold if support is None else min(float(support), threshold)
        self.reset()

    def reset(self) -> None:
        self._recent: deque[float] = deque(maxlen=self.min_frames)  # the run over ``support``, newest last
        self._armed = True

    def fires(self, score: float) -> bool:
        if score >= self.support:
            self._recent.append(score)
            if self._armed and len(self._recent) >= self.min_frames and max(self._recent) >= self.threshold:
                self._armed = False
                return True
            return False
        self._recent.clear()
        if score < self.threshold / 2:
            self._armed = True
        return False


class TriggerSpotter:
    """The streaming detector: chunks in, detections out, scores kept for a second opinion.

    The trigger head decides the triggers (``Decision``'s rule). Optional multi-class heads read
    the same embeddings and keep, for the last 30 s, how likely each of their phrases is to have
    just ended: ``commands`` for the short commands ("stop", "next", "it's gone"), ``safety``
    for red flags and emergencies, ``bare`` for a trigger ending in the bare word "cramp" that a
    moment of quiet followed. ``best`` and ``probability`` give the grammar recognizer's
    utterances a second opinion by sound. An optional one-score ``denial`` head looks again at
    the window the trigger head fired on, and where the words before the trigger deny it ("I
    don't have a calf cramp", "that isn't a leg cramp") the detection is not reported but kept
    (``denied_within``), so the grammar recognizer's copy of the trigger is dropped too.
    """

    HISTORY_S = 30.0
    PHRASE_S = 1.2  # the start time reported: a typical trigger's length before its end

    def __init__(self, models: FeatureModels | None = None, head: SpotterHead | None = None,
                 threshold: float | None = None, min_frames: int | None = None,
                 commands: SpotterHead | None = None, safety: SpotterHead | None = None,
                 bare: SpotterHead | None = None, denial: SpotterHead | None = None) -> None:
        self.models = models or FeatureModels()
        self.head = head or SpotterHead.load()
        self.threshold = self.head.threshold if threshold is None else threshold
        self.min_frames = self.head.min_frames if min_frames is None else min_frames
        self.commands = commands
        self.safety = safety
        self.bare = bare
        if denial is not None and (denial.classes or denial.window != self.head.window):
            raise ModelError("the denial head must be a one-score head over the trigger head's window")
        self.denial = denial
        self._denied: deque[float] = deque(maxlen=16)  # end times of the detections the denial head took back
        self.opinions = {kind: h for kind, h in (("commands", commands), ("safety", safety), ("bare", bare))
                         if h is not None}
        for kind, h in self.opinions.items():
            if not h.classes or h.window != self.head.window:
                raise ModelError(f"the {kind} head must be a multi-class head over the trigger head's window")
        self._embedder = StreamingEmbedder(self.models)
        self._scores: deque[tuple[float, float]] = deque(maxlen=int(self.HISTORY_S / HOP_S))
        support = self.head.support if threshold is None else self.threshold
        self._trigger = Decision(self.threshold, self.min_frames, support)
        self._probs = {kind: deque(maxlen=int(self.HISTORY_S / HOP_S)) for kind in self.opinions}
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a device change, a gap): the window refills from silence."""
        self._embedder.reset()
        self._window: deque[np.ndarray] = deque([silence_embedding(self.models)] * self.head.window,
                                                maxlen=self.head.window)
        self._origin_s: float | None = None
        self._fed = 0
        self._trigger.reset()
        self._scores.clear()
        self._denied.clear()
        for kept in self._probs.values():
            kept.clear()

    def accept(self, chunk: AudioChunk) -> list[Detection]:
        if self._origin_s is None or abs(chunk.start_s - (self._origin_s + self._fed / SAMPLE_RATE)) > 1e-6:
            if self._origin_s is not None:
                log.debug("gap in the input at %.3f s: the spotter starts again", chunk.start_s)
            self.reset()
            self._origin_s = chunk.start_s
        samples = chunk.as_array()
        self._fed += len(samples)
        found: list[Detection] = []
        for index, emb in self._embedder.accept(samples):
            self._window.append(emb)
            window = np.stack(self._window)[None]
            score = float(self.head.score(window)[0])
            end_s = self._origin_s + embedding_end_s(index)
            self._scores.append((end_s, score))
            if self._trigger.fires(score):
                denied = float(self.denial.score(window)[0]) if self.denial is not None else 0.0
                if denied and denied >= self.denial.threshold:
                    log.info("trigger at %.2f s (%.3f) denied by the words before it (%.3f): not started",
                             end_s, score, denied)
                    self._denied.append(end_s)
                else:
                    found.append(Detection(score, max(self._origin_s, end_s - self.PHRASE_S), end_s))
            for kind, h in self.opinions.items():
                self._probs[kind].append((end_s, h.probabilities(window)[0]))
        return found

    def best(self, start_s: float, end_s: float, kind: str = "commands") -> tuple[str | None, float]:
        """The phrase most likely to have ended within [start_s, end_s] by the ``kind`` head
        ("commands", "safety" or "bare"), and its probability ((None, 0.0) without that head or kept frames)."""
        best, label = 0.0, None
        for t, probs in self._probs.get(kind, ()):
            if start_s <= t <= end_s:
                c = int(np.argmax(probs[1:])) + 1
                if probs[c] > best:
                    best, label = float(probs[c]), self.opinions[kind].classes[c]
        return label, best

    def first_sure(self, start_s: float, end_s: float, level: float, kind: str = "bare") -> tuple[float, float] | None:
        """(end of frame in seconds, probability) of the first frame within [start_s, end_s] at
        which the ``kind`` head's likeliest phrase reached ``level``; None where none has (yet)."""
        for t, probs in self._probs.get(kind, ()):
            if start_s <= t <= end_s and (top := float(probs[1:].max())) >= level:
                return t, top
        return None

    def probability(self, name: str, start_s: float, end_s: float) -> float:
        """The highest probability, by the head that knows phrase ``name``, that it ended within
        [start_s, end_s] (0.0 when no head knows it)."""
        for kind, h in self.opinions.items():
            if name in h.classes:
                c = h.classes.index(name)
                return max((float(probs[c]) for t, probs in self._probs[kind] if start_s <= t <= end_s),
                           default=0.0)
        return 0.0

    def denied_within(self, start_s: float, end_s: float) -> bool:
        """Whether a detection whose phrase overlaps [start_s, end_s] was denied by its words."""
        return any(start_s <= t and t - self.PHRASE_S <= end_s for t in self._denied)

    @property
    def heard_to_s(self) -> float | None:
        """The end of the last frame scored, in seconds (None before the first)."""
        return self._scores[-1][0] if self._scores else None

    def recent_scores(self) -> list[tuple[float, float]]:
        """(end of frame in seconds, score) for the last 30 s of frames, oldest first."""
        return list(self._scores)

    def max_score(self, start_s: float, end_s: float) -> float:
        """The highest score whose frame ended within [start_s, end_s] (0 if none is kept)."""
        return max((s for t, s in self._scores if start_s <= t <= end_s), default=0.0)
