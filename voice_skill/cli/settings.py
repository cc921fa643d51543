"""``voice-skill config show|path``.

``add_parser(subparsers)`` registers the ``config`` subcommand; each action is a
``func(args) -> exit code``. ``config show`` takes every setting option too, so
``voice-skill config show --rate 150`` shows what ``run --rate 150`` would use.
"""

from __future__ import annotations

import argparse
import logging
import os

from voice_skill import settings as settings_mod
from voice_skill.tts.choice import plan_voice

log = logging.getLogger(__name__)


def _shown(value: object) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_table(s: settings_mod.Settings) -> str:
    rows = [(key, _shown(getattr(s, key)), s.sources[key]) for key in settings_mod.KEYS]
    header = ("SETTING", "VALUE", "FROM")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(2)]
    lines = [f"{a.ljust(widths[0])}  {b.ljust(widths[1])}  {c}".rstrip() for a, b, c in [header, *rows]]
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    s = settings_mod.from_args(args)
    state = "" if s.config_path is not None and s.config_path.is_file() else " (does not exist; defaults used)"
    print(f"Config file: {s.config_path}{state}")
    print(format_table(s))
    plan = plan_voice(s.voice)
    print(f"Voice: {plan.label}, because {plan.why} ('voice-skill voice show' measures it)")
    for note in s.notes():
        print(f"Note: {note}")
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    explicit = getattr(args, "config", None)
    print(os.path.expanduser(explicit) if explicit else settings_mod.config_path())
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    config = subparsers.add_parser(
        "config", help="show the effective settings and where each came from",
        description="Settings live in one TOML file in the user's config folder; every one is also an "
        "environment variable VOICE_SKILL_<NAME> and a command-line option.")
    actions = config.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="the effective settings and where each came from",
                              description="Print every setting's effective value and where it came from (default, "
                              "config file, environment or option); takes the options of 'run', so 'config show "
                              "--rate 150' shows what 'run --rate 150' would use.")
    settings_mod.add_arguments(show)
    show.set_defaults(func=cmd_show)
    path = actions.add_parser("path", help="print the config file's path",
                              description="Print the path of the config file the skill reads (it may not exist yet).")
    path.add_argument("--config", metavar="PATH", default=None, help=argparse.SUPPRESS)
    path.set_defaults(func=cmd_path)
    return config
