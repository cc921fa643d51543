"""Settings: one TOML file, environment variables and command-line options.

Every setting can come from four places; the first that has it wins:

1. the command line (``--rate 150``),
2. the environment (``VOICE_SKILL_RATE=150``),
3. the config file, ``$XDG_CONFIG_HOME/voice-skill/config.toml``
   (``~/.config/voice-skill/config.toml`` when XDG_CONFIG_HOME is unset), e.g. ``rate = 150``,
4. the built-in default.

Every value is checked wherever it comes from, even when a higher layer overrides it: a bad
value raises ``UsageError`` naming the setting, the value, where it came from and what is
allowed. ``resolve`` returns a frozen ``Settings`` whose ``sources`` say where each value
came from (``config show`` prints them).

One module on purpose: every setting's name, default, check and source is written once,
here, for the config file, the environment and the command line alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import logging
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

from voice_skill.core.coach import PACE_MAX, PACE_MIN
from voice_skill.core.daytime import DEFAULT_NIGHT, hhmm, is_night, parse_hhmm
from voice_skill.errors import UsageError
from voice_skill.core.speechtime import DEFAULT_RATE_WPM, DEFAULT_VOICE_SETTING, MAX_RATE_WPM, MIN_RATE_WPM

log = logging.getLogger(__name__)

ENV_PREFIX = "VOICE_SKILL_"
CONFIG_DIR_NAME = "voice-skill"
CONFIG_FILE_NAME = "config.toml"
ASR_CHOICES = ("auto", "vosk", "pocketsphinx")
SPOTTER_CHOICES = ("auto", "on", "off")
RATE_MIN, RATE_MAX = MIN_RATE_WPM, MAX_RATE_WPM


class _Bad(ValueError):
    """A value does not fit; the caller adds the key, the value and where it came from."""


# ---- value parsers: (raw value, from text?) -> value ----------------------------------
# Raw values are strings from the command line and the environment, TOML values from the
# file (where the number 150 and the string "150" are different things).

def _choice(options: tuple[str, ...]) -> Callable[[object], object]:
    def parse(raw: object) -> str:
        if isinstance(raw, str) and raw.strip().lower() in options:
            return raw.strip().lower()
        raise _Bad()
    return parse


def _text(raw: object) -> str:
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    raise _Bad()


def _path(raw: object) -> str:
    return os.path.expanduser(_text(raw))


def _auto_off_or_path(raw: object) -> str:
    text = _text(raw)
    return text.lower() if text.lower() in ("auto", "off") else os.path.expanduser(text)


def _whole(lo: int, hi: int) -> Callable[[object], object]:
    def parse(raw: object) -> int:
        if isinstance(raw, bool):
            raise _Bad()
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, str):
            try:
                value = int(raw.strip())
            except ValueError:
                raise _Bad() from None
        else:
            raise _Bad()
        if not lo <= value <= hi:
            raise _Bad()
        return value
    return parse


def _number(lo: float, hi: float) -> Callable[[object], object]:
    def parse(raw: object) -> float:
        if isinstance(raw, bool):
            raise _Bad()
        if isinstance(raw, (int, float)):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                raise _Bad() from None
        else:
            raise _Bad()
        if not (math.isfinite(value) and lo <= value <= hi):
            raise _Bad()
        return value
    return parse


def _clock(raw: object) -> str:
    if isinstance(raw, dt.time):  # TOML local time, e.g. night_start = 22:30:00
        return f"{raw.hour:02d}:{raw.minute:02d}"
    if not isinstance(raw, str):
        raise _Bad()
    try:
        hour, minute = hhmm(raw)
    except ValueError:
        raise _Bad() from None
    return f"{hour:02d}:{minute:02d}"


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _Bad()


# ---- the settings -----------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    key: str
    default: object
    allowed: str  # what is allowed, in words, for error messages and --help
    parse: Callable[[object], object]
    help: str
    metavar: str = ""

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper()

    @property
    def option(self) -> str:
        return "--" + self.key.replace("_", "-")


SPECS: tuple[Spec, ...] = (
    Spec("asr", "auto", "one of " + ", ".join(ASR_CHOICES), _choice(ASR_CHOICES),
         "speech recognizer (auto: Vosk when a model is installed, else PocketSphinx)", "NAME"),
    Spec("spotter", "auto", "one of " + ", ".join(SPOTTER_CHOICES), _choice(SPOTTER_CHOICES),
         "trained trigger spotter in front of the recognizer (auto: on with the built-in English phrases)",
         "MODE"),
    Spec("model", None, "a Vosk model folder (a non-empty path)", _path, "Vosk model folder", "PATH"),
    Spec("moonshine", "auto", "auto, off or a folder holding Moonshine's three files", _auto_off_or_path,
         "Moonshine, which hears short utterances again (auto: where the moonshine-cpp wheel is installed)",
         "auto|off|PATH"),
    Spec("input_device", None, "a fragment of a microphone's name", _text,
         "microphone to use (a fragment of its name)", "NAME"),
    Spec("output_device", None, "a fragment of a loudspeaker's name", _text,
         "loudspeaker to use (a fragment of its name)", "NAME"),
    Spec("voice", DEFAULT_VOICE_SETTING, "auto, piper, piper:NAME, espeak, espeak:NAME or an espeak-ng voice name", _text,
         "text-to-speech voice: auto (the default: the natural voice where it runs fast enough, "
         "else espeak-ng), piper:joe, espeak or espeak:NAME", "NAME"),
    Spec("rate", DEFAULT_RATE_WPM, f"a whole number of words per minute from {RATE_MIN} to {RATE_MAX}",
         _whole(RATE_MIN, RATE_MAX), "speaking rate in words per minute", "WPM"),
    Spec("volume", 1.0, "a number from 0 to 1", _number(0.0, 1.0), "speaking volume from 0 to 1", "0..1"),
    Spec("night_start", DEFAULT_NIGHT[0], "a time of day as HH:MM, like 22:30", _clock,
         "when night manners start (softer, slower speech)", "HH:MM"),
    Spec("night_end", DEFAULT_NIGHT[1], "a time of day as HH:MM, like 07:00", _clock,
         "when night manners end (equal to --night-start: no night manners)", "HH:MM"),
    Spec("night_volume", 0.6, "a number from 0 to 1", _number(0.0, 1.0),
         "speaking volume at night (never louder than --volume)", "0..1"),
    Spec("night_rate", 140, f"a whole number of words per minute from {RATE_MIN} to {RATE_MAX}",
         _whole(RATE_MIN, RATE_MAX), "speaking rate at night (never faster than --rate)", "WPM"),
    Spec("routine", None, "a routine id (see 'voice-skill routines list') or a routine file", _path,
         "the routine a trigger starts (default: chosen by what was said and the time of day)", "ID|FILE"),
    Spec("pace", 1.0, f"a number from {PACE_MIN} to {PACE_MAX} (1 is normal, larger is slower)",
         _number(PACE_MIN, PACE_MAX), "routine pace at the start (larger is slower)", "FACTOR"),
    Spec("chime", True, "true or false (also yes/no, on/off, 1/0 outside the file)", _boolean,
         "at night, a soft chime before the skill speaks after a quiet spell"),
    Spec("echo_cancel", True, "true or false (also yes/no, on/off, 1/0 outside the file)", _boolean,
         "take the skill's own voice out of the microphone, so you can talk over it"),
)
SPEC_BY_KEY: Mapping[str, Spec] = MappingProxyType({s.key: s for s in SPECS})
KEYS: tuple[str, ...] = tuple(SPEC_BY_KEY)


@dataclass(frozen=True)
class Settings:
    asr: str = "auto"
    spotter: str = "auto"
    model: str | None = None
    moonshine: str = "auto"
    input_device: str | None = None
    output_device: str | None = None
    voice: str = DEFAULT_VOICE_SETTING
    rate: int = DEFAULT_RATE_WPM
    volume: float = 1.0
    night_start: str = DEFAULT_NIGHT[0]
    night_end: str = DEFAULT_NIGHT[1]
    night_volume: float = 0.6
    night_rate: int = 140
    routine: str | None = None
    pace: float = 1.0
    chime: bool = True
    echo_cancel: bool = True
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({k: "default" for k in KEYS}),
                                       compare=False)
    config_path: Path | None = field(default=None, compare=False)

    @property
    def night_hours(self) -> tuple[float, float]:
        """(start, end) as fractional hours, the form ``app.RunOptions.night_hours`` takes."""
        return parse_hhmm(self.night_start), parse_hhmm(self.night_end)

    def is_night(self, hour: float) -> bool:
        return is_night(hour, self.night_hours)

    def values(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in KEYS}

    def notes(self) -> list[str]:
        """What the user should know about how these settings combine, in sentences.

        Night manners are never louder or faster than the day (``night_adjusted``): a night
        value set above the daytime one is not an error (a quiet daytime volume with the
        default night volume is normal), but one the user set is a wish that will not be
        met, so it is said, with what will happen instead."""
        out = []
        if self.night_volume > self.volume and self.sources.get("night_volume", "default") != "default":
            out.append(f"night_volume {self.night_volume:g} is above volume {self.volume:g}; night is never "
                       f"louder than day, so at night the skill speaks at volume {self.volume:g}")
        if self.night_rate > self.rate and self.sources.get("night_rate", "default") != "default":
            out.append(f"night_rate {self.night_rate} is above rate {self.rate}; night is never faster than "
                       f"day, so at night the skill speaks at {self.rate} words per minute")
        if self.night_start == self.night_end and any(
                self.sources.get(k, "default") != "default" for k in ("night_volume", "night_rate")):
            out.append(f"night_start equals night_end ({self.night_start}): there are no night hours, "
                       "so night_volume and night_rate are not used")
        return out


def night_adjusted(settings: Settings, hour: float) -> tuple[int, float]:
    """The speaking (rate, volume) for a local time of day (``hour`` as 23.5 for 23:30).

    Night manners: during night hours speech is no faster than ``night_rate`` and no louder
    than ``night_volume`` (and never faster or louder than the daytime settings either)."""
    if settings.is_night(hour):
        return min(settings.rate, settings.night_rate), min(settings.volume, settings.night_volume)
    return settings.rate, settings.volume


# ---- where the file is --------------------------------------------------------------------

def config_dir(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CONFIG_HOME", "")
    if not base or not os.path.isabs(base):  # the XDG spec says to ignore relative paths
        home = env.get("HOME") or str(Path.home())
        base = os.path.join(home, ".config")
    return Path(base) / CONFIG_DIR_NAME


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    return config_dir(env) / CONFIG_FILE_NAME


def _show(raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str):
        return json.dumps(raw, ensure_ascii=False)
    if isinstance(raw, dict):
        return "a table"
    if isinstance(raw, list):
        return "a list"
    return str(raw)


def _check(spec: Spec, raw: object, source: str, path: Path | None = None) -> object:
    try:
        return spec.parse(raw)
    except _Bad:
        where = "" if path is not None else f" from {source}"
        raise UsageError(f"bad setting {spec.key} = {_show(raw)}{where}; allowed: {spec.allowed}",
                         path=str(path) if path is not None else None) from None


def read_file(path: Path) -> dict[str, object]:
    """The config file's raw settings ({} when there is no file). Unknown keys, invalid
    TOML and unreadable files raise ``UsageError`` naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise UsageError("is a folder, not a config file", path=str(path)) from None
    except OSError as exc:
        raise UsageError(f"cannot read the config file: {exc.strerror or exc}", path=str(path)) from None
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError("the config file is not UTF-8 text", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"not valid TOML: {exc}", path=str(path)) from None
    for key in table:
        if key not in SPEC_BY_KEY:
            close = difflib.get_close_matches(key.replace("-", "_"), KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"unknown setting {json.dumps(key)}{hint}; known settings: {', '.join(KEYS)}",
                             path=str(path))
    return table


def resolve(cli: Mapping[str, object | None], env: Mapping[str, str] = os.environ,
            path: Path | None = None) -> Settings:
    """The effective settings: command line > environment > config file > default.

    ``cli`` maps setting keys to values (None: not given); unknown keys are an error, so a
    typo in the wiring cannot silently drop an option. ``path`` is the config file (default
    ``config_path(env)``); a missing file is simply no settings.
    """
    for key in cli:
        if key not in SPEC_BY_KEY:
            raise UsageError(f"unknown setting {key!r} passed from the command line")
    path = Path(path) if path is not None else config_path(env)
    file_values = read_file(path)
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for spec in SPECS:
        value, source = spec.default, "default"
        if spec.key in file_values:
            raw = file_values[spec.key]
            value, source = _check(spec, raw, "", path), f"config file {path}"
            if spec.key == "model" and not os.path.isabs(value):
                value = str(path.parent / value)  # relative to the file, not to where we run
            if spec.key == "routine" and value.endswith(".toml") and not os.path.isabs(value):
                value = str(path.parent / value)  # a file, relative to the config file; an id stays an id
        raw_env = env.get(spec.env)
        if raw_env is not None and raw_env.strip() != "":  # VAR= means unset, as shells use it
            source = f"environment {spec.env}"
            value = _check(spec, raw_env, source)
        raw_cli = cli.get(spec.key)
        if raw_cli is not None:
            source = f"command line {spec.option}"
            value = _check(spec, raw_cli, source)
        values[spec.key] = value
        sources[spec.key] = source
    return Settings(**values, sources=MappingProxyType(sources), config_path=path)


# ---- command line -------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every setting as an option (default None: "not given", so the environment and
    the config file can fill it), plus ``--config PATH``."""
    group = parser.add_argument_group(
        "settings", "each also an environment variable VOICE_SKILL_<NAME> and a key in the config file "
        "(see 'voice-skill config show'); the command line wins over the environment, the environment "
        "over the file")
    group.add_argument("--config", metavar="PATH", default=None,
                       help="the config file to read instead of the one in the user's config folder")
    for spec in SPECS:
        help_text = f"{spec.help} ({spec.env}; default {_show(spec.default) if spec.default is not None else 'none'})"
        if spec.parse is _boolean:
            group.add_argument(spec.option, dest=spec.key, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        else:
            group.add_argument(spec.option, dest=spec.key, default=None, metavar=spec.metavar,
                               help=help_text.replace("%", "%%"))


def cli_values(args: argparse.Namespace) -> dict[str, object | None]:
    """The settings given on the command line (None for those that were not)."""
    return {key: getattr(args, key, None) for key in KEYS}


def from_args(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Settings:
    """``resolve`` for a namespace made by a parser that ``add_arguments`` was called on.
    A config file named with ``--config`` must exist."""
    explicit = getattr(args, "config", None)
    path = Path(os.path.expanduser(explicit)) if explicit else None
    if path is not None and not path.exists():
        raise UsageError("no such config file (given with --config)", path=str(path))
    return resolve(cli_values(args), env, path)
