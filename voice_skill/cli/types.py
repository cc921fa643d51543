"""What the subcommands share: argument types that check a number's range, and the one-line
error a subcommand prints for a failure (exit code from the error's class)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from voice_skill.errors import VoiceSkillError


def number(lo: float, hi: float, *, whole: bool = False, unit: str = "",
           above_lo: bool = False) -> Callable[[str], float]:
    """An argparse type for a number from ``lo`` to ``hi`` (above ``lo`` with ``above_lo``),
    a whole one with ``whole``; ``unit`` names it in the error ("ms", "weeks")."""
    kind = "a whole number" if whole else "a number"
    described = f"{kind} of {unit}" if unit else kind
    span = f"above {lo:g} and up to {hi:g}" if above_lo else f"from {lo:g} to {hi:g}"

    def parse(text: str) -> float:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {described}") from None
        if not (lo < value if above_lo else lo <= value) or not value <= hi:
            raise argparse.ArgumentTypeError(f"'{text}'{' ' + unit if unit else ''} is not {span}")
        return value

    parse.__name__ = described  # argparse names the type in its own messages
    return parse


def fail(command: str, exc: VoiceSkillError) -> int:
    """Print ``exc`` as one line naming the subcommand; its exit code."""
    print(f"voice-skill {command}: {exc}", file=sys.stderr)
    return exc.exit_code
