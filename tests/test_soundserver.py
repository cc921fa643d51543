"""Choosing a microphone and a loudspeaker on a sound server (PulseAudio, or PipeWire's
PulseAudio service) by a fragment of its name or description, and routing the skill's
streams there. The matching is tested on plain data; listing and routing on a private
PulseAudio server (tests/pulse.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from voice_skill.errors import UsageError
from voice_skill.devices.soundserver import ServerDevice, SoundServer, query, route

DESK = SoundServer("PulseAudio (on PipeWire 1.0.5)", (
    ServerDevice("source", "alsa_input.pci-0000_00_1f.3.analog-stereo", "Built-in Audio Analog Stereo", default=True),
    ServerDevice("source", "alsa_input.usb-0d8c_C-Media_USB_Audio_Device-00.mono-fallback",
                 "USB Audio Device Mono"),
    ServerDevice("source", "alsa_output.usb-0d8c_C-Media_USB_Audio_Device-00.analog-stereo.monitor",
                 "Monitor of USB Audio Device Analog Stereo", monitor=True),
    ServerDevice("sink", "alsa_output.pci-0000_00_1f.3.analog-stereo", "Built-in Audio Analog Stereo", default=True),
    ServerDevice("sink", "alsa_output.usb-0d8c_C-Media_USB_Audio_Device-00.analog-stereo",
                 "USB Audio Device Analog Stereo"),
))


def test_a_fragment_of_the_name_or_description_picks_a_microphone_not_a_monitor():
    assert DESK.find("usb", "source").name.startswith("alsa_input.usb")
    assert DESK.find("C-Media", "source").name.startswith("alsa_input.usb")
    assert DESK.find("built-in", "sink").name.startswith("alsa_output.pci")
    assert DESK.find("monitor of usb", "source").monitor  # asked for by name, a monitor is allowed
    assert DESK.find("bluetooth", "source") is None


def test_an_ambiguous_fragment_is_a_usage_error_listing_the_candidates():
    with pytest.raises(UsageError) as caught:
        DESK.find("analog", "sink")
    assert "Built-in Audio Analog Stereo" in str(caught.value) and "USB Audio Device Analog Stereo" in str(caught.value)


def test_route_sets_the_servers_own_routing_and_leaves_alsa_names_alone():
    env: dict[str, str] = {}
    assert route("usb", "built-in", server=DESK, env=env) == (None, None)
    assert env == {"PULSE_SOURCE": "alsa_input.usb-0d8c_C-Media_USB_Audio_Device-00.mono-fallback",
                   "PULSE_SINK": "alsa_output.pci-0000_00_1f.3.analog-stereo"}
    env.clear()
    assert route("hw:1,0", None, server=DESK, env=env) == ("hw:1,0", None)
    assert env == {}


def test_without_a_sound_server_nothing_changes():
    env: dict[str, str] = {}
    assert route("usb", "usb", env=env, run=lambda args: None) == ("usb", "usb") and env == {}


# ---- on a real (private) PulseAudio server --------------------------------------------

def _pactl_on(pulse):
    def run(args):
        done = subprocess.run(["pactl", *args], env=pulse.env, capture_output=True, text=True, timeout=10)
        return done.stdout if done.returncode == 0 else None
    return run


@pytest.mark.live
def test_the_servers_devices_are_listed_with_their_descriptions(pulse):
    server = query(_pactl_on(pulse))
    assert server is not None
    sinks = {d.name: d for d in server.of("sink")}
    assert sinks["vspeaker"].description == "VirtualSpeaker" and sinks["vspeaker"].default
    sources = {d.name: d for d in server.of("source")}
    assert sources["vmicfeed.monitor"].default and sources["vmicfeed.monitor"].monitor
    done = subprocess.run([sys.executable, "-m", "voice_skill", "devices"], env=pulse.env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Sound server: pulseaudio" in done.stdout
    assert any("VirtualSpeaker" in line and "vspeaker" in line and "default" in line
               for line in done.stdout.splitlines()), done.stdout
    assert "Monitor of VirtualMicrophoneFeed" in done.stdout


def _streams_of(pulse, kind: str, pid: int) -> list[int]:
    listing = json.loads(pulse.pactl("--format=json", "list", kind).stdout or "[]")
    key = "source" if kind == "source-outputs" else "sink"
    return [s[key] for s in listing if s.get("properties", {}).get("application.process.id") == str(pid)]


def _index(pulse, kind: str, name: str) -> int:
    return next(d["index"] for d in json.loads(pulse.pactl("--format=json", "list", kind).stdout) if d["name"] == name)


@pytest.mark.live
def test_run_routes_its_streams_to_the_devices_named(pulse, tmp_path):
    pulse.pactl("load-module", "module-null-sink", "sink_name=othermic", "rate=48000",
                "sink_properties=device.description=OtherMicrophone")
    env = dict(pulse.env, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    proc = subprocess.Popen([sys.executable, "-m", "voice_skill", "run", "--no-journal", "--events",
                             str(tmp_path / "events.jsonl"), "--input-device", "othermicro",
                             "--output-device", "VirtualMicrophoneFeed"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.txt", "w"))
    try:
        deadline = time.monotonic() + 60
        sources = sinks = []
        while time.monotonic() < deadline and not (sources and sinks):
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            sources = _streams_of(pulse, "source-outputs", proc.pid)
            sinks = _streams_of(pulse, "sink-inputs", proc.pid)
            time.sleep(0.2)
        assert sources == [_index(pulse, "sources", "othermic.monitor")], sources
        assert sinks == [_index(pulse, "sinks", "vmicfeed")], sinks
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()
