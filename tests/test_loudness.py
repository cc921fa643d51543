"""Sentence loudness: BS.1770-4 measurement, silence trimming, fades, normalisation."""

import shutil
import subprocess
import warnings

import numpy as np
import pytest

from voice_skill.audio.loudness import (TARGET_LUFS, fade_edges, finish_sentence, integrated_loudness, normalise,
                                        trim_silence)
from voice_skill.audio.pcm import read_wav

RATE = 16_000
# The ceiling normalise keeps peaks under by default: -1 dBFS of int16 full scale.
PEAK_LIMIT = 10 ** (-1 / 20) * 32768  # 29204.6
# BS.1770-4's published K-weighting at 48 kHz: the independent reference for the filter's shape.
STAGE1 = ([1.53512485958697, -2.69169618940638, 1.19839281085285], [1.0, -1.69065929318241, 0.73248077421585])
STAGE2 = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])


def standard_k_weighting_db(freq: float) -> float:
    """The gain of BS.1770's two 48 kHz biquads at ``freq``."""
    z = np.exp(-2j * np.pi * freq / 48_000)
    gain = 1.0
    for b, a in (STAGE1, STAGE2):
        gain *= abs((b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z))
    return 20 * np.log10(gain)


def sine(freq: float, amplitude: float, seconds: float, rate: int = RATE) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


def speech_like(seconds: float, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Noise with a speech-like spectrum (100 Hz to 5 kHz, falling above 500 Hz) in syllable-rate
    bursts of random strength with short pauses; peak 1.0."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    freq = np.fft.rfftfreq(n, 1 / rate)
    shape = ((freq > 100) & (freq < 5000)) / np.maximum(1.0, freq / 500)
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * shape, n)
    t = np.arange(n) / rate
    syllables = np.maximum(0.0, np.sin(2 * np.pi * 4 * t)) ** 2
    strength = rng.uniform(0.3, 1.0, int(seconds * 4) + 1)[(t * 4).astype(int)]
    x = noise * syllables * strength
    return x / np.max(np.abs(x))


def as_int16(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32767).astype(np.int16)


# --- measurement ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16_000, 48_000])
@pytest.mark.parametrize("amplitude", [1.0, 0.5, 0.01])
def test_a_1khz_sine_reads_its_level_minus_3_01(rate, amplitude):
    expected = 20 * np.log10(amplitude) - 3.01
    assert integrated_loudness(sine(1000, amplitude, 3.0, rate), rate) == pytest.approx(expected, abs=0.1)


def test_int16_and_float32_samples_are_scaled_to_full_scale_one():
    x = sine(1000, 0.5, 2.0)
    expected = integrated_loudness(x)
    assert expected == pytest.approx(20 * np.log10(0.5) - 3.01, abs=0.1)
    assert integrated_loudness(np.round(x * 32768).astype(np.int16)) == pytest.approx(expected, abs=0.01)
    assert integrated_loudness(x.astype(np.float32)) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("rate,freq", [(16_000, 50), (16_000, 100), (16_000, 4000), (16_000, 7000),
                                       (48_000, 30), (48_000, 100), (48_000, 4000), (48_000, 15000)])
def test_k_weighting_follows_the_standards_filter(rate, freq):
    # A 100 Hz sine reads 1.83 dB below a 1 kHz one of the same amplitude, a 4 kHz one 3.27 dB above.
    expected = standard_k_weighting_db(freq) - standard_k_weighting_db(1000)
    measured = integrated_loudness(sine(freq, 0.5, 2.0, rate), rate) - integrated_loudness(sine(1000, 0.5, 2.0, rate),
                                                                                           rate)
    assert measured == pytest.approx(expected, abs=0.1)


def test_a_signal_shorter_than_one_block_is_measured_as_one_block():
    assert integrated_loudness(sine(1000, 0.5, 0.2)) == pytest.approx(20 * np.log10(0.5) - 3.01, abs=0.1)


def test_digital_silence_around_a_sentence_does_not_count():
    speech = speech_like(3.0)
    short_pauses = np.concatenate([np.zeros(RATE // 2), speech, np.zeros(RATE // 2)])
    long_pauses = np.concatenate([np.zeros(RATE * 10), speech, np.zeros(RATE * 10)])
    # Counted, the extra silence would pull the reading down by 10*log10(23/4) = 7.6 LU.
    assert integrated_loudness(long_pauses) == pytest.approx(integrated_loudness(short_pauses), abs=0.01)
    # Without pauses it reads a little louder: the standard's blocks that overlap the sentence's
    # start and end count, partly silent (0.3 LU for these 3 s).
    assert integrated_loudness(long_pauses) == pytest.approx(integrated_loudness(speech), abs=0.5)


def test_the_relative_gate_ignores_a_part_30_db_down():
    speech = speech_like(3.0, seed=1)
    alone = integrated_loudness(speech)
    # Counted, the quiet half would pull the reading down by about 3 LU.
    with_quiet_part = np.concatenate([speech, 10 ** (-30 / 20) * speech_like(3.0, seed=2)])
    assert integrated_loudness(with_quiet_part) == pytest.approx(alone, abs=0.2)


@pytest.mark.parametrize("samples", [np.zeros(0), np.zeros(RATE * 2), np.zeros(RATE, dtype=np.int16),
                                     sine(1000, 1e-4, 1.0)])  # -83 LUFS: under the absolute gate
def test_silence_measures_minus_infinity_without_warnings(samples):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert integrated_loudness(samples) == float("-inf")


# --- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.5, 5.0])
@pytest.mark.parametrize("level_db", [0, -20, -40])
def test_normalise_brings_any_level_and_length_to_the_target(seconds, level_db):
    x = as_int16(10 ** (level_db / 20) * speech_like(seconds, seed=3))
    out = normalise(x)
    assert out.dtype == np.int16 and len(out) == len(x)
    assert integrated_loudness(out) == pytest.approx(TARGET_LUFS, abs=0.5)
    assert np.max(np.abs(out.astype(np.int32))) <= PEAK_LIMIT


def test_normalise_to_another_target():
    out = normalise(as_int16(speech_like(2.0, seed=4)), target_lufs=-30.0)
    assert integrated_loudness(out) == pytest.approx(-30.0, abs=0.5)


def test_peaks_over_the_ceiling_are_limited_smoothly_and_only_where_they_are():
    x = 0.2 * np.tanh(4 * speech_like(3.0, seed=5)) / np.tanh(4)  # peaks 11 dB over its loudness: no limiting
    loud = slice(16920, 17080)  # at the height of a syllable (1.0625 s)
    x[loud] *= 5  # but a 10 ms plosive 14 dB over the rest is over the ceiling at any sensible target
    xi = as_int16(x)
    out = normalise(xi).astype(np.float64)
    assert np.max(np.abs(out)) <= PEAK_LIMIT
    # Limiting takes the plosive's energy away (0.9 LU of loudness); normalise makes it up.
    assert integrated_loudness(out / 32768) == pytest.approx(TARGET_LUFS, abs=0.1)
    big = np.abs(xi) > 1000  # where the gain can be read to 0.1 %
    away = np.ones(len(x), dtype=bool)
    away[loud.start - RATE // 100: loud.stop + RATE // 100] = False  # the limiter acts within 8 ms
    gain = out[big] / xi[big]
    constant = np.median(out[big & away] / xi[big & away])
    # One constant gain away from the plosive ...
    assert np.ptp(out[big & away] / xi[big & away]) < 0.01 * constant
    # ... and at least 3 dB less on it, reached gradually: no sample-to-sample jump in the gain.
    cut = gain.min() / constant
    assert cut < 10 ** (-3 / 20)
    neighbours = np.diff(np.flatnonzero(big)) == 1
    assert np.max(np.abs(np.diff(gain))[neighbours]) < 0.05 * (1 - cut) * constant


def test_normalise_leaves_silence_silent():
    out = normalise(np.zeros(RATE, dtype=np.int16))
    assert out.dtype == np.int16 and len(out) == RATE and not np.any(out)


# --- trimming and fades --------------------------------------------------------------------


def test_trim_keeps_the_sound_and_30_ms_either_side():
    burst = as_int16(sine(440, 0.5, 1.0))
    x = np.concatenate([np.zeros(8000, dtype=np.int16), burst, np.zeros(11200, dtype=np.int16)])
    out = trim_silence(x)
    # The burst fills 10 ms frames 50 to 149: samples 8000 to 24000, plus 480 samples each side.
    assert len(out) == 16000 + 2 * 480
    assert np.array_equal(out, x[7520:24480])


def test_trim_cuts_noise_below_the_threshold_but_keeps_quiet_speech():
    rng = np.random.default_rng(6)
    hiss = 10 ** (-60 / 20) * 0.5 * rng.uniform(-1, 1, RATE)  # 60 dB below the burst
    quiet = sine(300, 10 ** (-30 / 20) * 0.5, 0.3)  # 30 dB below: kept
    x = np.concatenate([hiss, quiet, sine(440, 0.5, 0.5), hiss])
    out = trim_silence(x)
    assert len(out) == len(quiet) + RATE // 2 + 2 * 480
    assert np.array_equal(out[480: 480 + len(quiet)], quiet)


def test_trim_margin_stops_at_the_ends_and_silence_trims_to_nothing():
    x = as_int16(sine(440, 0.5, 0.5))
    assert np.array_equal(trim_silence(x), x)
    for silent in (np.zeros(RATE, dtype=np.int16), np.zeros(0, dtype=np.int16)):
        out = trim_silence(silent)
        assert len(out) == 0 and out.dtype == np.int16


def test_fades_start_and_end_at_zero_without_a_step():
    x = np.full(RATE // 10, 10000, dtype=np.int16)  # a DC step: the worst click there is
    faded = fade_edges(x)
    out = faded.astype(np.int32)
    assert faded.dtype == np.int16 and out[0] == 0 and out[-1] == 0
    # A raised cosine over 128 samples rises at most pi/256 of the level per sample.
    assert np.max(np.abs(np.diff(out))) <= 10000 * np.pi / 256 + 1
    assert np.all(out[128:-128] == 10000) and out[127] < 10000 and out[-128] < 10000


def test_fades_keep_float_samples_float_and_fit_short_signals():
    out = fade_edges(np.ones(100))
    assert out.dtype == np.float64 and out[0] == 0.0 and out[-1] == 0.0 and out[49] > 0.9


# --- finished sentences --------------------------------------------------------------------


def test_finish_sentence_trims_normalises_and_fades():
    x = np.concatenate([np.zeros(RATE), as_int16(0.1 * speech_like(2.0, seed=7)), np.zeros(RATE)]).astype(np.int16)
    out = finish_sentence(x)
    assert out.dtype == np.int16 and out[0] == 0 and out[-1] == 0
    assert len(out) <= 2 * RATE + 2 * 480
    assert integrated_loudness(out) == pytest.approx(TARGET_LUFS, abs=0.5)
    paused = finish_sentence(x, pause_s=0.3)
    assert np.array_equal(paused[:len(out)], out) and len(paused) == len(out) + int(0.3 * RATE)
    assert not paused[len(out):].any()


@pytest.mark.parametrize("samples", [np.zeros(0, dtype=np.int16), np.zeros(RATE, dtype=np.int16)])
def test_finish_sentence_of_nothing_is_nothing(samples):
    out = finish_sentence(samples)
    assert len(out) == 0 and out.dtype == np.int16


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not on PATH: no real speech to measure")
def test_real_sentences_of_any_length_come_out_equally_loud(tmp_path):
    sentences = ["Fifteen.", "Five.", "Flex your foot and pull your toes toward your knee, and hold it there."]
    raw = []
    for i, text in enumerate(sentences):
        path = tmp_path / f"{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(path), "-v", "en", text], check=True, timeout=30)
        raw.append(read_wav(path))
    raw[1] = (raw[1] // 4).astype(np.int16)  # 12 dB quieter, as another engine or voice might be
    finished = [finish_sentence(x) for x in raw]
    levels = [integrated_loudness(x) for x in finished]
    assert max(levels) - min(levels) <= 1.0, levels
    assert all(abs(level - TARGET_LUFS) <= 1.0 for level in levels), levels
    for before, after in zip(raw, finished):
        assert after[0] == 0 and after[-1] == 0 and len(after) < len(before)
        assert np.max(np.abs(after.astype(np.int32))) <= PEAK_LIMIT
