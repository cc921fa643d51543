"""Cutting a stream of 16-bit audio into frames of one fixed size.

Every consumer of input audio works on fixed frames (the session's grid, both recognizers'
endpointers, re-chunking of recordings) while chunks arrive in whatever size the microphone or
the file reader chose. One class keeps the remainder between chunks, so the same audio gives
the same frames whatever its chunking.
"""

from __future__ import annotations

from typing import Iterator

from .pcm import SAMPLE_RATE, SAMPLE_WIDTH, AudioChunk


class Framer:
    """Cuts the bytes pushed into it into whole frames of ``frame_samples`` samples and keeps
    the remainder (less than a frame) for the next push."""

    def __init__(self, frame_samples: int, width: int = SAMPLE_WIDTH) -> None:
        if frame_samples <= 0:
            raise ValueError(f"a frame needs at least one sample, not {frame_samples}")
        self.frame_samples = frame_samples
        self.frame_bytes = frame_samples * width
        self._width = width
        self._rest = b""
        self.samples_out = 0  # samples handed out in whole frames since the last clear()

    def cut(self, audio: bytes) -> list[bytes]:
        """The whole frames completed by ``audio``, oldest first."""
        data = self._rest + audio if self._rest else bytes(audio)
        usable = len(data) - len(data) % self.frame_bytes
        fb = self.frame_bytes
        frames = [data[i:i + fb] for i in range(0, usable, fb)]
        self._rest = data[usable:]
        self.samples_out += len(frames) * self.frame_samples
        return frames

    @property
    def pending(self) -> bytes:
        """The audio received but not yet handed out (less than one frame)."""
        return self._rest

    @property
    def samples_in(self) -> int:
        """Samples received since the last clear(), handed out or not."""
        return self.samples_out + len(self._rest) // self._width

    def take_rest(self, pad: bool = False) -> bytes:
        """The pending audio, handed out as a last, short frame (empty if nothing is pending);
        with ``pad`` made up to a whole frame with silence."""
        rest, self._rest = self._rest, b""
        if pad and rest:
            rest += bytes(self.frame_bytes - len(rest))
        self.samples_out += len(rest) // self._width
        return rest

    def clear(self) -> None:
        """Forget the pending audio and start counting again."""
        self._rest = b""
        self.samples_out = 0


def rechunk(chunks: Iterator[AudioChunk], chunk_samples: int) -> Iterator[AudioChunk]:
    """Re-split a chunk stream into fixed-size chunks (the last may be shorter)."""
    framer = Framer(chunk_samples)
    start = None
    for chunk in chunks:
        if start is None:
            start = chunk.start_s
        first = framer.samples_out
        for i, frame in enumerate(framer.cut(chunk.audio)):
            yield AudioChunk(frame, start_s=start + (first + i * chunk_samples) / SAMPLE_RATE)
    if start is not None:
        first = framer.samples_out
        rest = framer.take_rest()
        if rest:
            yield AudioChunk(rest, start_s=start + first / SAMPLE_RATE)
