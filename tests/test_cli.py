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
