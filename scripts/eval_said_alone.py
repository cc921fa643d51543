#!/usr/bin/env python3
"""Short phrases said alone, with nothing running, through the whole skill: does a routine start?

    python scripts/eval_said_alone.py --split dev                        # the default phrases
    python scripts/eval_said_alone.py --split dev --phrases "cramp gone" "no more cramp"
    python scripts/eval_said_alone.py --split test --voices 30           # voices never tuned on
    python scripts/eval_said_alone.py --split test --voices 30 --fools   # "the cramp is no more" and kin
    python scripts/eval_said_alone.py --split test --voices 30 --taken-back  # "I don't have a calf cramp"

Each of the split's first ``--voices`` voices says each phrase once, after 2.5-3 s of a quiet
room and before 2.5-3 s more, through the real session (``app.run_chunks``, the path
``voice-skill run --input`` takes, PocketSphinx behind the spotter). The table counts, per phrase,
the recordings that started a routine, and of those, the ones the rest of the sentence took back
(the routine withdrawn once the sentence was heard whole: ``Coach.take_back``), the ones a red
flag or the emergency heard in it stopped, and the ones it paused as a doubted one (its answer
with the way back); then the recordings that started none and got a safety answer. The log names
what the recognizer heard in each one that started. The default phrases are the ones that must not start one ("the cramp is gone" and its kin,
"it won't stop" with no cramp heard) beside bare-word triggers that should (a miss there is the
other side of any rule against the first). About a minute a phrase on two cores.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_skill.devtools import speechgen  # noqa: E402
from voice_skill.devtools import spottercorpus as corpus  # noqa: E402

log = logging.getLogger("eval_said_alone")
MUST_NOT = ["the cramp is gone", "the cramp's gone", "my cramp went away", "the cramp is over", "the cramp has passed",
            "cramp gone", "no more cramp", "the cramp stopped", "it won't stop", "he can't stop it", "it's back",
            "not gone"]
SHOULD = ["cramp", "I have a cramp", "ow cramp", "it's still cramping"]
# Sentences around the spotted phrases ("calf cramp", "leg cramp") that take them back: the trigger
# head fires as "cramp" ends, before the rest is said. Each split its own phrasings.
TAKEN_BACK = {
    "dev": ["I don't have a calf cramp", "the calf cramp is gone", "no more calf cramp", "it's not a leg cramp",
            "my leg cramp went away"],
    "test": ["I do not have a leg cramp", "that's not a calf cramp", "my calf cramp has passed",
             "the leg cramp is over now", "no longer a calf cramp", "I haven't got a leg cramp"],
}


def recording_seed(index: int, text: str, seed: int = 36) -> int:
    """The seed of the recording of ``text`` by the split's ``index``-th voice: it depends on the
    voice and the phrase only, so a phrase's rows are the same whatever other phrases are asked for."""
    return seed * 1_000_003 + 7919 * index + sum(map(ord, text))


def _run(job: tuple[str, str, int]) -> tuple[str, str, str, list[str]]:
    from voice_skill.runtime.app import RunOptions, run_chunks  # noqa: PLC0415

    voice, text, seed = job
    rng = np.random.default_rng(seed)
    clip, _ = corpus.place(speechgen.synthesize(text, voice), rng, lead_s=(2.5, 3.0), trail_s=(2.5, 3.0))
    audio = corpus.in_room(clip, rng, None, None, 0, [])
    events: list[dict] = []
    run_chunks(speechgen.iter_array_chunks(audio, 0.1), RunOptions(asr="pocketsphinx", spotter="on", hour=14.0),
               None, listeners=[events.append])
    routine = [e for e in events if e["event"] == "routine"]
    outcome = "none"
    if routine:
        outcome = "started"
        ended = next((e for e in routine if e["state"] == "stopped"), None)
        if ended is not None and ended.get("reason") == "taken back":
            outcome = "taken back"
        elif ended is not None and ended.get("reason") in ("red_flag", "emergency"):
            outcome = "safety"
        elif any(e["event"] == "heard" and e.get("doubted") for e in events):
            outcome = "doubted"  # paused at once with a safety answer and the way back
    heard = [f"{e['text']!r} -> {e.get('intent')}" for e in events if e["event"] == "heard"]
    return voice, text, outcome, heard


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--voices", type=int, default=12, help="the split's first this many voices")
    ap.add_argument("--phrases", nargs="+", default=None, help="instead of the default phrases")
    ap.add_argument("--fools", action="store_true",
                    help="instead, the split's phrasings that undo the word (\"no more cramp\"; "
                         "corpus.BARE_FOOLS: the bare-word head trains on train's, never on these)")
    ap.add_argument("--taken-back", action="store_true",
                    help="instead, the split's sentences that take a spotted \"calf cramp\" back (TAKEN_BACK)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=36, help="the recordings' seed (recording_seed)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    fools = corpus.BARE_FOOLS[args.split] if args.fools else None
    taken = TAKEN_BACK[args.split] if args.taken_back else None
    phrases = args.phrases or fools or taken or MUST_NOT + SHOULD
    voices = corpus.split_voices(args.split)[:args.voices]
    jobs = [(v, t, recording_seed(i, t, args.seed)) for i, v in enumerate(voices) for t in phrases]
    with mp.get_context("fork").Pool(args.workers) as pool:
        rows = pool.map(_run, jobs)
    print(f"\nPhrases said alone, {args.split} voices ({len(voices)}), a quiet room, nothing running\n")
    print("| phrase | a routine started | of which taken back | stopped by a red flag or the emergency "
          "| paused by a doubted one | a safety answer with none |")
    print("|---|---|---|---|---|---|")
    for text in phrases:
        outcomes = [outcome for _, t, outcome, _ in rows if t == text]
        answered = sum(o == "none" and any(h.endswith(("-> red_flag", "-> emergency")) for h in heard)
                       for _, t, o, heard in rows if t == text)
        expected = "" if args.phrases else (" (must not)" if fools or taken or text in MUST_NOT else " (should)")
        print(f"| {text}{expected} | {sum(o != 'none' for o in outcomes)} of {len(voices)} | "
              f"{outcomes.count('taken back')} | {outcomes.count('safety')} | {outcomes.count('doubted')} "
              f"| {answered} |")
    for voice, text, outcome, heard in rows:
        if outcome != "none":
            log.info("%s: %r in %s: heard %s", outcome, text, voice, "; ".join(heard))
    return 0


if __name__ == "__main__":
    sys.exit(main())
