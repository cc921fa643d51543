"""espeak-ng through pyttsx3: text in, 16 kHz int16 samples out, nothing played.

pyttsx3's espeak-ng driver cannot be trusted to play, queue or stop speech (see
docs/pyttsx3.md), so each synthesis builds a fresh engine under a process-wide lock and
saves to a file that is read back; playback is the speaker's job.
"""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import os
import sys
import tempfile
import threading
from typing import Any

import numpy as np

from voice_skill.audio.pcm import read_wav
from voice_skill.errors import DeviceError, UsageError
from voice_skill.core.speechtime import DEFAULT_RATE_WPM, MAX_RATE_WPM, MIN_RATE_WPM

log = logging.getLogger(__name__)

# espeak-ng is process-global in pyttsx3: one synthesis at a time, whoever asks.
_ENGINE_LOCK = threading.Lock()


def _quiet_print(*args: Any, **_kw: Any) -> None:
    log.debug("pyttsx3: %s", " ".join(str(a) for a in args))


def _pyttsx3_version() -> str:
    try:
        return importlib.metadata.version("pyttsx3")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def check_voice_settings(rate: float, volume: float) -> None:
    """Raise UsageError for a speech rate or volume the engine cannot use."""
    if not MIN_RATE_WPM <= rate <= MAX_RATE_WPM:
        raise UsageError(f"speech rate must be {MIN_RATE_WPM} to {MAX_RATE_WPM} words per minute, not {rate}")
    if not 0.0 <= volume <= 1.0:
        raise UsageError(f"speech volume must be between 0 and 1, not {volume}")


def _never_cancel() -> None:
    """Stands in for the espeak driver's ``stop`` (see ``Pyttsx3Voice._new_engine``)."""


class Pyttsx3Voice:
    """Synthesise speech with pyttsx3 into 16 kHz int16 samples. Plays nothing."""

    def __init__(self, rate: int = DEFAULT_RATE_WPM, volume: float = 1.0, voice: str | None = None,
                 *, driver_name: str | None = None, timeout_s: float = 15.0) -> None:
        self.rate = rate
        self.volume = volume
        self.voice = voice
        self.timeout_s = timeout_s
        self.identity = f"espeak:{voice or 'default'}:pyttsx3-{_pyttsx3_version()}"
        self._driver_name = driver_name
        self._validate()
        try:
            import pyttsx3.engine
        except Exception as exc:  # ImportError, or the driver's own errors
            raise DeviceError(f"no speech engine: pyttsx3 is not usable ({exc})") from None
        self._engine_cls = pyttsx3.engine.Engine
        # Start one engine now so a missing espeak-ng shows up here, not mid-routine.
        with _ENGINE_LOCK:
            engine = self._new_engine()
            del engine
            gc.collect()

    def _validate(self) -> None:
        check_voice_settings(self.rate, self.volume)

    def _new_engine(self) -> Any:
        try:
            engine = self._engine_cls(self._driver_name) if self._driver_name else self._engine_cls()
        except Exception as exc:
            hint = " (is espeak-ng installed? apt install espeak-ng)" if sys.platform.startswith("linux") else ""
            raise DeviceError(f"no speech engine: {exc}{hint}") from None
        module = getattr(getattr(engine.proxy, "_module", None), "__dict__", None)
        if module is not None and "print" not in module:
            # The espeak driver prints "Audio saved to ..." on stdout from its own thread.
            module["print"] = _quiet_print
        driver = getattr(engine.proxy, "_driver", None)
        if driver is not None and type(driver).__module__ == "pyttsx3.drivers.espeak":
            # runAndWait queues the engine's endLoop behind our commands, and it runs before the
            # synthesis starts; endLoop calls the driver's stop, which calls espeak_Cancel whenever
            # espeak-ng is still busy, and that throws away the parameters queued a moment before:
            # the sentence then comes out at the 200 words a minute every new driver sets
            # (docs/pyttsx3.md). A rendering to a file is never cut short here, so there is
            # nothing for stop to do.
            driver.stop = _never_cancel
        return engine

    def synthesize(self, text: str) -> np.ndarray:
        self._validate()
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        return self._render(text)

    def _render(self, text: str) -> np.ndarray:
        fd, path = tempfile.mkstemp(prefix="voice-skill-", suffix=".wav")
        os.close(fd)
        try:
            with _ENGINE_LOCK:
                self._synthesize_to(text, path)
            samples = read_wav(path)
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
        return samples

    def _synthesize_to(self, text: str, path: str) -> None:
        done = threading.Event()
        errors: list[BaseException] = []
        engine = self._new_engine()
        try:
            engine.connect("finished-utterance", lambda **_kw: done.set())
            engine.connect("error", lambda exception=None, **_kw: (errors.append(exception), done.set()))
            engine.setProperty("rate", int(self.rate))
            engine.setProperty("volume", float(self.volume))
            if self.voice is not None:
                engine.setProperty("voice", self.voice)
            engine.save_to_file(text, path)
            engine.runAndWait()
            if not done.wait(self.timeout_s):
                raise DeviceError(f"speech synthesis did not finish within {self.timeout_s:g} s")
            if errors:
                raise DeviceError(f"speech synthesis failed: {errors[0]}")
            self._wait_idle()
        finally:
            del engine
            gc.collect()  # the old driver must be gone before the next one installs its callback

    def _wait_idle(self) -> None:
        try:
            from pyttsx3.drivers import _espeak
        except Exception:
            return
        idle = threading.Event()
        for _ in range(500):  # at most ~1 s
            if not _espeak.IsPlaying():
                return
            idle.wait(0.002)
