"""What a Vosk model folder must hold, checked cheaply at every start and fully on request
(``voice-skill models verify``: every file against the install manifest's SHA-256)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from voice_skill.errors import ModelError
from voice_skill.models.catalog import models_in

SAMPLE_RATE = 16_000
MANIFEST_NAME = ".voice-skill-manifest.json"
_FST_MAGIC = b"\xd6\xfd\xb2\x7e"  # OpenFst's magic number, little-endian
_KALDI_BINARY = b"\x00B"  # Kaldi's binary-mode marker


@dataclass(frozen=True)
class ModelLayout:
    """The files of a Vosk model folder that the skill relies on."""

    path: Path
    final_mdl: Path
    mfcc_conf: Path
    graph_files: tuple[Path, ...]
    runtime_grammar: bool  # HCLr.fst + Gr.fst (small models); HCLG.fst alone cannot take a grammar
    sample_rate: int


def _conf_sample_rate(conf: Path) -> int:
    try:
        text = conf.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ModelError(f"cannot read {conf.name}: {exc.strerror or exc}", path=str(conf)) from None
    rate = SAMPLE_RATE  # Kaldi's default when the option is absent
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("--sample-frequency="):
            value = line.split("=", 1)[1].strip()
            try:
                rate = int(float(value))
            except ValueError:
                raise ModelError(f"unreadable --sample-frequency value {value!r}", path=str(conf)) from None
    return rate


def _check_file(path: Path, magic: bytes | None, what: str, model: Path) -> None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(len(magic) if magic else 0)
    except OSError as exc:
        raise ModelError(f"cannot read {path.relative_to(model)}: {exc.strerror or exc}", path=str(model)) from None
    if size == 0:
        raise ModelError(f"{path.relative_to(model)} is empty (truncated download or copy?)", path=str(model))
    if magic and head != magic:
        raise ModelError(f"{path.relative_to(model)} is not a valid {what} (corrupt file?)", path=str(model))


def check_model_dir(path: str | os.PathLike[str], *, sample_rate: int = SAMPLE_RATE) -> ModelLayout:
    """Check that ``path`` is a Vosk model folder for ``sample_rate`` audio, cheaply.

    Raises ModelError naming the path and the one problem found. Files listed in an
    install manifest are also checked for their recorded size (truncation); the hashes
    are only re-read by :func:`verify_model`.
    """
    p = Path(path)
    name = str(p)
    if not p.exists():
        raise ModelError("no such folder", path=name)
    if not p.is_dir():
        hint = " (unpack the archive first)" if p.suffix in (".zip", ".gz", ".tgz") else ""
        raise ModelError(f"not a folder; a Vosk model is a folder{hint}", path=name)
    if (p / "am" / "final.mdl").exists() or (p / "conf").is_dir():
        final_mdl, mfcc_conf, graph = p / "am" / "final.mdl", p / "conf" / "mfcc.conf", p / "graph"
    elif (p / "final.mdl").exists():  # the old flat layout of early Vosk models
        final_mdl, mfcc_conf, graph = p / "final.mdl", p / "mfcc.conf", p
    else:
        inner = models_in(p)
        hint = f"; did you mean {inner[0]}?" if inner else ""
        raise ModelError(f"not a Vosk model: it has no am/final.mdl{hint}", path=name)
    for required in (final_mdl, mfcc_conf):
        if not required.is_file():
            raise ModelError(f"not a complete Vosk model: {required.relative_to(p)} is missing", path=name)
    if (graph / "HCLr.fst").is_file() and (graph / "Gr.fst").is_file():
        graph_files, runtime_grammar = (graph / "HCLr.fst", graph / "Gr.fst"), True
    elif (graph / "HCLG.fst").is_file():
        graph_files, runtime_grammar = (graph / "HCLG.fst",), False
    else:
        raise ModelError("not a complete Vosk model: no decoding graph (graph/HCLG.fst or graph/HCLr.fst + graph/Gr.fst)",
                         path=name)
    _check_file(final_mdl, _KALDI_BINARY, "Kaldi model file", p)
    for fst in graph_files:
        _check_file(fst, _FST_MAGIC, "OpenFst graph", p)
    rate = _conf_sample_rate(mfcc_conf)
    if rate != sample_rate:
        raise ModelError(f"the model is for {rate} Hz audio ({mfcc_conf.relative_to(p)}); "
                         f"the skill needs a {sample_rate} Hz model", path=name)
    check_sizes(p)
    return ModelLayout(p, final_mdl, mfcc_conf, graph_files, runtime_grammar, rate)


def check_sizes(model_dir: Path) -> dict | None:
    """The install manifest of ``model_dir`` (None without one), every file it lists checked
    to be there with its recorded size (truncation); ModelError naming the first that is not."""
    manifest = read_manifest(model_dir)
    for rel, entry in (manifest or {}).get("files", {}).items():
        try:
            size = (model_dir / rel).stat().st_size
        except OSError:
            raise ModelError(f"{rel} is missing (listed in the install manifest)", path=str(model_dir)) from None
        if size != entry.get("size"):
            raise ModelError(f"{rel} has {size} bytes, the install manifest says {entry.get('size')} "
                             f"(truncated or changed?)", path=str(model_dir))
    return manifest


def read_manifest(model_dir: Path) -> dict | None:
    f = model_dir / MANIFEST_NAME
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"unreadable install manifest {MANIFEST_NAME}: {exc}", path=str(model_dir)) from None
    if not isinstance(data, dict) or not isinstance(data.get("files", {}), dict):
        raise ModelError(f"malformed install manifest {MANIFEST_NAME}", path=str(model_dir))
    return data


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


def verify_model(path: str | os.PathLike[str]) -> str:
    """Re-check a Vosk model folder fully; returns a one-line summary or raises ModelError."""
    layout = check_model_dir(path)
    if not read_manifest(layout.path):
        return f"{layout.path}: structure ok (no install manifest, so file hashes were not checked)"
    return verify_files(layout.path)


def verify_files(folder: Path) -> str:
    """Every file the install manifest of ``folder`` lists against its SHA-256; a one-line
    summary, or ModelError naming the first that does not match (or a folder without one)."""
    manifest = check_sizes(folder)
    if not manifest:
        raise ModelError(f"no install manifest ({MANIFEST_NAME}): it was not installed by "
                         f"'voice-skill models download'", path=str(folder))
    files = manifest.get("files", {})
    for rel, entry in sorted(files.items()):
        digest = sha256_file(folder / rel)
        if digest != entry.get("sha256"):
            raise ModelError(f"{rel} does not match its SHA-256 in the install manifest (corrupt or changed)",
                             path=str(folder))
    extra = ""
    archive = manifest.get("archive")
    if archive and archive.get("sha256"):
        extra = f"; installed from an archive with SHA-256 {archive['sha256'][:12]}..."
    return f"{folder}: ok, {len(files)} files match the install manifest{extra}"
