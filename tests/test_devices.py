"""'voice-skill devices' and 'voice-skill check' against a private PulseAudio server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.pulse import read_wav_int16, stop_recording
from voice_skill.audio.pcm import write_wav
from voice_skill.devtools.speechgen import compose

pytestmark = pytest.mark.live


def skill(pulse, *args, **kw):
    return subprocess.Popen([sys.executable, "-m", "voice_skill", *args], env=pulse.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_devices_lists_inputs_and_outputs_with_defaults(pulse):
    proc = skill(pulse, "devices")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "input (default)" in out and "output (default)" in out
    assert "--input-device NAME" in out


def test_check_speaks_records_and_says_what_it_heard(pulse, tmp_path):
    said = tmp_path / "calf.wav"
    write_wav(said, compose([0.3, ("calf cramp", "flite:slt"), 0.3]).samples)
    speaker = pulse.record_speaker(tmp_path / "speaker.wav")
    proc = skill(pulse, "check")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("microphone: recording"):
            pulse.play_to_mic(said)
            break
    out, err = proc.communicate(timeout=60)
    stop_recording(speaker)
    output = "".join(lines) + out
    assert proc.returncode == 0, output + err
    assert "speaker:    played a test sentence" in output
    assert "input level:" in output and "silent" not in output
    assert "recognised: calf cramp" in output and "means: start" in output
    played, _ = read_wav_int16(tmp_path / "speaker.wav")
    assert played.size and abs(played.astype(int)).max() > 1000, "the test sentence reached the loudspeaker"
