"""The built-in PocketSphinx recognizer, on real speech generated at test time (espeak-ng, flite)."""

from __future__ import annotations

import functools
import shutil

import numpy as np
import pytest

pytest.importorskip("pocketsphinx")

from voice_skill.asr.base import Recognizer  # noqa: E402
from voice_skill.asr.pocketsphinx_backend import PocketSphinxRecognizer  # noqa: E402
from voice_skill.asr.select import grammar_recognizer  # noqa: E402
from voice_skill.audio.pcm import SAMPLE_RATE  # noqa: E402
from voice_skill.devtools import benchdata, speechgen  # noqa: E402
from voice_skill.errors import ModelError, RecognizerError  # noqa: E402
from voice_skill.core.echoguard import SAFETY_INTENTS  # noqa: E402
from voice_skill.core.intents import IntentParser, PhraseTable  # noqa: E402

needs_tts = pytest.mark.skipif(not shutil.which("flite") or not shutil.which("espeak-ng"),
                               reason="needs the flite and espeak-ng programs")

TRIGGER_VOICES = ["flite:slt", "flite:awb", "flite:kal16", "espeak:en-us+f2@150"]
COMMAND_VOICES = ["flite:slt", "flite:awb"]

# What the built-in model does with the intent phrases said one after another by a command
# voice (each phrase by one of them, in turn: both voices saying all 256 cost three CPU-minutes
# of the suite; the four confusions and five misses that had were spread over both), measured with the grammar the skill builds (courtesy words among its fillers, as
# asr/select.py makes it). A confusion (a phrase heard as another intent) is the worst kind:
# "slow down" taken as "done" skips the massage. Every phrase must come back as its own intent,
# except:
# - KNOWN_MISSES: heard as nothing at all. The test fails if one is now heard as its intent
#   (take it off) or as another intent (a confusion: never allowed as a miss).
# - KNOWN_CONFUSIONS: heard as another intent today. Each is a strict xfail of its own
#   (test_known_confusion): when it stops being a confusion the xfail passes and fails the
#   run, so the entry must go (or move to KNOWN_MISSES if it is now heard as nothing).
# Neither list may grow past its size today (test_the_known_lists_only_shrink).
KNOWN_MISSES: dict[tuple[str, str], str] = {
    ("flite:slt", "help"): "heard 'yellow um' since the courtesy words became fillers",
    ("flite:slt", "hot to touch"): "heard 'can today lunch' since each phrase is said by one voice (stop 20)",
    ("flite:slt", "cramp"): "heard nothing since each phrase is said by one voice (stop 20)",
}
KNOWN_CONFUSIONS: dict[tuple[str, str], str] = {
    ("flite:slt", "quit"): "heard 'who wait' -> pause",
}
MAX_KNOWN_MISSES, MAX_KNOWN_CONFUSIONS = 3, 1


def command_phrases(voice: str) -> list[tuple[str, str]]:
    """The (intent, phrase) pairs ``voice`` says: the phrases of the built-in table dealt out
    to the command voices in turn, so every phrase is said once, by one of them."""
    items = [(intent, " ".join(p)) for intent, phrases in PhraseTable.load().intents for p in phrases]
    return items[COMMAND_VOICES.index(voice)::len(COMMAND_VOICES)]


@functools.cache
def command_phrases_heard(voice: str) -> list[tuple[str, str, frozenset[str], list[str]]]:
    """(intent, phrase, intents heard, texts heard) for ``voice``'s share of the intent phrases
    (``command_phrases``), said with 1.2 s between phrases. Synthesised and recognised once per
    process: both command-phrase tests read it."""
    table = PhraseTable.load()
    parser = IntentParser(table)
    rec, _ = grammar_recognizer("pocketsphinx", None, table.phrases(), fillers=sorted(table.courtesy))
    items = command_phrases(voice)
    comp = speechgen.compose([s for _, text in items for s in (speechgen.Say(text, voice), 1.2)], default_voice=voice)
    hyps, _ = benchdata.run_recognizer(rec, np.concatenate([np.zeros(SAMPLE_RATE // 2, np.int16), comp.samples]))
    out = []
    for (intent, text), p in zip(items, comp.phrases):
        heard = [h for h in hyps if h.end_s > p.start_s + 0.5 + 0.05 and h.start_s < p.end_s + 0.5 - 0.05]
        out.append((intent, text, frozenset(i.name for h in heard if (i := parser.parse(h.text))),
                    [h.text for h in heard]))
    return out


@pytest.fixture(scope="module")
def table() -> PhraseTable:
    return PhraseTable.load()


@pytest.fixture(scope="module")
def parser(table: PhraseTable) -> IntentParser:
    return IntentParser(table)


@pytest.fixture(scope="module")
def rec(table: PhraseTable) -> PocketSphinxRecognizer:
    return PocketSphinxRecognizer(table.phrases())


def run(rec: PocketSphinxRecognizer, samples: np.ndarray, chunk_s: float = 0.1):
    rec.reset()
    hyps, _ = benchdata.run_recognizer(rec, samples, chunk_s)
    return hyps


def test_implements_protocol(rec: PocketSphinxRecognizer) -> None:
    assert isinstance(rec, Recognizer)
    assert rec.name == "pocketsphinx"


def test_silence_gives_nothing(rec: PocketSphinxRecognizer) -> None:
    assert run(rec, np.zeros(5 * SAMPLE_RATE, dtype=np.int16)) == []
    assert run(rec, speechgen.pink_noise(3.0, seed=3) // 20) == []


@needs_tts
@pytest.mark.slow(seconds=12)
def test_trigger_family_in_several_voices(rec, parser) -> None:
    texts = benchdata.TRIGGERS
    hits: dict[str, int] = {t: 0 for t in texts}
    misses = []
    for voice in TRIGGER_VOICES:
        comp = speechgen.compose([s for t in texts for s in (speechgen.Say(t, voice), 1.0)] , default_voice=voice)
        hyps = run(rec, np.concatenate([np.zeros(SAMPLE_RATE // 2, np.int16), comp.samples]))
        for p in comp.phrases:
            p_start, p_end = p.start_s + 0.5, p.end_s + 0.5
            ok = any(h.end_s > p_start and h.start_s < p_end and (i := parser.parse(h.text)) and i.name == "start"
                     for h in hyps)
            hits[p.text] += ok
            if not ok:
                misses.append((p.text, voice))
    total = len(texts) * len(TRIGGER_VOICES)
    assert sum(hits.values()) >= 0.85 * total, f"missed {misses}"
    assert all(hits.values()), f"some trigger phrase never recognised: {misses}"


def _voice_group(voice: str):
    """Both command-phrase tests of one voice on one xdist worker: its recording is made once."""
    return pytest.param(voice, marks=pytest.mark.xdist_group(f"command-phrases-{voice}"))


@needs_tts
@pytest.mark.parametrize("voice", [_voice_group(v) for v in COMMAND_VOICES])
def test_every_command_phrase(voice) -> None:
    """Every intent phrase, said in a clear voice, comes back as its own intent and as no other."""
    confused, missed, stale = [], [], []
    for intent, text, got, heard in command_phrases_heard(voice):
        key = (voice, text)
        if key in KNOWN_CONFUSIONS:
            continue  # test_known_confusion
        if got - {intent}:
            confused.append((text, intent, sorted(got), heard))
        elif intent not in got:
            if key not in KNOWN_MISSES:
                missed.append((text, heard))
        elif key in KNOWN_MISSES:
            stale.append(text)
    assert not confused, f"{voice}: phrases heard as another intent: {confused}"
    assert not missed, f"{voice}: phrases not recognised: {missed}"
    assert not stale, f"{voice}: now recognised, take them off KNOWN_MISSES: {stale}"


@needs_tts
@pytest.mark.parametrize("voice,text", [
    pytest.param(voice, text, marks=[pytest.mark.xfail(strict=True, reason=why),
                                     pytest.mark.xdist_group(f"command-phrases-{voice}")])
    for (voice, text), why in KNOWN_CONFUSIONS.items()])
def test_known_confusion(voice, text) -> None:
    """Passes once the phrase is no longer heard as another intent, which (strict xfail) fails
    the run until the entry leaves KNOWN_CONFUSIONS."""
    [(intent, got, heard)] = [(i, g, h) for i, t, g, h in command_phrases_heard(voice) if t == text]
    assert not got - {intent}, f"{text!r} ({intent}) heard as {sorted(got)}: {heard}"


def test_the_known_lists_only_shrink() -> None:
    assert len(KNOWN_MISSES) <= MAX_KNOWN_MISSES and len(KNOWN_CONFUSIONS) <= MAX_KNOWN_CONFUSIONS
    assert not set(KNOWN_MISSES) & set(KNOWN_CONFUSIONS)
    for voice, text in [*KNOWN_MISSES, *KNOWN_CONFUSIONS]:
        assert voice in COMMAND_VOICES and text in [t for _, t in command_phrases(voice)], (voice, text)


@needs_tts
@pytest.mark.slow(seconds=75)
def test_ordinary_speech_does_not_start(rec, parser) -> None:
    voices = ["flite:slt", "flite:rms", "espeak:en-us", "espeak:en-gb-x-rp+m3@145"]
    sentences = benchdata.EVERYDAY[:11] + benchdata.NEAR_MISSES[:3] + ["decamp", "camp", "crab", "half", "clamp"]
    bad = []
    for voice in voices:
        comp = speechgen.compose([s for t in sentences for s in (speechgen.Say(t, voice), 0.8)], default_voice=voice)
        for h in run(rec, comp.samples):
            intent = parser.parse(h.text)
            if intent and intent.name == "start":
                bad.append((voice, h.text))
    assert not bad


@needs_tts
def test_chunk_size_invariance(table) -> None:
    comp = speechgen.compose([0.7, ("calf cramp", "flite:slt"), 1.0, ("the weather is nice today", "espeak:en-us"),
                              0.6, ("pause", "flite:awb"), 1.5])
    x = speechgen.mix_at_snr(comp.samples, speechgen.pink_noise(comp.seconds, seed=1), 25)
    # A fresh recognizer per chunking: the decoder's scores carry a little history.
    a = run(PocketSphinxRecognizer(table.phrases()), x, 0.02)
    b = run(PocketSphinxRecognizer(table.phrases()), x, 0.1)
    c = run(PocketSphinxRecognizer(table.phrases()), x, 0.0371)
    assert a and a == b == c


@needs_tts
def test_timing_and_latency(rec, parser) -> None:
    comp = speechgen.compose([1.0, ("calf cramp", "flite:slt"), 3.0, ("my calf is cramping", "flite:awb"), 2.0])
    rec.reset()
    emitted = []
    for chunk in speechgen.iter_array_chunks(comp.samples, 0.02):
        for h in rec.accept(chunk):
            emitted.append((h, chunk.end_s))
    emitted += [(h, comp.seconds) for h in rec.flush()]
    starts = [(h, t) for h, t in emitted if (i := parser.parse(h.text)) and i.name == "start"]
    assert len(starts) == 2, emitted
    for (h, t), phrase in zip(starts, comp.phrases):
        assert abs(h.end_s - phrase.end_s) < 0.15, (h, phrase)
        assert abs(h.start_s - phrase.start_s) < 0.25, (h, phrase)
        assert t - phrase.end_s < 0.5, f"heard {t - phrase.end_s:.2f} s after the phrase ended"
        assert 0.0 <= h.confidence <= 1.0


@needs_tts
def test_flush_finishes_an_utterance_cut_off_by_the_end(rec, parser) -> None:
    comp = speechgen.compose([0.5, ("leg cramp", "flite:slt")])
    rec.reset()
    hyps = []
    for chunk in speechgen.iter_array_chunks(comp.samples, 0.1):
        hyps += rec.accept(chunk)
    assert hyps == []
    hyps = rec.flush()
    assert [parser.parse(h.text).name for h in hyps] == ["start"]


def test_unknown_word_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="zzxqv"):
        PocketSphinxRecognizer(["calf cramp", "zzxqv"])
    with pytest.raises(ModelError):
        PocketSphinxRecognizer([])


def test_wrong_audio_format_is_a_recognizer_error(rec) -> None:
    from voice_skill.audio.pcm import AudioChunk

    with pytest.raises(RecognizerError):
        rec.accept(AudioChunk(b"\0\0" * 800, 0.0, rate=8000))


@needs_tts
def test_trigger_decided_while_babble_goes_on(table, parser) -> None:
    """In babble the VAD never sees silence; the trigger must still come out soon after the
    phrase ends, long before the recording does (it used to wait for the end of the stream)."""
    rec = PocketSphinxRecognizer(table.phrases())
    comp = speechgen.compose([2.0, ("calf cramp", "flite:slt"), 6.0])
    x = speechgen.mix_at_snr(comp.samples, speechgen.babble_noise(comp.seconds + 0.1, seed=0)[: len(comp.samples)], 20)
    phrase = comp.phrases[0]
    rec.reset()
    emitted = []
    for chunk in speechgen.iter_array_chunks(x, 0.02):
        emitted += [(h, chunk.end_s) for h in rec.accept(chunk)]
    starts = [(h, t) for h, t in emitted if (i := parser.parse(h.text)) and i.name == "start"]
    assert starts, f"no trigger before the end of the stream: {[h.text for h, _ in emitted]}"
    h, t = starts[0]
    assert h.end_s > phrase.start_s and h.start_s < phrase.end_s + 0.3, (h, phrase)
    assert t - phrase.end_s < 0.8, f"decided {t - phrase.end_s:.2f} s after the phrase ended"


def test_trigger_phrases_are_found_whole(rec) -> None:
    """Verification is per phrase: two separate "cramp"s are two one-word triggers (held to
    the strict threshold), not one two-word phrase (which the lenient one used to accept)."""
    def path(*names: str) -> list[tuple]:
        return [(w, 10 * i, 10 * i + 9, 0.9, -100) for i, w in enumerate(names)]

    assert rec._trigger_spans(path("my", "cramp", "glass", "an", "cramp")) == [(1, 1), (4, 4)]
    assert rec._trigger_spans(path("ouch", "calf", "cramp")) == [(1, 2)]
    assert rec._trigger_spans(path("my", "calf", "is", "cramping", "now")) == [(0, 3)]
    assert rec._trigger_spans(path("the", "weather", "is", "nice")) == []


@pytest.mark.slow(seconds=35)
def test_a_television_does_not_start_a_routine(table, parser) -> None:
    """Early triggers must be louder than the room was before them. These 34 s of TV-like
    audio (two talkers, music, hiss) hold an early 'calf cramp' without that rule; with it,
    nothing. (A user's trigger over babble: the next test.) The clip moved from the first
    34 s when the grammar grew with the safety phrases and those no longer held one, and from
    136-170 s when it grew with the words that take a trigger back (stop 38). Without the rule
    the clip is heard only up to its first false trigger: that is all the first check asks; with
    the rule, all of it."""
    tv = speechgen.tv_noise(300.0, seed=1)[17 * SAMPLE_RATE:51 * SAMPLE_RATE]

    def starts(first_only: bool = False, **options) -> list[str]:
        rec = PocketSphinxRecognizer(table.phrases(), **options)
        found: list[str] = []
        for chunk in speechgen.iter_array_chunks(tv, 0.1):
            found += [h.text for h in rec.accept(chunk) if (i := parser.parse(h.text)) and i.name == "start"]
            if found and first_only:
                break
        return found

    assert starts(first_only=True, room_contrast_db=-100.0), \
        "the clip no longer holds a false trigger: pick another"
    assert starts() == []


@pytest.mark.slow(seconds=17)
def test_a_trigger_in_a_long_piece_of_television_is_not_taken(table, parser) -> None:
    """The room rule holds for triggers found when a long segment is decoded in pieces too.
    These 21 s of TV (never quiet, so the VAD cuts a 10-s piece) held a 'calf cramp' that the
    phone-loop verification passed, no louder than the TV before it. Since the grammar grew
    with the safety phrases, PocketSphinx finds no trigger there even without the rule, and
    none was found in 90 other 21-s pieces of three TV seeds: the test now only checks that
    this TV starts nothing (it can still fail), and the rule itself waits for a new clip."""
    voices = ["espeak:en-us", "flite:rms", "flite:awb"]
    tv = speechgen.tv_noise(120.0, seed=1, voices=voices)[80 * SAMPLE_RATE:101 * SAMPLE_RATE]

    def starts(**options) -> list[str]:
        rec = PocketSphinxRecognizer(table.phrases(), **options)
        return [h.text for chunk in speechgen.iter_array_chunks(tv, 0.1) for h in rec.accept(chunk)
                if (i := parser.parse(h.text)) and i.name == "start"]

    assert starts() == []


@pytest.mark.slow(seconds=13)
def test_a_user_calling_out_over_babble_is_decided_early(table, parser) -> None:
    """After 10 s of babble, "calf cramp" 10 dB over it is louder than the room was, so the
    early path takes it long before the babble (and the segment) ends."""
    comp = speechgen.compose([10.0, ("calf cramp", "flite:slt"), 8.0])
    x = speechgen.mix_at_snr(comp.samples, speechgen.babble_noise(comp.seconds + 0.1, seed=3)[: len(comp.samples)], 10)
    phrase = comp.phrases[0]
    rec = PocketSphinxRecognizer(table.phrases())
    decided = [chunk.end_s for chunk in speechgen.iter_array_chunks(x, 0.1) for h in rec.accept(chunk)
               if (i := parser.parse(h.text)) and i.name == "start" and h.end_s > phrase.start_s]
    assert decided, "the trigger was not decided before the babble ended"
    assert decided[0] - phrase.end_s < 1.0, f"decided {decided[0] - phrase.end_s:.2f} s after the phrase ended"


@pytest.mark.slow(seconds=12)
def test_a_command_over_babble_is_taken_when_said(table, parser) -> None:
    """In babble the VAD never ends the segment, so a command used to wait for the 10-s piece
    (here it came 5.8 s late, heard as a red flag). A command louder than the room, once the
    path has moved past it, is taken at once, marked routine_only (an idle skill must not
    answer a TV's "done"); the control run without early commands does not have it in time."""
    commands = table.phrases_of({name for name, _ in table.intents} - SAFETY_INTENTS - {"start"})
    comp = speechgen.compose([14.0, ("next please", "flite:rms"), 6.0])
    x = speechgen.mix_at_snr(comp.samples, speechgen.babble_noise(comp.seconds + 0.1, seed=3)[: len(comp.samples)], 15)
    phrase = comp.phrases[0]

    def soon(**options) -> list:
        rec = PocketSphinxRecognizer(table.phrases(), **options)
        return [h for chunk in speechgen.iter_array_chunks(x, 0.1) for h in rec.accept(chunk)
                if h.end_s > phrase.start_s and chunk.end_s < phrase.end_s + 1.5]

    taken = soon(early_phrases=commands)
    assert [(parser.parse(h.text).name, h.routine_only) for h in taken] == [("next", True)], taken
    assert not [h for h in soon() if (i := parser.parse(h.text)) and i.name == "next"]


def test_commands_wait_while_they_may_grow_into_a_longer_phrase(rec) -> None:
    """ "help", then "me": "help me please" (an emergency) may be on its way, so "help" is
    not taken early; after another word, or for a phrase no longer one begins with, it may be."""
    def path(*names: str) -> list[tuple]:
        return [(w, 10 * i, 10 * i + 9, 0.9, -100) for i, w in enumerate(names)]

    assert rec._may_grow(path("help"), 0, 0)
    assert rec._may_grow(path("help", "me"), 0, 0)
    assert not rec._may_grow(path("help", "the"), 0, 0)
    assert not rec._may_grow(path("pause", "me"), 0, 0)
    assert [(i, j) for i, j, _ in rec._phrase_spans(path("uh", "help", "me", "please"))] == [(1, 3)]


def test_long_segment_is_cut(table) -> None:
    """A segment that never ends is decoded in pieces of at most ``max_segment_s``."""
    rec = PocketSphinxRecognizer(table.phrases(), max_segment_s=3.0)
    x = speechgen.babble_noise(9.0, seed=2)
    rec.reset()
    early = []
    for chunk in speechgen.iter_array_chunks(x, 0.1):
        early += [(h, chunk.end_s) for h in rec.accept(chunk)]
    assert early, "nothing decoded before the end of 9 s without a pause"
    assert all(h.end_s - h.start_s <= 3.0 + 0.2 for h, _ in early), early  # checked every 60 ms


class _CountingDecoder:
    """A real decoder that counts the utterances it is asked to decode."""

    def __init__(self, decoder) -> None:
        self._decoder = decoder
        self.utterances = 0

    def start_utt(self) -> None:
        self.utterances += 1
        self._decoder.start_utt()

    def __getattr__(self, name: str):
        return getattr(self._decoder, name)


@pytest.mark.slow(seconds=12)
def test_a_segment_that_never_goes_quiet_is_decoded_once(table, parser) -> None:
    """Under babble the live decoder hears every 10-s piece as it comes; its own path is the
    piece's result, instead of a second decode of the same audio in one batch (stop 26: TV-like
    audio 0.46 -> 0.25 CPU s per audio s). Only the stream's last piece, whose tail the live
    decoder never heard, is decoded in one batch. A quiet room's short utterance still is."""
    x = speechgen.babble_noise(24.0, seed=2)

    def run(samples, **options) -> tuple[list, int]:
        rec = PocketSphinxRecognizer(table.phrases(), **options)
        rec._decoder = counting = _CountingDecoder(rec._decoder)
        hyps = [h for chunk in speechgen.iter_array_chunks(samples, 0.1) for h in rec.accept(chunk)]
        return hyps + rec.flush(), counting.utterances

    once, batch_once = run(x)
    twice, batch_twice = run(x, decode_once=False)
    assert len(once) >= 2 and len(twice) >= 2, (once, twice)  # a piece every 10 s either way
    assert batch_twice >= 2 and batch_once == 1, (batch_once, batch_twice)
    quiet = speechgen.compose([0.5, ("next please", "flite:rms"), 1.0]).samples
    said, batch = run(quiet)
    assert [parser.parse(h.text).name for h in said] == ["next"] and batch == 1, (said, batch)


def test_a_trigger_that_fails_its_check_marks_the_words_left(rec) -> None:
    """flite slt's "I have a cramp": PocketSphinx places "cramp", the phone loop does not bear it
    out, and the words left ("i have a") are marked, so the session takes no command from them;
    a trigger that passes leaves its utterance unmarked."""
    failed = run(rec, speechgen.compose([1.0, ("I have a cramp", "flite:slt"), 1.5]).samples)
    assert [h.text for h in failed] == ["i have a"] and failed[0].unverified_trigger
    passed = run(rec, speechgen.compose([1.0, ("calf cramp", "espeak:en-us"), 1.5]).samples)
    assert [h.text for h in passed] == ["calf cramp"] and not passed[0].unverified_trigger


def test_an_utterance_of_nothing_but_a_failed_trigger_is_reported_without_words_when_asked(table) -> None:
    """flite kal16's "cramping" alone: PocketSphinx places the trigger and its phone loop does not
    bear it out, so no word is left. On its own the recognizer reports nothing; behind the
    spotter (``report_unverified``) it reports the utterance without words, marked, for the
    bare-word head to judge. Both recognizers are new: the module's shared one carries what it
    learned of earlier audio past ``reset`` (after an everyday sentence, its check bore
    this "cramping" out), and the tests run in any order."""
    x = speechgen.compose([1.0, ("cramping", "flite:kal16"), 1.5]).samples
    alone = PocketSphinxRecognizer(table.phrases())
    assert [h for h in run(alone, x) if h.final] == []
    behind = PocketSphinxRecognizer(table.phrases(), report_unverified=True)
    said = [h for h in run(behind, x) if h.final]
    assert [(h.text, h.unverified_trigger) for h in said] == [("", True)]
    assert 0.9 <= said[0].start_s < said[0].end_s <= 2.0
