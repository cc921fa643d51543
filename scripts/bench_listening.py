#!/usr/bin/env python3
"""CPU of listening: seconds of CPU per second of audio for the recognizer as the skill builds it.

    python scripts/bench_listening.py                  # 90 s of each room, 3 runs each
    python scripts/bench_listening.py --seconds 30 --runs 1

Each room is fed in 0.1 s chunks, as the microphone does, through the trigger spotter and
PocketSphinx (``asr.select.build_recognizer``): a quiet room (a -65 dBFS hiss), ordinary talk
(sentences in the benchmark's voices with short pauses), a TV-like programme, babble, and with
``--rooms snore`` the snoring of ``scripts/soak_live.py``. Three settings are compared: without
Moonshine; with it and no routine running (the skill tells the recognizer, ``asr.base.
tell_routine``: outside a routine Moonshine is not asked, stop 42); and with it hearing every
short utterance again, as while a routine runs (stop 41, ``asr.moonshine``; the default where it
is installed). The table gives the median of the runs (the machine is shared:
medians and ratios, not single figures) and how many hypotheses of the first run the setting
without Moonshine and the one in a routine had and the other did not (Moonshine's words replace the
grammar's where they make an intent). Stop 26's comparison (every piece decoded in one batch,
against the live path for the pieces of a segment that never goes quiet, now the rule) and stop
25's (the live decoder's start) are in the project's ``docs/measurements.md``.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voice_skill.asr.base import tell_routine  # noqa: E402
from voice_skill.asr.select import build_recognizer  # noqa: E402
from voice_skill.audio.pcm import SAMPLE_RATE  # noqa: E402
from voice_skill.core.intents import PhraseTable  # noqa: E402
from voice_skill.devtools import benchdata  # noqa: E402


def room(kind: str, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    hiss = rng.standard_normal(n) * 32768 * 10 ** (-65 / 20)
    if kind == "quiet":
        x = hiss
    elif kind == "talk":
        talk, _ = benchdata.ordinary_stream(benchdata.BENCH_VOICES, seconds / 60, seed=seed)
        x = talk[:n].astype(np.float64) + hiss[:len(talk[:n])]
    elif kind == "snore":  # at the level scripts/soak_live.py plays it
        x = benchdata.noise_for(kind, seconds, seed)[:n].astype(np.float64) + hiss
    else:
        x = benchdata.noise_for(kind, seconds, seed)[:n].astype(np.float64) * 0.35 + hiss
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def measure(samples: np.ndarray, moonshine: str, routine: bool) -> tuple[float, list[str]]:
    """CPU s per audio s, and what was heard, with the ``moonshine`` setting given and a routine
    running or not."""
    rec, _ = build_recognizer("pocketsphinx", None, PhraseTable.load().phrases(), spotter="on", moonshine=moonshine)
    if moonshine != "off" and rec.transcriber is None:
        raise SystemExit("bench_listening.py: Moonshine is not installed (the moonshine-cpp wheel)")
    tell_routine(rec, routine)
    hyps, cpu = benchdata.run_recognizer(rec, samples)
    rec.close()
    return cpu / (len(samples) / SAMPLE_RATE), [h.text for h in hyps]


SETTINGS = (("off", False), ("auto", False), ("auto", True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rooms", default="quiet,talk,tv,babble")
    args = ap.parse_args(argv)
    print("| room | without Moonshine | with it, no routine | with it, in a routine | ratio | hypotheses | differing |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.rooms.split(","):
        samples = room(kind, args.seconds, seed=1)
        cpu: list[list[float]] = [[] for _ in SETTINGS]
        heard: list[list[str]] = []
        for _ in range(args.runs):
            for i, (moonshine, routine) in enumerate(SETTINGS):
                used, words = measure(samples, moonshine, routine)
                cpu[i].append(used)
                if len(heard) < len(SETTINGS):
                    heard.append(words)
        off, idle, busy = (statistics.median(c) for c in cpu)
        a, b = Counter(heard[0]), Counter(heard[2])
        differing = sum(((a - b) + (b - a)).values())
        print(f"| {kind} | {off:.3f} | {idle:.3f} | {busy:.3f} | {busy / off:.2f} | {len(heard[0])} / {len(heard[2])} "
              f"| {differing} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
