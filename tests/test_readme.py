"""The README is a manual, and this test holds it to the code.

Every ``voice-skill`` command in its shell blocks is run (those that need a microphone,
sudo, systemd or the network are only parsed, by the allow-list ``PARSE_ONLY`` below);
its event-log example is the real output of the command shown above it; every setting,
option and ``make`` target it names exists; every sentence it quotes as said is one the
skill says. ``--help`` of every subcommand has a description and no raw markup.
"""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from voice_skill.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (command words, parser) below ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from subparsers(child, (*path, name))


ALL_COMMANDS = [words for words, _ in subparsers(build_parser())]


# ---- --help of every command -----------------------------------------------------------

@pytest.mark.parametrize("words", [()] + ALL_COMMANDS, ids=lambda w: " ".join(w) or "voice-skill")
def test_help_of_every_command_has_a_description_and_no_raw_markup(words):
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as done:
        build_parser().parse_args([*words, "--help"])
    assert done.value.code == 0
    text = out.getvalue()
    assert "``" not in text, f"raw reStructuredText back-ticks in 'voice-skill {' '.join(words)} --help'"
    parser = build_parser()
    for word in words:
        parser = next(child for w, child in subparsers(parser) if w == (word,))
    assert parser.description and parser.description.strip(), \
        f"'voice-skill {' '.join(words)} --help' has no description"
