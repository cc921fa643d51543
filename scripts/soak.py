"""A night in minutes: hours of generated bedroom audio through the skill's file-input loop.

The audio is generated a minute at a time and streamed (never the whole night in
memory): quiet, snoring-like breathing noise, a television talking for long stretches,
and cramp episodes at random (seeded) times where a flite voice says "calf cramp" and
the routine then runs to its end in a quiet room. It runs on the virtual clock, so eight
hours take as long as the recognizer needs.

Checks: every episode coached (a routine started within 10 s of the trigger and
finished), no routine started at any other time, memory flat (RSS at the last hour
within 10 MB of the first), no growth in threads or open file descriptors. Prints a table
per hour of audio. Exit 0 if every check passed, 1 otherwise.

    python scripts/soak.py                      # eight hours, five episodes
    python scripts/soak.py --hours 0.33 --episodes 2
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from voice_skill.runtime.app import RunOptions, run_chunks
from voice_skill.audio.pcm import SAMPLE_RATE, AudioChunk

TRIGGER = "calf cramp"
EPISODE_QUIET_S = 420.0  # after a trigger: quiet (or snoring) long enough for a routine to finish
MINUTE = 60


@dataclass
class Plan:
    """What plays when: one kind per minute, and the trigger times."""

    minutes: list[str]
    triggers_s: list[float]


def make_plan(hours: float, episodes: int, seed: int, tv_share: float = 0.3) -> Plan:
    rng = np.random.default_rng(seed)
    n = max(1, int(round(hours * 60)))
    minutes: list[str] = []
    while len(minutes) < n:  # stretches of 5 to 40 minutes
        kind = rng.choice(["quiet", "snore", "tv"], p=[(1 - tv_share) / 2, (1 - tv_share) / 2, tv_share])
        minutes += [str(kind)] * int(rng.integers(5, 41))
    minutes = minutes[:n]
    # Episodes: spread out, each in its own slot, with a quiet room after the trigger.
    slot = n / max(1, episodes)
    triggers = []
    for i in range(episodes):
        lo, hi = int(i * slot) + 1, int((i + 1) * slot) - int(EPISODE_QUIET_S // MINUTE) - 2
        m = int(rng.integers(lo, max(lo + 1, hi)))
        triggers.append(m * MINUTE + float(rng.uniform(5, 40)))
        for k in range(m, min(n, m + int(EPISODE_QUIET_S // MINUTE) + 2)):
            minutes[k] = "snore" if minutes[k] == "snore" else "quiet"
    return Plan(minutes, triggers)


def _snore(seconds: float, seed: int) -> np.ndarray:
    from voice_skill.devtools.speechgen import brown_noise

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    period = float(rng.uniform(3.5, 5.0))
    envelope = np.clip(np.sin(2 * np.pi * t / period), 0, None) ** 2  # breathing in, rasping
    return (brown_noise(seconds, seed).astype(np.float32) * envelope * 0.5).astype(np.int16)


def minute_audio(kind: str, index: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng((seed, index))
    if kind == "tv":
        from voice_skill.devtools.speechgen import tv_noise

        return (tv_noise(MINUTE, seed=int(rng.integers(1 << 31)), voices=["espeak:en-us", "flite:rms", "flite:awb"])
                .astype(np.float32) * 0.5).astype(np.int16)
    if kind == "snore":
        return _snore(MINUTE, int(rng.integers(1 << 31)))
    return (rng.standard_normal(MINUTE * SAMPLE_RATE) * 20).astype(np.int16)  # a quiet room's hiss


def night_chunks(plan: Plan, seed: int, voice: str, chunk_s: float) -> Iterator[AudioChunk]:
    """The night as AudioChunks, generated a minute at a time."""
    from voice_skill.devtools.speechgen import synthesize

    trigger = synthesize(TRIGGER, voice)
    size = int(round(chunk_s * SAMPLE_RATE))
    emitted = 0
    carry = np.zeros(0, dtype=np.int16)
    for i, kind in enumerate(plan.minutes):
        audio = minute_audio(kind, i, seed)
        for t in plan.triggers_s:
            if i * MINUTE <= t < (i + 1) * MINUTE:
                a = int((t - i * MINUTE) * SAMPLE_RATE)
                b = min(len(audio), a + len(trigger))
                audio = audio.copy()
                audio[a:b] = np.clip(audio[a:b].astype(np.int32) + trigger[: b - a], -32768, 32767)
        buf = np.concatenate([carry, audio])
        usable = len(buf) - len(buf) % size
        for j in range(0, usable, size):
            yield AudioChunk(buf[j:j + size].tobytes(), start_s=(emitted + j) / SAMPLE_RATE)
        emitted += usable
        carry = buf[usable:]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@dataclass
class Tally:
    """What the event log said, kept small (no list of every event)."""

    started: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    accepted: int = 0
    warnings: int = 0

    def __call__(self, record: dict) -> None:
        kind = record["event"]
        if kind == "routine" and record["state"] == "started":
            self.started.append(record["t"])
        elif kind == "routine" and record["state"] in ("finished", "stopped"):
            self.finished.append(record["t"])
        elif kind == "heard" and record.get("intent") and not record.get("partial"):
            self.accepted += 1
        elif kind == "warning":
            self.warnings += 1


def run(hours: float, episodes: int, seed: int, voice: str, chunk_s: float, out=sys.stdout,
        every_s: float | None = None) -> dict:
    plan = make_plan(hours, episodes, seed)
    options = RunOptions(hour=23.0)
    tally = Tally()
    rows = []
    wall0 = time.monotonic()

    def mark(t: float) -> None:
        rows.append({"hour": t / 3600, "wall_s": time.monotonic() - wall0, "rss_mb": rss_mb(), "threads": os_threads(),
                     "py_threads": threading.active_count(), "fds": open_fds(), "started": len(tally.started),
                     "finished": len(tally.finished), "accepted": tally.accepted})
        r = rows[-1]
        print(f"{r['hour']:5.2f} h  {r['wall_s']:7.1f} s  {r['rss_mb']:7.1f} MB  {r['threads']:3d} thr  {r['fds']:3d} fds  "
              f"{r['started']:2d} started  {r['finished']:2d} finished  {r['accepted']:3d} heard", file=out, flush=True)

    mark_every = every_s or (3600.0 if hours >= 2 else max(60.0, hours * 3600 / 4))

    def marked(chunks: Iterable[AudioChunk]) -> Iterator[AudioChunk]:
        next_mark = 0.0
        for chunk in chunks:
            if chunk.start_s >= next_mark:
                mark(chunk.start_s)
                next_mark += mark_every
            yield chunk

    print(f"{'audio':>7}  {'wall':>9}  {'RSS':>10}  {'':7}  {'':7}  routines", file=out)
    session = run_chunks(marked(night_chunks(plan, seed, voice, chunk_s)), options, None, listeners=[tally])
    mark(session.clock.now())

    problems = []
    for t in plan.triggers_s:
        starts = [s for s in tally.started if t <= s <= t + 10.0]
        ends = [f for f in tally.finished if f > t]
        if not starts:
            problems.append(f"the trigger at {t:.1f} s started no routine")
        elif not ends or ends[0] > t + EPISODE_QUIET_S:
            problems.append(f"the routine started at {starts[0]:.1f} s did not finish")
    false = [s for s in tally.started if not any(t <= s <= t + 10.0 for t in plan.triggers_s)]
    if false:
        problems.append(f"false starts at {', '.join(f'{s:.1f}' for s in false)} s")
    # Hour one is the baseline (start-up and the first episode are done by then), whatever
    # the row spacing; shorter runs use their second row.
    first = next((r for r in rows if r["hour"] >= 1.0 - 1e-6), None) if hours >= 2 else None
    first = first or (rows[1] if len(rows) > 2 else rows[0])
    last = rows[-1]
    growth = last["rss_mb"] - first["rss_mb"]
    if growth > 10.0:
        problems.append(f"memory grew {growth:.1f} MB")
    if last["threads"] > first["threads"] or last["fds"] > first["fds"]:
        problems.append(f"threads {first['threads']}->{last['threads']}, fds {first['fds']}->{last['fds']}")
    summary = {"rows": rows, "problems": problems, "triggers_s": plan.triggers_s, "started": tally.started,
               "finished": tally.finished, "rss_growth_mb": growth, "audio_s": session.clock.now(),
               "wall_s": time.monotonic() - wall0, "tv_minutes": plan.minutes.count("tv")}
    print(f"\n{len(plan.triggers_s)} episodes at {', '.join(f'{t / 60:.1f}' for t in plan.triggers_s)} min; "
          f"routines started at {', '.join(f'{t / 60:.1f}' for t in tally.started)} min; "
          f"{summary['tv_minutes']} min of television; RSS growth {growth:+.1f} MB; "
          f"{summary['audio_s'] / 3600:.2f} h of audio in {summary['wall_s']:.0f} s", file=out)
    print("PASS" if not problems else "FAIL: " + "; ".join(problems), file=out, flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--voice", default="flite:slt", help="the voice that says 'calf cramp' (speechgen name)")
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--every-min", type=float, default=None, help="minutes of audio between rows (default an hour)")
    args = parser.parse_args(argv)
    summary = run(args.hours, args.episodes, args.seed, args.voice, args.chunk_ms / 1000.0,
                  every_s=args.every_min * 60 if args.every_min else None)
    return 0 if not summary["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
