"""The workout screen: what the coach is doing, at a glance from a mat or a pillow.

``make_view()`` gives an ``EventLog`` listener. In a terminal it is a live ``rich`` panel:
routine and step, a countdown bar for the current hold, what was said and heard (with
the recognizer's confidence), the microphone level and the commands that work now.
When output is not a terminal (a pipe, a file, the journal under the service) it prints
one plain line per event instead.

The panel is drawn from events only, and never recomputes the coach's timeline: each
``hold`` event ({"event": "hold", "step": ..., "seconds": 15.0, "remaining_s": 18.0,
"running": true}) says how long is left of the current hold; the coach sends one when a
hold starts and again when a pause, a resume or a pace change moves its end.

``CoachState`` is the pure part (records in, numbers out); the views only draw it.

One module on purpose: the state and its two views (full screen and plain lines) change
together whenever an event gains a field.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Mapping, Protocol

import numpy as np

LEVEL_FLOOR_DBFS = -90.0
LEVEL_BAR_FROM_DBFS = -60.0  # the level bar starts here
CLIPPING_DBFS = -1.0
QUIET_DBFS = -55.0

COMMANDS_IDLE = 'Say "calf cramp" (or "leg cramp") to start · "stretches" for bedtime stretches · "help"'
COMMANDS_ACTIVE = ("Say: pause · next · back · repeat · slower · faster · stop · "
                   "\"it's gone\" · \"it hurts more\"")
COMMANDS_PAUSED = "Paused. Say: resume · next · back · stop · \"it's gone\""

def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dB relative to full scale (floor -90): for ``set_level``."""
    if samples.size == 0:
        return LEVEL_FLOOR_DBFS
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64) / 32768.0))))
    return max(LEVEL_FLOOR_DBFS, 20.0 * math.log10(rms)) if rms > 0 else LEVEL_FLOOR_DBFS


def pretty_routine(routine_id: str) -> str:
    return routine_id.replace("-", " ").capitalize()


class CoachState:
    """What the screen shows, kept up to date from event records. Times are the skill's clock."""

    def __init__(self, titles: Mapping[str, str] | None = None, step_counts: Mapping[str, int] | None = None) -> None:
        self.titles = dict(titles or {})
        self.step_counts = dict(step_counts or {})
        self.routine: str | None = None
        self.paused = False
        self.step_index: int | None = None
        self.step_id: str | None = None
        self.said: str | None = None
        self.heard: dict[str, Any] | None = None
        self.pace = 1.0
        self.warning: str | None = None
        self.last_t = 0.0
        self.hold_total: float | None = None  # settling in and the hold, as the coach last said
        self._hold_end: float | None = None  # while running
        self._hold_left: float | None = None  # while paused

    # ---- records in ---------------------------------------------------------------

    def update(self, record: Mapping[str, Any]) -> None:
        t = float(record.get("t", self.last_t))
        self.last_t = max(self.last_t, t)
        kind = record.get("event")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(t, record)

    def _on_routine(self, t: float, r: Mapping[str, Any]) -> None:
        state = r.get("state")
        if state == "started":
            self.routine = r.get("routine")
            self.paused = False
            self.pace = float(r.get("pace", self.pace))
            self.step_index = self.step_id = None
            self._clear_hold()
        elif state == "paused":
            self.paused = True
        elif state == "resumed":
            self.paused = False
        elif state in ("finished", "stopped"):
            self.routine = None
            self.paused = False
            self.step_index = self.step_id = None
            self._clear_hold()

    def _on_step(self, t: float, r: Mapping[str, Any]) -> None:
        self.step_index = r.get("index")
        self.step_id = r.get("id")
        self._clear_hold()

    def _on_hold(self, t: float, r: Mapping[str, Any]) -> None:
        remaining = float(r.get("remaining_s", float(r.get("seconds", 0.0)) + float(r.get("settle_s", 0.0))))
        if "seconds" in r or self.hold_total is None:
            self.hold_total = remaining
        self.hold_total = max(self.hold_total, remaining)
        if r.get("running", True):
            self._hold_end, self._hold_left = t + remaining, None
        else:
            self._hold_end, self._hold_left = None, remaining

    def _on_pace(self, t: float, r: Mapping[str, Any]) -> None:
        self.pace = float(r.get("pace", self.pace))

    def _on_say(self, t: float, r: Mapping[str, Any]) -> None:
        self.said = str(r.get("text", ""))

    def _on_heard(self, t: float, r: Mapping[str, Any]) -> None:
        self.heard = dict(r)

    def _on_warning(self, t: float, r: Mapping[str, Any]) -> None:
        self.warning = str(r.get("text", ""))

    def _clear_hold(self) -> None:
        self.hold_total = self._hold_end = self._hold_left = None

    # ---- numbers out --------------------------------------------------------------

    def hold_remaining(self, now: float) -> float | None:
        """Seconds left of the current hold at ``now``, or None when no hold is on."""
        if self._hold_left is not None:
            return self._hold_left
        if self._hold_end is not None:
            return max(0.0, self._hold_end - now)
        return None

    def routine_title(self) -> str | None:
        if self.routine is None:
            return None
        return self.titles.get(self.routine) or pretty_routine(self.routine)

    def step_label(self) -> str | None:
        if self.step_index is None:
            return None
        total = self.step_counts.get(self.routine or "")
        number = f"{self.step_index + 1} of {total}" if total else f"{self.step_index + 1}"
        return f"{number}: {self.step_id}" if self.step_id else number

    def heard_label(self) -> str | None:
        h = self.heard
        if not h:
            return None
        confidence = h.get("confidence")
        conf = f"{float(confidence):.0%}" if isinstance(confidence, (int, float)) else "?"
        text = f"\"{h.get('text', '')}\""
        if h.get("ignored"):
            return f"{text} (ignored: {h['ignored']}, confidence {conf})"
        if h.get("intent"):
            return f"{text} -> {h['intent']} (confidence {conf})"
        return f"{text} (not a command, confidence {conf})"

    def commands(self) -> str:
        if self.routine is None:
            return COMMANDS_IDLE
        return COMMANDS_PAUSED if self.paused else COMMANDS_ACTIVE


# ---- views --------------------------------------------------------------------------

class View(Protocol):
    def __call__(self, record: dict) -> None: ...

    def set_level(self, dbfs: float) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _Now:
    """The skill's time for drawing a countdown between events: the injected clock, or
    else the last event's time moved on by the time passed since it arrived."""

    def __init__(self, clock: Any | None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.monotonic = monotonic
        self._anchor: tuple[float, float] | None = None  # (event t, monotonic when it came)

    def saw(self, t: float) -> None:
        self._anchor = (t, self.monotonic())

    def __call__(self) -> float:
        if self.clock is not None:
            return float(self.clock.now() if hasattr(self.clock, "now") else self.clock())
        if self._anchor is None:
            return 0.0
        t, at = self._anchor
        return t + (self.monotonic() - at)


class _BaseView:
    def __init__(self, console: Any, state: CoachState) -> None:
        self.console = console
        self.state = state
        self.level: float | None = None
        self._lock = threading.Lock()

    def __call__(self, record: dict) -> None:
        with self._lock:
            self.state.update(record)
        self._after(record)

    def _after(self, record: dict) -> None:
        pass

    def set_level(self, dbfs: float) -> None:
        value = float(dbfs)
        self.level = LEVEL_FLOOR_DBFS if math.isnan(value) else min(0.0, max(LEVEL_FLOOR_DBFS, value))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stamp(t: float) -> str:
    minutes, seconds = divmod(max(0.0, t), 60)
    return f"{int(minutes)}:{seconds:05.2f}"


class LineView(_BaseView):
    """One plain line per event: for pipes, files and the journal. The level is not printed."""

    def line(self, record: Mapping[str, Any]) -> str | None:
        kind = record.get("event")
        if kind == "routine":
            extra = f" ({record['reason']})" if record.get("reason") else ""
            text = f"routine {record.get('state')}: {record.get('routine')}{extra}"
        elif kind == "step":
            text = f"step {self.state.step_label()}"
        elif kind == "hold" and "seconds" in record:
            text = f"hold {float(record['seconds']):g} s"
        elif kind == "hold":
            state = "" if record.get("running", True) else ", paused"
            text = f"hold: {float(record.get('remaining_s', 0)):.1f} s left{state}"
        elif kind == "say":
            text = f"said: {record.get('text')}"
        elif kind == "heard":
            text = f"heard: {self.state.heard_label()}"
        elif kind == "pace":
            text = f"pace {float(record.get('pace', 1.0)):g}x"
        elif kind == "warning":
            text = f"warning: {record.get('text')}"
        elif kind == "cut":
            text = f"cut off: {record.get('text')}"
        elif kind == "engine":
            text = f"speech recognizer: {record.get('detail') or record.get('asr')}"
        elif kind == "voice":
            text = f"voice: {record.get('voice')}"
        else:
            fields = " ".join(f"{k}={v}" for k, v in record.items() if k not in ("t", "event"))
            text = f"{kind} {fields}".rstrip()
        return f"{_stamp(float(record.get('t', 0.0)))}  {text}"

    def _after(self, record: dict) -> None:
        line = self.line(record)
        if line:
            self.console.out(line, highlight=False)


class LiveView(_BaseView):
    """A ``rich`` panel redrawn a few times a second while ``start()``ed."""

    def __init__(self, console: Any, state: CoachState, clock: Any | None = None,
                 refresh_per_second: float = 4.0) -> None:
        super().__init__(console, state)
        self.now = _Now(clock)
        self.refresh_per_second = refresh_per_second
        self._live = None

    def _after(self, record: dict) -> None:
        self.now.saw(float(record.get("t", 0.0)))
        if self._live is not None:
            self._live.refresh()

    def start(self) -> None:
        from rich.live import Live

        if self._live is None:
            self._live = Live(get_renderable=self.render, console=self.console,
                              refresh_per_second=self.refresh_per_second, transient=False)
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def render(self):
        """The panel as a rich renderable (also what tests print)."""
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            st = self.state
            remaining = st.hold_remaining(self.now())
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="bold", justify="right", no_wrap=True)
            grid.add_column()

            title = st.routine_title()
            if title is None:
                grid.add_row("Routine", Text("waiting for \"calf cramp\"", style="dim"))
            else:
                grid.add_row("Routine", Text(title + ("  (paused)" if st.paused else ""),
                                             style="yellow" if st.paused else "green"))
            grid.add_row("Step", st.step_label() or Text("-", style="dim"))
            if remaining is not None and st.hold_total:
                bar = ProgressBar(total=st.hold_total, completed=remaining, width=30,
                                  complete_style="yellow" if st.paused else "cyan")
                row = Table.grid(padding=(0, 1))
                row.add_row(bar, Text(f"{math.ceil(remaining - 1e-6):d} s left of {st.hold_total:g}"
                                      + (" (paused)" if st.paused else "")))
                grid.add_row("Hold", row)
            else:
                grid.add_row("Hold", Text("-", style="dim"))
            if abs(st.pace - 1.0) > 1e-3:
                grid.add_row("Pace", f"{st.pace:g}x")
            grid.add_row("Said", Text(st.said or "-", style="" if st.said else "dim"))
            heard = st.heard_label()
            heard_style = "dim" if not heard else ("green" if st.heard and st.heard.get("intent") else "yellow")
            grid.add_row("Heard", Text(heard or "-", style=heard_style))
            grid.add_row("Input", self._level_row())
            if st.warning:
                grid.add_row("Note", Text(st.warning, style="red"))
            commands = Text(st.commands(), style="bold" if st.routine else "")
        return Panel(Group(grid, Text(""), commands), title="Cramp coach", border_style="blue")

    def _level_row(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        if self.level is None:
            return Text("-", style="dim")
        span = -LEVEL_BAR_FROM_DBFS
        filled = min(span, max(0.0, self.level - LEVEL_BAR_FROM_DBFS))
        if self.level >= CLIPPING_DBFS:
            style, note = "red", "  too loud"
        elif self.level < QUIET_DBFS:
            style, note = "dim", "  quiet"
        else:
            style, note = "green", ""
        row = Table.grid(padding=(0, 1))
        row.add_row(ProgressBar(total=span, completed=filled, width=20, complete_style=style),
                    Text(f"{self.level:.0f} dBFS{note}"))
        return row


def make_view(console: Any | None = None, *, clock: Any | None = None,
              routines: Mapping[str, Any] | None = None) -> View:
    """A live panel when ``console`` (default: stdout) is a terminal, else plain lines.

    ``clock``: the skill's clock (anything with ``now()``) so the countdown moves between
    events; without it the view keeps time from the events' arrival. ``routines``: the
    loaded routines by id, for titles and step counts.
    """
    from rich.console import Console

    console = console if console is not None else Console()
    titles = {rid: getattr(r, "title", None) or pretty_routine(rid) for rid, r in (routines or {}).items()}
    counts = {rid: len(r.steps) for rid, r in (routines or {}).items() if hasattr(r, "steps")}
    state = CoachState(titles, counts)
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveView(console, state, clock)
    return LineView(console, state)
