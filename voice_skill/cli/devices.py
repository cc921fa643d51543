"""``voice-skill devices`` and ``voice-skill check``: is the microphone and speaker right?

``devices`` lists inputs and outputs with the defaults marked. ``check`` does, in one
step, what a user would otherwise try by hand: speaks a test sentence, records three
seconds, shows the input level and what the recognizer made of it.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from voice_skill import settings
from voice_skill.devices import soundserver
from voice_skill.errors import DeviceError

if TYPE_CHECKING:
    from voice_skill.settings import Settings

CHECK_SENTENCE = "This is Cramp coach. After the tone, say calf cramp."
RECORD_S = 3.0
START_TIMEOUT_S = 5.0  # longest wait for a new input stream to deliver audio


def _sounddevice() -> Any:
    from voice_skill.devices.portaudio import import_sounddevice

    return import_sounddevice()


def list_devices(out: TextIO, server: "soundserver.SoundServer | None" = None) -> int:
    """The sound server's microphones and loudspeakers (PulseAudio or PipeWire), then the
    devices PortAudio sees (ALSA's, on a system without a sound server)."""
    server = server if server is not None else soundserver.query()
    if server is not None:
        for line in soundserver.describe(server):
            print(line, file=out)
        print("\nAudio devices as PortAudio sees them (through the sound server: 'pulse' and 'default'):", file=out)
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in, default_out = sd.default.device
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot list audio devices: {exc}") from None
    rows = []
    for index, dev in enumerate(devices):
        kinds = []
        if dev["max_input_channels"] > 0:
            kinds.append("input" + (" (default)" if index == default_in else ""))
        if dev["max_output_channels"] > 0:
            kinds.append("output" + (" (default)" if index == default_out else ""))
        rows.append((index, dev["name"], ", ".join(kinds), int(dev["default_samplerate"])))
    if not rows:
        if server is None:
            print("No audio devices found: no sound server (PulseAudio or PipeWire) is running and no sound card "
                  "was found.", file=out)
        else:
            print("  (none)", file=out)
        return 0
    width = max(len(r[1]) for r in rows)
    for index, name, kinds, rate in rows:
        print(f"{index:>3}  {name:<{width}}  {kinds:<32}  {rate} Hz", file=out)
    print("\nChoose one with a fragment of its name or description: "
          "voice-skill run --input-device NAME --output-device NAME", file=out)
    return 0


def describe_level(dbfs: float) -> str:
    if dbfs < -60:
        return "silent: is the microphone muted or the wrong one?"
    if dbfs < -45:
        return "very quiet: move closer or raise the input gain"
    if dbfs > -3:
        return "clipping: lower the input gain"
    return "good"


def _no_device_words(exc: Exception, what: str) -> str:
    """PortAudio's message, or what it means in words where it is cryptic."""
    text = str(exc)
    if "device -1" in text or "Invalid device" in text or "No Default" in text:
        return (f"no {what} found: no sound server is running and no sound card offers one "
                "(see 'voice-skill devices')")
    return text


def run_check(chosen: "Settings | None", out: TextIO, *, input_device: str | None = None,
              output_device: str | None = None) -> int:
    """Speak, record, report, with the devices, voice and speech engine ``run`` would use
    (``chosen``: the resolved settings). Returns 0 when both directions worked."""
    from voice_skill.asr.select import grammar_recognizer
    from voice_skill.audio.pcm import AudioChunk
    from voice_skill.audio.chime import chime
    from voice_skill.core.intents import IntentParser, PhraseTable
    from voice_skill.devices.microphone import check_input_device
    from voice_skill.ui.screen import level_dbfs
    from voice_skill.settings import Settings
    from voice_skill.runtime.output import open_voice
    from voice_skill.tts.cache import voice_label

    chosen = chosen or Settings()
    input_device, output_device = soundserver.route(input_device or chosen.input_device,
                                                    output_device or chosen.output_device)
    table = PhraseTable.load()
    # The engine first: a bad model is one line before any sound is made.
    recognizer, description = grammar_recognizer(chosen.asr, chosen.model, table.phrases())
    try:
        sd = _sounddevice()
        ok = True
        try:
            voice, _plan = open_voice(chosen.voice, rate=chosen.rate, volume=chosen.volume, in_process=True,
                                      on_warning=lambda text: print(f"voice:      {text}", file=out))
            speech = voice.synthesize(CHECK_SENTENCE)
            sd.play(np.concatenate([speech, chime()]).astype(np.int16), 16000, device=output_device, blocking=True)
            print(f"speaker:    played a test sentence ({len(speech) / 16000:.1f} s, voice {voice_label(voice.identity)})"
                  + (f" on {output_device!r}" if output_device else ""), file=out)
        except (DeviceError, sd.PortAudioError, ValueError) as exc:
            ok = False
            print(f"speaker:    failed: {_no_device_words(exc, 'loudspeaker')}", file=out)
        check_input_device(input_device)
        try:
            with sd.InputStream(samplerate=16000, channels=1, dtype="int16", device=input_device) as stream:
                # Ask the user to speak only once audio flows: PulseAudio can take a second or
                # two to start a stream, and words said before that are lost.
                deadline = time.monotonic() + START_TIMEOUT_S
                while stream.read_available == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)
                stream.read(stream.read_available)
                print(f"microphone: recording {RECORD_S:g} seconds, say \"calf cramp\"...", file=out, flush=True)
                recording = stream.read(int(RECORD_S * 16000))[0][:, 0]
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"the microphone could not record: {_no_device_words(exc, 'microphone')}") from None
        dbfs = level_dbfs(recording)
        print(f"input level: {dbfs:.0f} dBFS ({describe_level(dbfs)})", file=out)
        hyps = recognizer.accept(AudioChunk(recording.astype("<i2").tobytes(), 0.0)) + recognizer.flush()
    finally:
        close = getattr(recognizer, "close", None)
        if close is not None:
            close()
    heard = " / ".join(h.text for h in hyps if h.text) or "nothing"
    intents = [i.name for i in (IntentParser(table).parse(h.text) for h in hyps) if i]
    print(f"recognised: {heard}" + (f" (means: {', '.join(intents)})" if intents else "")
          + f"  [{description}]", file=out)
    if dbfs < -60:
        ok = False
    return 0 if ok else 1


def add_parser(subparsers) -> None:
    devices = subparsers.add_parser(
        "devices", help="list microphones and loudspeakers, defaults marked",
        description="List the sound server's microphones and loudspeakers (PulseAudio or PipeWire), then "
        "PortAudio's, with the defaults marked. A fragment of a name or description shown here is what "
        "--input-device and --output-device take.")
    devices.set_defaults(func=lambda args: list_devices(sys.stdout))
    check = subparsers.add_parser(
        "check", help="speak a test sentence, record 3 s, show the level and what was heard",
        description="Speak a test sentence, record 3 seconds and show the input level and what was heard, "
        "with the devices, voice and speech engine that 'run' would use (the same settings, from the "
        "command line, the environment and the config file).")
    settings.add_arguments(check)
    check.set_defaults(func=lambda args: run_check(settings.from_args(args), sys.stdout))
