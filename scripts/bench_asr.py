"""Recognition benchmark for the built-in PocketSphinx recognizer on generated speech.

    python scripts/bench_asr.py [--minutes 5] [--noise babble]

Prints a markdown table: trigger recall (trigger family x voices) at clean/20/10/5 dB SNR,
false starts per hour of ordinary (non-trigger) speech, and CPU seconds per audio second.
The measuring functions live in voice_skill.devtools.benchdata so scripts/bench.py can reuse them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from voice_skill.asr.pocketsphinx_backend import PocketSphinxRecognizer
from voice_skill.devtools import benchdata, speechgen
from voice_skill.intents import PhraseTable


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="minutes of ordinary speech for false starts")
    ap.add_argument("--noise", default="babble", choices=["babble", "tv", "pink", "brown"])
    ap.add_argument("--snr", default="clean,20,10,5", help="comma-separated SNRs in dB ('clean' = none)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list misses and false starts")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    phrases = PhraseTable.load().phrases()

    def make() -> PocketSphinxRecognizer:
        return PocketSphinxRecognizer(phrases)

    print("| condition | trigger recall | false starts / h speech | CPU s / audio s (recall, stream) |")
    print("|---|---|---|---|")
    for snr in args.snr.split(","):
        snr_db = None if snr.strip() == "clean" else float(snr)
        r = benchdata.measure_recall(make, benchdata.TRIGGERS, benchdata.BENCH_VOICES, snr_db=snr_db, noise=args.noise)
        f = benchdata.measure_false_starts(make, benchdata.BENCH_VOICES, args.minutes, snr_db=snr_db, noise=args.noise)
        print(f"| {r.condition} | {r.recall:.0%} ({r.hits}/{r.total}) | {f.per_hour:.1f} ({f.false_starts} in "
              f"{f.speech_s / 60:.1f} min) | {r.cpu_s / r.audio_s:.3f}, {f.cpu_s / f.audio_s:.3f} |", flush=True)
        if args.verbose:
            for m in r.misses:
                print(f"  miss: {m}", file=sys.stderr)
            for e in f.examples:
                print(f"  false start: {e!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
