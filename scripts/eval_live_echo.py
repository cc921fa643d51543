"""Red flags said over the skill's first sentences, live, and what its own voice makes of itself.

Each episode starts the skill afresh (``voice-skill run`` on a private PulseAudio server,
tests/pulse.py), so that its echo canceller has never heard the room, with everything the
loudspeaker plays coming back into the microphone 6 dB down (``LiveSkill.hear_own_voice``, the
self-hearing test's room). A user says "calf cramp"; in every other episode the same user then
says a red flag or an emergency 1-7 s into the skill's first sentences, otherwise nobody says
anything more. Twelve seconds after the routine started the skill is stopped and its event log
read:

- with nobody speaking, every intent the skill took after the trigger is its own voice taken
  for the user's (a false one);
- with a red flag said, the first intent taken from the phrase's start on is right (the phrase's
  intent), wrong (another), or missed (none); an intent before it is a false one.

    python scripts/eval_live_echo.py                   # 24 episodes, about 12 minutes
    python scripts/eval_live_echo.py --episodes 8 --seed 3

Prints a row per episode, then the counts, and where each episode's event log and recordings are
kept for a look afterwards (the shared sentence cache is removed). Exit 0; 2 where no PulseAudio
server can run here.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.pulse import MIC_FEED_SINK, unavailable_reason  # noqa: E402
from tests.test_e2e_live import LiveSkill  # noqa: E402

VOICES = ["flite:slt", "flite:kal16", "flite:awb", "flite:rms"]
SAID = [  # (what the user says, the intent it must give)
    ("I'm dizzy", "emergency"), ("my chest is tight", "emergency"), ("I can't breathe", "emergency"),
    ("call an ambulance", "emergency"), ("my foot is cold", "red_flag"), ("my calf is swollen", "red_flag"),
    ("I heard a pop", "red_flag"), ("it's numb", "red_flag"), ("I can't walk", "red_flag"),
    ("my leg is weak", "red_flag"), ("it's red and hot", "red_flag"), ("somebody help me", "emergency"),
]
AFTER_START_S = 12.0


def episode(root: Path, index: int, rng: random.Random, cache: Path) -> dict:
    """One fresh skill, one trigger, perhaps one red flag; what was taken, and when."""
    tmp = root / f"episode-{index:02d}"
    tmp.mkdir()
    voice = VOICES[index % len(VOICES)]
    said = SAID[rng.randrange(len(SAID))] if index % 2 else None
    delay = rng.uniform(1.0, 7.0)
    skill = LiveSkill(tmp, combined=False, args=("--time-of-day", "14:00"), env={"XDG_CACHE_HOME": str(cache)})
    row: dict = {"voice": voice, "said": said[0] if said else "", "want": said[1] if said else None}
    try:
        skill.hear_own_voice(-6.0)
        user = skill.mouth(MIC_FEED_SINK)
        skill.wait_listening()
        trigger = user.say("calf cramp", voice)
        try:
            skill.wait_for(lambda ev: any(e["event"] == "routine" for e in ev), 20, "the routine")
        except AssertionError:
            row["verdict"] = "no routine"
            return row
        seen = time.monotonic()
        phrase = None
        if said:
            time.sleep(max(0.0, delay - (time.monotonic() - seen)))
            phrase = user.say(said[0], voice)
        time.sleep(max(0.0, AFTER_START_S - (time.monotonic() - seen)))
        skill.signal(signal.SIGTERM)
        events = skill.events()
    finally:
        skill.close()
    taken = [e for e in events if e["event"] == "heard" and e.get("intent") and not e.get("partial")]
    calf = next((e for e in taken if e["intent"] == "start"), None)
    if calf is None:
        row["verdict"] = "no routine"
        return row
    shift = calf["end_s"] - (trigger[0] + trigger[1])  # the skill's clock against the wall's
    after = [e for e in taken if e["start_s"] > calf["end_s"]]
    if phrase is not None:
        said_at = phrase[0] + shift - 0.5  # the audio path's delay, give or take
        false = [e for e in after if e["end_s"] < said_at]
        theirs = [e for e in after if e["end_s"] >= said_at]
        row["delay_s"] = round(delay, 1)
        row["verdict"] = ("missed" if not theirs else "right" if theirs[0]["intent"] == said[1] else "wrong")
        row["taken"] = theirs[0]["text"] + f" ({theirs[0]['intent']})" if theirs else ""
    else:
        false = after
        row["verdict"] = "nobody"
    row["false"] = [f"{e['text']} ({e['intent']})" for e in false]
    ignored = [e for e in events if e["event"] == "heard" and e.get("ignored") and e["start_s"] > calf["end_s"]]
    row["ignored"] = [f"{e['text']} [{e['ignored']}]" for e in ignored]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=24, help="episodes, half with a red flag (default 24)")
    parser.add_argument("--seed", type=int, default=1, help="which phrases and when (default 1)")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"eval_live_echo: {reason}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="eval-live-echo-"))
    cache = root / "cache"  # the sentence cache, shared: only the first episode renders the routine
    rows = []
    for i in range(args.episodes):
        row = episode(root, i, rng, cache)
        rows.append(row)
        print(f"{i:2d} {row['voice']:12s} {row['said'] or '-':20s} {row['verdict']:10s} {row.get('taken', '')!s:30s} "
              f"false {row.get('false', [])} ignored {row.get('ignored', [])}", flush=True)
    said = [r for r in rows if r["want"] and r["verdict"] != "no routine"]
    nobody = [r for r in rows if r["verdict"] == "nobody"]
    count = {v: sum(r["verdict"] == v for r in said) for v in ("right", "wrong", "missed")}
    print(f"\nepisodes {len(rows)}, no routine {sum(r['verdict'] == 'no routine' for r in rows)}")
    print(f"red flags said over the skill's first sentences: right {count['right']}, wrong {count['wrong']}, "
          f"missed {count['missed']} of {len(said)}")
    print(f"false intents from the skill's own voice: {sum(len(r.get('false', [])) for r in rows)} "
          f"in {len(nobody) + len(said)} routines' first {AFTER_START_S:g} s")
    shutil.rmtree(cache, ignore_errors=True)
    print(f"episodes' event logs and recordings: {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
