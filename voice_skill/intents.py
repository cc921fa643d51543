"""Text to intent: a small fixed vocabulary, with phrasing kept in data (``data/phrases.toml``).

Phrases match as whole words anywhere in what was heard, so "I've got a really bad calf
cramp" starts a routine and "decamp" does not. The longest matching phrase wins; ties go
to the intent listed first in the data file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping

from voice_skill.errors import RoutineError

# The contract's intent names (DESIGN.md), plus the two the content issue adds.
INTENT_NAMES = (
    "start", "next", "back", "repeat", "pause", "resume", "slower", "faster",
    "stop", "done", "worse", "help", "red_flag", "stretch",
)

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_NOT_WORD = re.compile(r"[^\w' ]+|_")  # any script's letters and digits stay: phrase files may be in any language


def normalize(text: str) -> str:
    """Lower-case words separated by single spaces; apostrophes kept, other punctuation gone."""
    text = text.lower().translate(_APOSTROPHES)
    text = _NOT_WORD.sub(" ", text)
    return " ".join(w.strip("'") or w for w in text.split())


def tokens(text: str) -> tuple[str, ...]:
    return tuple(normalize(text).split())


@dataclass(frozen=True)
class Intent:
    name: str
    phrase: str
    slots: Mapping[str, str] = field(default_factory=dict)
    also: frozenset[str] = frozenset()  # other intents whose phrases were heard too


def _find(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


@dataclass(frozen=True)
class PhraseTable:
    """Intent phrases and slot values, in priority order."""

    intents: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]
    slots: tuple[tuple[str, tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]], ...]

    @classmethod
    def load(cls, path: str | Path | None = None) -> "PhraseTable":
        if path is None:
            ref = resources.files("voice_skill") / "data" / "phrases.toml"
            name, raw = "phrases.toml", ref.read_text(encoding="utf-8")
        else:
            name = str(path)
            try:
                raw = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise RoutineError(f"cannot read: {exc.strerror or exc}", path=name) from None
        try:
            data = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as exc:
            raise RoutineError(f"not valid TOML: {exc}", path=name) from None
        return cls.from_dict(data, name)

    @classmethod
    def from_dict(cls, data: Mapping, name: str = "<phrases>") -> "PhraseTable":
        table = data.get("intents")
        if not isinstance(table, dict) or not table:
            raise RoutineError("missing [intents] table", path=name)
        intents = []
        for intent, body in table.items():
            if intent not in INTENT_NAMES:
                raise RoutineError(f"intents.{intent}: unknown intent (known: {', '.join(INTENT_NAMES)})", path=name)
            phrases = body.get("phrases") if isinstance(body, dict) else None
            if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and tokens(p) for p in phrases):
                raise RoutineError(f"intents.{intent}.phrases: must be a non-empty list of non-empty strings", path=name)
            intents.append((intent, tuple(tokens(p) for p in phrases)))
        slots = []
        for slot, values in (data.get("slots") or {}).items():
            if not isinstance(values, dict):
                raise RoutineError(f"slots.{slot}: must be a table of value = [phrases]", path=name)
            entries = []
            for value, phrases in values.items():
                if not isinstance(phrases, list) or not all(isinstance(p, str) and tokens(p) for p in phrases):
                    raise RoutineError(f"slots.{slot}.{value}: must be a list of non-empty strings", path=name)
                entries.append((value, tuple(tokens(p) for p in phrases)))
            slots.append((slot, tuple(entries)))
        return cls(tuple(intents), tuple(slots))

    def phrases(self) -> list[str]:
        """Every phrase the recognizers must know: intents first, then slot values."""
        seen: dict[str, None] = {}
        for _, phrases in self.intents:
            for p in phrases:
                seen.setdefault(" ".join(p))
        for _, entries in self.slots:
            for _, phrases in entries:
                for p in phrases:
                    seen.setdefault(" ".join(p))
        return list(seen)

    def words(self) -> list[str]:
        return sorted({w for p in self.phrases() for w in p.split()})


class IntentParser:
    def __init__(self, table: PhraseTable | None = None) -> None:
        self.table = table or PhraseTable.load()

    def parse(self, text: str) -> Intent | None:
        heard = tokens(text)
        if not heard:
            return None
        best: tuple[int, int, str, tuple[str, ...]] | None = None
        matched: set[str] = set()
        for order, (intent, phrases) in enumerate(self.table.intents):
            for phrase in phrases:
                if _find(heard, phrase):
                    matched.add(intent)
                    key = (len(phrase), -order, intent, phrase)
                    if best is None or key[:2] > best[:2]:
                        best = key
        if best is None:
            return None
        return Intent(best[2], " ".join(best[3]), self.slots(heard), frozenset(matched - {best[2]}))

    def slots(self, heard: tuple[str, ...]) -> dict[str, str]:
        found: dict[str, str] = {}
        for slot, entries in self.table.slots:
            for value, phrases in entries:
                if any(_find(heard, p) for p in phrases):
                    found.setdefault(slot, value)
        return found
