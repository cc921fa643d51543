"""The one door to sounddevice (PortAudio): importing it with ALSA's messages routed,
closing a stream that may already be gone, and telling a format refused from a device gone.
The microphone, the loudspeaker and the device list all come through here, so they meet
PortAudio the same way."""

from __future__ import annotations

import logging
from typing import Any

from voice_skill.errors import DeviceError

log = logging.getLogger(__name__)


def import_sounddevice() -> Any:
    """sounddevice, with ALSA's messages routed to our log first (see ``alsalog``): the
    devices PortAudio probes as it starts are debug detail, and repeats are counted."""
    from voice_skill.devices import alsalog

    alsalog.install()
    try:
        with alsalog.probing():
            import sounddevice
    except OSError as exc:  # the PortAudio library is missing
        raise DeviceError(f"no audio system: {exc}") from None
    return sounddevice


def close_stream(stream: Any, what: str) -> None:
    """Abort and close a stream; a lost device may fail at either, which is only logged."""
    for step in ("abort", "close"):
        try:
            getattr(stream, step)()
        except Exception as exc:  # PortAudioError or anything the lost device raises
            log.debug("%s the %s stream: %s", "aborting" if step == "abort" else "closing", what, exc)


# PortAudio's answers that mean "not in this format" (invalid sample rate, invalid channel
# count, sample format not supported): only these are worth a try in another format.
_FORMAT_ERRORS = frozenset({-9997, -9998, -9994})


def format_refused(exc: Exception) -> bool:
    """Whether opening failed for the format asked for, not for the device (gone, busy).

    A device that has gone fails every format alike ("Unanticipated host error", -9999,
    from ALSA's pulse plugin), and while it is gone the skill retries every few seconds.
    Each failed open through that plugin risks a crash inside PortAudio: a loop of failed
    opens beside a playing output stream ended in a segmentation fault within 90 s (without
    one, 50 000 failed opens did not), and once live, within seconds of an unplugged
    microphone's outage on a loaded machine (docs/faults.md). So the microphone and the
    loudspeaker end a round of formats at a device error."""
    code = exc.args[1] if len(exc.args) > 1 else None
    return isinstance(code, int) and code in _FORMAT_ERRORS
