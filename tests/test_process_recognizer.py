"""The recognizer in a child process: same answers, errors that keep their meaning, and a
parent that is never blocked by a decode (the loudspeaker's callback needs Python)."""

from __future__ import annotations

import functools
import threading
import time

import pytest

pytest.importorskip("pocketsphinx")

from voice_skill.asr.select import build_recognizer  # noqa: E402
from voice_skill.devtools import speechgen  # noqa: E402
from voice_skill.errors import ModelError, RecognizerError  # noqa: E402
from voice_skill.intents import PhraseTable  # noqa: E402
from voice_skill.supervise import ProcessRecognizer, SupervisedRecognizer  # noqa: E402


@pytest.fixture(scope="module")
def phrases() -> list[str]:
    return PhraseTable.load().phrases()


@pytest.fixture(scope="module")
def clip():
    comp = speechgen.compose([0.5, ("calf cramp", "flite:slt"), 1.0, ("pause", "flite:slt"), 1.0])
    return comp.samples


def _texts(rec, samples) -> list[str]:
    out = [h.text for chunk in speechgen.iter_array_chunks(samples, 0.1) for h in rec.accept(chunk)]
    return out + [h.text for h in rec.flush()]


def test_the_child_hears_what_the_recognizer_hears_in_process(phrases, clip) -> None:
    factory = functools.partial(build_recognizer, "pocketsphinx", None, phrases)
    here = _texts(factory()[0], clip)
    rec = ProcessRecognizer(factory)
    try:
        assert rec.name == "pocketsphinx" and "pocketsphinx" in rec.description
        assert _texts(rec, clip) == here
        assert "calf cramp" in " ".join(here)
    finally:
        rec.close()
    assert rec.pid is None


def test_a_bad_model_is_the_same_one_line_error_from_the_child(tmp_path, phrases) -> None:
    (tmp_path / "not-a-model").mkdir()
    factory = functools.partial(build_recognizer, "vosk", str(tmp_path / "not-a-model"), phrases)
    with pytest.raises(ModelError) as caught:
        ProcessRecognizer(factory)
    assert "not-a-model" in str(caught.value)


def test_a_dead_child_is_an_error_and_the_supervisor_builds_a_new_one(phrases, clip) -> None:
    factory = functools.partial(build_recognizer, "pocketsphinx", None, phrases)
    first = ProcessRecognizer(factory)
    first._proc.kill()  # the child dies (out of memory, a crash in the engine)
    first._proc.join()
    with pytest.raises(RecognizerError):
        first.accept(next(speechgen.iter_array_chunks(clip, 0.1)))
    warnings: list[str] = []
    sup = SupervisedRecognizer(lambda: ProcessRecognizer(factory), warnings.append, first=first)
    try:
        sup.accept(next(speechgen.iter_array_chunks(clip, 0.1)))
        assert warnings and sup.restarts == 1
        assert "calf cramp" in " ".join(_texts(sup, clip))  # the new child listens
    finally:
        sup.close()


def test_a_long_decode_does_not_hold_up_the_parent(phrases) -> None:
    """In process, PocketSphinx keeps Python's lock for a whole decode; from a child, the
    parent's threads (the audio callbacks) keep running."""
    tv = speechgen.tv_noise(12.0, seed=2)  # never quiet: one long segment, decoded at the end
    factory = functools.partial(build_recognizer, "pocketsphinx", None, phrases)

    def longest_stall(rec) -> tuple[float, float]:
        gaps: list[float] = []
        stop = threading.Event()

        def tick() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                time.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        chunks = list(speechgen.iter_array_chunks(tv, 0.1))
        ticker = threading.Thread(target=tick)
        ticker.start()
        t0 = time.perf_counter()
        for chunk in chunks:
            rec.accept(chunk)
        rec.flush()
        took = time.perf_counter() - t0
        stop.set()
        ticker.join()
        return max(gaps), took

    in_process, _ = longest_stall(factory()[0])
    child = ProcessRecognizer(factory)
    try:
        from_child, _ = longest_stall(child)
    finally:
        child.close()
    assert in_process > 0.2, "the in-process decode no longer stalls the parent: the test shows nothing"
    assert from_child < in_process / 3, (from_child, in_process)


def _dies_while_loading():
    import os

    os._exit(3)  # as a native library crashing while the model loads


def test_a_child_that_dies_while_starting_is_one_clear_error() -> None:
    with pytest.raises(RecognizerError, match="ended while starting"):
        ProcessRecognizer(_dies_while_loading)
