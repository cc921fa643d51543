"""Lost and found: the bookkeeping the microphone and the loudspeaker share.

A device that stops working is reported once, retried after ``reopen_every_s`` seconds
of the owner's clock, then after twice that, and so on up to ``REOPEN_BACKOFF`` times it
(never in a busy loop), and reported again when it works. The wait grows because every
failed open of a device that is gone risks a crash inside PortAudio (``portaudio.
format_refused``): a microphone unplugged for a night would be tried 1800 times an hour at a
fixed 2 s, 450 at the 8 s it settles at. The changes wait in a thread-safe list until the
live loop polls them: audio callbacks and the speaker's thread report, the loop's thread reads.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Literal

from voice_skill.core.clock import Clock

log = logging.getLogger(__name__)

StatusKind = Literal["lost", "restored", "engine"]
REOPEN_BACKOFF = 4  # the longest wait between tries, in units of reopen_every_s


@dataclass(frozen=True)
class DeviceStatus:
    """A change in a device's state, at ``t`` on the owner's clock."""

    kind: StatusKind
    t: float
    message: str


class DeviceWatch:
    def __init__(self, clock: Clock, name: str, reopen_every_s: float) -> None:
        self._clock = clock
        self.name = name
        self.reopen_every_s = reopen_every_s
        self.lost = False
        self.lost_at_t = 0.0
        self.next_reopen_t = 0.0
        self._wait_s = reopen_every_s
        self._status: list[DeviceStatus] = []
        self._lock = threading.Lock()

    def report(self, kind: StatusKind, message: str) -> None:
        (log.info if kind == "restored" else log.warning)("%s %s: %s", self.name, kind, message)
        with self._lock:
            self._status.append(DeviceStatus(kind, self._clock.now(), message))

    def mark_lost(self, message: str) -> bool:
        """Note that the device stopped working; True (and one report) the first time only."""
        if self.lost:
            return False
        self.lost = True
        self.lost_at_t = self._clock.now()
        self._wait_s = self.reopen_every_s
        self.next_reopen_t = self.lost_at_t + self._wait_s
        self.report("lost", message)
        return True

    def reopen_due(self) -> bool:
        """Whether to try reopening now; each True starts the next wait, twice the last one
        up to ``REOPEN_BACKOFF`` times ``reopen_every_s``."""
        now = self._clock.now()
        if now < self.next_reopen_t:
            return False
        self._wait_s = min(2 * self._wait_s, REOPEN_BACKOFF * self.reopen_every_s)
        self.next_reopen_t = now + self._wait_s
        return True

    def try_reopen(self, reopen: Callable[[], object], message: str) -> bool:
        """If a retry is due, call ``reopen``; True (and a ``restored`` report with
        ``message``) if it did not raise. A failed retry is only logged: the next one follows
        the next wait (``reopen_due``)."""
        if not self.reopen_due():
            return False
        try:
            reopen()
        except Exception as exc:  # DeviceError, PortAudioError, ValueError: the device is still away
            log.debug("reopening the %s failed: %s", self.name, exc)
            return False
        self.restored(message)
        return True

    def restored(self, message: str) -> None:
        self.lost = False
        self.report("restored", message)

    def poll(self) -> list[DeviceStatus]:
        """The changes since the last call."""
        with self._lock:
            items, self._status = self._status, []
        return items
