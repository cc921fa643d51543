"""``voice-skill voice show|prepare``: which voice speaks, and its sentences rendered ahead.

``prepare`` renders every fixed sentence of the routines (built-in and the user's own) and
messages, at the day's and the night's speaking rate, into the speech cache, with a progress
bar on a terminal; ``make run`` calls it, so the first routine after installing is spoken
from the cache. It takes the options of ``run``, so ``voice prepare --rate 150`` prepares
what ``run --rate 150`` will say.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from voice_skill import settings
from voice_skill.cli import routines as routines_cli
from voice_skill.core.daytime import rates_in_a_day
from voice_skill.core.rehearsal import fixed_sentences
from voice_skill.tts.cache import CachedVoice, cache_root, voice_label
from voice_skill.tts.choice import FallbackVoice, plan_voice


def speaking_rates(chosen: settings.Settings) -> list[int]:
    """The day's rate, then the night's (if it differs): the rates the skill speaks at."""
    return rates_in_a_day(chosen.rate, lambda hour: settings.night_adjusted(chosen, hour))


def _open(chosen: settings.Settings, out: TextIO) -> CachedVoice:
    from voice_skill.runtime.output import open_voice  # noqa: PLC0415 (loads the voice's engine)

    voice, _plan = open_voice(chosen.voice, rate=chosen.rate, volume=chosen.volume, in_process=True,
                              fixed=(), on_warning=lambda text: print(f"warning: {text}", file=out))
    return voice


def cmd_show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    chosen = settings.from_args(args)
    plan = plan_voice(chosen.voice)
    print(f"voice setting: {chosen.voice} ({chosen.sources['voice']})", file=out)
    print(f"plan:          {plan.label}: {plan.why}", file=out)
    voice = _open(chosen, out)
    try:
        rtf = _real_time_factor(voice)
        print(f"in use:        {voice_label(voice.identity)} ({voice.identity})", file=out)
        if rtf is not None:
            print(f"speed:         {rtf:.2f} s of work per second of speech on this machine", file=out)
        if voice.cache is None:
            print("cache:         none: espeak-ng renders each sentence when it is said", file=out)
            return 0
        texts, _ = _sentences(chosen)
        rates = speaking_rates(chosen)
        missing = len(voice.missing(texts, rates))
        total = len(texts) * len(rates)
        cache = voice.cache
        size = cache.size_bytes() if cache is not None else 0
        print(f"cache:         {cache.root if cache else '(none)'}: {total - missing} of {total} sentences ready "
              f"at {' and '.join(map(str, rates))} words a minute ({size / 1e6:.1f} MB in all)", file=out)
        if missing:
            print("               'voice-skill voice prepare' renders the rest now (the skill also does it "
                  "while idle)", file=out)
    finally:
        voice.close()
    return 0


def _real_time_factor(voice: CachedVoice) -> float | None:
    inner = voice.voice.current if isinstance(voice.voice, FallbackVoice) else voice.voice
    measure = getattr(inner, "real_time_factor", None)
    return measure() if measure is not None else None


def _sentences(chosen: settings.Settings) -> tuple[list[str], list[str]]:
    routines, _ = routines_cli.for_settings(chosen)
    return fixed_sentences(routines), sorted(routines)


def cmd_prepare(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    chosen = settings.from_args(args)
    texts, routine_ids = _sentences(chosen)
    rates = speaking_rates(chosen)
    t0 = time.monotonic()
    voice = _open(chosen, out)
    voice.keep = set(texts).__contains__
    if voice.cache is None:
        voice.close()
        print(f"Nothing to prepare: {voice_label(voice.identity)} renders each sentence when it is said.", file=out)
        return 0
    try:
        print(f"Preparing {len(texts)} sentences of {len(routine_ids)} routines for {voice_label(voice.identity)} "
              f"at {' and '.join(map(str, rates))} words a minute in {voice.cache.root}", file=out, flush=True)
        if sys.stderr.isatty() and not args.quiet:
            from rich.progress import Progress  # noqa: PLC0415

            with Progress(transient=True) as bar:
                task = bar.add_task("rendering", total=len(texts) * len(rates))
                result = voice.prepare(texts, rates, progress=lambda done, total: bar.update(task, completed=done))
        else:
            result = voice.prepare(texts, rates)
    finally:
        voice.close()
    size = voice.cache.size_bytes() if voice.cache is not None else 0
    print(f"Ready: {result.total} sentences, {result.rendered} rendered now, {result.total - result.rendered} "
          f"already there; {time.monotonic() - t0:.1f} s; the cache holds {size / 1e6:.1f} MB.", file=out)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    voice = subparsers.add_parser(
        "voice", help="which voice speaks, and its sentences rendered ahead",
        description="The skill speaks with a natural voice (Piper) where it is installed and fast enough, "
        "else with espeak-ng (the 'voice' setting chooses). Every fixed sentence is rendered ahead into "
        f"a cache ({cache_root()}), so nothing is synthesised when a cramp starts.")
    actions = voice.add_subparsers(dest="voice_action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="which voice is used and why, its speed here, how full the cache is",
                              description="Which voice the settings give and why, how fast it renders on this "
                              "machine, and how many of the sentences the skill says are ready in the cache.")
    settings.add_arguments(show)
    show.set_defaults(func=cmd_show)
    prepare = actions.add_parser("prepare", help="render every fixed sentence into the cache now",
                                 description="Render every fixed sentence of the routines (built-in and your own) "
                                 "and messages, at the day's and the night's speaking rate, into the cache. "
                                 "Sentences already there are checked, not rendered again. Takes the options of "
                                 "'run', so 'voice prepare --rate 150' prepares what 'run --rate 150' will say.")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    settings.add_arguments(prepare)
    prepare.set_defaults(func=cmd_prepare)
    return voice
