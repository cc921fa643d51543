"""The live loop's signal handling, in process: the first SIGINT or SIGTERM stops it, a
second one while it cleans up ends it at once, and a handler a library replaces is put back."""

from __future__ import annotations

import os
import signal

import pytest

from voice_skill.runtime.app import Stopper


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)  # the handler runs on this (the main) thread before the next line
    for _ in range(1000):
        pass


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_first_signal_stops_and_a_second_while_stopping_ends_it(sig) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt):
        with Stopper() as stopper:
            _deliver(sig)
            assert stopper.event.is_set()  # the first: the loop ends, the clean-up begins
            _deliver(sig)  # the clean-up is stuck; the user presses again
            pytest.fail("the second signal was ignored")
    assert stopper.signals == [sig, sig]
    assert signal.getsignal(sig) == before


def test_a_handler_replaced_by_a_library_is_put_back() -> None:
    with Stopper() as stopper:
        signal.signal(signal.SIGINT, lambda *_: None)  # as pocketsphinx's AudioFile does
        stopper.keep()
        _deliver(signal.SIGINT)
        assert stopper.event.is_set()


def test_the_loop_keeps_its_handlers_while_it_runs() -> None:
    """``_live_loop`` calls ``keep_handlers`` on every pass: a handler replaced while
    listening is back before the next chunk."""
    from voice_skill.runtime.app import _live_loop

    calls: list[int] = []

    class Mic:
        def read(self, timeout):
            return None

        def poll_status(self):
            return []

    class Session:
        clock = type("C", (), {"now": staticmethod(lambda: 0.0)})()

        def next_due(self):
            return None

        def advance_to(self, t):
            pass

    import threading

    stop = threading.Event()

    def keep() -> None:
        calls.append(1)
        if len(calls) == 3:
            stop.set()

    _live_loop(Session(), Mic(), object(), None, None, stop, keep_handlers=keep)
    assert len(calls) == 3


def test_the_first_signal_also_abandons_a_recognizer_start_and_the_flag_is_cleared_after() -> None:
    from voice_skill.runtime.supervise import STOPPING

    with Stopper():
        _deliver(signal.SIGTERM)
        assert STOPPING.is_set()
    assert not STOPPING.is_set()
