"""Fixtures shared by the test modules: ``pulse`` is a private PulseAudio server (tests/pulse.py)."""

pytest_plugins = ["tests.pulse"]
