"""Speech output figures: the natural voice against espeak-ng, with and without the cache.

    python scripts/bench_voice.py              # every table (about 5 minutes on two cores)
    python scripts/bench_voice.py calibrate    # the natural voice's words a minute by length scale

Prints markdown tables:

- speed: seconds of work per second of speech (real-time factor) of each engine over the
  routines' sentences, median and 90th percentile, on all cores and on one (the cache filler's
  setting); a Raspberry Pi 4 is estimated at three times this machine's time per core;
- decision to samples: how long the skill's speaker waits for the first sentence of a routine
  after the trigger, through the engine's child process as ``run`` uses it: from the cache, and
  rendered on the spot (a miss);
- CPU while coaching: CPU seconds per second of a whole routine spent producing its speech, with
  the cache full and without a cache;
- memory: resident memory of the speech engine's child process after a sentence;
- the cache: sentences and megabytes for every fixed sentence at the day's and night's rates,
  and the time to prepare them;
- loudness: the spread (max - min, LU) of every fixed sentence as each engine renders it, and
  after the skill's finishing (``audio.loudness.finish_sentence``).

Timings are wall-clock medians on a shared machine: run it when the machine is otherwise quiet.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from voice_skill.audio.loudness import finish_sentence, integrated_loudness
from voice_skill.audio.pcm import SAMPLE_RATE
from voice_skill.core.rehearsal import fixed_sentences, opening_sentences, rehearse
from voice_skill.core.routine import builtin_routines
from voice_skill.core.speechtime import DEFAULT_RATE_WPM
from voice_skill.runtime.supervise import ProcessVoice
from voice_skill.tts import piper
from voice_skill.tts.cache import CachedVoice, SentenceCache
from voice_skill.tts.espeak import Pyttsx3Voice

PI4_SLOWER = 3.0  # a Raspberry Pi 4 core against one of this machine's (the rough figure)
NIGHT_RATE = 140


def _engines(one_thread_too: bool = False) -> dict[str, partial]:
    """The engines to compare; the natural voice on one thread too (as the idle cache filler
    runs it) only where its speed is measured."""
    out = {"espeak-ng": partial(Pyttsx3Voice, rate=DEFAULT_RATE_WPM)}
    if piper.missing() is None:
        out["piper:joe"] = partial(piper.PiperVoice, rate=DEFAULT_RATE_WPM, threads=0)  # every core
        if one_thread_too:
            out["piper:joe, 1 thread"] = partial(piper.PiperVoice, rate=DEFAULT_RATE_WPM, threads=1)
    return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def speed(texts: list[str]) -> None:
    print("\n| engine | real-time factor, median | 90th percentile | Raspberry Pi 4, estimated median |")
    print("|---|---|---|---|")
    for name, make in _engines(one_thread_too=True).items():
        voice = make()
        voice.synthesize("Warm up.")
        factors = []
        for text in texts:
            t0 = time.perf_counter()
            audio = voice.synthesize(text)
            factors.append((time.perf_counter() - t0) / max(len(audio) / SAMPLE_RATE, 1e-3))
        med = statistics.median(factors)
        print(f"| {name} | {med:.3f} | {_pct(factors, 90):.3f} | {med * PI4_SLOWER:.2f} |")


def decision_to_samples(cache_dir: Path) -> None:
    """The first sentence of each routine through a child process, as the live speaker asks."""
    texts = opening_sentences()[:8]
    print("\n| engine | from the cache, median (max) | rendered on the spot, median (max) |")
    print("|---|---|---|")
    for name, make in _engines().items():
        engine = ProcessVoice(make)
        try:
            voice = CachedVoice(engine, SentenceCache(cache_dir / name))
            misses, hits = [], []
            for text in texts:
                t0 = time.perf_counter()
                voice.synthesize(text)
                misses.append(time.perf_counter() - t0)
            for text in texts:
                t0 = time.perf_counter()
                voice.synthesize(text)
                hits.append(time.perf_counter() - t0)
        finally:
            engine.close()
        print(f"| {name} | {statistics.median(hits) * 1000:.1f} ms ({max(hits) * 1000:.1f} ms) | "
              f"{statistics.median(misses) * 1000:.0f} ms ({max(misses) * 1000:.0f} ms) |")


def coaching_cpu(cache_dir: Path) -> None:
    routine = builtin_routines()["night-cramp"]
    lines = rehearse(routine)
    length_s = max(line.end_s for line in lines)
    texts = [line.text for line in lines]
    print(f"\nCPU producing the speech of a whole routine (night-cramp, {length_s:.0f} s):\n")
    print("| engine | with the cache full | without a cache |")
    print("|---|---|---|")
    # (CPU milliseconds per second of routine: the cache's reads and checks are well under one)
    for name, make in _engines().items():
        inner = make()
        cached = CachedVoice(inner, SentenceCache(cache_dir / f"cpu-{name}"))
        cached.prepare(texts, [DEFAULT_RATE_WPM])
        figures = []
        for voice in (cached, CachedVoice(inner, None)):
            t0 = time.process_time()
            for text in texts:
                voice.synthesize(text)
            figures.append((time.process_time() - t0) / length_s)
        print(f"| {name} | {figures[0] * 1000:.2f} CPU ms per s | {figures[1] * 1000:.1f} CPU ms per s |")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory() -> None:
    print("\n| engine | resident memory of its child process after a sentence |")
    print("|---|---|")
    for name, make in _engines().items():
        engine = ProcessVoice(make)
        try:
            engine.synthesize("Rest your leg on something soft.")
            print(f"| {name} | {_rss_mb(engine.pid):.0f} MB |")
        finally:
            engine.close()


def cache_size(cache_dir: Path, texts: list[str]) -> None:
    print("\n| engine | sentences | on disk | time to prepare |")
    print("|---|---|---|---|")
    for name, make in _engines().items():
        voice = CachedVoice(make(), SentenceCache(cache_dir / f"size-{name}"))
        t0 = time.perf_counter()
        result = voice.prepare(texts, [DEFAULT_RATE_WPM, NIGHT_RATE])
        took = time.perf_counter() - t0
        print(f"| {name} | {result.total} | {voice.cache.size_bytes() / 1e6:.1f} MB | {took:.0f} s |")


def loudness(texts: list[str]) -> None:
    print("\n| engine | spread as rendered (LU) | spread after finishing (LU) | finished, min / max LUFS |")
    print("|---|---|---|---|")
    for name, make in _engines().items():
        voice = make()
        raw, done = [], []
        for text in texts:
            audio = voice.synthesize(text)
            raw.append(integrated_loudness(audio))
            done.append(integrated_loudness(finish_sentence(audio)))
        print(f"| {name} | {max(raw) - min(raw):.2f} | {max(done) - min(done):.2f} | "
              f"{min(done):.2f} / {max(done):.2f} |")


def calibrate() -> None:
    voice = piper.PiperVoice()
    texts = [t for t in fixed_sentences() if len(t.split()) >= 8]
    words = sum(len(t.split()) for t in texts)
    print("| length scale | words a minute |\n|---|---|")
    for scale in (0.8, 1.0, 1.2, 1.4, 1.6, 1.8):
        voice.rate = int(round(piper.NATURAL_WPM[voice.name] / scale ** (1 / piper.RATE_EXPONENT)))
        assert abs(voice.length_scale() - scale) < 0.02, (voice.rate, voice.length_scale())
        seconds = 0.0
        for text in texts:
            audio = voice.synthesize(text).astype(np.float64)
            frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
            level = np.sqrt((frames ** 2).mean(axis=1))
            on = np.nonzero(level > level.max() * 0.01)[0]
            seconds += (on[-1] - on[0] + 1) * 0.01
        print(f"| {scale:.1f} | {words / seconds * 60:.1f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="all", choices=["all", "calibrate"])
    args = ap.parse_args(argv)
    if args.what == "calibrate":
        calibrate()
        return 0
    texts = fixed_sentences()
    print(f"{len(texts)} fixed sentences; engines: {', '.join(_engines())}")
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        speed(texts[::4])
        decision_to_samples(Path(tmp))
        coaching_cpu(Path(tmp))
        memory()
        loudness(texts)
        cache_size(Path(tmp), texts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
