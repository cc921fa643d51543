"""``voice-skill service install|uninstall|status|unit``: the bedside service.

``add_parser(subparsers)`` registers the ``service`` subcommand; each action is a
``func(args) -> exit code``. It manages a systemd *user* unit, so run it as the person
whose session plays the sound, not with sudo.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

from voice_skill.cli.types import fail
from voice_skill.service import systemd as service
from voice_skill.errors import UsageError, VoiceSkillError

log = logging.getLogger(__name__)


def _run_args(text: str | None) -> list[str]:
    """Extra ``voice-skill run`` options, checked by the real parser before they go in a unit."""
    if not text:
        return []
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"--run-args: {exc}") from None
    from voice_skill.cli.main import build_parser  # noqa: PLC0415 (the CLI imports this module)

    try:
        args = build_parser().parse_args(["run", *words])
    except SystemExit:  # --help or --version inside --run-args
        raise UsageError("--run-args: give options of 'voice-skill run', not --help or --version") from None
    except UsageError as exc:
        raise UsageError(f"--run-args: {exc.message}") from None
    if args.input or args.events == "-":
        raise UsageError("--run-args: the service listens live; --input and --events - do not fit it")
    from voice_skill import settings  # noqa: PLC0415

    try:
        settings.resolve(settings.cli_values(args), env={}, path=None)  # the values, as 'run' checks them
    except UsageError as exc:
        raise UsageError(f"--run-args: {exc.message}") from None
    return words


def _unit_text(args: argparse.Namespace, systemctl: service.Systemctl | None) -> str:
    version = args.systemd_version
    if version is None and systemctl is not None:
        version = systemctl.version()
    sound = service.detect_sound_server() if args.sound_server == "auto" else args.sound_server
    command = [*service.entry_point(), "run", *_run_args(args.run_args)]
    return service.render_unit(command, sound_server=sound, systemd_version=version)


def _print_report(report: service.Report) -> None:
    for line in report.done:
        print(line)
    for line in report.notes[:1]:
        print(line)
    for command in report.todo:
        print(f"  {command}")
    for line in report.notes[1:]:
        print(line)


def cmd_unit(args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(_unit_text(args, service.Systemctl.find()))
    except VoiceSkillError as exc:
        return fail("service", exc)
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    systemctl = service.Systemctl.find()
    try:
        text = _unit_text(args, systemctl)
        report = service.install(text, service.unit_dir(), systemctl)
    except VoiceSkillError as exc:
        return fail("service", exc)
    _print_report(report)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        print("voice-skill service: note: this installed it for root's own user manager; for the person "
              "at the bedside, run it as that user (without sudo)", file=sys.stderr)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    try:
        report = service.uninstall(service.unit_dir(), service.Systemctl.find())
    except VoiceSkillError as exc:
        return fail("service", exc)
    _print_report(report)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    systemctl = service.Systemctl.find()
    try:
        state = service.status(service.unit_dir(), systemctl)
    except VoiceSkillError as exc:
        return fail("service", exc)
    for line in state.lines():
        print(line)
    if state.installed:
        print("logs: journalctl --user -u voice-skill -f")
    return 0


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a systemd version number like 252") from None
    if value < 200:
        raise argparse.ArgumentTypeError(f"systemd {value} is too old for user services")
    return value


def _unit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sound-server", choices=("auto", *service.SOUND_SERVERS), default="auto",
                   help="sound server to start after (auto: PipeWire or PulseAudio, whichever is installed)")
    p.add_argument("--run-args", metavar="'OPTIONS'",
                   help="options for 'voice-skill run' in the service, one quoted string, "
                        "e.g. --run-args='--input-device USB --volume 0.6'")
    p.add_argument("--systemd-version", type=_version, metavar="N",
                   help="write the unit for this systemd version (default: this machine's)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``service`` on an argparse subparsers object; returns its parser."""
    parser = subparsers.add_parser(
        "service", help="run the skill as a bedside service (systemd user unit)",
        description="Run the skill as a bedside service: a systemd user unit that starts at login, waits for "
        "the sound server and restarts on failure. Run it as the person whose session plays the sound, "
        "not with sudo.")
    actions = parser.add_subparsers(dest="service_action", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("install", help=f"write {service.UNIT_NAME}, enable and start it",
                           description=f"Write the user unit {service.UNIT_NAME}, enable it and start it now.")
    _unit_options(p)
    p.set_defaults(func=cmd_install)

    p = actions.add_parser("uninstall", help=f"stop, disable and remove {service.UNIT_NAME}",
                           description=f"Stop and disable the user unit {service.UNIT_NAME} and remove its file.")
    p.set_defaults(func=cmd_uninstall)

    p = actions.add_parser("status", help="is it installed, enabled and running",
                           description="Say whether the service is installed, enabled and running, and where "
                           "its log is.")
    p.set_defaults(func=cmd_status)

    p = actions.add_parser("unit", help="print the unit that install would write",
                           description="Print the unit file that 'install' would write, without installing it.")
    _unit_options(p)
    p.set_defaults(func=cmd_unit)
    return parser
