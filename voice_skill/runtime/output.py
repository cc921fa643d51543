"""The loudspeaker the user asked for, assembled: espeak-ng in a supervised child process,
played through the output device, or printed lines when there is no sound."""

from __future__ import annotations

import logging
from functools import partial
from typing import Callable, TextIO

from voice_skill.core.clock import Clock
from voice_skill.core.speechtime import DEFAULT_RATE_WPM
from voice_skill.devices.speaker import SoundSpeaker, TextSpeaker
from voice_skill.errors import DeviceError, UsageError
from voice_skill.runtime.supervise import ProcessVoice
from voice_skill.tts.base import Speaker, Voice
from voice_skill.tts.espeak import Pyttsx3Voice, check_voice_settings

log = logging.getLogger(__name__)


def open_speaker(kind: str, clock: Clock, *, device: int | str | None = None, rate: int = DEFAULT_RATE_WPM,
                 volume: float = 1.0, voice: str | None = None,
                 stream: TextIO | None = None,
                 wrap: Callable[[Voice], Voice] | None = None) -> tuple[Speaker, str | None]:
    """Open the speaker the user asked for: ``(speaker, warning or None)``.

    ``"tts"`` speaks through the default (or given) output device and falls back to
    printing, with one warning for the caller to log. ``"none"`` prints. ``wrap`` may
    decorate the voice (the night chime does).
    """
    if kind == "none":
        return TextSpeaker(clock, stream, rate_wpm=rate), None
    if kind != "tts":
        raise UsageError(f"unknown speaker {kind!r}; use 'tts' or 'none'")
    check_voice_settings(rate, volume)  # a usage error here, not a child's startup failure
    try:
        # Synthesis runs in a child process that a watchdog can end (pyttsx3 can hang).
        tts = ProcessVoice(partial(Pyttsx3Voice, rate=rate, volume=volume, voice=voice))
    except DeviceError as exc:
        log.debug("no speech engine: %s", exc)
        return TextSpeaker(clock, stream, rate_wpm=rate), f"{exc.message}; instructions will be printed"
    try:
        speaker = SoundSpeaker(wrap(tts) if wrap else tts, clock, device=device, fallback_stream=stream,
                               close_voice=tts.close)
    except DeviceError as exc:
        tts.close()
        log.debug("no speech output: %s", exc)
        return TextSpeaker(clock, stream, rate_wpm=rate), f"no speech output: {exc.message}; instructions will be printed"
    tts.on_restart = lambda message: speaker.report("engine", message)
    return speaker, None
