"""A short, soft chime for night use: generated, not bundled.

Two sine tones a major third apart (C5 then E5), the second entering while the first
fades, each with a smooth raised-cosine attack and an exponential decay, and the whole
sound faded to exact silence at both ends so it cannot click. Its loudness is matched to
the coach's speech, ``BELOW_SPEECH_LU`` under the loudness every sentence is brought to
(``audio.loudness.TARGET_LUFS``), so it is always a little softer than the voice that
follows and does not jolt a sleeper awake.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from voice_skill.audio.loudness import TARGET_LUFS, integrated_loudness
from voice_skill.audio.pcm import SAMPLE_RATE

DURATION_S = 0.4
BELOW_SPEECH_LU = 6.0  # the chime's loudness at volume 1: this far under the speech's
TONES = (  # (frequency Hz, start s, length s, relative level)
    (523.25, 0.0, 0.28, 1.0),  # C5
    (659.25, 0.12, 0.28, 0.8),  # E5
)
ATTACK_S = 0.02  # raised-cosine rise: no step at the onset
DECAY_PER_S = 9.0  # exponential decay rate of each tone
EDGE_FADE_S = 0.01  # a final fade so every tone (and the chime) ends at exactly zero


def _fade(n: int) -> np.ndarray:
    """A raised-cosine ramp from 0 to 1 over ``n`` samples."""
    return 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))


def _tone(freq_hz: float, length_s: float, rate: int) -> np.ndarray:
    n = int(round(length_s * rate))
    t = np.arange(n) / rate
    envelope = np.exp(-DECAY_PER_S * t)
    attack = min(n, int(round(ATTACK_S * rate)))
    envelope[:attack] *= _fade(attack)
    tail = min(n, int(round(EDGE_FADE_S * rate)))
    envelope[n - tail:] *= _fade(tail)[::-1]
    return envelope * np.sin(2 * np.pi * freq_hz * t)


def chime(volume: float = 1.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The chime as mono int16 samples at ``rate`` (16 kHz), ``DURATION_S`` long.

    ``volume`` (0 to 1) scales it linearly, like the speaking volume; at 1 its loudness is
    ``BELOW_SPEECH_LU`` under the speech's (about -14 dBFS at its peak).
    """
    if not 0.0 <= volume <= 1.0:
        raise ValueError(f"chime volume must be between 0 and 1, not {volume}")
    if rate < 4 * max(f for f, *_ in TONES):
        raise ValueError(f"a sample rate of {rate} Hz is too low for the chime")
    total = int(round(DURATION_S * rate))
    out = np.zeros(total, dtype=np.float64)
    for freq, start_s, length_s, level in TONES:
        tone = _tone(freq, length_s, rate) * level
        start = int(round(start_s * rate))
        end = min(total, start + len(tone))
        out[start:end] += tone[:end - start]
    level = integrated_loudness(out, rate)  # out peaks near 1, far above the gates
    scale = 10 ** ((TARGET_LUFS - BELOW_SPEECH_LU - level) / 20) * volume * 32768.0
    return np.round(out * scale).astype(np.int16)


class ChimeVoice:
    """A voice that rings the chime before it speaks after a quiet spell.

    Wraps any ``speaker.Voice``. When ``enabled()`` is true (night hours) and nothing has
    been synthesised for ``quiet_s`` seconds on ``clock``, the utterance starts with the
    chime and a short gap, so a sleeping partner hears a soft tone before a voice.

    ``manners()``, when given, returns the (rate, volume) for the present moment (softer
    and slower at night); they are applied to the voice before each utterance, so a skill
    started in the evening speaks at night volume after midnight.
    """

    def __init__(self, voice, clock, enabled, *, quiet_s: float = 20.0, gap_s: float = 0.15,
                 manners: Callable[[], tuple[int, float]] | None = None) -> None:
        self.voice = voice
        self.clock = clock
        self.enabled = enabled
        self.manners = manners
        self.quiet_s = quiet_s
        self.gap = np.zeros(int(round(gap_s * SAMPLE_RATE)), dtype=np.int16)
        self._last: float | None = None

    @property
    def rate(self) -> int:
        return self.voice.rate

    @property
    def volume(self) -> float:
        return self.voice.volume

    def synthesize(self, text: str) -> np.ndarray:
        now = self.clock.now()
        quiet = self._last is None or now - self._last >= self.quiet_s
        self._last = now
        if self.manners is not None:
            self.voice.rate, self.voice.volume = self.manners()
        audio = self.voice.synthesize(text)
        if quiet and self.enabled():
            return np.concatenate([chime(self.voice.volume), self.gap, audio])
        return audio
