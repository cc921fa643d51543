#!/usr/bin/env python3
"""Measure the trigger spotter on the test split: voices, texts and noises never trained or tuned on.

    python scripts/eval_spotter.py data                 # render the test set once (~15 min on two cores)
    python scripts/eval_spotter.py report               # the tables, for the shipped head (seconds)
    python scripts/eval_spotter.py report --head H.npz  # ... for another head
    python scripts/eval_spotter.py system --minutes 20  # the whole skill (spotter + PocketSphinx) on a sample
    python scripts/eval_spotter.py data --voices hibari:heart --set build/spotter-voices   # other voices'
    python scripts/eval_spotter.py report --set build/spotter-voices                       # triggers only
    python scripts/eval_spotter.py lead --split dev --clips 200 --extra 3   # a stream's start against hours in
    python scripts/eval_spotter.py alone --split test [HEAD.npz ...]        # "calf cramp" said alone, per voice
    python scripts/eval_spotter.py tails --split test       # a trigger with words after it, in one breath

``data`` stores the frozen feature models' embeddings of every test clip in ``build/spotter-test``,
so a new head is measured in seconds. Positives: each test voice says trigger sentences
(some with words after the trigger) in a quiet room and over fan, babble and TV-like noise
at 20, 10 and 5 dB. Negatives: at least ten hours of everyday sentences (fortune files no
training used) in the test voices, quiet and over TV-like sound and babble, plus every
sentence the skill says, every command with fillers, and near misses such as "the cramp is
gone". ``report`` prints recall per voice family and condition, false starts an hour per kind
of negative, and the time from the end of the phrase to the decision (audio clock). ``system``
runs recordings through the real session (``app.run_chunks``) with the spotter on and off, so
the old PocketSphinx path stands beside the new one. ``lead`` scores the same trigger clips as
made for training (0.3-1.2 s before the phrase, silence before the stream) and with ``--extra``
seconds more of their room first, as a skill that has been listening for hours hears them.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
import time
from collections import defaultdict
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

log = logging.getLogger("eval_spotter")
OUT = ROOT / "build" / "spotter-test"
CONDITIONS = [None, ("fan", 20), ("babble", 20), ("tv", 20), ("fan", 10), ("babble", 10), ("tv", 10),
              ("fan", 5), ("babble", 5), ("tv", 5)]


def cond_name(c) -> str:
    return "clean" if c is None else f"{c[0]} {c[1]} dB"


def _pos_job(args) -> str:
    index, voice, texts, seed, out, lead_s, others = args
    path = Path(out) / f"pos-{index:03d}.npz"
    if path.exists():
        return str(path)
    rng = np.random.default_rng(seed)
    # babble and TV-like sound of the other test voices; with ``others``, of other speakers only
    # (else flite slt's babble holds flite slt at 1.3 x and festival's HTS slt, the same speaker)
    noise_voices = [v for v in corpus.split_voices("test")
                    if v != voice and not (others and corpus.speaker(v) == corpus.speaker(voice))][:6]
    emb, labels, meta = [], [], []
    for head, tail in texts:
        try:
            clip, trigger_end = corpus.trigger_clip(head, tail, voice, rng, gap_s=(0.05, 0.2), lead_s=lead_s,
                                                    trail_s=(1.0, 1.5))
        except speechgen.SpeechGenError as exc:
            log.warning("skipping %r in %s: %s", head, voice, exc)
            continue
        for c in CONDITIONS:
            audio = corpus.in_room(clip, rng, None if c is None else c[1], None if c is None else c[0],
                                   int(rng.integers(1 << 30)), noise_voices, reverb=0.0,
                                   gain_db=float(rng.uniform(-12, 0)))
            e = sp.clip_embeddings(ts._models(), audio)
            emb.append(e.astype(np.float16))
            labels.append(ts.frame_labels(len(e), trigger_end))
            meta.append({"voice": voice, "family": corpus.voice_family(voice), "condition": cond_name(c),
                         "text": f"{head} | {tail}", "trigger_end_s": trigger_end})
    _save(path, emb, labels, meta)
    return str(path)


def _neg_job(args) -> str:
    index, kind, seconds, seed, out = args
    path = Path(out) / f"neg-{kind}-{index:03d}.npz"
    if path.exists():
        return str(path)
    rng = np.random.default_rng(seed)
    voices = corpus.split_voices("test")
    noise_voices = voices[:8]
    pools = {  # only the pool this shard needs is read (the fortune files are large)
        "everyday": lambda: corpus.everyday_sentences("test", IntentParser()),
        "own": corpus.own_sentences,
        "commands": lambda: [f"{f} {c}".strip() for c in corpus.command_texts() for f in ("", "okay", "um", "please")],
        "near": corpus.test_near_misses,
    }
    texts = pools["everyday" if kind.startswith("everyday") else kind]()
    own_voice = corpus.own_voices()  # what the skill speaks with: espeak-ng or the natural voice
    emb, labels, meta = [], [], []
    done = 0.0
    while done < seconds:
        parts, said = [], []
        for a, t, _ in corpus.stream_texts(texts, own_voice if kind == "own" and rng.random() < 0.5 else voices,
                                           rng, 25.0):
            parts.append(a)
            said.append(t)
        clip = corpus.join(parts, rng, (0.2, 1.2))
        c = None
        if kind == "everyday-tv":
            c = ("tv", float(rng.uniform(5, 20)))
        elif kind == "everyday-babble":
            c = ("babble", float(rng.uniform(5, 20)))
        audio = corpus.in_room(clip, rng, None if c is None else c[1], None if c is None else c[0],
                               int(rng.integers(1 << 30)), noise_voices, gain_db=float(rng.uniform(-12, 0)))
        e = sp.clip_embeddings(ts._models(), audio)
        emb.append(e.astype(np.float16))
        labels.append(ts.frame_labels(len(e), None))
        meta.append({"kind": kind, "seconds": len(audio) / SAMPLE_RATE, "texts": said[:50]})
        done += len(audio) / SAMPLE_RATE
    _save(path, emb, labels, meta)
    return str(path)


def _save(path: Path, emb, labels, meta) -> None:
    lengths = np.array([len(e) for e in emb], dtype=np.int64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, emb=np.concatenate(emb), labels=np.concatenate(labels), lengths=lengths, meta=json.dumps(meta))
    tmp.rename(path)


def _job(args):
    return _pos_job(args[1:]) if args[0] == "pos" else _neg_job(args[1:])


def cmd_data(args) -> None:
    out = args.set or OUT
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    jobs = []
    for i, voice in enumerate(args.voices or corpus.split_voices("test")):
        jobs.append(("pos", i, voice, corpus.trigger_texts("test", rng, args.texts_per_voice), args.seed + i, out,
                     tuple(args.lead), args.babble_of_others))
    if not args.voices:  # (the voices asked for get trigger clips only: recall, no false starts)
        # Ten hours and more of speech with no trigger, in 10-minute shards.
        hours = {"everyday": args.hours * 0.5, "everyday-tv": args.hours * 0.25,
                 "everyday-babble": args.hours * 0.25, "own": 0.5, "commands": 0.4, "near": 0.4}
        neg = [("neg", i, kind, 600.0, args.seed + 1000 + 100 * list(hours).index(kind) + i, out)
               for kind, h in hours.items() for i in range(max(1, int(round(h * 6))))]
        # the small kinds first, then the long ones interleaved, so a partial set has every kind
        neg.sort(key=lambda job: (job[2] in ("everyday", "everyday-tv", "everyday-babble"), job[1]))
        jobs += neg
    t0 = time.monotonic()
    with mp.get_context("fork").Pool(args.workers) as pool:
        for n, path in enumerate(pool.imap_unordered(_job, jobs), 1):
            log.info("%d/%d %s (%.0f s)", n, len(jobs), Path(path).name, time.monotonic() - t0)


def _clips(paths):
    """(embeddings with silence lead-in, labels, meta) per clip."""
    silence = sp.silence_embedding(ts._models()).astype(np.float32)
    for path in paths:
        with np.load(path) as d:
            emb, lab, lengths, meta = d["emb"], d["labels"], d["lengths"], json.loads(str(d["meta"]))
        start = 0
        for n, m in zip(lengths, meta):
            e = np.concatenate([np.repeat(silence[None], ts.WINDOW - 1, axis=0), emb[start:start + n].astype(np.float32)])
            yield e, lab[start:start + n], m
            start += n


def clip_scores(head: sp.SpotterHead, e: np.ndarray) -> np.ndarray:
    n = len(e) - (head.window - 1)
    idx = np.arange(n)[:, None] + np.arange(head.window)[None, :]
    return head.score(e[idx])


def cmd_report(args) -> None:
    folder = args.set or OUT
    head = sp.SpotterHead.load(args.head)
    denial = sp.SpotterHead.load(args.denial) if args.denial else None
    th = head.threshold if args.threshold is None else args.threshold
    mf = head.min_frames
    support = head.support if args.threshold is None else th
    print(f"head: {args.head or 'shipped'}; threshold {th:.4g}, {mf} frame(s) over {support:.4g}; "
          f"test set {folder.resolve().relative_to(ROOT) if folder.resolve().is_relative_to(ROOT) else folder}"
          + (f"; denial head {args.denial.name} at {denial.threshold:.4g}" if denial else ""))

    def kept(e: np.ndarray, fired: np.ndarray) -> np.ndarray:
        """The detections the denial head (if any) does not take back."""
        if denial is None or not len(fired):
            return fired
        return np.array([f for f in fired if denial.score(e[None, f:f + denial.window])[0] < denial.threshold],
                        dtype=np.int64)

    denied = 0
    hits: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    latency: list[float] = []
    early = 0
    for e, lab, m in _clips(sorted(folder.glob("pos-*.npz"))):
        s = clip_scores(head, e)
        all_fired = ts.detections(s, th, mf, support)
        fired = kept(e, all_fired)
        denied += len(all_fired) - len(fired)
        ok = [f for f in fired if lab[f] != 0]  # near the trigger (see train_spotter.evaluate)
        early += sum(1 for f in fired if lab[f] == 0)
        key = (m[args.by], m["condition"])
        hits[key][0] += bool(ok)
        hits[key][1] += 1
        if ok:
            latency.append(sp.embedding_end_s(ok[0]) - m["trigger_end_s"])
    families = sorted({k[0] for k in hits})
    conds = [cond_name(c) for c in CONDITIONS]
    print("\nTrigger recall on test voices (spotted phrases; % of clips):\n")
    print(f"| {'voice family' if args.by == 'family' else 'voice'} | " + " | ".join(conds) + " |")
    print("|---|" + "---|" * len(conds))
    for fam in families + ["all"]:
        cells = []
        for c in conds:
            h, n = (sum(hits[(f, c)][0] for f in families), sum(hits[(f, c)][1] for f in families)) if fam == "all" \
                else hits[(fam, c)]
            cells.append(f"{100 * h / n:.1f}" if n else "-")
        print(f"| {fam} | " + " | ".join(cells) + " |")
    n_total = sum(v[1] for v in hits.values())
    lat = np.array(latency)
    if len(lat):
        print(f"\nEnd of phrase to decision (audio clock): median {np.median(lat):.2f} s, "
              f"90th percentile {np.quantile(lat, 0.9):.2f} s over {len(lat)} detections; "
              f"{early} detections before the phrase ended or after another phrase in {n_total} clips"
              + (f"; {denied} detections taken back by the denial head" if denial else ""))
    print("\nFalse starts on speech with no trigger:\n")
    print("| kind | hours | false starts | per hour |")
    print("|---|---|---|---|")
    per_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    examples = []
    for e, _lab, m in _clips(sorted(folder.glob("neg-*.npz"))):
        s = clip_scores(head, e)
        fired = kept(e, ts.detections(s, th, mf, support))
        per_kind[m["kind"]][0] += m["seconds"] / 3600
        per_kind[m["kind"]][1] += len(fired)
        if len(fired) and len(examples) < 12:
            examples.append((m["kind"], round(float(sp.embedding_end_s(int(fired[0]))), 1), m["texts"][:3]))
    total_h = sum(v[0] for v in per_kind.values())
    total_f = sum(v[1] for v in per_kind.values())
    for kind, (h, f) in sorted(per_kind.items()):
        print(f"| {kind} | {h:.2f} | {f} | {f / h:.2f} |")
    if total_h:
        print(f"| all | {total_h:.2f} | {total_f} | {total_f / total_h:.2f} |")
    for ex in examples:
        log.info("false start: %s", ex)


def cmd_system(args) -> None:
    """The real session on test recordings: spotter on (spotter + PocketSphinx) and off."""
    from voice_skill.runtime.app import RunOptions, run_chunks  # noqa: PLC0415
    from voice_skill.devtools.speechgen import iter_array_chunks  # noqa: PLC0415

    rng = np.random.default_rng(args.seed)
    voices = corpus.split_voices("test")
    noise_voices = voices[:8]
    texts = corpus.trigger_texts("test", rng, 400)
    bare = ["cramp", "I have a cramp", "ow cramp", "cramping"]
    everyday = corpus.everyday_sentences("test")
    results = {}
    for mode in ("on", "off"):
        found = defaultdict(lambda: [0, 0])
        lat, false, hours = [], 0, 0.0
        t_cpu = time.process_time()
        audio_s = 0.0
        rng_m = np.random.default_rng(args.seed)
        for i in range(args.clips):
            head = texts[i % len(texts)][0]
            if i % 5 == 4:
                head = bare[(i // 5) % len(bare)]
            voice = voices[int(rng_m.integers(len(voices)))]
            c = CONDITIONS[i % len(CONDITIONS)] if i % 3 else None
            said = speechgen.synthesize(head, voice)
            clip, end = corpus.place(said, rng_m, lead_s=(1.0, 1.5), trail_s=(2.0, 2.5))
            audio = corpus.in_room(clip, rng_m, None if c is None else c[1], None if c is None else c[0],
                                   int(rng_m.integers(1 << 30)), noise_voices)
            events: list[dict] = []
            run_chunks(iter_array_chunks(audio, 0.1), RunOptions(asr="pocketsphinx", spotter=mode), None,
                       listeners=[events.append])
            audio_s += len(audio) / SAMPLE_RATE
            start = next((e for e in events if e["event"] == "routine" and e["state"] == "started"), None)
            key = ("bare cramp" if head in bare else "spotted phrase", cond_name(c))
            found[key][0] += start is not None
            found[key][1] += 1
            if start is not None:
                lat.append((key[0], start["t"] - end / SAMPLE_RATE))
        n_neg = 0
        while hours * 60 < args.minutes:
            parts = [a for a, _, _ in corpus.stream_texts(everyday, voices, rng_m, 60.0)]
            audio = corpus.in_room(corpus.join(parts, rng_m, (0.2, 1.0)), rng_m, None, None, 0, noise_voices)
            events = []
            run_chunks(iter_array_chunks(audio, 0.1), RunOptions(asr="pocketsphinx", spotter=mode), None,
                       listeners=[events.append])
            false += sum(1 for e in events if e["event"] == "routine" and e["state"] == "started")
            hours += len(audio) / SAMPLE_RATE / 3600
            audio_s += len(audio) / SAMPLE_RATE
            n_neg += 1
        cpu = (time.process_time() - t_cpu) / audio_s
        results[mode] = (found, lat, false, hours, cpu)
    print("\nThe whole skill on test recordings (routine started; `--spotter on` vs `off`):\n")
    keys = sorted({k for r in results.values() for k in r[0]})
    print("| trigger | condition | spotter on | spotter off (PocketSphinx only) |")
    print("|---|---|---|---|")
    for k in keys:
        cells = []
        for mode in ("on", "off"):
            h, n = results[mode][0][k]
            cells.append(f"{h}/{n}")
        print(f"| {k[0]} | {k[1]} | " + " | ".join(cells) + " |")
    for mode in ("on", "off"):
        found, lat, false, hours, cpu = results[mode]
        med = f"{np.median([t for _, t in lat]):.2f} s" if lat else "-"
        bare_lat = [t for kind, t in lat if kind == "bare cramp"]
        med += f" (the bare word: {np.median(bare_lat):.2f} s)" if bare_lat else ""
        print(f"spotter {mode}: median end of phrase to routine start {med}; {false} false starts in "
              f"{hours * 60:.0f} min of everyday speech; {cpu:.3f} CPU s per audio s")


def cmd_lead(args) -> None:
    """Recall at the shipped rule of clips as trained against the same clips after more of their room."""
    rng = np.random.default_rng(args.seed)
    voices = corpus.split_voices(args.split)
    noise_voices = corpus.noise_voices(voices)
    head = sp.SpotterHead.load(args.head)  # None: the shipped head
    models = ts._models()

    def fired(audio: np.ndarray, end_s: float) -> bool:
        rule = sp.Decision(head.threshold, head.min_frames, head.meta.get("support"))
        return any(rule.fires(float(score)) and abs(sp.embedding_end_s(j) - end_s) < 0.6
                   for j, score in enumerate(sp.clip_scores(models, head, audio)))

    found: dict[str, dict[str, list[bool]]] = {"as trained": defaultdict(list), "more room first": defaultdict(list)}
    pad = np.zeros(int(args.extra * SAMPLE_RATE), np.int16)
    for text, tail in corpus.trigger_texts(args.split, rng, args.clips):
        voice = voices[int(rng.integers(len(voices)))]
        clip, end = corpus.trigger_clip(text, tail, voice, rng)
        kind, snr = ts._condition(rng, 0.4)
        seed = int(rng.integers(1 << 30))
        for name, x, e in (("as trained", clip, end), ("more room first", np.concatenate([pad, clip]), end + args.extra)):
            audio = corpus.in_room(x, np.random.default_rng(seed), snr, kind, seed, noise_voices, gain_db=-6.0,
                                   floor_db=-65.0)
            found[name][kind or "clean"].append(fired(audio, e))
    rooms = sorted(found["as trained"])
    print(f"| {args.split} clips ({args.clips}) | all | " + " | ".join(rooms) + " |")
    print("|---|---|" + "---|" * len(rooms))
    for name, by_room in found.items():
        every = [f for fs in by_room.values() for f in fs]
        print(f"| {name} | {np.mean(every):.1%} | " + " | ".join(f"{np.mean(by_room[r]):.0%}" for r in rooms) + " |")


#: "alone": the phrases said with nothing around them, and their peak levels (dBFS) after 12 s of a quiet room.
ALONE_PHRASES = ("calf cramp", "leg cramp", "charley horse")
ALONE_LEVELS_DB = (-1.0, -10.0, -20.0)
ALONE_LEAD_S = 12.0


def cmd_alone(args) -> None:
    """A trigger phrase said alone after 12 s of a quiet room (the night's case), in every voice
    of a split at three levels: how many voices fire each head at every level."""
    voices = corpus.split_voices(args.split)
    heads = [(str(h) if h else "shipped", sp.SpotterHead.load(h)) for h in (args.heads or [None])]
    models = ts._models()
    rng = np.random.default_rng(args.seed)
    # fired[head][phrase] = number of (voice, level) said and fired, and voices that fired at every level
    said: dict[str, int] = defaultdict(int)
    fired = {name: defaultdict(int) for name, _ in heads}
    every = {name: defaultdict(int) for name, _ in heads}
    misses = {name: [] for name, _ in heads}
    for voice in voices:
        for phrase in ALONE_PHRASES:
            try:
                clip = speechgen.synthesize(phrase, voice).astype(np.float64)
            except speechgen.SpeechGenError as exc:
                log.warning("skipping %r in %s: %s", phrase, voice, exc)
                continue
            if not np.abs(clip).max():
                continue
            lead = int(ALONE_LEAD_S * SAMPLE_RATE)
            floor = rng.standard_normal(lead + len(clip) + SAMPLE_RATE) * 32768 * 10 ** (-65 / 20)
            end_s = (lead + len(clip)) / SAMPLE_RATE
            hit_levels = {name: 0 for name, _ in heads}
            for level in ALONE_LEVELS_DB:
                x = floor.copy()
                x[lead:lead + len(clip)] += clip / np.abs(clip).max() * 32767 * 10 ** (level / 20)
                audio = np.clip(np.round(x), -32768, 32767).astype(np.int16)
                said[phrase] += 1
                # one grid of frames, or several a fraction of a frame apart (``--grids``)
                shifts = [k * sp.HOP_SAMPLES // args.grids for k in range(args.grids)]
                embs = [np.concatenate([np.repeat(sp.silence_embedding(models)[None], ts.WINDOW - 1, axis=0),
                                        sp.clip_embeddings(models, audio[shift:]).astype(np.float32)])
                        for shift in shifts]
                for name, head in heads:
                    ok, top = False, 0.0
                    for shift, emb in zip(shifts, embs):
                        rule = sp.Decision(head.threshold, head.min_frames, head.meta.get("support"))
                        scores = clip_scores(head, emb)
                        top = max(top, float(scores.max()))
                        ok = any([rule.fires(float(v)) and abs(sp.embedding_end_s(j) + shift / SAMPLE_RATE - end_s) < 0.8
                                  for j, v in enumerate(scores)]) or ok
                    fired[name][phrase] += ok
                    hit_levels[name] += ok
                    if not ok:
                        misses[name].append(f"{voice} {phrase!r} {level:.0f} dB ({top:.3f})")
            for name, _ in heads:
                every[name][phrase] += hit_levels[name] == len(ALONE_LEVELS_DB)
    n_voices = len(voices)
    print(f"\n{args.split} voices ({n_voices}), a phrase alone after {ALONE_LEAD_S:.0f} s of a quiet room at "
          f"{', '.join(f'{v:.0f}' for v in ALONE_LEVELS_DB)} dB peak: fired / said (voices firing at every level)\n")
    print("| head | " + " | ".join(ALONE_PHRASES) + " |")
    print("|---|" + "---|" * len(ALONE_PHRASES))
    for name, _ in heads:
        print(f"| {name} | " + " | ".join(f"{fired[name][p]} / {said[p]} ({every[name][p]} of {n_voices})"
                                          for p in ALONE_PHRASES) + " |")
    for name, _ in heads:
        for m in misses[name][:args.show]:
            log.info("%s missed: %s", name, m)


#: ``tails``: a trigger and words after it, per split (neither the training's tails nor each other's)
TAIL_PHRASES = ("calf cramp", "leg cramp", "my calf is cramping")
TAILS = {"dev": ("it won't let go", "it hurts", "oh no"), "test": ("it's so tight", "help me please", "again")}
TAIL_WAYS = ("alone", "training's join", "a comma", "one breath")


def cmd_tails(args) -> None:
    """A trigger with words after it, made three ways: as the training and the test sets make it
    (the two parts synthesized apart and joined with 0.03-0.25 s of silence, ``trigger_clip``), said
    with a comma between them, and in one breath, as people run a sentence on; beside the trigger
    alone. Quiet room, every voice of a split; how many fire the shipped rule anywhere in the clip."""
    voices = corpus.split_voices(args.split)
    head = sp.SpotterHead.load(args.head)
    models = ts._models()
    rng = np.random.default_rng(args.seed)
    said: dict[str, int] = defaultdict(int)
    fired: dict[str, int] = defaultdict(int)
    for voice in voices:
        for phrase in TAIL_PHRASES:
            for tail in TAILS[args.split]:
                try:
                    parts = {"alone": speechgen.synthesize(phrase, voice),
                             "training's join": corpus.trigger_clip(phrase, tail, voice, rng, lead_s=(0, 0),
                                                                    trail_s=(0, 0))[0],
                             "a comma": speechgen.synthesize(f"{phrase}, {tail}", voice),
                             "one breath": speechgen.synthesize(f"{phrase} {tail}", voice)}
                except speechgen.SpeechGenError as exc:
                    log.warning("skipping %r in %s: %s", phrase, voice, exc)
                    continue
                for way, clip in parts.items():
                    if way == "alone" and tail != TAILS[args.split][0]:
                        continue  # once per phrase
                    pad = np.zeros(SAMPLE_RATE, np.int16)
                    audio = corpus.in_room(np.concatenate([pad, clip, pad]), rng, None, None, 0, [], floor_db=-65.0)
                    scores = sp.clip_scores(models, head, audio)
                    rule = sp.Decision(head.threshold, head.min_frames, head.meta.get("support"))
                    said[way] += 1
                    fired[way] += any([rule.fires(float(v)) for v in scores])
    print(f"\nA trigger with words after it, {args.split} voices ({len(voices)}), quiet room: the shipped rule fired\n")
    print("| " + " | ".join(TAIL_WAYS) + " |")
    print("|" + "---|" * len(TAIL_WAYS))
    print("| " + " | ".join(f"{fired[w]} of {said[w]} ({fired[w] / max(1, said[w]):.0%})" for w in TAIL_WAYS) + " |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("--hours", type=float, default=10.0, help="hours of everyday speech (more is added)")
    d.add_argument("--texts-per-voice", type=int, default=8)
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--voices", nargs="+", default=None,
                   help="trigger clips in these voices only (engine:voice[@rate]), no negatives; with --set")
    d.add_argument("--set", type=Path, default=None, help=f"the folder to fill (default {OUT.relative_to(ROOT)})")
    d.add_argument("--babble-of-others", action="store_true",
                   help="a trigger clip's babble and TV-like sound made of other speakers only")
    d.add_argument("--lead", type=float, nargs=2, default=(1.0, 2.0), metavar=("MIN_S", "MAX_S"),
                   help="seconds of the room before a trigger phrase (default: %(default)s)")
    r = sub.add_parser("report")
    r.add_argument("--set", type=Path, default=None, help=f"the folder to measure (default {OUT.relative_to(ROOT)})")
    r.add_argument("--head", type=Path, default=None)
    r.add_argument("--threshold", type=float, default=None)
    r.add_argument("--by", choices=("family", "voice"), default="family", help="recall per voice family or voice")
    r.add_argument("--denial", type=Path, nargs="?", const=ROOT / "voice_skill" / "data" / "spotter" / "denial_head.npz",
                   default=None, help="with the denial head (the shipped one, or the file given): a detection "
                                      "it takes back is no detection")
    s = sub.add_parser("system")
    s.add_argument("--clips", type=int, default=120)
    s.add_argument("--minutes", type=float, default=20.0)
    s.add_argument("--seed", type=int, default=9)
    le = sub.add_parser("lead", help="trigger clips as trained against the same after more of their room")
    le.add_argument("--split", choices=("dev", "test"), default="dev")
    le.add_argument("--clips", type=int, default=200)
    le.add_argument("--extra", type=float, default=3.0, help="seconds of the room before the clip")
    le.add_argument("--head", type=Path, default=None)
    le.add_argument("--seed", type=int, default=77)
    al = sub.add_parser("alone", help="a trigger phrase alone after 12 s of a quiet room, in every voice of a split")
    al.add_argument("heads", type=Path, nargs="*", help="head files to compare (default: the shipped head)")
    al.add_argument("--split", choices=("dev", "test"), default="dev")
    al.add_argument("--seed", type=int, default=12)
    al.add_argument("--show", type=int, default=0, help="log this many misses of each head")
    al.add_argument("--grids", type=int, default=1,
                    help="frame grids a fraction of a frame apart, each with its own rule; fired on any")
    ta = sub.add_parser("tails", help="a trigger with words after it: joined as in training, after a comma, in one breath")
    ta.add_argument("--split", choices=("dev", "test"), default="dev")
    ta.add_argument("--head", type=Path, default=None)
    ta.add_argument("--seed", type=int, default=14)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    {"data": cmd_data, "report": cmd_report, "system": cmd_system, "lead": cmd_lead, "alone": cmd_alone,
     "tails": cmd_tails}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
