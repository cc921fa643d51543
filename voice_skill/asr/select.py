"""Choose the speech engine: Vosk when a usable model is found, PocketSphinx otherwise;
with the trained trigger spotter in front of either (``asr.spotting``) unless it is off."""

from __future__ import annotations

import logging
from typing import Sequence

from voice_skill.asr.base import Recognizer
from voice_skill.errors import ModelError, UsageError
from voice_skill.core.echoguard import SAFETY_INTENTS
from voice_skill.core.intents import SAFE_EARLY_INTENTS, IntentParser, PhraseTable
from voice_skill.models.catalog import MODEL_ENV, FoundModel, find_model

log = logging.getLogger(__name__)

ENGINES = ("auto", "vosk", "pocketsphinx")
SPOTTER_MODES = ("auto", "on", "off")
INSTALL_HINT = "install one with 'voice-skill models download'"


def _pocketsphinx(phrases: Sequence[str], fillers: Sequence[str] = (), commands: Sequence[str] = (),
                  behind_spotter: bool = False) -> Recognizer:
    from voice_skill.asr import pocketsphinx_backend as ps  # noqa: PLC0415 (lazy on purpose)

    early_after_s = ps.EARLY_AFTER_BEHIND_SPOTTER_S if behind_spotter else ps.EARLY_AFTER_S
    return ps.PocketSphinxRecognizer(phrases, extra_fillers=fillers, early_phrases=commands,
                                     early_after_s=early_after_s, report_unverified=behind_spotter)


def _vosk(phrases: Sequence[str], found: FoundModel, early: Sequence[str] = ()) -> tuple[Recognizer, str]:
    from voice_skill.asr.vosk_backend import VoskRecognizer  # noqa: PLC0415 (loads a native library)

    rec = VoskRecognizer(phrases, found.path, early_phrases=early)
    desc = f"vosk, model {found.path.name} at {found.describe()}"
    if rec.missing_words:
        desc += f"; {len(rec.missing_words)} words missing from the model"
    return rec, desc


def build_recognizer(asr: str | None, model: str | None, phrases: Sequence[str], *, spotter: str = "off",
                     table: PhraseTable | None = None, moonshine: str = "auto") -> tuple[Recognizer, str]:
    """The grammar recognizer (``grammar_recognizer``), with the trigger spotter in front of it
    when ``spotter`` is "on", or "auto" and the phrases are the built-in English ones (the
    spotter was trained on English speech). "on" with feature models that cannot load is an
    error; "auto" then goes on without the spotter and says why in the description. ``moonshine``
    ("auto", "off" or a folder): behind the spotter, Moonshine hears short utterances again
    (``asr.moonshine``; with the built-in English phrases only)."""
    mode = (spotter or "auto").lower()
    if mode not in SPOTTER_MODES:
        raise UsageError(f"unknown spotter mode {spotter!r}; choose one of: {', '.join(SPOTTER_MODES)}")
    builtin = PhraseTable.load()
    words = table or builtin
    spotter_, without = None, ""
    if mode == "auto" and table is not None and table != builtin:
        without = "; no trigger spotter (it knows the built-in English phrases only)"
    elif mode != "off":
        try:
            from voice_skill.asr import spotter as sp  # noqa: PLC0415 (loads onnxruntime)

            spotter_ = sp.TriggerSpotter(commands=sp.command_head(), safety=sp.safety_head(), bare=sp.bare_head(),
                                         denial=sp.denial_head())
        except ModelError as exc:
            if mode == "on":
                raise
            log.warning("not using the trigger spotter: %s", exc)
            without = f"; no trigger spotter ({exc})"
    commands = {name for name, _ in words.intents} - SAFETY_INTENTS - {"start"}
    grammar, description = grammar_recognizer(asr, model, phrases, fillers=sorted(words.courtesy),
                                              early=words.phrases_of(SAFE_EARLY_INTENTS),
                                              commands=words.phrases_of(commands),
                                              behind_spotter=spotter_ is not None)
    if spotter_ is None:
        return grammar, description + without
    from voice_skill.asr.spotting import SpottingRecognizer  # noqa: PLC0415

    phrase = spotter_.head.meta.get("phrases", ["calf cramp"])[0]
    transcriber = None
    if table is None or table == builtin:  # Moonshine writes English words
        from voice_skill.asr import moonshine as ms  # noqa: PLC0415 (loads onnxruntime sessions)

        transcriber = ms.load(moonshine)
    rec = SpottingRecognizer(spotter_, grammar, IntentParser(words), phrase, transcriber=transcriber)
    heard = f", short utterances heard again by Moonshine ({transcriber.folder})" if transcriber is not None else ""
    return rec, f"trigger spotter, then {description}{heard}"


def grammar_recognizer(asr: str | None, model: str | None, phrases: Sequence[str],
                       fillers: Sequence[str] = (), early: Sequence[str] = (),
                       commands: Sequence[str] = (), behind_spotter: bool = False) -> tuple[Recognizer, str]:
    """The recognizer to use and a one-line description of the engine and model chosen.

    ``asr``: "vosk", "pocketsphinx", or None / "auto" (Vosk when a usable model is
    found, else PocketSphinx). ``model``: the ``--model`` value (a folder or a model name).
    A model that was asked for explicitly (``--model``, ``VOICE_SKILL_MODEL`` or
    ``asr="vosk"``) and is broken is an error; one found by searching falls back to
    PocketSphinx with the reason in the description. ``fillers``: words PocketSphinx may
    hear between the phrases (the courtesy words of the phrase table). ``early``: phrases
    Vosk may report before the utterance ends (the phrase table's stop and pause phrases).
    ``commands``: phrases PocketSphinx may take before a segment ends in a room that never goes
    quiet (every phrase but the triggers and the safety phrases). ``behind_spotter``: the trigger
    spotter decides the triggers, so PocketSphinx's live decoder starts later in a segment
    (``pocketsphinx_backend.EARLY_AFTER_BEHIND_SPOTTER_S``).
    """
    engine = (asr or "auto").lower()
    if engine not in ENGINES:
        raise UsageError(f"unknown speech engine {asr!r}; choose one of: {', '.join(ENGINES)}")
    if engine == "pocketsphinx":
        if model:
            log.warning("--model %s is ignored: it is for the vosk engine", model)
        return _pocketsphinx(phrases, fillers, commands, behind_spotter), "pocketsphinx (built-in English model)"
    found = find_model(model)
    if found is None:
        if engine == "vosk":
            raise ModelError(f"no Vosk model found (looked in --model, {MODEL_ENV} and the model folders); "
                             f"{INSTALL_HINT}")
        return _pocketsphinx(phrases, fillers, commands, behind_spotter), "pocketsphinx (built-in English model; no Vosk model installed)"
    explicit = engine == "vosk" or found.source.startswith(("--model", MODEL_ENV))
    try:
        return _vosk(phrases, found, early)
    except ModelError as exc:
        if explicit:
            raise
        log.warning("not using the Vosk model: %s", exc)
        return _pocketsphinx(phrases, fillers, commands, behind_spotter), f"pocketsphinx (built-in English model); the Vosk model was not usable: {exc}"
