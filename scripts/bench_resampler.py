#!/usr/bin/env python3
"""CPU of the streaming resampler, per second of audio: a microphone that only opens at 44.1 or
48 kHz (raw ALSA devices, many USB microphones) is resampled to 16 kHz block by block while the
skill listens, and the natural voice's 22.05 kHz sentences once each.

    .venv/bin/python scripts/bench_resampler.py

Compares the kernel table (``Resampler``, what runs) with kernels computed per output sample
(the same arithmetic without the table: what ran before stop 20). Medians of 5 runs of 10 s
of noise in 20 ms blocks (the microphone's block), CPU time of this process.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voice_skill.audio.pcm import SAMPLE_RATE, Resampler  # noqa: E402

SECONDS = 10.0
BLOCK_S = 0.02


def cpu_per_audio_s(rate: int, table: bool) -> float:
    x = (np.random.default_rng(rate).standard_normal(int(rate * SECONDS)) * 0.3).astype(np.float32)
    block = int(rate * BLOCK_S)
    runs = []
    for _ in range(5):
        r = Resampler(rate, SAMPLE_RATE)
        if not table:
            r._table = None
        t0 = time.process_time()
        for i in range(0, len(x), block):
            r.process(x[i:i + block])
        runs.append((time.process_time() - t0) / SECONDS)
    return statistics.median(runs)


def main() -> None:
    print("| input rate | kernels per sample, CPU s per audio s | kernel table | ratio |")
    print("|---|---|---|---|")
    for rate in (22050, 44100, 48000):
        slow, fast = cpu_per_audio_s(rate, table=False), cpu_per_audio_s(rate, table=True)
        print(f"| {rate} Hz | {slow:.4f} | {fast:.4f} | {slow / fast:.1f}x |")


if __name__ == "__main__":
    main()
