"""The live microphone source, read through a private PulseAudio server's virtual microphone."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.pulse import active_spans
from voice_skill.audio.pcm import write_wav

_READER_CHILD = r"""
import json, sys, time
import numpy as np
from voice_skill.devices.microphone import MicrophoneSource, check_input_device

class Clock:
    def now(self):
        return time.monotonic()

clock = Clock()
info = {"device": check_input_device()["name"]}
mic = MicrophoneSource(clock=clock, block_s=0.02)
chunks = []
t0 = clock.now()
announced = False
while clock.now() - t0 < float(sys.argv[1]):
    chunk = mic.read(timeout=0.2)
    if chunk is None:
        continue
    if not announced:
        print("READY", flush=True)
        announced = True
    chunks.append(chunk)
mic.close()
audio = np.concatenate([c.as_array() for c in chunks])
np.save(sys.argv[2], audio)
info.update(
    n=len(chunks), rates={c.rate for c in chunks} == {16000}, widths={c.width for c in chunks} == {2},
    contiguous=all(abs(b.start_s - a.end_s) < 1e-9 for a, b in zip(chunks, chunks[1:])),
    first_start=chunks[0].start_s, overflows=mic.overflows, status=[s.kind for s in mic.poll_status()],
    offset_known=mic.to_clock(0.0) is not None)
print(json.dumps(info), flush=True)
"""


def _tone_burst(path, seconds: float = 1.0, freq: float = 440.0) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    silence = np.zeros(1600)
    write_wav(path, (np.concatenate([silence, tone, silence]) * 32767).astype(np.int16))


@pytest.mark.live
def test_microphone_reads_audio_played_into_the_virtual_microphone(pulse, tmp_path) -> None:
    wav = tmp_path / "tone.wav"
    _tone_burst(wav, seconds=1.0)
    out = tmp_path / "heard.npy"
    reader = pulse.popen_python(_READER_CHILD, args=("6.0", str(out)))
    assert reader.stdout is not None
    line = reader.stdout.readline()  # blocks until the stream delivers audio
    assert line.strip() == "READY", reader.stderr.read() if reader.stderr else ""
    time.sleep(0.5)
    player = pulse.play_to_mic(wav)
    assert player.wait(timeout=10) == 0
    stdout, stderr = reader.communicate(timeout=20)
    assert reader.returncode == 0, stderr[-2000:]
    info = json.loads(stdout.strip().splitlines()[-1])
    assert info["rates"] and info["widths"] and info["contiguous"] and info["offset_known"]
    assert info["first_start"] == 0.0
    assert info["overflows"] == 0
    assert info["status"] == []
    heard = np.load(out)
    spans = active_spans(heard, 16000, threshold=2000)
    assert len(spans) == 1, spans
    # Through PulseAudio the burst can lose a little (see tests/pulse.py), never gain.
    assert 0.6 <= spans[0][1] - spans[0][0] <= 1.08, spans
    # and it is the tone, not noise: the spectrum peaks at 440 Hz
    a, b = int(spans[0][0] * 16000) + 800, int(spans[0][1] * 16000) - 800
    spectrum = np.abs(np.fft.rfft(heard[a:b].astype(float)))
    assert abs(np.argmax(spectrum) * 16000 / (b - a) - 440) < 10


_NO_MIC_CHILD = r"""
import time
from voice_skill.errors import DeviceError
from voice_skill.devices.microphone import check_input_device
t0 = time.monotonic()
try:
    check_input_device()
except DeviceError as exc:
    print("ERROR|%.2f|%s" % (time.monotonic() - t0, exc))
else:
    print("FOUND|%.2f|" % (time.monotonic() - t0))
"""


@pytest.mark.live
def test_no_microphone_is_one_clear_device_error(pulse, tmp_path) -> None:
    env = dict(pulse.env, PULSE_SERVER="unix:/nonexistent/socket", HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", _NO_MIC_CHILD], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    kind, seconds, message = done.stdout.strip().splitlines()[-1].split("|", 2)
    if kind == "FOUND":
        pytest.skip("this machine has a real microphone")
    assert float(seconds) < 5
    assert message.startswith("No microphone found.") and "--input" in message
    assert "\n" not in message


_LOSS_CHILD = r"""
import faulthandler, json, sys, time
faulthandler.dump_traceback_later(60)  # where it hangs, if it does (the parent gives up at 90 s)
from voice_skill.devices.microphone import MicrophoneSource

class Clock:
    def now(self):
        return time.monotonic()

clock = Clock()
mic = MicrophoneSource(clock=clock, block_s=0.02, stall_s=0.5, reopen_every_s=1.0)
while mic.read(timeout=0.2) is None:
    pass
print("READY", flush=True)
sys.stdin.readline()  # the parent kills the server, then says go
statuses, t0 = [], clock.now()
cpu0 = time.process_time()
while clock.now() - t0 < 4.0 and not statuses:
    mic.read(timeout=0.1)
    statuses += mic.poll_status()
lost_after = clock.now() - t0
t1 = clock.now()
while clock.now() - t1 < 3.0:
    mic.read(timeout=0.1)
    statuses += mic.poll_status()
cpu = time.process_time() - cpu0
mic.close()
print(json.dumps({"statuses": [s.kind for s in statuses], "lost_after": lost_after, "cpu": cpu,
                  "wall": clock.now() - t0, "message": statuses[0].message if statuses else ""}), flush=True)
"""


@pytest.mark.live
def test_device_loss_is_reported_once_without_spinning(tmp_path) -> None:
    from tests.pulse import PulseServer, unavailable_reason
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = PulseServer().start()
    try:
        child = subprocess.Popen([sys.executable, "-u", "-c", _LOSS_CHILD], env=server.env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "READY"
        server.stop()  # the microphone disappears
        child.stdin.write("go\n")
        child.stdin.flush()
        # A guard against a hang, not a timing: the child's own clock checks those. It needs 7 s
        # and a close; beside a CPU hog (a loaded fresh-clone run) it took over 20.
        try:
            stdout, stderr = child.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            child.kill()
            stdout, stderr = child.communicate()
            pytest.fail(f"the child hung; its threads at 60 s:\n{stderr[-4000:]}")
    finally:
        server.stop()
    assert child.returncode == 0, stderr[-2000:]
    info = json.loads(stdout.strip().splitlines()[-1])
    assert info["statuses"] == ["lost"], info  # reported once, while reopening keeps failing
    assert info["lost_after"] < 2.0
    assert "microphone" in info["message"]
    assert info["cpu"] < 0.5 * info["wall"], info


_GONE_CHILD = r"""
import json, time
import sounddevice
from voice_skill.devices.microphone import MicrophoneSource
from voice_skill.errors import DeviceError

opened = []
real = sounddevice.RawInputStream

def counting(*args, **kwargs):  # the real stream; only the attempts are counted
    opened.append((kwargs.get("samplerate"), kwargs.get("channels")))
    return real(*args, **kwargs)

sounddevice.RawInputStream = counting

class Clock:
    def now(self):
        return time.monotonic()

try:
    MicrophoneSource(clock=Clock(), block_s=0.02)
except DeviceError as exc:
    print(json.dumps({"error": str(exc), "opened": opened}))
else:
    print(json.dumps({"error": None, "opened": opened}))
"""


@pytest.mark.live
def test_a_microphone_that_is_gone_is_tried_once_not_in_every_format(pulse) -> None:
    # A named source that is not there (a USB microphone unplugged): ALSA's pulse plugin fails
    # every format alike, and each failed open risks a crash inside PortAudio (docs/faults.md).
    env = dict(pulse.env, PULSE_SOURCE="unplugged_usb_microphone")
    done = subprocess.run([sys.executable, "-c", _GONE_CHILD], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["error"] and "cannot open the microphone" in info["error"], info
    assert info["opened"] == [[16000, 1]], info
