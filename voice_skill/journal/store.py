"""The cramp journal: one row per episode, in SQLite, on this machine only.

What is kept: when an episode started (local wall time, ISO 8601 with the UTC offset),
when it ended, the leg named, the routine(s) run, the duration, how it ended (finished,
stopped, red_flag, ...; NULL after a crash: "interrupted"), whether it got worse, and the
red-flag phrases heard (not one doubted: heard in the trigger's own words and not borne out by the
safety head). Never audio, never transcripts beyond those phrases. An episode whose trigger the
rest of its sentence took back is deleted.

Durability: WAL mode, one transaction per write, ``synchronous=FULL``. The row is written
(and synced) when the episode starts, so a crash or power cut mid-episode loses at most
that episode's end. The schema is versioned with ``PRAGMA user_version``; opening an older
journal migrates it step by step, each step in its own transaction. A file that is not a
journal (or is damaged) raises ``UsageError`` naming it and is never written to.

The journal stays out of the coach: ``JournalRecorder`` is an ``EventLog`` listener that
turns the event records of a session into episodes.

One module on purpose: the schema, its migrations and every query on it stay together.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from voice_skill.errors import UsageError, VoiceSkillError

log = logging.getLogger(__name__)

DATA_DIR_NAME = "voice-skill"
JOURNAL_FILE_NAME = "journal.sqlite3"
SQLITE_MAGIC = b"SQLite format 3\x00"
NIGHT_SPLIT_HOUR = 12  # a "night" runs from noon to noon: 23:50 and 00:10 are the same night
LEG_HINT_S = 30.0  # a leg named this shortly before a routine starts belongs to its episode

# Each entry moves the schema from version i to i + 1. Append, never edit: a journal made
# by an older version is brought up to date by running the steps it has not had.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 0 -> 1
        """CREATE TABLE episodes (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,             -- local wall time, ISO 8601 with offset
            ended_at TEXT,                        -- NULL until the end is written
            leg TEXT,                             -- left, right, both or NULL
            routine TEXT NOT NULL DEFAULT '',     -- routine ids in the order run, ", " between
            duration_s REAL,
            how TEXT,                             -- finished, stopped, red_flag, interrupted, ...
            got_worse INTEGER NOT NULL DEFAULT 0,
            red_flags TEXT NOT NULL DEFAULT '[]'  -- JSON list of the red-flag phrases heard
        )""",
        "CREATE INDEX episodes_started_at ON episodes (started_at)",
    ),
]


def schema_version() -> int:
    return len(MIGRATIONS)


class JournalWriteError(VoiceSkillError):
    """Writing to the journal failed while the skill was running."""


def journal_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_DATA_HOME/voice-skill/journal.sqlite3`` (``~/.local/share/...`` by default)."""
    base = env.get("XDG_DATA_HOME", "")
    if not base or not os.path.isabs(base):
        home = env.get("HOME") or str(Path.home())
        base = os.path.join(home, ".local", "share")
    return Path(base) / DATA_DIR_NAME / JOURNAL_FILE_NAME


def night_of(moment: datetime) -> date:
    """The night a moment belongs to, named by the date it began (noon to noon)."""
    return (moment - timedelta(hours=NIGHT_SPLIT_HOUR)).date()


def _aware(moment: datetime) -> datetime:
    """A naive datetime is local time."""
    return moment if moment.tzinfo is not None else moment.astimezone()


def _iso(moment: datetime) -> str:
    return _aware(moment).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Episode:
    id: int
    started_at: datetime
    ended_at: datetime | None
    leg: str | None
    routine: str
    duration_s: float | None
    how: str | None
    got_worse: bool
    red_flags: tuple[str, ...]

    @property
    def interrupted(self) -> bool:
        """The end was never written: the skill stopped (crash, power cut) mid-episode."""
        return self.ended_at is None

    @property
    def ended_how(self) -> str:
        return "interrupted" if self.ended_at is None else (self.how or "unknown")

    @property
    def is_cramp(self) -> bool:
        """A cramp episode (rows for a red flag heard outside an episode have no routine)."""
        return bool(self.routine)

    @property
    def night(self) -> date:
        return night_of(self.started_at)


class Journal:
    """The journal file. Open it with ``Journal(path)``; use as a context manager or
    ``close()`` it."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> None:
        self.path = Path(path) if path is not None else journal_path()
        self._conn: sqlite3.Connection | None = None
        self._check_file(create)
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            self._open()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise UsageError(f"not a usable cramp journal ({exc}); it was left untouched",
                             path=str(self.path)) from None
        except BaseException:
            self.close()
            raise

    # ---- opening ------------------------------------------------------------------------

    def _check_file(self, create: bool) -> None:
        path = self.path
        if path.exists():
            if not path.is_file():
                raise UsageError("not a cramp journal (not a regular file)", path=str(path))
            try:
                with open(path, "rb") as fh:
                    head = fh.read(len(SQLITE_MAGIC))
            except OSError as exc:
                raise UsageError(f"cannot read the cramp journal: {exc.strerror or exc}", path=str(path)) from None
            if head and head != SQLITE_MAGIC:
                raise UsageError("not a cramp journal (not an SQLite database); it was left untouched",
                                 path=str(path))
            return
        if not create:
            raise UsageError("no cramp journal here", path=str(path))
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Health data: readable by its owner only. SQLite gives the -wal and -shm files
            # the same permissions as this file.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # made by another process just now; checked by SQLite below
        except OSError as exc:
            raise UsageError(f"cannot create the cramp journal: {exc.strerror or exc}", path=str(path)) from None

    def _open(self) -> None:
        conn = self._conn
        assert conn is not None
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise UsageError(f"the cramp journal is damaged ({check}); it was left untouched", path=str(self.path))
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > schema_version():
            raise UsageError(f"the cramp journal was written by a newer voice-skill (schema {version}; this "
                             f"version knows up to {schema_version()})", path=str(self.path))
        if version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise UsageError("an SQLite database, but not a cramp journal; it was left untouched",
                                 path=str(self.path))
        conn.execute("PRAGMA busy_timeout = 5000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("%s: the file system does not allow WAL mode (using %s)", self.path, mode)
        conn.execute("PRAGMA synchronous = FULL")
        for target in range(version + 1, schema_version() + 1):
            with self._transaction():
                for statement in MIGRATIONS[target - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
            log.info("%s: journal schema migrated to version %d", self.path, target)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._require()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalWriteError("the cramp journal is closed", path=str(self.path))
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def journal_mode(self) -> str:
        return self._require().execute("PRAGMA journal_mode").fetchone()[0]

    @property
    def version(self) -> int:
        return self._require().execute("PRAGMA user_version").fetchone()[0]

    # ---- writing (one transaction each) -------------------------------------------------

    def _write(self, sql: str, params: Sequence[object]) -> sqlite3.Cursor:
        try:
            with self._transaction() as conn:
                return conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise JournalWriteError(f"cannot write to the cramp journal: {exc}", path=str(self.path)) from None

    def start_episode(self, started_at: datetime, routine: str, leg: str | None = None) -> int:
        """Write the row for an episode that has just started; returns its id."""
        cur = self._write("INSERT INTO episodes (started_at, routine, leg) VALUES (?, ?, ?)",
                          (_iso(started_at), routine, leg))
        return int(cur.lastrowid)

    def update_episode(self, episode_id: int, *, leg: str | None = None, routine: str | None = None,
                       red_flags: Sequence[str] | None = None, got_worse: bool | None = None) -> None:
        """Change what is known about an episode while it runs (only the fields given)."""
        fields: dict[str, object] = {}
        if leg is not None:
            fields["leg"] = leg
        if routine is not None:
            fields["routine"] = routine
        if red_flags is not None:
            fields["red_flags"] = json.dumps(list(red_flags), ensure_ascii=False)
        if got_worse is not None:
            fields["got_worse"] = int(got_worse)
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            self._write(f"UPDATE episodes SET {assignments} WHERE id = ?", (*fields.values(), episode_id))

    def end_episode(self, episode_id: int, ended_at: datetime, how: str, duration_s: float) -> None:
        self._write("UPDATE episodes SET ended_at = ?, how = ?, duration_s = ? WHERE id = ?",
                    (_iso(ended_at), how, round(float(duration_s), 2), episode_id))

    def withdraw_episode(self, episode_id: int) -> None:
        """Delete the row of an episode that never was: its trigger was taken back by the rest
        of the sentence ("I don't have a calf cramp")."""
        self._write("DELETE FROM episodes WHERE id = ?", (episode_id,))

    def record_red_flag(self, at: datetime, phrase: str) -> int:
        """A red flag heard outside an episode: a row of its own, with no routine."""
        cur = self._write("INSERT INTO episodes (started_at, ended_at, routine, duration_s, how, red_flags) "
                          "VALUES (?, ?, '', 0, 'red_flag', ?)",
                          (_iso(at), _iso(at), json.dumps([phrase], ensure_ascii=False)))
        return int(cur.lastrowid)

    def forget(self) -> int:
        """Erase every episode, and the traces SQLite keeps of them; returns how many."""
        try:
            conn = self._require()
            conn.execute("PRAGMA secure_delete = ON")
            with self._transaction():
                count = conn.execute("DELETE FROM episodes").rowcount
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise JournalWriteError(f"cannot erase the cramp journal: {exc}", path=str(self.path)) from None
        return count

    # ---- reading ------------------------------------------------------------------------

    def episodes(self) -> list[Episode]:
        """Every row, oldest first."""
        try:
            rows = self._require().execute(
                "SELECT id, started_at, ended_at, leg, routine, duration_s, how, got_worse, red_flags "
                "FROM episodes").fetchall()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"cannot read the cramp journal: {exc}", path=str(self.path)) from None
        found = []
        for rid, started, ended, leg, routine, duration, how, worse, flags in rows:
            try:
                found.append(Episode(rid, datetime.fromisoformat(started),
                                     datetime.fromisoformat(ended) if ended else None, leg, routine or "",
                                     duration, how, bool(worse), tuple(json.loads(flags or "[]"))))
            except (ValueError, TypeError) as exc:
                raise UsageError(f"episode {rid} is damaged: {exc}", path=str(self.path)) from None
        found.sort(key=lambda e: (_aware(e.started_at), e.id))
        return found

    def episodes_in_nights(self, first: date, last: date, until: datetime | None = None) -> list[Episode]:
        """Episodes whose night is ``first`` to ``last`` inclusive (and started by ``until``)."""
        limit = _aware(until) if until is not None else None
        return [e for e in self.episodes()
                if first <= e.night <= last and (limit is None or _aware(e.started_at) <= limit)]

    def cramp_days(self, now: datetime, days: int = 7) -> list[date]:
        """The nights (noon to noon, named by their first date) among the last ``days``,
        counting tonight, with at least one cramp episode; oldest first."""
        tonight = night_of(_aware(now))
        found = self.episodes_in_nights(tonight - timedelta(days=days - 1), tonight, until=now)
        return sorted({e.night for e in found if e.is_cramp})

    def frequent_cramps(self, now: datetime) -> bool:
        """Cramps on most days of the last week (4 or more of 7), or a sudden rise: this
        week's count at least 3 and at least double the weekly average of the three weeks
        before. Worth a word about seeing a doctor."""
        if len(self.cramp_days(now, 7)) >= 4:
            return True
        tonight = night_of(_aware(now))
        cramps = [e for e in self.episodes_in_nights(tonight - timedelta(days=27), tonight, until=now)
                  if e.is_cramp]
        this_week = sum(1 for e in cramps if e.night > tonight - timedelta(days=7))
        before = len(cramps) - this_week
        return this_week >= 3 and 3 * this_week >= 2 * before  # this_week >= 2 * (before / 3)


class JournalRecorder:
    """An ``EventLog`` listener that writes episodes to a journal.

    ``wall_origin`` is the wall time at ``t == 0`` on the session's clock (naive: local
    time, following the machine's time zone; aware: kept in its own offset). An episode starts
    at a ``routine``/``started`` event for a cramp routine (a routine whose context is not
    ``active-cramp`` - the bedtime stretches - is not an episode), gathers the leg named,
    further routines, "worse" and red flags, and ends at the ``episode``/``ended`` event.

    ``routines`` tells cramp routines from others (default: the built-in ones; an unknown
    id counts as a cramp). ``advise(flag)`` is called as each episode starts with
    ``journal.frequent_cramps(...)``, e.g. to set ``coach.frequent_cramps``.

    A journal that fails to write never stops the coaching: the failure is logged, kept in
    ``failure`` and passed to ``on_error`` if given.
    """

    def __init__(self, journal: Journal, wall_origin: datetime, *, routines: Mapping[str, object] | None = None,
                 advise: Callable[[bool], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.journal = journal
        # A naive origin is local time, and wall times follow the machine's time zone (a
        # skill running for days crosses daylight-saving changes); an aware one keeps its offset.
        self._local = wall_origin.tzinfo is None
        self.wall_origin = _aware(wall_origin)
        if routines is None:
            from voice_skill.core.routine import builtin_routines

            routines = builtin_routines()
        self._contexts = {rid: getattr(r, "context", "active-cramp") for rid, r in routines.items()}
        self.advise = advise
        self.on_error = on_error
        self.failure: str | None = None
        self.episode_id: int | None = None
        self._start_t = 0.0
        self._routines: list[str] = []
        self._leg: str | None = None
        self._red_flags: list[str] = []
        self._pending_leg: tuple[float, str] | None = None

    def wall(self, t: float) -> datetime:
        moment = self.wall_origin + timedelta(seconds=float(t))
        return moment.astimezone() if self._local else moment

    @property
    def open(self) -> bool:
        return self.episode_id is not None

    def __call__(self, record: Mapping[str, object]) -> None:
        try:
            self._on_record(record)
        except VoiceSkillError as exc:
            self.failure = str(exc)
            log.warning("%s", exc)
            if self.on_error is not None:
                self.on_error(str(exc))

    def _on_record(self, record: Mapping[str, object]) -> None:
        event = record.get("event")
        t = float(record.get("t", 0.0))  # type: ignore[arg-type]
        if event == "heard":
            slots = record.get("slots")
            leg = slots.get("leg") if isinstance(slots, dict) else None
            if leg and record.get("intent") and not record.get("ignored"):
                self._on_leg(str(leg), t)
            if record.get("intent") == "worse" and self.open:  # also after the routine ended
                self.journal.update_episode(self.episode_id, got_worse=True)  # type: ignore[arg-type]
        elif event == "routine":
            state, rid = record.get("state"), str(record.get("routine", ""))
            if state == "started":
                self._on_routine_started(rid, t)
            elif state == "stopped" and record.get("reason") == "taken back" and self.open \
                    and len(self._routines) > 1 and self._routines[-1] == rid:
                self._routines.pop()  # (one that opened its episode goes with it: "withdrawn" below)
                self.journal.update_episode(self.episode_id, routine=", ".join(self._routines))  # type: ignore[arg-type]
            elif state == "stopped" and record.get("reason") == "worse" and self.open:
                self.journal.update_episode(self.episode_id, got_worse=True)  # type: ignore[arg-type]
        elif event == "warning" and record.get("red_flag") and not record.get("doubted"):
            phrase = str(record["red_flag"])
            if self.open:
                self._red_flags.append(phrase)
                self.journal.update_episode(self.episode_id, red_flags=self._red_flags)  # type: ignore[arg-type]
            else:
                self.journal.record_red_flag(self.wall(t), phrase)
        elif event == "episode" and record.get("state") == "withdrawn":
            if self.open:
                episode_id, self.episode_id = self.episode_id, None
                self.journal.withdraw_episode(episode_id)  # type: ignore[arg-type]
        elif event == "episode" and record.get("state") == "ended":
            if not self.open:
                log.debug("an episode ended that started before the journal listened")
                return
            duration = record.get("duration_s")
            duration_s = float(duration) if isinstance(duration, (int, float)) else t - self._start_t
            self._end(t, str(record.get("how") or "finished"), duration_s)

    def _on_leg(self, leg: str, t: float) -> None:
        if not self.open:
            self._pending_leg = (t, leg)
            return
        merged = leg if self._leg in (None, leg) else "both"
        if merged != self._leg:
            self._leg = merged
            self.journal.update_episode(self.episode_id, leg=merged)  # type: ignore[arg-type]

    def _on_routine_started(self, rid: str, t: float) -> None:
        if self.open:
            self._routines.append(rid)
            self.journal.update_episode(self.episode_id, routine=", ".join(self._routines))  # type: ignore[arg-type]
            return
        if self._contexts.get(rid, "active-cramp") != "active-cramp":
            return
        leg = None
        if self._pending_leg is not None and t - self._pending_leg[0] <= LEG_HINT_S:
            leg = self._pending_leg[1]
        self._pending_leg = None
        self._start_t, self._routines, self._leg, self._red_flags = t, [rid], leg, []
        started = self.wall(t)
        self.episode_id = self.journal.start_episode(started, rid, leg)
        if self.advise is not None:
            self.advise(self.journal.frequent_cramps(started))

    def _end(self, t: float, how: str, duration_s: float) -> None:
        episode_id, self.episode_id = self.episode_id, None
        self.journal.end_episode(episode_id, self.wall(t), how, duration_s)  # type: ignore[arg-type]

    def finish(self, t: float) -> None:
        """The session is closing (Ctrl-C, end of input): an episode still open ends as
        "interrupted", with its end time and duration kept."""
        if self.open:
            try:
                self._end(t, "interrupted", t - self._start_t)
            except VoiceSkillError as exc:
                self.failure = str(exc)
                log.warning("%s", exc)
