"""The command line as other programs see it: exit codes and one-line errors."""

import subprocess
import sys

import pytest


def voice_skill(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "voice_skill", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("content,problem", [
    (None, "no such file"),
    (b"", "empty"),
    (b"not audio, just words", "not a WAV file"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00"
     b"\x02\x00\x10\x00data\x00\x10\x00\x00\x01\x02", "truncated"),
])
def test_bad_recordings_exit_2_with_one_line(tmp_path, content, problem):
    path = tmp_path / "in.wav"
    if content is not None:
        path.write_bytes(content)
    events = tmp_path / "events.jsonl"
    result = voice_skill("run", "--input", str(path), "--events", str(events))
    assert_one_line_error(result, str(path), problem)
    assert not events.exists() and not list(tmp_path.glob("*.part")), "no half-written event log"


def test_unknown_option_exits_2_with_one_line():
    assert_one_line_error(voice_skill("run", "--frobnicate"), "--frobnicate")


def test_bad_option_value_names_it():
    assert_one_line_error(voice_skill("run", "--rate", "fast"), "fast")


def test_help_carries_the_notice():
    result = voice_skill("--help")
    assert result.returncode == 0
    assert "not medical advice" in result.stdout


def test_no_command_prints_usage_and_exits_2():
    result = voice_skill()
    assert result.returncode == 2 and "usage" in result.stderr


def test_unknown_option_names_the_program_once():
    result = voice_skill("run", "--frobnicate")
    assert "voice-skill: voice-skill" not in result.stderr, result.stderr
    assert result.stderr.startswith("voice-skill"), result.stderr


@pytest.mark.parametrize("args", [["--debug", "run"], ["run", "--debug"]])
def test_debug_before_or_after_the_command_keeps_the_exit_code(tmp_path, args):
    """--debug shows more (a traceback, details); it never changes the outcome."""
    missing = tmp_path / "missing.wav"
    result = voice_skill(*args, "--input", str(missing))
    assert result.returncode == 2, result
    assert "unrecognized" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"voice-skill: {missing}: no such file", result.stderr


def test_debug_is_accepted_after_every_command():
    import argparse

    from voice_skill.cli.main import build_parser

    def walk(parser, path):
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, [*path, name])

    commands = list(walk(build_parser(), []))
    assert len(commands) > 10
    for path, parser in commands:
        assert any("--debug" in a.option_strings for a in parser._actions), path


def test_debug_given_before_the_command_is_not_reset_by_it():
    from voice_skill.cli.main import build_parser

    assert build_parser().parse_args(["--debug", "run"]).debug is True
    assert build_parser().parse_args(["run", "--debug"]).debug is True
    assert build_parser().parse_args(["run"]).debug is False
