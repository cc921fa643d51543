"""ALSA's own messages, counted and sent to our log instead of flooding stderr.

libasound prints every problem it meets straight to stderr ("ALSA lib pcm.c:8545:
(snd_pcm_recover) underrun occurred"): on a loaded machine, idle listening printed that
657 times in 25 s, which in a service fills the journal. ALSA lets a program replace the
printer (``snd_lib_error_set_handler``); this module puts ours in its place:

- the first message of each kind (same file, line and function) is logged as a warning,
  naming the kind and saying that repeats are counted;
- repeats are counted and reported at most once every ``every_s`` seconds ("... 656 more
  times in the last 60 s");
- while PortAudio probes the system's devices (``probing()``), messages are logged at
  debug level only: a fresh Raspberry Pi OS prints a dozen "Unknown PCM cards.pcm.rear"
  lines there that mean nothing to a user.

ALSA passes the message's format and a variable argument list; ctypes cannot read the
arguments, so a message is shown with its format (``%s occurred``): the kind, which is
what a reader needs.

Only the wall clock for the reporting interval is read here (injected for tests).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger(__name__)

REPORT_EVERY_S = 60.0

# void (*)(const char *file, int line, const char *function, int err, const char *fmt, ...)
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_char_p)


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", errors="replace") if raw else "?"


class AlsaMessages:
    """Counts ALSA messages by kind and reports them, rate-limited, through ``report``."""

    def __init__(self, report: Callable[[int, str], None] | None = None, *, every_s: float = REPORT_EVERY_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._report = report or (lambda level, text: log.log(level, "%s", text))
        self.every_s = every_s
        self._now = monotonic
        self._lock = threading.Lock()
        self._seen: set[tuple[str, int, str]] = set()
        self._pending: dict[tuple[str, int, str], tuple[str, int]] = {}  # kind -> (text, repeats)
        self._window_start: float | None = None
        self._probing = 0
        self.total = 0

    def message(self, file: bytes | None, line: int, function: bytes | None, err: int, fmt: bytes | None) -> None:
        """One message from ALSA (called on whatever thread ALSA runs on)."""
        key = (_text(file), int(line), _text(function))
        text = f"ALSA lib {key[0]}:{key[1]}:({key[2]}) {_text(fmt).strip()}"
        if err:
            text += f" (error {err})"
        out: list[tuple[int, str]] = []
        with self._lock:
            self.total += 1
            now = self._now()
            if self._probing:
                out.append((logging.DEBUG, text))
            elif key not in self._seen:
                self._seen.add(key)
                out.append((logging.WARNING, f"{text} (repeats are counted and reported once "
                                             f"every {self.every_s:g} s)"))
                if self._window_start is None:
                    self._window_start = now
            else:
                kind_text, count = self._pending.get(key, (text, 0))
                self._pending[key] = (kind_text, count + 1)
            out.extend(self._due(now))
        for level, line_text in out:
            self._report(level, line_text)

    def _due(self, now: float) -> list[tuple[int, str]]:
        if self._window_start is None:
            self._window_start = now
        if now - self._window_start < self.every_s or not self._pending:
            return []
        span = now - self._window_start
        lines = [(logging.WARNING, f"{text}: {count} more times in the last {span:.0f} s")
                 for text, count in self._pending.values()]
        self._pending.clear()
        self._window_start = now
        return lines

    def flush(self) -> None:
        """Report the repeats counted so far (at the end of a run)."""
        with self._lock:
            lines = []
            if self._pending:
                span = self._now() - (self._window_start if self._window_start is not None else self._now())
                lines = [(logging.WARNING, f"{text}: {count} more times in the last {span:.0f} s")
                         for text, count in self._pending.values()]
                self._pending.clear()
        for level, text in lines:
            self._report(level, text)

    @contextlib.contextmanager
    def probing(self) -> Iterator[None]:
        """Messages inside are debug only (PortAudio listing every device ALSA knows)."""
        with self._lock:
            self._probing += 1
        try:
            yield
        finally:
            with self._lock:
                self._probing -= 1


_installed: tuple[AlsaMessages, object] | None = None
_install_lock = threading.Lock()


def install(messages: AlsaMessages | None = None) -> AlsaMessages | None:
    """Route libasound's messages through ``messages`` (a process-wide AlsaMessages by
    default). Returns it, or None where there is no libasound (then nothing is printed by
    it either). Idempotent: the first installed collector stays."""
    global _installed
    with _install_lock:
        if _installed is not None:
            return _installed[0]
        name = ctypes.util.find_library("asound") or "libasound.so.2"
        try:
            lib = ctypes.CDLL(name)
            setter = lib.snd_lib_error_set_handler
        except (OSError, AttributeError):
            return None
        collector = messages or AlsaMessages()
        callback = _HANDLER_TYPE(collector.message)  # kept referenced for the life of the process
        setter.argtypes = [_HANDLER_TYPE]
        setter.restype = ctypes.c_int
        if setter(callback) != 0:
            return None
        _installed = (collector, callback)
        return collector


def installed() -> AlsaMessages | None:
    return _installed[0] if _installed is not None else None


@contextlib.contextmanager
def probing() -> Iterator[None]:
    """``AlsaMessages.probing`` on the installed collector, if any."""
    collector = installed()
    if collector is None:
        yield
        return
    with collector.probing():
        yield
