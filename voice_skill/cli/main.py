"""The ``voice-skill`` command line.

Exit codes: 0 success, 1 runtime failure, 2 bad input or usage. Every error is one line
on stderr naming the file and the problem; a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from typing import IO, Iterator, Sequence

from voice_skill import NOTICE, __version__, settings
from voice_skill.cli.types import number
from voice_skill.core.daytime import parse_hhmm
from voice_skill.cli import devices as devices_cli
from voice_skill.cli import history as history_cli
from voice_skill.cli import models as models_cli
from voice_skill.cli import routines as routines_cli
from voice_skill.cli import service as service_cli
from voice_skill.cli import settings as settings_cli
from voice_skill.cli import voice as voice_cli
from voice_skill.errors import RoutineError, UsageError, VoiceSkillError
from voice_skill.tts.choice import plan_voice

log = logging.getLogger("voice_skill")


class _CommandLineError(UsageError):
    """A usage error from the parser; its message already starts with the command's name."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _CommandLineError(f"{self.prog}: {message} (see {self.prog} --help)")


_DEBUG_HELP = "log details to stderr and show tracebacks"


def _debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--debug`` is accepted before the command and after it (``voice-skill run --debug``),
    at every level. Below the top, it defaults to "not given", so a subcommand never resets
    a ``--debug`` given before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if not any("--debug" in a.option_strings for a in child._actions):
                    child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
                _debug_everywhere(child)


def _hour(text: str) -> float:
    try:
        return parse_hhmm(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a time of day like 23:30") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="voice-skill",
        description="Cramp coach: say \"calf cramp\" and it talks you through easing it, hands-free. "
        "Runs offline. " + NOTICE,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="listen and coach (the microphone, or a recording with --input)",
                         description="Listen for \"calf cramp\" and coach. " + NOTICE)
    run.add_argument("--input", metavar="FILE.wav", help="run on a recording, on its own clock, instead of the microphone")
    run.add_argument("--events", metavar="PATH", help="write the JSON Lines event log to PATH ('-' for stdout)")
    run.add_argument("--speaker", choices=("none", "tts"), default=None,
                     help="speech output: tts speaks (the default live), none prints (the default with --input)")
    run.add_argument("--time-of-day", type=_hour, metavar="HH:MM",
                     help="the local time the run starts (chooses the night or workout routine; default now)")
    run.add_argument("--phrases", metavar="FILE",
                     help="a phrase file (TOML, as voice_skill/data/phrases.toml) to listen for instead of the built-in one")
    run.add_argument("--chunk-ms", type=number(10, 1000, whole=True, unit="ms"), default=100, help="audio chunk size for --input (default 100)")
    run.add_argument("--echo", type=number(0, 1), default=0.0, metavar="GAIN",
                     help=argparse.SUPPRESS)  # testing: mix the skill's own speech into a recording's input
    journal = run.add_mutually_exclusive_group()
    journal.add_argument("--journal", metavar="PATH",
                         help="record episodes in this cramp journal (live runs use the one in the user's data folder; "
                         "a recording is journaled only with this option)")
    journal.add_argument("--no-journal", action="store_true", help="do not record this run's episodes")
    settings.add_arguments(run)
    run.set_defaults(func=_cmd_run)

    for module in (routines_cli, models_cli, settings_cli, history_cli, service_cli, devices_cli, voice_cli):
        module.add_parser(sub)
    _debug_everywhere(parser)
    return parser


@contextlib.contextmanager
def _events_output(path: str | None, atomic: bool) -> Iterator[IO[str] | None]:
    """Where the event log goes. A file written for a recording appears whole or not at all."""
    if path is None:
        yield None
        return
    if path == "-":
        yield sys.stdout
        return
    target = os.path.abspath(path)
    tmp = target + ".part" if atomic else target
    try:
        fh = open(tmp, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the event log: {exc.strerror or exc}", path=path) from None
    ok = False
    try:
        with fh:
            yield fh
        ok = True
    finally:
        if atomic:
            if ok:
                os.replace(tmp, target)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def _print_transcript(record: dict) -> None:
    """Without an event log on stdout, a recording's run prints what the skill said and heard."""
    minutes, seconds = divmod(record["t"], 60)
    stamp = f"{int(minutes)}:{seconds:05.2f}"
    if record["event"] == "say":
        print(f"{stamp}  {record['text']}", flush=True)
    elif record["event"] == "heard" and record.get("intent"):
        print(f"{stamp}  (heard: {record['text']})", flush=True)
    elif record["event"] == "warning":
        print(f"{stamp}  warning: {record['text']}", flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from datetime import datetime

    from voice_skill.runtime.app import RunOptions, run_file, run_live
    from voice_skill.core.clock import local_hour_fraction
    from voice_skill.core.intents import PhraseTable
    from voice_skill.journal.store import Journal, JournalRecorder

    chosen = settings.from_args(args)
    plan_voice(chosen.voice)  # an unknown natural voice is a usage error before anything starts
    for note in chosen.notes():
        print(f"voice-skill: note: {note}", file=sys.stderr, flush=True)
    hour = args.time_of_day if args.time_of_day is not None else local_hour_fraction()
    rate, volume = settings.night_adjusted(chosen, hour)
    options = RunOptions(
        speaker=args.speaker or ("none" if args.input else "tts"),
        asr=chosen.asr,
        spotter=chosen.spotter,
        model=chosen.model,
        moonshine=chosen.moonshine,
        chunk_s=args.chunk_ms / 1000.0,
        hour=hour,
        rate_wpm=rate,
        volume=volume,
        voice=chosen.voice,
        pace=chosen.pace,
        chime=chosen.chime,
        echo_cancel=chosen.echo_cancel,
        manners=lambda hour_of_day: settings.night_adjusted(chosen, hour_of_day),
        echo_gain=args.echo,
        night_hours=chosen.night_hours,
        phrases=PhraseTable.load(args.phrases) if args.phrases else None,
    )
    options.routines, options.start_routine = routines_cli.for_settings(chosen)
    if options.phrases is not None:  # what the routines say must not be a command in these phrases either
        from voice_skill.core.routine import check_spoken_text

        for routine in options.routines.values():
            try:
                check_spoken_text(routine, options.phrases)
            except RoutineError as exc:
                raise RoutineError(f"{exc.message} (with the phrases of {args.phrases})", path=exc.path) from None
    if args.input:
        journal = Journal(args.journal) if args.journal else None
        listeners: list = [] if args.events == "-" else [_print_transcript]
        recorder = None
        try:
            if journal is not None:
                now = datetime.now()
                origin = now.replace(hour=int(hour), minute=int(round(hour % 1 * 60)) % 60, second=0, microsecond=0)
                recorder = JournalRecorder(journal, origin)
                listeners.append(recorder)
            with _events_output(args.events, atomic=True) as stream:
                session = run_file(args.input, options, stream, listeners=listeners)
            if recorder is not None:
                recorder.finish(session.clock.now())
        finally:
            if journal is not None:
                journal.close()
        return 0

    def announce(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    from voice_skill.devices import soundserver

    # A device named on the sound server (PulseAudio, PipeWire) is reached through it.
    input_device, output_device = soundserver.route(chosen.input_device, chosen.output_device)
    journal = None
    if not args.no_journal:
        try:
            journal = Journal(args.journal)
        except VoiceSkillError as exc:
            if args.journal:
                raise
            announce(f"warning: {exc}; coaching without the cramp journal")
    try:
        with _events_output(args.events, atomic=False) as stream:
            return run_live(options, stream, announce, input_device, output_device,
                            journal=journal, console_to_stderr=args.events == "-")
    finally:
        if journal is not None:
            journal.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in words  # until the arguments are parsed (a usage error shows its traceback too)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args = parser.parse_args(words)
        debug = bool(getattr(args, "debug", False))
        logging.getLogger().setLevel(logging.DEBUG if debug else logging.WARNING)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except VoiceSkillError as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        print(str(exc) if isinstance(exc, _CommandLineError) else f"voice-skill: {exc}", file=sys.stderr)
        return exc.exit_code  # the same code with --debug: it shows more, it does not change the outcome
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
