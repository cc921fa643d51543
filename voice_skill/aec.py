"""Acoustic echo cancellation: take the skill's own voice out of what the microphone hears.

The skill knows exactly what its loudspeaker played, so the echo in the microphone signal
is that reference passed through the room (a delay and a decaying tail). A partitioned-
block frequency-domain adaptive filter (normalised LMS, overlap-save) learns that path and
subtracts its estimate; what is left is the user. Without it, a user saying "pause" while
the skill talks is buried in one long utterance of the skill's own words.

- Blocks are ``block`` samples (10 ms at 16 kHz, the session's frame); the filter covers
  ``partitions`` blocks of echo tail (160 ms by default).
- Double talk (the user speaking over the skill) would teach the filter the user's voice;
  a Geigel detector freezes adaptation while the microphone is louder than the echo could
  be, and holds it frozen for a short while after.
- Where the filter explains a block (the residual is 10 dB or more below the microphone
  signal), or nothing louder than the echo has been heard for ``hold_blocks``, only the
  skill was talking, and the residual is damped a further 20 dB. Before the filter has
  converged (the first seconds of a session) the quiet start of a user's word can be
  damped with it: barge-in is weakest in the very first sentence.
- When the loudspeaker has been silent for longer than the tail, blocks pass untouched
  and cost nothing.

No I/O, no clock: the caller pairs each microphone block with the reference samples
played at the same instant.
"""

from __future__ import annotations

import numpy as np

EXPLAINED = 0.1  # residual/microphone energy below which a block is taken as echo alone
REFERENCE_FLOOR = 32.0  # int16 units (-60 dBFS): the quietest reference the filter step is scaled to


class EchoCanceller:
    def __init__(self, block: int = 160, partitions: int = 16, step: float = 0.5,
                 geigel: float = 0.6, hold_blocks: int = 20, power_floor: float = 1e-6,
                 suppress: float = 0.1) -> None:
        if block <= 0 or partitions <= 0:
            raise ValueError("block and partitions must be positive")
        self.block = block
        self.partitions = partitions
        self.step = step
        self.geigel = geigel
        self.hold_blocks = hold_blocks
        self.power_floor = power_floor
        self.suppress = suppress
        bins = block + 1
        self._w = np.zeros((partitions, bins), dtype=np.complex128)  # filter, per partition
        self._x = np.zeros((partitions, bins), dtype=np.complex128)  # recent reference spectra
        self._prev_ref = np.zeros(block)
        self._power = np.full(bins, power_floor)
        self._ref_peaks = np.zeros(partitions)  # peak |reference| of each block in the tail
        self._hold = 0
        self.double_talk_blocks = 0

    @property
    def active(self) -> bool:
        """Whether any reference is still within the echo tail."""
        return bool(self._ref_peaks.any())

    def process(self, mic: np.ndarray, ref: np.ndarray | None) -> np.ndarray:
        """One block of microphone samples (floats) less the estimated echo of ``ref``
        (the loudspeaker's samples over the same block; None for silence)."""
        mic = np.asarray(mic, dtype=np.float64)
        if len(mic) != self.block:
            raise ValueError(f"blocks are {self.block} samples, got {len(mic)}")
        ref = np.zeros(self.block) if ref is None else np.asarray(ref, dtype=np.float64)
        peak = float(np.abs(ref).max()) if len(ref) else 0.0
        if peak == 0.0 and not self.active:
            self._prev_ref = ref
            return mic
        self._ref_peaks = np.roll(self._ref_peaks, 1)
        self._ref_peaks[0] = peak
        spectrum = np.fft.rfft(np.concatenate([self._prev_ref, ref]))
        self._prev_ref = ref
        self._x = np.roll(self._x, 1, axis=0)
        self._x[0] = spectrum
        echo = np.fft.irfft((self._x * self._w).sum(axis=0))[self.block:]
        error = mic - echo
        louder_than_echo = np.abs(mic).max() > self.geigel * self._ref_peaks.max()
        if louder_than_echo:
            self._hold = self.hold_blocks  # the user is talking: do not learn their voice
        if self._hold > 0:
            self._hold -= 1
            self.double_talk_blocks += 1
        else:
            self._adapt(spectrum, error)
        # Residual suppression: where the filter explains the block (what is left is at
        # least 10 dB below what came in), or nothing louder than the echo has been heard
        # lately, only the skill was talking: damp the rest.
        if float(error @ error) < EXPLAINED * float(mic @ mic) or self._hold == 0:
            return error * self.suppress
        return error

    def _adapt(self, spectrum: np.ndarray, error: np.ndarray) -> None:
        # Normalise by the reference's power over the whole filter (every partition), not
        # the newest block alone: in the gaps between words the newest block is silent
        # while older ones still drive the echo, and a step scaled to that silence made
        # the filter blow up on live audio. The floor (a -60 dBFS reference) keeps the
        # step sane when the reference is quiet.
        self._power = 0.9 * self._power + 0.1 * (np.abs(self._x) ** 2).mean(axis=0) / (2 * self.block)
        err = np.fft.rfft(np.concatenate([np.zeros(self.block), error]))
        floor = max(self.power_floor, REFERENCE_FLOOR ** 2)
        gain = self.step / ((self._power + floor) * 2 * self.block * self.partitions)
        gradient = np.fft.irfft(np.conj(self._x) * err[None, :] * gain[None, :], axis=1)
        gradient[:, self.block:] = 0.0  # keep the filter causal and linear (overlap-save)
        self._w += np.fft.rfft(gradient, axis=1)


def simulated_room(seed: int = 0, delay_s: float = 0.012, decay_s: float = 0.03, length_s: float = 0.06,
                   rate: int = 16000) -> np.ndarray:
    """A small room's echo path for tests: a delay, then a decaying tail of reflections."""
    rng = np.random.default_rng(seed)
    n = int(length_s * rate)
    t = np.arange(n) / rate
    response = rng.standard_normal(n) * np.exp(-t / decay_s) * 0.3
    start = int(delay_s * rate)
    response[:start] = 0.0
    response[start] = 1.0
    return response / np.abs(response).sum() * 2.0
