"""Text to intent: a small fixed vocabulary, with phrasing kept in data (``data/phrases.toml``).

Phrases match as whole words anywhere in what was heard, so "I've got a really bad calf
cramp" starts a routine and "decamp" does not. The longest matching phrase wins; ties go
to the intent listed first in the data file. Three rules from the data file come first:
intents listed in ``outrank`` (the safety intents) win whenever one of their phrases is
heard; a phrase of an intent listed under ``[negation]`` does not count when a negation word
comes shortly before it ("it won't stop" never stops anything); and a trigger that the words
around it take back (``[retraction]``) is none: "I don't have a cramp" is nothing, "no more
cramp" and "the cramp went away" are the cramp's end.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from voice_skill.errors import RoutineError

# The contract's intent names (DESIGN.md), plus those added since: red flags and the
# bedtime stretches (content issue), and the emergency, a cramp that will not let go and
# pregnancy said on its own (issue 12, "Safe when it matters").
INTENT_NAMES = (
    "start", "next", "back", "repeat", "pause", "resume", "slower", "faster",
    "stop", "done", "worse", "help", "red_flag", "stretch",
    "emergency", "still_cramping", "pregnant",
)
FAMILY_SLOT = "family"  # the slot that names which family of an intent's phrases was heard

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_NOT_WORD = re.compile(r"[^\w' ]+|_")  # any script's letters and digits stay: phrase files may be in any language


def normalize(text: str) -> str:
    """Lower-case words separated by single spaces; apostrophes kept, other punctuation gone."""
    text = text.lower().translate(_APOSTROPHES)
    text = _NOT_WORD.sub(" ", text)
    return " ".join(w.strip("'") or w for w in text.split())


def tokens(text: str) -> tuple[str, ...]:
    return tuple(normalize(text).split())


def extra_words(text: str, phrase: str, courtesy: frozenset[str] = frozenset()) -> list[str]:
    """The words of ``text`` besides one ``phrase`` and any ``courtesy`` words ("okay", "please")."""
    heard, words = list(tokens(text)), phrase.split()
    for i in range(len(heard) - len(words) + 1):
        if heard[i:i + len(words)] == words:
            del heard[i:i + len(words)]
            break
    return [w for w in heard if w not in courtesy]


def word_span(words: Sequence[str], phrase: str) -> tuple[int, int] | None:
    """The indexes in ``words`` (a recognizer's words, one by one) of the first and last word
    of the first place ``phrase`` (normalised words) was heard; None where it was not."""
    owner: list[int] = []  # for each normalised token, the word it came from
    heard: list[str] = []
    for i, word in enumerate(words):
        toks = tokens(word)
        owner.extend([i] * len(toks))
        heard.extend(toks)
    wanted = phrase.split()
    for i in range(len(heard) - len(wanted) + 1):
        if wanted and heard[i:i + len(wanted)] == wanted:
            return owner[i], owner[i + len(wanted) - 1]
    return None


@dataclass(frozen=True)
class Intent:
    name: str
    phrase: str
    slots: Mapping[str, str] = field(default_factory=dict)
    also: frozenset[str] = frozenset()  # other intents whose phrases were heard too


def _find(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def _positions(haystack: tuple[str, ...], needle: tuple[str, ...]) -> list[int]:
    n = len(needle)
    return [i for i in range(len(haystack) - n + 1) if haystack[i:i + n] == needle]


@dataclass(frozen=True)
class Negation:
    """Phrases of ``intents`` do not count with one of ``words`` up to ``window`` words before them."""

    intents: frozenset[str] = frozenset()
    words: frozenset[str] = frozenset()
    window: int = 3

    def negated(self, intent: str, heard: tuple[str, ...], start: int) -> bool:
        return intent in self.intents and any(w in self.words for w in heard[max(0, start - self.window):start])


@dataclass(frozen=True)
class Retraction:
    """A phrase of ``intents`` that the words around it take back. One of ``denied`` before it,
    with at most ``window`` of the ``linking`` words between ("I don't have a cramp", and not "not
    again, a cramp"), leaves it nothing; one of ``ended_before`` so placed ("no more cramp"), or
    one of ``ended_after`` beginning up to ``window`` words after it with no negation word between
    ("the cramp went away", and not "the cramp is not gone"), makes it ``ended_as``: the cramp's
    end, not its start."""

    intents: frozenset[str] = frozenset()
    denied: tuple[tuple[str, ...], ...] = ()
    ended_before: tuple[tuple[str, ...], ...] = ()
    ended_after: tuple[tuple[str, ...], ...] = ()
    ended_as: str | None = None
    window: int = 3
    linking: frozenset[str] = frozenset()

    def verdict(self, intent: str, heard: tuple[str, ...], start: int, end: int,
                negation: frozenset[str]) -> tuple[str, int, int] | None:
        """None if the phrase heard at ``heard[start:end]`` stands; ("denied" or "ended", first,
        last + 1) of the words that take it back, with it, if they do."""
        if intent not in self.intents:
            return None
        at = start  # where the words linking a word before to the phrase begin
        while at > 0 and start - at < self.window and heard[at - 1] in self.linking:
            at -= 1
        for phrase in self.ended_before:
            if heard[max(0, at - len(phrase)):at] == phrase:
                return "ended", at - len(phrase), end
        for phrase in self.denied:
            if heard[max(0, at - len(phrase)):at] == phrase:
                return "denied", start, end
        for gap in range(self.window):
            for phrase in self.ended_after:
                if heard[end + gap:end + gap + len(phrase)] == phrase:
                    return "ended", start, end + gap + len(phrase)
            if end + gap < len(heard) and heard[end + gap] in negation:
                break
        return None


# Commands safe to act on before an utterance has ended (Vosk's stable partial results):
# stopping or pausing early costs nothing if the rest of the sentence changes the meaning.
SAFE_EARLY_INTENTS = frozenset({"stop", "pause"})


@dataclass(frozen=True)
class PhraseTable:
    """Intent phrases and slot values, in priority order."""

    intents: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]
    slots: tuple[tuple[str, tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]], ...]
    outrank: tuple[str, ...] = ()
    negation: Negation = Negation()
    # intent -> its phrase families, in priority order: ((family, phrases), ...)
    families: Mapping[str, tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]] = field(default_factory=dict)
    # words said around a command that change nothing ("okay", "please")
    courtesy: frozenset[str] = frozenset()
    retraction: Retraction = Retraction()

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
        families: dict[str, tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]] = {}
        for intent, body in table.items():
            if intent not in INTENT_NAMES:
                raise RoutineError(f"intents.{intent}: unknown intent (known: {', '.join(INTENT_NAMES)})", path=name)
            if not isinstance(body, dict):
                raise RoutineError(f"intents.{intent}: must be a table with 'phrases' or 'families'", path=name)
            groups = body.get("families", {})
            if not isinstance(groups, dict):
                raise RoutineError(f"intents.{intent}.families: must be a table of family = [phrases]", path=name)
            phrases = body.get("phrases", [] if groups else None)
            every = [phrases, *groups.values()]
            if (not all(isinstance(g, list) and all(isinstance(p, str) and tokens(p) for p in g) for g in every)
                    or not any(every)):
                raise RoutineError(f"intents.{intent}.phrases: must be a non-empty list of non-empty strings", path=name)
            seen: dict[tuple[str, ...], None] = {}
            for group in every:
                for p in group:
                    seen.setdefault(tokens(p))
            intents.append((intent, tuple(seen)))
            if groups:
                families[intent] = tuple((fam, tuple(tokens(p) for p in group)) for fam, group in groups.items())
        known = {i for i, _ in intents}
        outrank = data.get("outrank", [])
        if not isinstance(outrank, list) or not all(isinstance(i, str) and i in known for i in outrank):
            raise RoutineError("outrank: must list intents of the [intents] table", path=name)
        neg = data.get("negation", {})
        if not isinstance(neg, dict):
            raise RoutineError("negation: must be a table", path=name)
        neg_intents, neg_words, window = neg.get("intents", []), neg.get("words", []), neg.get("window", 3)
        if (not isinstance(neg_intents, list) or not all(isinstance(i, str) and i in known for i in neg_intents)
                or not isinstance(neg_words, list) or not all(isinstance(w, str) and tokens(w) for w in neg_words)
                or isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise RoutineError("negation: needs 'intents' (known intents), 'words' and a whole 'window' >= 1",
                               path=name)
        negation = Negation(frozenset(neg_intents), frozenset(w for x in neg_words for w in tokens(x)), window)
        retraction = cls._retraction(data.get("retraction", {}), known, name)
        courtesy = data.get("courtesy", [])
        if not isinstance(courtesy, list) or not all(isinstance(w, str) and tokens(w) for w in courtesy):
            raise RoutineError("courtesy: must be a list of non-empty strings", path=name)
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
        return cls(tuple(intents), tuple(slots), tuple(outrank), negation, families,
                   frozenset(w for x in courtesy for w in tokens(x)), retraction)

    @staticmethod
    def _retraction(raw: object, known: set[str], name: str) -> Retraction:
        problem = "retraction: needs 'intents' and 'ended_as' (known intents), lists of phrases " \
                  "'denied', 'ended_before', 'ended_after' and 'linking', and a whole 'window' >= 1"
        if not isinstance(raw, dict):
            raise RoutineError(problem, path=name)
        if not raw:
            return Retraction()
        intents, ended_as, window = raw.get("intents", []), raw.get("ended_as"), raw.get("window", 3)
        lists = [raw.get(key, []) for key in ("denied", "ended_before", "ended_after", "linking")]
        if (not isinstance(intents, list) or not all(isinstance(i, str) and i in known for i in intents)
                or not (ended_as in known or (ended_as is None and not lists[1] and not lists[2]))
                or not all(isinstance(g, list) and all(isinstance(p, str) and tokens(p) for p in g) for g in lists)
                or isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise RoutineError(problem, path=name)
        denied, before, after = (tuple(tokens(p) for p in g) for g in lists[:3])
        linking = frozenset(w for p in lists[3] for w in tokens(p))
        return Retraction(frozenset(intents), denied, before, after, ended_as, window, linking)

    def phrases_of(self, intents: frozenset[str] | set[str]) -> list[str]:
        """The phrases of the given intents, in the table's order (for example the ones a
        recognizer may act on early: ``SAFE_EARLY_INTENTS``)."""
        return [" ".join(p) for name, phrases in self.intents if name in intents for p in phrases]

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
        return next(self._intents(text), None)

    def parse_all(self, text: str) -> list[Intent]:
        """Every intent whose phrase stands in ``text`` (not negated, not taken back), one per
        intent and phrase, the one ``parse`` takes first: safety outranks comfort, then the
        longer phrase, then the table's order."""
        return list(self._intents(text))

    def _intents(self, text: str) -> Iterator[Intent]:
        """``parse_all``'s intents, made one at a time (``parse`` wants only the first)."""
        heard = tokens(text)
        if not heard:
            return
        table = self.table
        rank = {name: len(table.outrank) - i for i, name in enumerate(table.outrank)}
        found: dict[tuple[str, tuple[str, ...]], tuple[int, int, int]] = {}
        said = set(heard)  # a phrase whose first word was not said is not looked for
        order_of = {intent: order for order, (intent, _) in enumerate(table.intents)}

        def consider(intent: str, phrase: tuple[str, ...]) -> None:
            key = (rank.get(intent, 0), len(phrase), -order_of[intent])
            if found.get((intent, phrase), key) <= key:
                found[(intent, phrase)] = key

        for intent, phrases in table.intents:
            for phrase in phrases:
                if phrase and phrase[0] not in said:
                    continue
                stands = False
                for at in _positions(heard, phrase):
                    if table.negation.negated(intent, heard, at):
                        continue
                    taken_back = table.retraction.verdict(intent, heard, at, at + len(phrase), table.negation.words)
                    if taken_back is None:
                        stands = True
                    elif taken_back[0] == "ended" and table.retraction.ended_as is not None:
                        consider(table.retraction.ended_as, heard[taken_back[1]:taken_back[2]])
                if stands:
                    consider(intent, phrase)
        if not found:
            return
        # best first; among equal keys the first considered (sorted is stable)
        ranked = sorted(found, key=lambda k: found[k], reverse=True)
        matched = frozenset(name for name, _ in found)
        base = self.slots(heard)
        for name, phrase in ranked:
            slots = dict(base)
            for family, phrases in table.families.get(name, ()):
                if any(_find(heard, p) for p in phrases):
                    slots[FAMILY_SLOT] = family
                    break
            yield Intent(name, " ".join(phrase), slots, matched - {name})

    def takes_back(self, text: str) -> int | None:
        """Whether ``text`` holds a phrase of ``[retraction]``'s intents (the trigger) only where
        the words around it take it back ("I don't have a calf cramp", "the calf cramp is gone"):
        a spotter that fired on the phrase before the rest was said started something nobody
        asked for. None if not; else where, among ``tokens(text)``, the words that take it back
        after it begin ("is gone"), or the number of tokens where they all come before it."""
        heard = tokens(text)
        table = self.table
        retraction = table.retraction
        after: int | None = None
        for intent, phrases in table.intents:
            if intent not in retraction.intents:
                continue
            for phrase in phrases:
                for at in _positions(heard, phrase):
                    end = at + len(phrase)
                    verdict = retraction.verdict(intent, heard, at, end, table.negation.words)
                    if verdict is None:
                        return None  # the phrase stands somewhere: still the trigger
                    after = min(after if after is not None else len(heard), end if verdict[2] > end else len(heard))
        return after

    def slots(self, heard: tuple[str, ...]) -> dict[str, str]:
        found: dict[str, str] = {}
        for slot, entries in self.table.slots:
            for value, phrases in entries:
                if any(_find(heard, p) for p in phrases):
                    found.setdefault(slot, value)
        return found
