"""The night chime: short, soft, and free of clicks."""

import numpy as np
import pytest

from voice_skill.audio.loudness import integrated_loudness
from voice_skill.audio.pcm import SAMPLE_RATE
from voice_skill.audio.chime import ChimeVoice, chime
from voice_skill.core.clock import VirtualClock

# Expected figures, written out rather than taken from the module under test: every sentence
# is spoken at -20 LUFS and the chime is 6 LU softer at volume 1, then follows the volume as a
# gain: 20 * log10(0.5) = -6.02 dB, 20 * log10(0.1) = -20 dB.
LOUDNESS = {1.0: -26.0, 0.5: -32.02, 0.1: -46.0}
# Its two notes: C5 and E5.
NOTES_HZ = (523.25, 659.25)
# The steepest a sine at the higher note (E5) moves in one sample at 16 kHz is
# 2 * pi * 659.25 / 16000 = 0.2589 of its amplitude; a click would jump far more than that.
MAX_STEP_OF_PEAK = 0.26


def test_length_format_and_determinism():
    samples = chime(0.8)
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert len(samples) == 6400  # 0.4 s at 16 kHz
    assert np.array_equal(samples, chime(0.8))


@pytest.mark.parametrize("volume", sorted(LOUDNESS))
def test_loudness_sits_under_the_speech_and_follows_the_volume(volume):
    samples = chime(volume)
    assert integrated_loudness(samples) == pytest.approx(LOUDNESS[volume], abs=0.05)
    assert np.max(np.abs(samples.astype(np.int32))) <= 0.25 * 32767  # at most about -12 dBFS at its peak


def test_volume_zero_is_silence_and_bad_volumes_are_refused():
    assert not chime(0.0).any()
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            chime(bad)


def test_starts_and_ends_in_silence_without_clicks():
    x = chime(1.0).astype(np.float64)
    peak = np.max(np.abs(x))
    assert x[0] == 0 and abs(x[-1]) <= 1
    ms = SAMPLE_RATE // 1000
    assert np.max(np.abs(x[:2 * ms])) < 0.05 * peak  # a gentle attack, not a step
    assert np.max(np.abs(x[-2 * ms:])) < 0.05 * peak  # and a fade to nothing
    # No jumps: a sample-to-sample change never exceeds what the higher note's own slope
    # allows at this level (a click would jump by a large part of the peak at once).
    assert np.max(np.abs(np.diff(x))) <= MAX_STEP_OF_PEAK * peak


def test_energy_stays_in_the_tones():
    """A click spreads energy across the spectrum; a soft chime keeps it near its two notes."""
    x = chime(1.0).astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    near = np.zeros_like(power, dtype=bool)
    for freq in NOTES_HZ:
        near |= np.abs(freqs - freq) < 100
    assert power[near].sum() / power.sum() > 0.99
    assert power[freqs > 2000].sum() / power.sum() < 1e-4


class RecordingVoice:
    """Stands in for the speech engine (not under test): one second of a constant tone per
    sentence, and a note of the rate and volume in force when each was asked for."""

    def __init__(self) -> None:
        self.rate, self.volume = 165, 1.0
        self.asked: list[tuple[str, int, float]] = []

    def synthesize(self, text: str) -> np.ndarray:
        self.asked.append((text, self.rate, self.volume))
        return np.full(SAMPLE_RATE, 1000, dtype=np.int16)


def test_the_chime_comes_before_speech_after_a_quiet_spell_at_night_only():
    clock, voice, night = VirtualClock(), RecordingVoice(), [True]
    wrapped = ChimeVoice(voice, clock, lambda: night[0], quiet_s=20.0)
    first = wrapped.synthesize("one")
    assert len(first) > SAMPLE_RATE and np.array_equal(first[-SAMPLE_RATE:], np.full(SAMPLE_RATE, 1000, np.int16))
    clock.advance_to(5.0)
    assert len(wrapped.synthesize("two")) == SAMPLE_RATE  # mid-routine: no chime
    clock.advance_to(40.0)
    assert len(wrapped.synthesize("three")) > SAMPLE_RATE  # after 35 s of quiet: chime again
    night[0] = False
    clock.advance_to(100.0)
    assert len(wrapped.synthesize("four")) == SAMPLE_RATE  # daytime: never


def test_night_manners_are_applied_before_each_sentence():
    """A skill started in the evening speaks softer and slower once night begins."""
    clock, voice = VirtualClock(), RecordingVoice()
    hour = [21.5]
    manners = lambda: (140, 0.6) if hour[0] >= 22 else (165, 1.0)  # noqa: E731
    wrapped = ChimeVoice(voice, clock, lambda: False, manners=manners)
    wrapped.synthesize("evening")
    hour[0] = 23.0
    wrapped.synthesize("night")
    assert voice.asked == [("evening", 165, 1.0), ("night", 140, 0.6)]
