"""Faults the skill must survive: a recognizer that raises or hangs, a speech engine that
hangs or dies, and Ctrl-C or SIGTERM in the middle of a routine.

The faulty engines are small hand-written classes injected through constructor
arguments: the fault is the subject here, not the engine.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tests.scripted import ScriptedRecognizer, routine
from voice_skill.asr.base import Hypothesis
from voice_skill.audio.pcm import AudioChunk
from voice_skill.core.clock import VirtualClock
from voice_skill.core.coach import Coach
from voice_skill.errors import DeviceError
from voice_skill.core.intents import IntentParser
from voice_skill.core.routine import routine_from_dict
from voice_skill.runtime.eventlog import EventLog
from voice_skill.runtime.session import Session
from voice_skill.tts.virtual import VirtualSpeaker
from voice_skill.runtime.supervise import ProcessVoice, SupervisedRecognizer

SILENCE = b"\0\0" * 160


# ---------------------------------------------------------------- faulty engines

class RaisingRecognizer:
    """Raises on its ``fail_at``-th accept, then behaves."""

    name = "raising"

    def __init__(self, fail_at: int = 3, hyps: list[Hypothesis] | None = None) -> None:
        self.fail_at = fail_at
        self.calls = 0
        self.hyps = list(hyps or [])

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("decoder state corrupted")
        due = [h for h in self.hyps if h.end_s <= chunk.end_s + 1e-9]
        self.hyps = [h for h in self.hyps if h not in due]
        return due

    def flush(self) -> list[Hypothesis]:
        return []

    def reset(self) -> None:
        pass


class HangingRecognizer(RaisingRecognizer):
    """Blocks forever (until released) on its ``fail_at``-th accept."""

    name = "hanging"

    def __init__(self, fail_at: int = 3, release: threading.Event | None = None) -> None:
        super().__init__(fail_at)
        self.release = release or threading.Event()

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        self.calls += 1
        if self.calls == self.fail_at:
            self.release.wait()
        return []


class ToneVoice:
    """A speech engine stand-in: a short tone per sentence. Picklable (runs in a child)."""

    def __init__(self, rate: int = 160, volume: float = 1.0) -> None:
        self.rate = rate
        self.volume = volume

    def synthesize(self, text: str) -> np.ndarray:
        n = 160 * max(1, len(text))
        return (np.sin(np.arange(n) * 0.2) * 8000).astype(np.int16)


class HangOnceVoice(ToneVoice):
    """Hangs (as pyttsx3 is known to on Linux) the first time it is asked for ``hang_on``;
    a marker file makes "first" hold across process restarts."""

    def __init__(self, marker: str, hang_on: str = "hang", **kw) -> None:
        super().__init__(**kw)
        self.marker = marker
        self.hang_on = hang_on

    def synthesize(self, text: str) -> np.ndarray:
        if self.hang_on in text and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            threading.Event().wait()  # forever
        return super().synthesize(text)


class DyingVoice(ToneVoice):
    """The engine's process dies mid-sentence (a crash in native code)."""

    def synthesize(self, text: str) -> np.ndarray:
        if "die" in text:
            os._exit(3)
        return super().synthesize(text)


class SlowlyDyingVoice(ToneVoice):
    """The engine's process is on its way out: its files (the pipe to the parent) are
    closed, but it has not yet exited, as every dying process is for a moment."""

    def synthesize(self, text: str) -> np.ndarray:
        if "die" in text:
            os.closerange(3, 1024)
            threading.Event().wait(60)  # ended by the parent long before this
            os._exit(3)
        return super().synthesize(text)


class BrokenVoice:
    """The engine cannot start (espeak-ng missing, say)."""

    def __init__(self) -> None:
        raise DeviceError("no speech engine: espeak-ng is not installed")


# ---------------------------------------------------------------- recognizer supervisor

def _feed(rec, n: int, start: float = 0.0) -> list[Hypothesis]:
    out = []
    for i in range(n):
        out += rec.accept(AudioChunk(SILENCE, start + i * 0.01))
    return out


def test_a_recognizer_that_raises_is_rebuilt_and_listening_goes_on() -> None:
    built: list[RaisingRecognizer] = []

    def factory() -> RaisingRecognizer:
        rec = RaisingRecognizer(fail_at=3 if not built else 10**9,
                                hyps=[Hypothesis("calf cramp", 0.9, 0.2, 0.5)])
        built.append(rec)
        return rec

    warnings: list[str] = []
    sup = SupervisedRecognizer(factory, warnings.append, budget_s=2.0)
    hyps = _feed(sup, 100)
    sup.close()
    assert len(built) == 2 and sup.restarts == 1
    assert len(warnings) == 1 and "failed" in warnings[0] and "decoder state corrupted" in warnings[0]
    assert [h.text for h in hyps] == ["calf cramp"]  # heard by the rebuilt recognizer


def test_a_recognizer_that_hangs_is_abandoned_and_rebuilt() -> None:
    release = threading.Event()
    built: list[HangingRecognizer] = []

    def factory() -> HangingRecognizer:
        rec = HangingRecognizer(fail_at=2 if not built else 10**9, release=release)
        built.append(rec)
        return rec

    warnings: list[str] = []
    sup = SupervisedRecognizer(factory, warnings.append, budget_s=0.3)
    # If the supervisor waited on the hung call for good, this would free it after a minute
    # and the test would fail on the counts below, not hang the run.
    watchdog = threading.Timer(60.0, release.set)
    watchdog.start()
    try:
        _feed(sup, 50)
    finally:
        watchdog.cancel()
    hung_then = not release.is_set()
    release.set()
    sup.close()
    assert hung_then, "the feed only went on because the hung call was released"
    assert len(built) == 2 and sup.restarts == 1
    assert len(warnings) == 1 and "did not answer within 0.3 s" in warnings[0]
    assert built[1].calls == 50 - 2  # every later frame went to the new one


def test_a_factory_that_keeps_failing_does_not_spin() -> None:
    calls = []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            return RaisingRecognizer(fail_at=1)
        raise RuntimeError("model file vanished")

    now = [0.0]  # the supervisor's clock for spacing rebuilds; 100 frames of 10 ms on it
    warnings: list[str] = []
    sup = SupervisedRecognizer(factory, warnings.append, budget_s=1.0, rebuild_every_s=0.2,
                               monotonic=lambda: now[0])
    for i in range(100):
        now[0] = i * 0.01
        assert sup.accept(AudioChunk(SILENCE, now[0])) == []
    sup.close()
    assert len(warnings) == 1
    # built once; failed at 0.00 and rebuilt at once (failing); then retried every 0.2 s:
    # 0.20, 0.40, 0.60, 0.80. Not once per frame.
    assert len(calls) == 6


def test_a_session_keeps_coaching_through_a_recognizer_failure() -> None:
    """The whole loop: the recognizer fails after the trigger; the routine runs on and
    a later command is still obeyed."""
    loaded = [routine_from_dict(routine())]
    clock = VirtualClock()
    out = io.StringIO()
    events = EventLog(out)
    built = []

    def factory():
        rec = ScriptedRecognizer([(1.0, "calf cramp")] if not built else [(20.0, "stop")])
        if not built:
            original = rec.accept

            calls = [0]

            def accept(chunk):
                calls[0] += 1
                if calls[0] == 500:
                    raise RuntimeError("boom")
                return original(chunk)
            rec.accept = accept
        built.append(rec)
        return rec

    sup = SupervisedRecognizer(factory, lambda text: events.write(clock.now(), "warning", text=text))
    session = Session(recognizer=sup, parser=IntentParser(), coach=Coach({loaded[0].id: loaded[0]},
                      choose_routine=lambda i, n: loaded[0].id),
                      speaker=VirtualSpeaker(clock, lambda text: (len(text.split()) * 0.4, None)), clock=clock,
                      events=events)
    for i in range(300):
        session.feed(AudioChunk(b"\0\0" * 1600, i * 0.1))
    session.end_of_stream()
    sup.close()
    log = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [(e["event"], e.get("state") or e.get("intent")) for e in log if e["event"] in ("routine", "heard", "warning")]
    assert kinds == [("heard", "start"), ("routine", "started"), ("warning", None), ("heard", "stop"),
                     ("routine", "stopped")], kinds
    assert 4.9 <= [e for e in log if e["event"] == "warning"][0]["t"] <= 5.1


# ---------------------------------------------------------------- speech engine supervisor

def test_a_hanging_speech_engine_is_ended_and_the_sentence_said_again(tmp_path) -> None:
    marker = tmp_path / "hung"
    restarts: list[str] = []
    voice = ProcessVoice(partial(HangOnceVoice, str(marker)), timeout_s=1.0, on_restart=restarts.append)
    try:
        first_pid = voice.pid
        assert len(voice.synthesize("Breathe out slowly.")) == 160 * 19
        audio = voice.synthesize("Now hang on a moment.")
        assert len(audio) == 160 * len("Now hang on a moment.")  # the retry in a fresh engine
        assert voice.restarts == 1 and restarts == ["the speech engine hung; restarting it"]
        assert voice.pid != first_pid
        hung_pid = int(marker.read_text())
        assert hung_pid == first_pid and not _alive(hung_pid)  # the hung child was ended
        assert len(voice.synthesize("Good.")) == 160 * 5
    finally:
        voice.close()
    assert voice.pid is None


def test_a_dying_speech_engine_is_restarted_then_gives_up_with_a_device_error() -> None:
    voice = ProcessVoice(DyingVoice, timeout_s=2.0)
    try:
        with pytest.raises(DeviceError, match="twice"):
            voice.synthesize("now die")  # dies in the first child and in the second
        assert voice.restarts == 2
        assert len(voice.synthesize("Still here.")) > 0  # a third child serves the next sentence
    finally:
        voice.close()


def test_an_engine_whose_pipe_closed_died_even_if_its_process_is_not_yet_reaped() -> None:
    """A closed pipe means the child is gone: it is not reported as hanging because
    ``is_alive()`` still says True a moment after."""
    restarts: list[str] = []
    voice = ProcessVoice(SlowlyDyingVoice, timeout_s=30.0, on_restart=restarts.append)
    try:
        with pytest.raises(DeviceError, match="twice"):
            voice.synthesize("now die")
        assert restarts == ["the speech engine died; restarting it"] * 2
    finally:
        voice.close()


def test_an_engine_that_cannot_start_is_one_device_error() -> None:
    # The child's own error comes back (waiting out the start-up time would say otherwise).
    with pytest.raises(DeviceError, match="espeak-ng is not installed"):
        ProcessVoice(BrokenVoice)


def speak_in_background(voice, text: str) -> tuple[threading.Thread, list[BaseException]]:
    """``voice.synthesize(text)`` on a thread of its own, as the speaker calls it, so that a
    test can close the voice mid-sentence; what it raised is collected in the list."""
    errors: list[BaseException] = []

    def speak() -> None:
        try:
            voice.synthesize(text)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=speak)
    thread.start()
    return thread, errors


def test_closing_a_voice_mid_hang_ends_its_child_at_once(tmp_path) -> None:
    # A synthesis budget far longer than the wait below: the sentence can only end early
    # because close() ended the child, not because the budget ran out.
    voice = ProcessVoice(partial(HangOnceVoice, str(tmp_path / "m")), timeout_s=600.0)
    pid = voice.pid
    th, errors = speak_in_background(voice, "hang here")
    while not (tmp_path / "m").exists():  # the child is hanging now
        time.sleep(0.01)
    voice.close()
    th.join(timeout=60)
    assert not th.is_alive() and isinstance(errors[0], DeviceError)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------- Ctrl-C and SIGTERM

EXIT_ON_SIGNAL_S = 8.0  # a failure deadline, not a budget: see the test's docstring

@pytest.mark.live
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_mid_routine_ends_the_skill_at_once(tmp_path, sig) -> None:
    """One signal, mid-sentence, ends the skill and its children. How fast is printed (0.16 to
    0.22 s on an idle machine, the README's figure); the bound only tells "obeyed" (seconds,
    even on a loaded machine) from "ignored" (a skill that runs on until it is killed)."""
    from tests.test_e2e_live import MIC_FEED_SINK, LiveSkill, _skip_without_tools, children_of, pid_alive

    _skip_without_tools()
    skill = LiveSkill(tmp_path, combined=False)
    try:
        skill.wait_listening()
        skill.say("calf cramp", to=MIC_FEED_SINK)
        skill.wait_for(lambda ev: sum(e["event"] == "say" for e in ev) >= 1, 20, "the routine to speak")
        _wait_until_sound_reaches(skill.recording)  # mid-sentence: its speech is being played
        children = children_of(skill.proc.pid)
        assert children, "the speech engine should run in a child process"
        took = skill.signal(sig)
        deadline = time.monotonic() + 10.0  # a failure deadline, not a budget: they go at once
        while any(pid_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in children if pid_alive(p)]
        streams = skill.server.pactl("list", "short", "sink-inputs").stdout + \
            skill.server.pactl("list", "short", "source-outputs").stdout
    finally:
        skill.close()
    print(f"\n{signal.Signals(sig).name}: exited in {took:.3f} s with {skill.proc.returncode}")
    assert skill.proc.returncode == 0, skill.stderr[-2000:]
    assert took < EXIT_ON_SIGNAL_S, f"{took:.2f} s: the signal was not obeyed"
    assert left == [], left  # no process left behind
    assert "Traceback" not in skill.stderr
    # its streams are closed (only the test's own recorder, if any, remains)
    assert str(skill.proc.pid) not in streams


def _wait_until_sound_reaches(recording: Path, timeout_s: float = 30.0, rate: int = 16000) -> None:
    """Until the last 50 ms recorded from the virtual speaker are loud: the skill is speaking.
    (The WAV is still being written, its header not final: its samples are read raw; the
    recorder writes 16-bit mono at ``rate``.)"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = recording.read_bytes() if recording.exists() else b""
        start = data.find(b"data")
        body = data[start + 8:] if start >= 0 else b""
        tail = np.frombuffer(body[len(body) // 2 * 2 - rate // 20 * 2:len(body) // 2 * 2], dtype="<i2")
        if len(tail) == rate // 20 and np.sqrt((tail.astype(np.float64) ** 2).mean()) > 300:
            return
        time.sleep(0.02)
    raise AssertionError(f"no speech reached the speaker within {timeout_s:g} s")


# ---------------------------------------------------------------- a short night

@pytest.mark.slow(seconds=115)
def test_a_short_soak_coaches_every_episode_without_leaking(capsys) -> None:
    """scripts/soak.py in short form: 8 minutes of generated bedroom audio (snoring, with this
    seed), two episodes: each trigger answered and its routine finished, no other start, and
    RSS, threads and open files flat from the second row to the end. The ninth minute it once
    had was more snoring after the second routine (which now ends just before the audio
    does); the long form (eight hours, television too) is ``python scripts/soak.py``. Seed 5
    (a quiet start, snoring only after the baseline row) once measured a one-time +17.6 MB
    step when the first long snoring segments were decoded, flat after it: the baseline must
    come after the decoder's first long segments, as it does with this seed."""
    import importlib.util

    from voice_skill.devtools.speechgen import engines_available

    if not engines_available()["flite"]:
        pytest.skip("flite is not installed")
    spec = importlib.util.spec_from_file_location("soak", Path(__file__).resolve().parent.parent / "scripts" / "soak.py")
    soak = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = soak  # dataclasses look their module up
    try:
        spec.loader.exec_module(soak)
    finally:
        sys.modules.pop("soak", None)
    summary = soak.run(hours=8 / 60, episodes=2, seed=7, voice="flite:slt", chunk_s=0.1)
    print(capsys.readouterr().out)
    assert summary["problems"] == [], summary["problems"]
    assert len(summary["started"]) == 2


def test_the_speech_child_speaks_at_the_rate_and_volume_asked_for_each_sentence() -> None:
    """Night manners change the rate and volume between sentences; the child must follow."""
    from voice_skill.tts.espeak import Pyttsx3Voice

    voice = ProcessVoice(Pyttsx3Voice)
    try:
        text = "Slow strokes from the ankle up toward the knee."
        normal = voice.synthesize(text)
        voice.rate, voice.volume = 100, 0.5
        slow_soft = voice.synthesize(text)
    finally:
        voice.close()
    assert len(slow_soft) > 1.4 * len(normal), (len(normal), len(slow_soft))
    assert np.abs(slow_soft).max() < 0.8 * np.abs(normal).max()


def test_a_lost_device_is_tried_less_often_up_to_a_cap() -> None:
    # Every failed open of a device that is gone risks a crash inside PortAudio (docs/faults.md):
    # a night without the microphone must not mean 1800 tries an hour.
    from voice_skill.devices.devicewatch import REOPEN_BACKOFF, DeviceWatch

    clock = VirtualClock()
    watch = DeviceWatch(clock, "microphone", 2.0)

    def gone() -> None:
        raise OSError("no such device")

    def tries_until(end_s: float) -> list[float]:
        tried = []
        while clock.now() < end_s:
            clock.advance_to(clock.now() + 0.5)
            if watch.reopen_due():
                tried.append(clock.now())
        return tried

    assert watch.mark_lost("gone") and not watch.mark_lost("gone again")  # reported once
    assert tries_until(40.0) == [2.0, 6.0, 14.0, 22.0, 30.0, 38.0]  # 2, 4, then 8 s apart
    assert REOPEN_BACKOFF * 2.0 == 8.0
    clock.advance_to(46.0)
    assert watch.try_reopen(gone, "back") is False and watch.lost  # tried and failed: still lost
    assert not watch.reopen_due()  # and the next wait started
    clock.advance_to(60.0)
    assert watch.try_reopen(lambda: None, "back") and not watch.lost
    assert [s.kind for s in watch.poll()] == ["lost", "restored"]
    watch.mark_lost("gone once more")  # a new outage starts from the short wait
    assert tries_until(67.0) == [62.0, 66.0]
