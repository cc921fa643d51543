"""The bedside service: the rendered systemd user unit (checked by systemd-analyze where
it runs), and install/uninstall into a temporary config folder, both without systemctl
and with a small fake one that records what it was asked."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from voice_skill.cli.main import main as cli_main

from voice_skill.service import systemd as service
from voice_skill.service.systemd import UNIT_NAME, render_unit

COMMAND = ["/opt/coach/.venv/bin/voice-skill", "run"]


def directives(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert key not in found, f"{key} set twice"
            found[key] = value
    return found


# ---- rendering ----------------------------------------------------------------------

def test_unit_for_systemd_252_has_a_fixed_restart_delay_and_only_known_directives():
    text = render_unit(COMMAND, sound_server="pipewire", systemd_version=252)
    d = directives(text)
    assert d["ExecStart"] == "/opt/coach/.venv/bin/voice-skill run"
    assert d["Restart"] == "on-failure" and d["RestartSec"] == "15s"
    assert "RestartSteps" not in d and "RestartMaxDelaySec" not in d
    assert d["StartLimitIntervalSec"] == "0"
    assert d["RestartPreventExitStatus"] == "2"
    assert d["Wants"] == d["After"] == "pipewire.service pipewire-pulse.service"
    assert d["StandardOutput"] == d["StandardError"] == "journal"
    assert d["WantedBy"] == "default.target"
    assert text.index("[Unit]") < text.index("[Service]") < text.index("[Install]")


@pytest.mark.parametrize("version", [254, 256])
def test_unit_for_newer_systemd_backs_off(version):
    d = directives(render_unit(COMMAND, sound_server="pulseaudio", systemd_version=version))
    assert (d["RestartSec"], d["RestartSteps"], d["RestartMaxDelaySec"]) == ("2s", "6", "60s")
    assert d["Wants"] == d["After"] == "pulseaudio.service"


def test_unknown_systemd_gets_the_safe_unit_and_no_sound_server_still_orders_after_all():
    d = directives(render_unit(COMMAND, sound_server="none", systemd_version=None))
    assert "RestartSteps" not in d and "Wants" not in d
    assert d["After"] == "pipewire.service pipewire-pulse.service pulseaudio.service"


def test_command_words_are_quoted_for_systemd():
    line = service.exec_line(["/home/a b/.venv/bin/voice-skill", "run", "--input-device", 'USB "Mic" 100%', "$HOME"])
    assert line == '"/home/a b/.venv/bin/voice-skill" run --input-device "USB \\"Mic\\" 100%%" "$$HOME"'
    text = render_unit(["/x/voice-skill", "run", "--input-device", "USB Mic %1"])
    assert service.exec_start(text) == ["/x/voice-skill", "run", "--input-device", "USB Mic %1"]


def test_render_refuses_a_relative_command_or_unknown_sound_server():
    with pytest.raises(ValueError):
        render_unit(["voice-skill", "run"])
    with pytest.raises(ValueError):
        render_unit(COMMAND, sound_server="jack")


def test_entry_point_is_this_installation():
    command = service.entry_point()
    assert os.path.isabs(command[0]) and os.access(command[0], os.X_OK)


def test_sound_server_is_detected_from_user_units(tmp_path):
    config, vendor = tmp_path / "config", tmp_path / "vendor"
    config.mkdir(), vendor.mkdir()
    dirs = [config, vendor]
    assert service.detect_sound_server(dirs) == "none"
    (vendor / "pulseaudio.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert service.detect_sound_server(dirs) == "pulseaudio"
    (vendor / "pipewire.service").write_text("[Service]\nExecStart=/bin/true\n")
    (vendor / "pipewire-pulse.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert service.detect_sound_server(dirs) == "pipewire"
    (config / "pipewire-pulse.service").symlink_to(os.devnull)  # masked by the user
    assert service.detect_sound_server(dirs) == "pulseaudio"


def test_config_folder_follows_xdg_config_home():
    assert service.unit_dir({"XDG_CONFIG_HOME": "/c", "HOME": "/h"}) == Path("/c/systemd/user")
    assert service.unit_dir({"XDG_CONFIG_HOME": "relative", "HOME": "/h"}) == Path("/h/.config/systemd/user")
    assert service.unit_dir({"HOME": "/h"}) == Path("/h/.config/systemd/user")


# ---- systemd-analyze verify ---------------------------------------------------------

def _local_systemd_version():
    systemctl = service.Systemctl.find()
    return systemctl.version() if systemctl else None


def analyze(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """``systemd-analyze --user verify``, with a private runtime folder so it needs no session;
    falls back to the system manager's rules (the same unit-file grammar) where a user
    manager cannot be simulated. Skips when neither can run here."""
    program = shutil.which("systemd-analyze")
    if program is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    result = None
    for mode in (["--user"], []):
        result = subprocess.run([program, *mode, "verify", str(unit)], capture_output=True, text=True,
                                env=env, timeout=60)
        if "Failed to initialize manager" not in result.stderr + result.stdout:
            return result
    pytest.skip(f"systemd-analyze cannot simulate a manager here: {result.stderr.strip().splitlines()[-1]}")


@pytest.mark.parametrize("sound_server", ["pipewire", "pulseaudio", "none"])
def test_rendered_unit_passes_systemd_analyze_verify(tmp_path, sound_server):
    command = [*service.entry_point(), "run", "--input-device", "USB Mic %1", "--volume", "0.6"]
    unit = tmp_path / UNIT_NAME
    unit.write_text(render_unit(command, sound_server=sound_server, systemd_version=_local_systemd_version()))
    result = analyze(unit, tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert output == "", output  # not even a warning (unknown key, bad quoting, missing program)


def test_backoff_directives_match_the_local_systemd(tmp_path):
    """The reason the unit depends on the version: systemd before 254 warns about the
    back-off keys (and ignores them); 254 and later take them silently."""
    version = _local_systemd_version()
    if version is None:
        pytest.skip("systemctl is not installed, so its version is unknown")
    unit = tmp_path / UNIT_NAME
    unit.write_text(render_unit([*service.entry_point(), "run"], systemd_version=service.BACKOFF_SYSTEMD))
    output = (lambda r: r.stdout + r.stderr)(analyze(unit, tmp_path))
    if version < service.BACKOFF_SYSTEMD:
        assert "Unknown key" in output and "RestartSteps" in output, output
    else:
        assert output.strip() == "", output


# ---- install and uninstall ----------------------------------------------------------

@pytest.fixture
def home(tmp_path, monkeypatch):
    """A temporary XDG_CONFIG_HOME, and a PATH with no systemctl on it."""
    config = tmp_path / "config"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(service, "lingering", lambda user=None: False)
    assert shutil.which("systemctl") is None
    return config / "systemd" / "user"


def cli(capsys, *args):
    code = cli_main(["service", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_install_without_systemctl_writes_the_unit_and_says_what_to_run(home, capsys):
    code, out, _ = cli(capsys, "install", "--sound-server", "pipewire", "--run-args=--volume 0.6")
    assert code == 0
    unit = home / UNIT_NAME
    d = directives(unit.read_text())
    assert d["ExecStart"] == " ".join([*service.entry_point(), "run", "--volume", "0.6"])
    assert "RestartSteps" not in d  # unknown systemd version: the unit every version accepts
    assert f"wrote {unit}" in out
    assert "systemctl --user daemon-reload" in out
    assert f"systemctl --user enable --now {UNIT_NAME}" in out
    assert "loginctl enable-linger" in out
    assert not list(home.glob("*.part"))

    code, out, _ = cli(capsys, "install", "--sound-server", "pipewire", "--run-args=--volume 0.6")
    assert code == 0 and f"unchanged {unit}" in out

    code, out, _ = cli(capsys, "status")
    assert code == 0 and "(installed)" in out and "not reachable" in out and "does not exist" not in out


def test_uninstall_without_systemctl_removes_the_unit_and_its_enable_link(home, capsys):
    assert cli(capsys, "install")[0] == 0
    wants = home / "default.target.wants"
    wants.mkdir()
    (wants / UNIT_NAME).symlink_to(home / UNIT_NAME)  # what 'systemctl --user enable' leaves
    code, out, _ = cli(capsys, "uninstall")
    assert code == 0
    assert not (home / UNIT_NAME).exists() and not (wants / UNIT_NAME).is_symlink()
    assert f"removed {home / UNIT_NAME}" in out and "systemctl --user daemon-reload" in out
    code, out, _ = cli(capsys, "uninstall")
    assert code == 0 and "nothing to remove" in out
    code, out, _ = cli(capsys, "status")
    assert code == 0 and "(not installed)" in out


def test_status_notices_a_unit_whose_program_is_gone(home, capsys):
    home.mkdir(parents=True)
    (home / UNIT_NAME).write_text(render_unit(["/gone/.venv/bin/voice-skill", "run"]))
    code, out, _ = cli(capsys, "status")
    assert code == 0 and "/gone/.venv/bin/voice-skill does not exist any more" in out


def test_bad_run_args_are_usage_errors(home, capsys):
    for bad in ("--bogus", "--input x.wav", "--volume 7", "'unclosed"):
        code, _, err = cli(capsys, "install", f"--run-args={bad}")
        assert code == 2 and err.count("\n") == 1 and err.startswith("voice-skill service: --run-args"), err
    assert not (home / UNIT_NAME).exists()


def test_unit_action_prints_what_install_would_write(home, capsys):
    code, out, _ = cli(capsys, "unit", "--sound-server", "none", "--systemd-version", "256")
    assert code == 0
    assert out == render_unit([*service.entry_point(), "run"], sound_server="none", systemd_version=256)


FAKE_SYSTEMCTL = """\
#!/bin/sh
# A stand-in for systemctl: records its arguments, answers like a user manager would.
echo "$*" >> "$FAKE_SYSTEMCTL_LOG"
case "$*" in
  --version) echo "systemd 256 (256.5-1)";;
  "--user is-active --quiet voice-skill.service") exit "${FAKE_ACTIVE:-3}";;
  "--user enable --now voice-skill.service")
    if [ -n "$FAKE_FAIL_ENABLE" ]; then echo "Failed to enable unit: boom" >&2; exit 1; fi;;
esac
exit 0
"""


@pytest.fixture
def fake_systemctl(home, tmp_path, monkeypatch):
    program = Path(os.environ["PATH"]) / "systemctl"
    program.write_text(FAKE_SYSTEMCTL)
    program.chmod(0o755)
    log = tmp_path / "systemctl.log"
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(log))

    def calls():
        lines = log.read_text().splitlines() if log.exists() else []
        log.write_text("")
        return lines

    return calls


def test_install_with_a_user_manager_enables_and_starts_it(home, fake_systemctl, capsys, monkeypatch):
    code, out, _ = cli(capsys, "install", "--sound-server", "pulseaudio")
    assert code == 0
    assert fake_systemctl() == ["--version", "--user show-environment", f"--user is-active --quiet {UNIT_NAME}",
                                "--user daemon-reload", f"--user enable --now {UNIT_NAME}"]
    assert f"enabled and started {UNIT_NAME}" in out and "journalctl --user -u voice-skill" in out
    assert directives((home / UNIT_NAME).read_text())["RestartSteps"] == "6"  # systemd 256 from the fake

    monkeypatch.setenv("FAKE_ACTIVE", "0")  # running: a changed unit is restarted
    code, out, _ = cli(capsys, "install", "--sound-server", "pulseaudio", "--run-args=--volume 0.5")
    assert code == 0 and f"--user restart {UNIT_NAME}" in fake_systemctl()
    assert "restarted" in out

    code, out, _ = cli(capsys, "uninstall")
    assert code == 0 and not (home / UNIT_NAME).exists()
    assert fake_systemctl() == ["--user show-environment", f"--user disable --now {UNIT_NAME}",
                                "--user daemon-reload", f"--user reset-failed {UNIT_NAME}"]


def test_a_failing_systemctl_is_one_line_and_exit_1(home, fake_systemctl, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_ENABLE", "1")
    code, _, err = cli(capsys, "install")
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"voice-skill service: systemctl --user enable --now {UNIT_NAME} "
                                            "failed: Failed to enable unit: boom")


def test_the_command_runs_as_a_program(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "voice_skill", "service", "install", "--sound-server", "none"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "systemd/user" / UNIT_NAME).is_file()
    assert "Traceback" not in result.stderr
    assert f"systemctl --user enable --now {UNIT_NAME}" in result.stdout
