"""Vosk model management: where models live, what a model folder must hold, and downloads.

Nothing here runs unless the user asks for it: the skill itself never touches the network.
``voice-skill models download`` is the only code path that opens a URL, with urllib.

Model locations, searched in this order (the first that holds a usable model wins):

1. ``--model PATH`` (a model folder, or the name of a model in one of the folders below)
2. the environment variable ``VOICE_SKILL_MODEL`` (same forms)
3. ``models/`` of a source checkout (beside the ``voice_skill`` package)
4. the user's data folder, ``$XDG_DATA_HOME/voice-skill/models``
   (``~/.local/share/voice-skill/models`` when XDG_DATA_HOME is unset)

One module for now: lookup, validation, manifests, download and archive safety share the
model-folder rules; splitting them is an open item of the architecture review.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, TextIO

from voice_skill.errors import ModelError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
MODEL_ENV = "VOICE_SKILL_MODEL"
URL_BASE_ENV = "VOICE_SKILL_MODEL_URL_BASE"
DEFAULT_URL_BASE = "https://alphacephei.com/vosk/models"
MANIFEST_NAME = ".voice-skill-manifest.json"
PART_SUFFIX = ".part"
_BLOCK = 64 * 1024
# An archive that unpacks to more than this is not a model we know; refuse it.
_MAX_UNPACKED_BYTES = 4 * 1024**3
_FST_MAGIC = b"\xd6\xfd\xb2\x7e"  # OpenFst's magic number, little-endian
_KALDI_BINARY = b"\x00B"  # Kaldi's binary-mode marker


@dataclass(frozen=True)
class KnownModel:
    name: str
    archive: str  # file name under the URL base
    size: int  # bytes of the archive
    sha256: str  # of the archive
    description: str


# Pinned models. The archive is fetched from the Vosk project's official download address
# (overridable with VOICE_SKILL_MODEL_URL_BASE); size and SHA-256 are checked before unpacking.
KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="vosk-model-small-en-us-0.15",
            archive="vosk-model-small-en-us-0.15.zip",
            # Size and SHA-256 as several independent public packaging recipes agree.
            size=41_205_931,
            sha256="30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
            description="small US English model (about 40 MB, runs on a Raspberry Pi)",
        ),
    )
}
DEFAULT_MODEL = "vosk-model-small-en-us-0.15"


# --------------------------------------------------------------------------- locations


def user_models_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "voice-skill" / "models"


def checkout_models_dir() -> Path | None:
    """``models/`` beside the package in a source checkout (not in an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():
        return root / "models"
    return None


def search_dirs() -> list[tuple[str, Path]]:
    """Folders that may hold models, with a label saying where each comes from."""
    dirs: list[tuple[str, Path]] = []
    checkout = checkout_models_dir()
    if checkout is not None:
        dirs.append(("source checkout", checkout))
    dirs.append(("user data folder", user_models_dir()))
    return dirs


@dataclass(frozen=True)
class FoundModel:
    path: Path
    source: str  # "--model", "VOICE_SKILL_MODEL", "source checkout", "user data folder"

    def describe(self) -> str:
        return f"{self.path} (from {self.source})"


def looks_like_model(path: Path) -> bool:
    return (path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()


def _models_in(folder: Path) -> list[Path]:
    """Model folders directly inside ``folder``: the default first, then known, then the rest."""
    if not folder.is_dir():
        return []
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    found = [p for p in children if looks_like_model(p)]
    order = {name: i for i, name in enumerate([DEFAULT_MODEL, *KNOWN_MODELS])}
    return sorted(found, key=lambda p: (order.get(p.name, len(order)), p.name))


def _resolve_explicit(value: str, source: str) -> FoundModel:
    path = Path(value).expanduser()
    if path.exists() or os.sep in value or "/" in value:
        return FoundModel(path, source)
    # A bare name: look for it in the model folders.
    for _, folder in search_dirs():
        if (folder / value).is_dir():
            return FoundModel(folder / value, f"{source} name, in {folder}")
    raise ModelError(
        f"no model folder or installed model called {value!r} ({source}); "
        f"list models with 'voice-skill models list'", path=None)


def find_model(model: str | None = None) -> FoundModel | None:
    """Where the model to use is, in the documented order; None when there is none at all.

    An explicit ``model`` or ``VOICE_SKILL_MODEL`` is returned even when the folder is
    broken, so that loading it reports the problem instead of silently using another.
    """
    if model:
        return _resolve_explicit(model, "--model")
    env = os.environ.get(MODEL_ENV)
    if env:
        return _resolve_explicit(env, MODEL_ENV)
    for label, folder in search_dirs():
        models = _models_in(folder)
        if models:
            return FoundModel(models[0], label)
    return None


# --------------------------------------------------------------------------- structure


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
        inner = _models_in(p)
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
    manifest = read_manifest(p)
    if manifest:
        for rel, entry in manifest.get("files", {}).items():
            f = p / rel
            try:
                size = f.stat().st_size
            except OSError:
                raise ModelError(f"{rel} is missing (listed in the install manifest)", path=name) from None
            if size != entry.get("size"):
                raise ModelError(f"{rel} has {size} bytes, the install manifest says {entry.get('size')} "
                                 f"(truncated or changed?)", path=name)
    return ModelLayout(p, final_mdl, mfcc_conf, graph_files, runtime_grammar, rate)


# --------------------------------------------------------------------------- manifest


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


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


def verify_model(path: str | os.PathLike[str]) -> str:
    """Re-check a model folder fully; returns a one-line summary or raises ModelError."""
    layout = check_model_dir(path)
    manifest = read_manifest(layout.path)
    if not manifest:
        return f"{layout.path}: structure ok (no install manifest, so file hashes were not checked)"
    files = manifest.get("files", {})
    for rel, entry in sorted(files.items()):
        digest = _sha256_file(layout.path / rel)
        if digest != entry.get("sha256"):
            raise ModelError(f"{rel} does not match its SHA-256 in the install manifest (corrupt or changed)",
                             path=str(layout.path))
    extra = ""
    archive = manifest.get("archive")
    if archive and archive.get("sha256"):
        extra = f"; installed from an archive with SHA-256 {archive['sha256'][:12]}..."
    return f"{layout.path}: ok, {len(files)} files match the install manifest{extra}"


# --------------------------------------------------------------------------- download


class Progress:
    """A one-line progress bar with size and rate, on a text stream (stderr by default)."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, start_at: int = 0) -> None:
        self.label, self.total = label, total
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.start_at = start_at
        self.done = start_at
        self.t0 = clock()
        self._last_draw = -1.0

    def update(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self._last_draw >= 0.1 or (self.total and self.done >= self.total):
            self._last_draw = now
            self.draw(now)

    def draw(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        elapsed = max(now - self.t0, 1e-6)
        rate = (self.done - self.start_at) / elapsed
        mb = 1024 * 1024
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 24)
            text = (f"\r{self.label} [{bar:<24}] {self.done / mb:6.1f}/{self.total / mb:.1f} MB "
                    f"{frac * 100:3.0f}% {rate / mb:5.1f} MB/s")
        else:
            text = f"\r{self.label} {self.done / mb:6.1f} MB {rate / mb:5.1f} MB/s"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        self.draw()
        self.stream.write("\n")
        self.stream.flush()


def url_base(override: str | None = None) -> str:
    return (override or os.environ.get(URL_BASE_ENV) or DEFAULT_URL_BASE).rstrip("/")


def _fetch(url: str, part: Path, expected_size: int, progress_stream: TextIO | None,
           clock: Callable[[], float], timeout_s: float) -> None:
    """Fetch ``url`` into ``part``, resuming from what ``part`` already holds (HTTP Range)."""
    have = part.stat().st_size if part.exists() else 0
    if have > expected_size:
        log.info("discarding %s: larger than the expected %d bytes", part, expected_size)
        part.unlink()
        have = 0
    if have == expected_size:
        return
    request = urllib.request.Request(url, headers={"User-Agent": "voice-skill model downloader"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # The server says our range is past the end: the part file is not a prefix of it.
            part.unlink()
            raise ModelError("the server refused to resume (HTTP 416); discarded the partial file, run again",
                             path=url) from None
        raise ModelError(f"download failed: HTTP {exc.code} {exc.reason}", path=url) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelError(f"download failed: {reason}", path=url) from None
    with response:
        status = getattr(response, "status", 200)
        mode = "ab"
        if have and status != 206:
            log.info("server ignored the Range request (HTTP %s); downloading from the start", status)
            have, mode = 0, "wb"
        elif have:
            log.info("resuming %s at byte %d", part.name, have)
        bar = Progress(part.name.removesuffix(PART_SUFFIX), expected_size, progress_stream, clock, start_at=have)
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        block = response.read(_BLOCK)
                    except (OSError, urllib.error.URLError) as exc:
                        raise ModelError(f"download interrupted at {bar.done} of {expected_size} bytes ({exc}); "
                                         f"run the same command again to resume", path=url) from None
                    if not block:
                        break
                    out.write(block)
                    bar.update(len(block))
                    if bar.done > expected_size:
                        break
        finally:
            bar.close()
    got = part.stat().st_size
    if got > expected_size:
        part.unlink()
        raise ModelError(f"the server sent {got} bytes, more than the pinned {expected_size}; discarded it",
                         path=url)
    if got < expected_size:
        raise ModelError(f"download incomplete: {got} of {expected_size} bytes; "
                         f"run the same command again to resume", path=url)


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The relative path of an archive member, or None when it would land outside the target."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return None
    parts = PurePosixPath(name).parts
    if any(part == ".." for part in parts):
        return None
    kept = [p for p in parts if p not in ("", ".")]
    return PurePosixPath(*kept) if kept else PurePosixPath(".")


def _archive_members(archive: Path) -> Iterator[tuple[PurePosixPath, bool, Callable[[], object]]]:
    """(relative path, is_dir, opener) for every member; raises ModelError for an unsafe member."""
    source = str(archive)
    if zipfile.is_zipfile(archive):
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as exc:
            raise ModelError(f"not a readable zip archive: {exc}", path=source) from None
        with zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            if total > _MAX_UNPACKED_BYTES:
                raise ModelError(f"the archive would unpack to {total} bytes; refusing", path=source)
            for info in infos:
                rel = _safe_member_path(info.filename)
                mode = info.external_attr >> 16
                if rel is None:
                    raise ModelError(f"refusing archive: member {info.filename!r} would land outside the model folder",
                                     path=source)
                if stat.S_ISLNK(mode):
                    raise ModelError(f"refusing archive: member {info.filename!r} is a symbolic link", path=source)
                yield rel, info.is_dir(), (lambda info=info: zf.open(info))
        return
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, OSError) as exc:
        raise ModelError(f"not a zip or tar archive: {exc}", path=source) from None
    with tf:
        members = tf.getmembers()
        for m in members:
            rel = _safe_member_path(m.name)
            if rel is None:
                raise ModelError(f"refusing archive: member {m.name!r} would land outside the model folder",
                                 path=source)
            if m.issym() or m.islnk():
                raise ModelError(f"refusing archive: member {m.name!r} is a link", path=source)
            if not (m.isfile() or m.isdir()):
                raise ModelError(f"refusing archive: member {m.name!r} is not a regular file or folder",
                                 path=source)
        for m in members:
            yield _safe_member_path(m.name), m.isdir(), (lambda m=m: tf.extractfile(m))


def unpack_archive(archive: Path, into: Path) -> dict[str, dict]:
    """Unpack ``archive`` into the empty folder ``into``; returns {relative path: {size, sha256}}.

    Every member is checked before anything is written (absolute paths, ``..``, links).
    """
    members = list(_archive_members_checked(archive))
    files: dict[str, dict] = {}
    with _reopen(archive) as opener:
        for rel, is_dir in members:
            dest = into.joinpath(*rel.parts)
            if is_dir:
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            h = hashlib.sha256()
            size = 0
            with opener(rel) as src, open(dest, "xb") as out:
                for block in iter(lambda: src.read(1024 * 1024), b""):
                    h.update(block)
                    size += len(block)
                    out.write(block)
            files[rel.as_posix()] = {"size": size, "sha256": h.hexdigest()}
    return files


def _archive_members_checked(archive: Path) -> Iterator[tuple[PurePosixPath, bool]]:
    seen: set[PurePosixPath] = set()
    for rel, is_dir, _ in _archive_members(archive):
        if rel == PurePosixPath("."):
            continue
        if not is_dir and rel in seen:
            raise ModelError(f"refusing archive: member {rel.as_posix()!r} appears twice", path=str(archive))
        seen.add(rel)
        yield rel, is_dir


class _reopen:
    """Context manager giving ``opener(rel)`` -> readable binary file for a member of an archive."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self._zf: zipfile.ZipFile | None = None
        self._tf: tarfile.TarFile | None = None

    def __enter__(self) -> Callable[[PurePosixPath], object]:
        if zipfile.is_zipfile(self.archive):
            self._zf = zipfile.ZipFile(self.archive)
            names = {_safe_member_path(i.filename): i for i in self._zf.infolist()}
            return lambda rel: self._zf.open(names[rel])  # type: ignore[union-attr]
        self._tf = tarfile.open(self.archive)
        tnames = {_safe_member_path(m.name): m for m in self._tf.getmembers()}
        return lambda rel: self._tf.extractfile(tnames[rel])  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        if self._zf is not None:
            self._zf.close()
        if self._tf is not None:
            self._tf.close()


def _model_root(tmp: Path) -> Path:
    """The model folder inside an unpacked archive: its single top-level folder, or itself."""
    entries = [p for p in tmp.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return tmp


def _rmtree_quiet(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class InstallResult:
    name: str
    path: Path
    already_installed: bool = False


def install_from_archive(archive: Path, name: str, dest_dir: Path, *, archive_info: dict | None = None) -> Path:
    """Unpack into a temp folder inside ``dest_dir``, check it, then rename it into place.

    An existing ``dest_dir/name`` is replaced only after the new one is complete.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.unpack-", dir=dest_dir))
    try:
        files = unpack_archive(archive, tmp)
        root = _model_root(tmp)
        prefix = root.relative_to(tmp).as_posix()
        rel_files = {
            (k[len(prefix) + 1:] if prefix != "." else k): v
            for k, v in files.items()
        }
        check_model_dir(root)
        manifest = {"name": name, "archive": archive_info or {}, "files": rel_files}
        (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=dest_dir))
            os.replace(target, old / name)
        try:
            os.replace(root, target)
        except OSError:
            if old is not None:
                os.replace(old / name, target)
            raise
        if old is not None:
            _rmtree_quiet(old)
    except ModelError as exc:
        # Name the archive when the problem is in the unpacked files.
        if exc.path and exc.path.startswith(str(tmp)):
            raise ModelError(f"the archive does not hold a usable model: {exc.message}", path=str(archive)) from None
        raise
    finally:
        _rmtree_quiet(tmp)
    return target


def download_model(name: str = DEFAULT_MODEL, dest_dir: str | os.PathLike[str] | None = None, *,
                   base_url: str | None = None, force: bool = False, progress_stream: TextIO | None = None,
                   clock: Callable[[], float] = time.monotonic, timeout_s: float = 30.0,
                   known: dict[str, KnownModel] | None = None) -> InstallResult:
    """Download, check and install a pinned model. The only function that uses the network."""
    models = KNOWN_MODELS if known is None else known
    if name not in models:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(sorted(models))}")
    spec = models[name]
    dest = Path(dest_dir) if dest_dir is not None else user_models_dir()
    target = dest / name
    if target.exists() and not force:
        try:
            check_model_dir(target)
        except ModelError as exc:
            log.warning("reinstalling %s: %s", target, exc.message)
        else:
            return InstallResult(name, target, already_installed=True)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model folder: {exc.strerror or exc}", path=str(dest)) from None
    part = dest / (spec.archive + PART_SUFFIX)
    url = f"{url_base(base_url)}/{spec.archive}"
    log.info("downloading %s from %s", name, url)
    _fetch(url, part, spec.size, progress_stream, clock, timeout_s)
    digest = _sha256_file(part)
    if digest != spec.sha256:
        part.unlink()
        raise ModelError(f"SHA-256 mismatch (got {digest}, expected {spec.sha256}); discarded the download",
                         path=url)
    path = install_from_archive(part, name, dest,
                                archive_info={"url": url, "size": spec.size, "sha256": spec.sha256})
    part.unlink()
    return InstallResult(name, path)


def remove_model(name: str, dest_dir: str | os.PathLike[str] | None = None) -> Path:
    dest = Path(dest_dir) if dest_dir is not None else user_models_dir()
    if not name or _safe_member_path(name) != PurePosixPath(name) or len(PurePosixPath(name).parts) != 1:
        raise ModelError(f"not a model name: {name!r}")
    target = dest / name
    leftovers = [p for p in dest.glob(f"{name}*{PART_SUFFIX}")] if dest.is_dir() else []
    if not target.exists() and not leftovers:
        raise ModelError(f"no model called {name!r} is installed here", path=str(dest))
    if target.exists():
        if not target.is_dir() or target.is_symlink():
            raise ModelError("not a model folder; not removing it", path=str(target))
        if not looks_like_model(target) and read_manifest(target) is None:
            raise ModelError("does not look like a Vosk model; not removing it", path=str(target))
        shutil.rmtree(target)
    for p in leftovers:
        p.unlink()
    return target


def installed_models() -> list[tuple[str, Path]]:
    """(location label, model folder) for every model in the search folders."""
    out = []
    for label, folder in search_dirs():
        for m in _models_in(folder):
            out.append((label, m))
    return out
