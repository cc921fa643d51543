#!/usr/bin/env python3
"""Train the command head: which short command ("stop", "next", "it's gone", ...) just ended;
with ``--safety``, the safety head: which red flag or emergency just ended; with ``--bare``, the
bare-word head: whether a trigger ending in "cramp" or "cramping" ended the utterance.

    python scripts/train_commands.py data --split train --out build/commands   # clips -> embeddings
    python scripts/train_commands.py data --split dev   --out build/commands
    python scripts/train_commands.py train --data build/commands               # -> data/spotter/command_head.npz
    python scripts/train_commands.py ensemble a.npz b.npz --out c.npz          # heads averaged (tried, stop 26)
    python scripts/train_commands.py data --safety --split train --out build/safety   # red flags, emergencies
    python scripts/train_commands.py train --safety --data build/safety \
        --none-from build/commands --none-from build/spotter                   # -> build/safety/safety_head.npz
    python scripts/train_commands.py data --bare --split train --out build/bare      # "I have a cramp", then quiet
    python scripts/train_commands.py train --bare --data build/bare                 # -> build/bare/bare_head.npz
    python scripts/train_commands.py smoke                                     # the whole path, tiny

The head reads the same 16 speech embeddings as the trigger head (``asr.spotter``) and gives
a probability for each command of ``spottercorpus.COMMAND_CLASSES`` and for "none". It is
trained the way the trigger head is (``scripts/train_spotter.py``, whose data helpers and
perceptron it shares): commands in the split's voices, often with a filler before or after
("okay stop", "next please"), in rooms, over fan, pink, babble and TV-like noise, and over the
skill's own voice as a loudspeaker's echo leaves it; negatives are everyday sentences, the
skill's own sentences in its own voice and in others, near misses ("don't stop", "I'm not
fine") and every phrase of the other intents. The decision threshold is chosen on the dev
split: the one that rescues most commands while wrong ones stay at or under ``--max-wrong``
of the commands and false ones under ``--dev-fa-per-hour`` (``asr.spotting`` consults the
head only for utterances the grammar recognizer heard and could not place, in a routine).

The safety head is trained alike on red flags and emergencies ("oh no, my chest is tight",
"my leg is swollen please"). ``--none-from`` adds another head's positive clips as "none": the
commands and the triggers said with the same fillers. Without them the head tied "please" and
"uh" to its own phrases and was sure of an emergency in "uh, repeat that, please" (stop 27,
docs/commands.md).

The bare-word head (stop 34) has one class: a trigger whose last word is "cramp" or "cramping"
("cramp", "I have a cramp", "ow, cramp", a quarter of the time "calf cramp" and its kin), a plea
after it at times, said with quiet after it. Its frames are positives only from 0.24 to 0.64 s
after the utterance ended (``bare_labels``): at the moment "cramp" ends, "the cramp is gone"
sounds the same. Negatives are everyday sentences, every other intent's phrases, the skill's own
sentences (not those ending in "cramp": "say calf cramp"), and sentences with "cramp" or a word
that sounds like it ("the cramp is gone", "my cramp went away", "we went camping", "a lamp"),
and, said alone with quiet after as a trigger is, the words that undo it ("no more cramp",
"cramp gone": ``corpus.BARE_FOOLS``, "none" throughout).
The skill asks it only about utterances the grammar recognizer heard a trigger in
(``asr.spotting``), at a threshold chosen there on dev runs of the whole skill; the head's own
threshold (chosen here on dev frames) is not used.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import train_spotter as ts  # noqa: E402

from voice_skill.asr import spotter as sp  # noqa: E402
from voice_skill.audio.pcm import SAMPLE_RATE  # noqa: E402
from voice_skill.devtools import spottercorpus as corpus  # noqa: E402
from voice_skill.devtools import speechgen  # noqa: E402
from voice_skill.core.intents import IntentParser  # noqa: E402
from voice_skill.errors import UsageError  # noqa: E402

log = logging.getLogger("train_commands")
CLASSES = corpus.COMMAND_CLASSES


# seconds after the end of a bare-word trigger's utterance where its frames are positives, and
# around it (before, after) where they are not trained on
BARE_POS_S = (0.24, 0.64)
BARE_IGNORE_S = (0.5, 1.2)
# for every bare-word trigger clip, this many of ``corpus.BARE_FOOLS`` ("no more cramp") said alike
BARE_FOOL_SHARE = 0.3
#: ``data --talk-rooms``: every clip over a crowd or a TV this many dB below the speech, where the
#: command head heard least (docs/commands.md, stop 40)
TALK_ROOMS = ("babble", "tv")
TALK_SNR_DB = (0.0, 15.0)


def classes_of(kind: str) -> tuple[str, ...]:
    """The head's classes after "none" for the head ``kind`` this script trains: the commands
    ("commands"), the red flag and the emergency ("safety", ``--safety``), or the bare-word
    trigger ("bare", ``--bare``)."""
    return {"commands": CLASSES, "safety": corpus.SAFETY_CLASSES, "bare": corpus.BARE_CLASSES}[kind]


def bare_labels(n: int, end_s: float) -> np.ndarray:
    """Frame labels for a bare-word trigger clip whose speech ends at ``end_s``: the head is to be
    sure only once a moment of quiet has followed the word (``BARE_POS_S`` after the end),
    not while it ends (where "the cramp is gone" sounds the same); frames around that are not
    trained on, the others are "none"."""
    labels = np.zeros(n, dtype=np.int8)
    d = np.array([sp.embedding_end_s(j) for j in range(n)]) - end_s
    labels[(d >= -BARE_IGNORE_S[0]) & (d <= BARE_IGNORE_S[1])] = -1
    labels[(d >= BARE_POS_S[0]) & (d <= BARE_POS_S[1])] = 1
    return labels


def own_voice_bed(seconds: float, rng: np.random.Generator, sentences: list[str]) -> np.ndarray:
    """The skill's own sentences in one of its own voices (espeak-ng or the natural voice, at
    one of its rates), back to back, through a room: what a microphone by the loudspeaker hears
    while the coach speaks."""
    parts, total = [], 0
    own_voices = corpus.own_voices()
    voice = own_voices[int(rng.integers(len(own_voices)))]
    while total < seconds * SAMPLE_RATE:
        a = speechgen.synthesize(sentences[int(rng.integers(len(sentences)))], voice)
        parts.append(a)
        total += len(a) + int(0.4 * SAMPLE_RATE)
    bed = corpus.join(parts, rng, (0.2, 0.9))
    return np.clip(corpus.reverberate(bed, corpus.room_response(rng, float(rng.uniform(0.2, 0.6)))),
                   -32768, 32767).astype(np.int16)


def in_routine(clip: np.ndarray, rng: np.random.Generator, noise_voices: list[str], own: list[str],
               own_share: float, clean_share: float, talk: bool = False) -> tuple[np.ndarray, str]:
    """A clip as heard during a routine: over the skill's echo (``own_share``), in a quiet
    room (``clean_share``) or over noise, at a random level; with ``talk``, always over a crowd or
    a TV (``TALK_ROOMS``) at ``TALK_SNR_DB``."""
    gain, floor = float(rng.uniform(-18, 0)), float(rng.uniform(-75, -55))
    r = None if talk else rng.random()
    if r is not None and r < own_share:
        sir = float(rng.uniform(-3.0, 15.0))
        bed = own_voice_bed(len(clip) / SAMPLE_RATE + 0.5, rng, own)
        start = int(rng.integers(max(1, len(bed) - len(clip))))
        mixed = speechgen.mix_at_snr(clip, bed[start:start + len(clip)], sir)
        audio = corpus.in_room(mixed, rng, None, None, 0, noise_voices, reverb=0.0, gain_db=gain, floor_db=floor)
        return audio, f"own voice {sir:.0f} dB"
    if talk:
        kind, snr = TALK_ROOMS[int(rng.integers(len(TALK_ROOMS)))], float(rng.uniform(*TALK_SNR_DB))
    else:
        kind, snr = (None, None) if r < own_share + clean_share else ts._condition(rng, 0.0)
    audio = corpus.in_room(clip, rng, snr, kind, int(rng.integers(1 << 30)), noise_voices, reverb=0.35,
                           gain_db=gain, floor_db=floor)
    return audio, "clean" if kind is None else f"{kind} {snr:.0f} dB"


def positive_shard(split: str, seed: int, n_clips: int, quick: bool = False, kind: str = "commands",
                   talk: bool = False) -> dict:
    """``n_clips`` of the head's phrases in the split's voices and rooms (with ``talk``, over a
    crowd or a TV only: ``in_routine``). A bare-word trigger is
    said with quiet after it, mostly when no routine runs (less often over the skill's voice), and
    beside them ``BARE_FOOL_SHARE`` as many phrases that undo the word ("no more cramp"), said
    the same way and "none" throughout."""
    rng = np.random.default_rng(seed)
    voices, noise_voices = ts.shard_voices(split, quick)
    own = corpus.own_sentences()
    emb, labels, meta = [], [], []
    classes = classes_of(kind)
    bare = kind == "bare"
    texts = (corpus.bare_trigger_texts(split, rng, n_clips) if bare
             else corpus.spoken_command_texts(split, rng, n_clips, safety=kind == "safety"))
    if bare:  # and what sounds like one and is none, said the same way
        texts += corpus.bare_fool_texts(split, rng, int(round(n_clips * BARE_FOOL_SHARE)))
    for head, tail, intent in texts:
        voice = voices[int(rng.integers(len(voices)))]
        try:
            clip, end_s = corpus.trigger_clip(head, tail, voice, rng, speed_share=0.3, lead_s=ts.LONG_LEAD_S,
                                              trail_s=(0.9, 1.6) if bare else (0.6, 1.2))
        except speechgen.SpeechGenError as exc:
            log.warning("skipping %r in %s: %s", head, voice, exc)
            continue
        audio, condition = in_routine(clip, rng, noise_voices, own, own_share=0.1 if bare else 0.25,
                                      clean_share=0.3 if bare else 0.25, talk=talk)
        e = sp.clip_embeddings(ts._models(), audio)
        if intent == "none":
            lab = ts.frame_labels(len(e), None)
        else:
            lab = bare_labels(len(e), end_s) if bare else ts.frame_labels(len(e), end_s)
            lab[lab == 1] = classes.index(intent) + 1
        emb.append(e.astype(np.float16))
        labels.append(lab)
        meta.append({"voice": voice, "text": f"{head} | {tail}", "intent": intent, "condition": condition})
    return {"emb": emb, "labels": labels, "meta": meta}


def negative_shard(split: str, seed: int, seconds: float, quick: bool = False, kind: str = "commands",
                   talk: bool = False) -> dict:
    """About ``seconds`` of what a routine hears that is no command (no safety phrase, no bare-word
    trigger), in ~20 s clips (with ``talk``, over a crowd or a TV only, the coach never alone).
    For the bare-word head the skill's sentences that end in "cramp"
    ("say calf cramp") are left out: said by a person, they would be a trigger."""
    rng = np.random.default_rng(seed)
    voices, noise_voices = ts.shard_voices(split, quick)
    everyday = corpus.everyday_sentences(split, IntentParser(), limit=200 if quick else None)
    own = corpus.own_sentences()
    if kind == "bare":
        own = [t for t in own if not corpus.ends_with_cramp(t)]
        other, near = corpus.bare_negatives(split)
        pools = [(everyday, 0.35), (other, 0.2), (near, 0.3), (own, 0.15)]
    else:
        pools = [(everyday, 0.45), (corpus.command_negatives(split, safety=kind == "safety"), 0.35), (own, 0.2)]
    emb, labels, meta = [], [], []
    done = 0.0
    while done < seconds:
        if not talk and rng.random() < 0.3:  # the coach speaking, nobody else
            audio = own_voice_bed(20.0, rng, own)
            audio, condition = in_routine(audio, rng, noise_voices, own, own_share=0.0, clean_share=0.5)
            text = "<own voice>"
        else:
            parts, texts = [], []
            while sum(len(p) for p in parts) < 18 * SAMPLE_RATE:
                r, acc, chosen = rng.random(), 0.0, pools[-1][0]
                for candidate, share in pools:
                    acc += share
                    if r < acc:
                        chosen = candidate
                        break
                for a, t, _ in corpus.stream_texts(chosen, voices, rng, 0.01):
                    parts.append(a)
                    texts.append(t)
            audio, condition = in_routine(corpus.join(parts, rng, (0.1, 1.2)), rng, noise_voices, own,
                                          own_share=0.3, clean_share=0.3, talk=talk)
            text = " / ".join(texts)
        e = sp.clip_embeddings(ts._models(), audio)
        emb.append(e.astype(np.float16))
        labels.append(ts.frame_labels(len(e), None))
        meta.append({"text": text[:200], "condition": condition, "seconds": len(audio) / SAMPLE_RATE})
        done += len(audio) / SAMPLE_RATE
    return {"emb": emb, "labels": labels, "meta": meta}


#: What plays in the room with nobody speaking to the skill, and how often: a television most
#: (a talker, music-like tones), a crowd, a fan, plain noise.
BED_KINDS = (("tv", 0.5), ("babble", 0.3), ("fan", 0.1), ("pink", 0.1))


def bed_shard(split: str, seed: int, seconds: float, quick: bool = False) -> dict:
    """About ``seconds`` of the room's own sound with nobody speaking to the skill, in 20 s clips:
    a TV or a crowd alone, at any level, a third of them over the skill's own voice. In the
    negatives above a TV's talk is only ever behind a speaker; alone and loud it made the head
    hear "pause" in it (docs/commands.md, stop 28)."""
    rng = np.random.default_rng(seed)
    _, noise_voices = ts.shard_voices(split, quick)
    own = corpus.own_sentences()
    kinds, shares = zip(*BED_KINDS)
    emb, labels, meta = [], [], []
    done = 0.0
    while done < seconds:
        kind = kinds[int(rng.choice(len(kinds), p=shares))]
        bed = corpus.noise(kind, 20.0, int(rng.integers(1 << 30)), noise_voices)
        gain, floor = float(rng.uniform(-24, 12)), float(rng.uniform(-75, -55))
        condition = kind
        if rng.random() < 1 / 3:
            sir = float(rng.uniform(-6.0, 15.0))
            bed = speechgen.mix_at_snr(own_voice_bed(20.5, rng, own)[:len(bed)], bed, sir)
            condition = f"{kind} under own voice {sir:.0f} dB"
        audio = corpus.in_room(bed, rng, None, None, 0, noise_voices, reverb=0.35, gain_db=gain, floor_db=floor)
        e = sp.clip_embeddings(ts._models(), audio)
        emb.append(e.astype(np.float16))
        labels.append(ts.frame_labels(len(e), None))
        meta.append({"text": f"<{kind}>", "condition": condition, "seconds": len(audio) / SAMPLE_RATE})
        done += len(audio) / SAMPLE_RATE
    return {"emb": emb, "labels": labels, "meta": meta}


def _job(args: tuple) -> tuple[str, int]:
    part, split, seed, size, out, quick, kind, talk = args
    path = Path(out) / f"{split}-{part}-{seed:04d}.npz"
    if path.exists():
        return str(path), 0
    shard = (positive_shard(split, seed, int(size), quick, kind, talk) if part == "pos"
             else bed_shard(split, seed, size, quick) if part == "bed"
             else negative_shard(split, seed, size, quick, kind, talk))
    lengths = np.array([len(e) for e in shard["emb"]], dtype=np.int64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, emb=np.concatenate(shard["emb"]), labels=np.concatenate(shard["labels"]), lengths=lengths,
             meta=json.dumps(shard["meta"]))
    tmp.rename(path)
    return str(path), int(lengths.sum())


def make_data(split: str, out: Path, pos_clips: int, neg_hours: float, workers: int, seed: int,
              quick: bool = False, kind: str = "commands", bed_hours: float = 0.0, talk: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    per_pos, per_neg = 100, 400.0
    jobs = [("pos", split, seed + i, per_pos, str(out), quick, kind, talk)
            for i in range(pos_clips // per_pos if pos_clips >= per_pos else int(pos_clips > 0))]
    jobs += [("neg", split, seed + 5000 + i, per_neg, str(out), quick, kind, talk)
             for i in range(int(np.ceil(neg_hours * 3600 / per_neg)))]
    jobs += [("bed", split, seed + 7000 + i, per_neg, str(out), quick, kind, False)
             for i in range(int(np.ceil(bed_hours * 3600 / per_neg)))]
    if quick:
        jobs = [(k, s, sd, 20 if k == "pos" else 40.0, *rest) for k, s, sd, _, *rest in jobs[:1] + jobs[-1:]]
    # interleave positives and negatives so that a run cut short still has both
    pos, neg = [j for j in jobs if j[0] == "pos"], [j for j in jobs if j[0] != "pos"]
    order = [j for pair in zip(pos, neg) for j in pair] + pos[len(neg):] + neg[len(pos):]
    t0 = time.monotonic()
    with mp.get_context("fork").Pool(workers) as pool:
        for i, (path, frames) in enumerate(pool.imap_unordered(_job, order), 1):
            log.info("%d/%d %s (%d frames, %.0f s)", i, len(order), Path(path).name, frames, time.monotonic() - t0)


# ---------------------------------------------------------------- decisions


def detections(probs: np.ndarray, threshold: float, min_frames: int) -> list[tuple[int, int]]:
    """(frame, class index from 1) where the streaming spotter would fire (``spotter.Decision``)."""
    rules = [sp.Decision(threshold, min_frames) for _ in range(probs.shape[1] - 1)]
    return [(i, c + 1) for i, p in enumerate(probs) for c, rule in enumerate(rules) if rule.fires(float(p[c + 1]))]


def evaluate(probs: np.ndarray, labels: np.ndarray, rows: np.ndarray, threshold: float, min_frames: int) -> dict:
    right = wrong = missed = false = 0
    neg_frames = 0
    for clip in ts.split_clips(rows):
        lab = labels[rows[clip]]
        fired = detections(probs[clip], threshold, min_frames)
        cls = int(lab.max()) if (lab > 0).any() else 0
        near = [c for f, c in fired if lab[f] != 0]
        false += sum(1 for f, c in fired if lab[f] == 0)
        if cls:
            if not near:
                missed += 1
            elif near[0] == cls:
                right += 1
            else:
                wrong += 1
        neg_frames += int((lab == 0).sum())
    n = right + wrong + missed
    hours = neg_frames * sp.HOP_S / 3600
    return {"right": right / max(n, 1), "wrong": wrong / max(n, 1), "missed": missed / max(n, 1), "commands": n,
            "false": false, "hours": hours, "fa_per_hour": false / max(hours, 1e-9)}


def choose_threshold(probs, labels, rows, max_wrong: float, fa_per_hour: float) -> dict:
    best = None
    for min_frames in (1,):  # the skill takes the highest probability within an utterance
        for th in np.round(np.arange(0.40, 1.0, 0.01), 3):
            r = evaluate(probs, labels, rows, float(th), min_frames)
            if r["wrong"] <= max_wrong and r["fa_per_hour"] <= fa_per_hour and (best is None or r["right"] > best["right"]):
                best = {**r, "threshold": float(th), "min_frames": min_frames}
    return best or {**evaluate(probs, labels, rows, 0.99, 2), "threshold": 0.99, "min_frames": 2}


def probs_of(head_or_model, emb, rows, mean=None, scale=None, batch: int = 8192) -> np.ndarray:
    out = []
    for i in range(0, len(rows), batch):
        w = ts.windows(emb, rows[i:i + batch])
        if isinstance(head_or_model, sp.SpotterHead):
            out.append(head_or_model.probabilities(w))
        else:
            out.append(ts.softmax(head_or_model.forward((w.reshape(len(w), -1) - mean) * scale)))
    return np.concatenate(out)


# ---------------------------------------------------------------- commands


def with_none_from(data: Path, split: str, others: list[Path], shards: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A split's shards, and the first ``shards`` positive shards of each folder in ``others`` with
    every window labelled "none": another head's phrases said with their fillers ("uh hold on
    please" for a safety head, whose own positives end in "please" as often)."""
    emb, labels, ends = ts.load_data(data, split)
    for folder in others:
        e, lab, n = ts.load_data(folder, split, "pos", shards)
        lab[n] = 0
        emb, labels, ends = (np.concatenate([emb, e]), np.concatenate([labels, lab]),
                             np.concatenate([ends, n + len(emb)]))
    return emb, labels, ends


def cmd_train(args) -> None:
    rng = np.random.default_rng(args.seed)
    emb, labels, ends = with_none_from(args.data, "train", args.none_from, args.none_shards)
    rows = ends[labels[ends] >= 0]
    y = labels[rows].astype(np.int64)
    log.info("train: %d windows, %d positive", len(rows), int((y > 0).sum()))
    sample = ts.windows(emb, rng.choice(rows, min(len(rows), 50000), replace=False)).reshape(-1, ts.WINDOW * sp.EMB_DIM)
    mean = sample.mean(0).astype(np.float32)
    scale = (1 / (sample.std(0) + 1e-3)).astype(np.float32)
    classes = classes_of(args.kind)
    model = ts.MLP(ts.WINDOW * sp.EMB_DIM, rng, n_out=len(classes) + 1)
    n_pos = max(int((y > 0).sum()), 1)
    base = np.where(y > 0, (len(y) - n_pos) / n_pos * 0.25, 1.0).astype(np.float32)

    def fit(epochs: int, weights: np.ndarray, lr: float) -> None:
        for epoch in range(epochs):
            order = rng.permutation(len(rows))
            losses = []
            for i in range(0, len(order), 1024):
                idx = order[i:i + 1024]
                x = (ts.windows(emb, rows[idx]).reshape(len(idx), -1) - mean) * scale
                losses.append(model.step(x, y[idx], weights[idx], lr * (0.5 ** (epoch // 4)), rng))
            log.info("epoch %d: loss %.4f", epoch + 1, float(np.mean(losses)))

    fit(args.epochs, base, 1e-3)
    # Hard negatives: the "none" windows the first model takes most for a command, weighted up.
    p = probs_of(model, emb, rows, mean, scale)
    cmd = 1.0 - p[:, 0]
    neg = y == 0
    cut = np.quantile(cmd[neg], 0.995)
    weights = base * np.where(neg & (cmd >= cut), args.hard_weight, 1.0).astype(np.float32)
    log.info("hard negatives: %d windows above %.3f", int((neg & (cmd >= cut)).sum()), cut)
    fit(max(2, args.epochs // 2), weights, 5e-4)
    meta = {"window": ts.WINDOW, "hidden": list(ts.HIDDEN), "seed": args.seed, "epochs": args.epochs,
            "classes": ["none", *classes], "trained_windows": int(len(rows)),
            "trained_positive_windows": int((y > 0).sum())}
    head = sp.SpotterHead(tuple(q.copy() for q in model.params), mean, scale, meta)
    try:
        demb, dlab, dends = with_none_from(args.data, "dev", args.none_from, args.none_shards)
    except SystemExit as exc:
        log.warning("%s; keeping the default threshold", exc)
        dev = {"threshold": 0.9, "min_frames": 2}
    else:
        drows = dends[dlab[dends] >= 0]
        dev = choose_threshold(probs_of(head, demb, drows), dlab, drows, args.max_wrong, args.dev_fa_per_hour)
    log.info("dev: %s", dev)
    meta.update(threshold=dev["threshold"], min_frames=dev["min_frames"],
                dev={k: (round(v, 4) if isinstance(v, float) else v) for k, v in dev.items()})
    head = sp.SpotterHead(head.weights, mean, scale, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out)
    log.info("wrote %s", args.out)


def cmd_ensemble(args) -> None:
    """Heads trained alike (other seeds) as one, their probabilities averaged, with the
    threshold chosen on the dev split for the average (as ``train_spotter.py ensemble``)."""
    head, records = ts.averaged(args.heads)
    demb, dlab, dends = ts.load_data(args.data, "dev")
    drows = dends[dlab[dends] >= 0]
    dev = choose_threshold(probs_of(head, demb, drows), dlab, drows, args.max_wrong, args.dev_fa_per_hour)
    log.info("dev: %s", dev)
    meta = dict(head.meta, threshold=dev["threshold"], min_frames=dev["min_frames"],
                dev={k: (round(v, 4) if isinstance(v, float) else v) for k, v in dev.items()}, members=records)
    replace(head, meta=meta).save(args.out)
    log.info("wrote %s (%d perceptrons)", args.out, len(head.members()))


def cmd_report(args) -> None:
    """Right, wrong and missed per class and condition on a split's stored clips."""
    head = sp.SpotterHead.load(args.head)
    emb, labels, ends = ts.load_data(args.data, args.split)
    rows = ends[labels[ends] >= 0]
    probs = probs_of(head, emb, rows)
    r = evaluate(probs, labels, rows, head.threshold, head.min_frames)
    print(f"{args.split}: threshold {head.threshold}, min_frames {head.min_frames}: "
          f"right {r['right']:.1%}, wrong {r['wrong']:.1%}, missed {r['missed']:.1%} of {r['commands']} commands; "
          f"{r['false']} false commands in {r['hours']:.2f} h ({r['fa_per_hour']:.2f}/h)")
    for th in (0.6, 0.7, 0.8, 0.9, 0.95):
        r = evaluate(probs, labels, rows, th, head.min_frames)
        print(f"  at {th}: right {r['right']:.1%}, wrong {r['wrong']:.1%}, {r['fa_per_hour']:.2f} false/h")


def cmd_smoke(args) -> None:
    """The whole path on a few seconds of espeak-ng speech: data, training (two seeds), the two
    perceptrons as one head, a head that loads."""
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_data("train", folder, 20, 0.02, 1, args.seed, quick=True)
        make_data("dev", folder, 20, 0.02, 1, args.seed, quick=True)
        ns = argparse.Namespace(data=folder, out=folder / "head.npz", seed=args.seed, epochs=2, hard_weight=3.0,
                                max_wrong=0.01, dev_fa_per_hour=1.0, kind="commands", none_from=[],
                                none_shards=0)
        cmd_train(ns)
        cmd_train(argparse.Namespace(**{**vars(ns), "out": folder / "head-2.npz", "seed": args.seed + 1}))
        cmd_ensemble(argparse.Namespace(heads=[folder / "head.npz", folder / "head-2.npz"], data=folder,
                                        out=folder / "both.npz", max_wrong=0.01, dev_fa_per_hour=1.0))
        head = sp.SpotterHead.load(folder / "both.npz")
        print(json.dumps({"classes": head.classes, "threshold": head.threshold, "perceptrons": len(head.members())}))


def _kind_options(parser: argparse.ArgumentParser) -> None:
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--safety", action="store_true", help="red flags and emergencies instead of commands")
    kind.add_argument("--bare", action="store_true",
                      help="the bare-word trigger (\"cramp\", \"I have a cramp\") at an utterance's end")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="render a split's clips and store their embeddings")
    d.add_argument("--split", choices=("train", "dev", "test"), required=True)
    d.add_argument("--out", type=Path, default=None,
                   help="default: build/commands; with --safety, build/safety; with --bare, build/bare")
    d.add_argument("--pos-clips", type=int, default=None)
    d.add_argument("--neg-hours", type=float, default=None)
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--seed", type=int, default=1)
    _kind_options(d)
    d.add_argument("--bed-hours", type=float, default=0.0,
                   help="hours of a TV, a crowd or a fan alone (nobody speaking to the skill), as 'none'")
    d.add_argument("--talk-rooms", action="store_true",
                   help="every clip (positives and negatives) over a crowd or a TV at 0-15 dB")
    t = sub.add_parser("train", help="fit the head and choose its threshold on the dev split")
    t.add_argument("--data", type=Path, default=ROOT / "build" / "commands")
    t.add_argument("--out", type=Path, default=None,
                   help="default: the package's command_head.npz; with --safety or --bare, build/<kind>/<kind>_head.npz")
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument("--hard-weight", type=float, default=4.0)
    t.add_argument("--max-wrong", type=float, default=0.005)
    t.add_argument("--dev-fa-per-hour", type=float, default=15.0)
    t.add_argument("--seed", type=int, default=1)
    _kind_options(t)
    t.add_argument("--none-from", type=Path, action="append", default=[],
                   help="another head's data folder whose positive clips count as 'none' (repeatable)")
    t.add_argument("--none-shards", type=int, default=60, help="how many positive shards of each --none-from")
    e = sub.add_parser("ensemble", help="average the probabilities of several heads; threshold chosen on dev")
    e.add_argument("heads", type=Path, nargs="+")
    e.add_argument("--data", type=Path, default=ROOT / "build" / "commands")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--max-wrong", type=float, default=0.005)
    e.add_argument("--dev-fa-per-hour", type=float, default=15.0)
    r = sub.add_parser("report", help="right, wrong and missed on a split's stored clips")
    r.add_argument("--data", type=Path, default=ROOT / "build" / "commands")
    r.add_argument("--split", default="test")
    r.add_argument("--head", type=Path, default=None)
    s = sub.add_parser("smoke", help="the whole path on a few seconds of audio")
    s.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.cmd in ("data", "train"):
        args.kind = "safety" if args.safety else "bare" if args.bare else "commands"
    if args.cmd == "train" and args.out is None:  # another head never replaces the shipped command head
        args.out = (ROOT / "voice_skill" / "data" / "spotter" / "command_head.npz" if args.kind == "commands"
                    else ROOT / "build" / args.kind / f"{args.kind}_head.npz")
    if args.cmd == "data" and args.out is None:  # one folder per head: shards never mix
        args.out = ROOT / "build" / args.kind
    if args.cmd == "data":
        defaults = {"train": (4000, 1.5), "dev": (800, 0.5), "test": (800, 0.5)}[args.split]
        make_data(args.split, args.out, args.pos_clips if args.pos_clips is not None else defaults[0],
                  args.neg_hours if args.neg_hours is not None else defaults[1], args.workers, args.seed,
                  kind=args.kind, bed_hours=args.bed_hours, talk=args.talk_rooms)
    else:
        try:
            {"train": cmd_train, "ensemble": cmd_ensemble, "report": cmd_report, "smoke": cmd_smoke}[args.cmd](args)
        except UsageError as exc:  # a head that is missing or no head: one line, nothing written
            print(f"train_commands: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
