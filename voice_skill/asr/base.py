"""The recognizer protocol every backend implements.

A recognizer is built for a fixed list of phrases (the skill's whole vocabulary) and
consumes 16 kHz mono int16 ``AudioChunk``s. It segments speech itself and returns a
``Hypothesis`` per utterance it has finished hearing. Text of speech that is not one of
the phrases must not be forced onto a phrase: return what was heard (possibly empty,
or filler words) so that the intent parser rejects it.

Backends must be chunk-size invariant: the same audio fed in 20 ms or 100 ms chunks
gives the same hypotheses. They never open devices and never read the wall clock: all
times are seconds of audio, taken from the chunks.

A recognizer may also take ``set_routine(running)``: the session's word, before the audio it
applies to, that a routine is running (or no longer is). Outside a routine the session takes no
command, so a recognizer may spend less there (``asr.spotting`` hears short utterances again with
an open-vocabulary transcriber only while one runs). Without that word it hears as in a routine.
``tell_routine`` passes it on to a recognizer that takes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from voice_skill.audio.pcm import AudioChunk


@dataclass(frozen=True)
class Hypothesis:
    """What a recognizer believes was said between ``start_s`` and ``end_s``.

    ``routine_only``: a command the phrase spotter heard on its own, or one PocketSphinx took
    before the end of a segment in a room that never went quiet; it means something only
    while a routine runs (outside one, a rare false command must not make the skill talk).

    ``sound_agrees``: the command head, listening to the same audio, was sure of the very
    command this text parses to: a second, independent recognizer heard it too.
    ``sound_vetoed``: the command head gave the command this text parses to almost no chance
    and was sure of no other ("i'm fine" placed in a television's talk; see ``asr.spotting``).
    ``sound_intent``: the intent a head heard by its sound where the words made none, or another
    (a red flag in "carry on car it's gone"): the session takes it instead of parsing ``text``,
    which stays what the recognizer heard.
    ``words``: (word, start_s, end_s) for each word of ``text``, where the recognizer knows when
    each was said (PocketSphinx); empty where it does not.
    ``unverified_trigger``: the recognizer placed a trigger phrase in this utterance that failed
    its acoustic check and was taken out of ``text`` (PocketSphinx's phone-loop verification): the
    words left were decoded in the same misheard stretch ("I have a cramp" came back as "i fell
    but" once "cramp" was taken out).

    ``transcribed``: ``text`` is what an open-vocabulary recognizer (``asr.moonshine``) heard over
    the utterance the grammar recognizer ended, taken because it makes an intent.

    ``safety_doubted``: a red flag or emergency the grammar recognizer placed in the utterance the
    trigger spotter fired in, which the safety head, over the same audio, does not bear out: the
    trigger's own words are often misheard as one ("I've got a" as "i fell"; see ``asr.spotting``).
    """

    text: str
    confidence: float
    start_s: float
    end_s: float
    final: bool = True
    routine_only: bool = False
    sound_agrees: bool = False
    sound_vetoed: bool = False
    sound_intent: str | None = None
    words: tuple[tuple[str, float, float], ...] = ()
    unverified_trigger: bool = False
    safety_doubted: bool = False
    transcribed: bool = False


@runtime_checkable
class Recognizer(Protocol):
    name: str

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        """Consume a chunk; return hypotheses for utterances that ended within it.

        A backend may also return ``final=False`` hypotheses for an utterance still in
        progress (partial results); the caller acts on those only where that is safe.
        """
        ...

    def flush(self) -> list[Hypothesis]:
        """The stream has ended: finish any utterance in progress."""
        ...

    def reset(self) -> None:
        """Forget any utterance in progress (after a device change, for example)."""
        ...


def tell_routine(recognizer: object, running: bool) -> None:
    """``recognizer.set_routine(running)`` where it has one (see the module docstring)."""
    set_routine = getattr(recognizer, "set_routine", None)
    if set_routine is not None:
        set_routine(running)


class BatchedRecognizer:
    """Hands ``recognizer`` the audio ``batch`` chunks at a time instead of one by one.

    The live skill's recognizer runs in another process, and each call is a round trip
    through a pipe and a worker thread: at one call per 10-ms frame that cost more of a core
    than recognizing a quiet room (``docs/measurements.md``). Here contiguous chunks are
    joined and handed over ``batch`` at a time, on a grid that starts at the first chunk and
    again after any gap, so the same audio gives the same calls whatever the caller's pace.
    Hypotheses are the inner recognizer's, with their audio times; they only reach the caller
    up to ``batch - 1`` chunks later. Audio held back goes in first before ``flush``,
    ``reset`` or ``set_routine``, so each applies where the caller asked for it; what that
    audio brings back comes with the next ``accept``.
    """

    def __init__(self, recognizer: Any, batch: int) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.recognizer = recognizer
        self.batch = batch
        self._held: list[AudioChunk] = []
        self._ready: list[Hypothesis] = []

    def __getattr__(self, name: str) -> Any:  # name, description, missing_words, restarts...
        if name == "recognizer":  # not set yet (a copy being built)
            raise AttributeError(name)
        return getattr(self.recognizer, name)

    def _send(self) -> None:
        held, self._held = self._held, []
        if held:
            first = held[0]
            joined = AudioChunk(b"".join(c.audio for c in held), first.start_s, first.rate, first.width,
                                first.channels)
            self._ready.extend(self.recognizer.accept(joined))

    def _take(self) -> list[Hypothesis]:
        out, self._ready = self._ready, []
        return out

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        if self._held:
            last = self._held[-1]
            if (abs(chunk.start_s - last.end_s) > 1e-6
                    or (chunk.rate, chunk.width, chunk.channels) != (last.rate, last.width, last.channels)):
                self._send()  # a gap: what was held goes alone, and a new grid starts here
        self._held.append(chunk)
        if len(self._held) >= self.batch:
            self._send()
        return self._take()

    def flush(self) -> list[Hypothesis]:
        self._send()
        return self._take() + list(self.recognizer.flush() or [])

    def reset(self) -> None:
        self._send()
        self.recognizer.reset()

    def set_routine(self, running: bool) -> None:
        self._send()
        tell_routine(self.recognizer, running)

    def close(self) -> None:
        close = getattr(self.recognizer, "close", None)
        if close is not None:
            close()


class RecognizerFactory(Protocol):
    def __call__(self, phrases: Sequence[str]) -> Recognizer: ...
