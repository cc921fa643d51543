"""Unpacking a model archive safely: every member is checked before anything is written
(absolute paths, ``..``, links, special files, duplicates, a size bomb)."""

from __future__ import annotations

import hashlib
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from voice_skill.errors import ModelError

# An archive that unpacks to more than this is not a model we know; refuse it.
_MAX_UNPACKED_BYTES = 4 * 1024**3


def safe_member_path(name: str) -> PurePosixPath | None:
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
                rel = safe_member_path(info.filename)
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
            rel = safe_member_path(m.name)
            if rel is None:
                raise ModelError(f"refusing archive: member {m.name!r} would land outside the model folder",
                                 path=source)
            if m.issym() or m.islnk():
                raise ModelError(f"refusing archive: member {m.name!r} is a link", path=source)
            if not (m.isfile() or m.isdir()):
                raise ModelError(f"refusing archive: member {m.name!r} is not a regular file or folder",
                                 path=source)
        for m in members:
            yield safe_member_path(m.name), m.isdir(), (lambda m=m: tf.extractfile(m))


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
            names = {safe_member_path(i.filename): i for i in self._zf.infolist()}
            return lambda rel: self._zf.open(names[rel])  # type: ignore[union-attr]
        self._tf = tarfile.open(self.archive)
        tnames = {safe_member_path(m.name): m for m in self._tf.getmembers()}
        return lambda rel: self._tf.extractfile(tnames[rel])  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        if self._zf is not None:
            self._zf.close()
        if self._tf is not None:
            self._tf.close()


def model_root(tmp: Path) -> Path:
    """The model folder inside an unpacked archive: its single top-level folder, or itself."""
    entries = [p for p in tmp.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return tmp
