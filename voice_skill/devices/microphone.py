"""The live microphone as an AudioChunk source.

A sounddevice ``RawInputStream`` whose callback only copies bytes into a bounded queue.
Overflows are counted, never waited on. ``read()`` turns those bytes into 16 kHz mono
int16 ``AudioChunk``s stamped with stream time: seconds of audio since the source
opened. ``to_clock(start_s)`` converts a chunk time to the injected clock, so
recognised speech can be set against the speaker's event times (the self-hearing
guard). Time lost while the device was away is added to stream time, which therefore
keeps pace with the clock.

If the device cannot open at 16 kHz it is opened at its native rate (and channel count)
and converted with ``voice_skill.audio.pcm.Resampler``.

A lost device (a stream that stops, reports errors, or stops delivering audio) is
reported once through ``poll_status()``. Reopening is then tried every
``reopen_every_s`` seconds from within ``read()``, which blocks for its timeout rather
than spinning.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from typing import Any, Iterator

import numpy as np

from voice_skill.audio.pcm import SAMPLE_RATE, AudioChunk, Resampler, float_to_int16
from voice_skill.devices.devicewatch import REOPEN_BACKOFF, DeviceStatus, DeviceWatch
from voice_skill.devices.portaudio import close_stream, format_refused, import_sounddevice
from voice_skill.errors import DeviceError
from voice_skill.core.clock import Clock

log = logging.getLogger(__name__)

_SETTLE_BLOCKS = 10
NO_MICROPHONE = "No microphone found. To try the skill on a recording instead: voice-skill run --input FILE.wav"


def check_input_device(device: int | str | None = None) -> dict[str, Any]:
    """Return the input device's description, or raise DeviceError in one clear sentence."""
    sd = import_sounddevice()
    try:
        info = sd.query_devices(device, "input")
    except (ValueError, sd.PortAudioError) as exc:
        if device is None:
            raise DeviceError(NO_MICROPHONE) from None
        raise DeviceError(f"Microphone {device!r} not found ({exc}). "
                          "To try the skill on a recording instead: voice-skill run --input FILE.wav") from None
    if int(info.get("max_input_channels", 0)) < 1:
        raise DeviceError(NO_MICROPHONE)
    return dict(info)


class MicrophoneSource:
    """16 kHz mono int16 AudioChunks from a live input device."""

    def __init__(self, device: int | str | None = None, block_s: float = 0.02, clock: Clock | None = None,
                 *, queue_s: float = 10.0, reopen_every_s: float = 2.0, stall_s: float = 1.0,
                 startup_s: float = 5.0) -> None:
        if clock is None:
            raise ValueError("MicrophoneSource needs a clock (voice_skill.core.clock.RealClock for live use)")
        if block_s <= 0:
            raise ValueError("block_s must be positive")
        self.device = device
        self.block_s = block_s
        self.stall_s = max(stall_s, 5 * block_s)
        # PulseAudio takes up to ~2 s to deliver the first block of a new stream.
        self.startup_s = max(startup_s, self.stall_s)
        self._got_data = False
        self._clock = clock
        self._sd = import_sounddevice()
        self._queue: queue.Queue[tuple[bytes, float]] = queue.Queue(maxsize=max(4, int(queue_s / block_s)))
        self.overflows = 0  # blocks dropped because nobody read them in time
        self.device_overflows = 0  # the device reported input overflow
        self._watch = DeviceWatch(clock, "microphone", reopen_every_s)
        self._stream: Any = None
        self._closed = False
        self._emitted = 0  # 16 kHz samples handed out so far
        self._gap_s = 0.0  # stream time added for outages
        self._last_data_t = 0.0
        self._offsets: deque[float] = deque(maxlen=max(10, int(2.0 / block_s)))  # recent capture_t - start_s
        check_input_device(device)
        self._open()

    # -- device

    def _open(self) -> None:
        sd = self._sd
        info = sd.query_devices(self.device, "input")
        native = int(info.get("default_samplerate") or SAMPLE_RATE)
        max_ch = int(info.get("max_input_channels") or 1)
        attempts = [(SAMPLE_RATE, 1)]
        if native != SAMPLE_RATE:
            attempts.append((native, 1))
        if max_ch > 1:
            attempts.append((native, min(2, max_ch)))
        last: Exception | None = None
        for rate, channels in attempts:
            try:
                stream = sd.RawInputStream(samplerate=rate, channels=channels, dtype="int16", device=self.device,
                                           blocksize=max(1, int(round(rate * self.block_s))), latency="low",
                                           callback=self._callback)
                self._rate, self._channels = rate, channels
                self._resampler = Resampler(rate, SAMPLE_RATE) if rate != SAMPLE_RATE else None
                self._last_data_t = self._clock.now()
                self._got_data = False
                self._blocks_since_open = 0
                self._early_offsets: list[float] = []
                stream.start()
            except Exception as exc:
                last = exc
                if not format_refused(exc):
                    break  # gone or busy: no other format opens it, and each try is a risk
                continue
            self._stream = stream
            log.info("microphone %r at %d Hz, %d channel(s), latency %.1f ms", info.get("name"), rate, channels,
                     1000 * stream.latency)
            return
        raise DeviceError(f"cannot open the microphone {info.get('name')!r}: {last}")

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        now = self._clock.now()
        if status.input_overflow:
            self.device_overflows += 1
        # Clock time at which the first sample of this block was captured.
        age = time_info.currentTime - time_info.inputBufferAdcTime
        if not 0.0 <= age < 2.0:
            age = frames / self._rate
        try:
            self._queue.put_nowait((bytes(indata), now - age))
        except queue.Full:
            self.overflows += 1

    def _mark_lost(self, why: str) -> None:
        if self._watch.lost:
            return
        self._close_stream()
        self._watch.mark_lost(f"the microphone stopped working ({why}); trying to reopen it every "
                              f"{self.reopen_every_s:g} to {REOPEN_BACKOFF * self.reopen_every_s:g} s")

    def _try_reopen(self) -> None:
        if self._watch.try_reopen(self._open, "the microphone works again"):
            # Keep stream time in step with the clock across the outage.
            self._gap_s += max(0.0, self._clock.now() - self._watch.lost_at_t)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        close_stream(stream, "input")
        while True:  # drop what the old stream left
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    # -- public API

    @property
    def lost(self) -> bool:
        return self._watch.lost

    @property
    def reopen_every_s(self) -> float:
        return self._watch.reopen_every_s

    @property
    def rate(self) -> int:
        """The rate the device actually runs at (chunks are always 16 kHz)."""
        return self._rate

    def poll_status(self) -> list[DeviceStatus]:
        return self._watch.poll()

    @property
    def clock_offset_s(self) -> float | None:
        """Clock time of stream time 0 (None before any audio).

        Each block gives an estimate: the time the callback ran, less the age PortAudio
        reports for the block, less the block's stream time. Delivery only ever makes an
        estimate too late (blocks that arrive in a burst after a stall look younger than
        they are), so the smallest estimate of the last ~2 s is used. The window
        follows drift between the sound card's clock and the system's, and samples the
        audio system drops unannounced (a PulseAudio virtual source dropped 0.5 s when
        its master sink woke up; see tests/pulse.py). The first
        blocks after opening are left out: with PulseAudio they were seen to be up to
        0.3 s early.
        """
        if self._offsets:
            return min(self._offsets)
        return float(np.median(self._early_offsets)) if self._early_offsets else None

    def to_clock(self, start_s: float) -> float | None:
        """The clock time at which stream time ``start_s`` was captured (None before any audio)."""
        offset = self.clock_offset_s
        return None if offset is None else offset + start_s

    def read(self, timeout: float | None = None) -> AudioChunk | None:
        """The next chunk, or None if none arrived within ``timeout`` (or the device is lost)."""
        if self._closed:
            return None
        if self._watch.lost:
            self._try_reopen()
            if self._watch.lost:
                threading.Event().wait(min(timeout if timeout is not None else self.reopen_every_s,
                                           max(0.0, self._watch.next_reopen_t - self._clock.now())))
                return None
        try:
            raw, captured_t = self._queue.get(timeout=timeout if timeout is not None else self.stall_s)
        except queue.Empty:
            self._check_alive()
            return None
        self._last_data_t = self._clock.now()
        self._got_data = True
        return self._convert(raw, captured_t)

    def _check_alive(self) -> None:
        stream = self._stream
        if stream is None or self._closed:
            return
        try:
            active = stream.active
        except Exception as exc:
            self._mark_lost(str(exc))
            return
        if not active:
            self._mark_lost("the input stream stopped")
        else:
            limit = self.stall_s if self._got_data else self.startup_s
            if self._clock.now() - self._last_data_t > limit:
                self._mark_lost(f"no audio for {limit:g} s")

    def _convert(self, raw: bytes, captured_t: float) -> AudioChunk:
        samples = np.frombuffer(raw, dtype="<i2")
        if self._channels > 1 or self._resampler is not None:
            x = samples.astype(np.float32) / 32768.0
            if self._channels > 1:
                x = x.reshape(-1, self._channels).mean(axis=1)
            if self._resampler is not None:
                x = self._resampler.process(x)
            raw = float_to_int16(x)
        start_s = self._gap_s + self._emitted / SAMPLE_RATE
        self._blocks_since_open += 1
        if self._blocks_since_open <= _SETTLE_BLOCKS:
            self._early_offsets.append(captured_t - start_s)
        else:
            self._offsets.append(captured_t - start_s)
        self._emitted += len(raw) // 2
        return AudioChunk(raw, start_s=start_s)

    def __iter__(self) -> Iterator[AudioChunk]:
        while not self._closed:
            chunk = self.read(timeout=self.stall_s)
            if chunk is not None and chunk.audio:
                yield chunk

    def close(self) -> None:
        self._closed = True
        self._close_stream()

    def __enter__(self) -> "MicrophoneSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
