"""Assembling a session from options, for recordings and for the live microphone.

``run_chunks`` is the one replay path: ``run_file`` (the command line's ``--input``) feeds
it a recording, the tests and benchmarks feed it recordings, and the soak feeds it hours
of generated audio.

One module on purpose: the file and live paths assemble the same session from the same
settings; kept side by side, they cannot assemble it differently.
"""

from __future__ import annotations

import functools
import itertools
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Callable, Iterable, Iterator

from voice_skill import NOTICE
from voice_skill.audio.aec import AlignedEchoCanceller, ReferencedEchoCanceller
from voice_skill.audio.echotape import EchoTape
from voice_skill.audio.room import RoomEcho
from voice_skill.asr.base import Recognizer
from voice_skill.audio.pcm import AudioChunk, iter_wav_chunks
from voice_skill.core.clock import RealClock, VirtualClock, local_hour_fraction
from voice_skill.core.coach import Coach
from voice_skill.core.daytime import DEFAULT_NIGHT_HOURS, is_night, rates_in_a_day
from voice_skill.core.intents import Intent, IntentParser, PhraseTable
from voice_skill.core.routine import Routine, builtin_routines, suited_routine
from voice_skill.core.echoguard import EchoGuard
from voice_skill.runtime.eventlog import EventLog
from voice_skill.runtime.session import Session
from voice_skill.tts.cache import voice_label
from voice_skill.tts.virtual import VirtualSpeaker
from voice_skill.core.speechtime import DEFAULT_RATE_WPM

if TYPE_CHECKING:
    from voice_skill.journal.store import Journal

log = logging.getLogger(__name__)

LIVE_POLL_S = 0.05  # the live loop wakes at least this often to run timers
LIVE_RECOGNIZER_BATCH = 5  # 10-ms frames handed to the recognizer at a time, live (asr.base.BatchedRecognizer)


@dataclass
class RunOptions:
    speaker: str = "none"  # none | tts
    asr: str = "auto"  # auto | pocketsphinx | vosk
    spotter: str = "auto"  # auto | on | off: the trained trigger spotter in front of the recognizer
    model: str | None = None
    moonshine: str = "auto"  # auto | off | a folder: Moonshine hears short utterances again
    chunk_s: float = 0.1
    hour: float | None = None  # local time of day at the start, for choosing routines
    rate_wpm: int = DEFAULT_RATE_WPM
    volume: float = 1.0
    voice: str | None = None
    pace: float = 1.0  # the pace each routine starts at
    chime: bool = True
    echo_cancel: bool = True  # live: take the skill's own voice out of the microphone (aec.AlignedEchoCanceller)
    echo_gain: float = 0.0  # file input only: mix the skill's own speech into the input
    night_hours: tuple[float, float] = DEFAULT_NIGHT_HOURS
    # live only: the speaking (rate, volume) for a local hour, applied before each utterance
    manners: Callable[[float], tuple[int, float]] | None = None
    routines: dict[str, Routine] = field(default_factory=dict)
    start_routine: str | None = None  # the routine a trigger starts (None: by what was said and the time of day)
    phrases: PhraseTable | None = None  # default: the built-in English phrases


def routine_chooser(routines: dict[str, Routine], hour_at_start: float,
                    night: tuple[float, float] = DEFAULT_NIGHT_HOURS,
                    fixed: str | None = None) -> Callable[[Intent, float], str]:
    """Which routine a trigger starts: what was said first, then the user's chosen routine
    (``fixed``), then the time of day, by the situations routines say they suit. A pregnancy
    hint wins over a chosen routine (light pressure only)."""

    def choose(intent: Intent, now_s: float) -> str:
        hint = intent.slots.get("routine")
        if hint == "gentle" and (gentle := suited_routine(routines, "pregnancy")):
            return gentle
        if fixed is not None and fixed in routines:
            return fixed
        if hint == "workout" and (workout := suited_routine(routines, "workout")):
            return workout
        hour = (hour_at_start + now_s / 3600.0) % 24
        # daytime does not mean a gym: the workout routine only when the words say so
        preferred = ("night", "day") if is_night(hour, night) else ("day", "night")
        for situation in (*preferred, "workout"):
            if rid := suited_routine(routines, situation):
                return rid
        return next(r.id for r in routines.values() if r.context == "active-cramp")

    return choose


def make_recognizer(options: RunOptions, table: PhraseTable) -> tuple[Recognizer, str]:
    from voice_skill.asr.select import build_recognizer

    return build_recognizer(options.asr, options.model, table.phrases(), spotter=options.spotter,
                            table=options.phrases, moonshine=options.moonshine)


def _start_hour(options: RunOptions) -> float:
    """The local time of day at the start: given, or now."""
    return options.hour if options.hour is not None else local_hour_fraction()


def _coach(options: RunOptions, hour: float) -> Coach:
    routines = options.routines or builtin_routines()
    return Coach(routines, choose_routine=routine_chooser(routines, hour, options.night_hours, options.start_routine),
                 base_pace=options.pace)


def _virtual_renderer(options: RunOptions, events: EventLog):
    """How long each utterance takes on the virtual clock, and its sound when real TTS is asked for."""
    from voice_skill.core.speechtime import estimate_seconds

    if options.speaker == "tts":
        from voice_skill.core.rehearsal import fixed_sentences
        from voice_skill.errors import DeviceError
        from voice_skill.runtime.output import open_voice

        def warn(text: str) -> None:
            events.write(0.0, "warning", text=text)

        try:
            voice, _plan = open_voice(options.voice, rate=options.rate_wpm, volume=options.volume,
                                      fixed=fixed_sentences(options.routines or None), in_process=True,
                                      on_warning=warn)
        except DeviceError as exc:
            warn(f"{exc}; timing speech by estimate")
        else:
            events.write(0.0, "voice", voice=voice_label(voice.identity), detail=voice.identity)

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
    return run_chunks(chunks if first is None else itertools.chain([first], chunks), options, events_stream,
                      recognizer=recognizer, listeners=listeners)


def run_chunks(chunks: Iterable[AudioChunk], options: RunOptions, events_stream: IO[str] | None,
               recognizer: Recognizer | None = None, listeners: list | None = None) -> Session:
    """Run the whole loop on audio chunks (16 kHz mono, in order) on the virtual clock.

    The clock follows the audio, so an hour of input costs only the recognizer's time.
    ``listeners`` receive every event record as it is written.
    """
    table = options.phrases or PhraseTable.load()
    description = None
    if recognizer is None:
        recognizer, description = make_recognizer(options, table)
    clock = VirtualClock()
    events = EventLog(events_stream)
    events.listeners.extend(listeners or [])
    if description:
        events.write(0.0, "engine", asr=recognizer.name, detail=description)
    for word in getattr(recognizer, "missing_words", ()) or ():
        events.write(0.0, "warning", text=f"the speech model lacks the word '{word}'")
    speaker = VirtualSpeaker(clock, _virtual_renderer(options, events))
    session = Session(recognizer=recognizer, parser=IntentParser(table), coach=_coach(options, _start_hour(options)),
                      speaker=speaker, clock=clock, events=events,
                      guard=EchoGuard(courtesy=table.courtesy, hears_speaker=options.echo_gain > 0),
                      room=RoomEcho(speaker.played, options.echo_gain) if options.echo_gain else None,
                      echo_canceller=ReferencedEchoCanceller(speaker.played) if options.speaker == "tts" else None)
    for chunk in chunks:
        session.feed(chunk)
    session.end_of_stream()
    return session


class Stopper:
    """Turns SIGINT/SIGTERM into a flag the live loop checks between chunks.

    The first signal sets ``event``: the loop ends and the skill closes its devices and
    children. The handlers stay in place until that clean-up is over, and a second signal
    while stopping raises KeyboardInterrupt (exit 130): a user who presses Ctrl-C twice is
    never ignored, whatever the clean-up is waiting on. ``keep()``, called by the loop,
    puts the handlers back if a library replaced them (pocketsphinx's ``AudioFile``, for
    one, installs its own SIGINT handler).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signals: list[int] = []
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        from voice_skill.runtime.supervise import STOPPING

        self.signals.append(signum)
        if self.event.is_set():
            raise KeyboardInterrupt  # the second one: stop waiting for the clean-up
        self.event.set()
        STOPPING.set()  # a recognizer being rebuilt is not waited for

    def __enter__(self) -> "Stopper":
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def keep(self) -> None:
        for sig in self.SIGNALS:
            if signal.getsignal(sig) != self._handle:
                log.warning("signal %s's handler was replaced (by %r); restoring it", sig, signal.getsignal(sig))
                signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        from voice_skill.runtime.supervise import STOPPING

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        STOPPING.clear()


def run_live(options: RunOptions, events_stream: IO[str] | None, announce: Callable[[str], None],
             input_device: str | None = None, output_device: str | None = None, *,
             journal: "Journal | None" = None, console_to_stderr: bool = False) -> int:
    """Listen on the microphone and speak on the loudspeaker until SIGINT or SIGTERM."""
    from rich.console import Console

    from voice_skill.audio.chime import ChimeVoice
    from voice_skill.journal.store import JournalRecorder
    from voice_skill.devices.microphone import MicrophoneSource, check_input_device
    from voice_skill.ui.screen import make_view
    from voice_skill.core.rehearsal import fixed_sentences
    from voice_skill.runtime.output import CacheFiller, open_speaker
    from voice_skill.asr.base import BatchedRecognizer
    from voice_skill.asr.select import build_recognizer
    from voice_skill.runtime.supervise import ProcessRecognizer, SupervisedRecognizer

    check_input_device(input_device)  # no microphone: one sentence, before any model loads
    routines = options.routines or builtin_routines()
    table = options.phrases or PhraseTable.load()
    # The recognizer runs in a child process (see supervise.ProcessRecognizer).
    factory = functools.partial(build_recognizer, options.asr, options.model, table.phrases(),
                                spotter=options.spotter, table=options.phrases, moonshine=options.moonshine)
    first = ProcessRecognizer(factory)
    description = first.description
    announce(f"Cramp coach: listening with {description}. {NOTICE}")
    clock = RealClock()
    wall_origin = datetime.now()
    events = EventLog(events_stream)
    view = make_view(Console(stderr=True) if console_to_stderr else None, clock=clock, routines=routines)
    events.listeners.append(view)
    events.write(clock.now(), "engine", asr=first.name, detail=description)
    for word in getattr(first, "missing_words", ()) or ():
        events.write(clock.now(), "warning", text=f"the speech model lacks the word '{word}'")
    # A recognizer that raises or hangs is rebuilt; listening goes on.
    recognizer = SupervisedRecognizer(lambda: ProcessRecognizer(factory),
                                      lambda text: events.write(clock.now(), "warning", text=text), first=first)
    # ... and hears the microphone a few frames at a time: a round trip to its process per 10-ms
    # frame cost more of a core than recognizing a quiet room (asr.base.BatchedRecognizer).
    recognizer = BatchedRecognizer(recognizer, LIVE_RECOGNIZER_BATCH)

    hour_at_start = _start_hour(options)

    def hour_now() -> float:  # the same time of day the routine chooser uses
        return (hour_at_start + clock.now() / 3600.0) % 24

    def night_now() -> bool:
        return options.chime and is_night(hour_now(), options.night_hours)

    manners = (lambda: options.manners(hour_now())) if options.manners is not None else None
    fixed = fixed_sentences(routines)
    speaker, voice = open_speaker(options.speaker, clock, device=output_device, rate=options.rate_wpm,
                                  volume=options.volume, voice=options.voice, fixed=fixed,
                                  stream=sys.stderr if console_to_stderr else None,
                                  wrap=lambda voice: ChimeVoice(voice, clock, night_now, manners=manners),
                                  on_warning=lambda text: events.write(clock.now(), "warning", text=text))
    if voice is not None:
        events.write(clock.now(), "voice", voice=voice_label(voice.identity), detail=voice.identity)
    try:
        mic = MicrophoneSource(device=input_device, clock=clock)
    except BaseException:
        speaker.close()
        recognizer.close()
        raise
    canceller = _live_echo_canceller(speaker) if options.echo_cancel else None
    tape = EchoTape.from_env() if canceller is not None else None
    session = Session(recognizer=recognizer, parser=IntentParser(table), coach=_coach(options, hour_at_start),
                      speaker=speaker, clock=clock, events=events, guard=EchoGuard(courtesy=table.courtesy), input_to_clock=mic.to_clock,
                      echo_canceller=canceller, echo_tape=tape)
    recorder = None
    if journal is not None:
        recorder = JournalRecorder(journal, wall_origin, routines=routines,
                                   advise=lambda flag: setattr(session.coach, "frequent_cramps", flag),
                                   on_error=lambda message: announce(f"warning: {message}"))
        events.listeners.append(recorder)
    view.start()
    filler = None
    if voice is not None:  # sentences the cache lacks are rendered while nothing is going on
        filler = CacheFiller(voice, fixed, rates_in_a_day(options.rate_wpm, options.manners),
                             busy=lambda: speaker.busy or session.coach.active).start()
    with Stopper() as stopper:  # held through the clean-up: a second signal then ends it (see Stopper)
        try:
            _live_loop(session, mic, speaker, view, events, stopper.event, keep_handlers=stopper.keep)
        finally:
            if filler is not None:
                filler.stop()
            mic.close()
            speaker.close()
            recognizer.close()
            view.stop()
            if recorder is not None:
                recorder.finish(clock.now())
            if tape is not None:
                tape.close()
            _report_alsa_repeats()
    return 0


def _report_alsa_repeats() -> None:
    from voice_skill.devices import alsalog

    collector = alsalog.installed()
    if collector is not None:
        collector.flush()


def _live_echo_canceller(speaker) -> AlignedEchoCanceller | None:
    """Echo cancelling for a loudspeaker that keeps a tape of what it played (sound output
    at 16 kHz); None otherwise (text output, or a device that only plays another rate)."""
    tape = getattr(speaker, "tape", None)
    return AlignedEchoCanceller(tape) if tape is not None else None


def _live_loop(session: Session, mic, speaker, view, events: EventLog, stop: threading.Event,
               keep_handlers: Callable[[], None] = lambda: None) -> None:
    """Feed the microphone to the session until ``stop`` is set; report device changes."""
    from voice_skill.ui.screen import level_dbfs

    clock = session.clock
    poll_output = getattr(speaker, "poll_status", None)
    while not stop.is_set():
        keep_handlers()
        due = session.next_due()
        wait = LIVE_POLL_S if due is None else min(LIVE_POLL_S, max(0.0, due - clock.now()))
        chunk = mic.read(timeout=wait)
        if chunk is not None:
            view.set_level(level_dbfs(chunk.as_array()))
            session.feed(chunk)
        else:
            session.advance_to(clock.now())
        for status in mic.poll_status():
            if status.kind == "restored":
                session.recognizer.reset()  # half an utterance from before the outage means nothing
            events.write(status.t, "warning" if status.kind == "lost" else "device", text=status.message)
            session.device_notice("microphone_lost" if status.kind == "lost" else "microphone_back")
        if poll_output is not None:
            for status in poll_output():
                events.write(status.t, "device" if status.kind == "restored" else "warning", text=status.message)
