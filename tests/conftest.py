"""Fixtures shared by the test modules: ``pulse`` is a private PulseAudio server (tests/pulse.py).

``make test`` runs the suite on pytest-xdist workers (one more than the cores) with ``--dist
loadgroup``. Each worker is its own process, so module-scoped fixtures and per-process caches
are built once per worker that needs them. The tests on a PulseAudio server (marked ``live``, or using ``pulse``) start
servers and real-time audio streams and check timings against recordings: they all go to one
worker, the ``live`` xdist group, and so never run at the same time as each other.

The scheduler hands out the biggest group first (the live one: many tests, mostly waiting on
real time), then the other groups, then single tests in collection order. Tests marked
``slow(seconds=...)`` (about how long on one idle core) are put at the front of the
collection, the longest first: they start while the live group runs on its worker, and the
run ends on short tests that even out the workers, not on a long one that starts when the
others are done. The workers without the live group run at a lower priority
(``CPU_WORKER_NICE``).
"""

import os

import pytest

pytest_plugins = ["tests.pulse"]

LIVE_GROUP = "live"
_UNGROUPED = pytest.StashKey[str]()


def uses_a_sound_server(item: pytest.Item) -> bool:
    return item.get_closest_marker("live") is not None or "pulse" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if uses_a_sound_server(item):
            item.add_marker(pytest.mark.xdist_group(LIVE_GROUP))
    # Slow tests first, the longest first (a stable sort: every worker gets the same order,
    # as xdist requires).
    items.sort(key=lambda item: -slow_seconds(item))


def slow_seconds(item: pytest.Item) -> float:
    """About how long a test marked ``slow(seconds=...)`` takes on one idle core; 0 if unmarked.
    Only the order of the run depends on it."""
    mark = item.get_closest_marker("slow")
    return 0.0 if mark is None else float(mark.kwargs.get("seconds", 10.0))


@pytest.hookimpl(trylast=True)  # after xdist has (or should have) put the groups into the test ids
def pytest_collection_finish(session: pytest.Session) -> None:
    """With --dist loadgroup a group reaches the scheduler only as an "@group" suffix of the
    test id. Some pytest and pytest-xdist versions together drop it without a word (xdist
    issue 1386, pytest 9.2 with xdist 3.8): the grouped tests could then run side by side,
    so each of them fails, saying why, instead of passing or failing by chance."""
    if not getattr(session.config.option, "loadgroup", False):
        return  # not an xdist worker under --dist loadgroup
    for item in session.items:
        if item.get_closest_marker("xdist_group") is not None and "@" not in item.nodeid.rsplit("]", 1)[-1]:
            item.stash[_UNGROUPED] = (
                f"--dist loadgroup lost this test's xdist group (pytest {pytest.__version__}): it may run "
                "alongside the others of its group. See the pytest pin in pyproject.toml.")


# A worker's first test that needs no sound server lowers the worker's priority by this much
# for good (a process cannot raise it again): the live tests (one worker, mostly waiting on
# real time, then checking timings) come first for the CPU, and the other workers, one more
# than there are cores, soak up what is left. On two cores the suite took 10.5 min with two
# workers, the live one idle most of the time; see docs/development.md.
CPU_WORKER_NICE = 5
_NICED = pytest.StashKey[bool]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    why = item.stash.get(_UNGROUPED, None)
    if why is not None:
        pytest.fail(why, pytrace=False)
    if _is_xdist_worker(item.config) and not uses_a_sound_server(item) and not item.config.stash.get(_NICED, False):
        item.config.stash[_NICED] = True
        os.nice(CPU_WORKER_NICE)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.fixture(scope="session", autouse=True)
def _private_speech_cache(tmp_path_factory: pytest.TempPathFactory):
    """Every skill a test starts keeps its rendered sentences (``tts/cache.py``) in a folder of
    this worker's, never in the user's cache; the skills of one worker share it, as the runs
    of one user do."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    yield
    patch.undo()
