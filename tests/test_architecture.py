"""The import contract of docs/architecture.md: each folder of the package imports only the
folders below it, and the libraries that touch devices, engines and processes stay in the
one folder that owns them. Read from the source (every import, including those inside
functions; imports under ``if TYPE_CHECKING:`` are annotations only and do not count)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "voice_skill"

# folder -> the package's folders (or top-level modules) it may import
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "settings": {"errors", "core"},
    "audio": {"errors", "core"},
    "models": {"errors"},
    "journal": {"errors", "core"},
    "ui": {"errors", "core"},
    "service": {"errors", "settings"},
    "tts": {"errors", "core", "audio"},
    "asr": {"errors", "core", "audio", "models"},
    "devices": {"errors", "core", "audio", "tts"},
    "runtime": {"errors", "core", "settings", "audio", "models", "journal", "ui", "tts", "asr", "devices"},
    "cli": {"errors", "core", "settings", "audio", "models", "journal", "ui", "service", "tts", "asr", "devices",
            "runtime"},
    "devtools": {"errors", "core", "audio", "tts", "asr", "models"},
}
# library -> the only folders that may import it
OWNED_BY: dict[str, set[str]] = {
    "sounddevice": {"devices"},
    "pyttsx3": {"tts"},
    "pocketsphinx": {"asr"},
    "vosk": {"asr"},
    "onnxruntime": {"asr", "tts"},
    "multiprocessing": {"runtime"},
    "sqlite3": {"journal"},
    "urllib": {"models"},
    "rich": {"ui", "runtime", "cli"},
    "subprocess": {"devices", "service", "devtools"},
    "piper": {"tts", "devtools"},
}
# The core is logic on data: no clock read, no thread, no array maths, except the real clock.
CORE_FORBIDDEN = {"time", "threading", "numpy", "socket", "signal", "os"}
CORE_CLOCK = "voice_skill/core/clock.py"
TOP_LEVEL = {"__init__", "__main__"}  # the package's own entry points import what they need


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "voice_skill"


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), str(path))
    annotation_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            annotation_only.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in annotation_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "voice_skill":
                found += [(f"voice_skill.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
    return found


def _graph() -> dict[Path, list[tuple[str, int]]]:
    return {path: _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _where(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent)
    return relative.parts[1].removesuffix(".py") if len(relative.parts) > 2 else relative.stem


def test_every_folder_is_in_the_contract():
    folders = {_where(path) for path in PACKAGE.rglob("*.py")} - TOP_LEVEL
    assert folders <= set(MAY_IMPORT), f"folders the contract does not name: {folders - set(MAY_IMPORT)}"


def test_each_folder_imports_only_the_folders_below_it():
    broken = []
    for path, imports in _graph().items():
        here = _where(path)
        if here in TOP_LEVEL:
            continue
        for module, line in imports:
            if not module.startswith("voice_skill"):
                continue
            there = _folder(module)
            if there not in (here, "voice_skill", "NOTICE", "__version__") and there not in MAY_IMPORT[here]:
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {module}")
    assert not broken, "\n".join(broken)


def test_devices_engines_and_processes_stay_in_their_folders():
    broken = []
    for path, imports in _graph().items():
        here = _where(path)
        for module, line in imports:
            library = module.split(".")[0]
            if library in OWNED_BY and here not in OWNED_BY[library]:
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {module}")
    assert not broken, "\n".join(broken)


def test_the_core_reads_no_clock_and_starts_no_thread():
    broken = []
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        if path.relative_to(PACKAGE.parent).as_posix() == CORE_CLOCK:
            continue
        for module, line in _imports(path):
            if module.split(".")[0] in CORE_FORBIDDEN:
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("source, expected", [
    ("import sounddevice\n", [("sounddevice", 1)]),
    ("def f():\n    from voice_skill.devices import speaker\n", [("voice_skill.devices", 2)]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sounddevice\n", [("typing", 1)]),
    ("from voice_skill import settings, errors\n", [("voice_skill.settings", 1), ("voice_skill.errors", 1)]),
])
def test_the_reader_sees_every_import_but_annotations(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert _imports(path) == expected


def test_a_forbidden_import_would_be_caught(tmp_path, monkeypatch):
    """The contract is not vacuous: a core module importing a device is reported."""
    fake = tmp_path / "voice_skill"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "bad.py").write_text("from voice_skill.devices.speaker import SoundSpeaker\nimport time\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    with pytest.raises(AssertionError, match="core/bad.py:1 .core. imports voice_skill.devices"):
        test_each_folder_imports_only_the_folders_below_it()
    with pytest.raises(AssertionError, match="core/bad.py:2 imports time"):
        test_the_core_reads_no_clock_and_starts_no_thread()


def test_the_layers_point_one_way():
    """No two folders may import each other, directly or around a loop."""
    allowed = defaultdict(set, {k: set(v) for k, v in MAY_IMPORT.items()})
    seen: dict[str, int] = {}

    def visit(node: str, stack: tuple[str, ...]) -> None:
        if node in stack:
            raise AssertionError(f"a loop in the contract: {' -> '.join(stack + (node,))}")
        if seen.get(node) == 2:
            return
        for nxt in allowed[node]:
            visit(nxt, stack + (node,))
        seen[node] = 2

    for folder in MAY_IMPORT:
        visit(folder, ())
