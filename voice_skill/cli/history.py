"""``voice-skill history [--weeks N] [--csv] [--forget [--yes]] [--journal PATH]``.

Shows the cramp journal: a table of the episodes of the last N weeks and a bar chart with
one row per night (noon to noon, named by the date it began). ``--csv`` writes the same
episodes to stdout as CSV; ``--forget`` erases the journal after asking (on a terminal) or
with ``--yes``. ``add_parser(subparsers)`` registers the subcommand with
``func(args) -> exit code``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Sequence

from voice_skill.cli.types import number
from voice_skill.errors import UsageError
from voice_skill.journal.store import Episode, Journal, journal_path, night_of

log = logging.getLogger(__name__)

BAR_CHAR = "#"
BAR_WIDTH = 40
CSV_FIELDS = ("started_at", "ended_at", "night", "leg", "routine", "duration_s", "how", "got_worse", "red_flags")


def _moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO date and time") from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _duration(episode: Episode) -> str:
    if episode.duration_s is None:
        return "-"
    minutes, seconds = divmod(int(round(episode.duration_s)), 60)
    return f"{minutes}:{seconds:02d}"


def _how(episode: Episode) -> str:
    how = episode.ended_how.replace("_", " ")
    return f"{how} (got worse)" if episode.got_worse else how


def format_table(episodes: Sequence[Episode]) -> str:
    header = ("DATE", "TIME", "LEG", "ROUTINE", "DURATION", "ENDED", "RED FLAGS")
    rows = [(e.started_at.strftime("%Y-%m-%d"), e.started_at.strftime("%H:%M"), e.leg or "-",
             e.routine or "-", _duration(e), _how(e), "; ".join(e.red_flags) or "-") for e in episodes]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def format_chart(episodes: Sequence[Episode], first_night, last_night) -> str:
    """One row per night from ``first_night`` to ``last_night``: the count and a bar."""
    counts: dict = {}
    for e in episodes:
        counts[e.night] = counts.get(e.night, 0) + 1
    most = max(counts.values(), default=0)
    scale = 1.0 if most <= BAR_WIDTH else BAR_WIDTH / most
    digits = len(str(most))
    lines = []
    night = first_night
    while night <= last_night:
        n = counts.get(night, 0)
        bar = BAR_CHAR * (max(1, round(n * scale)) if n else 0)
        lines.append(f"{night.strftime('%a %Y-%m-%d')}  {n:>{digits}}  {bar}".rstrip())
        night += timedelta(days=1)
    return "\n".join(lines)


def write_csv(episodes: Sequence[Episode], out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for e in episodes:
        writer.writerow([e.started_at.isoformat(), e.ended_at.isoformat() if e.ended_at else "",
                         e.night.isoformat(), e.leg or "", e.routine,
                         "" if e.duration_s is None else f"{e.duration_s:g}", e.ended_how,
                         int(e.got_worse), "; ".join(e.red_flags)])


def _confirm(question: str) -> bool:
    print(question, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_forget(args: argparse.Namespace, path: Path) -> int:
    if not path.exists():
        print(f"Nothing to forget: there is no cramp journal at {path}")
        return 0
    with Journal(path, create=False) as journal:
        count = len(journal.episodes())
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("refusing to erase the cramp journal without confirmation: there is no "
                                 "terminal to ask on (add --yes)", path=str(path))
            if not _confirm(f"Erase all {_count(count, 'recorded episode')} in {path}? This cannot be undone. [y/N] "):
                print("Nothing erased.", file=sys.stderr)
                return 1
        erased = journal.forget()
    print(f"Erased {_count(erased, 'episode')} from {path}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    path = Path(args.journal).expanduser() if args.journal else journal_path()
    if args.yes and not args.forget:
        raise UsageError("--yes only goes with --forget")
    if args.forget:
        return cmd_forget(args, path)
    now = args.now or datetime.now().astimezone()  # the one wall-clock read of this command
    now = now if now.tzinfo is not None else now.astimezone()
    last = night_of(now)
    first = last - timedelta(days=7 * args.weeks - 1)
    if path.exists():
        with Journal(path, create=False) as journal:
            episodes = journal.episodes_in_nights(first, last, until=now)
    else:
        episodes = []
    if args.csv:
        write_csv(episodes, sys.stdout)
        return 0
    weeks = "week" if args.weeks == 1 else f"{args.weeks} weeks"
    if not episodes:
        print(f"No cramps recorded in the last {weeks}.")
        return 0
    nights = len({e.night for e in episodes})
    print(f"Cramps in the last {weeks}: {_count(len(episodes), 'episode')} on {_count(nights, 'night')}.")
    print()
    print(format_table(episodes))
    print()
    print("Episodes per night (noon to noon, named by the evening's date):")
    print(format_chart(episodes, first, last))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    history = subparsers.add_parser(
        "history", help="the cramp journal: recent episodes, a chart per night, CSV export, erase",
        description="The cramp journal kept on this machine: when each episode started, the leg, the "
        "routine, how long it took, how it ended and any red flags heard. No audio is ever kept.")
    history.add_argument("--weeks", type=number(1, 520, whole=True, unit="weeks"), default=4, metavar="N", help="how many weeks back (default 4)")
    what = history.add_mutually_exclusive_group()
    what.add_argument("--csv", action="store_true", help="write the episodes to stdout as CSV")
    what.add_argument("--forget", action="store_true", help="erase the whole journal (asks first)")
    history.add_argument("--yes", action="store_true", help="with --forget: do not ask")
    history.add_argument("--journal", metavar="PATH",
                         help="the journal file (default $XDG_DATA_HOME/voice-skill/journal.sqlite3)")
    history.add_argument("--now", type=_moment, default=None, help=argparse.SUPPRESS)  # testing: "now"
    history.set_defaults(func=cmd_history)
    return history
