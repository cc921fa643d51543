"""'voice-skill check' uses what 'run' would use: the configured devices and engine, and
says in words when there is no device at all. (The full check against a sound server is
in test_devices.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def voice_skill(*args, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_SKILL_")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "voice_skill", *args], capture_output=True, text=True,
                          timeout=120, env=full)


def test_check_uses_the_configured_engine_and_model(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'asr = "vosk"\nmodel = "{tmp_path / "no-such-model"}"\n', encoding="utf-8")
    done = voice_skill("check", "--config", str(config))
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-model" in lines[0] and "no such folder" in lines[0], done.stderr
    assert "speaker:" not in done.stdout, "a bad model is reported before any sound is made"


def test_check_uses_the_configured_microphone(tmp_path):
    config = tmp_path / "config.toml"
    # Both devices named and missing: nothing is played on a machine that has sound.
    config.write_text('asr = "pocketsphinx"\ninput_device = "no-such-mic-xyz"\n'
                      'output_device = "no-such-speaker-xyz"\n', encoding="utf-8")
    done = voice_skill("check", "--config", str(config), env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert done.returncode == 1, done
    assert "no-such-mic-xyz" in done.stderr, done.stderr


def test_no_device_is_said_in_words():
    from voice_skill.cli.devices import _no_device_words

    said = _no_device_words(RuntimeError("Error querying device -1"), "loudspeaker")
    assert said.startswith("no loudspeaker found") and "-1" not in said
    assert _no_device_words(RuntimeError("Device unavailable"), "microphone") == "Device unavailable"


def test_check_without_any_sound_device_says_so_in_words(tmp_path):
    listing = voice_skill("devices", env={"PULSE_SERVER": "unix:/nonexistent"})
    if "No audio devices found" not in listing.stdout:
        pytest.skip("this machine has sound devices; the check would play through them")
    done = voice_skill("check", "--asr", "pocketsphinx", env={"PULSE_SERVER": "unix:/nonexistent",
                                                              "XDG_CONFIG_HOME": str(tmp_path)})
    assert done.returncode == 1, done
    assert "device -1" not in done.stdout + done.stderr
    assert "no loudspeaker found" in done.stdout, done.stdout
