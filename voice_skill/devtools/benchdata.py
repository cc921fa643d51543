"""Corpora and measurements for recognizers, shared by tests and the benchmark scripts.

Everything is generated from real TTS engines at run time (see ``speechgen``) and is
deterministic for a given seed. The measuring functions take any ``Recognizer`` factory,
so ``scripts/bench.py`` can reuse them for other backends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from voice_skill.asr.base import Hypothesis, Recognizer
from voice_skill.audio.pcm import SAMPLE_RATE
from voice_skill.devtools import speechgen
from voice_skill.core.intents import IntentParser

#: The trigger family ("start" intent), bare and inside longer sentences.
TRIGGERS: list[str] = [
    "calf cramp",
    "leg cramp",
    "cramp",
    "charley horse",
    "my calf is cramping",
    "cramp in my calf",
    "I've got a really bad calf cramp",
    "ouch I have a leg cramp",
]

#: Everyday speech with no command in it and nothing that sounds like one: TV, chat.
EVERYDAY: list[str] = [
    "I need to buy some groceries",
    "the weather is nice today",
    "cut the apple in half",
    "and now the latest news from around the country",
    "the market closed higher after a long week of trading",
    "the home team scored twice to win the game",
    "tomorrow will be cloudy with a chance of showers",
    "scientists say the new bridge will open next spring",
    "dinner will be ready in about ten minutes",
    "the police are asking for information about the robbery",
    "our guest tonight has written three books about the ocean",
    "traffic is heavy on the main road into the city",
    "I think we should paint the kitchen blue",
    "did you remember to feed the cat",
    "the train to the airport leaves every twenty minutes",
    "my brother is moving to a new apartment",
    "she bought a lamp for the living room",
    "the children are playing in the garden",
    "please pass the salt and pepper",
    "the meeting has been moved to thursday afternoon",
    "this recipe needs two cups of flour",
    "the library closes early on saturdays",
    "a cold front will bring wind and rain tonight",
    "he plays the piano every evening",
    "the museum has a new exhibit about dinosaurs",
    "we watched a documentary about whales",
    "the coffee shop on the corner sells fresh bread",
    "they are building a new school near the river",
    "the concert starts at eight o'clock",
    "I left my umbrella on the bus",
    "the garden needs watering twice a week",
    "a gentle breeze moved through the tall grass",
    "the farmer sold apples and pumpkins at the market",
    "the recipe calls for a pinch of salt",
    "the car needs new tires before winter",
    "the river bank was steep and muddy",
    "please hand me the stapler on the desk",
    "the old barn needs a new roof",
    "my grandmother grows tomatoes and beans",
    "the flight was delayed by two hours",
]

#: Near misses: words that sound like the triggers, used honestly in ordinary speech.
NEAR_MISSES: list[str] = [
    "we are going to decamp to the lake house",
    "the camp was full of children",
    "he ordered the crab for dinner",
    "the champion defended her title in the final round",
    "he was cramming for his exams all night",
    "the clamp held the boards together",
    "the ramp leads up to the front door",
    "the cramped apartment had only one window",
    "we pushed the bike up a car ramp",
    "my calf muscles feel strong after the run",
    "the kids went to summer camp in june",
    "don't cram everything into one suitcase",
    "a newborn calf stood next to its mother",
    "she has a horse named charlie",
    "the clamps are on the workbench",
    "he cracked a joke during lunch",
    "the campfire kept everyone warm",
    "my leg is much better since the surgery",
    "the crabs were cooked with garlic and butter",
    "a tram runs along the harbour every hour",
    "the champ kept his belt after twelve rounds",
    "we crammed six people into the small car",
]

#: Both together: what the recognizer tests and ``scripts/bench_asr.py`` use.
ORDINARY: list[str] = EVERYDAY + NEAR_MISSES

#: Voices used for recall (all of ``speechgen.VOICES``).
BENCH_VOICES: list[str] = list(speechgen.VOICES)


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str
    samples: np.ndarray


def utterances(texts: Sequence[str], voices: Sequence[str]) -> list[Utterance]:
    return [Utterance(t, v, speechgen.synthesize(t, v)) for t in texts for v in voices]


def noise_for(kind: str, seconds: float, seed: int) -> np.ndarray:
    if kind == "babble":
        return speechgen.babble_noise(seconds, seed=seed)
    if kind == "tv":
        return speechgen.tv_noise(seconds, seed=seed)
    if kind == "pink":
        return speechgen.pink_noise(seconds, seed=seed)
    if kind == "brown":
        return speechgen.brown_noise(seconds, seed=seed)
    if kind == "snore":
        return speechgen.snore_noise(seconds, seed=seed)
    raise ValueError(f"unknown noise {kind!r}")


def run_recognizer(rec: Recognizer, samples: np.ndarray, chunk_s: float = 0.1) -> tuple[list[Hypothesis], float]:
    """Feed samples through ``rec``; return (hypotheses, CPU seconds spent)."""
    hyps: list[Hypothesis] = []
    chunks = list(speechgen.iter_array_chunks(samples, chunk_s))
    t0 = time.process_time()
    for chunk in chunks:
        hyps.extend(rec.accept(chunk))
    hyps.extend(rec.flush())
    return hyps, time.process_time() - t0


def intents_of(hyps: Iterable[Hypothesis], parser: IntentParser | None = None) -> list[str | None]:
    parser = parser or IntentParser()
    out = []
    for h in hyps:
        if not h.final:
            continue
        intent = parser.parse(h.text)
        out.append(intent.name if intent else None)
    return out


def family(voice: str) -> str:
    """``"espeak:en-us+m3"`` -> ``"espeak"``."""
    return voice.split(":", 1)[0]


@dataclass
class RecallResult:
    condition: str
    hits: int
    total: int
    cpu_s: float
    audio_s: float
    misses: list[tuple[str, str, str]]
    by_family: dict[str, tuple[int, int]] = field(default_factory=dict)  # family -> (hits, total)
    latencies_s: list[float] = field(default_factory=list)  # hypothesis end - phrase end, per hit

    @property
    def recall(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def family_recall(self, name: str) -> tuple[int, int]:
        return self.by_family.get(name, (0, 0))

    @property
    def median_latency_s(self) -> float | None:
        return float(np.median(self.latencies_s)) if self.latencies_s else None


def measure_recall(
    make: Callable[[], Recognizer],
    texts: Sequence[str],
    voices: Sequence[str],
    intent: str = "start",
    snr_db: float | None = None,
    noise: str = "babble",
    seed: int = 0,
    gap_s: float = 2.0,
) -> RecallResult:
    """Say each text in each voice, one per recording with ``gap_s`` of room around it.

    A hit is a hypothesis whose intent is ``intent`` overlapping the spoken phrase.
    """
    parser = IntentParser()
    rec = make()
    utts = utterances(texts, voices)
    hits = 0
    cpu = 0.0
    audio = 0.0
    misses = []
    by_family: dict[str, list[int]] = {}
    latencies: list[float] = []
    pad = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.int16)
    noise_bank = None
    if snr_db is not None:
        noise_bank = noise_for(noise, 60.0, seed)
    rng = np.random.default_rng(seed)
    for u in utts:
        x = np.concatenate([pad[: len(pad) // 2], u.samples, pad])
        start, end = len(pad) // 2 / SAMPLE_RATE, (len(pad) // 2 + len(u.samples)) / SAMPLE_RATE
        if noise_bank is not None:
            off = int(rng.integers(0, len(noise_bank) - len(x)))
            # SNR is set on the phrase itself, then the noise bed runs through the whole recording.
            x = speechgen.mix_at_snr(x, noise_bank[off:off + len(x)], snr_db)
        hyps, dt = run_recognizer(rec, x)
        rec.reset()
        cpu += dt
        audio += len(x) / SAMPLE_RATE
        got = [h for h, i in zip(hyps, intents_of(hyps, parser)) if i == intent and h.end_s > start and h.start_s < end + 0.5]
        fam = by_family.setdefault(family(u.voice), [0, 0])
        fam[1] += 1
        if got:
            hits += 1
            fam[0] += 1
            latencies.append(got[0].end_s - end)
        else:
            misses.append((u.text, u.voice, " | ".join(h.text for h in hyps)))
    cond = "clean" if snr_db is None else f"{noise} {snr_db:g} dB"
    return RecallResult(cond, hits, len(utts), cpu, audio, misses,
                        {k: (a, b) for k, (a, b) in by_family.items()}, latencies)


@dataclass
class FalseStartResult:
    condition: str
    false_starts: int
    speech_s: float
    audio_s: float
    cpu_s: float
    examples: list[str]

    @property
    def per_hour(self) -> float:
        return self.false_starts / (self.speech_s / 3600.0) if self.speech_s else 0.0


def ordinary_stream(voices: Sequence[str], minutes: float, seed: int = 0,
                    texts: Sequence[str] = ORDINARY) -> tuple[np.ndarray, float]:
    """A long recording of ordinary sentences in varied voices with short pauses.

    Returns (samples, seconds of actual speech in it).
    """
    rng = np.random.default_rng(seed)
    target = int(minutes * 60 * SAMPLE_RATE)
    parts: list[np.ndarray] = []
    total = speech = 0
    while total < target:
        s = speechgen.synthesize(texts[rng.integers(len(texts))], voices[rng.integers(len(voices))])
        gap = np.zeros(int(rng.uniform(0.2, 1.2) * SAMPLE_RATE), dtype=np.int16)
        parts += [s, gap]
        total += len(s) + len(gap)
        speech += len(s)
    return np.concatenate(parts), speech / SAMPLE_RATE


def measure_false_starts(
    make: Callable[[], Recognizer],
    voices: Sequence[str],
    minutes: float = 5.0,
    snr_db: float | None = None,
    noise: str = "babble",
    seed: int = 0,
    intent: str = "start",
) -> FalseStartResult:
    samples, speech_s = ordinary_stream(voices, minutes, seed)
    if snr_db is not None:
        samples = speechgen.mix_at_snr(samples, noise_for(noise, 60.0, seed + 1), snr_db)
    rec = make()
    hyps, cpu = run_recognizer(rec, samples)
    names = intents_of(hyps)
    bad = [h.text for h, i in zip(hyps, names) if i == intent]
    cond = "clean" if snr_db is None else f"{noise} {snr_db:g} dB"
    return FalseStartResult(cond, len(bad), speech_s, len(samples) / SAMPLE_RATE, cpu, bad)
