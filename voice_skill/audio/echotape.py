"""What the echo canceller saw, kept for a post-mortem: ``VOICE_SKILL_ECHO_TAPE=path.wav``.

A live self-hearing failure (the skill obeying its own words) could not be replayed as the
skill had heard it: the test keeps the loudspeaker's and the microphone's recordings, but not
the reference the skill lined up against the microphone, and that was what had gone wrong
(docs/faults.md). With the variable set, the live session writes a 16 kHz WAV with three
channels, one frame per microphone frame: the microphone, the reference the canceller used
(zeros where it had none) and what the canceller let through. Beside it, ``path.times``
maps the tape onto the session's clock (the times of the events log): a line "sample clock_s"
each second of tape. ``audio.echocheck`` and the recognizer can then be run on exactly that.
"""

from __future__ import annotations

import logging
import os
import wave

import numpy as np

from voice_skill.audio.pcm import SAMPLE_RATE

log = logging.getLogger(__name__)

ENV = "VOICE_SKILL_ECHO_TAPE"


class EchoTape:
    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "wb")  # opened here: a failed wave.open leaves a broken writer behind
        self._times = open(f"{path}.times", "w", encoding="utf-8")
        self._written = 0  # samples on the tape
        self._next_mark = 0
        self._out = wave.open(self._file, "wb")
        self._out.setnchannels(3)
        self._out.setsampwidth(2)
        self._out.setframerate(SAMPLE_RATE)

    @classmethod
    def from_env(cls) -> "EchoTape | None":
        """A tape at the path ``VOICE_SKILL_ECHO_TAPE`` names, or None (unset, or it cannot be
        written: a warning, and the skill runs on without it)."""
        path = os.environ.get(ENV)
        if not path:
            return None
        try:
            return cls(path)
        except OSError as exc:
            log.warning("%s: cannot write the echo tape there (%s)", path, exc.strerror or exc)
            return None

    def write(self, mic: np.ndarray, reference: np.ndarray | None, cleaned: np.ndarray,
              clock_s: float | None) -> None:
        """One frame: the microphone, the reference, the output; ``clock_s`` when its first
        sample was heard (None where not known yet)."""
        if clock_s is not None and self._written >= self._next_mark:
            self._times.write(f"{self._written} {clock_s:.4f}\n")
            self._next_mark = self._written + SAMPLE_RATE
        self._written += len(mic)
        ref = np.zeros(len(mic)) if reference is None else reference
        frames = np.stack([mic, ref, cleaned], axis=1)
        self._out.writeframes(np.clip(np.round(frames), -32768, 32767).astype("<i2").tobytes())

    def close(self) -> None:
        self._out.close()
        self._file.close()
        self._times.close()
