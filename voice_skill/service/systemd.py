"""The bedside service: a systemd *user* unit that keeps ``voice-skill run`` listening.

The unit runs the ``voice-skill`` entry point of the environment this package is
installed in, after the sound server (PipeWire or PulseAudio) is up, restarts it when it
fails (with a growing delay where systemd supports one), and sends its output to the
journal (``journalctl --user -u voice-skill``).

Pure parts (rendering, finding the unit folder and the sound server) take everything as
arguments so tests need neither systemd nor a user session. ``Systemctl`` is the one
thin adapter that runs ``systemctl --user``.

One module on purpose: writing, enabling and inspecting the unit are one file's life.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from voice_skill.errors import VoiceSkillError

log = logging.getLogger(__name__)

UNIT_NAME = "voice-skill.service"

# RestartSteps= and RestartMaxDelaySec= (a restart delay that grows) arrived in systemd 254.
# Older managers (Debian 12 and Raspberry Pi OS bookworm ship 252) warn about unknown keys,
# so those get a fixed delay instead.
BACKOFF_SYSTEMD = 254
RESTART_SEC = 2  # first delay when the delay can grow
RESTART_STEPS = 6
RESTART_MAX_DELAY_SEC = 60
RESTART_SEC_FIXED = 15  # the only delay on older systemd: a few journal lines a minute at most

# The user units of each sound server that the skill's audio goes through.
SOUND_SERVERS: dict[str, tuple[str, ...]] = {
    "pipewire": ("pipewire.service", "pipewire-pulse.service"),
    "pulseaudio": ("pulseaudio.service",),
    "none": (),
}
ALL_SOUND_UNITS = ("pipewire.service", "pipewire-pulse.service", "pulseaudio.service")

SYSTEMCTL_TIMEOUT_S = 60.0


class ServiceError(VoiceSkillError):
    """systemctl failed, or the unit file cannot be written or removed."""


# ---- where things are ---------------------------------------------------------------

def config_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    value = env.get("XDG_CONFIG_HOME", "")
    if value and os.path.isabs(value):  # the XDG spec says relative values are to be ignored
        return Path(value)
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".config"


def unit_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where a user's own units live: ``$XDG_CONFIG_HOME/systemd/user``."""
    return config_home(env) / "systemd" / "user"


def user_unit_search_path(env: Mapping[str, str] | None = None) -> list[Path]:
    """The folders the user manager reads units from, most important first (see
    systemd.unit(5), "User Unit Search Path"); enough to tell which sound server exists."""
    env = os.environ if env is None else env
    data_home = Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME") or os.path.expanduser("~")) / ".local/share")
    return [
        unit_dir(env),
        Path("/etc/systemd/user"),
        data_home / "systemd/user",
        Path("/usr/local/lib/systemd/user"),
        Path("/usr/lib/systemd/user"),
        Path("/lib/systemd/user"),
    ]


def entry_point() -> list[str]:
    """The command that starts this installation of the skill.

    The ``voice-skill`` script beside the running interpreter (a venv's ``bin``), else the
    one on PATH, else ``python -m voice_skill`` with this interpreter. Symlinks are kept:
    a venv's python is a link, and resolving it would leave the venv.
    """
    beside = Path(os.path.abspath(sys.executable)).parent / "voice-skill"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("voice-skill")
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", "voice_skill"]


def _unit_state(name: str, dirs: Sequence[Path]) -> str:
    """"present", "masked" or "absent": the first folder holding the unit decides."""
    for folder in dirs:
        path = folder / name
        if path.is_symlink() or path.exists():
            try:
                target = path.resolve()
            except OSError:
                return "absent"
            if str(target) == os.devnull or not target.exists() or target.stat().st_size == 0:
                return "masked"
            return "present"
    return "absent"


def detect_sound_server(dirs: Sequence[Path] | None = None) -> str:
    """"pipewire", "pulseaudio" or "none", from the user units that exist and are not masked.

    PipeWire's PulseAudio replacement wins: with both installed, Debian masks or removes
    the other, and wanting both would make them fight over the same socket.
    """
    dirs = user_unit_search_path() if dirs is None else dirs
    if _unit_state("pipewire-pulse.service", dirs) == "present":
        return "pipewire"
    if _unit_state("pulseaudio.service", dirs) == "present":
        return "pulseaudio"
    if _unit_state("pipewire.service", dirs) == "present":
        return "pipewire"
    return "none"


def parse_systemd_version(text: str) -> int | None:
    match = re.search(r"\bsystemd (\d+)", text)
    return int(match.group(1)) if match else None


# ---- the unit -----------------------------------------------------------------------

_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def quote_arg(arg: str) -> str:
    """One word of a systemd command line: ``%`` and ``$`` made literal, quoted when needed."""
    if not arg:
        return '""'
    text = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN_WORD.fullmatch(arg):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_line(command: Sequence[str]) -> str:
    return " ".join(quote_arg(word) for word in command)


def render_unit(command: Sequence[str], *, sound_server: str = "none",
                systemd_version: int | None = None) -> str:
    """The text of ``voice-skill.service``.

    ``command`` is the full command line (program first, absolute). ``systemd_version``
    is the manager that will read the unit; ``None`` means unknown, and gets the
    directives every systemd since 230 understands.
    """
    if sound_server not in SOUND_SERVERS:
        raise ValueError(f"unknown sound server {sound_server!r}")
    if not command or not os.path.isabs(command[0]):
        raise ValueError("the service command must start with an absolute path")
    wants = SOUND_SERVERS[sound_server]
    # With no sound server found, order after all of them anyway: ordering against a unit
    # that never starts costs nothing, and covers one installed later.
    after = wants or ALL_SOUND_UNITS
    backoff = systemd_version is not None and systemd_version >= BACKOFF_SYSTEMD
    lines = [
        "# Written by 'voice-skill service install'; it is overwritten on the next install.",
        "# Logs: journalctl --user -u voice-skill -f",
        "[Unit]",
        "Description=Cramp coach: listens for \"calf cramp\" and talks you through it (offline)",
        f"After={' '.join(after)}",
    ]
    if wants:
        lines.append(f"Wants={' '.join(wants)}")
    lines += [
        # Never give up restarting: a microphone plugged in later must still be picked up.
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=exec",
        f"ExecStart={exec_line(command)}",
        "Restart=on-failure",
    ]
    if backoff:
        lines += [
            f"RestartSec={RESTART_SEC}s",
            f"RestartSteps={RESTART_STEPS}",
            f"RestartMaxDelaySec={RESTART_MAX_DELAY_SEC}s",
        ]
    else:
        lines.append(f"RestartSec={RESTART_SEC_FIXED}s")
    lines += [
        # Exit code 2 is bad usage or an invalid routine or config: restarting cannot fix it.
        "RestartPreventExitStatus=2",
        "Environment=PYTHONUNBUFFERED=1",
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=voice-skill",
        "TimeoutStopSec=15s",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


# ---- systemctl ----------------------------------------------------------------------

class Systemctl:
    """``systemctl --user`` as a small adapter; ``find()`` gives None when it is not installed."""

    def __init__(self, program: str) -> None:
        self.program = program

    @classmethod
    def find(cls, path: str | None = None) -> "Systemctl | None":
        program = shutil.which("systemctl", path=path)
        return cls(program) if program else None

    def _run(self, *args: str, user: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self.program, *(["--user"] if user else []), *args]
        log.debug("running %s", " ".join(argv))
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"systemctl {' '.join(args)} failed: {exc}") from None

    def version(self) -> int | None:
        try:
            return parse_systemd_version(self._run("--version", user=False).stdout)
        except ServiceError:
            return None

    def reachable(self) -> bool:
        """Is there a user manager to talk to (a login session, or lingering)?"""
        try:
            return self._run("show-environment").returncode == 0
        except ServiceError:
            return False

    def ok(self, *args: str) -> bool:
        return self._run(*args).returncode == 0

    def query(self, *args: str) -> str:
        return self._run(*args).stdout.strip()

    def check(self, *args: str) -> None:
        result = self._run(*args)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise ServiceError(f"systemctl --user {' '.join(args)} failed"
                               + (f": {detail[-1]}" if detail else f" (exit code {result.returncode})"))


def lingering(user: str | None = None) -> bool:
    """Does the user's manager start at boot, without a login (``loginctl enable-linger``)?"""
    return Path("/var/lib/systemd/linger", user or getpass.getuser()).exists()


def linger_hint(user: str | None = None) -> str:
    user = user or getpass.getuser()
    return (f"To start it at boot without logging in, run once: sudo loginctl enable-linger {user}")


# ---- install, uninstall, status -----------------------------------------------------

@dataclass
class Report:
    path: Path
    done: list[str] = field(default_factory=list)  # what happened
    todo: list[str] = field(default_factory=list)  # commands the user still has to run
    notes: list[str] = field(default_factory=list)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ServiceError(f"cannot write the unit: {exc.strerror or exc}", path=str(path)) from None


def _wants_links(folder: Path) -> list[Path]:
    """``*.wants/voice-skill.service`` links that ``systemctl enable`` made."""
    return [link for link in folder.glob(f"*.wants/{UNIT_NAME}") if link.is_symlink() or link.exists()]


def install(text: str, folder: Path, systemctl: Systemctl | None, *, user: str | None = None) -> Report:
    """Write the unit into ``folder`` and, with a reachable user manager, enable and start it
    (restarting it when it was running with another unit text)."""
    path = folder / UNIT_NAME
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise ServiceError(f"cannot read the unit: {exc.strerror or exc}", path=str(path)) from None
    report = Report(path)
    _write_atomically(path, text)
    report.done.append(f"{'unchanged' if old == text else 'updated' if old else 'wrote'} {path}")
    if systemctl is not None and systemctl.reachable():
        was_active = systemctl.ok("is-active", "--quiet", UNIT_NAME)
        systemctl.check("daemon-reload")
        systemctl.check("enable", "--now", UNIT_NAME)
        if was_active and old != text:
            systemctl.check("restart", UNIT_NAME)
            report.done.append(f"restarted {UNIT_NAME} with the new settings")
        else:
            report.done.append(f"enabled and started {UNIT_NAME}")
        report.notes.append("Logs: journalctl --user -u voice-skill -f")
    else:
        why = "systemctl is not installed" if systemctl is None else "no systemd user manager is reachable from here"
        report.notes.append(f"Not started: {why}. In a login session of this user, run:")
        report.todo += ["systemctl --user daemon-reload", f"systemctl --user enable --now {UNIT_NAME}"]
    if not lingering(user):
        report.notes.append(linger_hint(user))
    return report


def uninstall(folder: Path, systemctl: Systemctl | None) -> Report:
    """Stop and disable the unit where a user manager is reachable, then remove its file
    and the links ``enable`` made. Nothing installed is not an error."""
    path = folder / UNIT_NAME
    report = Report(path)
    links = _wants_links(folder)
    if not (path.exists() or path.is_symlink() or links):
        report.done.append(f"nothing to remove: {path} does not exist")
        return report
    reachable = systemctl is not None and systemctl.reachable()
    if reachable:
        systemctl.check("disable", "--now", UNIT_NAME)
        report.done.append(f"stopped and disabled {UNIT_NAME}")
    for link in [path, *links]:
        try:
            link.unlink(missing_ok=True)
        except OSError as exc:
            raise ServiceError(f"cannot remove: {exc.strerror or exc}", path=str(link)) from None
        report.done.append(f"removed {link}")
    if reachable:
        systemctl.check("daemon-reload")
        systemctl.ok("reset-failed", UNIT_NAME)  # forget a failed state; fine if there is none
    else:
        report.notes.append("No systemd user manager is reachable from here; if the service is running, "
                            "run in a login session of this user:")
        report.todo += [f"systemctl --user stop {UNIT_NAME}", "systemctl --user daemon-reload"]
    return report


def exec_start(text: str) -> list[str] | None:
    """The command of a unit's ``ExecStart=`` (our own quoting undone), or None."""
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            try:
                words = shlex.split(line[len("ExecStart="):])
            except ValueError:
                return None
            return [w.replace("%%", "%").replace("$$", "$") for w in words]
    return None


@dataclass
class Status:
    path: Path
    installed: bool
    command: list[str] | None = None  # the installed ExecStart
    program_ok: bool = False  # does its program still exist (``make clean`` removes the venv)?
    enabled: str | None = None  # systemctl is-enabled, when reachable
    active: str | None = None  # systemctl is-active, when reachable
    lingering: bool = False

    def lines(self) -> list[str]:
        out = [f"unit file: {self.path} ({'installed' if self.installed else 'not installed'})"]
        if self.command:
            out.append(f"runs: {' '.join(shlex.quote(w) for w in self.command)}")
            if not self.program_ok:
                out.append(f"  {self.command[0]} does not exist any more: run 'voice-skill service install' "
                           "again from the current installation")
        if self.enabled is None:
            out.append("systemd user manager: not reachable from here")
        else:
            out.append(f"enabled: {self.enabled}")
            out.append(f"active: {self.active}")
        out.append(f"starts at boot without login (linger): {'yes' if self.lingering else 'no'}")
        return out


def status(folder: Path, systemctl: Systemctl | None, *, user: str | None = None) -> Status:
    path = folder / UNIT_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except OSError as exc:
        raise ServiceError(f"cannot read the unit: {exc.strerror or exc}", path=str(path)) from None
    result = Status(path, text is not None, lingering=lingering(user))
    if text is not None:
        result.command = exec_start(text)
        program = result.command[0] if result.command else ""
        result.program_ok = bool(program) and os.path.isfile(program) and os.access(program, os.X_OK)
    if systemctl is not None and systemctl.reachable():
        result.enabled = systemctl.query("is-enabled", UNIT_NAME) or "not-found"
        result.active = systemctl.query("is-active", UNIT_NAME) or "unknown"
    return result
