"""Acoustic echo cancellation: take the skill's own voice out of what the microphone hears.

The skill knows exactly what its loudspeaker played, so the echo in the microphone signal
is that reference passed through the room (a delay and a decaying tail). A partitioned-
block frequency-domain adaptive filter (normalised LMS, overlap-save) learns that path and
subtracts its estimate; what is left is the user. Without it, a user saying "pause" while
the skill talks is buried in one long utterance of the skill's own words.

- Blocks are ``block`` samples (10 ms at 16 kHz, the session's frame); the filter covers
  ``partitions`` blocks of echo tail (160 ms by default).
- Double talk (the user speaking over the skill) would teach the filter the user's voice.
  Two filters share the reference: a background one that learns, and a foreground one
  whose estimate is subtracted. Once the filter has converged (it typically leaves the echo
  20 dB down or more: ``converged``), the background's step shrinks by
  the square of the ratio of the foreground's echo estimate to the loudest recent error
  (held about 100 ms): an error louder than the echo the filter predicts is someone else.
  The foreground takes the background's taps only outside double talk, when the background
  leaves less behind by more than the two estimates differ; a background that leaves far
  more than the microphone had (it learned the user) starts again from the foreground.
  Double talk is judged against the predicted echo, not the loudspeaker's level: a Geigel
  detector (microphone louder than 0.6 of the reference) took a loudspeaker's echo that was
  nearly as loud as the samples played for the user all the time, and froze the filter.
- Before the filter has converged, its step is not slowed (a filter far from the room
  leaves more than its estimate whatever happens), but once it has explained 0.3 s of echo
  the foreground takes no taps from a block that leaves 6 dB more than it typically does:
  someone is talking there, and the background has just learned them.
- A room that really changed looks like double talk to that rule. ``relearn`` lifts it
  until the filter explains the echo again; ``AlignedEchoCanceller`` calls it when the echo
  moved on the tape and the microphone holds the echo alone.
- Where the filter explains a block (10 dB or more taken out, and no more than 15 dB above
  what it typically leaves), only the skill was talking, and the residual is damped a
  further 40 dB (PocketSphinx normalises loudness away: live, it made words of a residual
  30-40 dB down). A block with only 10 dB gone where the filter usually takes 50 dB holds
  someone else: damping it took the first consonant of a user's "pause" ("us", "was").
- When the loudspeaker has been silent for longer than the tail, blocks pass untouched
  and cost nothing.

No I/O, no clock: the caller pairs each microphone block with the reference samples
played at the same instant.

One module on purpose: both cancellers share the reference tape and the block alignment
that pairs microphone and loudspeaker samples.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol

import numpy as np

log = logging.getLogger(__name__)

EXPLAINED = 0.1  # residual/microphone energy below which a block is taken as echo alone
# The filter has learned the room once it has explained this many blocks of the skill's
# speech (0.3 s of them): before that, what it lets through is no evidence of anything.
LEARNED_BLOCKS = 30
# The foreground takes the background's taps when the background leaves less behind by more
# than this share of how far apart their estimates are (squared, smoothed); it gives them back
# when the background leaves more by BACKTRACK_SPREAD of it.
ADOPT_SPREAD = 0.5
BACKTRACK_SPREAD = 4.0
LEFTOVER_SPREAD_DB = 12.0  # a block is damped up to this far above what the filter typically leaves
LEARNING_SPREAD_DB = 6.0  # before it has converged, the foreground takes no taps from a block this far above it
DOUBLE_TALK_RELEASE = 0.9  # per block: the loudest recent error fades over about 100 ms
RELEARN_BLOCKS = 500  # at most 5 s at full speed after the echo path changed
# The microphone's last 0.6 s correlates with the tape at least this fraction of what the echo
# alone does: no one is talking over it (a user's word there took the loopback's 0.99 to 0.6-0.7).
RELEARN_CORRELATION = 0.85
# The echo the filter predicts is not in the microphone when the microphone's projection on the
# estimate is below this share of it (live: the input reopened on a microphone that hears no
# loudspeaker, after the filter had learned the loudspeaker's monitor at full level).
ABSENT_SHARE = 0.25
FORGET_BLOCKS = 30  # not found over this many blocks of the skill's speech (0.3 s): start over
CONVERGED_DB = -20.0  # what the filter typically leaves of a block of echo once it knows the room
# A microphone that hears no loudspeaker, in noise: an adaptive filter fed noise the reference does
# not explain still learns weights, and a snore's brown noise, slow to change, is partly
# predictable from the reference's low frequencies, so the subtraction even left less than was
# heard there while it added the skill's voice above them, 4 dB under the snore on average (stop
# 42, a live soak: PocketSphinx made commands and red flags of it, the routine stopped). Where the
# microphone's projection on the estimate above 500 Hz (160-sample blocks: 100 Hz a bin) stays
# under this share of the estimate over about a second of the skill's speech (smoothed by
# PRESENT_SMOOTHING a block), the echo is not there and the microphone passes untouched. With the
# echo there the share is about 1, with or without a voice over it.
PRESENT_SHARE = 0.25
PRESENT_FROM_BIN = 5
PRESENT_SMOOTHING = 0.01
REFERENCE_FLOOR = 32.0  # int16 units (-60 dBFS): the quietest reference the filter step is scaled to
# The output tape (``OutputTape``) across an underrun: the blocks after one reported in which its
# jump may show, how far off the stamps' line a block must be to move the tape (the stamps jitter
# by 0.2 ms at most through PulseAudio, measured; an aligner offset off by a few samples is followed
# anyway), and how closely two blocks in a row must agree.
UNDERRUN_WATCH_BLOCKS = 8
UNDERRUN_TOLERANCE_S = 0.002
UNDERRUN_AGREE_S = 0.001
LINE_FOLLOW = 0.05  # the line follows the stamps by this share of their distance per block
LINE_RESET_BLOCKS = 10  # blocks off the line in a row with no underrun: the stamps moved, the audio did not
# After the tape moved: how far from the old offset, and over how much microphone audio since the
# move, the aligner looks for the echo again at once (``AlignedEchoCanceller._refine``).
FINE_SEARCH_S = 0.005
FINE_WINDOW_S = 0.25
REFINE_RETRY_BLOCKS = 3


class EchoCanceller:
    def __init__(self, block: int = 160, partitions: int = 16, step: float = 0.5,
                 power_floor: float = 1e-6, suppress: float = 0.01) -> None:
        if block <= 0 or partitions <= 0:
            raise ValueError("block and partitions must be positive")
        self.block = block
        self.partitions = partitions
        self.step = step
        self.power_floor = power_floor
        self.suppress = suppress
        bins = block + 1
        self._w = np.zeros((partitions, bins), dtype=np.complex128)  # background filter (always learning)
        self._wf = np.zeros((partitions, bins), dtype=np.complex128)  # foreground filter (the one used)
        self._x = np.zeros((partitions, bins), dtype=np.complex128)  # recent reference spectra
        self._prev_ref = np.zeros(block)
        self._power = np.full(bins, power_floor)
        self._ref_peaks = np.zeros(partitions)  # peak |reference| of each block in the tail
        # Smoothed energies of the microphone, the foreground's and the background's errors, and
        # the difference of their two echo estimates.
        self._energy = np.zeros(4)
        self._gain = 0.0  # smoothed: how much less the background leaves than the foreground
        self._spread = 0.0  # smoothed: how far apart the two estimates are (the gain's yardstick)
        self._loud_error = 0.0  # the loudest recent foreground error, released slowly (double talk)
        self._relearn = 0  # blocks left of learning at full speed (``relearn``)
        self._started_from = 0  # explained blocks when the filter last started over or relearned
        self._leftover_db = 10.0 * np.log10(EXPLAINED)  # what the filter typically leaves of a block of echo
        self.double_talk_blocks = 0  # blocks with more in them than the echo (the user, or a new room)
        self.explained_blocks = 0  # blocks of the skill's speech the filter took out (10 dB or more)
        self.adoptions = 0
        self.resets = 0  # times the filter started over (``_forget``)
        self._match = np.zeros(2)  # smoothed: the microphone along the echo estimate, the estimate's energy
        self._absent = 0  # blocks of the skill's speech since the estimate was last found in the microphone
        self._present = np.zeros(2)  # smoothed, above PRESENT_FROM_BIN: the microphone along the estimate, its energy

    @property
    def learned(self) -> bool:
        """Whether the filter has explained enough of the skill's speech to tell it from the user."""
        return self.explained_blocks >= LEARNED_BLOCKS

    def _forget(self) -> None:
        """Start over: no room learned (explained blocks so far still count for ``learned``)."""
        self._w[:] = 0.0
        self._wf[:] = 0.0
        self._energy[:] = 0.0
        self._gain = self._spread = self._loud_error = 0.0
        self._relearn = self._absent = 0
        self._match[:] = 0.0
        self._leftover_db = 10.0 * np.log10(EXPLAINED)
        self._started_from = self.explained_blocks
        self.resets += 1
        log.info("echo canceller: the echo it learned is gone from the microphone; learning the room again")

    @property
    def _knows_room(self) -> bool:
        """Whether the filter has explained enough blocks since it last started over or was told
        the room changed for its typical leftover to say what is echo and what is not."""
        return self.explained_blocks - self._started_from >= LEARNED_BLOCKS

    @property
    def converged(self) -> bool:
        """Whether the filter typically takes the echo CONVERGED_DB down or more: only then is an
        error louder than the echo it predicts someone else, not the room it has yet to learn.
        (Judged from ``learned`` alone, 0.3 s of speech explained by 10 dB, the control slowed a
        filter still far from the room, and a CI run's skill obeyed its own first words.)"""
        return self.learned and self._leftover_db < CONVERGED_DB

    def relearn(self, blocks: int = RELEARN_BLOCKS) -> None:
        """Learn at full speed for up to ``blocks`` blocks: the caller has seen the echo path
        change with the echo alone in the microphone, where an error louder than the echo the
        filter predicts is the new room, not someone talking."""
        self._relearn = blocks
        self._started_from = self.explained_blocks
        self._loud_error = 0.0
        # What it left of the old room says nothing of the new one: not converged until it
        # takes the new echo as far down (else the slow double-talk pace resumed after 0.3 s).
        self._leftover_db = max(self._leftover_db, 10.0 * np.log10(EXPLAINED))

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
        echoes = np.fft.irfft(np.stack([(self._x * self._wf).sum(axis=0), (self._x * self._w).sum(axis=0)]),
                              axis=1)[:, self.block:]
        error = mic - echoes[0]
        background_error = mic - echoes[1]
        apart = echoes[0] - echoes[1]
        energy = np.array([mic @ mic, error @ error, background_error @ background_error, apart @ apart])
        self._energy = 0.6 * self._energy + 0.4 * energy
        heard, left, left_background, differ = self._energy
        # Is the echo the foreground predicts in the microphone at all? Its share in what was heard
        # (the microphone's projection on the estimate: about 1 with the echo there, with or
        # without someone talking over it; about 0 with the echo gone).
        estimate = echoes[0] @ echoes[0]
        self._match = 0.8 * self._match + 0.2 * np.array([mic @ echoes[0], estimate])
        along, predicted = self._match
        # (Someone talking over the echo scatters the projection; the subtraction then still
        # leaves less than was heard, which an absent echo's never does.)
        if predicted > self.block * REFERENCE_FLOOR ** 2 and along < ABSENT_SHARE * predicted and left > 2.0 * heard:
            # Not there: subtracting the estimate would add the skill's own voice to the input, so
            # the block passes as heard. Kept up while the loudspeaker plays, the echo the filter
            # learned is gone (the microphone was replaced or reopened, the loudspeaker moved
            # away): start again from nothing.
            if peak > 4 * REFERENCE_FLOOR:
                self._absent += 1
                if self._absent >= FORGET_BLOCKS:
                    self._forget()
            return mic
        if along > 0.5 * predicted:
            self._absent = 0
        gain = left - left_background
        self._gain = 0.6 * self._gain + 0.4 * gain
        self._spread = 0.36 * self._spread + 0.16 * left * differ
        # Double talk: once the filter has converged, an error louder than the echo the foreground
        # predicts is someone else's voice; learning from it would teach the filter that voice.
        # The step shrinks by the square of the ratio, and the foreground takes no taps.
        if self._relearn > 0:
            # Until the filter explains the echo again (as many blocks as it took to learn the room).
            self._relearn = 0 if self._knows_room else self._relearn - 1
            scale = 1.0
        else:
            self._loud_error = max(energy[1], DOUBLE_TALK_RELEASE * self._loud_error)
            scale = 1.0 if not self.converged else min(1.0, float(estimate) / (self._loud_error + 1.0)) ** 2
        self._adapt(spectrum, background_error, scale)
        # Nor while the foreground leaves far more than it typically does: the start of a user's
        # word, still quieter than the echo, passes the step control, and the background learns
        # it (live: the foreground took it over mid-"pause" and let the echo through, 20-30 dB
        # instead of 50-60 dB taken out, for seconds after the word; the rest was heard as a red flag).
        # Before it has converged the step is not slowed for anyone, so the background learns
        # every word said over the skill's first sentences: once the filter has explained 0.3 s
        # of the echo, a block more than LEARNING_SPREAD_DB above its typical leftover gives the
        # foreground nothing either (taking the taps there brought the echo back at full level
        # during the word and for a second after it, 2-4 s into the first sentences: test_aec).
        spread = LEFTOVER_SPREAD_DB if self.converged else LEARNING_SPREAD_DB
        usual = energy[1] < 10.0 ** ((self._leftover_db + spread) / 10.0) * (energy[0] + 1e-9)
        if (scale >= 1.0 and (usual or not self._knows_room) and self._gain > 0
                and self._gain ** 2 > ADOPT_SPREAD * self._spread and left_background < heard):
            self._wf = self._w.copy()  # the background explains the echo better: use it
            self.adoptions += 1
        elif -gain * abs(gain) > BACKTRACK_SPREAD * left * differ and left < heard:
            self._w = self._wf.copy()  # the background learned the user's voice: start it again from the good one
        if left > 0.5 * heard:
            self.double_talk_blocks += 1
        if peak > 4 * REFERENCE_FLOOR:
            mic_high = np.fft.rfft(mic)[PRESENT_FROM_BIN:]
            estimate_high = np.fft.rfft(echoes[0])[PRESENT_FROM_BIN:]
            self._present = (1.0 - PRESENT_SMOOTHING) * self._present + PRESENT_SMOOTHING * np.array(
                [np.vdot(estimate_high, mic_high).real, np.vdot(estimate_high, estimate_high).real])
        if self._present[1] > 0.0 and self._present[0] < PRESENT_SHARE * self._present[1]:
            # Over the last second of the skill's speech, the echo the filter predicts was not in
            # the microphone above PRESENT_FROM_BIN: the microphone does not hear the loudspeaker,
            # and what the filter would subtract is the skill's voice added to the input. The
            # block passes as heard (see PRESENT_SHARE).
            return mic
        # Residual suppression: where the filter explains the block (what is left is at
        # least 10 dB below what came in), only the skill was talking: damp the rest.
        if energy[1] < EXPLAINED * energy[0]:
            left_db = 10.0 * np.log10((energy[1] + 1e-9) / (energy[0] + 1e-9))
            if peak > 4 * REFERENCE_FLOOR:
                self.explained_blocks += 1
                self._leftover_db += 0.05 * (left_db - self._leftover_db)
            if left_db < self._leftover_db + LEFTOVER_SPREAD_DB:
                return error * self.suppress
        return error

    def _adapt(self, spectrum: np.ndarray, error: np.ndarray, scale: float = 1.0) -> None:
        # Normalise by the reference's power over the whole filter (every partition), not
        # the newest block alone: in the gaps between words the newest block is silent
        # while older ones still drive the echo, and a step scaled to that silence made
        # the filter blow up on live audio. The floor (a -60 dBFS reference) keeps the
        # step sane when the reference is quiet. The estimate rises at once and falls slowly:
        # smoothed both ways, it lagged each word's onset and the first blocks of every word took
        # steps many times too long (the skill's first sentence still leaked at 2.5 s; with the
        # fast rise it is 25 dB down by 2 s on a loopback, see docs/measurements.md).
        power = (np.abs(self._x) ** 2).mean(axis=0) / (2 * self.block)
        self._power = np.maximum(0.9 * self._power + 0.1 * power, power)
        err = np.fft.rfft(np.concatenate([np.zeros(self.block), error]))
        floor = max(self.power_floor, REFERENCE_FLOOR ** 2)
        gain = scale * self.step / ((self._power + floor) * 2 * self.block * self.partitions)
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


def phase_transform_correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cross-correlation of ``x`` and ``y`` weighted by the phase transform (every frequency
    counts alike, so a voice's own spectrum does not smear the peak): entry ``k`` is how well
    ``x`` shifted by ``k`` samples lines up with ``y`` (negative ``k`` at the end, circularly)."""
    size = 1 << int(np.ceil(np.log2(len(x) + len(y))))
    cross = np.conj(np.fft.rfft(y, size)) * np.fft.rfft(x, size)
    return np.fft.irfft(cross / (np.abs(cross) + 1e-9), size)


def best_shift(x: np.ndarray, y: np.ndarray, shifts: int) -> tuple[int, float]:
    """The shift ``k`` (0 to ``shifts - 1``) at which ``x[k:k + len(y)]`` lines up best with ``y``
    by ``phase_transform_correlation``, and their normalised correlation there."""
    k = int(np.argmax(phase_transform_correlation(x, y)[:shifts]))
    seg = x[k:k + len(y)]
    return k, float(y @ seg) / (np.sqrt(float(y @ y) * float(seg @ seg)) + 1e-9)


class EchoCancelling(Protocol):
    """What a session asks of an echo canceller."""

    def process_at(self, mic: np.ndarray, mic_index: int, clock_t: float | None) -> np.ndarray:
        """One block of microphone samples (stream sample ``mic_index``, heard at clock time
        ``clock_t`` if known) less the loudspeaker's echo; ``mic`` itself if untouched."""
        ...

    @property
    def learned(self) -> bool:
        """Whether it has learned the room well enough to take the skill's voice out."""
        ...

    @property
    def last_reference(self) -> np.ndarray | None:
        """The reference the last ``process_at`` lined up with its block (None: nothing was
        playing), for the second opinion of ``echocheck``."""
        ...


class ReferencedEchoCanceller:
    """An ``EchoCanceller`` whose reference is what a speaker says it played at a clock time
    (speech on the virtual clock, whose samples the speaker still holds). The same
    ``process_at`` as ``AlignedEchoCanceller``, so a session treats both alike."""

    def __init__(self, reference: Callable[[float, int], "np.ndarray | None"],
                 canceller: EchoCanceller | None = None) -> None:
        self.reference = reference
        self.canceller = canceller or EchoCanceller()
        self.last_reference: np.ndarray | None = None

    @property
    def learned(self) -> bool:
        return self.canceller.learned

    def process_at(self, mic: np.ndarray, mic_index: int, clock_t: float | None) -> np.ndarray:
        """``mic`` less the echo of what was played at ``clock_t``; ``mic`` itself when there
        is nothing to take out (a block of another size, silence before any speech)."""
        self.last_reference = None
        if len(mic) != self.canceller.block:
            return mic
        ref = self.reference(clock_t, len(mic)) if clock_t is not None else None
        self.last_reference = ref
        if ref is None and not self.canceller.active:
            return mic
        return self.canceller.process(mic, ref)


# ---- live audio: what the loudspeaker played, and where its echo is in the microphone

class OutputTape:
    """The last few seconds the output stream played, by sample count since it opened.

    The output callback writes every block (silence too) with the clock time its first
    sample is heard; readers ask for samples by index. Sample counts, unlike the two
    devices' time stamps (which jitter by about 10 ms through PulseAudio), advance
    exactly with the audio, so the distance between a microphone sample and the output
    sample it echoes stays put until a device drops or inserts audio.

    An output underrun does exactly that: the device plays silence the stream never wrote
    (or, on a machine loaded enough, drops blocks it was given), and every later echo is
    that much later (earlier) than the sample count says. The canceller's aligner finds the
    echo again by its content, but only after half a second or more of letting the skill's
    own voice through (a loaded CI run paused itself on it: docs/faults.md). The time stamps
    say at once how far the audio moved: measured through ALSA's pulse plugin with the
    callback held up for 0.1 to 0.5 s, the block after the underrun is stamped later than
    the blocks before it foretold by the silence the sink recorded, to within 0.5 ms idle and
    10 to 32 samples (2 ms) beside a loaded machine (the first stamp after the stall can be 0.1 s off; the
    next ones agree). So after a block reported an underrun, two blocks in a row stamped
    equally far off the line the earlier blocks kept (``UNDERRUN_TOLERANCE_S`` or more) move
    the tape by that much: silence put in, or the samples never played overwritten. Without a
    reported underrun no stamp moves the tape (after a start-up stall the stamps jump by a
    second with nothing lost). The few samples the stamps may be off are the aligner's
    (``AlignedEchoCanceller._refine``).
    """

    def __init__(self, rate: int, seconds: float = 4.0) -> None:
        self.rate = rate
        self._size = 1 << int(np.ceil(np.log2(max(1, int(rate * seconds)))))
        self._ring = np.zeros(self._size, dtype=np.float32)
        self._lock = threading.Lock()
        self.end = 0  # samples written so far
        self._anchor: tuple[int, float] | None = None  # (index, clock time it is heard)
        self._line: tuple[int, float] | None = None  # (index, clock time): where the stamps say samples are heard
        self._off_line = 0  # blocks in a row stamped off the line with no underrun reported
        self._watch = 0  # blocks left in which an underrun's jump may show
        self._run: list[tuple[int, float]] = []  # (index, seconds off the line) of the blocks since the underrun
        self.moves = 0  # times an underrun moved the tape
        self.moved_s = 0.0  # by how much in all (silence put in, less audio dropped)
        self.moved_at = 0  # the sample from which the audio was moved, the last time

    def write(self, samples: np.ndarray, heard_t: float, underrun: bool = False) -> None:
        """One block, its first sample heard at clock time ``heard_t``; ``underrun`` when the
        device reported that it ran out of audio before it."""
        with self._lock:
            if underrun:
                if not self._watch:
                    self._run = []
                self._watch = UNDERRUN_WATCH_BLOCKS
            self._follow(heard_t)
            self._put(samples)
            self._anchor = (self.end - len(samples), heard_t)

    def _follow(self, heard_t: float) -> None:
        """Keep the line the stamps draw, and move the tape where an underrun moved the audio."""
        if self._line is None:
            self._line = (self.end, heard_t)
            return
        index, t = self._line
        off = heard_t - t - (self.end - index) / self.rate
        if self._watch:
            self._watch -= 1
            if self._run and abs(off - self._run[-1][1]) <= UNDERRUN_AGREE_S:
                self._run.append((self.end, off))
            else:
                self._run = [(self.end, off)]
            if len(self._run) >= 2 and abs(off) >= UNDERRUN_TOLERANCE_S:
                self._move(self._run[0][0], int(round(off * self.rate)))
                self._line = (self.end, heard_t)
                self._watch = 0
            return
        if abs(off) < UNDERRUN_TOLERANCE_S:
            self._line = (index, t + LINE_FOLLOW * off)  # the device's clock drifts from the system's
            self._off_line = 0
            return
        self._off_line += 1
        if self._off_line >= LINE_RESET_BLOCKS:  # the stamps moved and stayed, with nothing lost
            self._line = (self.end, heard_t)
            self._off_line = 0

    def _move(self, at: int, by: int) -> None:
        """The audio from sample ``at`` on was heard ``by`` samples later (earlier when negative)."""
        since = self._take(at, self.end - at)
        self.end = at
        if by > 0:
            self._put(np.zeros(by, dtype=np.float32))
        else:
            self.end = max(0, at + by)  # the samples before ``at`` that were never played
        self._put(since)
        self.moves += 1
        self.moved_s += by / self.rate
        self.moved_at = self.end - len(since)  # (no log: this runs in the audio callback)

    def _put(self, samples: np.ndarray) -> None:
        n = len(samples)
        if n > self._size:
            samples, self.end = samples[-self._size:], self.end + n - self._size
            n = self._size
        start = self.end % self._size
        first = min(n, self._size - start)
        self._ring[start:start + first] = samples[:first]
        self._ring[:n - first] = samples[first:n]
        self.end += n

    def _take(self, start: int, n: int) -> np.ndarray:
        idx = np.arange(start, start + n) % self._size
        return self._ring[idx].copy()

    def index_at(self, t: float) -> int | None:
        """The output sample heard at clock time ``t`` (from the latest block's stamp)."""
        with self._lock:
            if self._anchor is None:
                return None
            index, heard_t = self._anchor
        return index + int(round((t - heard_t) * self.rate))

    def read(self, start: int, n: int) -> np.ndarray:
        """Samples ``start`` to ``start + n``; zeros where nothing (still) on the tape was played."""
        out = np.zeros(n, dtype=np.float64)
        with self._lock:
            lo, hi = max(start, self.end - self._size, 0), min(start + n, self.end)
            if hi <= lo:
                return out
            idx = np.arange(lo, hi) % self._size
            out[lo - start:hi - start] = self._ring[idx]
        return out


class AlignedEchoCanceller:
    """An ``EchoCanceller`` fed from an ``OutputTape``, with the echo found by its content.

    The echo of output sample ``o`` reaches the microphone at sample ``o - offset``. A
    first guess comes from the two streams' clock stamps; then, every ``every_s`` while
    the loudspeaker plays, the last ``window_s`` of microphone audio is cross-correlated
    (phase transform, so the voice's own spectrum does not smear the peak) with the tape
    around that guess, and a peak that two estimates in a row agree on becomes the offset.
    The reference is read ``lead_s`` ahead of the echo, so the echo sits that far into
    the filter's taps and an offset a little off either way is still inside them. When
    the offset moves (a device's buffering changed: PulseAudio does that when another
    stream starts on a device), the reference is moved with it and the filter keeps what
    it learned: the room has not changed, only where its echo is on the tape. An output
    underrun the device reported is on the tape already (``OutputTape``); after one, the echo
    is looked for within a few samples at once. When it has moved further than ``search_s``
    (lost input drops samples; an underrun nobody reported), the echo is looked for where the
    clocks' guess puts it. (Restarting
    the filter instead cost seconds of echo each time, and it moved just when a user's
    player started on the test room's microphone.)
    """

    def __init__(self, tape: OutputTape, canceller: EchoCanceller | None = None, *, lead_s: float = 0.02,
                 window_s: float = 0.6, search_s: float = 0.25, every_s: float = 0.15,
                 min_correlation: float = 0.3) -> None:
        self.tape = tape
        self.canceller = canceller or EchoCanceller()
        rate = tape.rate
        self.lead = int(round(lead_s * rate))
        self.window = int(round(window_s * rate))
        self.search = int(round(search_s * rate))
        self.every = max(1, int(round(every_s * rate / self.canceller.block)))
        self.min_correlation = min_correlation
        self.tolerance = 1  # samples: a fraction of one the filter follows by itself
        self.offset: int | None = None  # output index minus microphone index of the echo
        self._guess: int | None = None
        self._candidate: int | None = None
        self._mic = np.zeros(self.window)
        self._mic_end: int | None = None  # microphone index after the last sample kept
        self._blocks = 0
        self.estimates = 0  # offsets found by correlation (for tests and logs)
        self._in_energy = self._out_energy = 0.0
        self._stat_blocks = 0
        self.changes = 0
        self.last_reference: np.ndarray | None = None
        self._relearn_pending = False
        self._echo_correlation = 1.0  # the correlation the echo alone has with the tape (a room's tail lowers it)
        self.fine = int(round(FINE_SEARCH_S * rate))
        self.fine_window = int(round(FINE_WINDOW_S * rate))
        self._tape_moves = 0  # the tape's moves seen so far
        self._refine_at: int | None = None  # microphone index by which a moved tape's echo is looked for again
        self._refine_until = 0  # and the last index at which that is tried

    @property
    def learned(self) -> bool:
        return self.canceller.learned

    def process_at(self, mic: np.ndarray, mic_index: int, clock_t: float | None) -> np.ndarray:
        """One block of microphone samples starting at stream sample ``mic_index`` (heard
        at clock time ``clock_t``, if known), less the echo of the loudspeaker."""
        mic = np.asarray(mic, dtype=np.float64)
        self.last_reference = None
        self._remember(mic, mic_index)
        if clock_t is not None:
            out_index = self.tape.index_at(clock_t)
            if out_index is not None:
                self._guess = out_index - mic_index
        if self.offset is None and self._guess is None:
            return mic
        self._blocks += 1
        if self.tape.moves != self._tape_moves:
            self._tape_moves = self.tape.moves
            if self.offset is not None:  # once the moved audio's echo fills the short window
                self._refine_at = self.tape.moved_at - self.offset + self.fine_window
                self._refine_until = self._refine_at + self.window
        if self._refine_at is not None and mic_index + len(mic) >= self._refine_at:
            self._refine_at = None
            self._refine(mic_index + len(mic))
        elif self._blocks % self.every == 0:
            self._estimate(mic_index + len(mic))
        offset = self.offset if self.offset is not None else self._guess
        ref = self.tape.read(mic_index + offset + self.lead, len(mic))
        self.last_reference = ref if ref.any() else None
        if self.last_reference is None and not self.canceller.active:
            return mic
        out = self.canceller.process(mic, self.last_reference)
        self._in_energy += float(mic @ mic)
        self._out_energy += float(out @ out)
        self._stat_blocks += 1
        if self._stat_blocks >= 200:
            log.debug("echo canceller: %.1f dB taken out over the last %d blocks", 10 * np.log10(
                (self._in_energy + 1.0) / (self._out_energy + 1.0)), self._stat_blocks)
            self._in_energy = self._out_energy = 0.0
            self._stat_blocks = 0
        return out

    def _remember(self, mic: np.ndarray, mic_index: int) -> None:
        n = len(mic)
        if self._mic_end is not None and mic_index != self._mic_end:
            self._mic[:] = 0.0  # a gap in the input: what came before no longer lines up
        self._mic = np.concatenate([self._mic[n:], mic])
        self._mic_end = mic_index + n

    def _search(self, centre: int, mic_end: int, window: int | None = None,
                search: int | None = None) -> tuple[int, float] | None:
        """The offset within ``search`` of ``centre`` at which the last ``window`` of the
        microphone best matches the tape, and that match's correlation; None where the tape is
        silent there or nothing matches well enough."""
        window = self.window if window is None else window
        search = self.search if search is None else search
        y = self._mic[-window:]
        start = mic_end - window + centre - search
        x = self.tape.read(start, window + 2 * search)
        if np.abs(x).max(initial=0.0) < 4 * REFERENCE_FLOOR or not y.any():
            return None
        k, ncc = best_shift(x, y, 2 * search + 1)
        if ncc < self.min_correlation:
            return None
        return centre - search + k, ncc  # output index minus microphone index

    def _refine(self, mic_end: int) -> None:
        """After the tape moved across an underrun: the echo looked for within a few samples of
        where it was, over the short window since the move, and taken at once where the echo
        alone fills it (the clock stamps that moved the tape were seen up to 32 samples off, and
        the filter cancels nothing of speech 5 samples off; waiting for two full-window
        estimates, it forgot the room first)."""
        hit = self._search(self.offset, mic_end, self.fine_window, self.fine)
        if hit is None or hit[1] < RELEARN_CORRELATION * self._echo_correlation:
            if mic_end < self._refine_until:  # silence, or someone talking: a little later
                self._refine_at = mic_end + REFINE_RETRY_BLOCKS * self.canceller.block
            return
        found, ncc = hit
        if abs(found - self.offset) > self.tolerance:
            log.debug("echo %+d samples off after the tape moved (correlation %.2f)", found - self.offset, ncc)
            self.offset = found
            self.changes += 1
        self._candidate = None

    def _estimate(self, mic_end: int) -> None:
        centre = self.offset if self.offset is not None else self._guess
        if centre is None:
            return
        hit = self._search(centre, mic_end)
        if hit is None and self.offset is not None and self._guess is not None \
                and abs(self._guess - self.offset) > self.search // 2:
            # Not where it was, and the clocks say it moved further than the search reaches: an
            # underrun (the device played silence the tape never had) or lost input. Look where
            # the clocks put it (the clocks jitter by about 10 ms, far less than this).
            hit = self._search(self._guess, mic_end)
        if hit is None:
            return
        found, ncc = hit
        self.estimates += 1
        if self.offset is not None and abs(found - self.offset) <= self.tolerance:
            self._candidate = None  # a small drift: the filter follows it
            if self._relearn_pending and ncc >= RELEARN_CORRELATION * self._echo_correlation:
                self._relearn_pending = False
                self.canceller.relearn()
            self._echo_correlation += 0.2 * (ncc - self._echo_correlation)
            return
        if self._candidate is not None and abs(found - self._candidate) <= self.tolerance:
            log.info("echo found %.1f ms from where it was looked for (correlation %.2f); was %s", 1000 * (found - centre)
                     / self.tape.rate, ncc, "unknown" if self.offset is None else f"{self.offset - found:+d} samples off")
            moved = self.offset is not None
            self.offset = found
            self._candidate = None
            self.changes += 1
            # The room may have changed with its delay (a resampler's phase, a new buffer): once
            # the echo alone fills the window, the filter learns it at full speed.
            self._relearn_pending = moved
            if not moved:
                self._echo_correlation = ncc
            elif ncc >= RELEARN_CORRELATION * self._echo_correlation:
                self._relearn_pending = False
                self.canceller.relearn()
            return
        self._candidate = found
