"""Assembling a session from options, for recordings and for the live microphone.

``run_file`` is the one replay path: the command line's ``--input`` calls it, and so do
the tests and the benchmarks.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from typing import IO, Callable, Iterator

from voice_skill.asr.base import Recognizer
from voice_skill.audio import AudioChunk, iter_wav_chunks
from voice_skill.clock import RealClock, VirtualClock, local_hour_fraction
from voice_skill.coach import Coach
from voice_skill.intents import Intent, IntentParser, PhraseTable
from voice_skill.routine import Routine, builtin_routines
from voice_skill.session import EchoGuard, EventLog, Session, VirtualSpeaker

log = logging.getLogger(__name__)

NIGHT_START_H = 22.0
NIGHT_END_H = 7.0


@dataclass
class RunOptions:
    speaker: str = "none"  # none | tts
    asr: str = "auto"  # auto | pocketsphinx | vosk
    model: str | None = None
    chunk_s: float = 0.1
    hour: float | None = None  # local time of day at the start, for choosing routines
    rate_wpm: int = 165
    volume: float = 1.0
    voice: str | None = None
    pace: float = 1.0  # the pace each routine starts at
    chime: bool = True
    echo_gain: float = 0.0  # file input only: mix the skill's own speech into the input
    night_hours: tuple[float, float] = (NIGHT_START_H, NIGHT_END_H)
    routines: dict[str, Routine] = field(default_factory=dict)
    phrases: PhraseTable | None = None  # default: the built-in English phrases


def is_night(hour: float, night: tuple[float, float]) -> bool:
    start, end = night
    return hour >= start or hour < end if start > end else start <= hour < end


def routine_chooser(routines: dict[str, Routine], hour_at_start: float,
                    night: tuple[float, float] = (NIGHT_START_H, NIGHT_END_H)) -> Callable[[Intent, float], str]:
    """Which routine a trigger starts: what was said first, then the time of day."""

    def choose(intent: Intent, now_s: float) -> str:
        hint = intent.slots.get("routine")
        if hint == "gentle" and "gentle" in routines:
            return "gentle"
        if hint == "workout" and "workout-cramp" in routines:
            return "workout-cramp"
        hour = (hour_at_start + now_s / 3600.0) % 24
        preferred = "night-cramp" if is_night(hour, night) else "workout-cramp"
        for rid in (preferred, "night-cramp", "workout-cramp"):
            if rid in routines:
                return rid
        return next(r.id for r in routines.values() if r.context == "active-cramp")

    return choose


def make_recognizer(options: RunOptions, phrases: list[str]) -> tuple[Recognizer, str]:
    from voice_skill.asr.select import build_recognizer

    return build_recognizer(options.asr, options.model, phrases)


def _coach(options: RunOptions) -> Coach:
    routines = options.routines or builtin_routines()
    hour = options.hour if options.hour is not None else local_hour_fraction()
    return Coach(routines, choose_routine=routine_chooser(routines, hour, options.night_hours),
                 base_pace=options.pace)


def _virtual_renderer(options: RunOptions, events: EventLog):
    """How long each utterance takes on the virtual clock, and its sound when real TTS is asked for."""
    from voice_skill.speaker import estimate_seconds

    if options.speaker == "tts":
        from voice_skill.errors import DeviceError
        from voice_skill.speaker import Pyttsx3Voice

        try:
            voice = Pyttsx3Voice(rate=options.rate_wpm, volume=options.volume)
        except DeviceError as exc:
            events.write(0.0, "warning", text=f"{exc}; timing speech by estimate")
        else:
            def render(text: str):
                audio = voice.synthesize(text)
                return len(audio) / 16000.0, audio

            return render
    return lambda text: (estimate_seconds(text, options.rate_wpm), None)


def run_file(path: str, options: RunOptions, events_stream: IO[str] | None,
             recognizer: Recognizer | None = None, listeners: list | None = None) -> Session:
    """Run the whole loop on a recording, on the virtual clock. Raises InputFileError
    (before any event is written) for a bad file."""
    chunks: Iterator[AudioChunk] = iter_wav_chunks(path, options.chunk_s)
    first = next(chunks, None)  # surfaces a bad file before anything else happens
    table = options.phrases or PhraseTable.load()
    description = None
    if recognizer is None:
        recognizer, description = make_recognizer(options, table.phrases())
    clock = VirtualClock()
    events = EventLog(events_stream)
    events.listeners.extend(listeners or [])
    if description:
        events.write(0.0, "engine", asr=recognizer.name, detail=description)
    for word in getattr(recognizer, "missing_words", ()) or ():
        events.write(0.0, "warning", text=f"the speech model lacks the word '{word}'")
    speaker = VirtualSpeaker(clock, _virtual_renderer(options, events))
    session = Session(recognizer=recognizer, parser=IntentParser(table), coach=_coach(options),
                      speaker=speaker, clock=clock, events=events, guard=EchoGuard(),
                      echo_gain=options.echo_gain)
    if first is not None:
        session.feed(first)
        for chunk in chunks:
            session.feed(chunk)
    session.end_of_stream()
    return session


class Stopper:
    """Turns SIGINT/SIGTERM into a flag the live loop checks between chunks."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "Stopper":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, lambda *_: self.event.set())
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_live(options: RunOptions, events_stream: IO[str] | None, announce: Callable[[str], None],
             input_device: str | None = None, output_device: str | None = None) -> int:
    """Listen on the microphone and speak on the loudspeaker until stopped."""
    from voice_skill.live import MicrophoneSource, check_input_device
    from voice_skill.speaker import open_speaker

    check_input_device(input_device)
    table = options.phrases or PhraseTable.load()
    recognizer, description = make_recognizer(options, table.phrases())
    announce(description)
    clock = RealClock()
    events = EventLog(events_stream)
    events.write(clock.now(), "engine", asr=recognizer.name, detail=description)
    for word in getattr(recognizer, "missing_words", ()) or ():
        events.write(clock.now(), "warning", text=f"the speech model lacks the word '{word}'")
    speaker, warning = open_speaker(options.speaker if options.speaker != "none" else "none", clock,
                                    rate=options.rate_wpm, volume=options.volume, device=output_device)
    if warning:
        events.write(clock.now(), "warning", text=warning)
    session = Session(recognizer=recognizer, parser=IntentParser(table), coach=_coach(options),
                      speaker=speaker, clock=clock, events=events, guard=EchoGuard())
    mic = MicrophoneSource(device=input_device, clock=clock)
    announce("Listening. Say \"calf cramp\" when you need me; Ctrl-C to quit.")
    try:
        with Stopper() as stopper:
            while not stopper.event.is_set():
                due = session._next_due()
                wait = 0.05 if due is None else min(0.05, max(0.0, due - clock.now()))
                chunk = mic.read(timeout=wait)
                if chunk is not None:
                    session.feed(chunk)
                else:
                    session.advance_to(clock.now())
                status = mic.poll_status() if hasattr(mic, "poll_status") else None
                if status:
                    events.write(clock.now(), "warning", text=status)
    finally:
        mic.close()
        speaker.close()
    return 0
