"""Recognition benchmark for the built-in PocketSphinx recognizer on generated speech.

    python scripts/bench_asr.py [--minutes 5] [--noise babble] [--snr clean,20,10,5] [-v]

Prints a markdown table per SNR (clean/20/10/5 dB): trigger recall (trigger phrases x voices)
per voice family (espeak-ng, flite) and combined, false starts per hour of ordinary
(non-trigger) speech, median detection latency (hypothesis end minus phrase end), and CPU
seconds per audio second on (a) the recall corpus (one phrase per recording, mostly
silence) and (b) continuous ordinary speech.
The measuring functions live in voice_skill.devtools.benchdata so scripts/bench.py can reuse them.

Last measured (8 voices, --minutes 2, babble; 2 shared cores under load, so CPU is high):
before early trigger decisions, babble 10 dB: recall 28% (18/64), median latency +1.99 s.
With them (batch final decode + live early decoder, maxhmmpf 3000):
clean 86% (55/64), 39/h false starts (1 in 1.5 min), latency -0.02 s, CPU 0.073 / 0.284;
20 dB 77% (49/64), 78/h; 10 dB 56% (36/64), 78/h, latency -0.09 s, CPU 0.37 / 0.40.
"""

from __future__ import annotations

import argparse
import logging
import sys

from voice_skill.asr.pocketsphinx_backend import PocketSphinxRecognizer
from voice_skill.devtools import benchdata
from voice_skill.core.intents import PhraseTable


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="minutes of ordinary speech for false starts")
    ap.add_argument("--noise", default="babble", choices=["babble", "tv", "pink", "brown"])
    ap.add_argument("--snr", default="clean,20,10,5", help="comma-separated SNRs in dB ('clean' = none)")
    ap.add_argument("--voices", default="", help="comma-separated voices (default: benchdata.BENCH_VOICES)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list misses and false starts")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    phrases = PhraseTable.load().phrases()
    voices = [v.strip() for v in args.voices.split(",")] if args.voices else benchdata.BENCH_VOICES

    def make() -> PocketSphinxRecognizer:
        return PocketSphinxRecognizer(phrases)

    fams = sorted({benchdata.family(v) for v in voices})
    for snr in args.snr.split(","):
        snr_db = None if snr.strip() == "clean" else float(snr)
        r = benchdata.measure_recall(make, benchdata.TRIGGERS, voices, snr_db=snr_db, noise=args.noise)
        f = benchdata.measure_false_starts(make, voices, args.minutes, snr_db=snr_db, noise=args.noise)
        lat = r.median_latency_s
        print(f"\n### {r.condition}\n")
        print("| recall " + " | recall ".join(fams) + " | recall all | false starts / h speech "
              "| median latency s | CPU s / audio s: recall corpus | CPU s / audio s: continuous speech |")
        print("|" + "---|" * (len(fams) + 5))
        cells = [f"{h / t:.0%} ({h}/{t})" if t else "-" for h, t in (r.family_recall(x) for x in fams)]
        print(f"| {' | '.join(cells)} | {r.recall:.0%} ({r.hits}/{r.total}) | {f.per_hour:.1f} ({f.false_starts} in "
              f"{f.speech_s / 60:.1f} min) | {'-' if lat is None else f'{lat:+.2f}'} | {r.cpu_s / r.audio_s:.3f} "
              f"| {f.cpu_s / f.audio_s:.3f} |", flush=True)
        if args.verbose:
            for m in r.misses:
                print(f"  miss: {m}", file=sys.stderr)
            for e in f.examples:
                print(f"  false start: {e!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
