"""The live skill end to end, as a user runs it: ``voice-skill run --no-journal --events FILE``
as a child process, against a private PulseAudio server (tests/pulse.py) with a virtual
microphone and a virtual speaker. Nothing is mocked: the user's speech is played into
the microphone, the skill's speech is recorded from the speaker's monitor.

Each test starts its own server, so a device unloaded by one cannot leak into another.
User speech is synthesised with flite voices (tests: PocketSphinx hears those well).
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.pulse import (MIC_FEED_SINK, MIC_SOURCE, SPEAKER_SINK, PulseServer, active_spans, read_wav_int16,
                         stop_recording, unavailable_reason)
from voice_skill.audio.pcm import read_wav, write_wav

pytestmark = pytest.mark.live

USER_VOICE = "flite:slt"
COMBINED_SINK = "vuser"  # the user's voice reaches the microphone and, for timing, the speaker's recording


def _skip_without_tools() -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (needed for the simulated user's voice)")


def voice_skill_command() -> list[str]:
    """The installed entry point next to this interpreter, as a user would type it."""
    script = Path(sys.executable).with_name("voice-skill")
    return [str(script)] if script.exists() else [sys.executable, "-m", "voice_skill"]


def user_wav(path: Path, text: str, voice: str = USER_VOICE, pad_s: float = 0.2) -> float:
    """Write ``text`` spoken by ``voice`` to ``path``; return its spoken length in seconds."""
    from voice_skill.devtools.speechgen import synthesize

    speech = synthesize(text, voice)
    pad = np.zeros(int(pad_s * 16000), dtype=np.int16)
    write_wav(path, np.concatenate([pad, speech, pad]))
    return len(speech) / 16000


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its threads."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Mouth:
    """The user's voice as one playback stream that stays open, sending silence between words.

    Each ``paplay`` is a new stream on the microphone's sink, and PulseAudio sets a sink's
    latency anew when a stream joins it: in one self-hearing run the loopback's echo moved by
    24 samples the moment the user's first word started (speaker and microphone recordings
    lined up before and after). A room's echo does not move when someone speaks."""

    BLOCK = 320  # 20 ms at 16 kHz

    def __init__(self, env: dict[str, str], sink: str, tmp: Path) -> None:
        self.tmp = tmp
        self.proc = subprocess.Popen(["pacat", "--playback", f"--device={sink}", "--raw", "--rate=16000",
                                      "--channels=1", "--format=s16le", "--latency-msec=40"],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # A small pipe (one page, 128 ms of audio) keeps a word from waiting behind seconds of silence.
        fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 4096)
        self._words: queue.Queue[bytes] = queue.Queue()
        self._open = True
        self._thread = threading.Thread(target=self._play, daemon=True)
        self._thread.start()

    def _play(self) -> None:
        size = 2 * self.BLOCK  # bytes
        pending = b""
        while self._open:
            if not pending:
                try:
                    pending = self._words.get_nowait()
                except queue.Empty:
                    pass
            block, pending = pending[:size], pending[size:]
            try:
                self.proc.stdin.write(block.ljust(size, b"\0"))  # silence between words; blocks while the server's buffer is full
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return

    def say(self, text: str, voice: str = USER_VOICE) -> tuple[float, float]:
        """Say ``text`` and wait until it has been said; (wall start, spoken seconds)."""
        wav = self.tmp / (re.sub(r"\W+", "-", f"{voice} {text}") + ".wav")
        seconds = user_wav(wav, text, voice)
        samples, _rate = read_wav_int16(wav)
        t0 = time.monotonic()
        self._words.put(samples.astype("<i2").tobytes())
        time.sleep(len(samples) / 16000 + 0.1)
        return t0, seconds

    def close(self) -> None:
        self._open = False
        self._thread.join(timeout=2)
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self.proc.terminate()
        self.proc.wait(timeout=5)


class LiveSkill:
    """A private PulseAudio server plus the skill running on it as a child process."""

    def __init__(self, tmp: Path, *, pin_devices: bool = False, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), combined: bool = True, prefix: list[str] | None = None) -> None:
        self.tmp = tmp
        self.server = PulseServer().start()
        if combined:
            self.server.pactl("load-module", "module-combine-sink", f"sink_name={COMBINED_SINK}",
                              f"slaves={MIC_FEED_SINK},{SPEAKER_SINK}")
            self.server.pactl("set-default-sink", SPEAKER_SINK)
        self.env = dict(self.server.env)
        if pin_devices:  # a named device, as a USB microphone and speaker would be
            self.env.update(PULSE_SOURCE=MIC_SOURCE, PULSE_SINK=SPEAKER_SINK)
        self.env.update(env or {})
        self.events_path = tmp / "events.jsonl"
        self.recording = tmp / "speaker.wav"
        self.recorder = self.server.record_speaker(self.recording)
        self.started_at = time.monotonic()
        # Output to files, not pipes: a pipe nobody reads fills up and blocks the skill
        # (ALSA writes an "underrun occurred" line to stderr for every underrun).
        self._out = open(tmp / "stdout.txt", "w+")
        self._err = open(tmp / "stderr.txt", "w+")
        self.proc = subprocess.Popen([*(prefix or []), *voice_skill_command(), "run", "--no-journal", "--events",
                                      str(self.events_path), *args], env=self.env, stdout=self._out, stderr=self._err,
                                     text=True, cwd=str(tmp))
        self.stdout = ""
        self.stderr = ""
        self._mouths: list[Mouth] = []

    # -- waiting

    def events(self) -> list[dict]:
        try:
            lines = self.events_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for(self, predicate, timeout_s: float, what: str) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = self.events()
            if predicate(events):
                return events
            if self.proc.poll() is not None:
                self.finish()
                raise AssertionError(f"the skill exited ({self.proc.returncode}) waiting for {what}: {self.stderr[-1500:]}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; events: {self.events()[-8:]}")

    def wait_listening(self, timeout_s: float = 30.0) -> None:
        """Until the skill has loaded its model and its microphone stream is delivering."""
        self.wait_for(lambda ev: any(e["event"] == "engine" for e in ev), timeout_s, "the engine")
        deadline = time.monotonic() + timeout_s
        while "voice-skill" not in self.server.pactl("list", "source-outputs", check=False).stdout.lower() and \
                "python" not in self.server.pactl("list", "source-outputs", check=False).stdout.lower():
            assert time.monotonic() < deadline, "the skill never opened the microphone"
            time.sleep(0.1)
        time.sleep(2.5)  # a new PulseAudio input stream delivers its first block after up to ~2 s

    def module_of(self, sink: str) -> str:
        for line in self.server.pactl("list", "short", "modules").stdout.splitlines():
            if f"sink_name={sink} " in line + " ":
                return line.split()[0]
        raise AssertionError(f"no module for {sink}")

    def unload_sink(self, sink: str) -> None:
        self.server.pactl("unload-module", self.module_of(sink))

    def load_sink(self, sink: str, description: str) -> None:
        done = self.server.pactl("load-module", "module-null-sink", f"sink_name={sink}", "rate=48000",
                                 f"sink_properties=device.description={description}", check=False)
        assert done.returncode == 0, (done.stderr, self.server.log_tail(8), self.server.pactl("list", "short", "sinks").stdout)

    def unplug(self, sink: str, kind: str) -> None:
        """Unplug a device: remove it, and end the skill's stream on it.

        PulseAudio moves the streams of a removed device to another one (here the
        other null sink or its monitor); a USB device unplugged on a machine with one
        sound device leaves them nowhere to go. Ending the stream gives that case."""
        self.unload_sink(sink)
        listing = self.server.pactl("list", kind).stdout
        indexes = [block.split("#", 1)[1].split()[0] for block in listing.split("\n\n")
                   if f'application.process.id = "{self.proc.pid}"' in block]
        assert indexes, listing
        self.pulse_cli(*(f"kill-{kind[:-1]} {i}" for i in indexes))

    def pulse_cli(self, *commands: str) -> None:
        """Run commands on the server's command-line interface (pactl has no kill command)."""
        cli = self.server.root / "cli"
        if not cli.exists():
            self.server.pactl("load-module", "module-cli-protocol-unix", f"socket={cli}")
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(str(cli))
            conn.sendall(("\n".join(commands) + "\n").encode())  # (not "exit": that ends the daemon)
            conn.settimeout(0.5)
            try:
                while conn.recv(4096):
                    pass
            except socket.timeout:
                pass

    def say(self, text: str, *, to: str = COMBINED_SINK, wait: bool = True) -> tuple[float, float]:
        """Play the user's ``text`` into the microphone; (wall start, spoken seconds)."""
        wav = self.tmp / (re.sub(r"\W+", "-", text) + ".wav")
        seconds = user_wav(wav, text)
        t0 = time.monotonic()
        player = subprocess.Popen(["paplay", f"--device={to}", str(wav)], env=self.server.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait:
            player.wait(timeout=30)
        return t0, seconds

    def hear_own_voice(self, gain_db: float) -> None:
        """Everything the skill plays comes back into its microphone, ``gain_db`` down, as from a
        loudspeaker in a quiet room. A room's echo path holds still; the loopback's default
        adaptive resampling makes the delay wander by samples every few seconds, which no room
        does (adjust_time=0 turns it off). (Until stop 21 the test looked for the loopback in the
        short listing's second column, which is the sink: the echo came in as loud as the user.)"""
        module = self.server.pactl("load-module", "module-loopback", f"source={SPEAKER_SINK}.monitor",
                                   f"sink={MIC_FEED_SINK}", "latency_msec=30", "adjust_time=0").stdout.strip()
        deadline = time.monotonic() + 10.0
        while True:
            streams = json.loads(self.server.pactl("--format=json", "list", "sink-inputs").stdout or "[]")
            loop = [s["index"] for s in streams if s.get("owner_module") == module]
            if loop or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(loop) == 1, streams
        self.server.pactl("set-sink-input-volume", str(loop[0]), f"{gain_db:g}dB")

    def mouth(self, to: str) -> "Mouth":
        """A user who stays in the room: one playback stream into ``to`` for the whole test."""
        mouth = Mouth(self.server.env, to, self.tmp)
        self._mouths.append(mouth)
        return mouth

    def signal(self, sig: int = signal.SIGINT, timeout_s: float = 10.0) -> float:
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.finish(timeout_s)
        return time.monotonic() - t0

    def finish(self, timeout_s: float = 10.0) -> None:
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stdout = (self.tmp / "stdout.txt").read_text(errors="replace")
        self.stderr = (self.tmp / "stderr.txt").read_text(errors="replace")

    def close(self) -> None:
        for mouth in self._mouths:
            mouth.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.finish()
        stop_recording(self.recorder)
        self.server.stop()
        self._out.close()
        self._err.close()

    def speaker_audio(self) -> np.ndarray:
        stop_recording(self.recorder)
        samples, rate = read_wav_int16(self.recording)
        assert rate == 16000
        return samples


def chosen_voice() -> str | None:
    """The voice named by ``VOICE_SKILL_VOICE`` for a comparison (``VOICE_SKILL_VOICE=espeak
    pytest ...``); None: the skill's default (the natural voice where it is installed)."""
    return os.environ.get("VOICE_SKILL_VOICE") or None


def voice_args() -> tuple[str, ...]:
    """The skills' ``--voice`` option for ``chosen_voice()`` (none for the default)."""
    chosen = chosen_voice()
    return ("--voice", chosen) if chosen else ()


@pytest.fixture(scope="module")
def warm_speech_cache() -> int:
    """What ``make run`` leaves behind (``voice prepare``), as far as these tests need it: every
    routine's opening lines in the speech cache the skills of this worker share (conftest.py),
    in the voice the skills will use at the default rate. The number of sentences rendered."""
    from voice_skill.core.rehearsal import opening_sentences
    from voice_skill.runtime.output import open_voice
    from voice_skill.settings import Settings

    texts = [t for t in opening_sentences() if not any(side in t for side in ("left", "right"))]  # no leg named
    voice, _plan = open_voice(chosen_voice() or Settings().voice, in_process=True, fixed=texts)
    if voice.cache is None:  # (espeak-ng renders each sentence when it is said)
        return 0
    return voice.prepare(texts, [voice.rate]).rendered


@pytest.fixture
def skill_factory(tmp_path, warm_speech_cache):
    _skip_without_tools()
    made: list[LiveSkill] = []

    def make(**kw) -> LiveSkill:
        skill = LiveSkill(tmp_path, **kw)
        made.append(skill)
        return skill

    yield make
    for skill in made:
        skill.close()


def _log_envelope(samples: np.ndarray, frame: int = 160) -> np.ndarray:
    n = len(samples) // frame
    rms = np.sqrt((samples[:n * frame].astype(np.float64).reshape(n, frame) ** 2).mean(axis=1))
    return np.log10(rms + 30.0)


def envelope_match(recorded: np.ndarray, reference: np.ndarray) -> float:
    """How well ``recorded`` holds ``reference`` somewhere in it: the best correlation of
    their 10 ms loudness envelopes over every alignment (-1 to 1). Envelopes, not
    waveforms: two espeak-ng renderings of one sentence differ in fine detail, and the
    trip through the sound server resamples it."""
    a, b = _log_envelope(recorded), _log_envelope(reference)
    if len(b) < 2 or len(a) < len(b):
        return -1.0
    windows = np.lib.stride_tricks.sliding_window_view(a, len(b))
    wc = windows - windows.mean(axis=1, keepdims=True)
    bc = b - b.mean()
    denom = np.sqrt((wc ** 2).sum(axis=1) * (bc ** 2).sum())
    corr = np.where(denom > 0, wc @ bc / np.maximum(denom, 1e-12), -1.0)
    return float(corr.max())


def first_sentences() -> list[str]:
    """Everything the skill can say first: the coach's messages (with placeholders filled
    in as for an unnamed leg) and every routine's intro and steps."""
    from voice_skill.core.coach import Messages
    from voice_skill.core.routine import builtin_routines

    fill = lambda text: text.replace("{calf}", "calf").replace("{leg}", "leg").replace("{pace}", "steady")  # noqa: E731
    out = [fill(text) for text in Messages.load().texts.values() if isinstance(text, str)]
    for r in builtin_routines().values():
        for text in (r.intro, *(s.say for s in r.steps)):
            if text and fill(text) not in out:
                out.append(fill(text))
    return out


def heard_intents(events: list[dict]) -> list[str]:
    return [e["intent"] for e in events if e["event"] == "heard" and e.get("intent") and not e.get("partial")]


# ---------------------------------------------------------------- (a) a user's trigger, answered aloud

def test_calf_cramp_is_answered_aloud_and_quickly(skill_factory) -> None:
    skill = skill_factory(args=("--time-of-day", "14:00", *voice_args()))  # daytime settings, for the match below
    skill.wait_listening()
    said_at, seconds = skill.say("calf cramp")
    events = skill.wait_for(lambda ev: sum(e["event"] == "say" for e in ev) >= 2, 30, "two instructions")
    time.sleep(1.0)
    shutdown_s = skill.signal(signal.SIGINT)
    audio = skill.speaker_audio()
    assert skill.proc.returncode == 0, skill.stderr[-2000:]
    assert "Traceback" not in skill.stderr
    assert heard_intents(events)[:1] == ["start"], events
    assert any(e["event"] == "routine" and e["state"] == "started" for e in events)

    # The user's phrase is in the recording too (through the combined sink): the latency
    # from the end of the phrase to the first sound of the answer is measured in one time base.
    # The phrase is found by its waveform (the answer can follow it closer than any gap an
    # energy threshold would need to tell them apart), and it ends at its last loud frame.
    phrase = read_wav(skill.tmp / "calf-cramp.wav").astype(np.float64)
    phrase_end = active_spans(phrase.astype(np.int16), 16000, threshold=300)[-1][1]
    n = 1 << int(np.ceil(np.log2(len(audio) + len(phrase))))
    xcorr = np.fft.irfft(np.fft.rfft(audio.astype(np.float64), n) * np.conj(np.fft.rfft(phrase, n)), n)
    user_end = int(np.argmax(xcorr[:len(audio)])) / 16000 + phrase_end
    assert abs(user_end - (said_at - skill.started_at + 0.2 + seconds)) < 1.5, (user_end, said_at, seconds)
    after = audio[int(round(user_end * 16000)):]
    answer = [(a + user_end, b + user_end) for a, b in active_spans(after, 16000, threshold=300)]
    assert answer, "no answer after the phrase"
    latency = answer[0][0] - user_end
    heard = next(e for e in events if e["event"] == "heard" and e.get("intent") == "start")
    first_say = next(e for e in events if e["event"] == "say")
    internal = first_say["t"] - heard["end_s"]
    print(f"\nlatency, end of 'calf cramp' to first sound: {latency:.3f} s in the recording, "
          f"{internal:.3f} s by the skill's own clock (recognizer end-point {heard['t'] - heard['end_s']:.3f} s); "
          f"shutdown {shutdown_s:.3f} s")
    assert 0.0 < latency < 3.0, (latency, answer)

    # The answer is speech with energy, and it is the routine's first instruction.
    a, b = answer[0]
    first_audio = audio[int(a * 16000):int(min(b, a + 12.0) * 16000)]
    assert np.sqrt(np.mean(first_audio.astype(float) ** 2)) > 300
    # Every instruction the skill logged is sound in the recording at that moment: align
    # the clocks on the first answer, then look for energy right after each later say event.
    says = [e for e in events if e["event"] == "say"]
    offset = a - first_say["t"]
    for e in says[1:]:
        t = e["t"] + offset
        if t + 0.6 > len(audio) / 16000:
            break
        window = audio[int(t * 16000):int((t + 0.6) * 16000)].astype(float)
        assert np.sqrt(np.mean(window ** 2)) > 300, (e, t)
    # And the sound is that sentence: the recording matches the skill's voice's own rendering
    # of the first instruction (daytime settings; the natural voice where it is installed)
    # better than any other sentence of similar length the skill could have said first.
    from voice_skill.runtime.output import open_voice

    used = next(e for e in events if e["event"] == "voice")
    voice, _plan = open_voice(used["voice"], in_process=True)
    assert voice.identity == used["detail"], (voice.identity, used)
    segment = audio[int(a * 16000):int((a + says[1]["t"] - says[0]["t"] + 1.0) * 16000)]
    said = first_say["text"]
    from voice_skill.core.speechtime import estimate_seconds

    # (only sentences of about its length are rivals: rendering the others would cost seconds)
    about = estimate_seconds(said)
    renderings = {text: voice.synthesize(text) for text in first_sentences()
                  if text == said or 0.5 * about <= estimate_seconds(text) <= 1.7 * about}
    spoken_s = len(renderings[said]) / 16000
    said_words = set(said.lower().split())

    def alike(text: str) -> bool:  # mostly the same words: no loudness envelope tells them apart
        words = set(text.lower().split())
        return len(words & said_words) > 0.5 * len(words | said_words)

    # (the day and night routines open with nearly the same sentence; such a twin is no rival)
    scores = {text: envelope_match(segment, x) for text, x in renderings.items()
              if text == said or (0.6 * spoken_s <= len(x) / 16000 <= 1.5 * spoken_s and not alike(text))}
    runner_up = max((score for text, score in scores.items() if text != said), default=-1.0)
    print(f"heard back: envelope match {scores[said]:.2f} with the first instruction, "
          f"{runner_up:.2f} with the next best of {len(scores) - 1}")
    assert scores[said] > 0.8 and scores[said] > runner_up + 0.05, (said, scores[said], runner_up)


# ---------------------------------------------------------------- (b) hearing itself

def test_the_skill_does_not_obey_its_own_voice_and_barge_in_still_works(skill_factory, tmp_path) -> None:
    # The default voice, as a user hears it (the natural voice where it is installed). Until stop
    # 22's echo check this loopback room let "pause" through in only 2 of 4 runs over the natural
    # voice, and the test spoke espeak-ng; stop 23: 5 of 5 (docs/faults.md).
    # Daytime, whatever the clock says: the night routine is slower and quieter (night hours
    # from 22:00), and these tests are about the audio path, not the hour.
    # What the skill's echo canceller saw (microphone, reference, output), for a failure's
    # post-mortem: twice the skill obeyed its own words where its reference was off (docs/faults.md).
    tape = tmp_path / "echo-tape.wav"
    skill = skill_factory(combined=False, args=("--time-of-day", "14:00", *voice_args()),
                          env={"VOICE_SKILL_ECHO_TAPE": str(tape)})
    # Everything the skill plays comes back into its microphone, as from a loudspeaker in a quiet
    # room across it; the user is near the microphone: the echo arrives 6 dB down (half
    # amplitude), the user's voice at full level.
    skill.hear_own_voice(-6.0)
    # What the microphone heard, kept beside the loudspeaker's recording for a failure's post-mortem
    # (scripts/bench_aec.py --replay runs the echo canceller on the two).
    mic_recorder = skill.server.record(skill.tmp / "microphone.wav", MIC_SOURCE)
    user = skill.mouth(MIC_FEED_SINK)
    skill.wait_listening()
    said = [user.say("calf cramp")]  # (wall start, spoken seconds) of the user's every word
    skill.wait_for(lambda ev: any(e["event"] == "routine" for e in ev), 20, "the routine")
    # Let it talk to itself for a while: a full step and more.
    time.sleep(15.0)
    # The user says "pause" over the skill's speech: 0.8 s into the next long instruction. A user
    # whose word is lost says it again: up to three tries, each over a long instruction (the
    # number of tries is printed). Barge-in over the skill's voice is not reliable yet (issue 11's
    # commands target): one CI run on a loaded machine lost the first try, and one fresh-clone
    # run of stop 20 lost both of two ("high its", then mixed with the skill's words).
    # A word taken as another command (once, live: "stop", from the command head's view of
    # "pause" over the echo) ends the tries: the routine may be over.
    def halted(ev: list[dict]) -> bool:  # paused or over: a late result of an earlier try
        return any(e["event"] == "routine" and e["state"] in ("paused", "stopped") for e in ev)

    paused, tries, misheard = False, 0, None
    while not paused and misheard is None and tries < 3:
        n = sum(e["event"] == "say" for e in skill.events())
        events = skill.wait_for(lambda ev, n=n: halted(ev) or any(
            e["event"] == "say" and len(e["text"]) > 40 for e in [x for x in ev if x["event"] == "say"][n:]), 60,
            "a long instruction to talk over")
        if halted(events):  # no more instructions will come: the accounting below says whose it was
            paused = any(e["event"] == "routine" and e["state"] == "paused" for e in events)
            break
        tries += 1
        time.sleep(0.8)
        before = len(skill.events())
        said.append(user.say("pause"))

        def answered(ev: list[dict], before: int = before) -> bool:
            taken = heard_intents(ev[before:])
            return (any(e["event"] == "routine" and e["state"] == "paused" for e in ev)
                    or any(intent != "pause" for intent in taken))

        try:
            events = skill.wait_for(answered, 12, "the pause")
        except AssertionError:
            continue
        paused = any(e["event"] == "routine" and e["state"] == "paused" for e in events)
        if not paused:
            misheard = next(e for e in events[before:] if e["event"] == "heard" and e.get("intent")
                            and not e.get("partial") and e["intent"] != "pause")
    time.sleep(1.0)
    skill.signal(signal.SIGTERM)
    stop_recording(mic_recorder)
    events = skill.events()
    assert skill.proc.returncode == 0, skill.stderr[-2000:]
    with wave.open(str(tape)) as kept:  # the tape was written whole: the run's audio, three channels
        assert kept.getnchannels() == 3 and kept.getnframes() > 20 * 16000
        frames = np.frombuffer(kept.readframes(kept.getnframes()), "<i2").reshape(-1, 3)
    assert np.abs(frames[:, 1]).max() > 1000 and np.abs(frames[:, 0]).max() > 1000  # it spoke, it heard
    # Whose words each accepted hypothesis was, by when they were said, not by when the result
    # came: on a loaded machine the recognizer fell 9 s behind, and a "pause" misheard as "not
    # better" arrived after its try's wait was over. The skill's clock against the wall clock
    # comes from the user's "calf cramp" (the spotter's end of the phrase), give or take the
    # audio path's delay: a user's window reaches 0.5 s before and 1.5 s after the word.
    paused = paused or any(e["event"] == "routine" and e["state"] == "paused" for e in events)  # a late one too
    taken = [e for e in events if e["event"] == "heard" and e.get("intent") and not e.get("partial")]
    calf = next(e for e in taken if e["intent"] == "start")
    shift = calf["end_s"] - (said[0][0] + said[0][1])

    def users(e: dict) -> bool:
        return any(e["start_s"] <= t0 + secs + shift + 1.5 and e["end_s"] >= t0 + shift - 0.5 for t0, secs in said)

    accepted = [e["intent"] for e in taken if not users(e)]  # what it took from its own voice
    wrong = [e for e in taken if users(e) and e["intent"] not in ("start", "pause")]
    if misheard is None and wrong:  # the user's word, heard wrong: recognition, reported below
        misheard = wrong[0]
    starts = [e for e in events if e["event"] == "routine" and e["state"] == "started"]
    ignored = [e for e in events if e["event"] == "heard" and e.get("ignored")]
    print(f"\nself-hearing: {len(ignored)} hypotheses ignored as its own voice, accepted {accepted}, "
          f"paused: {paused} after {tries} tries")
    # Self-hearing: it never restarted itself and never obeyed its own words.
    assert len(starts) == 1, starts
    assert accepted == [], [e for e in taken if not users(e)]
    # Barge-in: the echo canceller has learned the room by now (it finds the echo on the
    # output tape and takes 30-65 dB of it out), but what PocketSphinx makes of the user's word
    # with the canceller's leftovers around it is not reliable yet: in one stop-21 CI run all
    # three tries came out as "each pause" and "eat was" (the recordings replayed offline gave
    # "eat pause" and "pause quit egg"), where 5 of 5 runs beside a CPU hog had paused at the
    # first try. That is issue 11's target for commands over the skill's voice (measured by
    # scripts/eval_commands.py --echo), and the barge-in mechanism itself (a command heard
    # alone over the skill's speech cuts it) is tested on recordings in test_e2e_audio.py
    # (test_speaking_over_the_skill_cuts_it_off) and test_session_echo.py.
    # So a lost "pause" is reported here as an expected failure with what was heard, and a
    # pause that does get through must have cut the speech.
    heard = [e for e in events if e["event"] in ("heard", "say", "cut")][-12:]
    if misheard is not None:
        assert any(e["event"] == "cut" for e in events), "the command over the skill's speech did not cut it"
        pytest.xfail(f"barge-in: the user's 'pause' over the skill's speech was taken as {misheard['intent']} "
                     f"({misheard['text']!r}) at try {tries}; last events: {heard}")
    if not paused:
        pytest.xfail(f"barge-in: the user's 'pause' over the skill's speech was lost at all {tries} tries; "
                     f"last events: {heard}")
    assert any(e["event"] == "cut" for e in events), "the pause did not cut the speech"


def test_a_first_start_takes_nothing_from_its_own_intro_heard_back(tmp_path, warm_speech_cache) -> None:
    """scripts/eval_live_echo.py in short form: two fresh starts with the loudspeaker looped back
    into the microphone 6 dB down, before the echo canceller has ever heard the room; in the
    second a red flag is called out over the skill's first sentences. The skill's own intro,
    heard back, never counts as the user (stop 43 dropped the rule that took a red flag there only
    as its phrase said alone; without its part for the safety head, one of 24 live starts took an
    emergency from the intro). Whether the red flag itself was heard is printed, not asserted: the
    script measures that (6 of 12)."""
    import random

    from scripts.eval_live_echo import episode

    _skip_without_tools()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or tmp_path / "cache")
    rng = random.Random(1)
    rows = [episode(tmp_path, i, rng, cache) for i in (0, 1)]
    print(f"\nfirst starts over their own echo: {rows}")
    assert [row["verdict"] for row in rows][0] == "nobody", rows
    assert rows[1]["verdict"] in ("right", "wrong", "missed"), rows  # the routine started
    assert rows[0]["false"] == [] and rows[1]["false"] == [], rows


# ---------------------------------------------------------------- (c) devices that go away

def _window_cpu(pid: int, seconds: float) -> float:
    c0 = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - c0


def test_the_microphone_unplugged_mid_routine(skill_factory) -> None:
    # daytime: at night the slower routine may say nothing more in the 8-s outage than the notice
    skill = skill_factory(pin_devices=True, combined=False, args=("--time-of-day", "14:00"))
    skill.wait_listening()
    skill.say("calf cramp", to=MIC_FEED_SINK)
    skill.wait_for(lambda ev: any(e["event"] == "routine" for e in ev), 20, "the routine")
    time.sleep(2.0)
    says_before = sum(e["event"] == "say" for e in skill.events())
    skill.unplug(MIC_FEED_SINK, "source-outputs")  # the microphone (the feed sink's monitor) disappears
    skill.wait_for(lambda ev: any(e["event"] == "warning" and "microphone" in e["text"] for e in ev), 10, "the warning")
    outage_s = 8.0
    cpu = _window_cpu(skill.proc.pid, outage_s)
    says_during = sum(e["event"] == "say" for e in skill.events()) - says_before
    skill.load_sink(MIC_FEED_SINK, "VirtualMicrophoneFeed")
    # What the reopened microphone hears, for a failure's post-mortem.
    mic_recorder = skill.server.record(skill.tmp / "microphone.wav", MIC_SOURCE)
    skill.wait_for(lambda ev: any(e["event"] == "device" and "microphone" in e["text"] for e in ev), 15,
                   "the microphone to be reopened")
    from voice_skill.core.coach import Messages

    messages = Messages.load()
    # The notice waits its turn behind the instruction being spoken (a "stop" now would drop it).
    skill.wait_for(lambda ev: any(e["event"] == "say" and e["text"] == messages["microphone_back"] for e in ev), 30,
                   "the skill to say it can hear again")
    time.sleep(1.0)
    # A user not obeyed says it again. Until stop 22 the first "stop" was lost in some loaded runs:
    # the skill heard its own lines around it, though this room has no path from the loudspeaker
    # to the microphone. The echo canceller had learned the loudspeaker's monitor while the input
    # was moved there for a moment, then subtracted that echo from a clean microphone (docs/faults.md).
    try:
        for attempt in range(2):
            skill.say("stop", to=MIC_FEED_SINK)
            try:
                skill.wait_for(lambda ev: any(e["event"] == "routine" and e["state"] == "stopped" for e in ev), 15,
                               "the stop, heard through the reopened microphone")
                break
            except AssertionError:
                if attempt == 1:
                    raise
    finally:
        stop_recording(mic_recorder)
    skill.signal(signal.SIGTERM)
    warnings = [e for e in skill.events() if e["event"] == "warning"]
    print(f"\nmicrophone outage: CPU {cpu:.3f} s in {outage_s:g} s ({100 * cpu / outage_s:.1f} %), "
          f"{says_during} instructions spoken meanwhile; warnings: {[w['text'] for w in warnings]}")
    assert skill.proc.returncode == 0, skill.stderr[-2000:]
    assert len([w for w in warnings if "microphone" in w["text"]]) == 1, warnings
    # the user is told, aloud and once, that they cannot be heard, and when they can again
    said = [e["text"] for e in skill.events() if e["event"] == "say"]
    assert said.count(messages["microphone_lost"]) == 1 and said.count(messages["microphone_back"]) == 1, said
    assert says_during >= 2  # that notice, and the routine kept talking
    # No spinning: a busy loop costs a whole core (1.0 per second). Here 1 % is usual, but a loaded
    # CI run that spoke 5 instructions in the window measured 29 % (stop 29), so the bar is half.
    assert cpu < 0.5 * outage_s, cpu
    assert "Traceback" not in skill.stderr


def test_the_loudspeaker_unplugged_mid_routine(skill_factory) -> None:
    skill = skill_factory(pin_devices=True, combined=False, args=("--time-of-day", "14:00"))
    skill.wait_listening()
    skill.say("calf cramp", to=MIC_FEED_SINK)
    skill.wait_for(lambda ev: sum(e["event"] == "say" for e in ev) >= 1, 20, "the first instruction")
    time.sleep(1.0)
    stop_recording(skill.recorder)
    skill.unplug(SPEAKER_SINK, "sink-inputs")
    t_lost = time.monotonic()
    skill.wait_for(lambda ev: any(e["event"] == "warning" and "speech output" in e["text"] for e in ev), 20,
                   "the warning")
    says_before = sum(e["event"] == "say" for e in skill.events())
    cpu = _window_cpu(skill.proc.pid, 6.0)
    # The routine goes on in print: the next instruction may be a hold away, so wait for it.
    skill.wait_for(lambda ev: sum(e["event"] == "say" for e in ev) > says_before, 30,
                   "an instruction while the speaker is gone")
    says_during = sum(e["event"] == "say" for e in skill.events()) - says_before
    skill.load_sink(SPEAKER_SINK, "VirtualSpeaker")
    skill.recording = skill.tmp / "after.wav"
    skill.recorder = skill.server.record_speaker(skill.recording)
    skill.wait_for(lambda ev: any(e["event"] == "device" and "speech output" in e["text"] for e in ev), 30,
                   "the speech output to be reopened")
    n = sum(e["event"] == "say" for e in skill.events())
    skill.wait_for(lambda ev: sum(e["event"] == "say" for e in ev) >= n + 1, 60, "another instruction")
    time.sleep(2.0)  # the sound server's own latency before it reaches the recording
    skill.signal(signal.SIGTERM)
    audio = skill.speaker_audio()
    warnings = [e for e in skill.events() if e["event"] == "warning"]
    loud = active_spans(audio, 16000, threshold=300)
    print(f"\nspeaker outage: warned after {time.monotonic() - t_lost:.1f} s at most, CPU {cpu:.3f} s in 6 s, "
          f"{says_during} instructions printed meanwhile, {len(loud)} stretches of speech after it came back")
    assert skill.proc.returncode == 0, skill.stderr[-2000:]
    assert len([w for w in warnings if "speech output" in w["text"]]) == 1, warnings
    assert says_during >= 1
    assert cpu < 0.25 * 6.0
    assert loud, "nothing was heard after the speaker came back"


# ---------------------------------------------------------------- (d) no speech engine

def _hide_espeak_prefix() -> list[str] | None:
    """A command prefix that runs the child with espeak-ng's library hidden (a private mount
    namespace with /dev/null bound over it), or None where that cannot be done."""
    if shutil.which("unshare") is None:
        return None
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    libs = sorted({line.rsplit("=> ", 1)[1].strip() for line in out.splitlines()
                   if "libespeak" in line and "=> " in line})
    if not libs:
        return None
    libs += [exe for exe in (shutil.which("espeak-ng"), shutil.which("espeak")) if exe]  # the programs too
    binds = " && ".join(f"mount --bind /dev/null {lib}" for lib in libs)
    if subprocess.run(["unshare", "-rm", "sh", "-c", f"{binds} && true"], capture_output=True).returncode != 0:
        return None
    return ["unshare", "-rm", "sh", "-c", f'{binds} && exec "$@"', "hide-espeak"]


def test_without_a_speech_engine_the_routine_completes_in_text(skill_factory) -> None:
    prefix = _hide_espeak_prefix()
    if prefix is None:
        pytest.skip("cannot hide espeak-ng from a child here (needs unshare with user namespaces)")
    # espeak-ng asked for by name: the natural voice brings its own copy of espeak-ng's library
    # and would speak (its own absence and failure are tests/test_voice.py's)
    skill = skill_factory(prefix=prefix, args=("--time-of-day", "14:00", "--voice", "espeak"))
    skill.wait_listening()
    _, trigger_s = skill.say("calf cramp")
    skill.wait_for(lambda ev: any(e["event"] == "routine" and e["state"] == "started" for e in ev), 20, "the routine")
    _, gone_s = skill.say("it's gone")  # finish it sooner
    # Recognition is not this test's subject: if "it's gone" is lost (it was once, beside the suite's other live tests),
    # the daytime routine still finishes by itself, about 140 s after it started; if it runs into "calf cramp" as one
    # utterance ("calf cramp it's gone", once on a loaded machine), the trigger counts as taken back and the routine
    # ends as stopped (stop 38), with the same closing words printed.
    events = skill.wait_for(lambda ev: any(e["event"] == "routine" and e["state"] in ("finished", "stopped")
                                           for e in ev), 240, "the routine to finish")
    skill.signal(signal.SIGTERM)
    audio = skill.speaker_audio()
    assert skill.proc.returncode == 0, skill.stderr[-2000:]
    warnings = [e["text"] for e in events if e["event"] == "warning"]
    assert any("no speech engine" in w and "printed" in w for w in warnings), warnings
    says = [e["text"] for e in events if e["event"] == "say"]
    assert says and all(text in skill.stdout for text in says), (says, skill.stdout[-500:])
    # and nothing was played: only the user's own two phrases reach the speaker's recording
    loud_s = sum(end - start for start, end in active_spans(audio, 16000, threshold=300))
    assert loud_s <= trigger_s + gone_s + 0.5, (loud_s, trigger_s, gone_s)
    print(f"\nno engine: {len(says)} instructions printed; warning: {warnings[0]!r}")
