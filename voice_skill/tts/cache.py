"""Sentences ready before they are needed: rendered speech kept on disk, checked on every read.

Every sentence the routines and messages can say is fixed text, so it can be synthesised
before anyone has a cramp (``voice-skill voice prepare``, or in the background on the first
start). At a trigger the first sentence then comes from a file: no synthesis on the critical
path and no CPU spike while coaching.

An entry lives in a slot named by the voice's name, the speaking rate and the text; its
header holds the voice's full identity (model and package versions), the rendering recipe
(``RENDER``: loudness target, trimming) and a SHA-256 of the samples. A read that finds
anything else (a torn or flipped file, another model's rendering, an older recipe) deletes
the entry and reports a miss: the sentence is rendered again, never played from a bad file.
Entries are written to a temporary file and renamed into place, so two skills filling the
same cache at once (a service and ``voice prepare``) can only ever see whole entries.

Volume is applied after the cache (a gain), so day and night volumes share entries; the rate
changes the voice's timing, so night speech has entries of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from voice_skill.audio.loudness import TARGET_LUFS, finish_sentence
from voice_skill.tts.base import close_voice

log = logging.getLogger(__name__)

MAGIC = b"voice-skill sentence 1\n"
# The pause after every sentence. The engines leave their own (espeak-ng about 0.33 s, Piper
# 0.22 s); trimmed away entirely, the routines' lines ran into each other and the skill's echo
# outlasted the time the echo guard counts as its own speech (a live test obeyed its own words).
SENTENCE_PAUSE_S = 0.3
# How a voice's raw output becomes what is played and kept; change it and every entry is stale.
RENDER = f"trim-normalise-fade-pause:{TARGET_LUFS:g}LUFS:{SENTENCE_PAUSE_S:g}s"
CACHE_DIR_NAME = "voice-skill"


def cache_root(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/voice-skill/speech`` (``~/.cache/...`` when it is unset or relative)."""
    base = env.get("XDG_CACHE_HOME", "")
    if not base or not os.path.isabs(base):
        base = str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / CACHE_DIR_NAME / "speech"


def voice_label(identity: str) -> str:
    """A voice's engine and name, as the ``voice`` setting writes them ("piper:joe:1.0:..." ->
    "piper:joe")."""
    return ":".join(identity.split(":")[:2])


def slot_name(identity: str) -> str:
    """The folder of a voice's entries, named by its engine and name ("piper-joe"), so a new
    version of the same voice finds, and replaces, the old one's entries."""
    return voice_label(identity).replace(":", "-").replace("/", "_").strip(".") or "voice"


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stale: int = 0
    corrupt: int = 0


@dataclass
class PrepareResult:
    total: int
    done: int = 0  # sentences checked (and rendered if missing)
    rendered: int = 0

    @property
    def complete(self) -> bool:
        return self.done == self.total


class SentenceCache:
    """Rendered sentences under ``root`` (see the module's docstring for the rules)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.stats = CacheStats()

    def path(self, identity: str, rate: int, text: str) -> Path:
        digest = hashlib.sha256(f"{rate}\0{text}".encode()).hexdigest()[:40]
        return self.root / slot_name(identity) / f"{digest}.pcm"

    def _header(self, identity: str, rate: int, text: str) -> dict:
        return {"voice": identity, "render": RENDER, "rate": int(rate), "text": text}

    def get(self, identity: str, rate: int, text: str) -> np.ndarray | None:
        """The entry's samples, or None (a miss; a bad entry is removed and counted)."""
        path = self.path(identity, rate, text)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except OSError as exc:
            log.warning("speech cache: cannot read %s (%s)", path.name, exc)
            self.stats.misses += 1
            return None
        samples, problem = self._parse(data, self._header(identity, rate, text))
        if samples is not None:
            self.stats.hits += 1
            return samples
        if problem == "stale":
            self.stats.stale += 1
        else:
            self.stats.corrupt += 1
            log.warning("speech cache: %s was damaged (%s); rendering it again", path.name, problem)
        self.stats.misses += 1
        _unlink(path)
        return None

    @staticmethod
    def _parse(data: bytes, expected: dict) -> tuple[np.ndarray | None, str]:
        if not data.startswith(MAGIC):
            return None, "not a cache entry"
        head_end = data.find(b"\n", len(MAGIC))
        if head_end < 0:
            return None, "no header"
        try:
            header = json.loads(data[len(MAGIC):head_end])
            size, digest = int(header.pop("samples")), str(header.pop("sha256"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None, "bad header"
        payload = data[head_end + 1:]
        if len(payload) != 2 * size:
            return None, f"{len(payload)} bytes of samples where {2 * size} were written"
        if hashlib.sha256(payload).hexdigest() != digest:
            return None, "checksum mismatch"
        if header != expected:  # another voice version or recipe (or, once in 2^160, another text)
            return None, "stale"
        return np.frombuffer(payload, dtype="<i2").astype(np.int16), ""

    def put(self, identity: str, rate: int, text: str, samples: np.ndarray) -> None:
        """Store an entry whole or not at all (a failure to write is logged, not raised)."""
        path = self.path(identity, rate, text)
        payload = np.asarray(samples, dtype="<i2").tobytes()
        header = dict(self._header(identity, rate, text), samples=len(payload) // 2,
                      sha256=hashlib.sha256(payload).hexdigest())
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".part-", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + json.dumps(header, ensure_ascii=False).encode() + b"\n" + payload)
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            log.warning("speech cache: cannot write to %s (%s)", path.parent, exc)
        finally:
            if tmp is not None:
                _unlink(Path(tmp))

    def has(self, identity: str, rate: int, text: str) -> bool:
        """Whether a good entry exists (read and checked, like ``get``, without counting a hit)."""
        before = self.stats.hits
        found = self.get(identity, rate, text) is not None
        self.stats.hits = before
        return found

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*.pcm") if p.is_file())


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class CachedVoice:
    """A ``Voice`` that speaks fixed sentences from the cache and finishes every rendering
    (trimmed, one loudness, faded edges and one pause after it: ``audio.loudness.finish_sentence``).

    ``voice`` must have an ``identity``. ``keep(text)`` says which renderings are stored (the
    fixed sentences; text with a name filled in is rendered each time). ``volume`` is a gain
    applied here, so the inner voice always renders at full volume.
    """

    def __init__(self, voice, cache: SentenceCache | None, *, keep: Callable[[str], bool] = lambda _t: True,
                 finish: Callable[[np.ndarray], np.ndarray] = partial(finish_sentence, pause_s=SENTENCE_PAUSE_S)
                 ) -> None:
        self.voice = voice
        self.cache = cache
        self.keep = keep
        self.finish = finish
        self.rate = int(voice.rate)
        self.volume = float(voice.volume)
        self.voice.volume = 1.0
        self._lock = threading.Lock()  # the speaker's thread and a cache filler share the voice

    @property
    def identity(self) -> str:
        return self.voice.identity

    def render(self, text: str, rate: int) -> np.ndarray:
        """``text`` at ``rate``, full volume, finished: from the cache when it has it."""
        if self.cache is not None:
            hit = self.cache.get(self.voice.identity, rate, text)
            if hit is not None:
                return hit
        return self._render_fresh(text, rate)

    def _render_fresh(self, text: str, rate: int) -> np.ndarray:
        """``text`` rendered by the voice (not looked up), stored if it is kept."""
        with self._lock:
            identity = self.voice.identity
            self.voice.rate, self.voice.volume = rate, 1.0
            samples = self.finish(np.asarray(self.voice.synthesize(text), dtype=np.int16))
            # The voice may have changed while rendering (a fallback): store under the one that spoke.
            if self.cache is not None and self.keep(text) and self.voice.identity == identity:
                self.cache.put(identity, rate, text, samples)
        return samples

    def synthesize(self, text: str) -> np.ndarray:
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        samples = self.render(text, self.rate)
        if self.volume >= 1.0:
            return samples
        return np.round(samples.astype(np.float32) * max(self.volume, 0.0)).astype(np.int16)

    def missing(self, texts: Iterable[str], rates: Iterable[int]) -> list[tuple[str, int]]:
        """The (text, rate) pairs the cache has no good entry for, rates first."""
        return self._uncached(_jobs(texts, rates))

    def _uncached(self, jobs: list[tuple[str, int]]) -> list[tuple[str, int]]:
        if self.cache is None:
            return jobs
        identity = self.voice.identity
        return [(text, rate) for text, rate in jobs if not self.cache.has(identity, rate, text)]

    def prepare(self, texts: Iterable[str], rates: Iterable[int],
                progress: Callable[[int, int], None] | None = None,
                should_pause: Callable[[], bool] | None = None) -> PrepareResult:
        """Render every text at every rate that is not in the cache yet. ``progress(done,
        total)`` after each; ``should_pause()`` true stops early (the caller comes back later)."""
        jobs = _jobs(texts, rates)
        missing = self._uncached(jobs)
        total, ready = len(jobs), len(jobs) - len(missing)
        step = None if progress is None else (lambda done, _n: progress(ready + done, total))
        result = self.fill(missing, progress=step, should_pause=should_pause)
        return PrepareResult(total=total, done=ready + result.done, rendered=result.rendered)

    def fill(self, missing: Iterable[tuple[str, int]], progress: Callable[[int, int], None] | None = None,
             should_pause: Callable[[], bool] | None = None) -> PrepareResult:
        """Render (text, rate) pairs known to be missing (from ``missing``), in order, without
        looking them up again; ``result.done`` of them are done when it returns."""
        missing = list(missing)
        result = PrepareResult(total=len(missing))
        for text, rate in missing:
            if should_pause is not None and should_pause():
                break
            self._render_fresh(text, rate)
            result.rendered += 1
            result.done += 1
            if progress is not None:
                progress(result.done, result.total)
        return result

    def close(self) -> None:
        """Close the voice's engine (its child process), if it has one."""
        close_voice(self.voice)


def _jobs(texts: Iterable[str], rates: Iterable[int]) -> list[tuple[str, int]]:
    return [(text, rate) for rate in dict.fromkeys(rates) for text in dict.fromkeys(texts) if text.strip()]
