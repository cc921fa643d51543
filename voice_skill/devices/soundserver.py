"""The sound server's microphones and loudspeakers (PulseAudio, or PipeWire's PulseAudio
service), and routing the skill's streams to the ones a user names.

Through PortAudio a PulseAudio or PipeWire system shows only ``pulse`` and ``default``:
the real devices (a USB microphone, a Bluetooth speaker) live behind the server. The
server itself lists them (``pactl``), each with a name (``alsa_input.usb-0d8c_C-Media...``)
and a description ("USB Audio Device Analog Mono"). A fragment of either picks one, and
the skill's stream is routed there by the server's own mechanism: ``PULSE_SOURCE`` and
``PULSE_SINK`` in the environment, read by the ALSA ``pulse`` plugin when a stream opens.

Without a sound server (or without ``pactl``) nothing changes: a fragment is matched
against PortAudio's (ALSA's) devices as before.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable, MutableMapping, Sequence

from voice_skill.errors import UsageError

log = logging.getLogger(__name__)

PACTL_TIMEOUT_S = 5.0
Runner = Callable[[Sequence[str]], "str | None"]


@dataclass(frozen=True)
class ServerDevice:
    kind: str  # "source" (a microphone) or "sink" (a loudspeaker)
    name: str
    description: str
    default: bool = False
    monitor: bool = False  # a source that is what a sink plays, not a microphone


@dataclass(frozen=True)
class SoundServer:
    server: str  # "pulseaudio", "PulseAudio (on PipeWire 1.0.5)"
    devices: tuple[ServerDevice, ...]

    def of(self, kind: str) -> list[ServerDevice]:
        return [d for d in self.devices if d.kind == kind]

    def find(self, fragment: str, kind: str) -> ServerDevice | None:
        """The device of ``kind`` a fragment of its name or description names; None if
        none does. A microphone is preferred to a loudspeaker's monitor; several equally
        good matches are a UsageError listing them."""
        wanted = fragment.strip().lower()
        devices = self.of(kind)
        exact = [d for d in devices if wanted in (d.name.lower(), d.description.lower())]
        if exact:
            return exact[0]
        matches = [d for d in devices if wanted in d.name.lower() or wanted in d.description.lower()]
        real = [d for d in matches if not d.monitor]
        best = real or matches
        if len(best) > 1:
            what = "microphones" if kind == "source" else "loudspeakers"
            raise UsageError(f"several {what} match {fragment!r}: "
                             + "; ".join(f"{d.description} ({d.name})" for d in best)
                             + ". Give more of the name (see 'voice-skill devices')")
        return best[0] if best else None


def _pactl(args: Sequence[str]) -> str | None:
    """pactl's output, or None if there is no pactl or no server answering."""
    if shutil.which("pactl") is None:
        return None
    try:
        done = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=PACTL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("pactl %s: %s", " ".join(args), exc)
        return None
    if done.returncode != 0:
        log.debug("pactl %s: %s", " ".join(args), done.stderr.strip())
        return None
    return done.stdout


def query(run: Runner = _pactl) -> SoundServer | None:
    """The sound server's devices, or None when no PulseAudio-compatible server answers."""
    raw = run(["--format=json", "info"])
    if raw is None:
        return None
    try:
        info = json.loads(raw)
        listed = {kind: json.loads(run(["--format=json", "list", kind + "s"]) or "[]") for kind in ("source", "sink")}
    except (ValueError, TypeError) as exc:  # a pactl older than 16 has no JSON
        log.debug("pactl gave no JSON: %s", exc)
        return None
    defaults = {"source": info.get("default_source_name"), "sink": info.get("default_sink_name")}
    devices = []
    for kind, entries in listed.items():
        for entry in entries if isinstance(entries, list) else []:
            name = str(entry.get("name") or "")
            if not name:
                continue
            props = entry.get("properties") or {}
            monitor = kind == "source" and (props.get("device.class") == "monitor" or name.endswith(".monitor"))
            devices.append(ServerDevice(kind, name, str(entry.get("description") or name), name == defaults[kind],
                                        monitor))
    return SoundServer(str(info.get("server_name") or "sound server"), tuple(devices))


ENV_FOR = {"source": "PULSE_SOURCE", "sink": "PULSE_SINK"}


def route(input_device: str | None, output_device: str | None, *, server: SoundServer | None = None,
          env: MutableMapping[str, str] = os.environ, run: Runner = _pactl) -> tuple[str | None, str | None]:
    """Route the streams to the sound server's devices a user named.

    Returns the device names to give PortAudio: for a fragment that names a server device,
    None (PortAudio's default, which goes through the server) with ``PULSE_SOURCE`` or
    ``PULSE_SINK`` set in ``env``; any other fragment unchanged (an ALSA device, matched by
    PortAudio as before)."""
    if not input_device and not output_device:
        return input_device, output_device
    server = server if server is not None else query(run)
    if server is None:
        return input_device, output_device
    out: list[str | None] = []
    for fragment, kind in ((input_device, "source"), (output_device, "sink")):
        device = server.find(fragment, kind) if fragment else None
        if device is None:
            out.append(fragment)
            continue
        env[ENV_FOR[kind]] = device.name
        log.info("%s %r: the sound server's %s (%s)", kind, fragment, device.name, device.description)
        out.append(None)
    return out[0], out[1]


def describe(server: SoundServer) -> list[str]:
    """Lines for ``voice-skill devices``."""
    lines = [f"Sound server: {server.server}"]
    for kind, title in (("source", "Microphones"), ("sink", "Loudspeakers")):
        devices = server.of(kind)
        lines.append(f"  {title}:")
        if not devices:
            lines.append("    (none)")
        width = max((len(d.description) for d in devices), default=0)
        for d in devices:
            marks = [m for m, on in (("default", d.default), ("what a loudspeaker plays", d.monitor)) if on]
            lines.append(f"    {d.description:<{width}}  {d.name}" + (f"  ({', '.join(marks)})" if marks else ""))
    return lines
