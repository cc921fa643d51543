"""The live skill on virtual devices for N minutes, with cramp episodes, watched from outside.

Starts a private PulseAudio server (tests/pulse.py), runs ``voice-skill run --no-journal
--events FILE`` against it as a user would, plays snoring-like noise into the virtual
microphone, and says "calf cramp" (a flite voice) at evenly spread times. Every
``--every`` seconds it samples the RSS, threads, open file descriptors and CPU time of the
skill and its child processes (recognizer, speech engine), summed,
from /proc, and prints a row. At the end it prints the resident memory of each process, then
sends SIGINT and times the shutdown.

    python scripts/soak_live.py                 # 10 minutes, two episodes
    python scripts/soak_live.py --minutes 60 --episodes 4

Exit 0 if every episode started a routine that finished, nothing else started one,
RSS grew by less than 10 MB after the first episode, threads and fds did not grow, and
the skill ended within a second of SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.pulse import MIC_FEED_SINK, unavailable_reason  # noqa: E402
from tests.test_e2e_live import LiveSkill, cpu_seconds  # noqa: E402
from voice_skill.audio.pcm import write_wav  # noqa: E402
from voice_skill.devtools.speechgen import snore_noise  # noqa: E402


def family(pid: int) -> list[int]:
    """The skill and its child processes (the recognizer and the speech engine run in children)."""
    import os

    pids = [pid]
    for p in pids:
        for task in os.listdir(f"/proc/{p}/task"):
            try:
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    pids += [int(c) for c in fh.read().split()]
            except OSError:
                pass
    return pids


def proc_stats(pid: int) -> dict:
    """RSS, threads, open files and CPU of the skill and its children, summed."""
    import os

    rss = threads = fds = 0.0
    cpu = 0.0
    for p in family(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                rss += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024.0
            threads += len(os.listdir(f"/proc/{p}/task"))
            fds += len(os.listdir(f"/proc/{p}/fd"))
            cpu += cpu_seconds(p)
        except (OSError, StopIteration):
            pass  # a child that has just ended
    return {"rss_mb": rss, "threads": int(threads), "fds": int(fds), "cpu_s": cpu}


def _role(pid: int, parent: int) -> str:
    """Which of the skill's processes ``pid`` is, by what it has loaded."""
    if pid == parent:
        return "skill"
    try:
        with open(f"/proc/{pid}/maps") as fh:
            maps = fh.read()
    except OSError:
        return "ended"
    return ("recognizer" if "pocketsphinx" in maps or "vosk" in maps
            else "speech engine" if "espeak" in maps else "child")


def rss_by_process(pid: int) -> list[tuple[str, int, float]]:
    """(role, pid, RSS in MB) of the skill and each of its children."""
    out = []
    for p in family(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024.0
        except (OSError, StopIteration):
            continue
        out.append((_role(p, pid), p, rss))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between rows")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"soak_live: {reason}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="soak-live-"))
    snore = tmp / "snore.wav"
    write_wav(snore, snore_noise(60.0))

    total_s = args.minutes * 60
    # Evenly spread from 30 s on; an episode waits until the previous routine has
    # finished, and the run goes on (at most 6 minutes) until the last one has.
    triggers = [30.0 + (total_s - 30.0) * i / args.episodes for i in range(args.episodes)]
    skill = LiveSkill(tmp, combined=False)
    rows: list[dict] = []
    problems: list[str] = []
    try:
        skill.wait_listening()
        t0 = time.monotonic()
        noise = None
        next_row = 0.0
        pending = list(triggers)
        print(f"{'min':>6} {'RSS MB':>8} {'thr':>4} {'fds':>4} {'CPU %':>6} {'started':>8} {'finished':>9}", flush=True)
        last_cpu, last_t = proc_stats(skill.proc.pid)["cpu_s"], t0
        def routines(kind: tuple[str, ...]) -> int:
            return sum(e["event"] == "routine" and e["state"] in kind for e in skill.events())

        said = 0
        while (now := time.monotonic() - t0) < total_s or (routines(("finished", "stopped")) < said
                                                           and now < total_s + 360):
            if skill.proc.poll() is not None:
                problems.append(f"the skill exited with {skill.proc.returncode}")
                break
            if noise is None or noise.poll() is not None:
                noise = skill.server.play_to_mic(snore)
            if pending and now >= pending[0] and routines(("finished", "stopped")) >= said:
                pending.pop(0)
                said += 1
                skill.say("calf cramp", to=MIC_FEED_SINK, wait=False)
            if now >= next_row:
                st = proc_stats(skill.proc.pid)
                ev = skill.events()
                wall = time.monotonic()
                st.update(minute=now / 60, cpu_pct=100 * (st["cpu_s"] - last_cpu) / max(1e-6, wall - last_t),
                          started=sum(e["event"] == "routine" and e["state"] == "started" for e in ev),
                          finished=sum(e["event"] == "routine" and e["state"] in ("finished", "stopped") for e in ev))
                last_cpu, last_t = st["cpu_s"], wall
                rows.append(st)
                print(f"{st['minute']:6.1f} {st['rss_mb']:8.1f} {st['threads']:4d} {st['fds']:4d} {st['cpu_pct']:6.1f} "
                      f"{st['started']:8d} {st['finished']:9d}", flush=True)
                next_row += args.every
            time.sleep(0.2)
        print("\nresident memory by process: " + ", ".join(f"{role} {rss:.1f} MB"
                                                         for role, _, rss in rss_by_process(skill.proc.pid)))
        shutdown_s = skill.signal(signal.SIGINT)
    finally:
        skill.close()
    events = skill.events()
    started = sum(e["event"] == "routine" and e["state"] == "started" for e in events)
    finished = sum(e["event"] == "routine" and e["state"] in ("finished", "stopped") for e in events)
    if started != args.episodes:
        problems.append(f"{started} routines started for {args.episodes} episodes")
    if finished < args.episodes:
        problems.append(f"only {finished} routines finished")
    # The baseline is the first row after the first routine finished: during it the child
    # processes warm up (the recognizer's decoders, the speech engine; about 13 MB).
    after_first = [r for r in rows if r["finished"] >= 1] or rows
    if rows and rows[-1]["rss_mb"] - after_first[0]["rss_mb"] > 10:
        problems.append(f"RSS grew {rows[-1]['rss_mb'] - after_first[0]['rss_mb']:.1f} MB")
    if rows and (rows[-1]["threads"] > max(r["threads"] for r in after_first[:2]) or
                 rows[-1]["fds"] > max(r["fds"] for r in after_first[:2])):
        problems.append("threads or fds grew")
    if shutdown_s > 1.0 or skill.proc.returncode != 0:
        problems.append(f"shutdown took {shutdown_s:.2f} s, exit {skill.proc.returncode}")
    print(f"\nshutdown after SIGINT: {shutdown_s:.3f} s, exit {skill.proc.returncode}; "
          f"{started} routines started, {finished} finished")
    print("PASS" if not problems else "FAIL: " + "; ".join(problems), flush=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
