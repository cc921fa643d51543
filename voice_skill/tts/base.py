"""What speech output is to the rest of the skill: a ``Voice`` turns text into samples, a
``Speaker`` says utterances and reports what happened to each (``SpeechEvent``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

EventKind = Literal["started", "finished", "cancelled"]


@dataclass(frozen=True)
class SpeechEvent:
    """Something that happened to an utterance, at ``t`` seconds on the speaker's clock.

    Every ``say()`` ends in exactly one ``finished`` or ``cancelled`` event. ``started``
    comes first only if the utterance's audio reached the output device (or, for the
    text speaker, was printed).
    """

    kind: EventKind
    utterance_id: int
    t: float
    text: str


@runtime_checkable
class Voice(Protocol):
    rate: int  # words per minute
    volume: float  # 0..1

    def synthesize(self, text: str) -> np.ndarray:
        """``text`` as int16 mono samples at 16 kHz."""
        ...


@runtime_checkable
class Speaker(Protocol):
    def say(self, text: str, utterance_id: int) -> None: ...

    def cancel(self) -> None: ...

    def poll(self) -> list[SpeechEvent]: ...

    @property
    def busy(self) -> bool: ...

    def close(self) -> None: ...

    def next_event_time(self) -> float | None:
        """When this speaker next has something to report, for a speaker on a clock that
        follows audio (it is then driven to that time); None for one a device drives."""
        ...

    def played(self, start_s: float, n_samples: int) -> np.ndarray | None:
        """What it played from ``start_s`` (clock time) for ``n_samples``, for an echo
        canceller fed by the speaker itself; None when it cannot say (a device speaker keeps
        its own tape: ``SoundSpeaker.tape``)."""
        ...


def close_voice(voice: object) -> None:
    """Close ``voice``'s engine (a child process, a library handle) if it has anything to close."""
    close = getattr(voice, "close", None)
    if close is not None:
        close()
