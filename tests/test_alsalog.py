"""ALSA's messages go to our log, counted: an underrun storm is one line a minute, not
657 lines in 25 s; the devices PortAudio probes as it starts are debug detail."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from voice_skill.devices.alsalog import AlsaMessages

UNDERRUN = (b"pcm.c", 8545, b"snd_pcm_recover", 0, b"%s occurred")


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_an_underrun_storm_is_one_line_then_one_count_a_minute() -> None:
    clock = FakeClock()
    lines: list[tuple[int, str]] = []
    messages = AlsaMessages(lambda level, text: lines.append((level, text)), every_s=60.0, monotonic=clock)
    for i in range(657):  # 25 s of a loaded machine
        clock.t = i * 25 / 657
        messages.message(*UNDERRUN)
    assert len(lines) == 1 and lines[0][0] == logging.WARNING
    assert "snd_pcm_recover" in lines[0][1] and "counted" in lines[0][1]
    clock.t = 61.0
    messages.message(*UNDERRUN)
    assert len(lines) == 2 and "657 more times in the last 61 s" in lines[1][1], lines
    clock.t = 70.0
    messages.message(*UNDERRUN)
    messages.flush()
    assert len(lines) == 3 and "1 more times in the last 9 s" in lines[2][1], lines
    assert messages.total == 659


def test_each_kind_is_shown_once() -> None:
    lines: list[tuple[int, str]] = []
    messages = AlsaMessages(lambda level, text: lines.append((level, text)), monotonic=FakeClock())
    messages.message(*UNDERRUN)
    messages.message(b"pcm.c", 2666, b"snd_pcm_open_noupdate", 0, b"Unknown PCM %s")
    messages.message(*UNDERRUN)
    assert [text.split(")")[0] for _, text in lines] == ["ALSA lib pcm.c:8545:(snd_pcm_recover",
                                                         "ALSA lib pcm.c:2666:(snd_pcm_open_noupdate"]


def test_what_portaudio_probes_at_start_is_debug_only() -> None:
    lines: list[tuple[int, str]] = []
    messages = AlsaMessages(lambda level, text: lines.append((level, text)), monotonic=FakeClock())
    with messages.probing():
        messages.message(b"pcm.c", 2666, b"snd_pcm_open_noupdate", 0, b"Unknown PCM cards.pcm.rear")
    assert [level for level, _ in lines] == [logging.DEBUG]


_STORM = """
import ctypes, logging
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
from voice_skill.devices.portaudio import import_sounddevice
import_sounddevice()  # as every use of the audio devices starts
lib = ctypes.CDLL("libasound.so.2")
pcm = ctypes.c_void_p()
for _ in range(200):
    lib.snd_pcm_open(ctypes.byref(pcm), b"no_such_pcm_device", 0, 0)
"""


def test_the_real_libasound_prints_through_our_handler() -> None:
    pytest.importorskip("sounddevice")
    done = subprocess.run([sys.executable, "-c", _STORM], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "no_such_pcm_device" in ln or "snd_pcm_open" in ln]
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("WARNING voice_skill.devices.alsalog:"), lines
