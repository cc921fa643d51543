"""The recognizer in a child process: same answers, errors that keep their meaning, and a
parent that is never blocked by a decode (the loudspeaker's callback needs Python)."""

from __future__ import annotations

import functools
import threading

import numpy as np
import pytest

pytest.importorskip("pocketsphinx")

from voice_skill.asr.base import BatchedRecognizer, Hypothesis  # noqa: E402
from voice_skill.audio.pcm import AudioChunk  # noqa: E402
from voice_skill.runtime.app import LIVE_RECOGNIZER_BATCH, RunOptions, make_recognizer, run_chunks  # noqa: E402
from voice_skill.devtools.speechgen import iter_array_chunks  # noqa: E402
from voice_skill.asr.select import build_recognizer  # noqa: E402
from voice_skill.devtools import speechgen  # noqa: E402
from voice_skill.errors import ModelError, RecognizerError  # noqa: E402
from voice_skill.core.intents import PhraseTable  # noqa: E402
from voice_skill.runtime.supervise import ProcessRecognizer, SupervisedRecognizer  # noqa: E402


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


class _HandshakeRecognizer:
    """Runs in the child: its ``accept`` says it has begun, then waits for the parent's
    other thread to answer. The answer can only come if the parent's main thread, blocked
    in ``accept`` on the child, lets the parent's other threads run (as the audio
    callbacks must). Nothing here is timed: a parent that held Python's lock would get
    "starved" after the (generous) wait, however fast or loaded the machine."""

    name = "handshake"

    def __init__(self, begun, answered) -> None:
        self.begun, self.answered = begun, answered

    def accept(self, chunk):
        self.begun.set()
        if not self.answered.wait(60):
            raise RuntimeError("starved: the parent's other threads never ran")
        self.answered.clear()
        return []

    def flush(self):
        return []

    def reset(self) -> None:
        pass


def _handshake(begun, answered):
    return _HandshakeRecognizer(begun, answered), "handshake"


def test_a_decode_in_the_child_does_not_hold_up_the_parents_threads(clip) -> None:
    """In process, PocketSphinx keeps Python's lock for a whole decode (a second for 8 s
    of TV audio); from a child, the parent's threads (the audio callbacks) keep running
    while a call waits on it."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    begun, answered = ctx.Event(), ctx.Event()
    rec = ProcessRecognizer(functools.partial(_handshake, begun, answered))
    answers = 0
    stop = threading.Event()

    def audio_callback_thread() -> None:
        nonlocal answers
        while not stop.is_set():
            if begun.wait(0.05):  # only while the main thread is inside accept()
                begun.clear()
                answers += 1
                answered.set()

    helper = threading.Thread(target=audio_callback_thread)
    helper.start()
    try:
        for chunk in list(speechgen.iter_array_chunks(clip, 0.1))[:5]:
            rec.accept(chunk)  # raises RecognizerError("... starved ...") if the helper never ran
    finally:
        stop.set()
        helper.join()
        rec.close()
    assert answers == 5


def _dies_while_loading():
    import os

    os._exit(3)  # as a native library crashing while the model loads


def _dying_slowly_while_loading():
    """A child on its way out: its pipe is closed but its process not yet reaped (every
    exiting process passes through this; on a loaded machine the parent saw it)."""
    import os
    import threading

    os.closerange(3, 1024)
    threading.Event().wait(60)  # ended by the parent long before this
    os._exit(3)


def test_a_child_that_dies_while_starting_is_one_clear_error() -> None:
    with pytest.raises(RecognizerError, match="ended while starting"):
        ProcessRecognizer(_dies_while_loading)


def test_a_child_whose_pipe_closed_is_not_said_to_have_timed_out() -> None:
    """The message must be true: the parent did not wait 120 s, the child hung up."""
    with pytest.raises(RecognizerError, match="ended while starting") as caught:
        ProcessRecognizer(_dying_slowly_while_loading, start_timeout_s=120.0)
    assert "within" not in str(caught.value)


def test_a_child_that_does_not_answer_in_time_is_said_to_have_timed_out() -> None:
    """The other side of the same question, with an injected (tiny) budget."""
    with pytest.raises(RecognizerError, match="did not start within 0.01 s"):
        ProcessRecognizer(_slow_to_load, start_timeout_s=0.01)


def _slow_to_load():
    import threading

    threading.Event().wait(60)  # ended by the parent long before this


class _SignalsAtStart:
    """A factory that notes, as the child unpickles it (before any of our code runs
    there), which signals the child holds back; and, when called, how the child handles them."""

    def __getstate__(self):
        return {}

    def __setstate__(self, _state) -> None:
        import signal

        self.blocked_at_start = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))

    def __call__(self):
        import signal

        blocked_now = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
        ignores_ctrl_c = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        return _HandshakeRecognizer(None, None), repr((self.blocked_at_start, blocked_now, ignores_ctrl_c))


def test_a_child_cannot_be_killed_by_ctrl_c_while_it_starts() -> None:
    """A terminal's Ctrl-C reaches every process in the group: a child still importing
    would die of it with a traceback. It starts with SIGINT and SIGTERM held back, then
    ignores SIGINT (the parent ends it) and takes SIGTERM again."""
    import signal

    rec = ProcessRecognizer(_SignalsAtStart())
    try:
        blocked_at_start, blocked_now, ignores_ctrl_c = eval(rec.description)  # noqa: S307 (our own repr)
    finally:
        rec.close()
    assert {int(signal.SIGINT), int(signal.SIGTERM)} <= set(blocked_at_start)
    assert int(signal.SIGINT) not in blocked_now and int(signal.SIGTERM) not in blocked_now
    assert ignores_ctrl_c
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the parent holds nothing back


def test_a_recognizer_still_starting_is_not_waited_for_once_the_skill_stops() -> None:
    """SIGINT while the recognizer is being rebuilt (a model can take long to load): the
    start is abandoned, not waited out. Nothing is timed: a start that waited for its
    budget would end in "did not start within 60 s", not in "stopping"."""
    from voice_skill.runtime.supervise import STOPPING

    STOPPING.set()
    try:
        with pytest.raises(RecognizerError, match="stopping") as caught:
            ProcessRecognizer(_slow_to_load, start_timeout_s=60.0)
        assert "within" not in str(caught.value)
    finally:
        STOPPING.clear()


class _TellsItsRoutine:
    """Runs in the child: every chunk comes back as what it was last told (``set_routine``)."""

    name = "tells"

    def __init__(self) -> None:
        self.running = None

    def set_routine(self, running: bool) -> None:
        self.running = running

    def accept(self, chunk):
        from voice_skill.asr.base import Hypothesis
        return [Hypothesis(f"routine {self.running}", 1.0, chunk.start_s, chunk.end_s)]

    def flush(self):
        return []

    def reset(self) -> None:
        pass


def _tells():
    return _TellsItsRoutine(), "tells"


def test_whether_a_routine_runs_reaches_the_child_and_a_rebuilt_one(clip) -> None:
    chunk = next(speechgen.iter_array_chunks(clip, 0.1))
    first = ProcessRecognizer(_tells)
    warnings: list[str] = []
    sup = SupervisedRecognizer(lambda: ProcessRecognizer(_tells), warnings.append, first=first)
    try:
        assert [h.text for h in sup.accept(chunk)] == ["routine None"]  # never told
        sup.set_routine(True)
        assert [h.text for h in sup.accept(chunk)] == ["routine True"]
        sup.set_routine(False)
        assert [h.text for h in sup.accept(chunk)] == ["routine False"]
        first._proc.kill()  # the child dies; the one built in its place is told what it was
        first._proc.join()
        assert sup.accept(chunk) == [] and sup.restarts == 1
        assert [h.text for h in sup.accept(chunk)] == ["routine False"]
    finally:
        sup.close()


def test_a_recognizer_that_takes_no_word_of_the_routine_is_not_troubled_by_it(phrases, clip) -> None:
    factory = functools.partial(build_recognizer, "pocketsphinx", None, phrases)
    warnings: list[str] = []
    sup = SupervisedRecognizer(lambda: ProcessRecognizer(factory), warnings.append)
    try:
        sup.set_routine(True)
        assert "calf cramp" in " ".join(_texts(sup, clip))
        assert warnings == [] and sup.restarts == 0
    finally:
        sup.close()


# ---------------------------------------------------------------------- in batches (the live path)

class _Recording:
    """A recognizer that notes every call, and says one thing per 40 ms of audio it hears."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self._heard = 0

    def accept(self, chunk):
        self.calls.append(("accept", round(chunk.start_s, 3), round(chunk.seconds, 3)))
        self._heard += chunk.samples
        out = []
        while self._heard >= 640:
            self._heard -= 640
            out.append(Hypothesis(f"h{len(self.calls)}", 1.0, chunk.start_s, chunk.end_s))
        return out

    def flush(self):
        self.calls.append(("flush",))
        return [Hypothesis("flushed", 1.0, 0.0, 0.0)]

    def reset(self) -> None:
        self.calls.append(("reset",))
        self._heard = 0

    def set_routine(self, running: bool) -> None:
        self.calls.append(("set_routine", running))


def _frames(start_s: float, n: int):
    silence = np.zeros(160, dtype="<i2").tobytes()
    return [AudioChunk(silence, round(start_s + i * 0.01, 3)) for i in range(n)]


def test_in_batches_contiguous_frames_go_together_and_a_gap_starts_a_new_grid() -> None:
    inner = _Recording()
    rec = BatchedRecognizer(inner, 4)
    out = [len(rec.accept(f)) for f in _frames(1.0, 6)]
    assert out == [0, 0, 0, 1, 0, 0]  # the answer for the first 40 ms comes as the 4th frame goes in
    rec.accept(_frames(5.0, 1)[0])  # a gap: the two held frames go alone
    assert inner.calls == [("accept", 1.0, 0.04), ("accept", 1.04, 0.02)]
    for f in _frames(5.01, 3):
        rec.accept(f)
    assert inner.calls[-1] == ("accept", 5.0, 0.04) and rec.name == "recording"


def test_in_batches_what_is_held_goes_in_before_a_routine_reset_or_flush_and_nothing_is_lost() -> None:
    inner = _Recording()
    rec = BatchedRecognizer(inner, 10)
    for f in _frames(0.0, 4):
        assert rec.accept(f) == []
    rec.set_routine(True)  # the word applies after the audio before it, as unbatched
    assert inner.calls == [("accept", 0.0, 0.04), ("set_routine", True)]
    assert [h.text for h in rec.accept(_frames(0.04, 1)[0])] == ["h1"]  # that audio's answer comes next
    rec.reset()
    assert inner.calls[-2:] == [("accept", 0.04, 0.01), ("reset",)]
    for f in _frames(0.05, 4):
        rec.accept(f)
    assert [h.text for h in rec.flush()] == ["h5", "flushed"]  # what the held 40 ms brought, then the flush's
    assert inner.calls[-2:] == [("accept", 0.05, 0.04), ("flush",)]
    with pytest.raises(ValueError):
        BatchedRecognizer(inner, 0)


@pytest.fixture(scope="module")
def routine_clip():
    comp = speechgen.compose([1.0, ("I have a calf cramp", "flite:slt"), 6.0, ("pause", "flite:slt"), 4.0,
                              ("stop", "flite:slt"), 3.0])
    return comp


def _run(audio, step: float, batch: int | None) -> list[dict]:
    options = RunOptions(asr="pocketsphinx", spotter="on")
    recognizer, _ = make_recognizer(options, PhraseTable.load())
    if batch is not None:
        recognizer = BatchedRecognizer(recognizer, batch)
    events: list[dict] = []
    run_chunks(iter_array_chunks(audio, step), options, None, recognizer=recognizer, listeners=[events.append])
    return events


def test_in_batches_the_skill_decides_the_same_a_batch_later_at_most_whatever_the_chunk_size(routine_clip) -> None:
    """Real parts (PocketSphinx, the trigger spotter and its heads, the whole session): a test
    voice starts a routine, pauses it and stops it. Heard in the live path's batches of frames,
    the skill hears the same things and acts on each less than a batch later than frame by frame,
    at the same instants whether the recording comes in 0.1-s or 0.5-s chunks."""
    batch = LIVE_RECOGNIZER_BATCH
    def decisions(events):
        return [(e["event"], e.get("intent"), e.get("state"), e["t"]) for e in events
                if e["event"] in ("heard", "routine") and (e["event"] == "routine" or e.get("intent"))]

    plain = decisions(_run(routine_clip.samples, 0.1, None))
    assert [d[:3] for d in plain if d[0] == "routine"] == [("routine", None, "started"), ("routine", None, "paused"),
                                                            ("routine", None, "stopped")], plain
    batched = decisions(_run(routine_clip.samples, 0.1, batch))
    assert decisions(_run(routine_clip.samples, 0.5, batch)) == batched
    assert [d[:3] for d in batched] == [d[:3] for d in plain]
    late = [b[3] - p[3] for b, p in zip(batched, plain)]
    assert all(-1e-9 <= d < batch * 0.01 for d in late) and max(late) > 0.0, late
