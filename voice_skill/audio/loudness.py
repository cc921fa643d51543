"""One loudness for every sentence the skill speaks: measure, trim, normalise, fade.

Sentences come from different engines (Piper, espeak-ng) and run from a countdown number
("Fifteen.", half a second) to a five-second instruction; equal peaks or RMS would not make
them sound equal, equal *loudness* does. ``finish_sentence`` trims a sentence's leading and
trailing silence, brings it to ``TARGET_LUFS`` of ITU-R BS.1770-4 integrated loudness, and
fades its ends (raised cosine) to exactly zero so it cannot click.

``integrated_loudness`` follows BS.1770-4 for one channel: K-weighting (the high-shelf
pre-filter, then the RLB high-pass), mean square over 400 ms blocks every 100 ms, an
absolute gate at -70 LUFS, a relative gate 10 LU below the blocks that pass it, and
L = -0.691 + 10 log10(mean gated block power). Where it departs from the letter:

* K-weighting is a zero-phase FIR (0.1 s or more, Tukey-windowed) designed by frequency
  sampling the analog prototype of the standard's two filters (the parameters behind its
  48 kHz coefficients), applied by FFT: numpy has no recursive filter. Any sample rate gets
  the same response in hertz, within 0.01 dB of the standard's 48 kHz filter from 20 Hz to
  Nyquist (checked at 16, 22.05, 44.1 and 48 kHz). The phase differs; power ignores it.
* A signal shorter than one block is measured as one block of its own length (the standard
  gives no value); a final step shorter than 100 ms is left out, like the standard's
  incomplete last block. Silence, or a signal all below the absolute gate, reads ``-inf``.

Level: ``TARGET_LUFS`` is -20 LUFS, a comfortable talking level for a bedside speaker at
volume 1 (the night chime reads about -24 LUFS, below it) that leaves 19 dB up to the
-1 dBFS peak ceiling. Piper and espeak-ng sentences peak 14-22 dB above their loudness, so
most need no limiting. One whose gain would push a peak over the ceiling is not turned down
as a whole, which would leave it quieter than its neighbours: a look-ahead limiter lowers
the gain within 8 ms of those peaks only, in smooth ramps, so the ceiling holds exactly and
nothing clicks. That costs a little loudness (0.15 LU for the peakiest Piper sentence tried,
3 dB off its peaks), so it is measured again and the loss made up, in up to three passes.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

TARGET_LUFS = -20.0
PEAK_DBFS = -1.0

_BLOCK_S, _STEP_S = 0.4, 0.1  # gating blocks and their step (75 % overlap)
_ABSOLUTE_GATE_LUFS = -70.0
_RELATIVE_GATE_LU = -10.0
_OFFSET_DB = -0.691  # BS.1770's constant: a 997 Hz sine at 0 dBFS reads -3.01 LUFS
# The analog prototypes of BS.1770's K-weighting: (gain dB, corner Hz, Q) of the shelf,
# the exponent giving its mid-band gain, and (corner Hz, Q) of the high-pass.
_SHELF = (3.999843853973347, 1681.974450955533, 0.7071752369554196)
_SHELF_MID_EXPONENT = 0.4996667741545416
_HIGHPASS = (38.13547087602444, 0.5003270373238773)
_FIR_MIN_S = 0.1
_TRIM_FRAME_S = 0.01
_LIMITER_HALF_S = 0.004
_NORMALISE_PASSES = 3


def _k_weighting_gain(freq: np.ndarray) -> np.ndarray:
    """|H(f)| of the K-weighting's analog prototype, with the standard's 48 kHz high-pass
    gain of 1 + K/Q + K^2 (+0.043 dB: its numerator is exactly [1, -2, 1])."""
    gain_db, f_shelf, q_shelf = _SHELF
    v_high = 10.0 ** (gain_db / 20.0)
    v_mid = v_high**_SHELF_MID_EXPONENT
    u = 1j * freq / f_shelf
    shelf = (v_high * u * u + v_mid * u / q_shelf + 1.0) / (u * u + u / q_shelf + 1.0)
    f_hp, q_hp = _HIGHPASS
    u = 1j * freq / f_hp
    k = np.tan(np.pi * f_hp / 48_000.0)
    highpass = (1.0 + k / q_hp + k * k) * u * u / (u * u + u / q_hp + 1.0)
    return np.abs(shelf * highpass)


@lru_cache(maxsize=4)
def _k_weighting_fir(rate: int) -> np.ndarray:
    """A symmetric FIR of odd length; its centre tap is at ``len // 2``."""
    m = 1 << int(np.ceil(np.log2(_FIR_MIN_S * rate)))
    impulse = np.roll(np.fft.irfft(_k_weighting_gain(np.fft.rfftfreq(m, 1.0 / rate)), m), m // 2)
    t = np.arange(m) / m  # Tukey window, half of it taper: 0 at t=0, flat over the middle half
    window = 0.5 - 0.5 * np.cos(np.pi * np.clip(4.0 * np.minimum(t, 1.0 - t), 0.0, 1.0))
    return (impulse * window)[1:]


@lru_cache(maxsize=16)
def _k_weighting_spectrum(rate: int, nfft: int) -> np.ndarray:
    return np.fft.rfft(_k_weighting_fir(rate), nfft)


def _as_float(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    return x / 32768.0 if x.dtype == np.int16 else x.astype(np.float64, copy=False)


def _fft_length(n: int) -> int:
    """The least 2^a 3^b 5^c >= n: a fast FFT length, up to half the next power of two."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            best = min(best, p35 << ((n - 1) // p35).bit_length())
            p35 *= 3
        p5 *= 5
    return best


def _k_weighted(x: np.ndarray, rate: int) -> np.ndarray:
    taps = len(_k_weighting_fir(rate))
    nfft = _fft_length(len(x) + taps - 1)
    full = np.fft.irfft(np.fft.rfft(x, nfft) * _k_weighting_spectrum(rate, nfft), nfft)
    return full[taps // 2: taps // 2 + len(x)]


def integrated_loudness(samples: np.ndarray, rate: int = 16000) -> float:
    """BS.1770-4 integrated loudness of a mono signal in LUFS; ``-inf`` for silence.

    int16 samples are scaled by 1/32768; float samples have full scale 1.0."""
    x = _as_float(samples)
    if not np.any(x):
        return float("-inf")
    power = _k_weighted(x, rate) ** 2
    step = max(1, round(_STEP_S * rate))
    per_block = round(_BLOCK_S / _STEP_S)
    if len(power) < per_block * step:
        blocks = np.array([power.mean()])
    else:
        steps = power[: len(power) // step * step].reshape(-1, step).mean(axis=1)
        blocks = np.convolve(steps, np.full(per_block, 1.0 / per_block), mode="valid")
    blocks = blocks[blocks > 10.0 ** ((_ABSOLUTE_GATE_LUFS - _OFFSET_DB) / 10.0)]
    if len(blocks) == 0:
        return float("-inf")
    blocks = blocks[blocks > blocks.mean() * 10.0 ** (_RELATIVE_GATE_LU / 10.0)]
    return _OFFSET_DB + 10.0 * float(np.log10(blocks.mean()))


def trim_silence(samples: np.ndarray, rate: int = 16000, *, threshold_db: float = -45.0,
                 keep_s: float = 0.03) -> np.ndarray:
    """The signal without leading and trailing 10 ms frames more than ``threshold_db`` below its
    loudest frame (by RMS), keeping ``keep_s`` on each side; empty if it is all silence."""
    x = np.asarray(samples)
    frame = max(1, round(_TRIM_FRAME_S * rate))
    padded = np.zeros(-(-len(x) // frame) * frame)
    padded[: len(x)] = _as_float(x)
    power = (padded.reshape(-1, frame) ** 2).mean(axis=1)
    if len(power) == 0 or power.max() == 0.0:
        return x[:0]
    loud = np.flatnonzero(power >= power.max() * 10.0 ** (threshold_db / 10.0))
    keep = round(keep_s * rate)
    return x[max(0, loud[0] * frame - keep): min(len(x), (loud[-1] + 1) * frame + keep)]


def fade_edges(samples: np.ndarray, rate: int = 16000, *, fade_s: float = 0.008) -> np.ndarray:
    """A raised-cosine fade-in and fade-out of ``fade_s`` each (at most half the signal), so the
    first and last samples are exactly 0. Same dtype out as in."""
    x = np.asarray(samples)
    n = min(round(fade_s * rate), len(x) // 2)
    envelope = np.ones(len(x))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n, 1))
    envelope[:n] = ramp
    envelope[len(x) - n:] = ramp[::-1]
    faded = x * envelope
    return np.round(faded).astype(x.dtype) if np.issubdtype(x.dtype, np.integer) else faded.astype(x.dtype)


def _limiter_gain(peaks: np.ndarray, ceiling: float, rate: int) -> np.ndarray:
    """Per-sample gain <= 1 that keeps ``peaks`` (absolute values) at or below ``ceiling``:
    the least gain needed within +-h samples of each sample, smoothed by a window no wider
    than that, so each over-ceiling sample still gets at least the cut it needs."""
    h = max(1, round(_LIMITER_HALF_S * rate))
    width = 2 * h + 1
    held = np.pad(np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12)), h, constant_values=1.0)
    span = 1  # held[i] becomes the least of `span` samples from i, doubling while it fits
    while 2 * span <= width:
        held = np.minimum(held[:-span], held[span:])
        span *= 2
    held = np.minimum(held[: len(peaks)], held[width - span: width - span + len(peaks)])
    smooth = np.pad(held, h, mode="edge")
    for _ in range(2):  # two moving averages of h + 1 samples: a triangular window 2h + 1 wide
        total = np.concatenate(([0.0], np.cumsum(smooth)))
        smooth = (total[h + 1:] - total[: -h - 1]) / (h + 1)
    return smooth


def normalise(samples: np.ndarray, rate: int = 16000, *, target_lufs: float = TARGET_LUFS,
              peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """int16 samples at ``target_lufs``, peaks limited to ``peak_dbfs`` (see the module notes).
    Silence stays silence."""
    y = _as_float(samples)
    loudness = integrated_loudness(y, rate)
    if not np.isfinite(loudness):
        return np.zeros(len(y), dtype=np.int16)
    ceiling = 10.0 ** (peak_dbfs / 20.0)
    for _ in range(_NORMALISE_PASSES):  # limiting lowers the loudness a little: make it up
        y = y * 10.0 ** ((target_lufs - loudness) / 20.0)
        if np.max(np.abs(y)) <= ceiling:
            break
        gain = _limiter_gain(np.abs(y), ceiling, rate)
        log.debug("loudness: peak limiter cut up to %.1f dB", -20.0 * np.log10(gain.min()))
        y *= gain
        loudness = integrated_loudness(y, rate)
        if target_lufs - loudness < 0.02:
            break
    # Truncation towards zero: rounding could lift a sample at the ceiling above it.
    return np.clip(np.trunc(y * 32768.0), -32768, 32767).astype(np.int16)


def finish_sentence(samples: np.ndarray, rate: int = 16000, *, target_lufs: float = TARGET_LUFS,
                    pause_s: float = 0.0) -> np.ndarray:
    """A synthesised sentence ready to play: silence trimmed, normalised, edges faded (int16),
    then ``pause_s`` of digital silence after it (one pause for every engine, instead of
    whatever each leaves at its end)."""
    trimmed = trim_silence(samples, rate)
    if len(trimmed) == 0:
        return np.zeros(0, dtype=np.int16)
    out = fade_edges(normalise(trimmed, rate, target_lufs=target_lufs), rate)
    return np.concatenate([out, np.zeros(int(round(pause_s * rate)), dtype=np.int16)])
