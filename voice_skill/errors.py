"""One error base class for the package, with specific subclasses.

Every error that reaches the command line is turned into one line on stderr; the
subclass decides the exit code (2 for bad input or usage, 1 for runtime failures).
"""

from __future__ import annotations


class VoiceSkillError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class UsageError(VoiceSkillError):
    """The command line or a setting asks for something that cannot be done."""

    exit_code = 2


class InputFileError(UsageError):
    """An audio file is missing, unreadable, truncated or not audio."""


class RoutineError(UsageError):
    """A routine or phrase file is invalid; the message names the step and field."""


class ModelError(UsageError):
    """A speech model is missing, corrupt, or does not fit the skill."""


class DeviceError(VoiceSkillError):
    """An audio device is missing or failed at run time."""


class RecognizerError(VoiceSkillError):
    """A speech recognizer failed while running."""
