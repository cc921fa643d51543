"""A private PulseAudio server with a virtual speaker and a virtual microphone, for tests.

The server runs in a temporary directory: its own runtime dir, socket, state and HOME.
No sound card is needed. It has two null sinks:

- ``vspeaker``: the default sink. What the skill plays lands here. Record it from
  ``vspeaker.monitor`` with :meth:`PulseServer.record_speaker`.
- ``vmicfeed``: :meth:`PulseServer.play_to_mic` plays WAV files into it. Its monitor,
  ``vmicfeed.monitor``, is the default source: the virtual microphone.

PortAudio (and so sounddevice) reaches the server through ALSA's pulse plugin. An
``.asoundrc`` in the private HOME points ``pcm.default`` at it. PortAudio lists devices
once, when it initialises, so code under test must run in a child process started with
:attr:`PulseServer.env` (:meth:`PulseServer.run_python`), not in the pytest process.

Found while building this: a new stream through the ALSA pulse plugin first gets a
pre-fill burst, then stalls for 0.3 to 1.7 s. An input stream's first block came 0.7 to
1.8 s after start. When a player starts on the feed sink, the virtual microphone can
lose a few hundred milliseconds of audio without any overflow being reported.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEAKER_SINK = "vspeaker"
MIC_FEED_SINK = "vmicfeed"
MIC_SOURCE = "vmicfeed.monitor"

_CONFIG = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name={speaker} rate=48000 sink_properties=device.description=VirtualSpeaker
load-module module-null-sink sink_name={feed} rate=48000 sink_properties=device.description=VirtualMicrophoneFeed
set-default-sink {speaker}
set-default-source {source}
"""

_ASOUNDRC = """\
pcm.!default { type pulse }
ctl.!default { type pulse }
"""


def unavailable_reason() -> str | None:
    """Why a private PulseAudio server cannot run here, or None if it can."""
    for tool in ("pulseaudio", "pactl", "paplay", "parecord"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt install pulseaudio pulseaudio-utils libasound2-plugins)"
    return None


class PulseServer:
    """Start with :meth:`start` (or use as a context manager); always :meth:`stop`."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._own_root = root is None
        self.root = Path(root if root is not None else tempfile.mkdtemp(prefix="pulse-test-"))
        self.socket = self.root / "native"
        self.log_path = self.root / "pulseaudio.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self.env = self._make_env()

    def _make_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key in ("PULSE_SINK", "PULSE_SOURCE", "PULSE_COOKIE", "ALSA_CONFIG_PATH", "DISPLAY", "DBUS_SESSION_BUS_ADDRESS"):
            env.pop(key, None)
        env.update({
            "HOME": str(self.root),
            "XDG_RUNTIME_DIR": str(self.root),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "PULSE_RUNTIME_PATH": str(self.root),
            "PULSE_STATE_PATH": str(self.root / "state"),
            "PULSE_SERVER": f"unix:{self.socket}",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        })
        return env

    # -- lifecycle

    def start(self, timeout_s: float = 10.0) -> "PulseServer":
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        (self.root / "state").mkdir(parents=True, exist_ok=True)
        (self.root / "config").mkdir(parents=True, exist_ok=True)
        (self.root / ".asoundrc").write_text(_ASOUNDRC)
        config = self.root / "server.pa"
        config.write_text(_CONFIG.format(socket=self.socket, speaker=SPEAKER_SINK, feed=MIC_FEED_SINK, source=MIC_SOURCE))
        log = open(self.log_path, "wb")
        cmd = ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "-F", str(config),
               "--use-pid-file=no", "--disallow-module-loading=no", "--log-target=stderr"]
        if os.geteuid() == 0:
            cmd.append("--system=no")
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=self.env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited at once: {self.log_tail()}")
            if self.socket.exists() and self.pactl("info", check=False).returncode == 0:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pulseaudio did not come up in {timeout_s:g} s: {self.log_tail()}")

    def stop(self) -> None:
        for child in self._children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    child.kill()
        self._children.clear()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PulseServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    # -- tools

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10, check=check)

    def play_to_mic(self, wav: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
        """Start playing ``wav`` into the virtual microphone; returns the player process."""
        proc = subprocess.Popen(["paplay", f"--device={MIC_FEED_SINK}", os.fspath(wav)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._children.append(proc)
        return proc

    def record_speaker(self, wav: str | os.PathLike[str], rate: int = 16000,
                       latency_ms: int = 20) -> subprocess.Popen[bytes]:
        """Start recording the virtual speaker to ``wav`` (16 kHz mono); stop it with :func:`stop_recording`."""
        return self.record(wav, f"{SPEAKER_SINK}.monitor", rate, latency_ms)

    def record(self, wav: str | os.PathLike[str], source: str, rate: int = 16000,
               latency_ms: int = 20) -> subprocess.Popen[bytes]:
        """Start recording ``source`` to ``wav`` (16 kHz mono); stop it with :func:`stop_recording`.

        The recorder's latency matters to what a player on the sink does after an underrun:
        with the recorder at 20 ms, a player through ALSA's pulse plugin whose callback was held
        up once for 0.15 s underran again at every callback from then on (thousands of times,
        its audio consumed at some 25 times real time and never played, and the recording
        stopped); at 10 ms it underran once and played on."""
        proc = subprocess.Popen(["parecord", f"--device={source}", "--file-format=wav", f"--rate={rate}",
                                 "--channels=1", "--format=s16le", f"--latency-msec={latency_ms}", os.fspath(wav)],
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._children.append(proc)
        return proc

    def run_python(self, code: str, timeout_s: float = 30.0, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a child Python that sees only this server's audio devices."""
        return subprocess.run([sys.executable, "-c", code, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout_s, cwd=str(REPO_ROOT))

    def popen_python(self, code: str, args: tuple[str, ...] = ()) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-u", "-c", code, *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=str(REPO_ROOT))
        self._children.append(proc)  # type: ignore[arg-type]
        return proc


def stop_recording(proc: subprocess.Popen[bytes]) -> None:
    """Stop parecord cleanly so it finalises the WAV header."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_wav_int16(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Samples and rate of a 16-bit WAV (parecord leaves the size fields of a killed recording at 0)."""
    with open(path, "rb") as fh:
        data = fh.read()
    with wave.open(os.fspath(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
    start = data.find(b"data") + 8
    samples = np.frombuffer(data[start:start + (len(data) - start) // 2 * 2], dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return samples, rate


def active_spans(samples: np.ndarray, rate: int, frame_s: float = 0.01, threshold: float = 200.0,
                 min_gap_s: float = 0.35) -> list[tuple[float, float]]:
    """(start_s, end_s) of the stretches whose RMS exceeds ``threshold``, with gaps shorter than ``min_gap_s`` merged."""
    n = max(1, int(rate * frame_s))
    frames = len(samples) // n
    if frames == 0:
        return []
    x = samples[:frames * n].astype(np.float64).reshape(frames, n)
    loud = np.sqrt((x ** 2).mean(axis=1)) > threshold
    spans: list[list[float]] = []
    for i in np.nonzero(loud)[0]:
        t = i * frame_s
        if spans and t - spans[-1][1] <= min_gap_s:
            spans[-1][1] = t + frame_s
        else:
            spans.append([t, t + frame_s])
    return [(a, b) for a, b in spans]


@pytest.fixture(scope="module")
def pulse() -> Iterator[PulseServer]:
    """A running private PulseAudio server for the tests of one module (skips if unavailable)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = PulseServer()
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        pytest.skip(f"cannot start a private PulseAudio server: {exc}")
    try:
        yield server
    finally:
        server.stop()
