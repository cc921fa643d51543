"""The cramp journal: recording episodes from event records, durability, history, forget."""

import csv
import io
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from voice_skill.cli.main import main as cli_main

from tests.scripted import routine, run_script
from voice_skill.asr.base import Hypothesis
from voice_skill.cli import history as history_cli
from voice_skill.journal import store as J
from voice_skill.errors import UsageError
from voice_skill.journal.store import Journal, JournalRecorder
from voice_skill.core.routine import routine_from_dict

TZ = timezone(timedelta(hours=2))
ORIGIN = datetime(2024, 5, 2, 2, 13, 0, tzinfo=TZ)  # a Thursday, 02:13 at night
NOW = datetime(2024, 5, 6, 12, 30, tzinfo=TZ)  # the Monday after, just past noon


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite3") as j:
        yield j


def record(journal, records, origin=ORIGIN, **options):
    recorder = JournalRecorder(journal, origin, routines=options.pop("routines", {}), **options)
    for r in records:
        recorder(r)
    return recorder


EPISODE = [
    {"t": 3.0, "event": "heard", "text": "cramp in my left calf", "intent": "start", "confidence": 0.9,
     "slots": {"leg": "left"}},
    {"t": 3.05, "event": "routine", "state": "started", "routine": "night-cramp"},
    {"t": 3.05, "event": "step", "index": 0, "id": "flex-foot"},
    {"t": 3.1, "event": "say", "text": "Pull your toes gently toward your shin."},
    {"t": 20.0, "event": "heard", "text": "pause", "intent": "pause", "confidence": 0.8},
    {"t": 20.0, "event": "routine", "state": "paused", "routine": "night-cramp"},
    {"t": 30.0, "event": "routine", "state": "resumed", "routine": "night-cramp"},
    {"t": 95.5, "event": "routine", "state": "finished", "routine": "night-cramp"},
    {"t": 95.5, "event": "episode", "state": "ended", "how": "finished", "duration_s": 92.45},
]


def test_an_episode_is_recorded_from_its_event_records(journal):
    recorder = record(journal, EPISODE)
    assert not recorder.open and recorder.failure is None
    [e] = journal.episodes()
    assert e.started_at.isoformat() == "2024-05-02T02:13:03+02:00"
    assert e.ended_at.isoformat() == "2024-05-02T02:14:35+02:00"
    assert (e.leg, e.routine, e.duration_s, e.how, e.ended_how) == ("left", "night-cramp", 92.45, "finished", "finished")
    assert e.red_flags == () and not e.got_worse and not e.interrupted
    assert e.night.isoformat() == "2024-05-01"  # 02:13 belongs to the night that began on the 1st


def test_an_episode_whose_trigger_was_taken_back_leaves_no_row(journal):
    """The spotter fired on "calf cramp" in "I don't have a calf cramp"; the sentence heard whole
    withdrew the routine and its episode (tests/test_safety.py), and the journal forgets it."""
    spotted = Hypothesis("calf cramp", 0.99, 0.6, 1.2)
    denied = run_script([spotted, Hypothesis("i don't have a calf cramp", 0.9, 0.2, 1.9)], 30)
    recorder = record(journal, denied)
    assert journal.episodes() == [] and not recorder.open and recorder.failure is None
    # a cramp after it is an episode as any other
    record(journal, run_script([(1.0, "calf cramp")], 10))
    assert len(journal.episodes()) == 1


def test_a_routine_taken_back_within_an_episode_leaves_the_episode_as_it_was(journal):
    events = run_script([(1.0, "calf cramp"), (3.0, "stop"), Hypothesis("calf cramp", 0.99, 20.6, 21.2),
                         Hypothesis("i don't have a calf cramp", 0.9, 20.0, 21.9)], 60)
    record(journal, events)
    [e] = journal.episodes()
    assert (e.routine, e.how) == ("test-cramp", "stopped")


def test_a_doubted_red_flag_is_not_kept_as_one(journal):
    """A red flag heard in the words that started the routine, which the safety head did not bear
    out, pauses the routine with the answer (tests/test_safety.py); the journal keeps only the
    red flags the skill believed."""
    events = run_script([Hypothesis("calf cramp", 0.99, 0.6, 1.2),
                         Hypothesis("i fell it's hot but calf cramp", 0.8, 0.2, 1.9, safety_doubted=True)], 30)
    record(journal, events)
    [e] = journal.episodes()
    assert e.red_flags == () and e.how != "red_flag"


def test_a_naive_origin_is_local_time(journal):
    record(journal, EPISODE[:2], origin=datetime(2024, 5, 2, 2, 13))
    started = journal.episodes()[0].started_at
    assert started.tzinfo is not None
    assert started.replace(tzinfo=None) == datetime(2024, 5, 2, 2, 13, 3)


def test_only_what_the_journal_needs_is_stored(journal):
    record(journal, EPISODE)
    conn = sqlite3.connect(journal.path)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert "Pull your toes" not in dump and "cramp in my left calf" not in dump and "pause" not in dump


def test_the_real_session_loop_feeds_red_flags_worse_and_legs(journal):
    flagged = run_script([(1.0, "cramp in my right leg"), (3.0, "it's swollen")], 10)
    worse = run_script([(1.0, "cramp in my left leg"), (2.5, "right leg cramp"), (3.0, "it's getting worse")], 10)
    # (the trigger at 2.5 s overlaps the skill's own speech: the echo guard ignores it)
    record(journal, flagged)
    record(journal, worse, origin=ORIGIN + timedelta(days=1))
    first, second = journal.episodes()
    assert (first.leg, first.how, first.red_flags, first.routine) == ("right", "red_flag", ("it's swollen",), "test-cramp")
    assert first.duration_s == pytest.approx(2.0)
    # sharp pain ends the massage (no gentler routine after it) and the episode keeps that
    assert second.got_worse and second.routine == "test-cramp" and second.how == "worse"
    assert second.leg == "left"


def test_pain_after_the_routine_is_kept_as_got_worse(journal):
    events = run_script([(1.0, "calf cramp"), (60.0, "it's getting worse")], 90)
    record(journal, events)
    [e] = journal.episodes()
    assert e.got_worse and e.how == "worse"


def test_both_legs_named_in_one_episode(journal):
    record(journal, EPISODE[:2] + [
        {"t": 9.0, "event": "heard", "text": "right leg cramp", "intent": "start", "slots": {"leg": "right"}}])
    assert journal.episodes()[0].leg == "both"


def test_a_prevention_routine_is_not_an_episode_but_a_lone_red_flag_is_kept(journal):
    stretches = routine_from_dict(routine("bedtime-stretches", context="prevention"))
    recorder = record(journal, [
        {"t": 1.0, "event": "routine", "state": "started", "routine": "bedtime-stretches"},
        {"t": 60.0, "event": "routine", "state": "finished", "routine": "bedtime-stretches"},
        {"t": 70.0, "event": "warning", "text": "See a doctor.", "red_flag": "my leg is swollen"},
    ], routines={"bedtime-stretches": stretches})
    [e] = journal.episodes()
    assert (e.routine, e.how, e.red_flags, e.is_cramp) == ("", "red_flag", ("my leg is swollen",), False)
    assert not recorder.open


def test_a_leg_named_long_before_the_trigger_is_not_carried(journal):
    record(journal, [
        {"t": 1.0, "event": "heard", "text": "left", "intent": "help", "slots": {"leg": "left"}},
        {"t": 100.0, "event": "routine", "state": "started", "routine": "night-cramp"},
    ])
    assert journal.episodes()[0].leg is None


def test_own_voice_is_not_taken_for_a_leg(journal):
    record(journal, [
        {"t": 1.0, "event": "routine", "state": "started", "routine": "night-cramp"},
        {"t": 2.0, "event": "heard", "text": "left", "intent": None, "ignored": "own voice", "slots": {"leg": "left"}},
    ])
    assert journal.episodes()[0].leg is None


def test_finish_ends_an_open_episode_as_interrupted_with_its_duration(journal):
    recorder = record(journal, EPISODE[:3])
    recorder.finish(63.05)
    [e] = journal.episodes()
    assert e.ended_how == "interrupted" and e.duration_s == pytest.approx(60.0) and e.ended_at is not None


def test_a_failing_journal_never_stops_the_coaching(journal):
    errors = []
    recorder = JournalRecorder(journal, ORIGIN, routines={}, on_error=errors.append)
    journal.close()
    recorder(EPISODE[1])  # must not raise
    assert recorder.failure and "closed" in recorder.failure and errors == [recorder.failure]


def test_advise_is_told_about_frequent_cramps_as_an_episode_starts(journal):
    for day in range(4):
        journal.start_episode(ORIGIN - timedelta(days=day + 1), "night-cramp")
    told = []
    record(journal, EPISODE[:2], advise=told.append)
    assert told == [True]


# ---- durability ---------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timezone
    from voice_skill.journal.store import Journal, JournalRecorder
    recorder = JournalRecorder(Journal(sys.argv[1]), datetime(2024, 5, 2, 2, 0, tzinfo=timezone.utc), routines={})
    recorder({"t": 1.0, "event": "heard", "text": "right calf cramp", "intent": "start", "slots": {"leg": "right"}})
    recorder({"t": 1.0, "event": "routine", "state": "started", "routine": "night-cramp"})
    recorder({"t": 1.0, "event": "step", "index": 0, "id": "flex-foot"})
    print("mid-episode", flush=True)
    time.sleep(60)
""")


def test_a_crash_mid_episode_keeps_the_episode_marked_interrupted(tmp_path, capsys):
    path = tmp_path / "journal.sqlite3"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready, "the child never reached the middle of its episode"
        line = child.stdout.readline()
        assert line.strip() == "mid-episode", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert (tmp_path / "journal.sqlite3-wal").exists(), "the row lived in the WAL when the process died"
    with Journal(path) as journal:
        [e] = journal.episodes()
    assert e.interrupted and e.ended_how == "interrupted" and e.leg == "right" and e.routine == "night-cramp"
    assert e.started_at == datetime(2024, 5, 2, 2, 0, 1, tzinfo=timezone.utc)
    assert history(["--journal", str(path), "--now", "2024-05-03T12:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "interrupted" in out and "night-cramp" in out


def test_wal_mode_and_full_sync_are_on(journal):
    assert journal.journal_mode == "wal"
    assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    other = sqlite3.connect(journal.path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # kept in the file itself
    other.close()


def test_the_journal_is_private_to_its_owner(tmp_path):
    path = tmp_path / "new" / "journal.sqlite3"
    Journal(path).close()
    assert (path.stat().st_mode & 0o777) == 0o600


# ---- schema versions and damaged files ----------------------------------------------------------

def test_a_new_journal_has_the_latest_schema(journal):
    assert journal.version == J.schema_version() >= 1


def test_an_older_journal_is_migrated_keeping_its_rows(tmp_path, monkeypatch):
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as old:
        old.start_episode(ORIGIN, "night-cramp", "left")
    monkeypatch.setattr(J, "MIGRATIONS", J.MIGRATIONS + [("ALTER TABLE episodes ADD COLUMN note TEXT",)])
    with Journal(path) as new:
        assert new.version == len(J.MIGRATIONS)
        assert [e.leg for e in new.episodes()] == ["left"]
        assert "note" in [row[1] for row in new._conn.execute("PRAGMA table_info(episodes)")]


def test_a_journal_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "journal.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(UsageError, match="newer voice-skill"):
        Journal(path)


def corrupt_files():
    garbage = b"SQLite format 3\x00" + bytes([0x10, 0x00, 1, 1]) + b"\xff" * 4000
    return [("text", b"my cramp notes\n"), ("damaged", garbage)]


@pytest.mark.parametrize("kind,content", corrupt_files(), ids=["text", "damaged"])
def test_a_corrupt_file_is_one_clear_error_and_never_overwritten(tmp_path, capsys, kind, content):
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        Journal(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert history(["--journal", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "journal" in err[0]
    assert path.read_bytes() == content


def test_another_programs_database_is_not_taken_over(tmp_path):
    path = tmp_path / "journal.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(UsageError, match="not a cramp journal"):
        Journal(path)
    assert path.read_bytes() == before


# ---- frequent cramps ----------------------------------------------------------------------------

def add(journal, *nights_ago, hour=2):
    """One cramp per entry, at ``hour`` o'clock in the morning after the night N nights ago."""
    tonight = J.night_of(NOW)
    for n in nights_ago:
        night = tonight - timedelta(days=n)
        journal.start_episode(datetime(night.year, night.month, night.day, hour, tzinfo=TZ) + timedelta(days=1),
                              "night-cramp")


@pytest.mark.parametrize("nights_ago,expected", [
    ((1, 2, 3, 4), True),  # four of the last seven nights
    ((1, 2, 3, 4, 8, 9, 10, 11, 15, 16, 17, 18, 22, 23, 24, 25), True),  # most nights, though no rise
    ((1, 1, 2, 2, 8, 9, 10, 15, 16, 22), True),  # 4 on 2 nights: exactly double the average of 2
    ((1, 2, 3), True),  # three this week after a quiet month: a sudden rise
    ((1, 1, 1, 8, 15), True),  # 3 this week against an average of 2/3 a week
    ((1, 2, 3, 8, 9, 15, 16, 22), False),  # 3 on 3 nights, against 5 in three weeks: no rise
    ((1, 2, 3, 8, 9, 10, 15, 16, 17, 22, 23, 24), False),  # a steady 3 a week
    ((1, 1), False),  # two this week is not enough for a rise
    ((7, 8, 9, 10), False),  # four nights, but not in the last seven
    ((), False),
])
def test_frequent_cramps(journal, nights_ago, expected):
    add(journal, *nights_ago)
    assert journal.frequent_cramps(NOW) is expected


def test_cramp_days_counts_nights_not_episodes_and_ignores_the_future(journal):
    add(journal, 1, 1, 3)
    add(journal, 2, hour=23)  # 23:00 on the evening after night 2 is night 1
    journal.start_episode(NOW + timedelta(hours=1), "night-cramp")  # after "now"
    journal.record_red_flag(NOW - timedelta(days=5), "it's swollen")  # not a cramp
    tonight = J.night_of(NOW)
    assert journal.cramp_days(NOW) == [tonight - timedelta(days=3), tonight - timedelta(days=1)]
    assert journal.cramp_days(NOW, days=2) == [tonight - timedelta(days=1)]


# ---- history ------------------------------------------------------------------------------------

def history(argv):
    """``voice-skill history ARGS`` as main() runs it: errors are one line and an exit code."""
    return cli_main(["history", *argv])


def test_history_shows_a_table_and_one_bar_per_night(journal, capsys):
    record(journal, EPISODE)
    record(journal, [{"t": 0, "event": "routine", "state": "started", "routine": "night-cramp"},
                     {"t": 10, "event": "warning", "text": "!", "red_flag": "it's hot"},
                     {"t": 10, "event": "episode", "state": "ended", "how": "red_flag", "duration_s": 10}],
           origin=ORIGIN + timedelta(hours=1))
    record(journal, EPISODE[1:2], origin=ORIGIN + timedelta(days=2))  # never ended
    record(journal, EPISODE, origin=ORIGIN - timedelta(days=40))  # outside four weeks
    assert history(["--journal", str(journal.path), "--now", NOW.isoformat()]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Cramps in the last 4 weeks: 3 episodes on 2 nights."
    header = lines[2]
    assert header.split()[:5] == ["DATE", "TIME", "LEG", "ROUTINE", "DURATION"]
    assert "ENDED" in header and "RED FLAGS" in header
    table = lines[3:6]
    assert table[0].split() == ["2024-05-02", "02:13", "left", "night-cramp", "1:32", "finished", "-"]
    assert table[1].split() == ["2024-05-02", "03:13", "-", "night-cramp", "0:10", "red", "flag", "it's", "hot"]
    assert table[2].split() == ["2024-05-04", "02:13", "-", "night-cramp", "-", "interrupted", "-"]
    chart = lines[lines.index("Episodes per night (noon to noon, named by the evening's date):") + 1:]
    assert len(chart) == 28
    bars = {line.split()[1]: line.split()[2:] for line in chart}
    assert bars["2024-05-01"] == ["2", "##"] and bars["2024-05-03"] == ["1", "#"] and bars["2024-05-02"] == ["0"]
    assert chart[-1].startswith("Mon 2024-05-06") and chart[0].startswith("Tue 2024-04-09")
    assert "2024-03" not in out


def test_history_weeks_narrows_the_window(journal, capsys):
    record(journal, EPISODE, origin=ORIGIN - timedelta(days=14))
    assert history(["--journal", str(journal.path), "--now", NOW.isoformat(), "--weeks", "1"]) == 0
    assert capsys.readouterr().out.strip() == "No cramps recorded in the last week."
    assert history(["--journal", str(journal.path), "--now", NOW.isoformat(), "--weeks", "3"]) == 0
    out = capsys.readouterr().out
    assert "1 episode on 1 night." in out and len(out.split("evening's date):\n")[1].splitlines()) == 21


def test_history_csv_exports_the_episodes(journal, capsys):
    record(journal, EPISODE)
    record(journal, [{"t": 0, "event": "routine", "state": "started", "routine": "night-cramp"},
                     {"t": 5, "event": "warning", "text": "!", "red_flag": "it's hot"},
                     {"t": 6, "event": "warning", "text": "!", "red_flag": "swollen, red"}],
           origin=ORIGIN + timedelta(days=1))
    assert history(["--journal", str(journal.path), "--now", NOW.isoformat(), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["started_at"] for r in rows] == ["2024-05-02T02:13:03+02:00", "2024-05-03T02:13:00+02:00"]
    assert rows[0]["how"] == "finished" and rows[0]["duration_s"] == "92.45" and rows[0]["leg"] == "left"
    assert rows[1]["how"] == "interrupted" and rows[1]["ended_at"] == "" and rows[1]["duration_s"] == ""
    assert rows[1]["red_flags"] == "it's hot; swollen, red"
    assert list(rows[0]) == list(history_cli.CSV_FIELDS)


def test_history_without_a_journal_is_empty_and_creates_nothing(tmp_path, capsys):
    path = tmp_path / "none" / "journal.sqlite3"
    assert history(["--journal", str(path)]) == 0
    assert "No cramps recorded" in capsys.readouterr().out
    assert history(["--journal", str(path), "--csv"]) == 0
    assert capsys.readouterr().out.strip() == ",".join(history_cli.CSV_FIELDS)
    assert not path.parent.exists()


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_forget_with_yes_erases_every_episode_without_a_trace(journal, capsys):
    journal.close()
    with sqlite3.connect(journal.path) as conn:  # enough rows to fill several pages, in one go
        conn.executemany("INSERT INTO episodes (started_at, routine) VALUES (?, 'marker-routine')",
                         [((ORIGIN - timedelta(days=d)).isoformat(),) for d in range(300)])
    conn.close()
    assert b"marker-routine" in journal.path.read_bytes()
    assert history(["--journal", str(journal.path), "--forget", "--yes"]) == 0
    assert "Erased 300 episodes from" in capsys.readouterr().out
    with Journal(journal.path) as again:
        assert again.episodes() == []
    leftovers = [p for p in journal.path.parent.iterdir() if p.name.startswith(journal.path.name)]
    assert all(b"marker-routine" not in p.read_bytes() for p in leftovers), "no trace left in free pages"


def test_forget_refuses_without_a_terminal_or_yes(journal, monkeypatch, capsys):
    record(journal, EPISODE)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # piped input is not an answer
    assert history(["--journal", str(journal.path), "--forget"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing" in err[0] and "--yes" in err[0]
    assert len(journal.episodes()) == 1


@pytest.mark.parametrize("answer,code,left", [("y\n", 0, 0), ("n\n", 1, 1), ("\n", 1, 1)])
def test_forget_asks_on_a_terminal(journal, monkeypatch, capsys, answer, code, left):
    record(journal, EPISODE)
    monkeypatch.setattr(sys, "stdin", FakeTerminal(answer))
    assert history(["--journal", str(journal.path), "--forget"]) == code
    assert "Erase all 1 recorded episode in" in capsys.readouterr().err
    assert len(journal.episodes()) == left


def test_yes_without_forget_is_a_usage_error(journal, capsys):
    assert history(["--journal", str(journal.path), "--yes"]) == 2


def test_default_journal_is_in_the_xdg_data_folder(tmp_path):
    assert J.journal_path({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "voice-skill" / "journal.sqlite3"
    assert J.journal_path({"HOME": str(tmp_path)}) == tmp_path / ".local" / "share" / "voice-skill" / "journal.sqlite3"
