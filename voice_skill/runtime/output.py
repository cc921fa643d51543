"""The loudspeaker the user asked for, assembled: the chosen voice (the natural one, espeak-ng
behind it) in a supervised child process, its fixed sentences from the cache, played through
the output device; or printed lines when there is no sound."""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Callable, Iterable, TextIO

from voice_skill.core.clock import Clock
from voice_skill.core.speechtime import DEFAULT_RATE_WPM
from voice_skill.devices.speaker import SoundSpeaker, TextSpeaker
from voice_skill.errors import DeviceError, UsageError
from voice_skill.runtime.supervise import ProcessVoice
from voice_skill.tts.base import Speaker, Voice, close_voice
from voice_skill.tts.cache import CachedVoice, SentenceCache, cache_root, voice_label
from voice_skill.tts.choice import AUTO_MAX_RTF, FallbackVoice, VoicePlan, plan_voice
from voice_skill.tts.espeak import Pyttsx3Voice, check_voice_settings
from voice_skill.tts.piper import PiperVoice

log = logging.getLogger(__name__)


def _espeak(plan: VoicePlan, rate: int, in_process: bool):
    name = plan.name if plan.engine == "espeak" else None
    if in_process:
        return Pyttsx3Voice(rate=rate, volume=1.0, voice=name)
    # Synthesis runs in a child process that a watchdog can end (pyttsx3 can hang).
    return ProcessVoice(partial(Pyttsx3Voice, rate=rate, volume=1.0, voice=name))


def _as_rendered(samples):
    return samples


def open_voice(setting: str | None, *, rate: int = DEFAULT_RATE_WPM, volume: float = 1.0,
               fixed: Iterable[str] = (), cache: SentenceCache | None = None, in_process: bool = False,
               on_warning: Callable[[str], None] | None = None) -> tuple[CachedVoice, VoicePlan]:
    """The voice the ``voice`` setting asks for, with its cache: ``(voice, plan it follows)``.

    The natural voice runs in a child process (or here, ``in_process``, for recordings and
    ``voice prepare``); when it cannot start, espeak-ng speaks and ``on_warning`` hears why
    once; when it fails later, ``FallbackVoice`` switches. The natural voice's sentences are
    finished to one loudness and only those in ``fixed`` are stored in the cache; espeak-ng's
    are played as rendered. Raises DeviceError when no voice at all can run.
    """
    check_voice_settings(rate, volume)  # a usage error here, not a child's startup failure
    plan = plan_voice(setting)
    warn = on_warning or (lambda message: log.warning("%s", message))
    voice = None
    if plan.engine == "piper":
        # (PiperVoice leaves one core to listening: a sentence rendered on the spot while the
        # skill listens must not starve the recognizer; on two busy cores it missed its budget)
        make = partial(PiperVoice, plan.name, rate, 1.0, max_rtf=None if plan.explicit else AUTO_MAX_RTF)
        try:
            # (a long sentence on a slow, busy machine can take seconds: the budget is wider than espeak-ng's)
            primary = make() if in_process else ProcessVoice(make, timeout_s=10.0)
        except DeviceError as exc:
            plan = VoicePlan("espeak", None, plan.explicit, f"{exc.message}; speaking with espeak-ng")
            warn(plan.why)
        else:
            voice = FallbackVoice(primary, lambda: _espeak(plan, rate, in_process), on_switch=warn)
    if voice is None:
        voice = _espeak(plan, rate, in_process)
    keep = frozenset(fixed)
    if plan.engine == "piper":
        cached = CachedVoice(voice, cache if cache is not None else SentenceCache(cache_root()), keep=keep.__contains__)
    else:
        # espeak-ng, the fallback, speaks as it always did: rendered when said, as the engine
        # leaves it (already within 2 LU of the natural voice's level). Its echo cancelling and
        # barge-in were tuned that way; trimmed, levelled and cached sentences are not yet
        # measured enough in the live loopback room to change it (docs/faults.md).
        cached = CachedVoice(voice, None, finish=_as_rendered)
    cached.volume = volume
    return cached, plan


def open_speaker(kind: str, clock: Clock, *, device: int | str | None = None, rate: int = DEFAULT_RATE_WPM,
                 volume: float = 1.0, voice: str | None = None, fixed: Iterable[str] = (),
                 cache: SentenceCache | None = None, stream: TextIO | None = None,
                 wrap: Callable[[Voice], Voice] | None = None,
                 on_warning: Callable[[str], None] | None = None) -> tuple[Speaker, CachedVoice | None]:
    """Open the speaker the user asked for: ``(speaker, its voice or None)``.

    ``"tts"`` speaks through the default (or given) output device and falls back to
    printing; what went wrong is said through ``on_warning`` (once each). ``"none"`` prints.
    ``wrap`` may decorate the voice (the night chime does).
    """
    warn = on_warning or (lambda message: log.warning("%s", message))
    if kind == "none":
        return TextSpeaker(clock, stream, rate_wpm=rate), None
    if kind != "tts":
        raise UsageError(f"unknown speaker {kind!r}; use 'tts' or 'none'")
    try:
        tts, _plan = open_voice(voice, rate=rate, volume=volume, fixed=fixed, cache=cache, on_warning=warn)
    except DeviceError as exc:
        log.debug("no speech engine: %s", exc)
        warn(f"{exc.message}; instructions will be printed")
        return TextSpeaker(clock, stream, rate_wpm=rate), None
    inner = tts.voice
    try:
        speaker = SoundSpeaker(wrap(tts) if wrap else tts, clock, device=device, fallback_stream=stream,
                               close_voice=inner.close)
    except DeviceError as exc:
        inner.close()
        log.debug("no speech output: %s", exc)
        warn(f"no speech output: {exc.message}; instructions will be printed")
        return TextSpeaker(clock, stream, rate_wpm=rate), None
    engine = inner.current if isinstance(inner, FallbackVoice) else inner
    if isinstance(engine, ProcessVoice):
        engine.on_restart = lambda message: speaker.report("engine", message)
    return speaker, tts


def background_engine(identity: str, rate: int = DEFAULT_RATE_WPM) -> Voice:
    """A second engine of the voice named by ``identity``, at the lowest priority and (Piper)
    on one thread: what the cache filler renders with, so filling never competes with
    listening or with a sentence the skill needs now."""
    engine, _, name = voice_label(identity).partition(":")
    if engine == "piper":
        factory = partial(PiperVoice, name, rate, 1.0, threads=1)
    else:
        factory = partial(Pyttsx3Voice, rate=rate, volume=1.0, voice=None if name in ("", "default") else name)
    return ProcessVoice(factory, nice=19, start_timeout_s=120.0, timeout_s=30.0)


class CacheFiller:
    """Renders the fixed sentences the cache lacks, on a background thread, while ``busy()``
    is false (no routine, nothing being said): a first start after installing, or after
    changing the voice or rate, fills the cache by itself.

    It renders with its own engine (``make_engine(identity)``, by default
    ``background_engine``), started only if something is missing and closed when done, so the
    skill's own engine is always free for a sentence it needs now.
    """

    def __init__(self, voice: CachedVoice, texts: Iterable[str], rates: Iterable[int],
                 busy: Callable[[], bool], *, wait_s: float = 1.0,
                 make_engine: Callable[[str], Voice] = background_engine) -> None:
        self.voice = voice
        self.texts = list(texts)
        self.rates = list(rates)
        self.busy = busy
        self.wait_s = wait_s
        self.make_engine = make_engine
        self.rendered = 0
        self.complete = threading.Event()
        self._stop = threading.Event()
        self._engine: Voice | None = None
        self._thread = threading.Thread(target=self._run, name="speech-cache-filler", daemon=True)

    def start(self) -> "CacheFiller":
        self._thread.start()
        return self

    def _run(self) -> None:
        missing = self.voice.missing(self.texts, self.rates) if self.voice.cache is not None else []
        if not missing:
            self.complete.set()
            return
        identity = self.voice.identity
        try:
            self._engine = engine = self.make_engine(identity)
        except DeviceError as exc:
            log.warning("speech cache: no engine to fill it (%s)", exc.message)
            return
        if self._stop.is_set():  # stopped while the engine started
            close_voice(engine)
            return
        filler = CachedVoice(engine, self.voice.cache, keep=self.voice.keep, finish=self.voice.finish)
        try:
            while not self._stop.is_set() and self.voice.identity == identity:
                if self.busy():
                    self._stop.wait(self.wait_s)
                    continue
                result = filler.fill(missing, should_pause=lambda: self._stop.is_set() or self.busy())
                self.rendered += result.rendered
                missing = missing[result.done:]
                if result.complete:
                    self.complete.set()
                    return
        except DeviceError as exc:
            if not self._stop.is_set():
                log.warning("speech cache: filling stopped (%s)", exc.message)
        finally:
            close_voice(engine)

    def stop(self) -> None:
        """Stop at once: a sentence being rendered is abandoned with its engine."""
        self._stop.set()
        if self._engine is not None:
            close_voice(self._engine)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=1)
