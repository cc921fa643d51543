#!/usr/bin/env python3
"""Every utterance the grammar recognizer ends, behind the trigger spotter, with the trigger
head's scores over it: what a rule on short utterances would start, and what the skill did.

    python scripts/eval_utterances.py --split dev --minutes 60 --out build/utterances-dev.jsonl
    python scripts/eval_utterances.py --split test --minutes 60 --out build/utterances-test.jsonl
    python scripts/eval_utterances.py --table build/utterances-dev.jsonl   # the table again, no run

Positives: every voice of the split says "calf cramp" alone and two of the split's trigger
sentences (``spottercorpus.trigger_texts``), each after 2.5-3 s of its room (quiet, or a fan at
15 or 6 dB), at -15 to -3 dB. Negatives: ``--minutes`` of the split's speech with no trigger, in
20-s clips with 0.3-2 s between utterances: everyday sentences (half), near misses such as "the
cramp is gone", commands with fillers and the skill's own sentences, in the same rooms.

For each final utterance it writes what the grammar recognizer heard, its length, the trigger
head's highest score over it and over its end (``asr.spotting.ALONE_END_S``), its intent, and
what the spotter's second opinion passed on to the skill. The table counts, for a rule that would
take an utterance whose words made nothing as "calf cramp" said alone when it is short and the
head scored its end high (per candidate threshold and length), the positives that start a routine
and the false starts an hour, beside what the skill as it is started. Then the skill's rule for
such a "near trigger" said again (``asr.spotting.REPEAT_S``): pairs of them in the speech with no
trigger, and "calf cramp" said alone twice, 2-4 s apart, in every voice; a bare-word trigger
("cramp", "I have a cramp") said alone twice too, per threshold at which the bare-word head makes
a near trigger (stop 35). Stop 30 measured both with it (docs/spotter.md). Then the rules
for a short utterance with nothing running that the recognizer placed as a red flag (stop 46) or
a command (stop 47) but the heads took for the trigger said alone. About half an hour of audio
is heard per quarter hour on two cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_trigger_words import heard_behind_spotter  # noqa: E402

from voice_skill.asr import spotting  # noqa: E402
from voice_skill.asr.spotter import SpotterHead, TriggerSpotter  # noqa: E402
from voice_skill.audio.pcm import SAMPLE_RATE  # noqa: E402
from voice_skill.core.intents import IntentParser, PhraseTable  # noqa: E402
from voice_skill.devtools import speechgen  # noqa: E402
from voice_skill.devtools import spottercorpus as corpus  # noqa: E402

log = logging.getLogger("eval_utterances")
ROOMS = [(None, None), ("fan", 15.0), ("fan", 6.0)]
END_S = spotting.ALONE_END_S  # the trigger head's score "at the end": before and after the utterance's end
CLIP_S = 20.0


def utterances(audio: np.ndarray, parser: IntentParser) -> tuple[list[dict], list[str], list[float]]:
    """The grammar recognizer's final utterances in ``audio`` with the trigger head's scores,
    the intents the second opinion passed on, and the spotter's firing times."""
    found: list[dict] = []

    def probed(rec, hyps) -> None:
        for h in hyps:
            if h.final:
                intent = parser.parse(h.text)
                lo, hi = h.start_s - spotting.SPAN_MARGIN_S, h.end_s + spotting.SPAN_MARGIN_S
                lo_c, hi_c = h.start_s - spotting.COMMAND_MARGIN_S, h.end_s + spotting.COMMAND_MARGIN_S
                safety, p = rec.spotter.best(lo_c, hi_c, "safety")
                command, p_c = rec.spotter.best(lo_c, hi_c)
                heard_to = rec.spotter.heard_to_s
                found.append({"text": h.text, "start": round(h.start_s, 2), "dur": round(h.end_s - h.start_s, 2),
                              "unverified": h.unverified_trigger, "bare_p": round(rec.bare_probability(h), 4),
                              "bare_any": round(rec.spotter.best(h.start_s - 0.2, h.end_s + spotting.BARE_END_S[1],
                                                                 "bare")[1], 4),
                              "heard_to": round(heard_to - h.end_s, 2) if heard_to is not None else None,
                              "max": round(rec.spotter.max_score(lo, hi), 4),
                              "end_max": round(rec.spotter.max_score(h.end_s - END_S[0], h.end_s + END_S[1]), 4),
                              "intent": intent.name if intent else None,
                              "safety": safety, "safety_p": round(p, 4),
                              "command": command, "command_p": round(p_c, 4),
                              "placed_p": round(rec.spotter.probability(intent.name, lo_c, hi_c), 4) if intent else None})

    rec, passed = heard_behind_spotter(audio, probed)
    intents = [h.sound_intent or (i.name if (i := parser.parse(h.text)) else None) for h in passed]
    return found, intents, list(rec._fired)


def _room(clip: np.ndarray, rng: np.random.Generator, noise_voices: list[str]) -> tuple[np.ndarray, str]:
    kind, snr = ROOMS[int(rng.integers(len(ROOMS)))]
    audio = corpus.in_room(clip, rng, snr, kind, int(rng.integers(1 << 30)), noise_voices, reverb=0.3,
                           gain_db=float(rng.uniform(-15, -3)), floor_db=float(rng.uniform(-70, -55)))
    return audio, "clean" if kind is None else f"{kind} {snr:.0f} dB"


def _job(job: tuple) -> dict | None:
    kind, split, seed, payload = job
    rng = np.random.default_rng(seed)
    voices = corpus.split_voices(split)
    noise_voices = corpus.noise_voices(voices)
    parser = IntentParser()
    if kind in ("twice", "bare_twice"):  # a trigger alone, then again 2-4 s later: the person was not answered
        voice, head, _tail = payload
        try:
            first, _ = corpus.trigger_clip(head, "", voice, rng, lead_s=(2.5, 3.0), trail_s=(0.05, 0.1))
            again, end_s = corpus.trigger_clip(head, "", voice, rng, lead_s=(2.0, 4.0), trail_s=(1.5, 2.0))
        except speechgen.SpeechGenError as exc:
            log.warning("skipping %r in %s: %s", head, voice, exc)
            return None
        audio, room = _room(np.concatenate([first, again]), rng, noise_voices)
        found, intents, fired = utterances(audio, parser)
        return {"kind": kind, "voice": voice, "text": f"{head} | ", "room": room,
                "end": round(len(first) / SAMPLE_RATE + end_s, 2), "hyps": found, "passed": intents,
                "fired": [round(t, 2) for t in fired]}
    if kind in ("pos", "safety", "command", "bare"):
        voice, head, tail = payload
        try:
            clip, end_s = corpus.trigger_clip(head, tail, voice, rng, lead_s=(2.5, 3.0), trail_s=(1.5, 2.0))
        except speechgen.SpeechGenError as exc:
            log.warning("skipping %r in %s: %s", head, voice, exc)
            return None
        audio, room = _room(clip, rng, noise_voices)
        found, intents, fired = utterances(audio, parser)
        return {"kind": kind, "voice": voice, "text": f"{head} | {tail}", "room": room, "end": round(end_s, 2),
                "hyps": found, "passed": intents, "fired": [round(t, 2) for t in fired]}
    pools = payload
    parts: list[np.ndarray] = []
    said: list[str] = []
    while sum(len(p) for p in parts) < CLIP_S * SAMPLE_RATE:
        pool = pools[int(rng.choice(len(pools), p=[0.5, 0.2, 0.15, 0.15]))]
        for a, t, _v in corpus.stream_texts(pool, voices, rng, 3.0):
            parts.append(a)
            said.append(t)
    audio, room = _room(corpus.join(parts, rng, (0.3, 2.0)), rng, noise_voices)
    found, intents, fired = utterances(audio, parser)
    return {"kind": "neg", "seconds": round(len(audio) / SAMPLE_RATE, 2), "room": room, "said": said,
            "hyps": found, "passed": intents, "fired": [round(t, 2) for t in fired]}


def jobs(split: str, minutes: float, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    out: list[tuple] = []
    for voice in corpus.split_voices(split):
        for head, tail in [("calf cramp", "")] + corpus.trigger_texts(split, rng, 2):
            out.append(("pos", split, int(rng.integers(1 << 30)), (voice, head, tail)))
    parser = IntentParser()
    pools = (corpus.everyday_sentences(split, parser, limit=3000),
             corpus.NEAR_MISSES[split] or corpus.test_near_misses(),
             [f"{f} {c}".strip() for c in corpus.command_texts() for f in ("", "okay", "um")],
             corpus.own_sentences())
    n_neg = int(np.ceil(minutes * 60 / (CLIP_S + 3.0)))
    out += [("neg", split, int(rng.integers(1 << 30)), pools) for _ in range(n_neg)]
    again = np.random.default_rng(seed + 1)  # (added in stop 30: the clips above stay as they were)
    out += [("twice", split, int(again.integers(1 << 30)), (voice, "calf cramp", ""))
            for voice in corpus.split_voices(split)]
    said = np.random.default_rng(seed + 2)  # (added in stop 31) red flags and emergencies said alone
    table = PhraseTable.load()
    out += [("safety", split, int(said.integers(1 << 30)), (voice, head, tail))
            for voice in corpus.split_voices(split)
            for head, tail, _ in corpus.spoken_command_texts(split, said, 4, table, safety=True)]
    for voice in corpus.split_voices(split):  # and commands said alone, 4 of the 10 in each voice
        spoken = corpus.spoken_command_texts(split, said, len(corpus.COMMAND_CLASSES), table)
        out += [("command", split, int(said.integers(1 << 30)), (voice, spoken[i][0], spoken[i][1]))
                for i in said.choice(len(spoken), 4, replace=False)]
    bare = np.random.default_rng(seed + 3)  # (added in stop 34) the bare-word triggers said alone
    out += [("bare", split, int(bare.integers(1 << 30)), (voice, text, ""))
            for voice in corpus.split_voices(split) for text in corpus.BARE_TRIGGERS[split]]
    again = np.random.default_rng(seed + 4)  # (added in stop 35) a bare-word trigger said alone twice
    phrasings = corpus.BARE_TRIGGERS[split]
    out += [("bare_twice", split, int(again.integers(1 << 30)),
             (voice, phrasings[int(again.integers(len(phrasings)))], "")) for voice in corpus.split_voices(split)]
    return out


def table(rows: list[dict]) -> None:
    pos = [r for r in rows if r["kind"] == "pos"]
    neg = [r for r in rows if r["kind"] == "neg"]
    hours = sum(r["seconds"] for r in neg) / 3600
    bare = [r for r in pos if r["text"] == "calf cramp | "]

    def started(r: dict) -> bool:
        return "start" in r["passed"]

    confirm = SpotterHead.load().confirm_threshold

    def without_rule(r: dict) -> bool:  # the spotter fired, or a grammar trigger it confirmed
        return bool(r["fired"]) or any(h["intent"] == "start" and h["max"] >= confirm for h in r["hyps"])

    def rule(r: dict, sure: float, longest: float) -> bool:
        return without_rule(r) or any(h["dur"] <= longest and h["end_max"] >= sure and h["intent"] is None
                                      for h in r["hyps"])

    def false_starts(fn) -> int:
        return sum(fn(r) for r in neg)

    print(f"\n{len(pos)} trigger utterances ({len(bare)} of them \"calf cramp\" alone), "
          f"{hours:.2f} hours without a trigger\n")
    print("| rule | triggers started | \"calf cramp\" alone | false starts (per hour) |")
    print("|---|---|---|---|")
    fs = false_starts(without_rule)
    print(f"| spotter and confirmed grammar triggers only | {sum(map(without_rule, pos))} | "
          f"{sum(map(without_rule, bare))} | {fs} ({fs / max(hours, 1e-9):.2f}) |")
    for sure in (0.9, 0.94, 0.97):
        for longest in (0.9, 1.05, 1.2, 1.5):
            fs = false_starts(lambda r, s=sure, n=longest: rule(r, s, n))
            print(f"| ... and alone at >= {sure:g} over <= {longest:g} s | "
                  f"{sum(rule(r, sure, longest) for r in pos)} | {sum(rule(r, sure, longest) for r in bare)} | "
                  f"{fs} ({fs / max(hours, 1e-9):.2f}) |")
    fs = sum(started(r) for r in neg)
    print(f"| the skill as it is | "
          f"{sum(map(started, pos))} | {sum(map(started, bare))} | {fs} ({fs / max(hours, 1e-9):.2f}) |")
    twice = [r for r in rows if r["kind"] == "twice"]

    def said_again(r: dict, bare_sure: float = spotting.BARE_AGAIN_SURE) -> bool:
        # two near triggers within REPEAT_S (asr.spotting._near_score; mirrored on recorded rows)
        near = [h for h in r["hyps"] if h["intent"] is None and h["text"] and (
            (h["dur"] <= spotting.ALONE_MAX_S and h["end_max"] >= spotting.ALONE_SURE)
            or (h["dur"] <= spotting.BARE_MAX_S and h.get("bare_p", 0.0) >= bare_sure))]
        return any(b["start"] - (a["start"] + a["dur"]) <= spotting.REPEAT_S for a, b in zip(near, near[1:]))

    parser = IntentParser()
    goes_on = [h for r in neg for h in r["hyps"] if h["intent"] == "still_cramping"]
    named = [h for h in goes_on if "start" in parser.parse(h["text"]).also]
    print(f"\n\"It won't stop\", \"it's back\" and the like in speech with no trigger: {len(goes_on)}; with no cramp "
          f"heard the skill asks for one (coach, stop 36), but for {len(named)} with \"cramp\" in them "
          f"(\"it's still cramping\"), which start the routine")
    print(f"\nThe near trigger said again (two within {spotting.REPEAT_S:g} s, asr.spotting): false starts in "
          f"speech with no trigger {sum(map(said_again, neg))}")
    if twice:
        print(f"\"calf cramp\" said alone twice, 2-4 s apart, {len(twice)} voices: a routine started in "
              f"{sum(map(started, twice))} (without it: {sum(without_rule(r) for r in twice)})")
    bare_twice = [r for r in rows if r["kind"] == "bare_twice"]
    if bare_twice:  # (added in stop 35)
        print(f"\nA bare-word trigger said alone twice, 2-4 s apart, {len(bare_twice)} voices: a routine started in "
              f"{sum(map(started, bare_twice))} (the skill as it is, near at {spotting.BARE_AGAIN_SURE:g})\n")
        print("| the bare-word head makes a near trigger at | bare word twice started | "
              "false starts in speech with none |")
        print("|---|---|---|")
        for sure in (0.9, 0.95, 0.98, 0.99, 0.995, 1.01):
            print(f"| {'never' if sure > 1 else f'{sure:g}'} | "
                  f"{sum(said_again(r, sure) or (started(r) and not said_again(r)) for r in bare_twice)} | "
                  f"{sum(said_again(r, sure) or (started(r) and not said_again(r)) for r in neg)} |")
    said_alone(rows)
    safety_table(pos, neg, [r for r in rows if r["kind"] == "safety"], hours)
    command_table(rows, hours)
    bare_table(rows, hours, confirm)
    for r in neg:
        if started(r):
            log.info("false start in %s: %s", r["room"], [h["text"] for h in r["hyps"]][:6])


SAFETY = corpus.SAFETY_CLASSES


def bare_table(rows: list[dict], hours: float, confirm: float) -> None:
    """The bare-word triggers said alone ("cramp", "I have a cramp", ...): what started a routine,
    and what the bare-word head's rule (``asr.spotting._bare_trigger``) would start per threshold,
    with the utterances it is asked about (those with a grammar trigger the trigger head did not
    confirm or that failed its check) or with every short utterance whose words made nothing; and
    the commands and red flags said alone it would take for a trigger, and false starts in speech
    with none."""
    bare = [r for r in rows if r["kind"] == "bare"]
    if not bare:  # a file written before stop 34
        return
    said = [r for r in rows if r["kind"] in ("command", "safety")]
    neg = [r for r in rows if r["kind"] == "neg"]
    person = spotting.ABOUT_THE_PERSON - {"start"}

    def asked(h: dict, wide: bool) -> bool:
        if h["dur"] > spotting.BARE_MAX_S or "unverified" not in h:
            return False
        if h["intent"] == "start":
            return h["max"] < confirm
        if h["unverified"] and h["intent"] not in person:
            return True
        return wide and h["intent"] is None

    def fires(r: dict, sure: float, wide: bool) -> bool:
        return any(asked(h, wide) and h["bare_p"] >= sure for h in r["hyps"])

    print(f"\nBare-word triggers said alone: {len(bare)} in {len(set(r['voice'] for r in bare))} voices; a routine "
          f"started for {sum('start' in r['passed'] for r in bare)} (the skill as it is, bare-word head at "
          f"{spotting.BARE_SURE:g}); {len(said)} commands and red flags said alone; {hours:.2f} h with no trigger\n")
    print("| bare-word head asked about | at | bare words started | commands / red flags taken for it | "
          "false starts in speech with none |")
    print("|---|---|---|---|---|")
    for wide in (False, True):
        for sure in (0.5, 0.7, 0.8, 0.9, 0.95, 0.98):
            started = sum("start" in r["passed"] or fires(r, sure, wide) for r in bare)
            print(f"| {'every short utterance of no intent, too' if wide else 'grammar triggers unconfirmed or unverified'}"
                  f" | {sure:g} | {started} | {sum(fires(r, sure, wide) for r in said)} | "
                  f"{sum(fires(r, sure, wide) for r in neg)} |")
    for r in neg:
        if fires(r, spotting.BARE_SURE, False):
            log.info("bare-word false start in %s: %s", r["room"],
                     [(h["text"], h["bare_p"]) for h in r["hyps"] if h["bare_p"] >= spotting.BARE_SURE])


def _meant(row: dict, parser: IntentParser) -> str | None:
    """The intent of what was said in a clip ("head | tail")."""
    intent = parser.parse(row["text"].replace(" | ", " "))
    return intent.name if intent else None


def said_alone(rows: list[dict]) -> None:
    """Commands and red flags or emergencies said alone: how many reached the skill as the intent
    said (right), as another one only (wrong), or as nothing (missed), per room."""
    parser = IntentParser()
    for kind, name in (("command", "Commands"), ("safety", "Red flags and emergencies")):
        said = [r for r in rows if r["kind"] == kind]
        if not said:
            continue
        print(f"\n{name} said alone, what reached the skill (a routine running)\n")
        print("| room | right | wrong | missed |")
        print("|---|---|---|---|")
        for room in sorted({r["room"] for r in said}) + ["all"]:
            right = wrong = missed = 0
            for r in said:
                if room not in ("all", r["room"]):
                    continue
                meant = _meant(r, parser)
                got = [i for i in r["passed"] if i]
                right += meant in got
                wrong += bool(got) and meant not in got
                missed += not got
            print(f"| {room} | {right} of {right + wrong + missed} | {wrong} | {missed} |")


def safety_table(pos: list[dict], neg: list[dict], said: list[dict], hours: float) -> None:
    """A red flag or emergency the grammar recognizer placed in a short utterance that the trigger
    head scored high at its end and the safety head did not hear: "calf cramp" said alone comes
    back as "tingling" in some voices. What a rule taking such an utterance as the trigger would
    win on the bare phrase and lose on red flags said alone, and start in speech with none."""
    if not said:  # a file written before stop 31
        return
    bare = [r for r in pos if r["text"] == "calf cramp | "]
    parser = IntentParser()

    def rule(h: dict, sure: float, longest: float, heard_below: float) -> bool:
        return (h["intent"] in SAFETY and h["dur"] <= longest and h["end_max"] >= sure
                and not (h["safety"] == h["intent"] and h["safety_p"] >= heard_below))

    print(f"\nRed flags and emergencies said alone: {len(said)} in {len(set(r['voice'] for r in said))} voices; "
          f"the right one reached the skill for {sum(_meant(r, parser) in r['passed'] for r in said)}. \"calf cramp\" "
          f"said alone came back as one for {sum(any(i in SAFETY for i in r['passed']) for r in bare)} of {len(bare)}; "
          f"{hours:.2f} h of speech with no trigger (the skill's own sentences name red flags)\n")
    print("| a placed red flag or emergency taken as the trigger when | \"calf cramp\" alone saved | "
          "red flags said alone lost | false starts in speech with none |")
    print("|---|---|---|---|")
    for sure in (0.9, 0.94, 0.97, 0.99):
        for longest in (1.05, 1.5):
            for below in (0.5, 0.9):
                def hits(r: dict, sure: float = sure, longest: float = longest, below: float = below) -> bool:
                    return any(rule(h, sure, longest, below) for h in r["hyps"])
                print(f"| end >= {sure:g}, <= {longest:g} s, safety head under {below:g} for it | "
                      f"{sum(hits(r) and any(i in SAFETY for i in r['passed']) for r in bare)} | "
                      f"{sum(hits(r) for r in said)} | {sum(map(hits, neg))} |")
    for r in said:
        if any(rule(h, 0.94, 1.5, 0.9) for h in r["hyps"]):
            log.info("a red flag said alone the rule would take: %s %s %s", r["voice"], r["text"],
                     [(h["text"], h["end_max"], h["safety"], h["safety_p"]) for h in r["hyps"]])


def command_table(rows: list[dict], hours: float) -> None:
    """A command the grammar recognizer placed in a short utterance with nothing running ("help
    done" for "calf cramp", "done" for "cramp" in some voices), taken as the trigger where the
    trigger head scored its end high and the bare-word head heard a "cramp", or the bare-word head
    alone was all but certain over a single word's length, and the command head did not hear the
    command (``SpottingRecognizer._misheard_command``): what such a rule would win on trigger utterances
    that started nothing, and take from commands said alone and from speech with no trigger (the
    utterance counts where the spotter did not fire in it, as the skill judges it)."""
    parser = IntentParser()
    commands = set(corpus.COMMAND_CLASSES)

    def spotted(r: dict, h: dict) -> bool:
        lo, hi = h["start"] - spotting.SPAN_MARGIN_S, h["start"] + h["dur"] + spotting.SPAN_MARGIN_S
        return any(lo <= t and t - TriggerSpotter.PHRASE_S <= hi for t in r["fired"])

    def rule(h: dict, sure: float, bare: float | None, doubted: float, word_s: float | None) -> bool:
        if h["intent"] not in commands or (h.get("placed_p") or 0.0) >= doubted or spotting.takes_back_beside(parser, h["text"]):
            return False
        both = (h["dur"] <= spotting.MISHEARD_MAX_S and h["end_max"] >= sure
                and (bare is None or h.get("bare_p", 0.0) >= bare))
        return both or (word_s is not None and h["dur"] <= word_s
                        and h.get("bare_p", 0.0) >= spotting.BARE_ALONE_SURE)

    triggers = [r for r in rows if r["kind"] in ("pos", "twice", "bare", "bare_twice")]
    said = [r for r in rows if r["kind"] == "command"]
    neg = [r for r in rows if r["kind"] == "neg"]
    print(f"\nCommands placed where a trigger was said: {len(triggers)} trigger utterances (sentences, "
          f"\"calf cramp\" alone and twice, bare words alone and twice), {len(said)} commands said alone, "
          f"{hours:.2f} h of speech with no trigger\n")
    print("| a placed command taken as the trigger when | trigger utterances that started nothing, saved | "
          "commands said alone taken | false starts in speech with none |")
    print("|---|---|---|---|")
    doubted = spotting.OVERRIDE_DOUBTED
    for sure, bare, under, word_s in ((0.94, None, 1.01, None), (0.94, 0.9, 1.01, None), (0.94, 0.9, doubted, None),
                                      (0.9, 0.9, doubted, None), (0.94, 0.9, doubted, 0.4), (0.94, 0.9, doubted, 0.6),
                                      (0.94, 0.9, doubted, 0.8), (0.94, 0.9, doubted, spotting.MISHEARD_MAX_S)):
        def hits(r: dict, sure: float = sure, bare: float | None = bare, under: float = under,
                 word_s: float | None = word_s) -> bool:
            return any(not spotted(r, h) and rule(h, sure, bare, under, word_s) for h in r["hyps"])
        name = (f"end >= {sure:g}" + ("" if bare is None else f", bare-word head >= {bare:g}")
                + ("" if under > 1 else f", command head under {under:g}")
                + ("" if word_s is None else f"; or the bare-word head >= {spotting.BARE_ALONE_SURE:g} "
                   f"over <= {word_s:g} s"))
        print(f"| {name} | {sum(hits(r) and 'start' not in r['passed'] for r in triggers)} | "
              f"{sum(map(hits, said))} | {sum(map(hits, neg))} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--minutes", type=float, default=60.0, help="minutes of speech with no trigger")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write every clip's utterances here (JSON Lines)")
    ap.add_argument("--table", type=Path, nargs="+", default=None, help="only print the table of these files")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.table:
        table([json.loads(line) for f in args.table for line in f.read_text().splitlines()])
        return 0
    todo = jobs(args.split, args.minutes, args.seed)
    rows: list[dict] = []
    out = args.out.open("w") if args.out else None
    with mp.get_context("fork").Pool(args.workers) as pool:
        for i, row in enumerate(pool.imap(_job, todo), 1):
            if row is None:
                continue
            rows.append(row)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()
            if i % 50 == 0:
                log.info("%d/%d clips", i, len(todo))
    table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
