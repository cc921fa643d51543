"""The README is a manual, and this test holds it to the code.

Every ``voice-skill`` command in its shell blocks is run (those that need a microphone,
sudo, systemd or the network are only parsed, by the allow-list ``PARSE_ONLY`` below);
its event-log example is the real output of the command shown above it; every setting,
option and ``make`` target it names exists; every sentence it quotes as said is one the
skill says. ``--help`` of every subcommand has a description and no raw markup.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import re
import shlex
import shutil
import wave
from collections import defaultdict
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from voice_skill import settings
from voice_skill.models import catalog
from voice_skill.cli.main import build_parser
from voice_skill.core.intents import IntentParser

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


# ---- reading the README -------------------------------------------------------------------

def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, index of the block's first character) of every fenced code block."""
    return [(m.group(1), m.group(2), m.start()) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)]


def section(text: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next ``## ``."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def shell_commands(text: str) -> list[list[str]]:
    """The words of every command line in the README's ``sh`` blocks, comments dropped."""
    commands = []
    for lang, body, _ in fenced_blocks(text):
        if lang != "sh":
            continue
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table body row in ``text`` (header and rule rows dropped)."""
    lines = text.splitlines()
    rows = []
    for i, line in enumerate(lines):
        rule = re.compile(r"\|[-|\s]+\|")
        if not line.startswith("|") or rule.fullmatch(line):
            continue
        if i + 1 < len(lines) and rule.fullmatch(lines[i + 1]):
            continue  # a header
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def backticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# ---- which commands run here ----------------------------------------------------------------

# Commands that need what a test machine lacks or must not touch are only parsed: their
# options must exist (the parser accepts them) and their --help works (test above).
#   run without --input: the microphone and loudspeaker
#   devices, check: the sound devices (check also records)
#   models download: the network; models verify: an installed Vosk model; models remove: deletes
#   service install / uninstall: the user's systemd manager
#   history --forget: erases the journal (and asks on a terminal)
#   voice prepare: renders every sentence of every routine, minutes of CPU
PARSE_ONLY = {
    ("run",): "microphone and loudspeaker",
    ("devices",): "sound devices",
    ("check",): "microphone and loudspeaker",
    ("models", "download"): "network",
    ("models", "verify"): "an installed Vosk model",
    ("models", "remove"): "deletes a model",
    ("service", "install"): "systemd user manager",
    ("service", "uninstall"): "systemd user manager",
    ("history", "--forget"): "erases the journal",
    ("voice", "prepare"): "minutes of rendering (tests/test_voice.py runs it on a few sentences)",
}
# Other programs the README shows (installing, cloning, reading the service's log), checked
# only for being what they claim: make targets exist, scripts and test files exist.
OTHER_PROGRAMS = {"sudo", "git", "journalctl"}


def parse_only_reason(argv: list[str]) -> str | None:
    if argv[:1] == ["run"] and "--input" not in argv:
        return PARSE_ONLY[("run",)]
    for key, reason in PARSE_ONLY.items():
        if key != ("run",) and tuple(argv[:len(key)]) == key:
            return reason
    return None


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def check_foreign_command(words: list[str]) -> None:
    """A command line that is not ``voice-skill``: what it names must exist."""
    if words[0] == "make":
        targets = [w for w in words[1:] if "=" not in w]
        assert targets and set(targets) <= make_targets(), f"no such make target: {' '.join(words)}"
    elif words[0] == ".venv/bin/python":
        if words[1:3] == ["-m", "pytest"]:
            files = [w for w in words[3:] if not w.startswith("-")]
        else:
            files = words[1:2]
        assert files and all((ROOT / f).is_file() for f in files), f"no such file: {' '.join(words)}"
    else:
        assert words[0] in OTHER_PROGRAMS, f"the README runs an unknown program: {' '.join(words)}"


# A recording for the README's examples: "calf cramp" at 1 s and "stop" at 12.8 s, in
# espeak-ng's default English voice (the README says so above its event-log example).
NIGHT_WAV = [1.0, "calf cramp", 11.0, "stop", 1.5]


def write_night_wav(path: Path) -> None:
    from voice_skill.devtools import speechgen

    samples = speechgen.compose(NIGHT_WAV).samples
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.astype("<i2").tobytes())


def example_files(text: str, home: Path) -> None:
    """Write each ``toml`` block of the README to the ``~/...toml`` path named just before it."""
    for lang, body, at in fenced_blocks(text):
        if lang == "toml":
            named = re.findall(r"`(~/[^`]+\.toml)`", text[:at])
            assert named, "a TOML example needs the path it goes to named before it"
            target = home / named[-1][2:]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body, encoding="utf-8")


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def readme_runs(tmp_path_factory):
    """Every runnable ``voice-skill`` command of the README, run once in README order in a
    fresh home folder, with ``night.wav`` in the working folder: {command line: Ran}. Without
    espeak-ng there is no ``night.wav``, and the commands that read it are left out."""
    from voice_skill.cli.main import main

    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("work")
    speech = shutil.which("espeak-ng") is not None
    if speech:
        write_night_wav(work / "night.wav")
    text = readme_text()
    example_files(text, home)
    results: dict[str, Ran] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        for name in list(os.environ):
            if name.startswith(("XDG_", "VOICE_SKILL_")):
                mp.delenv(name)
        mp.chdir(work)
        for words in shell_commands(text):
            if words[0] != "voice-skill" or parse_only_reason(words[1:]) or ("night.wav" in words and not speech):
                continue
            argv = [str(home) + w[1:] if w.startswith("~/") else w for w in words[1:]]
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = main(argv)
            results[shlex.join(words)] = Ran(code, out.getvalue(), err.getvalue())
    results["_home"] = Ran(0, str(home), str(work))
    return results


def ran_command(runs: dict[str, Ran], line: str) -> Ran:
    if line not in runs and "night.wav" in line:
        pytest.skip("espeak-ng makes the README's example recording")
    return runs[line]


# ---- the commands ---------------------------------------------------------------------------

def test_readme_starts_with_the_two_set_up_commands():
    first = fenced_blocks(readme_text())[0]
    assert first[0] == "sh" and [w[:2] for w in shell_commands("```sh\n" + first[1] + "```\n")] == [
        ["make", "run"], ["make", "test"]]


def test_every_command_line_is_runnable_or_known(readme_runs):
    commands = shell_commands(readme_text())
    assert any(w[0] == "voice-skill" for w in commands)
    for words in commands:
        line = shlex.join(words)
        if words[0] != "voice-skill":
            check_foreign_command(words)
        elif parse_only_reason(words[1:]):
            build_parser().parse_args(words[1:])  # a usage error raises
        else:
            ran = ran_command(readme_runs, line)
            assert ran.code == 0, f"'{line}' exited {ran.code}: {ran.err}"


def test_parse_only_commands_exist():
    """The allow-list names real commands (a renamed one must not hide there)."""
    commands = {words for words in ALL_COMMANDS}
    for key in PARSE_ONLY:
        words = tuple(w for w in key if not w.startswith("-"))
        assert words in commands, key
        if key[-1].startswith("--"):
            options = [o for _, parser in subparsers(build_parser()) for a in parser._actions for o in a.option_strings]
            assert key[-1] in options, key


def test_every_option_named_exists():
    options = set()
    for _, parser in [((), build_parser())] + list(subparsers(build_parser())):
        for action in parser._actions:
            options.update(action.option_strings)
    options.update(f"--no-{o[2:]}" for o in list(options))
    foreign = {"--user": "journalctl", "--minutes": "scripts/bench.py", "--near-minutes": "scripts/bench.py",
               "--split": "scripts/eval_utterances.py", "--clips": "scripts/eval_spotter.py",
               "--set": "scripts/eval_spotter.py", "--denial": "scripts/eval_spotter.py",
               "--no-deps": "pip download", "--platform": "pip download",
               "--seconds": "scripts/bench_listening.py", "--runs": "scripts/bench_listening.py",
               "--voices": "scripts/eval_said_alone.py"}
    for name, owner in foreign.items():
        if owner.endswith(".py"):
            assert f'"{name}"' in (ROOT / owner).read_text(), (name, owner)
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", readme_text()))
    assert named - options - set(foreign) == set(), "options the README names that no command takes"


def test_every_setting_is_documented_and_every_documented_setting_exists():
    text = section(readme_text(), "Settings")
    keys = []
    for row in table_rows(text):
        keys += backticked(row[0])
    assert sorted(keys) == sorted(settings.KEYS)
    for env in re.findall(r"VOICE_SKILL_([A-Z_]+)", readme_text()):
        assert env.lower() in settings.KEYS, f"VOICE_SKILL_{env} is no setting"


def test_the_user_phrases_are_understood():
    rows = table_rows(section(readme_text(), "Using it"))
    parser = IntentParser()
    quoted = [q for row in rows for q in re.findall(r'"([^"]+)"', row[0])]
    assert len(quoted) > 40
    misunderstood = [q for q in quoted if parser.parse(q) is None]
    assert misunderstood == []


def test_the_routine_listings_are_what_routines_show_prints():
    from voice_skill.cli.main import main
    from voice_skill.core.routine import builtin_routines

    text = (ROOT / "docs" / "routines.md").read_text(encoding="utf-8")
    found = re.findall(r"<summary><code>([\w-]+)</code>: (.*?)</summary>\n\n```\n(.*?)```", text, re.S)
    assert sorted(rid for rid, _, _ in found) == sorted(builtin_routines())
    for rid, summary, listing in found:
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(["routines", "show", rid]) == 0
        assert out.getvalue() == f"{rid}: {summary}\n{listing}", f"docs/routines.md: {rid} is stale"


# ---- the event log ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def emitted_events() -> dict[str, set[str]]:
    """Every event the package writes, with the fields it can carry, read from its source:
    ``events.write(t, "name", field=...)`` and ``Emit("name", {...})`` calls (a ``**fields``
    or a dict built beforehand counts every key that function puts in a dict)."""
    found: dict[str, set[str]] = defaultdict(set)

    def names(node) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return names(node.body) + names(node.orelse)
        return []

    for path in sorted((ROOT / "voice_skill").rglob("*.py")):
        for func in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            built = set()
            for node in ast.walk(func):
                if isinstance(node, ast.Dict):
                    built |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
                elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) \
                        and isinstance(node.slice, ast.Constant):
                    built.add(node.slice.value)
            for node in ast.walk(func):
                if not isinstance(node, ast.Call):
                    continue
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if called == "write" and len(node.args) >= 2 and names(node.args[1]):
                    fields = {k.arg for k in node.keywords if k.arg}
                    if any(k.arg is None for k in node.keywords):
                        fields |= built
                    for name in names(node.args[1]):
                        found[name] |= fields
                elif called == "Emit" and node.args and names(node.args[0]):
                    arg = node.args[1] if len(node.args) > 1 else None
                    fields = ({k.value for k in arg.keys if isinstance(k, ast.Constant)}
                              if isinstance(arg, ast.Dict) else built)
                    for name in names(node.args[0]):
                        found[name] |= fields
    return dict(found)


@lru_cache(maxsize=None)
def said_sentences() -> set[str]:
    """Every sentence the skill can say: the built-in routines' lines and its own messages,
    with no leg named and with either leg."""
    from voice_skill.core.coach import Messages
    from voice_skill.core.rehearsal import rehearse
    from voice_skill.core.routine import builtin_routines, fill_placeholders

    texts = []
    for routine in builtin_routines().values():
        for leg in (None, "left", "right"):
            texts += [line.text for line in rehearse(routine, leg=leg)]
    for text in Messages.load().texts.values():
        texts += [fill_placeholders(text, leg) for leg in (None, "left", "right")]
    return {s for text in texts for s in re.split(r"(?<=[.!?])\s+", text.strip())}


def event_example() -> tuple[list[str], list[dict]]:
    """The command above the README's JSON example, and the example's records."""
    text = section(readme_text(), "The event log")
    blocks = fenced_blocks(text)
    at = next(i for i, (lang, _, _) in enumerate(blocks) if lang == "json")
    command = shell_commands("```sh\n" + blocks[at - 1][1] + "```\n")
    assert len(command) == 1 and "--events" in command[0], "the example's command comes just before it"
    return command[0], [json.loads(line) for line in blocks[at][1].splitlines()]


def test_the_event_example_uses_only_events_and_fields_the_skill_writes():
    events = emitted_events()
    sentences = said_sentences()
    intents = {name for name, _ in IntentParser().table.intents}
    _, records = event_example()
    assert len(records) >= 8
    for record in records:
        assert isinstance(record.get("t"), (int, float)) and "event" in record, record
        assert record["event"] in events, record
        assert set(record) - {"t", "event"} <= events[record["event"]], record
        if record["event"] in ("say", "cut"):
            unsaid = [s for s in re.split(r"(?<=[.!?])\s+", record["text"]) if s not in sentences]
            assert unsaid == [], f"the README quotes sentences the skill does not say: {unsaid}"
        if record["event"] == "heard" and record["intent"] is not None:
            assert record["intent"] in intents


def test_the_event_example_is_what_its_command_prints(readme_runs):
    """The same events, fields and words as a real run on the README's recording (numbers
    may drift with another espeak-ng; the engine's detail depends on what is installed)."""
    command, records = event_example()
    ran = ran_command(readme_runs, shlex.join(command))
    assert ran.code == 0, ran.err
    real = [json.loads(line) for line in ran.out.splitlines()]
    if real[0].get("asr") != records[0]["asr"]:
        pytest.skip(f"the example was made with {records[0]['asr']}; here {real[0].get('asr')} is in use "
                    "(a Vosk model in models/, or no onnxruntime for the spotter)")

    def shape(record: dict) -> tuple:
        return tuple((k, v) if isinstance(v, str) or v is None else (k,)
                     for k, v in record.items() if k != "detail")

    assert [shape(r) for r in real] == [shape(r) for r in records]


def test_the_event_table_names_every_event_and_field():
    events = emitted_events()
    table = {}
    for row in table_rows(section(readme_text(), "The event log")):
        (name,) = backticked(row[0])
        table[name] = set(backticked(row[1]))
    assert set(table) == set(events), "events the code writes and the README's table differ"
    for name, fields in events.items():
        assert table[name] == fields, f"{name}: the README lists {sorted(table[name])}, the code writes {sorted(fields)}"


def test_the_readme_says_which_routine_endings_carry_a_reason():
    """A routine stopped by "stop" has no ``reason`` (issue 13: the README said it had one);
    the others are listed with the reasons the coach gives."""
    coach_source = (ROOT / "voice_skill" / "core" / "coach.py").read_text(encoding="utf-8")
    reasons = set(re.findall(r'_end_routine\("stopped", now, out, reason="(\w+)"\)', coach_source))
    assert reasons and re.search(r'_end_routine\("stopped", now, out\)', coach_source), "the stop command"
    (row,) = [r for r in table_rows(section(readme_text(), "The event log")) if r[0] == "`routine`"]
    assert 'stopped by "stop" has no `reason`' in row[2]
    assert reasons <= set(backticked(row[2])), f"reasons the README does not list: {reasons - set(backticked(row[2]))}"
    _, records = event_example()
    stopped = [r for r in records if r.get("state") == "stopped"]
    assert stopped and all("reason" not in r for r in stopped)


def test_quoted_sentences_are_ones_the_skill_says_or_prints():
    """Sentences in double quotes are quotes of the skill: said ones must be in its routines
    or messages, printed ones in its source."""
    text = readme_text()
    sentences = said_sentences()
    printed = {"Cramp coach: listening with ...": ("runtime/app.py", "Cramp coach: listening with {description}"),
               "No microphone found.": ("devices/microphone.py", "No microphone found.")}
    for module, needle in printed.values():
        assert needle in (ROOT / "voice_skill" / module).read_text(encoding="utf-8")
    for quote in re.findall(r'"([A-Z][^"]*[.!?])"', text):
        if quote in printed:
            continue
        unsaid = [s for s in re.split(r"(?<=[.!?])\s+", quote) if s not in sentences]
        assert unsaid == [], f"the README quotes sentences the skill does not say: {unsaid}"


# ---- the findings of issue 13 about the README's claims --------------------------------------

def test_the_engine_is_named_in_the_first_line_live_and_in_the_event_log_for_a_recording(readme_runs):
    text = section(readme_text(), "Speech models")
    assert "first line" in text and "with `--input` it prints no such line" in text and "`engine`" in text
    ran = ran_command(readme_runs, "voice-skill run --input night.wav --time-of-day 23:30 --events -")
    assert "listening with" not in ran.err
    assert json.loads(ran.out.splitlines()[0])["event"] == "engine"
    app = (ROOT / "voice_skill" / "runtime" / "app.py").read_text(encoding="utf-8")
    assert 'announce(f"Cramp coach: listening with {description}' in app  # the live first line


def test_a_recording_is_journaled_only_with_journal(readme_runs):
    home, work = Path(readme_runs["_home"].out), Path(readme_runs["_home"].err)
    text = section(readme_text(), "The cramp journal")
    assert "A recording (`--input`) is journaled only when\n`--journal PATH`" in text
    named = [w for words in shell_commands(text) if words[:2] == ["voice-skill", "run"]
             for w in words[words.index("--journal") + 1:][:1]]
    assert named, "the journal section shows a recording journaled with --journal"
    ran_command(readme_runs, f"voice-skill run --input night.wav --journal {named[0]}")
    assert not (home / ".local" / "share" / "voice-skill" / "journal.sqlite3").exists(), \
        "a recording without --journal wrote the user's journal"
    assert named and all((work / name).is_file() for name in named)
    ran = ran_command(readme_runs, f"voice-skill history --journal {named[0]}")
    assert "1 episode" in ran.out


def test_both_readmes_agree_on_where_downloads_go():
    user_dir = "~/.local/share/voice-skill/models"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "environ", env)
        assert str(catalog.user_models_dir()).endswith(user_dir[1:])
    for path in (README, ROOT / "models" / "README.md"):
        for paragraph in path.read_text(encoding="utf-8").split("\n\n"):
            for line in paragraph.splitlines():
                if "voice-skill models download" in line and "--dir" not in line:
                    assert user_dir in line or user_dir in paragraph.replace("\n", " "), \
                        f"{path.name}: 'voice-skill models download' without --dir goes to {user_dir}: {line}"
                if "make model" in line:
                    assert "--dir models" in line or "--dir models" in paragraph, f"{path.name}: {line}"


# ---- shape ---------------------------------------------------------------------------------

def test_the_readme_is_a_manual_not_a_lab_notebook():
    text = readme_text()
    assert len(text.splitlines()) < 400
    for title in ("Set-up", "Using it", "Commands", "The event log", "Settings", "Your own routines",
                  "Speech models", "The cramp journal", "When things go wrong", "How it works", "Figures"):
        section(text, title)
    for link in re.findall(r"\]\(((?:docs|models)/[^)#]+)", text):
        assert (ROOT / link).is_file(), link


def test_every_figure_is_in_the_measurements_and_names_the_command_that_made_it():
    measured = (ROOT / "docs" / "measurements.md").read_text(encoding="utf-8")
    rows = table_rows(section(readme_text(), "Figures"))
    assert len(rows) >= 6
    for what, figure, made_by in rows:
        for number in re.findall(r"\d+(?:\.\d+)?", figure):
            assert number in measured, f"{what}: {number} is not in docs/measurements.md"
        (command,) = backticked(made_by)
        check_foreign_command(shlex.split(command))
