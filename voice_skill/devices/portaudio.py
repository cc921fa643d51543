"""The one door to sounddevice (PortAudio): importing it with ALSA's messages routed, and
closing a stream that may already be gone. The microphone, the loudspeaker and the device
list all come through here, so they meet PortAudio the same way."""

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
