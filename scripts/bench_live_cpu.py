"""The live skill's CPU while it listens, split by process.

``bench_listening.py`` measures the recognizer alone on recordings; this starts the whole skill
as a user would (``voice-skill run`` on a private PulseAudio server, tests/pulse.py), waits for
the first start's sentence-cache fill to end, plays the soak's snoring into the virtual
microphone and prints the CPU each of the skill's processes spent over ``--seconds`` of it
(``/proc``), as a percentage of one core: the skill's own process (microphone, echo canceller,
session), the recognizer's and the speech engine's.

    python scripts/bench_live_cpu.py                  # one run, 50 s of snoring
    python scripts/bench_live_cpu.py --runs 3         # and the median of three
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.soak_live import _role, family  # noqa: E402
from tests.pulse import unavailable_reason  # noqa: E402
from tests.test_e2e_live import LiveSkill, cpu_seconds  # noqa: E402
from voice_skill.audio.pcm import write_wav  # noqa: E402
from voice_skill.devtools.speechgen import snore_noise  # noqa: E402


def one_run(seconds: float, settle_s: float) -> dict[str, float]:
    """Percent of a core per role over ``seconds`` of snoring."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-cpu-"))
    snore = tmp / "snore.wav"
    write_wav(snore, snore_noise(seconds + 10.0))
    skill = LiveSkill(tmp, combined=False)
    try:
        skill.wait_listening()
        time.sleep(settle_s)  # the first start renders the routines' sentences in the background
        skill.server.play_to_mic(snore)
        time.sleep(3.0)
        pids = family(skill.proc.pid)
        before = {p: cpu_seconds(p) for p in pids}
        t0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        out: dict[str, float] = {}
        for p in pids:
            role = _role(p, skill.proc.pid)
            try:
                spent = cpu_seconds(p) - before[p]
            except OSError:
                continue
            out[role] = out.get(role, 0.0) + 100.0 * spent / wall
        return out
    finally:
        skill.close()
        shutil.rmtree(tmp, ignore_errors=True)  # the snore and the skill's sentence cache (50 MB)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=50.0, help="seconds of snoring measured (default 50)")
    parser.add_argument("--settle", type=float, default=100.0,
                        help="seconds to wait after start for the sentence cache to fill (default 100)")
    parser.add_argument("--runs", type=int, default=1, help="runs; the median is printed (default 1)")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"bench_live_cpu: {reason}", file=sys.stderr)
        return 2
    runs = [one_run(args.seconds, args.settle) for _ in range(args.runs)]
    roles = sorted({r for run in runs for r in run})
    print(f"| process | % of a core (median of {len(runs)}, {args.seconds:g} s of snoring) |")
    print("|---|---|")
    for role in roles + ["all"]:
        values = [sum(run.values()) if role == "all" else run.get(role, 0.0) for run in runs]
        print(f"| {role} | {statistics.median(values):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
