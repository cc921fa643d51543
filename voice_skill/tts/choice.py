"""Which voice speaks: the ``voice`` setting read, the natural voice preferred, espeak-ng behind it.

``voice`` is one of:

- ``auto`` (the default): the natural voice (Piper ``joe``) where it is installed and needs at
  most ``AUTO_MAX_RTF`` seconds of work per second of speech on this machine (measured when its
  engine starts), else espeak-ng;
- ``piper`` or ``piper:NAME``: the natural voice, however fast it is; espeak-ng if it cannot run;
- ``espeak`` or ``espeak:NAME``: espeak-ng (NAME an espeak-ng voice such as ``en-us``); any other
  word is taken as an espeak-ng voice name, as it was before the natural voice.

Whatever was chosen, a natural voice that fails while the skill runs (its engine crashing
twice in a row) hands over to espeak-ng for good, with one warning: ``FallbackVoice``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from voice_skill.core.speechtime import DEFAULT_VOICE_SETTING
from voice_skill.errors import DeviceError, UsageError
from voice_skill.tts import piper
from voice_skill.tts.base import close_voice

log = logging.getLogger(__name__)

# The natural voice is chosen by itself only where it renders a sentence in at most half its
# length: with the cache full it renders almost nothing while coaching, but a sentence the
# cache lacks must still come out sooner than it takes to say.
AUTO_MAX_RTF = 0.5


@dataclass(frozen=True)
class VoicePlan:
    """What the setting asks for, before any engine is started."""

    engine: str  # "piper" or "espeak"
    name: str | None  # the Piper voice, or the espeak-ng voice (None: its default)
    explicit: bool  # asked for by name (no speed rule)
    why: str  # in words, for ``config show`` and the event log

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}" if self.name else self.engine


def plan_voice(setting: str | None) -> VoicePlan:
    """Read the ``voice`` setting (None: ``DEFAULT_VOICE_SETTING``; UsageError for an unknown
    natural voice)."""
    value = (setting or DEFAULT_VOICE_SETTING).strip()
    engine, _, name = value.partition(":")
    if value == "auto":
        why = piper.missing()
        if why is None:
            return VoicePlan("piper", piper.DEFAULT_VOICE, False,
                             f"the natural voice is installed; it is used when it renders speech at least "
                             f"{1 / AUTO_MAX_RTF:g} times as fast as it is spoken here (measured at start)")
        return VoicePlan("espeak", None, False, f"the natural voice cannot be used: {why}")
    if engine == "piper":
        name = name or piper.DEFAULT_VOICE
        if name not in piper.VOICES:
            raise UsageError(f"unknown natural voice {name!r} in voice {value!r}; known: "
                             + ", ".join(f"piper:{n}" for n in piper.VOICES))
        return VoicePlan("piper", name, True, "set by the voice setting")
    if engine == "espeak":  # ("espeak:default" is how the event log names espeak-ng's default voice)
        return VoicePlan("espeak", name if name not in ("", "default") else None, True, "set by the voice setting")
    return VoicePlan("espeak", value, True, "set by the voice setting (an espeak-ng voice name)")


class FallbackVoice:
    """A voice that, when ``primary`` fails (DeviceError), switches to ``make_fallback()`` for
    good and says so once through ``on_switch``; the failed sentence is rendered by the fallback.
    ``rate``, ``volume`` and ``identity`` are the voice in use."""

    def __init__(self, primary, make_fallback: Callable[[], object],
                 on_switch: Callable[[str], None] | None = None) -> None:
        self._voice = primary
        self._make_fallback = make_fallback
        self._switched = False
        self._closed = False
        self._lock = threading.Lock()
        self.on_switch = on_switch
        self.rate = primary.rate
        self.volume = primary.volume

    @property
    def identity(self) -> str:
        return self._voice.identity

    @property
    def current(self):
        """The voice speaking now: the primary, or after a failure the fallback."""
        return self._voice

    @property
    def switched(self) -> bool:
        return self._switched

    def synthesize(self, text: str) -> np.ndarray:
        with self._lock:
            self._voice.rate, self._voice.volume = self.rate, self.volume
            try:
                return self._voice.synthesize(text)
            except DeviceError as exc:
                if self._switched or self._closed:  # (closing ends the engine: no failure of its own)
                    raise
                failed = self._voice
                self._voice = self._make_fallback()  # may raise DeviceError: no voice at all
                self._switched = True
                close_voice(failed)
                message = f"the natural voice failed ({exc.message}); speaking with espeak-ng from now on"
                log.warning("%s", message)
                if self.on_switch is not None:
                    self.on_switch(message)
                self._voice.rate, self._voice.volume = self.rate, self.volume
                return self._voice.synthesize(text)

    def close(self) -> None:
        self._closed = True
        close_voice(self._voice)
