"""The night chime: short, soft, and free of clicks."""

import numpy as np
import pytest

from voice_skill.audio import SAMPLE_RATE
from voice_skill.chime import DURATION_S, PEAK_AT_FULL_VOLUME, TONES, chime


def test_length_format_and_determinism():
    samples = chime(0.8)
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert len(samples) == int(round(DURATION_S * SAMPLE_RATE)) == 6400
    assert np.array_equal(samples, chime(0.8))


@pytest.mark.parametrize("volume", [1.0, 0.5, 0.1])
def test_peak_level_is_low_and_follows_the_volume(volume):
    peak = int(np.max(np.abs(chime(volume).astype(np.int32))))
    assert peak == pytest.approx(PEAK_AT_FULL_VOLUME * volume * 32767, abs=1)
    assert peak <= 0.25 * 32767  # at most about -12 dBFS, even at full volume


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
    # No jumps: a sample-to-sample change never exceeds what the highest tone's own slope
    # allows at this level (a click would jump by a large part of the peak at once).
    top = max(freq for freq, *_ in TONES)
    assert np.max(np.abs(np.diff(x))) <= 1.05 * peak * 2 * np.pi * top / SAMPLE_RATE


def test_energy_stays_in_the_tones():
    """A click spreads energy across the spectrum; a soft chime keeps it near its two notes."""
    x = chime(1.0).astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    near = np.zeros_like(power, dtype=bool)
    for freq, *_ in TONES:
        near |= np.abs(freqs - freq) < 100
    assert power[near].sum() / power.sum() > 0.99
    assert power[freqs > 2000].sum() / power.sum() < 1e-4
