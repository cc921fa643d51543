"""The skill's own speech reaching its microphone through a small simulated room: for a
recording played in with ``voice-skill run --echo GAIN`` and for the self-hearing tests,
where no loudspeaker and no real room exist. A ``Session`` applies it to every frame of
input (its ``room``), after the clock has reached the frame and before the echo canceller.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from voice_skill.audio.aec import simulated_room
from voice_skill.audio.pcm import SAMPLE_RATE, AudioChunk

Played = Callable[[float, int], "np.ndarray | None"]  # (start_s, n_samples) -> what was played


class RoomEcho:
    """Adds ``gain`` times the room's echo of what ``played`` says the loudspeaker played."""

    def __init__(self, played: Played, gain: float, response: np.ndarray | None = None) -> None:
        self.played = played
        self.gain = gain
        self.response = simulated_room() if response is None else response

    def __call__(self, chunk: AudioChunk) -> AudioChunk:
        tail = len(self.response) - 1
        played = self.played(chunk.start_s - tail / SAMPLE_RATE, chunk.samples + tail)
        if played is None:
            return chunk
        size = 1 << int(np.ceil(np.log2(len(played) + tail + 1)))
        echo = np.fft.irfft(np.fft.rfft(played, size) * np.fft.rfft(self.response, size), size)
        mixed = chunk.as_array().astype(np.float64) + echo[tail:tail + chunk.samples] * self.gain
        return AudioChunk(np.clip(np.round(mixed), -32768, 32767).astype("<i2").tobytes(), chunk.start_s)
