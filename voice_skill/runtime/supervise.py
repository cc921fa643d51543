"""Keeping the live skill running through the night: supervisors for the engines.

Two engines run inside the live loop and either can fail in ways that have nothing to
do with the user: a recognizer can raise or hang, and pyttsx3 is known to hang on Linux.
The user must at worst lose a moment of listening or hear a sentence twice.

- ``SupervisedRecognizer`` runs a recognizer on a worker thread. Each ``accept`` gets a
  time budget. An exception, or a call that overruns the budget, is reported once
  through ``on_warning``. The recognizer is rebuilt through its factory and listening
  goes on. A hung worker thread cannot be killed, so it is abandoned (it is a daemon
  thread). Rebuilds are spaced out so a recognizer that fails at once cannot make the
  loop spin.
- ``ProcessRecognizer`` runs the recognizer itself in a child process (the live skill
  wraps it in a ``SupervisedRecognizer``): a decode there cannot hold up the parent's
  audio callbacks, and a hung child is ended, not abandoned.
- ``ProcessVoice`` runs a speech ``Voice`` in a child process. A synthesis that does not
  answer within its budget, or a child that dies, gets the child ended and a fresh one
  started, and the sentence is tried once more. A second failure raises DeviceError,
  and the speaker prints the sentence instead.

Neither reads the wall clock for anything but its own time budgets: these are device
adapters in the sense of DESIGN.md, used by the live loop only.

One module on purpose: the recognizer and voice supervisors share the child-process
protocol (start, budgets, signals, restart) that makes them safe to kill.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np

from voice_skill.asr.base import Hypothesis, Recognizer, tell_routine
from voice_skill import errors
from voice_skill.audio.pcm import AudioChunk
from voice_skill.errors import DeviceError, RecognizerError, VoiceSkillError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- recognizer

class _Worker:
    """One thread running one recognizer; jobs in, results out."""

    def __init__(self, recognizer: Recognizer, index: int) -> None:
        self.recognizer = recognizer
        self.jobs: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self.results: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"recognizer-{index}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            method, arg = job
            try:
                out = _run_call(self.recognizer, method, arg)
                self.results.put((True, out))
            except BaseException as exc:  # reported to the caller, never lost
                self.results.put((False, exc))

    def stop(self) -> None:
        self.jobs.put(None)


def _run_call(recognizer: Recognizer, method: str, arg: Any) -> Any:
    """``accept(arg)``, ``flush()``, ``reset()`` or ``set_routine(arg)`` (optional: a recognizer
    without it is not asked, ``asr.base``)."""
    if method == "set_routine":
        return tell_routine(recognizer, arg)
    fn = getattr(recognizer, method)
    return fn(arg) if method == "accept" else fn()


class SupervisedRecognizer:
    """A recognizer that is rebuilt when it raises or hangs.

    ``factory()`` builds a fresh recognizer; ``on_warning(text)`` is called (on the
    caller's thread) once per failure. ``budget_s`` bounds one ``accept``.
    """

    def __init__(self, factory: Callable[[], Recognizer], on_warning: Callable[[str], None], *,
                 budget_s: float = 3.0, rebuild_every_s: float = 2.0, first: Recognizer | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._factory = factory
        self._now = monotonic  # wall time, for the rebuild spacing only (the budget is a queue timeout)
        self._warn = on_warning
        self.budget_s = budget_s
        self.rebuild_every_s = rebuild_every_s
        self.restarts = 0
        self._built = 0
        self._worker: _Worker | None = None
        self._next_rebuild = 0.0
        self._routine: bool | None = None  # what the recognizer was last told (``set_routine``)
        self._install(first if first is not None else factory())
        self.name = getattr(self._worker.recognizer, "name", "recognizer") if self._worker else "recognizer"

    @property
    def recognizer(self) -> Recognizer | None:
        return self._worker.recognizer if self._worker else None

    @property
    def missing_words(self) -> Any:
        return getattr(self.recognizer, "missing_words", ())

    def _install(self, recognizer: Recognizer) -> None:
        if self._routine is not None:  # a rebuilt recognizer hears what its predecessor was told
            tell_routine(recognizer, self._routine)
        self._built += 1
        self._worker = _Worker(recognizer, self._built)

    def _fail(self, what: str) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()  # a hung thread never reads it; it is a daemon and is left behind
            _close(worker.recognizer)  # a recognizer in a child process is ended, not left
        self.restarts += 1
        self._next_rebuild = self._now()
        self._warn(f"the speech recognizer {what}; restarting it")
        self._rebuild()

    def _rebuild(self) -> None:
        now = self._now()
        if now < self._next_rebuild:
            return
        try:
            self._install(self._factory())
        except Exception as exc:
            self._next_rebuild = now + self.rebuild_every_s
            log.warning("rebuilding the speech recognizer failed: %s", exc)

    def _call(self, method: str, arg: Any = None) -> list[Hypothesis]:
        if self._worker is None:
            self._rebuild()
            if self._worker is None:
                return []  # deaf until the next rebuild
        worker = self._worker
        worker.jobs.put((method, arg))
        try:
            ok, out = worker.results.get(timeout=self.budget_s)
        except queue.Empty:
            self._fail(f"did not answer within {self.budget_s:g} s")
            return []
        if not ok:
            log.debug("recognizer failure", exc_info=out)
            self._fail(f"failed ({type(out).__name__}: {out})")
            return []
        return list(out or [])

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        return self._call("accept", chunk)

    def flush(self) -> list[Hypothesis]:
        return self._call("flush")

    def reset(self) -> None:
        self._call("reset")

    def set_routine(self, running: bool) -> None:
        self._routine = running
        self._call("set_routine", running)

    def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
            _close(worker.recognizer)
            worker.thread.join(timeout=0.5)


def _close(recognizer: Recognizer) -> None:
    close = getattr(recognizer, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as exc:
        log.debug("closing a recognizer: %s", exc)


def _jobs(conn: Any) -> Iterator[Any]:
    """A child's jobs from its parent, until the parent sends None or the pipe closes."""
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        yield job


def _start_child(target: Callable[[Any, Any], None], factory: Any, name: str) -> tuple[Any, Any]:
    """A spawned child running ``target(conn, factory)``; (process, the parent's end of the pipe)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, factory), name=name, daemon=True)
    # The child starts with Ctrl-C and SIGTERM blocked (a signal mask is inherited), so a
    # Ctrl-C at the terminal, which reaches the whole process group, cannot kill it with a
    # traceback while it is still importing; ``_child_signals`` then ignores SIGINT for good.
    # Here the signals are only held back for the moment of the spawn, never lost.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _PARENTS_SIGNALS)
    try:
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    child.close()
    return proc, parent


_PARENTS_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _child_signals() -> None:
    """In a child: Ctrl-C is the parent's to handle (it ends its children itself); SIGTERM
    (a service manager ending the whole group) still ends the child."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _PARENTS_SIGNALS)


_TIMED_OUT = ("timed out",)
_ENDED = ("ended",)
_CANCELLED = ("cancelled",)
# Set while the live skill is stopping (``app.Stopper``, on SIGINT or SIGTERM): a recognizer
# being rebuilt is not waited for (a model can take many seconds to load on a Pi).
STOPPING = threading.Event()
_POLL_S = 0.1


def _receive(conn: Any, timeout_s: float, cancel: threading.Event | None = None) -> tuple:
    """A child's reply; ``_TIMED_OUT`` if it did not answer in time; ``_ENDED`` if its end of
    the pipe closed (it died, or is dying); ``_CANCELLED`` once ``cancel`` is set.

    A closed pipe is the answer to "is it dead?": a child's files are closed as it exits,
    a moment before the process can be reaped, so ``is_alive()`` asked right after an EOF
    can still say True (on a loaded machine it did, and a child that died at once was
    reported as not starting within 120 s).
    """
    if conn is None:
        return _ENDED
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if cancel is not None and cancel.is_set():
                return _CANCELLED
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _TIMED_OUT
            if conn.poll(remaining if cancel is None else min(remaining, _POLL_S)):
                return conn.recv()
    except (EOFError, OSError):
        return _ENDED


def _end_child(proc: Any, conn: Any) -> None:
    """End a child at once and close its pipe (a call blocked on the pipe then gets EOF)."""
    if proc is not None:
        proc.kill()
        proc.join(timeout=2)
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def _recognizer_child(conn: Any, factory: Callable[[], tuple[Recognizer, str]]) -> None:
    """The child process: build the recognizer, then run its calls until the pipe closes."""
    _child_signals()
    try:
        recognizer, description = factory()
    except BaseException as exc:
        conn.send(("error", type(exc).__name__, getattr(exc, "message", str(exc)), getattr(exc, "path", None)))
        return
    conn.send(("ready", getattr(recognizer, "name", "recognizer"), description,
               list(getattr(recognizer, "missing_words", ()) or ())))
    for method, arg in _jobs(conn):
        try:
            out = _run_call(recognizer, method, AudioChunk(*arg) if method == "accept" else arg)
        except Exception as exc:
            conn.send(("error", type(exc).__name__, str(exc), None))
            continue
        conn.send(("ok", list(out or [])))


def _child_error(reply: tuple) -> VoiceSkillError:
    """The error a child reported, as the same class where it is one of ours."""
    _, name, message, path = reply
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, VoiceSkillError):
        return cls(message, path=path)
    return RecognizerError(f"{name}: {message}")


class ProcessRecognizer:
    """A recognizer that runs in a child process.

    PocketSphinx holds Python's global lock for a whole decode (a second for 8 s of TV
    audio, measured), and with it the loudspeaker's and the microphone's callbacks: the
    speech stuttered (hundreds of output underruns a minute) and the echo canceller lost
    its place on the output tape. In a child process a decode blocks nobody; the parent
    only waits on a pipe. ``factory`` must be picklable and return ``(recognizer,
    description)``; an error it raises comes back as the same error (a bad model stays a
    one-line error). Calls are synchronous; ``SupervisedRecognizer`` adds the time budget.
    """

    def __init__(self, factory: Callable[[], tuple[Recognizer, str]], *, start_timeout_s: float = 120.0) -> None:
        self._proc, self._conn = _start_child(_recognizer_child, factory, "voice-skill-asr")
        reply = _receive(self._conn, start_timeout_s, STOPPING)
        if reply[0] != "ready":
            self.close()
            if reply is _CANCELLED:
                raise RecognizerError("the speech recognizer was not waited for: the skill is stopping")
            if reply is _ENDED:
                raise RecognizerError("the speech recognizer's process ended while starting")
            if reply is _TIMED_OUT:
                raise RecognizerError(f"the speech recognizer did not start within {start_timeout_s:g} s")
            raise _child_error(reply)
        _, self.name, self.description, self.missing_words = reply

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _call(self, method: str, arg: Any = None) -> list[Hypothesis]:
        if self._conn is None:
            raise RecognizerError("the speech recognizer is closed")
        try:
            self._conn.send((method, arg))
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise RecognizerError(f"the speech recognizer process ended ({exc or 'no answer'})") from None
        if reply[0] != "ok":
            raise _child_error(reply)
        return reply[1]

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        return self._call("accept", (chunk.audio, chunk.start_s, chunk.rate, chunk.width, chunk.channels))

    def flush(self) -> list[Hypothesis]:
        return self._call("flush")

    def reset(self) -> None:
        self._call("reset")

    def set_routine(self, running: bool) -> None:
        self._call("set_routine", running)

    def close(self) -> None:
        """End the child at once (a call blocked on it then fails with RecognizerError)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        _end_child(proc, conn)


# ---------------------------------------------------------------------- voice

def _voice_child(conn: Any, job: tuple[Callable[[], Any], int]) -> None:
    """The child process: build the voice, then synthesise until the pipe closes."""
    _child_signals()
    factory, nice = job
    try:
        if nice:  # a niceness to run at, never a higher priority than the skill's own
            os.setpriority(os.PRIO_PROCESS, 0, max(nice, os.getpriority(os.PRIO_PROCESS, 0)))
        voice = factory()
    except BaseException as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ready", int(getattr(voice, "rate", 0)), float(getattr(voice, "volume", 1.0)),
               str(getattr(voice, "identity", type(voice).__name__))))
    for text, rate, volume in _jobs(conn):
        try:
            voice.rate, voice.volume = rate, volume
            samples = np.asarray(voice.synthesize(text), dtype=np.int16)
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(("ok", samples.tobytes()))


class ProcessVoice:
    """A ``speaker.Voice`` whose synthesis runs in a child process that can be ended.

    ``factory`` must be picklable (a class or a ``functools.partial`` of one): it is
    called in the child. A factory that raises is reported here as DeviceError.
    ``restarts`` counts the children ended for hanging or dying. ``rate`` and ``volume``
    start as the child's voice has them and may be changed between sentences: each
    sentence is spoken with the values in force when it was asked for. ``identity`` is the
    child voice's (``tts.cache`` keys its renderings by it). ``nice`` is the niceness the child
    runs at (19 for a background renderer, which gives way to everything else), whatever the
    skill's own priority: a skill started at a raised priority (a service with ``Nice=-5``) still
    renders in the background at the lowest one.
    """

    def __init__(self, factory: Callable[[], Any], *, timeout_s: float = 4.0, start_timeout_s: float = 30.0,
                 on_restart: Callable[[str], None] | None = None, nice: int = 0) -> None:
        self._factory = factory
        self._nice = nice
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.on_restart = on_restart
        self.restarts = 0
        self.rate = 0
        self.volume = 1.0
        self.identity = ""
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self._closed = False
        self._start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        self._proc, self._conn = _start_child(_voice_child, (self._factory, self._nice), "voice-skill-tts")
        reply = _receive(self._conn, self.start_timeout_s)
        if reply[0] != "ready":
            self._end()
            if reply is _ENDED:
                raise DeviceError("the speech engine's process ended while starting")
            if reply is _TIMED_OUT:
                raise DeviceError(f"the speech engine did not start within {self.start_timeout_s:g} s")
            raise DeviceError(str(reply[1]))
        self.rate, self.volume, self.identity = reply[1], reply[2], reply[3]

    def _end(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        _end_child(proc, conn)

    def synthesize(self, text: str) -> np.ndarray:
        with self._lock:
            for attempt in (1, 2):
                if self._closed:
                    raise DeviceError("the speech engine is closed")
                if self._proc is None:
                    self._start()
                try:
                    self._conn.send((text, self.rate, self.volume))
                except (OSError, ValueError):
                    reply = _ENDED
                else:
                    reply = _receive(self._conn, self.timeout_s)
                if reply[0] == "ok":
                    return np.frombuffer(reply[1], dtype=np.int16).copy()
                if reply[0] == "error":  # the engine reported an error: no restart needed
                    raise DeviceError(f"speech synthesis failed: {reply[1]}")
                if self._closed:
                    raise DeviceError("the speech engine is closed")
                why = "hung" if reply is _TIMED_OUT else "died"
                self._end()
                self.restarts += 1
                message = f"the speech engine {why}; restarting it"
                log.warning("%s (attempt %d)", message, attempt)
                if self.on_restart is not None:
                    self.on_restart(message)
            raise DeviceError("the speech engine failed twice in a row")

    def close(self) -> None:
        """End the child at once, even while another thread waits on a synthesis."""
        self._closed = True
        proc, conn = self._proc, self._conn
        if conn is not None:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        if proc is not None:
            proc.join(timeout=0.3)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2)
        if self._lock.acquire(timeout=0.5):
            try:
                self._end()
            finally:
                self._lock.release()
