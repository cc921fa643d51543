"""Speech output: synthesis, the duration estimate, the text speaker, and real playback
through a private PulseAudio server (the played audio is recorded and checked)."""

from __future__ import annotations

import io
import json
import shutil
import time

import numpy as np
import pytest

from tests.pulse import active_spans, read_wav_int16, stop_recording
from voice_skill.errors import DeviceError, UsageError
from voice_skill.tts.espeak import Pyttsx3Voice
from voice_skill.tts.base import SpeechEvent
from voice_skill.devices.speaker import TextSpeaker, estimate_seconds
from voice_skill.runtime.output import open_speaker
from voice_skill.tts import piper

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


# ---------------------------------------------------------------- estimate (no engine)

def test_estimate_is_deterministic_and_scales_with_rate() -> None:
    text = "Press one thumb into the tightest spot, and hold."
    assert estimate_seconds(text, 160) == estimate_seconds(text, 160)
    assert estimate_seconds(text, 120) > estimate_seconds(text, 160) > estimate_seconds(text, 220)
    assert estimate_seconds("", 160) == 0.0
    assert estimate_seconds("Ten.", 160) < estimate_seconds(text, 160)
    with pytest.raises(ValueError):
        estimate_seconds(text, 0)


# ---------------------------------------------------------------- text speaker

def test_text_speaker_prints_and_times_by_estimate() -> None:
    clock, out = FakeClock(10.0), io.StringIO()
    sp = TextSpeaker(clock, out, rate_wpm=160)
    sp.say("Rest your leg.", 1)
    sp.say("Breathe slowly.", 2)
    assert out.getvalue() == "Rest your leg.\n"  # the second waits its turn
    assert sp.busy
    d1 = estimate_seconds("Rest your leg.", 160)
    assert sp.poll() == [SpeechEvent("started", 1, 10.0, "Rest your leg.")]
    clock.t = 10.0 + d1 + 0.01
    events = sp.poll()
    assert [(e.kind, e.utterance_id) for e in events] == [("finished", 1), ("started", 2)]
    assert events[0].t == pytest.approx(10.0 + d1) and events[1].t == pytest.approx(10.0 + d1)
    assert out.getvalue() == "Rest your leg.\nBreathe slowly.\n"
    clock.t += 100
    assert [e.kind for e in sp.poll()] == ["finished"]
    assert not sp.busy


def test_text_speaker_cancel_drops_current_and_queued() -> None:
    clock, out = FakeClock(), io.StringIO()
    sp = TextSpeaker(clock, out)
    sp.say("One long instruction that takes a while to say.", 1)
    sp.say("Queued.", 2)
    clock.t = 0.5
    sp.cancel()
    events = sp.poll()
    assert [(e.kind, e.utterance_id, e.t) for e in events] == [("started", 1, 0.0), ("cancelled", 1, 0.5),
                                                                ("cancelled", 2, 0.5)]
    assert "Queued." not in out.getvalue()
    assert not sp.busy
    sp.say("Next.", 3)  # usable after a cancel
    assert [e.kind for e in sp.poll()] == ["started"]


def test_open_speaker_none_and_unknown() -> None:
    out = io.StringIO()
    sp, voice = open_speaker("none", FakeClock(), stream=out)
    assert isinstance(sp, TextSpeaker) and voice is None
    with pytest.raises(UsageError):
        open_speaker("loud", FakeClock())


# ---------------------------------------------------------------- synthesis (espeak-ng)

@needs_espeak
def test_synthesis_gives_plausible_audio() -> None:
    # How fast espeak-ng synthesises is measured by scripts/bench.py, not asserted here.
    voice = Pyttsx3Voice(rate=160)
    audio = voice.synthesize("Pull your toes gently toward your shin.")
    assert audio.dtype == np.int16 and audio.ndim == 1
    seconds = len(audio) / 16000
    assert 1.5 < seconds < 4.5
    assert np.abs(audio).max() > 3000
    assert len(voice.synthesize("   ")) == 0


@needs_espeak
def test_rate_and_volume_take_effect_on_every_synthesis() -> None:
    text = "Now slow, light strokes from ankle up toward the knee."
    slow, fast = Pyttsx3Voice(rate=120), Pyttsx3Voice(rate=240)
    lengths = []
    for _ in range(3):  # alternate: a stale setting would show up as a wrong length
        lengths.append((len(slow.synthesize(text)), len(fast.synthesize(text))))
    for n_slow, n_fast in lengths:
        assert n_slow > 1.6 * n_fast
    loud = Pyttsx3Voice(rate=160, volume=1.0).synthesize(text).astype(float)
    quiet = Pyttsx3Voice(rate=160, volume=0.3).synthesize(text).astype(float)
    assert np.sqrt((quiet ** 2).mean()) < 0.6 * np.sqrt((loud ** 2).mean())


@needs_espeak
def test_no_synthesis_output_leaks_to_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    Pyttsx3Voice().synthesize("Ease off.")
    assert capfd.readouterr().out == ""


def test_missing_engine_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="no speech engine"):
        Pyttsx3Voice(driver_name="no_such_driver")
    with pytest.raises(UsageError):
        Pyttsx3Voice(rate=5)


ESTIMATE_TOLERANCE_S = 0.15  # plus 12 % of the real length
ESTIMATE_TEXTS = ["Rest your leg so the calf is fully supported.", "Release.", "Five.",
                  "If it is sharp, draw your toes gently up toward your shin.",
                  "Warmth on the calf and a glass of water will help it settle.", "Okay, slower."]


@needs_espeak
@pytest.mark.parametrize("rate", [130, 175, 220])
def test_estimate_matches_espeak(rate: int) -> None:
    voice = Pyttsx3Voice(rate=rate)
    for text in ESTIMATE_TEXTS:
        real = len(voice.synthesize(text)) / 16000
        est = estimate_seconds(text, rate)
        assert abs(est - real) <= ESTIMATE_TOLERANCE_S + 0.12 * real, (text, rate, real, est)



@needs_espeak
def test_rate_and_volume_survive_a_slow_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a loaded machine the thread can be held up between the new driver's own settings (200
    words a minute, full volume) and ours. pyttsx3's runAndWait then stopped espeak-ng while it
    was still taking in ours, and espeak-ng threw them away: the sentence came out at 200 words a
    minute (once in a few hundred to a few thousand renderings on a busy machine; with this
    0.2-s hold-up on an idle one, 56 of 60; how often depends on the load). The hold-up is real
    here, so is the engine; espeak-ng's cancel is only counted."""
    from pyttsx3.drivers import _espeak

    text = "If it is sharp, draw your toes gently up toward your shin."
    voice = Pyttsx3Voice(rate=130, volume=0.3)
    steady = voice.synthesize(text).astype(float)
    at_200 = len(Pyttsx3Voice(rate=200, volume=0.3).synthesize(text))
    assert at_200 < 0.8 * len(steady)
    new_engine = voice._new_engine

    def held_up() -> object:
        engine = new_engine()
        time.sleep(0.2)
        return engine

    cancels: list[bool] = []
    cancel = _espeak.Cancel
    monkeypatch.setattr(_espeak, "Cancel", lambda: (cancels.append(True), cancel())[1])
    monkeypatch.setattr(voice, "_new_engine", held_up)
    for _ in range(3):
        held = voice.synthesize(text).astype(float)
        assert abs(len(held) - len(steady)) < 0.05 * len(steady), (len(held), len(steady), at_200)
        assert np.sqrt((held ** 2).mean()) < 1.2 * np.sqrt((steady ** 2).mean())
    assert not cancels


# ---------------------------------------------------------------- real playback (PulseAudio)

_PLAYBACK_CHILD = r"""
import json, sys, time
from tests.pulse import active_spans
from voice_skill.tts.espeak import Pyttsx3Voice
from voice_skill.devices.speaker import SoundSpeaker

class Clock:
    def now(self):
        return time.monotonic()

clock = Clock()
A = "Pull your toes gently toward your shin."
B = "Now slow, light strokes from the ankle, all the way up toward the knee, and keep going."
if sys.argv[2] == "espeak":
    voice = Pyttsx3Voice(rate=175)
else:  # the natural voice, both sentences rendered into the cache first: played from the cache
    from voice_skill.tts.cache import CachedVoice, SentenceCache
    from voice_skill.tts.piper import PiperVoice
    voice = CachedVoice(PiperVoice(rate=175), SentenceCache(sys.argv[2]))
    voice.prepare([A, B], [175])
    voice.cache.stats.hits = 0
def loud(text):
    s = voice.synthesize(text)
    spans = active_spans(s, 16000)
    return len(s) / 16000, spans[0][0], spans[-1][1]
info = {"A": loud(A), "B": loud(B)}
sp = SoundSpeaker(voice, clock, latency=float(sys.argv[1]))
info["latency"] = sp.output_latency_s
events = []
def drain():
    events.extend(sp.poll())
sp.say(A, 1)
while sp.busy:
    drain(); time.sleep(0.005)
drain()
time.sleep(1.0)
sp.say(B, 2); sp.say("Never heard.", 3)
while not any(e.kind == "started" and e.utterance_id == 2 for e in events):
    drain(); time.sleep(0.002)
time.sleep(0.8)
info["cancel_at"] = clock.now()
sp.cancel()
while sp.busy:
    drain(); time.sleep(0.002)
drain()
sp.close()
info["events"] = [(e.kind, e.utterance_id, e.t) for e in events]
info["underflows"] = sp.underflows
stats = getattr(getattr(voice, "cache", None), "stats", None)
info["cache"] = None if stats is None else [stats.hits, stats.misses]
print(json.dumps(info))
"""

# The output buffer asked for in the playback test. The product's 60 ms keeps up on an idle
# machine, but on a loaded one (two cores busy with other tests) PortAudio's stream through
# ALSA's pulse plugin underran hundreds of times per sentence and the audio of those blocks
# never reached the sink: a 2.3 s sentence came out as 0.3 s. With 200 ms it did not underrun
# at all under the same load. The test checks the speaker's own logic (what is played, in
# what order, and when it says so), which does not depend on the buffer's size.
PLAYBACK_LATENCY_S = 0.2


@pytest.mark.live
@needs_espeak
@pytest.mark.parametrize("voice", ["espeak", "cached natural voice"])
def test_sound_speaker_plays_reports_times_and_cancels(pulse, tmp_path, voice) -> None:  # noqa: F811
    if voice != "espeak" and piper.missing():
        pytest.skip(f"no natural voice: {piper.missing()}")
    # A sentence heard longer than it is means the server stalled and filled in silence (one CI
    # run: A took 2.00 s for 1.77 s of audio with no underflow reported to the stream, on a
    # machine busy with two other test workers). Every timing below would be off by the stall,
    # so the playback is measured once more; a speaker that really plays A wrong does it twice.
    for attempt in range(2):
        rec_path = tmp_path / f"speaker-{attempt}.wav"
        rec = pulse.record_speaker(rec_path)
        time.sleep(0.5)  # parecord is recording before anything plays
        try:
            child = pulse.run_python(_PLAYBACK_CHILD, timeout_s=60, args=(
                str(PLAYBACK_LATENCY_S), "espeak" if voice == "espeak" else str(tmp_path / "cache")))
        finally:
            time.sleep(0.3 + PLAYBACK_LATENCY_S)  # the last buffer reaches the sink
            stop_recording(rec)
        assert child.returncode == 0, child.stderr[-2000:]
        info = json.loads(child.stdout.strip().splitlines()[-1])
        samples, rate = read_wav_int16(rec_path)
        spans = active_spans(samples, rate)
        stalled = len(spans) == 2 and (spans[0][1] - spans[0][0]) - (info["A"][2] - info["A"][1]) > 0.05
        if not stalled:
            break
    if voice != "espeak":  # A and B came from the cache, twice each (measured above, then played)
        assert info["cache"][0] >= 4, info["cache"]
    underflows = info["underflows"]  # not a verdict: the recording below says what was heard
    events = [tuple(e) for e in info["events"]]
    kinds = [(k, u) for k, u, _t in events]
    assert kinds == [("started", 1), ("finished", 1), ("started", 2), ("cancelled", 3), ("cancelled", 2)]
    t = {(k, u): when for k, u, when in events}
    len_a, lead_a, last_a = info["A"]
    _len_b, lead_b, last_b = info["B"]
    lat = info["latency"]

    # What reached the sink, in order: all of A, then the start of B, cut off; never the third.
    assert len(spans) == 2, (spans, underflows)
    (a0, a1), (b0, b1) = spans
    assert abs((a1 - a0) - (last_a - lead_a)) < 0.05, ("A was not heard whole", a1 - a0, last_a - lead_a, underflows)
    assert 0.3 < b1 - b0 < 0.5 * (last_b - lead_b), ("B was not cut off", b1 - b0, underflows)

    # The events agree with what was heard. finished comes when the last sample has been
    # heard: handed over + length + the buffer's latency (and a block or two of slack).
    assert 0.0 <= t["finished", 1] - t["started", 1] - len_a <= lat + 0.1, underflows
    # The cancel is heard once the audio already in the buffer has played.
    cut = t["cancelled", 2] - info["cancel_at"]
    assert 0.0 <= cut <= lat + 0.1, (cut, lat, underflows)
    # The recorded gap from A's end to B's start matches the event times. (The natural voice's
    # words fade in and out over tens of milliseconds: where the cut falls in a soft stretch,
    # B's heard end comes 0.06-0.11 s early on an idle machine, and on one loaded CI run the gap
    # was 0.125 s short; espeak-ng's edges are within 0.015 s idle.)
    edge_s = 0.06 if voice == "espeak" else 0.2
    expected_gap = (t["started", 2] + lead_b) - (t["started", 1] + last_a)
    assert abs((b0 - a1) - expected_gap) < edge_s, (b0 - a1, expected_gap, underflows)
    # B was heard from its start to the cancel only.
    heard_b = t["cancelled", 2] - (t["started", 2] + lat) - lead_b
    assert abs((b1 - b0) - heard_b) < edge_s, (b1 - b0, heard_b, underflows)


_NO_OUTPUT_CHILD = r"""
import io, time
from voice_skill.devices.speaker import TextSpeaker
from voice_skill.runtime.output import open_speaker
class Clock:
    def now(self):
        return time.monotonic()
t0 = time.monotonic()
warnings = []
sp, _voice = open_speaker("tts", Clock(), stream=io.StringIO(), on_warning=warnings.append)
print(type(sp).__name__, round(time.monotonic() - t0, 2), " / ".join(warnings), sep="|")
"""


@pytest.mark.live
def test_open_speaker_falls_back_to_text_without_output_device(pulse) -> None:  # noqa: F811
    env = dict(pulse.env, PULSE_SERVER="unix:/nonexistent/socket")
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", _NO_OUTPUT_CHILD], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    kind, seconds, warning = done.stdout.strip().splitlines()[-1].split("|")
    if kind == "SoundSpeaker":
        pytest.skip("this machine has a real output device")
    assert kind == "TextSpeaker"
    assert "instructions will be printed" in warning
    assert float(seconds) < 10


# ---------------------------------------------------------------- an output underrun (PulseAudio)

_UNDERRUN_CHILD = r"""
import json, sys, threading, time
import numpy as np
from voice_skill.tts.espeak import Pyttsx3Voice
from voice_skill.audio.aec import OutputTape
from voice_skill.devices.speaker import SoundSpeaker

class StallingClock:
    '''time.monotonic, but the audio thread is held up once, as on a loaded machine.'''
    armed_at = None
    def now(self):
        if self.armed_at is not None and time.monotonic() >= self.armed_at \
                and not isinstance(threading.current_thread(), threading._MainThread) \
                and threading.current_thread().name != "speaker":
            self.armed_at = None
            time.sleep(float(sys.argv[1]))
        return time.monotonic()

clock = StallingClock()
sp = SoundSpeaker(Pyttsx3Voice(rate=175), clock, latency=0.06)
sp.tape = OutputTape(16000, seconds=12)  # all of the sentence kept, not the last 4 s
sp.say("Slow, light strokes from the ankle up toward the knee, then thumb circles along the calf.", 1)
events = []
while not events:
    events.extend(e for e in sp.poll() if e.kind == "started")
    time.sleep(0.005)
clock.armed_at = time.monotonic() + 2.0  # about mid-sentence
while sp.busy:
    sp.poll(); time.sleep(0.01)
time.sleep(0.3)
tape = sp.tape
n = min(tape.end, 10 * 16000)
np.save(sys.argv[2], tape.read(tape.end - n, n).astype(np.float32))
sp.close()
print(json.dumps({"moves": tape.moves, "moved_s": tape.moved_s, "underflows": sp.underflows}))
"""


def _found_at(rec: np.ndarray, piece: np.ndarray) -> tuple[int, float]:
    """Where ``piece`` is in ``rec`` (sample) and how well it matches there (normalised)."""
    n = 1 << int(np.ceil(np.log2(len(rec) + len(piece))))
    corr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(piece, n)), n)[: len(rec) - len(piece) + 1]
    at = int(np.argmax(corr))
    seg = rec[at:at + len(piece)]
    return at, float(corr[at] / (np.sqrt(float(piece @ piece) * float(seg @ seg)) + 1e-9))


@pytest.mark.live
@needs_espeak
def test_the_output_tape_keeps_step_with_the_loudspeaker_across_an_underrun(pulse, tmp_path) -> None:  # noqa: F811
    """The output's audio thread is held up for 0.15 s mid-sentence (as a loaded machine does),
    the stream underruns and the sink plays silence the skill never wrote. What the echo
    canceller reads from the tape must still be what the loudspeaker played at every point: the
    sink's recording holds the tape's samples at one distance before the underrun and after it.
    (Before the tape moved across underruns, the distance grew by the silence, and the skill's
    voice went through the canceller until its aligner found the echo again: docs/faults.md.)"""
    rec_path, tape_path = tmp_path / "speaker.wav", tmp_path / "tape.npy"
    rec = pulse.record_speaker(rec_path, latency_ms=10)  # (at 20 ms the player underruns for ever: tests/pulse.py)
    time.sleep(0.5)
    try:
        child = pulse.run_python(_UNDERRUN_CHILD, timeout_s=60, args=("0.15", str(tape_path)))
    finally:
        time.sleep(0.3)
        stop_recording(rec)
    assert child.returncode == 0, child.stderr[-2000:]
    info = json.loads(child.stdout.strip().splitlines()[-1])
    assert info["underflows"] >= 1, info
    assert info["moves"] >= 1 and info["moved_s"] > 0.05, info  # the silence the held-up thread caused
    samples, _ = read_wav_int16(rec_path)
    heard = samples.astype(np.float64)
    tape = np.load(tape_path).astype(np.float64)
    distances = []
    for start in range(0, len(tape) - 3200, 1600):
        piece = tape[start:start + 3200]
        if np.sqrt(np.mean(piece ** 2)) < 300:
            continue  # silence between words matches anywhere
        at, match = _found_at(heard, piece)
        if match > 0.8:
            distances.append(at - start)
    assert len(distances) >= 20, distances
    # One distance all along, to within what the canceller's aligner looks through at once after
    # the tape moved (the clock stamps that move it were seen up to 32 samples off in a loaded CI
    # run), but for a piece of voiced speech that matches best a pitch period away now and then
    # (seen: 1 or 2 pieces in 27, 138 or 174 samples off). Without the move, the pieces after the
    # underrun (about half) are the silence's length further.
    from voice_skill.audio.aec import FINE_SEARCH_S

    usual = int(np.median(distances))
    near = int(FINE_SEARCH_S * 16000)
    assert sum(abs(d - usual) <= near for d in distances) >= 0.85 * len(distances), (str(distances), info)
