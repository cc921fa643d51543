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
others are done. The live worker runs at a higher priority than the others (see
``LIVE_WORKER_BOOST`` below).
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


# The live tests (one worker, mostly waiting on real time, then checking timings) must come
# first for the CPU; the other workers, one more than there are cores, soak up what is left.
# Where the system lets a process raise its priority (root, or a nice limit that allows it),
# the live worker is raised by LIVE_WORKER_BOOST and the others stay at the priority they were
# started with, so beside other work on a loaded machine they take their fair share of the
# cores. Elsewhere the other workers lower theirs by CPU_WORKER_NICE instead: the live tests
# still come first, and the suite yields to whatever else runs. A process cannot undo either
# step, so each worker takes it once, before its first test. See docs/development.md.
LIVE_WORKER_BOOST = 5
CPU_WORKER_NICE = 5
_PRIORITY_SET = pytest.StashKey[bool]()


def can_raise_priority(by: int = LIVE_WORKER_BOOST) -> bool:
    if os.geteuid() == 0:
        return True
    import resource  # noqa: PLC0415

    soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)  # the lowest nice allowed is 20 - soft
    return soft == resource.RLIM_INFINITY or 20 - soft <= os.nice(0) - by


def pytest_runtest_setup(item: pytest.Item) -> None:
    why = item.stash.get(_UNGROUPED, None)
    if why is not None:
        pytest.fail(why, pytrace=False)
    if _is_xdist_worker(item.config) and not item.config.stash.get(_PRIORITY_SET, False):
        item.config.stash[_PRIORITY_SET] = True
        boost = can_raise_priority()
        if uses_a_sound_server(item):
            if boost:
                os.nice(-LIVE_WORKER_BOOST)
        elif not boost:
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
