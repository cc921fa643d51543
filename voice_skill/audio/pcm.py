"""Audio as data: immutable chunks, and the one path that turns a WAV file into them.

Everything downstream of an audio source sees 16 kHz mono signed 16-bit little-endian
audio in `AudioChunk`s stamped with their start time in seconds of audio. The file
reader here is the same function the command line's ``--input`` uses, so tests
exercise what users run.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from voice_skill.errors import InputFileError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2
CHANNELS = 1

_FORMAT_PCM = 0x0001
_FORMAT_FLOAT = 0x0003
_FORMAT_EXTENSIBLE = 0xFFFE
# Anything longer than a day of 8-channel 192 kHz float audio is a lie in the header.
_MAX_DATA_BYTES = 24 * 3600 * 192_000 * 8 * 4


@dataclass(frozen=True)
class AudioChunk:
    """A piece of audio and where it starts, in seconds of audio."""

    audio: bytes
    start_s: float
    rate: int = SAMPLE_RATE
    width: int = SAMPLE_WIDTH
    channels: int = CHANNELS

    @property
    def samples(self) -> int:
        return len(self.audio) // (self.width * self.channels)

    @property
    def seconds(self) -> float:
        return self.samples / self.rate

    @property
    def end_s(self) -> float:
        return self.start_s + self.seconds

    def as_array(self) -> np.ndarray:
        """The samples as int16 (mono, 16-bit chunks only)."""
        return np.frombuffer(self.audio, dtype="<i2")


@dataclass(frozen=True)
class WavFormat:
    rate: int
    channels: int
    bits: int
    is_float: bool
    data_offset: int
    data_bytes: int

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8

    @property
    def seconds(self) -> float:
        return self.data_bytes / self.frame_bytes / self.rate


def _bad(path: str, problem: str) -> InputFileError:
    return InputFileError(problem, path=path)


def read_wav_format(fh: BinaryIO, path: str) -> WavFormat:
    """Parse a RIFF/WAVE header, leaving ``fh`` anywhere. Raises InputFileError."""
    fh.seek(0, os.SEEK_END)
    file_size = fh.tell()
    fh.seek(0)
    if file_size == 0:
        raise _bad(path, "the file is empty")
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise _bad(path, "not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while True:
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8:
            break
        chunk_id, size = struct.unpack("<4sI", header)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + size > file_size:
                raise _bad(path, "truncated or malformed 'fmt ' chunk")
            raw = fh.read(size)
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", raw[:16])
            if tag == _FORMAT_EXTENSIBLE:
                if size < 40:
                    raise _bad(path, "malformed WAVE_FORMAT_EXTENSIBLE header")
                tag = struct.unpack("<H", raw[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise _bad(path, "'data' chunk comes before the 'fmt ' chunk")
            tag, channels, rate, bits = fmt
            if tag not in (_FORMAT_PCM, _FORMAT_FLOAT):
                raise _bad(path, f"unsupported WAV encoding (format tag {tag:#06x}); use PCM or float")
            if tag == _FORMAT_PCM and bits not in (8, 16, 24, 32):
                raise _bad(path, f"unsupported PCM sample size of {bits} bits")
            if tag == _FORMAT_FLOAT and bits not in (32, 64):
                raise _bad(path, f"unsupported float sample size of {bits} bits")
            if not 1 <= channels <= 64:
                raise _bad(path, f"implausible channel count {channels}")
            if not 1000 <= rate <= 768_000:
                raise _bad(path, f"implausible sample rate {rate} Hz")
            available = file_size - body
            if size > _MAX_DATA_BYTES:
                raise _bad(path, f"the header declares {size} bytes of audio, which is implausible")
            if size > available:
                # Streaming writers leave 0xFFFFFFFF or 0 as the size; anything else that
                # points past the end of the file means the file was cut short.
                if size in (0xFFFFFFFF, 0x7FFFFFFF) or size == 0:
                    size = available
                else:
                    raise _bad(path, f"truncated: the header declares {size} bytes of audio but only {available} are present")
            if size == 0 and available > 0:
                size = available
            frame = channels * bits // 8
            size -= size % frame
            return WavFormat(rate, channels, bits, tag == _FORMAT_FLOAT, body, size)
        pos = body + size + (size & 1)
        if pos > file_size:
            break
    if fmt is None:
        raise _bad(path, "no 'fmt ' chunk; not a usable WAV file")
    raise _bad(path, "no 'data' chunk; the file holds no audio")


def _decode(raw: bytes, fmt: WavFormat, path: str) -> np.ndarray:
    """Interleaved frames -> float32 mono in [-1, 1]."""
    if fmt.is_float:
        samples = np.frombuffer(raw, dtype="<f4" if fmt.bits == 32 else "<f8")
        if not np.all(np.isfinite(samples)):
            raise _bad(path, "the audio holds NaN or infinite float samples")
        # (far beyond full scale is clipped at the end anyway; a float64 past float32's range
        # would otherwise become infinite in the cast)
        data = np.clip(samples, -1e6, 1e6).astype(np.float32)
    elif fmt.bits == 8:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif fmt.bits == 16:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif fmt.bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        data = v.astype(np.float32) / float(1 << 23)
    else:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    if fmt.channels > 1:
        data = data.reshape(-1, fmt.channels).mean(axis=1)
    return data


class Resampler:
    """Streaming band-limited resampler (windowed sinc), exact across block boundaries.

    The output for a signal does not depend on how it was split into blocks, which keeps
    file replay chunk-size invariant. Output sample ``n`` sits at input position ``n * p / q``
    (``rate_in / rate_out`` in lowest terms); its fractional part repeats every ``q`` outputs,
    so the ``q`` kernels are computed once (``q`` is 320 for 22.05 kHz, 3 for 48 kHz) and each
    block is a table look-up and a dot product. Rates whose ratio has no small denominator
    compute the kernel per sample.
    """

    MAX_PHASES = 4096

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE, taps_per_side: int = 16) -> None:
        self.rate_in = rate_in
        self.rate_out = rate_out
        g = math.gcd(rate_in, rate_out)
        self._p, self._q = rate_in // g, rate_out // g  # output n sits at input n * p / q
        self.half = taps_per_side
        self.cutoff = min(1.0, rate_out / rate_in) * 0.95
        self._offs = np.arange(-self.half + 1, self.half + 1)
        self._table = (self._kernel(np.arange(self._q) / self._q) if self._q <= self.MAX_PHASES else None)
        self._buf = np.zeros(self.half, dtype=np.float32)  # history: zero before the start
        self._buf_start = -self.half  # input index of _buf[0]
        self._next_out = 0  # next output sample index

    def _kernel(self, frac: np.ndarray) -> np.ndarray:
        """The taps for outputs whose input position is ``frac`` past a whole sample."""
        dist = frac[:, None] - self._offs[None, :]
        window = 0.5 + 0.5 * np.cos(np.pi * np.clip(dist / self.half, -1, 1))
        return (self.cutoff * np.sinc(self.cutoff * dist) * window).astype(np.float32)

    def process(self, x: np.ndarray, final: bool = False) -> np.ndarray:
        if self.rate_in == self.rate_out:
            return x
        self._buf = np.concatenate([self._buf, x])
        if final:
            self._buf = np.concatenate([self._buf, np.zeros(self.half + 1, dtype=np.float32)])
        last_in = self._buf_start + len(self._buf) - 1
        p, q = self._p, self._q
        # Output n needs inputs up to floor(n * p / q) + half.
        n_stop = (last_in - self.half) * q // p + 1
        if final:
            real_inputs = last_in + 1 - (self.half + 1)
            n_stop = min(n_stop, -(-real_inputs * q // p))
        if n_stop <= self._next_out:
            return np.zeros(0, dtype=np.float32)
        n = np.arange(self._next_out, n_stop, dtype=np.int64)
        base, phase = np.divmod(n * p, q)
        kernel = self._table[phase] if self._table is not None else self._kernel(phase / q)
        samples = self._buf[base[:, None] + self._offs[None, :] - self._buf_start]
        out = np.einsum("ij,ij->i", samples, kernel).astype(np.float32)
        self._next_out = n_stop
        keep_from = n_stop * p // q - self.half
        drop = max(0, keep_from - self._buf_start)
        self._buf = self._buf[drop:]
        self._buf_start += drop
        return out


def float_to_int16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2").tobytes()


def iter_wav_chunks(path: str | os.PathLike[str], chunk_s: float = 0.1) -> Iterator[AudioChunk]:
    """Yield 16 kHz mono int16 chunks of ``chunk_s`` seconds from a WAV file of any common format.

    Errors (missing, empty, truncated, not audio) raise InputFileError naming the file
    before the first chunk is yielded, so a bad file never produces half a run.
    """
    name = os.fspath(path)
    if chunk_s <= 0:
        raise ValueError("chunk_s must be positive")
    try:
        fh = open(name, "rb")
    except FileNotFoundError:
        raise _bad(name, "no such file") from None
    except IsADirectoryError:
        raise _bad(name, "is a directory, not a WAV file") from None
    except OSError as exc:
        raise _bad(name, f"cannot open: {exc.strerror or exc}") from None
    with fh:
        fmt = read_wav_format(fh, name)
        if fmt.data_bytes == 0:
            raise _bad(name, "the file holds no audio samples")
        log.debug("%s: %d Hz, %d ch, %d bit%s, %.2f s", name, fmt.rate, fmt.channels, fmt.bits,
                  " float" if fmt.is_float else "", fmt.seconds)
        out_chunk = max(1, int(round(chunk_s * SAMPLE_RATE)))
        resampler = Resampler(fmt.rate)
        read_frames = max(1, int(round(chunk_s * fmt.rate)))
        pending = np.zeros(0, dtype=np.float32)
        emitted = 0
        remaining = fmt.data_bytes
        fh.seek(fmt.data_offset)
        while remaining > 0:
            want = min(remaining, read_frames * fmt.frame_bytes)
            raw = fh.read(want)
            if len(raw) < want:
                raise _bad(name, "truncated: the audio ends before the length its header declares")
            remaining -= want
            pending = np.concatenate([pending, resampler.process(_decode(raw, fmt, name), final=remaining == 0)])
            while len(pending) >= out_chunk or (remaining == 0 and len(pending) > 0):
                piece, pending = pending[:out_chunk], pending[out_chunk:]
                yield AudioChunk(float_to_int16(piece), start_s=emitted / SAMPLE_RATE)
                emitted += len(piece)


def read_wav(path: str | os.PathLike[str]) -> np.ndarray:
    """The whole file as 16 kHz mono int16 samples."""
    parts = [c.as_array() for c in iter_wav_chunks(path, chunk_s=1.0)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono samples as a PCM WAV (used by tests, benchmarks and the speaker)."""
    data = np.asarray(samples, dtype="<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16,
                         _FORMAT_PCM, 1, rate, rate * 2, 2, 16, b"data", len(data))
    tmp = os.fspath(path) + ".part"
    with open(tmp, "wb") as fh:
        fh.write(header)
        fh.write(data)
    os.replace(tmp, path)
