"""``voice-skill routines``: list, show and validate routine files.

- ``routines list``: the built-in routines and the user's own (``*.toml`` in the
  ``routines`` folder of the config folder, ``~/.config/voice-skill/routines``), with their
  step count, length at normal pace and where each comes from. A user's routine with a
  built-in's id replaces it.
- ``routines show ID|FILE``: the spoken script with the time each line starts (mm:ss from
  the trigger, at normal pace unless ``--pace`` says otherwise), countdown marks, pacing
  cues and releases included, as the coach paces them.
- ``routines validate FILE...``: every file is checked and reported: "FILE: ok" on stdout,
  or one line on stderr naming the file, the step and the field; exit 2 if any was invalid.

Results go to stdout. Errors are raised as ``RoutineError``; the main command line turns
them into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping

from voice_skill.cli.types import number
from voice_skill import settings
from voice_skill.errors import RoutineError
from voice_skill.core.rehearsal import rehearsal_seconds, rehearse
from voice_skill.core.routine import Routine, builtin_routines, hold_lines, load_routine
from voice_skill.core.speechtime import DEFAULT_RATE_WPM


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``routines`` subcommand on a parser's subparsers."""
    parser = subparsers.add_parser("routines", help="list, show or validate coaching routines",
                                   description="List, show or validate coaching routines (TOML files).")
    sub = parser.add_subparsers(dest="routines_command", metavar="ACTION")
    sub.required = True

    listing = sub.add_parser("list", help="the built-in routines and your own, with their length at normal pace",
                             description="List the built-in routines and your own (routine files in "
                             f"{user_routines_dir()}), with their steps, length at normal pace and origin.")
    listing.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="the spoken script of a routine, with timings",
                          description="Print a routine's spoken script with the time each line starts (mm:ss "
                          "from the trigger), countdown marks, pacing cues and releases included: the coach "
                          "itself, run on a virtual clock.")
    show.add_argument("routine", metavar="ID|FILE", help="a built-in routine's id, or a routine file")
    show.add_argument("--pace", type=number(0, 100, above_lo=True), default=1.0,
                      help="pace factor: 1 is normal, 1.25 one step slower (default 1)")
    show.add_argument("--wpm", type=number(0, 100, above_lo=True), default=DEFAULT_RATE_WPM,
                      help=f"speaking rate assumed for the timings (default {DEFAULT_RATE_WPM:g})")
    show.add_argument("--leg", choices=("left", "right"), help="say the lines as if this leg had been named")
    show.set_defaults(func=cmd_show)

    validate = sub.add_parser("validate", help="check routine files (every file is reported)",
                              description="Check routine files: each valid one is reported as 'FILE: ok', each "
                              "invalid one as one line naming the file, the step and the field (exit 2 if any "
                              "was invalid).")
    validate.add_argument("files", nargs="+", metavar="FILE", help="routine files to check")
    validate.set_defaults(func=cmd_validate)
    return parser


def mmss(seconds: float) -> str:
    """Seconds as a clock shows them: whole seconds, floored."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def routine_seconds(routine: Routine, pace: float = 1.0, wpm: float = DEFAULT_RATE_WPM) -> float:
    """A routine's length from the trigger to the end of its outro: the coach rehearsed."""
    return rehearsal_seconds(routine, pace=pace, wpm=wpm)


def user_routines_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where a user's own routines live: ``routines`` in the config folder."""
    return settings.config_dir(env) / "routines"


def available_routines(env: Mapping[str, str] = os.environ) -> dict[str, Routine]:
    """The built-in routines and the user's own, by id; a user's routine with a built-in's
    id replaces it. A user's file that is invalid, or two that share an id, raise
    RoutineError naming the file (a routine the user wrote is never skipped silently)."""
    routines = builtin_routines()
    folder = user_routines_dir(env)
    mine: dict[str, str] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.toml")):
            routine = load_routine(path)
            if routine.id in mine:
                raise RoutineError(f"has the id {routine.id!r} of another routine file, {mine[routine.id]}",
                                   path=str(path))
            mine[routine.id] = str(path)
            routines[routine.id] = routine
    return routines


def for_settings(chosen: settings.Settings) -> tuple[dict[str, Routine], str | None]:
    """The built-in routines with the user's own (see ``routines list``), and the one a
    trigger starts if the ``routine`` setting names one (an id, or a routine file)."""
    routines = available_routines()
    if not chosen.routine:
        return routines, None
    routine = resolve(chosen.routine)
    routines[routine.id] = routine
    return routines, routine.id


def resolve(name: str, env: Mapping[str, str] = os.environ) -> Routine:
    """A routine by id (built-in or the user's own), or a routine file by path."""
    path = Path(name)
    if path.suffix == ".toml" or path.exists() or any(sep in name for sep in ("/", "\\")):
        return load_routine(path)
    routines = available_routines(env)
    if name in routines:
        return routines[name]
    raise RoutineError(f"no routine with this id (known: {', '.join(routines)}) and no such file", path=name)


def cmd_list(args: argparse.Namespace) -> int:
    builtin = builtin_routines()
    routines = available_routines()

    def origin(r: Routine) -> str:
        if r.id in builtin and builtin[r.id].path == r.path:
            return "built-in"
        return r.path + (" (replaces the built-in)" if r.id in builtin else "")

    rows = [(r.id, r.title, r.context, f"{len(r.steps)} steps", mmss(round(routine_seconds(r))), origin(r))
            for r in routines.values()]
    header = ("ID", "TITLE", "CONTEXT", "STEPS", "LENGTH", "FROM")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\nYour own routines: {user_routines_dir()} (check one with 'voice-skill routines validate FILE'; "
          "start one with 'voice-skill run --routine ID')")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    routine = resolve(args.routine)
    lines = rehearse(routine, pace=args.pace, wpm=args.wpm, leg=args.leg)
    total = max(line.end_s for line in lines)
    pace = "normal pace" if args.pace == 1.0 else f"pace {args.pace:g}"
    print(f"{routine.id}: {routine.title} ({routine.context}, pressure up to {routine.max_pressure}), "
          f"{len(routine.steps)} steps, {mmss(round(total))} at {pace} and {args.wpm:g} words a minute")
    for line in lines:
        if line.kind == "step":
            step = routine.steps[line.step]
            hold = f"hold {hold_lines(step, args.pace)[0]:g} s" if step.has_timer else "no hold"
            label = f"step {line.step + 1}"
            extra = f"   [{step.id}; {hold}; pressure {step.pressure}; {step.phase}]"
            print(f"{mmss(line.start_s)}  {label:<9} {line.text}{extra}")
        else:
            print(f"{mmss(line.start_s)}  {line.kind:<9} {line.text}")
    print(f"{mmss(round(total))}  end")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Every file is checked and reported; exit 2 if any was invalid."""
    bad = 0
    for name in args.files:
        try:
            load_routine(name)
        except RoutineError as exc:  # names the file, the step and the field
            bad += 1
            print(f"voice-skill: {exc}", file=sys.stderr, flush=True)
            continue
        print(f"{name}: ok", flush=True)
    return 2 if bad else 0
