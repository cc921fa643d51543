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
with a red flag or emergency, and with the right one. Stop 28 found "I've got a" heard as "i
fell" (docs/commands.md); about 4 minutes a run on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_skill.asr.select import build_recognizer  # noqa: E402
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


def grammar_hypotheses(audio: np.ndarray, parser: IntentParser) -> list[dict]:
    """What the grammar recognizer heard in ``audio`` (with the spotter in front, as the skill
    runs), as it reached the spotter's second opinion."""
    heard: list[dict] = []
    rec, _ = build_recognizer("pocketsphinx", None, PhraseTable.load().phrases(), spotter="on")
    second_opinion = rec._second_opinion

    def listened(hyps):
        for h in hyps:
            if h.final:
                intent = parser.parse(h.text)
                heard.append({"text": h.text, "start_s": h.start_s, "end_s": h.end_s,
                              "intent": intent.name if intent else None})
        return second_opinion(hyps)

    rec._second_opinion = listened
    step = int(0.1 * SAMPLE_RATE)
    for i in range(0, len(audio), step):
        rec.accept(AudioChunk(audio[i:i + step].tobytes(), i / SAMPLE_RATE))
    rec.flush()
    rec.close()
    return heard


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
    alone = {"n": 0, "safety": 0}
    with_one = {"n": 0, "safety": 0, "right": 0}
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
            heard = grammar_hypotheses(audio, parser)
            safety = [h["intent"] for h in heard if h["intent"] in SAFETY]
            if want is None:
                alone["n"] += 1
                alone["safety"] += bool(safety)
            else:
                with_one["n"] += 1
                with_one["safety"] += bool(safety)
                with_one["right"] += want in safety
            if out:
                out.write(json.dumps({"voice": voice, "said": f"{head} | {tail}", "want": want,
                                      "room": kind and f"{kind} {snr:.0f} dB", "heard": heard}) + "\n")
    if out:
        out.close()
    print(f"\nTrigger utterances, {args.split} voices, a red flag or emergency said {args.order} the trigger "
          f"(seed {args.seed}):\n")
    print("| said | utterances | a red flag or emergency heard | the right one |")
    print("|---|---|---|---|")
    print(f"| the trigger alone | {alone['n']} | {alone['safety']} | - |")
    print(f"| with a red flag or emergency | {with_one['n']} | {with_one['safety']} | {with_one['right']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
