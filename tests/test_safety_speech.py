"""The safety phrase families spoken by real voices (flite, espeak-ng) and heard by the
built-in PocketSphinx recognizer: in quiet, and over the skill's own speech (its espeak-ng
voice mixed back into its input through a simulated room, with the echo canceller on),
end to end through the replay path. The decisions themselves are tested in
tests/test_safety.py on the virtual clock with a scripted recognizer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pocketsphinx")

from tests.test_e2e_skill import of, run  # noqa: E402
from tests.test_safety import FAMILIES  # noqa: E402
from voice_skill.asr.pocketsphinx_backend import PocketSphinxRecognizer  # noqa: E402
from voice_skill.audio.pcm import SAMPLE_RATE  # noqa: E402
from voice_skill.devtools import benchdata, speechgen  # noqa: E402
from voice_skill.core.intents import FAMILY_SLOT, IntentParser, PhraseTable  # noqa: E402

pytestmark = pytest.mark.skipif(not shutil.which("flite") or not shutil.which("espeak-ng"),
                                reason="needs the flite and espeak-ng programs")

QUIET_VOICES = ["flite:slt", "flite:awb", "espeak:en-us+f2@150"]

# One phrase per family, each said over the skill's own speech (the night routine's second
# step), in turn by several voices.
OVER_SPEECH = [
    ("emergency", "call", "somebody help", "flite:slt"),
    ("emergency", "chest", "my chest hurts", "flite:awb"),
    ("emergency", "breathing", "I can't breathe", "flite:rms"),
    ("emergency", "faint", "I feel faint", "flite:slt"),
    ("red_flag", "swelling", "oh no my leg is swollen", "flite:awb"),
    ("red_flag", "redness", "my calf is red", "flite:rms"),
    ("red_flag", "warmth", "my leg is hot", "flite:slt"),
    ("red_flag", "weakness", "my leg feels weak", "flite:awb"),
    ("red_flag", "numbness", "it's numb", "flite:rms"),
    ("red_flag", "circulation", "my foot is cold", "flite:slt"),
    ("red_flag", "injury", "I heard a pop", "flite:awb"),
    ("red_flag", "weight", "I can't put weight on it", "flite:rms"),
]


@pytest.fixture(scope="module")
def parser() -> IntentParser:
    return IntentParser(PhraseTable.load())


@pytest.fixture(scope="module")
def rec() -> PocketSphinxRecognizer:
    return PocketSphinxRecognizer(PhraseTable.load().phrases())


@pytest.mark.slow(seconds=20)
@pytest.mark.parametrize("voice", QUIET_VOICES)
def test_every_family_heard_in_quiet(rec, parser, voice):
    items = [(intent, family, text) for (intent, family), texts in FAMILIES.items() for text in texts]
    comp = speechgen.compose([s for _, _, t in items for s in (speechgen.Say(t, voice), 1.2)], default_voice=voice)
    rec.reset()
    lead = SAMPLE_RATE // 2
    hyps, _ = benchdata.run_recognizer(rec, np.concatenate([np.zeros(lead, np.int16), comp.samples]), 0.1)
    heard: dict[tuple[str, str], int] = {key: 0 for key in FAMILIES}
    missed = []
    for (intent, family, text), p in zip(items, comp.phrases):
        start, end = p.start_s + lead / SAMPLE_RATE, p.end_s + lead / SAMPLE_RATE
        got = {(i.name, i.slots.get(FAMILY_SLOT)) for h in hyps if h.end_s > start + 0.05 and h.start_s < end - 0.05
               and (i := parser.parse(h.text))}
        if (intent, family) in got:
            heard[(intent, family)] += 1
        else:
            missed.append((text, sorted(got)))
    assert len(missed) <= 0.15 * len(items), f"{voice}: {missed}"
    assert all(heard.values()), f"{voice}: a whole family unheard: {missed}"


def _over_speech(tmp_path: Path, intent: str, family: str, text: str, voice: str) -> str:
    """What became of ``text`` said over the skill's second step: "exact" (its own intent
    and family, the step cut off there, the massage stopped for it), "safety" (another
    safety answer stopped the massage), or what went wrong."""
    # espeak-ng by name: the phrase at 12 s is placed over its second step. The natural voice says
    # that step sooner, and "it's numb" then fell in the pause before the third (it was still
    # heard and stopped the massage, as a red flag said between sentences should).
    events = run([1.0, "calf cramp", 12.0, (text, voice), 1.5], tmp_path, speaker="tts", echo_gain=0.5,
                 voice="espeak")
    accepted = [e for e in of(events, "heard") if e["intent"]]
    if [e["intent"] for e in accepted][:1] != ["start"] or len(started := of(events, "routine", state="started")) != 1:
        return f"wrong start: {accepted} {started}"
    later = accepted[1:]
    if not later:
        return "not heard: " + "; ".join(e["text"] for e in of(events, "heard")[1:])
    heard = later[0]
    if heard["intent"] not in ("emergency", "red_flag"):
        return f"obeyed as {heard['intent']}: {heard['text']}"
    cut = of(events, "cut")
    said_before = [e for e in of(events, "say") if e["t"] < heard["start_s"]]
    stopped = of(events, "routine", state="stopped")
    if not (cut and cut[0]["t"] == heard["t"] and said_before and stopped and stopped[0]["reason"] == heard["intent"]):
        return f"not over the skill's speech, or the massage went on: {heard}"
    if (heard["intent"], heard["slots"].get(FAMILY_SLOT)) == (intent, family):
        return "exact"
    return "safety"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the skill speaks with espeak-ng")
@pytest.mark.slow(seconds=90)
def test_every_family_heard_over_the_skills_own_speech(tmp_path: Path):
    """The user speaks while the skill says its second step; the echo guard lets the
    safety phrase through though the recognizer mixes it with the skill's words, and
    nothing else the skill said is obeyed. Measured (PocketSphinx, these voices): 8 of 12
    exact, 10 of 12 stopped the massage with a safety answer; the misses are the
    recognizer's ("I can't breathe" heard as "I can't walk", the injury phrase lost in the
    echo), not the guard's."""
    results = {f"{family} ({voice}): {text}": _over_speech(tmp_path, intent, family, text, voice)
               for intent, family, text, voice in OVER_SPEECH}
    exact = [k for k, v in results.items() if v == "exact"]
    safe = [k for k, v in results.items() if v in ("exact", "safety")]
    report = "\n".join(f"{k}: {v}" for k, v in results.items())
    assert not [v for v in results.values() if v.startswith(("wrong start", "obeyed", "not over"))], report
    assert len(exact) >= 7, report
    assert len(safe) >= 9, report
