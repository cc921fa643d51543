"""A speaker on the virtual clock: each utterance takes as long as it would aloud, so a
recording replays a whole routine in the recognizer's own time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from voice_skill.audio.pcm import SAMPLE_RATE
from voice_skill.core.clock import VirtualClock
from voice_skill.tts.base import SpeechEvent


@dataclass
class _Utterance:
    uid: int
    text: str
    start_s: float
    end_s: float
    audio: np.ndarray | None
    started: bool = False
    ended: bool = False
    cancelled: bool = False


class VirtualSpeaker:
    """Speech on the virtual clock: each utterance takes as long as it would aloud.

    ``render`` gives an utterance's length (seconds) and, when a real voice is used, its
    samples; with samples the speaker can say what it ``played`` at any moment, which the
    echo canceller needs and the room simulation of the self-hearing tests uses.
    """

    def __init__(self, clock: VirtualClock, render: Callable[[str], tuple[float, np.ndarray | None]]) -> None:
        self.clock = clock
        self.render = render
        self._queue: list[_Utterance] = []
        self._done: list[_Utterance] = []  # kept briefly for echo rendering

    @property
    def busy(self) -> bool:
        return any(not u.ended for u in self._queue)

    def say(self, text: str, utterance_id: int) -> None:
        now = self.clock.now()
        start = max([now] + [u.end_s for u in self._queue if not u.ended])
        seconds, audio = self.render(text)
        self._queue.append(_Utterance(utterance_id, text, start, start + seconds, audio))

    def cancel(self) -> None:
        now = self.clock.now()
        for u in self._queue:
            if u.ended:
                continue
            u.cancelled = True
            if u.start_s >= now:  # never reached the loudspeaker: drop it without a trace
                u.started = u.ended = True
                u.audio = None
            else:
                u.end_s = min(u.end_s, now)

    def next_event_time(self) -> float | None:
        times = [u.start_s for u in self._queue if not u.started and not u.cancelled]
        times += [u.end_s for u in self._queue if not u.ended]
        return min(times) if times else None

    def poll(self) -> list[SpeechEvent]:
        now = self.clock.now() + 1e-9
        events: list[tuple[float, int, SpeechEvent]] = []
        for u in self._queue:
            if not u.started and u.start_s <= now:
                u.started = True
                events.append((u.start_s, 0, SpeechEvent("started", u.uid, u.start_s, u.text)))
            if not u.ended and u.end_s <= now:
                u.ended = True
                kind = "cancelled" if u.cancelled else "finished"
                events.append((u.end_s, 1, SpeechEvent(kind, u.uid, u.end_s, u.text)))
        self._done.extend(u for u in self._queue if u.ended)
        self._queue = [u for u in self._queue if not u.ended]
        self._done = [u for u in self._done if u.end_s > now - 5.0]
        return [e for _, _, e in sorted(events, key=lambda item: (item[0], item[1]))]

    def played(self, start_s: float, n_samples: int) -> np.ndarray | None:
        """What the loudspeaker played from ``start_s`` for ``n_samples`` (float samples in
        int16 units), or None when it was silent."""
        out = None
        for u in self._done + self._queue:
            if u.audio is None or u.end_s <= start_s:
                continue
            first = int(round((start_s - u.start_s) * SAMPLE_RATE))
            played = int(round((u.end_s - u.start_s) * SAMPLE_RATE))
            lo, hi = max(first, 0), min(first + n_samples, played, len(u.audio))
            if hi <= lo:
                continue
            if out is None:
                out = np.zeros(n_samples, dtype=np.float32)
            out[lo - first:hi - first] += u.audio[lo:hi]
        return out

    def played_until(self) -> float:
        """When the last utterance played so far ends (for the echo tail)."""
        return max([u.end_s for u in self._done + self._queue] or [0.0])

    def close(self) -> None:
        self._queue.clear()
