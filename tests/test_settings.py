"""Settings: command line > environment > config file > default, and one-line errors."""

import argparse
import itertools
import os

import pytest

from voice_skill.cli.main import main as cli_main

from voice_skill import settings as S
from voice_skill.errors import UsageError
from voice_skill.tts.choice import plan_voice


def write_config(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """os.environ with no VOICE_SKILL_* variables and a config folder inside tmp_path."""
    for name in list(os.environ):
        if name.startswith("VOICE_SKILL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    return tmp_path / "cfg" / "voice-skill" / "config.toml"


# ---- precedence ---------------------------------------------------------------------------

# key, file value (TOML), environment value, command-line value, and the three results
LAYERS = [
    ("rate", "120", "150", "200", (120, 150, 200)),
    ("asr", '"vosk"', "pocketsphinx", "auto", ("vosk", "pocketsphinx", "auto")),
    ("chime", "false", "yes", False, (False, True, False)),
    ("night_start", '"21:15"', "23:00", "0:30", ("21:15", "23:00", "00:30")),
    ("volume", "0.25", "0.5", "0.75", (0.25, 0.5, 0.75)),
]


@pytest.mark.parametrize("key,file_raw,env_raw,cli_raw,expected", LAYERS, ids=[row[0] for row in LAYERS])
@pytest.mark.parametrize("in_file,in_env,in_cli", list(itertools.product([False, True], repeat=3)))
def test_precedence_in_every_combination(tmp_path, key, file_raw, env_raw, cli_raw, expected,
                                         in_file, in_env, in_cli):
    path = write_config(tmp_path, f"{key} = {file_raw}\n" if in_file else "")
    env = {f"VOICE_SKILL_{key.upper()}": env_raw} if in_env else {}
    cli = {key: cli_raw if in_cli else None}
    s = S.resolve(cli, env, path)
    want, source = S.SPEC_BY_KEY[key].default, "default"
    if in_file:
        want, source = expected[0], f"config file {path}"
    if in_env:
        want, source = expected[1], f"environment VOICE_SKILL_{key.upper()}"
    if in_cli:
        want, source = expected[2], f"command line --{key.replace('_', '-')}"
    assert getattr(s, key) == want
    assert s.sources[key] == source
    # the other settings are untouched defaults
    assert s.sources["pace"] == "default" and s.pace == 1.0


def test_defaults_without_any_file(tmp_path):
    s = S.resolve({}, {}, tmp_path / "missing.toml")
    assert s == S.Settings()
    assert set(s.sources.values()) == {"default"}
    assert s.config_path == tmp_path / "missing.toml"


def test_empty_environment_variable_means_unset(tmp_path):
    path = write_config(tmp_path, "rate = 120\n")
    s = S.resolve({}, {"VOICE_SKILL_RATE": ""}, path)
    assert s.rate == 120 and s.sources["rate"] == f"config file {path}"


def test_default_file_is_in_the_xdg_config_folder(tmp_path):
    folder = tmp_path / "xdg" / "voice-skill"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text('voice = "en-gb"\n', encoding="utf-8")
    s = S.resolve({}, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert s.voice == "en-gb" and s.sources["voice"] == f"config file {folder / 'config.toml'}"
    # a relative XDG_CONFIG_HOME is ignored, as the XDG spec says
    assert S.config_path({"XDG_CONFIG_HOME": "rel", "HOME": str(tmp_path)}) == \
        tmp_path / ".config" / "voice-skill" / "config.toml"


def test_model_path_in_the_file_is_relative_to_the_file(tmp_path):
    path = write_config(tmp_path, 'model = "models/small"\n')
    assert S.resolve({}, {}, path).model == str(tmp_path / "models" / "small")
    assert S.resolve({}, {"VOICE_SKILL_MODEL": "/opt/m"}, path).model == "/opt/m"


# ---- bad values ---------------------------------------------------------------------------

BAD = [
    ("asr", '"whisper"', "whisper", "one of auto, vosk, pocketsphinx"),
    ("rate", "500", "500", "80 to 400"),
    ("rate", "79", "79", "80 to 400"),
    ("rate", '"fast"', "fast", "80 to 400"),
    ("rate", "true", "150.5", "whole number"),
    ("volume", "1.5", "1.5", "from 0 to 1"),
    ("volume", "-0.1", "nan", "from 0 to 1"),
    ("night_start", '"25:00"', "25:00", "HH:MM"),
    ("night_end", '"7 am"', "7am", "HH:MM"),
    ("night_volume", "2", "2", "from 0 to 1"),
    ("night_rate", "40", "40", "80 to 400"),
    ("pace", "3", "0.5", "0.64 to 1.95"),
    ("pace", "true", "on", "0.64 to 1.95"),  # a boolean is not the number 1
    ("chime", '"maybe"', "maybe", "true or false"),
    ("input_device", '""', "   ", "microphone"),
    ("model", "42", "  ", "Vosk model folder"),
]


@pytest.mark.parametrize("key,toml_raw,text_raw,allowed", BAD, ids=[f"{r[0]}-{r[2]}" for r in BAD])
def test_bad_value_in_the_file_names_file_key_value_and_what_is_allowed(tmp_path, key, toml_raw, text_raw, allowed):
    path = write_config(tmp_path, f"{key} = {toml_raw}\n")
    with pytest.raises(UsageError) as info:
        S.resolve({}, {}, path)
    message = str(info.value)
    assert str(path) in message and key in message and toml_raw.strip('"') in message and allowed in message
    assert "\n" not in message


BAD_ENV = [row for row in BAD if row[2].strip()]  # an empty variable means unset


@pytest.mark.parametrize("key,toml_raw,text_raw,allowed", BAD_ENV, ids=[f"{r[0]}-{r[2]}" for r in BAD_ENV])
def test_bad_value_in_the_environment_names_the_variable(tmp_path, key, toml_raw, text_raw, allowed):
    with pytest.raises(UsageError) as info:
        S.resolve({}, {f"VOICE_SKILL_{key.upper()}": text_raw}, tmp_path / "none.toml")
    message = str(info.value)
    assert f"environment VOICE_SKILL_{key.upper()}" in message and text_raw in message and allowed in message


@pytest.mark.parametrize("key,toml_raw,text_raw,allowed", BAD, ids=[f"{r[0]}-{r[2]}" for r in BAD])
def test_bad_value_on_the_command_line_names_the_option(tmp_path, key, toml_raw, text_raw, allowed):
    with pytest.raises(UsageError) as info:
        S.resolve({key: text_raw}, {}, tmp_path / "none.toml")
    message = str(info.value)
    assert f"command line --{key.replace('_', '-')}" in message and allowed in message
    assert f"{key} = " in message


def test_a_bad_lower_layer_is_an_error_even_when_overridden(tmp_path):
    path = write_config(tmp_path, "rate = 9000\n")
    with pytest.raises(UsageError, match="9000"):
        S.resolve({"rate": "150"}, {}, path)


def test_unknown_key_in_the_file_is_named_with_a_suggestion(tmp_path):
    path = write_config(tmp_path, "rate = 150\nnight-start = \"22:00\"\n")
    with pytest.raises(UsageError) as info:
        S.resolve({}, {}, path)
    message = str(info.value)
    assert str(path) in message and '"night-start"' in message and "did you mean night_start" in message


def test_invalid_toml_names_the_file(tmp_path):
    path = write_config(tmp_path, "rate = = 150\n")
    with pytest.raises(UsageError) as info:
        S.resolve({}, {}, path)
    assert str(info.value).startswith(f"{path}: not valid TOML")


def test_a_folder_in_place_of_the_file_is_named(tmp_path):
    (tmp_path / "config.toml").mkdir()
    with pytest.raises(UsageError, match="is a folder"):
        S.resolve({}, {}, tmp_path / "config.toml")


# ---- options and the config command --------------------------------------------------------

def parse(argv):
    parser = argparse.ArgumentParser()
    S.add_arguments(parser)
    return parser.parse_args(argv)


def test_every_setting_is_an_option_and_unset_options_are_none():
    args = parse([])
    assert S.cli_values(args) == {key: None for key in S.KEYS}
    args = parse(["--night-rate", "120", "--no-chime", "--input-device", "USB"])
    values = S.cli_values(args)
    assert values["night_rate"] == "120" and values["chime"] is False and values["input_device"] == "USB"


def test_config_option_must_name_an_existing_file(tmp_path):
    with pytest.raises(UsageError, match="no such config file"):
        S.from_args(parse(["--config", str(tmp_path / "nope.toml")]), {})
    path = write_config(tmp_path, "night_rate = 100\n")
    assert S.from_args(parse(["--config", str(path)]), {}).night_rate == 100


def test_config_show_prints_an_aligned_table_of_values_and_sources(clean_env, monkeypatch, capsys):
    clean_env.parent.mkdir(parents=True)
    clean_env.write_text('rate = 120\nnight_start = "23:00"\n', encoding="utf-8")
    monkeypatch.setenv("VOICE_SKILL_VOLUME", "0.5")
    assert cli_main(["config", "show", "--rate", "200", "--no-chime"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Config file: {clean_env}"
    header, *table = lines[1:]
    voice_line = next(line for line in table if line.startswith("Voice: "))
    assert f"Voice: {plan_voice('auto').label}, because " in voice_line  # which voice, and why
    table = table[:table.index(voice_line)]
    assert header.split() == ["SETTING", "VALUE", "FROM"]
    value_col, from_col = header.index("VALUE"), header.index("FROM")
    rows = {}
    for line in table:  # aligned columns: every cell starts under its heading
        assert line[value_col - 1] == " " and line[from_col - 1] == " " and line[from_col] != " "
        rows[line[:value_col].strip()] = (line[value_col:from_col].strip(), line[from_col:])
    assert list(rows) == list(S.KEYS)
    assert rows["rate"] == ("200", "command line --rate")
    assert rows["volume"] == ("0.5", "environment VOICE_SKILL_VOLUME")
    assert rows["night_start"] == ("23:00", f"config file {clean_env}")
    assert rows["chime"] == ("false", "command line --chime")
    assert rows["asr"] == ("auto", "default")
    assert rows["model"] == ("(not set)", "default")
    assert rows["voice"] == ("auto", "default")


def test_config_show_without_a_file_says_so(clean_env, capsys):
    assert cli_main(["config", "show"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"Config file: {clean_env} (does not exist; defaults used)"


def test_config_show_bad_setting_is_one_line_and_exit_2(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("VOICE_SKILL_RATE", "fast")
    assert cli_main(["config", "show"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "VOICE_SKILL_RATE" in err[0] and '"fast"' in err[0] and "80 to 400" in err[0]


def test_config_path_prints_the_file_in_the_config_folder(clean_env, capsys):
    assert cli_main(["config", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(clean_env)


# ---- night manners ----------------------------------------------------------------------------

def test_night_adjusted_is_softer_and_slower_across_midnight(tmp_path):
    s = S.resolve({"rate": "180", "volume": "0.9", "night_rate": "130", "night_volume": "0.4",
                   "night_start": "22:30", "night_end": "06:00"}, {}, tmp_path / "none.toml")
    assert S.night_adjusted(s, 23.0) == (130, 0.4)
    assert S.night_adjusted(s, 2.5) == (130, 0.4)
    assert S.night_adjusted(s, 22.0) == (180, 0.9)
    assert S.night_adjusted(s, 6.0) == (180, 0.9)
    assert S.night_adjusted(s, 14.0) == (180, 0.9)
    assert s.night_hours == (22.5, 6.0)


def test_night_manners_never_louder_or_faster_and_can_be_off(tmp_path):
    none = tmp_path / "none.toml"
    quiet = S.resolve({"rate": "100", "volume": "0.3", "night_rate": "200", "night_volume": "0.8"}, {}, none)
    assert S.night_adjusted(quiet, 23.0) == (100, 0.3)
    off = S.resolve({"night_start": "00:00", "night_end": "00:00"}, {}, none)
    assert all(S.night_adjusted(off, h) == (165, 1.0) for h in (0.0, 3.0, 23.9))
    day_shift = S.resolve({"night_start": "08:00", "night_end": "16:00"}, {}, none)  # sleeps by day
    assert S.night_adjusted(day_shift, 12.0) == (140, 0.6) and S.night_adjusted(day_shift, 23.0) == (165, 1.0)


def test_a_night_volume_above_the_day_is_said_with_what_will_happen(tmp_path):
    none = tmp_path / "none.toml"
    loud_night = S.resolve({"volume": "0.5", "night_volume": "0.9", "rate": "150", "night_rate": "200"}, {}, none)
    notes = loud_night.notes()
    assert len(notes) == 2
    assert "night_volume 0.9 is above volume 0.5" in notes[0] and "volume 0.5" in notes[0].split(";")[1]
    assert "night_rate 200 is above rate 150" in notes[1] and "150 words per minute" in notes[1]
    assert S.night_adjusted(loud_night, 23.0) == (150, 0.5)  # what the note says happens
    # A quiet daytime volume with the default night volume is normal, not worth a word.
    assert S.resolve({"volume": "0.3"}, {}, none).notes() == []
    assert S.resolve({"night_volume": "0.4"}, {}, none).notes() == []


def test_config_show_and_run_say_the_note(clean_env, capsys, tmp_path):
    assert cli_main(["config", "show", "--volume", "0.5", "--night-volume", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "Note: night_volume 0.9 is above volume 0.5" in out
    import subprocess
    import sys
    import wave

    wav = tmp_path / "quiet.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 1600)
    done = subprocess.run([sys.executable, "-m", "voice_skill", "run", "--input", str(wav), "--asr", "pocketsphinx",
                           "--spotter", "off", "--volume", "0.5", "--night-volume", "0.9"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "voice-skill: note: night_volume 0.9 is above volume 0.5" in done.stderr
