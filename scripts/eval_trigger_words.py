#!/usr/bin/env python3
"""Red flags heard in a trigger's own words: trigger utterances with and without a red flag or
an emergency said in the same breath, through the spotter and the grammar recognizer.

    python scripts/eval_trigger_words.py --split dev                  # the red flag after the trigger
    python scripts/eval_trigger_words.py --split dev --order before --seed 7
    python scripts/eval_trigger_words.py --split test --seed 9        # voices never tuned on
    python scripts/eval_trigger_words.py --split test --order before --seed 13

Every voice of the split says four trigger utterances ("I've got a cramp in my right calf",
``spottercorpus.trigger_texts``), each after 2.5-3 s of its room (quiet, or a fan at 15 or 6 dB):
the first and third alone, the second and fourth with a red flag or an emergency after the
trigger (``--order after``: "left leg cramp, it's numb") or before it (``--order before``: "my
foot is cold and my right calf is cramping"). It prints, over the grammar recognizer's
hypotheses (what PocketSphinx made of the words, before the spotter's second opinion), how many
utterances said without a red flag came back with one, and how many said with one came back
with a red flag or emergency, and with the right one; then the same over what the second
opinion passed on to the skill (``asr.spotting``). Stop 28 found "I've got a" heard as "i
fell" (docs/commands.md); about 4 minutes a run on two cores. The ``--out`` rows carry each
word's time (``Hypothesis.words``) and the trigger spotter's scores and firing times: stop 29
measured with them where a red flag is placed against the firing (docs/commands.md). Each
safety intent the grammar placed carries the safety head's probability of it over the utterance
(``safety_p``), and a last table simulates stop 38's rule per threshold T: one placed in the
utterance the spotter fired in ends the routine only where the head gives it T or more (below,
``asr.spotting.SAFETY_DOUBTED``, it is doubted and only pauses the routine).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_skill.asr import spotting  # noqa: E402
from voice_skill.asr.select import build_recognizer  # noqa: E402
from voice_skill.asr.spotter import TriggerSpotter  # noqa: E402
from voice_skill.audio.pcm import SAMPLE_RATE, AudioChunk  # noqa: E402
from voice_skill.core.intents import IntentParser, PhraseTable  # noqa: E402
from voice_skill.devtools import speechgen  # noqa: E402
from voice_skill.devtools import spottercorpus as corpus  # noqa: E402

SAID_WITH = {
    "red_flag": ["i fell", "my foot is cold", "it's swollen", "i heard a pop", "it's numb", "my calf is red and hot"],
    "emergency": ["i can't breathe", "my chest hurts", "call an ambulance", "i feel dizzy"],
}
ROOMS = [(None, None), ("fan", 15.0), ("fan", 6.0)]
SAFETY = ("red_flag", "emergency")


def heard_behind_spotter(audio: np.ndarray, probe: Callable[[Any, list], None]) -> tuple[Any, list]:
    """``audio`` through the grammar recognizer with the spotter in front, as the skill runs it
    (0.1-s chunks): ``probe(rec, hyps)`` sees every batch of the grammar recognizer's hypotheses
    as the spotter's second opinion is about to judge them (one it holds back, when it lets it
    go). Returns the recognizer (closed; its spotter's scores and firing times kept) and every
    hypothesis the second opinion passed on."""
    rec, _ = build_recognizer("pocketsphinx", None, PhraseTable.load().phrases(), spotter="on")
    second_opinion = rec._second_opinion

    def probed(hyps):
        probe(rec, hyps)
        return second_opinion(hyps)

    rec._second_opinion = probed
    passed: list = []
    step = int(0.1 * SAMPLE_RATE)
    for i in range(0, len(audio), step):
        passed += rec.accept(AudioChunk(audio[i:i + step].tobytes(), i / SAMPLE_RATE))
    passed += rec.flush()
    rec.close()
    return rec, passed


def grammar_hypotheses(audio: np.ndarray, parser: IntentParser) -> tuple[list[dict], list[dict], dict]:
    """What the grammar recognizer heard in ``audio`` (with the spotter in front, as the skill
    runs), as it reached the spotter's second opinion, what came out of that opinion (the
    spotter's own triggers too): what the session would act on, and the trigger spotter's
    scores and firing times."""
    heard: list[dict] = []

    def described(h) -> dict:
        intent = parser.parse(h.text) if h.sound_intent is None else None
        return {"text": h.text, "start_s": h.start_s, "end_s": h.end_s,
                "intent": h.sound_intent or (intent.name if intent else None)}

    def listened(rec, hyps) -> None:
        for h in hyps:
            if not h.final:
                continue
            row = dict(described(h), words=[list(w) for w in h.words])
            if row["intent"] in SAFETY and rec.spotter.safety is not None:
                # the safety head's opinion of the intent placed, over the utterance (as asr.spotting asks it)
                lo, hi = h.start_s - spotting.COMMAND_MARGIN_S, h.end_s + spotting.COMMAND_MARGIN_S
                row["safety_p"] = round(rec.spotter.probability(row["intent"], lo, hi), 4)
            heard.append(row)

    rec, out = heard_behind_spotter(audio, listened)
    passed = [described(h) for h in out if h.final]
    spotter = {"fired": list(rec._fired), "scores": [[round(t, 3), round(x, 4)] for t, x in rec.spotter.recent_scores()]}
    return heard, passed, spotter


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--order", choices=("after", "before"), default="after",
                    help="where the red flag or emergency is said: after the trigger or before it")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="also write every utterance's result here (JSON Lines)")
    ap.add_argument("--voices", type=int, default=None, help="the split's first N voices only (a smoke run)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    voices = corpus.split_voices(args.split)[:args.voices]
    noise_voices = corpus.noise_voices(voices)
    parser = IntentParser()
    out = open(args.out, "w", encoding="utf-8") if args.out else None
    rows: list[dict] = []
    alone = {"n": 0, "safety": 0, "acted": 0}
    with_one = {"n": 0, "safety": 0, "right": 0, "acted": 0, "acted_right": 0}
    for voice in voices:
        for k in range(4):
            head, tail = corpus.trigger_texts(args.split, rng, 1)[0]
            want = None
            if args.order == "before":
                tail = ""
            if k % 2 == 1:
                want = SAFETY[int(rng.integers(2))]
                phrase = SAID_WITH[want][int(rng.integers(len(SAID_WITH[want])))]
                if args.order == "after":
                    tail = phrase
                else:
                    head = f"{phrase} and {head}"
            try:
                clip, _ = corpus.trigger_clip(head, tail, voice, rng, lead_s=(2.5, 3.0), trail_s=(1.5, 2.0))
            except speechgen.SpeechGenError:
                continue
            kind, snr = ROOMS[int(rng.integers(len(ROOMS)))]
            audio = corpus.in_room(clip, rng, snr, kind, int(rng.integers(1 << 30)), noise_voices, reverb=0.3,
                                   gain_db=float(rng.uniform(-15, -3)), floor_db=float(rng.uniform(-70, -55)))
            heard, passed, spotter = grammar_hypotheses(audio, parser)
            safety = [h["intent"] for h in heard if h["intent"] in SAFETY]
            acted = [h["intent"] for h in passed if h["intent"] in SAFETY]
            counts = alone if want is None else with_one
            counts["n"] += 1
            counts["safety"] += bool(safety)
            counts["acted"] += bool(acted)
            if want is not None:
                counts["right"] += want in safety
                counts["acted_right"] += want in acted
            row = {"voice": voice, "said": f"{head} | {tail}", "want": want, "room": kind and f"{kind} {snr:.0f} dB",
                   "heard": heard, "passed": passed, "spotter": spotter}
            rows.append(row)
            if out:
                out.write(json.dumps(row) + "\n")
    if out:
        out.close()
    print(f"\nTrigger utterances, {args.split} voices, a red flag or emergency said {args.order} the trigger "
          f"(seed {args.seed}):\n")
    print("| said | utterances | a red flag or emergency heard | the right one | ... passed on to the skill "
          "| the right one |")
    print("|---|---|---|---|---|---|")
    print(f"| the trigger alone | {alone['n']} | {alone['safety']} | - | {alone['acted']} | - |")
    print(f"| with a red flag or emergency | {with_one['n']} | {with_one['safety']} | {with_one['right']} "
          f"| {with_one['acted']} | {with_one['acted_right']} |")
    if rows:
        print("\nA red flag or emergency placed in the utterance the spotter fired in, kept only where the "
              "safety head gives it at least T over the utterance (stop 38):\n")
        print("| T | trigger alone: a red flag or emergency acted on | with one: the right one acted on |")
        print("|---|---|---|")
        for threshold in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9):
            false = sum(any(acted_safety(r, threshold)) for r in rows if r["want"] is None)
            right = sum(r["want"] in acted_safety(r, threshold) for r in rows if r["want"] is not None)
            print(f"| {threshold:g} | {false} of {alone['n']} | {right} of {with_one['n']} |")
    return 0


def spotted_in(row: dict, h: dict) -> bool:
    """Whether the spotter fired in the stretch of ``h`` (as ``asr.spotting`` decides it)."""
    lo, hi = h["start_s"] - spotting.SPAN_MARGIN_S, h["end_s"] + spotting.SPAN_MARGIN_S
    return any(lo <= t and t - TriggerSpotter.PHRASE_S <= hi for t in row["spotter"]["fired"])


def acted_safety(row: dict, threshold: float) -> list[str]:
    """The safety intents passed on in ``row`` that a rule would keep: one the grammar placed in
    the utterance the spotter fired in only where the safety head gave it ``threshold`` or more."""
    kept = []
    for h in row["passed"]:
        if h["intent"] not in SAFETY:
            continue
        if spotted_in(row, h):
            heard = next((g for g in row["heard"] if g["text"] == h["text"] and g["start_s"] == h["start_s"]), None)
            if heard is not None and heard.get("safety_p", 1.0) < threshold:
                continue
        kept.append(h["intent"])
    return kept


if __name__ == "__main__":
    sys.exit(main())
