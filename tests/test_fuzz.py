"""Fuzzing the two file inputs a user can hand the skill: recordings (``voice-skill run
--input``) and routine files (``voice-skill routines validate``).

Whatever the bytes, the command ends promptly with exit 0 (the file happened to be
usable) or exit 2 with exactly one line on stderr, and never a traceback. Most cases go
through ``cli.main`` in this process (the very code the entry point runs). A seeded
handful also run the installed command as a child process with a time limit, which is
what catches a hang or a crash in native code.

Uses hypothesis when it is installed; otherwise a seeded random generator.
"""

from __future__ import annotations

import math
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from voice_skill.cli import main as cli

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - the seeded generator below still runs
    given = None

REPO = Path(__file__).resolve().parent.parent
FUZZ_SEED = 20240611

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
SIZES = [0, 1, 2, 3, 44, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 3_000_000_000]


def chunk(cid: bytes, body: bytes, declared: int | None = None) -> bytes:
    size = len(body) if declared is None else declared
    return cid + struct.pack("<I", size & 0xFFFFFFFF) + body + (b"\0" if len(body) % 2 else b"")


def fmt_body(tag: int, channels: int, rate: int, bits: int, extra: bytes = b"") -> bytes:
    align = max(0, channels * bits // 8) & 0xFFFF
    return struct.pack("<HHIIHH", tag & 0xFFFF, channels & 0xFFFF, rate & 0xFFFFFFFF,
                       (rate * align) & 0xFFFFFFFF, align, bits & 0xFFFF) + extra


def wav_case(rng: random.Random) -> tuple[bytes, bool]:
    """A WAV-ish file and whether it is certainly invalid."""
    kind = rng.choice(["random", "header", "header", "header", "float-nan", "order", "truncated"])
    if kind == "random":
        n = rng.choice([0, 1, 4, 11, 12, 44, rng.randint(0, 3000)])
        head = rng.choice([b"", b"RIFF", b"RIFF\0\0\0\0WAVE", b"RIFX"])
        return head + bytes(rng.getrandbits(8) for _ in range(n)), True
    tag = rng.choice([PCM, PCM, FLOAT, EXTENSIBLE, 0, 2, 0x55, 0xFFFF])
    channels = rng.choice([0, 1, 1, 2, 3, 64, 65, 0xFFFF])
    rate = rng.choice([0, 1, 999, 8000, 16000, 44100, 48000, 768000, 768001, 0xFFFFFFFF])
    bits = rng.choice([0, 1, 8, 12, 16, 24, 32, 64, 0xFFFF])
    extra = b"" if tag != EXTENSIBLE else bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 8, 24])))
    frames = rng.randint(0, 400)
    data = bytes(rng.getrandbits(8) for _ in range(frames * max(1, channels % 8) * max(1, bits // 8) % 4000))
    certain = False
    if kind == "float-nan":
        tag, bits, channels, rate = FLOAT, 32, 1, 16000
        values = [rng.choice([math.nan, math.inf, -math.inf, 0.5]) for _ in range(64)] + [math.nan]
        data = struct.pack(f"<{len(values)}f", *values)
        extra = b""
        certain = True
    declared = rng.choice([None, None] + SIZES)
    parts = [chunk(b"fmt ", fmt_body(tag, channels, rate, bits, extra), rng.choice([None, None, 0, 14, 0xFFFFFFFF])),
             chunk(b"data", data, declared)]
    junk = [chunk(bytes(rng.choice(b"abcdLIST") for _ in range(4)), bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))),
                  rng.choice([None, None, 0xFFFFFFF0]))
            for _ in range(rng.randint(0, 2))]
    if kind == "order":
        parts.reverse()  # data before fmt
        certain = True
    for j in junk:
        parts.insert(rng.randint(0, len(parts)), j)
    body = b"".join(parts)
    riff = b"RIFF" + struct.pack("<I", rng.choice([len(body) + 4, 0, 0xFFFFFFFF])) + b"WAVE" + body
    if kind == "truncated":
        riff = riff[: rng.randint(0, len(riff))]
    return riff, certain


def check_run(capsys, path: Path, certain: bool) -> None:
    code = _main(["run", "--no-journal", "--input", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if certain:
        assert code == 2, (code, err)
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("voice-skill: "), err


def _main(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse's own exits
        return int(exc.code or 0)


def test_fuzz_recordings_in_process_seeded(tmp_path, capsys) -> None:
    rng = random.Random(FUZZ_SEED)
    path = tmp_path / "fuzz.wav"
    t0 = time.monotonic()
    for i in range(150):
        data, certain = wav_case(rng)
        path.write_bytes(data)
        started = time.monotonic()
        check_run(capsys, path, certain)
        assert time.monotonic() - started < 20, f"case {i} took too long"
    assert time.monotonic() - t0 < 120


if given is not None:
    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(seed=st.integers(0, 2**32 - 1))
    def test_fuzz_recordings_with_hypothesis(tmp_path, capsys, seed) -> None:
        path = tmp_path / "h.wav"
        data, certain = wav_case(random.Random(seed))
        path.write_bytes(data)
        check_run(capsys, path, certain)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.binary(max_size=600))
    def test_fuzz_raw_bytes_with_hypothesis(tmp_path, capsys, data) -> None:
        path = tmp_path / "b.wav"
        path.write_bytes(data)
        check_run(capsys, path, certain=not data.startswith(b"RIFF"))


def test_declared_lengths_far_beyond_the_file(tmp_path, capsys) -> None:
    """Multi-gigabyte declared lengths are refused at once, not read or allocated (0x7FFFFFFF
    and 0xFFFFFFFF are what streaming writers leave: those files play to their real end)."""
    for declared in (0x7FFFFFFF, 0xFFFFFFFF):
        path = tmp_path / f"stream-{declared}.wav"
        path.write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + chunk(b"fmt ", fmt_body(PCM, 1, 16000, 16))
                         + chunk(b"data", b"\1\0" * 160, declared))
        assert _main(["run", "--no-journal", "--input", str(path)]) == 0, capsys.readouterr().err
        capsys.readouterr()
    for declared in (0x80000000, 0xFFFFFFFE, 3_000_000_000):
        path = tmp_path / f"big-{declared}.wav"
        path.write_bytes(b"RIFF" + struct.pack("<I", 36 + 320) + b"WAVE" + chunk(b"fmt ", fmt_body(PCM, 1, 16000, 16))
                         + chunk(b"data", b"\1\0" * 160, declared))
        t0 = time.monotonic()
        code = _main(["run", "--no-journal", "--input", str(path)])
        err = capsys.readouterr().err
        assert time.monotonic() - t0 < 5
        assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_zero_length_and_nan_files(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    nan = tmp_path / "nan.wav"
    nan.write_bytes(b"RIFF" + struct.pack("<I", 36 + 16) + b"WAVE" + chunk(b"fmt ", fmt_body(FLOAT, 1, 16000, 32))
                    + chunk(b"data", struct.pack("<4f", 0.1, math.nan, 0.2, 0.3)))
    for path, needle in ((empty, "empty"), (nan, "NaN")):
        code = _main(["run", "--no-journal", "--input", str(path)])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------- routine files

def routine_case(rng: random.Random, base: str) -> str:
    lines = base.splitlines()
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["drop", "dup", "number", "string", "bytes", "swap", "table"])
        if not lines:
            break
        i = rng.randrange(len(lines))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "number" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = key + "= " + rng.choice(["nan", "inf", "-inf", "-1", "0", "1e308", "99999999999999999999",
                                               "1.5", "[]", "{}", "true", '""', "[1, 2, nan]"])
        elif op == "string" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = key + "= " + rng.choice(['"', '""', '"' + "x" * 5000 + '"', '"\\u0000"', "'''", '"\u202e"'])
        elif op == "bytes":
            pos = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + "".join(chr(rng.choice([0, 7, 0x7F, 0xFFFD, 0x41, 0x5B, 0x22])) for _ in range(3)) + lines[i][pos:]
        elif op == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "table":
            lines.insert(i, rng.choice(["[[steps]]", "[steps]", "[x.y.z]", "steps = 3"]))
    return "\n".join(lines) + "\n"


def test_fuzz_routine_files_seeded(tmp_path, capsys) -> None:
    rng = random.Random(FUZZ_SEED)
    base_files = sorted((REPO / "voice_skill" / "data" / "routines").glob("*.toml"))
    path = tmp_path / "routine.toml"
    results = {0: 0, 2: 0}
    for i in range(200):
        text = routine_case(rng, rng.choice(base_files).read_text(encoding="utf-8"))
        if rng.random() < 0.05:
            path.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))))
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        code = _main(["routines", "validate", str(path)])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        assert code in (0, 2), (i, code, captured.err)
        if code == 2:
            lines = captured.err.strip().splitlines()
            assert len(lines) == 1, (i, captured.err)
        results[code] += 1
    assert results[2] > 50  # most mutations are caught


# ---------------------------------------------------------------- as a user runs it

def _command() -> list[str]:
    script = Path(sys.executable).with_name("voice-skill")
    return [str(script)] if script.exists() else [sys.executable, "-m", "voice_skill"]


def test_fuzz_through_the_installed_command(tmp_path) -> None:
    """A seeded dozen cases as child processes: no hang (time limit), no crash, no traceback."""
    rng = random.Random(FUZZ_SEED + 1)
    for i in range(12):
        data, certain = wav_case(rng)
        path = tmp_path / f"case{i}.wav"
        path.write_bytes(data)
        try:
            done = subprocess.run([*_command(), "run", "--no-journal", "--input", str(path)], capture_output=True,
                                  text=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"case {i} hung: {data[:60]!r}")
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (0, 2) and (done.returncode == 0 or len(done.stderr.strip().splitlines()) == 1), \
            (i, done.returncode, done.stderr)
        if certain:
            assert done.returncode == 2
