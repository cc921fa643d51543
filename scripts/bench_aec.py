#!/usr/bin/env python3
"""The echo canceller with a user talking over the skill: how much of the user's word comes
through, and how much echo it takes out afterwards.

    .venv/bin/python scripts/bench_aec.py
    git show REV:voice_skill/audio/aec.py > build/aec_then.py
    .venv/bin/python scripts/bench_aec.py --module build/aec_then.py   # the canceller of REV
    .venv/bin/python scripts/bench_aec.py --replay DIR                 # a live test's two recordings

``--replay`` takes a live self-hearing test's folder (``speaker.wav``: what the loudspeaker
played; ``microphone.wav``: what the microphone heard), lines the two up by cross-correlation
and prints, every half second, what came in and what the canceller let through.

The skill's speech (espeak-ng, routine sentences, 24 s) reaches the microphone 6 dB down
through two rooms: ``loopback`` (a delay alone, the live tests' room) and ``room``
(``simulated_room``: a delay and a decaying tail). A user's command (four flite voices, four
words, at full level or 6 dB quieter) is said over it at four places after the first 8 s (the
canceller runs up to a second after the word). Per room, medians and worst cases over the 128
cases of:

- *onset*: the first 50 ms of the user's word in the output against what is not the user
  (dB; the residual damping must not take a first consonant for echo);
- *word*: the same over the whole word;
- *after*: echo taken out over the second after the word (dB; a filter that learned the
  user's voice lets the echo back; places where that second holds little echo are left out);
- the CPU per audio second of the canceller (this process).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voice_skill.devtools.speechgen import synthesize  # noqa: E402

SKILL_TEXT = ("Now stroke slowly from the ankle up to the knee, with light hands. Find the tightest part. "
              "Make small, slow circles there with your thumbs. Press steadily on the tight spot until it eases.")
USER_VOICES = ("flite:slt", "flite:kal", "flite:awb", "flite:rms")
WORDS = ("pause", "stop", "next", "repeat")
LEVELS = (1.0, 0.5)
BLOCK = 160


def load_canceller(path: Path | None):
    if path is None:
        from voice_skill.audio import aec
        return aec
    spec = importlib.util.spec_from_file_location("aec_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def db(signal: np.ndarray, noise: np.ndarray) -> float:
    return 10 * np.log10((float(signal @ signal) + 1.0) / (float(noise @ noise) + 1.0))


def replay(aec, folder: Path) -> int:
    from voice_skill.audio.pcm import read_wav

    ref = read_wav(folder / "speaker.wav").astype(float)
    mic = read_wav(folder / "microphone.wav").astype(float)
    # The echo of speaker sample s is microphone sample s - lag (the two recorders started apart).
    n = 1 << int(np.ceil(np.log2(len(ref) + len(mic))))
    cross = np.fft.irfft(np.conj(np.fft.rfft(mic, n)) * np.fft.rfft(ref, n), n)
    lag = int(np.argmax(np.abs(cross)))
    lag = lag - n if lag > n // 2 else lag
    shifted = np.zeros(len(mic))  # the loudspeaker's samples as the microphone's clock has them
    lo, hi = max(0, -lag), min(len(mic), len(ref) - lag)
    shifted[lo:hi] = ref[lo + lag:hi + lag]
    lead = 320  # the echo sits 20 ms into the taps, as live (AlignedEchoCanceller.lead_s)
    shifted = np.concatenate([shifted[lead:], np.zeros(lead)])
    canceller = aec.EchoCanceller()
    print(f"lag {lag} samples; every 0.5 s: microphone dB, output dB, (echo taken out)")
    rows, step = [], 8000
    out = np.concatenate([canceller.process(mic[i:i + BLOCK], shifted[i:i + BLOCK])
                          for i in range(0, len(mic) - BLOCK + 1, BLOCK)])
    for i in range(0, len(out) - step + 1, step):
        a, b = mic[i:i + step], out[i:i + step]
        level = lambda x: 10 * np.log10(float(x @ x) / len(x) + 1.0)  # noqa: E731
        rows.append(f"{i / 16000:6.1f} s {level(a):5.1f} {level(b):5.1f} ({level(a) - level(b):5.1f})")
    print("\n".join(rows))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", type=Path, default=None, help="an aec.py to load instead of the package's")
    ap.add_argument("--rooms", nargs="*", choices=("loopback", "room"), help="only these rooms")
    ap.add_argument("--replay", type=Path, default=None, help="a live test's folder with speaker.wav and microphone.wav")
    args = ap.parse_args()
    aec = load_canceller(args.module)
    if args.replay is not None:
        return replay(aec, args.replay)
    skill = synthesize(SKILL_TEXT, "espeak:en-us").astype(float)
    ref = np.concatenate([skill, skill])[: 24 * 16000]
    rooms = {"loopback": np.concatenate([np.zeros(480), ref])[: len(ref)] * 0.5,
             "room": np.convolve(ref, aec.simulated_room())[: len(ref)] * 0.5}
    users = [synthesize(w, v).astype(float) for v in USER_VOICES for w in WORDS]
    places = np.linspace(8.0, 20.0, 4)
    print(f"canceller: {args.module or 'voice_skill/audio/aec.py'}")
    print("| room | onset dB median / worst | word dB median / worst | after dB median / worst | CPU s per audio s |")
    print("|---|---|---|---|---|")
    for name, echo in rooms.items():
        if args.rooms and name not in args.rooms:
            continue
        typical = float(echo @ echo) / len(echo)  # the echo's average power
        onsets, words, afters, cpu, audio = [], [], [], 0.0, 0.0
        for user in users:
            for level in LEVELS:
                u = user * level
                for place in places:
                    at = int(place * 16000) // BLOCK * BLOCK
                    end = min(len(echo), at + len(u) + 16000) // BLOCK * BLOCK
                    mic = echo[:end].copy()
                    mic[at:at + len(u)] += u[: end - at]
                    canceller = aec.EchoCanceller()
                    t0 = time.process_time()
                    out = np.concatenate([canceller.process(mic[i:i + BLOCK], ref[i:i + BLOCK])
                                          for i in range(0, end, BLOCK)])
                    cpu += time.process_time() - t0
                    audio += len(mic) / 16000
                    onset = int(np.argmax(np.abs(u) > 0.05 * np.abs(u).max()))
                    first = slice(at + onset, at + onset + 800)
                    onsets.append(db(u[onset:onset + 800], out[first] - u[onset:onset + 800]))
                    n = min(len(u), end - at)
                    words.append(db(u[:n], out[at:at + n] - u[:n]))
                    after = slice(at + len(u), end)
                    if float(echo[after] @ echo[after]) > 0.1 * typical * (end - at - len(u)):  # 10 dB under the average
                        afters.append(db(echo[after], out[after]))

        def cell(xs: list[float]) -> str:
            return f"{statistics.median(xs):.1f} / {min(xs):.1f}"

        print(f"| {name} | {cell(onsets)} | {cell(words)} | {cell(afters)} | {cpu / audio:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
