"""The loudspeaker: play a ``Voice``'s samples ourselves through a sounddevice stream,
report exact start and end times, cut off at once for barge-in.

pyttsx3 is never allowed to play anything: its espeak-ng driver returns before playback
ends, speaks only the last of several queued sentences and cannot be stopped. Each
synthesis builds a fresh engine under a process-wide lock and saves to a file; the
measurements behind that choice are in docs/pyttsx3.md.

One module on purpose: the playback thread, its device loss and return, and the printed
fallback (``TextSpeaker`` prints on the same estimated timing) share one stream's state.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

import numpy as np

from voice_skill.audio.aec import OutputTape
from voice_skill.audio.pcm import SAMPLE_RATE, Resampler, float_to_int16
from voice_skill.errors import DeviceError
from voice_skill.core.clock import Clock
from voice_skill.devices.devicewatch import REOPEN_BACKOFF, DeviceStatus, DeviceWatch, StatusKind
from voice_skill.devices.portaudio import close_stream, format_refused, import_sounddevice
from voice_skill.core.speechtime import DEFAULT_RATE_WPM, estimate_seconds
from voice_skill.tts.base import EventKind, SpeechEvent, Voice

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- speakers

class _Events:
    """Thread-safe event list with the ``poll`` semantics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[SpeechEvent] = []

    def add(self, event: SpeechEvent) -> None:
        log.debug("speech %s #%d at %.3f: %s", event.kind, event.utterance_id, event.t, event.text)
        with self._lock:
            self._items.append(event)

    def take(self) -> list[SpeechEvent]:
        with self._lock:
            items, self._items = self._items, []
        return items


@dataclass(eq=False)
class _Playback:
    """One utterance on its way through the output callback."""

    utterance_id: int
    text: str
    samples: np.ndarray  # int16 at the stream's rate
    pos: int = 0
    cancel_requested: bool = False
    handoff_t: float | None = None  # clock time the first sample was handed to the device
    end_t: float | None = None  # clock time the last sample (or the cut) is heard
    outcome: str | None = None  # "finished" or "cancelled"
    started: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class SoundSpeaker:
    """Plays synthesised speech through a sounddevice callback stream on one thread.

    ``started`` is stamped when the first sample is handed to the device, ``finished``
    when the last sample has been heard (the device's output latency included), and
    ``cancelled`` when the cut is heard. The clock must run in real time.

    Failures never stall a routine. If the output device stops taking audio, the
    speaker reports it once through ``poll_status()``, prints the sentences to
    ``fallback_stream`` on their estimated timing, and tries to reopen the device every
    ``reopen_every_s`` seconds. If synthesis fails (see ``supervise.ProcessVoice`` for
    the engine that hangs), that sentence is printed instead. ``close_voice`` is called
    on ``close()`` first, so a synthesis in progress cannot hold shutdown up.
    """

    # 60 ms of output buffer, not PortAudio's "low" (20 ms through PulseAudio): with the
    # echo canceller and the recognizer's pipe on the main thread, "low" underran about
    # 4 times a second in the live room test; each underrun is a click for the user and
    # shifts the echo against the output tape. Open problem: on a heavily loaded two-core
    # machine 60 ms still underran 24 to 846 times for two sentences, and what underran was
    # never played; 100 ms did not underrun there, but lost the first "pause" said over the
    # skill in 3 of 3 live self-hearing runs (60 ms: 2 of 3), so it is not the default yet.
    def __init__(self, voice: Voice, clock: Clock, device: int | str | None = None,
                 *, blocksize_s: float = 0.01, latency: str | float = 0.06,
                 warmup_timeout_s: float = 4.0, reopen_every_s: float = 2.0,
                 fallback_stream: TextIO | None = None, close_voice: Callable[[], None] | None = None) -> None:
        self._voice = voice
        self._clock = clock
        self._events = _Events()
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, int]] = deque()
        self._current: _Playback | None = None
        self._in_progress: tuple[str, int] | None = None  # being synthesised or played
        self._generation = 0
        self._closed = False
        self._wake = threading.Event()
        self.underflows = 0
        self.failures = 0
        self._callbacks = 0
        self._warm_after = 1 << 62
        self._warm = threading.Event()
        self.output_latency_s = 0.0
        self._device = device
        self._blocksize_s = blocksize_s
        self._latency = latency
        self._warmup_timeout_s = warmup_timeout_s
        self._fallback_stream = fallback_stream
        self._close_voice = close_voice
        self._watch = DeviceWatch(clock, "speech output", reopen_every_s)
        self._sd = import_sounddevice()
        self.tape: OutputTape | None = None
        self._stream, self.rate = self._open(self._sd, device, blocksize_s, latency)
        self.output_latency_s = float(self._stream.latency)
        # Everything played, for the echo canceller (16 kHz only: it compares samples).
        self.tape = OutputTape(SAMPLE_RATE) if self.rate == SAMPLE_RATE else None
        self._wait_warm(blocksize_s, warmup_timeout_s)
        self.underflows = 0  # count only those after the start-up stall
        self._resample = self.rate != SAMPLE_RATE
        self._thread = threading.Thread(target=self._run, name="speaker", daemon=True)
        self._thread.start()

    # -- device

    def _open(self, sd: Any, device: int | str | None, blocksize_s: float, latency: str | float) -> tuple[Any, int]:
        try:
            info = sd.query_devices(device, "output")
        except Exception as exc:
            raise DeviceError(f"no audio output device ({exc})") from None
        rates = [SAMPLE_RATE]
        native = int(info.get("default_samplerate") or 0)
        if native and native != SAMPLE_RATE:
            rates.append(native)
        last: Exception | None = None
        for rate in rates:
            try:
                stream = sd.OutputStream(samplerate=rate, channels=1, dtype="int16", device=device,
                                         blocksize=max(1, int(rate * blocksize_s)), latency=latency,
                                         callback=self._callback)
                stream.start()
            except Exception as exc:
                last = exc
                if not format_refused(exc):
                    break  # gone or busy: no other rate opens it
                continue
            log.info("speech output on %r at %d Hz, latency %.1f ms", info.get("name"), rate, 1000 * stream.latency)
            return stream, rate
        raise DeviceError(f"cannot open the audio output device {info.get('name')!r}: {last}")

    def _wait_warm(self, blocksize_s: float, timeout_s: float) -> None:
        """Wait until the device pulls audio steadily.

        PulseAudio (seen with null sinks through ALSA's pulse plugin) pre-fills a new
        stream and then stalls it for 0.3 to 1.7 s. Without this wait the first
        utterance starts that much late. A device that never pulls audio is unusable.
        """
        self._warm_after = self._callbacks + int((self.output_latency_s + 0.1) / blocksize_s) + 4
        if self._callbacks >= self._warm_after:
            self._warm.set()
        if not self._warm.wait(timeout_s):
            calls = self._callbacks
            self._close_stream()
            raise DeviceError(f"the audio output device is not playing (only {calls} callbacks in {timeout_s:g} s)")

    def report(self, kind: StatusKind, message: str) -> None:
        self._watch.report(kind, message)

    def poll_status(self) -> list[DeviceStatus]:
        """Changes in the output's state since the last call (lost, restored, engine trouble)."""
        return self._watch.poll()

    @property
    def lost(self) -> bool:
        return self._watch.lost

    @property
    def reopen_every_s(self) -> float:
        return self._watch.reopen_every_s

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            close_stream(stream, "output")

    def _mark_lost(self, why: str) -> None:
        self._close_stream()
        self._watch.mark_lost(f"the speech output stopped working ({why}); printing instructions and trying to "
                              f"reopen it every {self.reopen_every_s:g} to {REOPEN_BACKOFF * self.reopen_every_s:g} s")

    def _try_reopen(self) -> None:
        self._watch.try_reopen(self._reopen, "the speech output works again")

    def _reopen(self) -> None:
        stream, rate = self._open(self._sd, self._device, self._blocksize_s, self._latency)
        self._stream, self.rate = stream, rate
        self._resample = rate != SAMPLE_RATE
        self.output_latency_s = float(stream.latency)
        self._warm.clear()
        self._wait_warm(self._blocksize_s, self._warmup_timeout_s)  # closes an output that does not play

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = self._clock.now()
        self._callbacks += 1
        if self._callbacks >= self._warm_after:
            self._warm.set()
        if status.output_underflow:
            self.underflows += 1
        lat = time_info.outputBufferDacTime - time_info.currentTime
        if not 0.0 <= lat < 2.0:
            lat = self.output_latency_s
        heard_t = now + lat  # when outdata[0] will be heard
        try:
            self._fill(outdata, frames, now, heard_t)
        finally:
            if self.tape is not None and self.rate == self.tape.rate:
                self.tape.write(outdata[:, 0], heard_t, underrun=bool(status.output_underflow))

    def _fill(self, outdata: np.ndarray, frames: int, now: float, heard_t: float) -> None:
        p = self._current
        if p is None or p.done.is_set():
            outdata.fill(0)
            return
        if p.cancel_requested:
            outdata.fill(0)
            p.end_t = heard_t
            p.outcome = "cancelled"
            p.done.set()
            return
        if p.pos == 0:
            p.handoff_t = now
            p.started.set()
        n = min(frames, len(p.samples) - p.pos)
        outdata[:n, 0] = p.samples[p.pos:p.pos + n]
        outdata[n:] = 0
        p.pos += n
        if p.pos >= len(p.samples):
            p.end_t = heard_t + n / self.rate
            p.outcome = "finished"
            p.done.set()

    # -- public API

    def say(self, text: str, utterance_id: int) -> None:
        with self._cond:
            if self._closed:
                raise DeviceError("the speaker is closed")
            self._queue.append((text, utterance_id))
            self._cond.notify()

    def cancel(self) -> None:
        now = self._clock.now()
        with self._cond:
            dropped = list(self._queue)
            self._queue.clear()
            self._generation += 1
            if self._current is not None:
                self._current.cancel_requested = True
            self._wake.set()
        for text, uid in dropped:
            self._events.add(SpeechEvent("cancelled", uid, now, text))

    def poll(self) -> list[SpeechEvent]:
        return self._events.take()

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._queue) or self._in_progress is not None

    def next_event_time(self) -> float | None:
        return None  # driven by the device, reported through poll()

    def played(self, start_s: float, n_samples: int) -> np.ndarray | None:
        return None  # the output tape (``tape``) holds what was played

    def close(self) -> None:
        """Stop speaking and release the device and the engine, within about a second."""
        self.cancel()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._close_voice is not None:
            try:
                self._close_voice()
            except Exception as exc:
                log.debug("closing the speech engine: %s", exc)
        self._thread.join(timeout=1.0)
        self._close_stream()
        if self.underflows:
            moved = f"; the echo tape moved {self.tape.moves} times, {1000 * self.tape.moved_s:+.0f} ms in all" \
                if self.tape is not None else ""
            log.info("speech output: %d underruns%s", self.underflows, moved)

    def __enter__(self) -> "SoundSpeaker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- worker thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                text, uid = self._queue.popleft()
                self._in_progress = (text, uid)
                generation = self._generation
                self._wake.clear()
            try:
                self._speak(text, uid, generation)
            except Exception:
                self.failures += 1
                log.exception("speaking utterance %d failed", uid)
                self._events.add(SpeechEvent("finished", uid, self._clock.now(), text))
            finally:
                with self._cond:
                    self._current = None
                    self._in_progress = None

    def _speak(self, text: str, uid: int, generation: int) -> None:
        try:
            samples = self._voice.synthesize(text)
        except DeviceError as exc:
            if self._closed:
                self._events.add(SpeechEvent("cancelled", uid, self._clock.now(), text))
                return
            self.failures += 1
            self.report("engine", f"{exc.message}; printing this instruction instead")
            self._speak_text(text, uid, generation)
            return
        if self._watch.lost:
            self._try_reopen()
        if self._watch.lost or self._stream is None:
            self._speak_text(text, uid, generation)
            return
        if self._resample and len(samples):
            res = Resampler(SAMPLE_RATE, self.rate)
            samples = np.frombuffer(float_to_int16(res.process(samples.astype(np.float32) / 32768.0, final=True)), "<i2")
        with self._cond:
            if generation != self._generation or len(samples) == 0:
                cut = generation != self._generation
                self._events.add(SpeechEvent("cancelled" if cut else "finished", uid, self._clock.now(), text))
                return
            p = _Playback(uid, text, samples)
            self._current = p
        try:
            self._play(p)
        except DeviceError as exc:
            with self._cond:
                self._current = None
            self._mark_lost(exc.message)
            self._speak_text(text, uid, generation, started=p.handoff_t is not None)

    def _play(self, p: _Playback) -> None:
        duration = len(p.samples) / self.rate
        watchdog = duration + 2.0 + 4 * self.output_latency_s
        if not p.started.wait(2.0 + self.output_latency_s) and not p.done.is_set():
            raise DeviceError("the audio output device stopped taking audio")
        if p.handoff_t is not None:
            self._events.add(SpeechEvent("started", p.utterance_id, p.handoff_t, p.text))
        if not p.done.wait(watchdog):
            raise DeviceError("the audio output device stopped playing")
        if p.end_t is None:  # done is only set together with end_t
            raise DeviceError("the audio output reported an end without a time")
        # Report the end only once it has been heard.
        limit = max(0.0, p.end_t - self._clock.now()) + 0.5
        waited = 0.0
        while self._clock.now() < p.end_t and waited < limit:
            step = min(0.01, max(0.001, p.end_t - self._clock.now()))
            self._sleep(step)
            waited += step
        kind: EventKind = "finished" if p.outcome == "finished" else "cancelled"
        self._events.add(SpeechEvent(kind, p.utterance_id, p.end_t, p.text))

    def _speak_text(self, text: str, uid: int, generation: int, *, started: bool = False) -> None:
        """Print the sentence and take as long as saying it would (interrupted by cancel)."""
        now = self._clock.now()
        if generation != self._generation:
            self._events.add(SpeechEvent("cancelled", uid, now, text))
            return
        if not started:
            self._events.add(SpeechEvent("started", uid, now, text))
        stream = self._fallback_stream if self._fallback_stream is not None else sys.stdout
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError):
            pass
        rate = getattr(self._voice, "rate", DEFAULT_RATE_WPM) or DEFAULT_RATE_WPM
        cut = self._wake.wait(estimate_seconds(text, rate))
        kind: EventKind = "cancelled" if cut or generation != self._generation else "finished"
        self._events.add(SpeechEvent(kind, uid, self._clock.now(), text))

    def _sleep(self, seconds: float) -> None:
        threading.Event().wait(seconds)


class TextSpeaker:
    """Prints each instruction instead of speaking it; timing follows ``estimate_seconds``.

    An utterance starts when the previous one would have finished (or when it was
    queued, if later), and is printed then. Works with a virtual clock: events appear
    as the clock reaches them.
    """

    def __init__(self, clock: Clock, stream: TextIO | None = None, rate_wpm: float = DEFAULT_RATE_WPM) -> None:
        self._clock = clock
        self._stream = stream if stream is not None else sys.stdout
        self.rate_wpm = rate_wpm
        self._lock = threading.RLock()
        self._queue: deque[tuple[str, int, float]] = deque()
        self._current: tuple[str, int, float, float] | None = None  # text, id, start, end
        self._last_end = float("-inf")
        self._events = _Events()

    def _advance(self) -> None:
        now = self._clock.now()
        while True:
            if self._current is not None:
                text, uid, _start, end = self._current
                if end > now:
                    return
                self._events.add(SpeechEvent("finished", uid, end, text))
                self._last_end = end
                self._current = None
            if not self._queue:
                return
            text, uid, said_t = self._queue[0]
            start = max(said_t, self._last_end)
            if start > now:
                return
            self._queue.popleft()
            end = start + estimate_seconds(text, self.rate_wpm)
            self._current = (text, uid, start, end)
            self._events.add(SpeechEvent("started", uid, start, text))
            print(text, file=self._stream, flush=True)

    def say(self, text: str, utterance_id: int) -> None:
        with self._lock:
            self._queue.append((text, utterance_id, self._clock.now()))
            self._advance()

    def cancel(self) -> None:
        with self._lock:
            self._advance()
            now = self._clock.now()
            if self._current is not None:
                text, uid, _start, _end = self._current
                self._events.add(SpeechEvent("cancelled", uid, now, text))
                self._last_end = now
                self._current = None
            for text, uid, _said in self._queue:
                self._events.add(SpeechEvent("cancelled", uid, now, text))
            self._queue.clear()

    def poll(self) -> list[SpeechEvent]:
        with self._lock:
            self._advance()
        return self._events.take()

    @property
    def busy(self) -> bool:
        with self._lock:
            self._advance()
            return self._current is not None or bool(self._queue)

    def next_event_time(self) -> float | None:
        return None  # driven by the device, reported through poll()

    def played(self, start_s: float, n_samples: int) -> np.ndarray | None:
        return None  # printed, not played

    def close(self) -> None:
        with self._lock:
            self._queue.clear()
            self._current = None
