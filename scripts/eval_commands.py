#!/usr/bin/env python3
"""Commands said during a routine, through the whole skill: right, wrong or missed.

    python scripts/eval_commands.py --split test --items 240            # the README's table
    python scripts/eval_commands.py --split dev --items 240 --spotter off
    python scripts/eval_commands.py --split test --echo                 # over the skill's own voice
    python scripts/eval_commands.py --split test --echo --voice espeak  # ... over espeak-ng's
    python scripts/eval_commands.py --split dev --safety                # red flags and emergencies
    python scripts/eval_commands.py --split dev --items 132 --heads-only a.npz b.npz   # heads alone

Each item is one recording, run through the real session (``app.run_chunks``, the path
``voice-skill run --input`` takes): after 12 s of the room, a voice of the split says "calf cramp", and 4 to 14 s
into the routine (while the coach speaks, or between its sentences) says a command, often
with a filler ("okay stop", "um next please"), in a quiet room or over fan, babble or
TV-like noise at 6 to 18 dB. The trigger is said 8 dB louder than the command so that the
routine starts whatever the noise; items where it did not are counted apart.

An item is *right* when the first ``heard`` event with an intent that ended after the
command began has the command's intent; *wrong* when it has another; *missed* when none
came. Intents taken in the routine that ended before the command (from the fan, babble, TV or
the skill's own voice: nobody spoke) are *false commands*, counted per minute of routine.
With ``--echo`` the skill's real speech (its default voice, or ``--voice``) is mixed into the
input through a simulated room, and the skill's echo canceller runs, as on a loudspeaker by
the bed.

With ``--safety`` the items are red flags and emergencies ("oh no my foot is cold") instead of
commands: the cost side of any rule that ignores safety phrases buried in other speech. For each
safety intent taken, the table counts how many other words the recognizer heard with it.

With ``--heads-only`` the skill is not run: each command head given is asked about every
80-ms frame of each recording, as the spotter would ask it, and the table counts, per room and
threshold, the commands whose right class reached the threshold from the command's first sound
to 0.6 s after it and was the highest there (right), those where another class was the highest
and reached it (wrong), and
the recordings where any class reached it in the room between the trigger and the command
(false): what a head could do on its own, whatever the skill's rules around it.

Voices and texts come from ``voice_skill.devtools.spottercorpus``: tune on ``dev``, report
on ``test`` (never tuned on).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from voice_skill.audio.pcm import SAMPLE_RATE  # noqa: E402
from voice_skill.devtools import speechgen  # noqa: E402
from voice_skill.devtools import spottercorpus as corpus  # noqa: E402
from voice_skill.core.intents import IntentParser, PhraseTable, tokens  # noqa: E402

log = logging.getLogger("eval_commands")

COMMANDS = ("stop", "pause", "resume", "next", "back", "repeat", "slower", "faster", "done", "worse", "help")
SAFETY = corpus.SAFETY_CLASSES
CONDITIONS = (None, ("fan", 18), ("babble", 12), ("tv", 12), ("fan", 6), ("babble", 6), ("tv", 6))
FILLERS = {
    "dev": ["", "", "okay", "um", "please", "uh"],
    "test": ["", "", "", "okay", "um", "hey", "please", "uh", "alright", "so"],
}
SAFETY_BEFORE = corpus.SAFETY_BEFORE  # what comes before a safety phrase (after it: AFTER)
AFTER = {"dev": ["", "", "", "please"], "test": ["", "", "", "", "please", "now"]}
TRIGGER_BOOST_DB = 8.0
# The room is there before the cramp: this much of it before the trigger, as the skill has been
# listening for hours (in a stream's first seconds the room rule has no past, and babble there
# started false red flags that a skill on for hours never meets: stop 25 used 0.8 s).
LEAD_S = 12.0


def cond_name(c) -> str:
    return "clean" if c is None else f"{c[0]} {c[1]} dB"


def items(split: str, n: int, seed: int, safety: bool = False) -> list[dict]:
    """``n`` recordings to make: voice, command (or safety phrase), the words said, where, in
    what room."""
    rng = np.random.default_rng(seed)
    kinds, fillers = (SAFETY, SAFETY_BEFORE) if safety else (COMMANDS, FILLERS)
    table = PhraseTable.load()
    phrases = {name: [" ".join(p) for p in ps] for name, ps in table.intents if name in kinds}
    voices = corpus.split_voices(split)
    out = []
    for i in range(n):
        intent = kinds[i % len(kinds)]
        phrase = phrases[intent][int(rng.integers(len(phrases[intent])))]
        before = fillers[split][int(rng.integers(len(fillers[split])))]
        after = AFTER[split][int(rng.integers(len(AFTER[split])))]
        out.append({
            "index": i, "voice": voices[int(rng.integers(len(voices)))], "intent": intent,
            "said": " ".join(w for w in (before, phrase, after) if w),
            "condition": CONDITIONS[(i // len(kinds)) % len(CONDITIONS)],
            "delay_s": float(rng.uniform(4.0, 14.0)), "seed": int(rng.integers(1 << 30)), "lead_s": LEAD_S,
        })
    return out


def recording(item: dict, noise_voices: list[str]) -> tuple[np.ndarray, float, float, float]:
    """The item's audio, the seconds its command starts and ends, and the second the trigger ends."""
    rng = np.random.default_rng(item["seed"])
    trigger = speechgen.synthesize("calf cramp", item["voice"]).astype(np.float64)
    command = (speechgen.synthesize(item["said"], item["voice"]).astype(np.float64) if item["said"]
               else np.zeros(int(0.5 * SAMPLE_RATE)))  # --listen-only: nobody speaks
    lead = int(item.get("lead_s", 0.8) * SAMPLE_RATE)
    cmd_at = lead + len(trigger) + int(item["delay_s"] * SAMPLE_RATE)
    x = np.zeros(cmd_at + len(command) + int(4.0 * SAMPLE_RATE))
    x[lead:lead + len(trigger)] = trigger * 10 ** (TRIGGER_BOOST_DB / 20) * 0.35
    x[cmd_at:cmd_at + len(command)] = command * 0.35
    speech = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    c = item["condition"]
    if c is not None:
        bg = corpus.noise(c[0], len(speech) / SAMPLE_RATE + 0.1, item["seed"], noise_voices)
        # the noise level is set against the command, not the louder trigger
        level = speechgen.active_power((command if item["said"] else trigger).astype(np.int16))
        bg = bg[:len(speech)].astype(np.float64)
        bg *= np.sqrt(level / (speechgen.active_power(bg.astype(np.int16)) + 1e-9)) * 10 ** (-c[1] / 20) * 0.35
        speech = np.clip(np.round(speech + bg), -32768, 32767).astype(np.int16)
    floor = rng.standard_normal(len(speech)) * 32768 * 10 ** (-65 / 20)
    return (np.clip(np.round(speech + floor), -32768, 32767).astype(np.int16), cmd_at / SAMPLE_RATE,
            (cmd_at + len(command)) / SAMPLE_RATE, (lead + len(trigger)) / SAMPLE_RATE)


def judge(events: list[dict], cmd_at: float) -> tuple[str, dict | None, str]:
    """('taken' | 'missed' | 'no routine', the first heard event with an intent, what was heard)."""
    if routine_start(events, cmd_at) is None:
        return "no routine", None, ""
    heard = [e for e in events if e["event"] == "heard" and not e.get("partial") and _ended(e) > cmd_at]
    texts = " / ".join(f"{e['text']}" + (f" [{e['ignored']}]" if e.get("ignored") else "") for e in heard)
    taken = next((e for e in heard if e.get("intent")), None)
    return ("missed" if taken is None else "taken"), taken, texts


def other_words(text: str, parser: IntentParser) -> int | None:
    """How many words the recognizer heard besides the phrase of the intent it took (the
    measure of the session's rules for safety phrases buried in other speech)."""
    intent = parser.parse(text)
    return None if intent is None else len(tokens(text)) - len(intent.phrase.split())


def _ended(event: dict) -> float:
    """When what an event heard ended. By its end, not its start: under a TV the recognizer's
    10-s piece that holds a command starts with the TV's words before it."""
    return event.get("end_s", event["t"])


def _the_trigger(event: dict, routine_start_s: float) -> bool:
    """The trigger that started the routine, heard again (the grammar recognizer's copy with a
    leg in it, "right calf cramp", is kept for its slot): not a false command."""
    return event["intent"] == "start" and event.get("start_s", event["t"]) < routine_start_s


def routine_start(events: list[dict], cmd_at: float) -> float | None:
    """When the routine the trigger started began (None if it did not before the command)."""
    return next((e["t"] for e in events if e["event"] == "routine" and e["state"] == "started" and e["t"] < cmd_at),
                None)


def false_commands(events: list[dict], cmd_at: float) -> tuple[list[dict], float]:
    """The intents taken in the routine before the user said anything (from the fan, the
    babble, the TV or the skill's own voice) and the seconds of routine they came from (until
    the routine ended, if it ended before the command: finished, or stopped by a false one)."""
    start = routine_start(events, cmd_at)
    if start is None:
        return [], 0.0
    until = cmd_at - 0.5
    ended = next((e["t"] for e in events if e["event"] == "routine" and e["t"] > start
                  and e["state"] not in ("started", "paused", "resumed")), until)
    taken = [e for e in events if e["event"] == "heard" and e.get("intent") and not e.get("partial")
             and start < _ended(e) <= cmd_at and not _the_trigger(e, start)]
    return ([{"intent": e["intent"], "at": e.get("start_s", e["t"]), "text": e["text"],
              "by_sound": bool(e.get("by_sound"))} for e in taken],
            max(0.0, min(until, ended) - start))


def _run(args: tuple) -> dict:
    item, mode, echo, noise_voices, command_head, command_threshold, voice = args
    from voice_skill.runtime.app import RunOptions, run_chunks  # noqa: PLC0415
    from voice_skill.asr import spotter  # noqa: PLC0415

    spotter.COMMAND_HEAD = command_head  # "none": without the command head
    if command_threshold is not None and not getattr(spotter.command_head, "patched", False):
        shipped = spotter.command_head

        def with_threshold(path=None):  # the shipped head, deciding at another threshold
            head = shipped(path)
            if head is not None:
                head.meta["threshold"] = command_threshold
            return head

        with_threshold.patched = True
        spotter.command_head = with_threshold

    audio, cmd_at, _, _ = recording(item, noise_voices)
    events: list[dict] = []
    options = RunOptions(asr="pocketsphinx", spotter=mode, speaker="tts" if echo else "none",
                         echo_gain=0.5 if echo else 0.0, hour=14.0, voice=voice)
    t0 = time.process_time()
    run_chunks(speechgen.iter_array_chunks(audio, 0.1), options, None, listeners=[events.append])
    cpu = time.process_time() - t0
    verdict, taken, texts = judge(events, cmd_at)
    false, routine_s = false_commands(events, cmd_at)
    if taken is not None:
        verdict = "right" if taken["intent"] == item["intent"] else "wrong"
    return {**item, "condition": cond_name(item["condition"]), "verdict": verdict,
            "taken": taken and taken["intent"], "taken_text": taken and taken["text"],
            "taken_by_sound": bool(taken and taken.get("by_sound")),
            "heard": texts, "cpu_s": cpu, "audio_s": len(audio) / SAMPLE_RATE, "false": false,
            "routine_s": routine_s}


HEAD_AFTER_S = 0.6  # --heads-only: frames up to this long after the command count as its own
HEAD_THRESHOLDS = (0.7, 0.85, 0.95)


def _heads_run(args: tuple) -> dict:
    """--heads-only: every head's highest probability (and its class) over the command's frames
    and over the room's frames between the trigger and the command."""
    item, noise_voices, paths = args
    import train_spotter as ts  # noqa: PLC0415 (the heads' own window helpers)
    from voice_skill.asr import spotter as sp  # noqa: PLC0415

    audio, cmd_at, cmd_end, trigger_end = recording(item, noise_voices)
    emb = sp.clip_embeddings(ts._models(), audio)
    silence = np.repeat(sp.silence_embedding(ts._models())[None], ts.WINDOW - 1, 0)  # as a fresh stream
    windows = ts.windows(np.concatenate([silence, emb]), np.arange(len(emb)) + ts.WINDOW - 1)
    ends = np.array([sp.embedding_end_s(j) for j in range(len(emb))])
    said = (ends >= cmd_at) & (ends <= cmd_end + HEAD_AFTER_S)
    room = (ends > trigger_end + 1.5) & (ends < cmd_at - 0.2)
    out = {**item, "condition": cond_name(item["condition"]), "heads": {}}
    for path in paths:
        head = sp.SpotterHead.load(path)
        p = head.probabilities(windows)[:, 1:]
        best = p[said].max(0)
        out["heads"][path] = {
            "best": head.classes[int(best.argmax()) + 1], "p": float(best.max()),
            "p_said": float(best[head.classes.index(item["intent"]) - 1]) if item["intent"] in head.classes else None,
            "room": float(p[room].max()) if room.any() else 0.0}
    return out


def heads_table(rows: list[dict], paths: list[str]) -> None:
    for path in paths:
        print(f"\n{path}: the head alone over the commands it knows\n")
        print("| threshold | room | right | wrong | recordings with a false one |")
        print("|---|---|---|---|---|")
        for th in HEAD_THRESHOLDS:
            groups: dict[str, Counter] = defaultdict(Counter)
            for r in rows:
                h = r["heads"][path]
                if h["p_said"] is None:
                    continue
                for g in (r["condition"].split()[0], "all"):
                    c = groups[g]
                    c["n"] += 1
                    c["right"] += h["p_said"] >= th and h["best"] == r["intent"]
                    c["wrong"] += h["p"] >= th and h["best"] != r["intent"]
                    c["false"] += h["room"] >= th
            for g in sorted(groups, key=lambda k: (k == "all", k)):
                c = groups[g]
                print(f"| {th:g} | {g} | {c['right']} of {c['n']} | {c['wrong']} | {c['false']} |")


def table(rows: list[dict], key: str) -> None:
    groups: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        groups[r[key]][r["verdict"]] += 1
        groups["all"][r["verdict"]] += 1
    print(f"| {key} | right | wrong | missed | routine not started |")
    print("|---|---|---|---|---|")
    for name in sorted(groups, key=lambda k: (k == "all", k)):
        c = groups[name]
        n = c["right"] + c["wrong"] + c["missed"]
        print(f"| {name} | {c['right']}/{n} ({100 * c['right'] / max(n, 1):.0f}%) | {c['wrong']} | {c['missed']} "
              f"| {c['no routine']} |")
    print()


def false_table(rows: list[dict]) -> None:
    """Commands taken from the room before the user spoke, per condition."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["condition"]].append(r)
        groups["all"].append(r)
    print("| condition | false commands before the user's | minutes of routine | intents |")
    print("|---|---|---|---|")
    for name in sorted(groups, key=lambda k: (k == "all", k)):
        false = [f["intent"] for r in groups[name] for f in r["false"]]
        minutes = sum(r["routine_s"] for r in groups[name]) / 60
        print(f"| {name} | {len(false)} | {minutes:.1f} | {', '.join(f'{a} x{n}' for a, n in Counter(false).most_common())} |")
    print()


def words_table(rows: list[dict]) -> None:
    """For the safety intents taken: how many other words came with the phrase, the user's
    (right) against the room's (false, before the user spoke); "by its sound" where the safety
    head heard the intent and the words were not its phrase."""
    parser = IntentParser(PhraseTable.load())

    def words(text: str, by_sound: bool) -> int | str:
        return "by its sound" if by_sound else other_words(text, parser)

    user = Counter(words(r["taken_text"], r["taken_by_sound"]) for r in rows if r["verdict"] == "right")
    room = Counter(words(f["text"], f["by_sound"]) for r in rows for f in r["false"] if f["intent"] in SAFETY)
    print("| other words heard with the phrase | the user's (right) | the room's (false) |")
    print("|---|---|---|")
    for n in sorted(set(user) | set(room), key=lambda n: (isinstance(n, str), n if isinstance(n, int) else 0)):
        print(f"| {n} | {user[n]} | {room[n]} |")
    print()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test"), default="test")
    ap.add_argument("--items", type=int, default=231)
    ap.add_argument("--spotter", choices=("on", "off"), default="on")
    ap.add_argument("--echo", action="store_true", help="mix the skill's own speech into the input")
    ap.add_argument("--command-head", default="command_head.npz",
                    help="the command head's file in the package's spotter data, or 'none'")
    ap.add_argument("--command-threshold", type=float, default=None,
                    help="the command head decides at this probability instead of its own (for tuning on dev)")
    ap.add_argument("--voice", default=None, help="the skill's voice with --echo (default: the skill's default)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="also write every item's result here (JSON Lines)")
    ap.add_argument("--safety", action="store_true", help="red flags and emergencies instead of commands")
    ap.add_argument("--listen-only", type=float, default=None, metavar="SECONDS",
                    help="no command: 12 s of the room, the trigger, then this long in the room; count only "
                         "the commands taken (all false)")
    ap.add_argument("--heads-only", nargs="+", default=None, metavar="HEAD",
                    help="do not run the skill: ask these command head files about every frame")
    args = ap.parse_args(argv)
    if args.heads_only and (args.safety or args.listen_only is not None):
        ap.error("--heads-only asks command heads about commands: not with --safety or --listen-only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    todo = items(args.split, args.items, args.seed + (0 if args.split == "test" else 1000), args.safety)
    if args.listen_only is not None:
        # the room was there before the cramp: 12 s of it before the trigger, as the skill has
        # been listening for hours (in the first seconds of a stream the room rule has no past)
        todo = [{**it, "said": "", "delay_s": args.listen_only, "condition": CONDITIONS[i % len(CONDITIONS)],
                 "lead_s": 12.0} for i, it in enumerate(todo)]
    noise_voices = corpus.noise_voices(corpus.split_voices(args.split))
    if args.heads_only:
        import train_spotter as ts  # noqa: PLC0415

        from voice_skill.asr.spotter import SpotterHead  # noqa: PLC0415
        from voice_skill.errors import ModelError  # noqa: PLC0415

        for path in args.heads_only:  # every head loads before any audio is made
            try:
                head = SpotterHead.load(path)
            except ModelError as exc:
                print(f"eval_commands: {exc}", file=sys.stderr)
                return 2
            if head.window != ts.WINDOW or not head.classes:
                print(f"eval_commands: {path}: not a command head of {ts.WINDOW} embeddings", file=sys.stderr)
                return 2
        with mp.get_context("fork").Pool(args.workers) as pool:
            rows = list(pool.imap(_heads_run, [(it, noise_voices, args.heads_only) for it in todo]))
        if args.out:
            args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"\nCommand heads alone over {len(rows)} recordings, {args.split} voices")
        heads_table(rows, args.heads_only)
        return 0
    jobs = [(it, args.spotter, args.echo, noise_voices, args.command_head, args.command_threshold, args.voice)
            for it in todo]
    rows = []
    with mp.get_context("fork").Pool(args.workers) as pool:
        for i, row in enumerate(pool.imap_unordered(_run, jobs), 1):
            rows.append(row)
            if i % 20 == 0:
                log.info("%d/%d", i, len(jobs))
    rows.sort(key=lambda r: r["index"])
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    at = f" at {args.command_threshold:g}" if args.command_threshold is not None else ""
    what = (f"Nobody speaking for {args.listen_only:g} s" if args.listen_only is not None
            else "Red flags and emergencies" if args.safety else "Commands")
    print(f"\n{what} in a routine, {args.split} voices, spotter {args.spotter}, command head {args.command_head}{at}"
          f"{', over the skill own voice' if args.echo else ''} ({len(rows)} recordings)\n")
    if args.listen_only is not None:
        false_table(rows)
        words_table(rows)
        for r in rows:
            for f in r["false"]:
                log.info("false command in %s [%s]: %s at %.1f s: %s", r["voice"], r["condition"], f["intent"],
                         f["at"], f["text"])
        return 0
    table(rows, "intent")
    table(rows, "condition")
    if args.safety:
        words_table(rows)
    for r in rows:
        r["family"] = corpus.voice_family(r["voice"])
    table(rows, "family")
    wrong = Counter((r["intent"], r["taken"]) for r in rows if r["verdict"] == "wrong")
    if wrong:
        print("wrong intents (said -> taken): " + ", ".join(f"{a}->{b} x{n}" for (a, b), n in wrong.most_common()))
    false_table(rows)
    cpu = sum(r["cpu_s"] for r in rows) / max(sum(r["audio_s"] for r in rows), 1e-9)
    print(f"CPU {cpu:.3f} s per audio s (whole skill, file input)")
    for r in rows:
        if r["verdict"] in ("wrong", "missed"):
            log.info("%s %s %r in %s [%s]: heard %s", r["verdict"], r["intent"], r["said"], r["voice"],
                     r["condition"], r["heard"] or "-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
