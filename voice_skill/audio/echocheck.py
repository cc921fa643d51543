"""A second opinion on a word heard over the skill's own voice: could the loudspeaker have said it?

The echo canceller (``aec``) adapts as it goes. When it has not converged, or the room has
just changed, what it lets through of the skill's voice can come out of the recognizer as a
command ("Ten." heard as "done"), and the canceller's own output cannot tell that apart from
a user's word. This check needs no convergence: once a hypothesis is final, it fits the echo
path afresh to the few seconds around it, by least squares, in short-time Fourier bins with
a few frames of taps per bin (a sub-band filter, solved in one go rather than learned), and
asks how much of the microphone's energy within the hypothesis the loudspeaker's reference
cannot explain.

- The skill's own voice, however badly the adaptive filter did, is a filtered copy of the
  reference: the fit explains nearly all of it (measured: docs/measurements.md).
- A user's word is not in the reference: it stays, less only a share of about taps / frames
  that any fit takes out of a signal it cannot predict.

The echo may also have moved within those seconds: when the loudspeaker's stream underruns
(a loaded machine), the device plays silence the skill never wrote, and from then on the echo
arrives later than the reference says, until the canceller's aligner finds it again. A fit of
one delay to all the seconds then explains nothing after the jump, and the skill's own
"Breathe out" came through as "quit" (a loaded CI run). So the stretch is also fitted on its
own, with the delay looked for up to 0.5 s either way; the smaller of the two leftovers is
the answer. A user's word is in no delay of the reference, so it stays unexplained either way.

It costs a few FFTs of three seconds of audio per hypothesis heard over the skill's speech.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from voice_skill.audio.aec import best_shift, phase_transform_correlation

# 64 ms frames a quarter apart: with less overlap the bins leak into each other and a fit
# of a pure delay left -11 dB of a live loopback's echo (-30 dB with these; measured on
# recorded live runs, docs/measurements.md).
FRAME = 1024
HOP = 256
# Lags of the reference, in hops of 16 ms, the fit may use once the echo's bulk delay is
# found (``_bulk_delay``): a room's reverberation after it, a little slack before.
LAGS = range(-2, 5)
# Where to look for the echo's bulk delay, in samples of the reference before (positive) or
# after the microphone: the canceller's reference leads the echo by about 20 ms, and the echo
# may have moved since its offset was found (PulseAudio moves it by up to 10 ms).
SEARCH = (-1600, 3200)
# The stretch's own fit: this much audio either side of it, and where to look for its delay.
# An underrun delays the echo by what the device played in the gap (tens to hundreds of ms);
# lost input brings it earlier by as much.
LOCAL = 8000  # 0.5 s
SEARCH_MOVED = (-8000, 8000)
# The shortest piece fitted on its own: 0.4 s is some three frames per tap of the fit, which then
# cannot explain much of what is not the loudspeaker's (a fit as long as its taps explains anything).
MIN_PIECE = 6400
# Where the echo jumped (``_echo_jumps``): its delay found in 0.2-s windows 0.1 s apart, up to
# 0.5 s either way, where the reference played (above -50 dBFS) and the window's microphone follows
# the reference that closely at that delay (the echo alone: 0.97-1.0 on stop 31's live tape, about
# 0.35-0.6 through the simulated room's reverberation; a silent reference or a user's word over
# it: under 0.1); a change of more than 1 ms is a jump (on that tape: 62 ms across an underrun,
# back when the canceller moved, then 2.2 ms and back). In a reverberant room the delay found
# wanders now and then: a jump that is none only cuts the stretch into more pieces (at least
# ``MIN_PIECE`` long), and a user's word stays unexplained in every piece.
JUMP_WINDOW = 3200
JUMP_HOP = 1600
JUMP_SEARCH = 8000
JUMP_FLOOR = 100.0
JUMP_CLEAR = 0.3
JUMP_MIN = 16
MARGIN = 64  # the echo is put this far (4 ms) after its reference sample, inside the first tap
RIDGE = 1e-3  # relative to each bin's reference energy: silent bins fit nothing


def _frames(x: np.ndarray) -> np.ndarray:
    """Short-time spectra, one row per hop (a periodic Hann window, so hops sum flat)."""
    n = 1 + max(0, (len(x) - FRAME) // HOP)
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME)
    padded = np.concatenate([x, np.zeros(max(0, FRAME - len(x)))])
    return np.fft.rfft(padded[idx] * window, axis=1)


def _bulk_delay(mic: np.ndarray, ref: np.ndarray, search: tuple[int, int] = SEARCH) -> int:
    """The delay, in samples, at which ``mic`` best echoes ``ref``, within ``search``."""
    corr = phase_transform_correlation(mic, ref)
    lo, hi = search
    lags = np.arange(lo, hi + 1)
    return int(lags[np.argmax(corr[lags % len(corr)])])


def _shifted(x: np.ndarray, delay: int) -> np.ndarray:
    """``x`` delayed by ``delay`` samples (advanced when negative), zeros where nothing is known."""
    out = np.zeros_like(x)
    if delay >= 0:
        out[delay:] = x[:len(x) - delay]
    else:
        out[:delay] = x[-delay:]
    return out


def unexplained_db(mic: np.ndarray, ref: np.ndarray, start: int, end: int,
                   moves: Sequence[int] = ()) -> float | None:
    """How much of ``mic[start:end]`` (samples) a least-squares sub-band fit of ``ref``
    cannot explain, in dB of the microphone's energy there (0: none of it is the
    loudspeaker's; -20: a hundredth of it is not). ``ref`` is the reference sample for
    sample of ``mic`` (same length, the canceller's alignment). Fits are tried over all of
    ``mic``, over the stretch and ``LOCAL`` around it with its own delay (the echo may have
    moved), and, where the canceller moved its reference within that (``moves``: the samples
    where it did), over the pieces between the moves, each with its own delay; the smallest
    leftover is returned. None when the stretch is too short to judge or the loudspeaker
    played nothing around it.
    """
    mic = np.asarray(mic, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if len(mic) != len(ref) or len(mic) < 4 * FRAME or end - start < HOP:
        return None
    whole = _fit_leftover(mic, _shifted(ref, _bulk_delay(mic, ref) - MARGIN), start, end)
    if whole is None:
        return None
    lo, hi = max(0, start - LOCAL), min(len(mic), end + LOCAL)
    if hi - lo < 4 * FRAME:
        return whole
    best = whole
    local = _piece(mic, ref, lo, hi, start, end)
    if local is not None:
        best = min(best, _db(*local))
    # A reference moved mid-stretch fits no single delay: live, a sentence's first 0.35 s came
    # 2 ms late, the reference was moved onto it mid-word, and one fit left -4 dB of "If a
    # warm", heard as "go back". Each piece between the moves gets its own fit; so does each
    # piece between the places where the echo itself jumped against the reference before the
    # canceller moved (an underrun, lost input: stop 31's self-pause, -5.4 dB in one fit).
    by_moves = _spaced(moves, lo, hi)
    by_jumps = _spaced([*moves, *_echo_jumps(mic, ref, lo, hi)], lo, hi)
    for cuts in (by_moves, by_jumps if by_jumps != by_moves else []):
        if not cuts:
            continue
        edges = [lo, *cuts, hi]
        parts = [_piece(mic, ref, a, b, max(start, a), min(end, b)) for a, b in zip(edges, edges[1:])
                 if min(end, b) - max(start, a) >= HOP]
        if parts and all(part is not None for part in parts):
            best = min(best, _db(sum(left for left, _ in parts), sum(heard for _, heard in parts)))
    return best


def _spaced(cuts: Sequence[int], lo: int, hi: int) -> list[int]:
    """``cuts`` within (lo, hi), sorted, none closer than ``MIN_PIECE`` to another or to an edge
    (a piece that short is not judged)."""
    kept: list[int] = []
    for cut in sorted(cuts):
        if cut - (kept[-1] if kept else lo) >= MIN_PIECE and hi - cut >= MIN_PIECE:
            kept.append(cut)
    return kept


def _echo_jumps(mic: np.ndarray, ref: np.ndarray, lo: int, hi: int) -> list[int]:
    """Where, within ``mic[lo:hi]``, the echo's delay against ``ref`` jumped: the delay is found in
    short windows (where the loudspeaker played and the echo is clear in the microphone), and a
    cut is put between two windows in a row whose delays differ by more than ``JUMP_MIN``."""
    found: list[tuple[int, int]] = []  # (window centre, delay)
    for a in range(lo, hi - JUMP_WINDOW + 1, JUMP_HOP):
        y = mic[a:a + JUMP_WINDOW]
        x = np.zeros(JUMP_WINDOW + 2 * JUMP_SEARCH)
        first = a - JUMP_SEARCH
        src = ref[max(0, first):a + JUMP_WINDOW + JUMP_SEARCH]
        x[max(0, -first):max(0, -first) + len(src)] = src
        played = x[JUMP_SEARCH:JUMP_SEARCH + JUMP_WINDOW]
        if float(played @ played) < JUMP_WINDOW * JUMP_FLOOR ** 2 or not y.any():
            continue
        k, match = best_shift(x, y, 2 * JUMP_SEARCH + 1)
        if match < JUMP_CLEAR:
            continue  # a user's word over it, or the echo lost in noise: this window says nothing
        found.append((a + JUMP_WINDOW // 2, JUMP_SEARCH - k))
    return [(c0 + c1) // 2 for (c0, d0), (c1, d1) in zip(found, found[1:]) if abs(d1 - d0) > JUMP_MIN]


def _piece(mic: np.ndarray, ref: np.ndarray, lo: int, hi: int, start: int, end: int) -> tuple[float, float] | None:
    """(left, heard) energies of ``mic[start:end]`` fitted over ``mic[lo:hi]`` with the delay
    found there; None where that cannot be judged."""
    if end - start < HOP or hi - lo < MIN_PIECE:
        return None
    near = np.zeros_like(mic)
    near[lo:hi] = mic[lo:hi]
    moved = _shifted(ref, _bulk_delay(near, ref, SEARCH_MOVED) - MARGIN)
    return _fit(mic[lo:hi], moved[lo:hi], start - lo, end - lo)


def _db(left: float, heard: float) -> float:
    return 10.0 * float(np.log10((left + 1e-9) / heard))


def _fit_leftover(mic: np.ndarray, ref: np.ndarray, start: int, end: int) -> float | None:
    """``unexplained_db`` for one alignment: ``ref`` already moved onto the echo."""
    fitted = _fit(mic, ref, start, end)
    return None if fitted is None else _db(*fitted)


def _fit(mic: np.ndarray, ref: np.ndarray, start: int, end: int) -> tuple[float, float] | None:
    """(left, heard): the energy within ``mic[start:end]`` that a fit of ``ref`` over all of
    ``mic`` leaves, and the energy there."""
    Y, X = _frames(mic), _frames(ref)
    n, bins = Y.shape
    power = np.sum(np.abs(X) ** 2, axis=0)  # per bin
    if power.sum() <= 1e-3 * n * FRAME:
        return None
    # Lagged copies of the reference: A[frame, bin, tap]
    A = np.zeros((n, bins, len(LAGS)), dtype=complex)
    for k, lag in enumerate(LAGS):
        if lag >= 0:
            A[lag:, :, k] = X[:n - lag]
        else:
            A[:lag, :, k] = X[-lag:]
    R = np.einsum("nbk,nbl->bkl", A.conj(), A)
    p = np.einsum("nbk,nb->bk", A.conj(), Y)
    R += (RIDGE * power / len(LAGS) + 1e-9)[:, None, None] * np.eye(len(LAGS))[None]
    H = np.linalg.solve(R, p[..., None])[..., 0]
    E = Y - np.einsum("nbk,bk->nb", A, H)
    # the frames centred within the stretch
    first = max(0, -(-(start - FRAME // 2) // HOP))
    last = min(n, max(first + 1, (end - FRAME // 2) // HOP + 1))
    heard = float(np.sum(np.abs(Y[first:last]) ** 2))
    left = float(np.sum(np.abs(E[first:last]) ** 2))
    if heard <= 0.0:
        return None
    return left, heard
