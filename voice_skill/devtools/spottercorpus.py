"""What the phrase spotter is trained, tuned and measured on: voices, texts and rooms.

Three splits that share no voice: ``train`` (the head learns from it), ``dev`` (thresholds
are chosen on it) and ``test`` (the figures in docs/measurements.md come from it, and nothing is
tuned on it). Texts are split too: the everyday sentences come from different fortune
files (Debian's ``fortunes`` package) and the near misses are different lists. Every
random choice takes an explicit seed.

Clips carry their labels as times: ``trigger_end_s`` is where a trigger phrase ends in the
clip (None for a clip with no trigger), so a frame's label follows from the time it ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from voice_skill.audio.pcm import SAMPLE_RATE
from voice_skill.devtools import speechgen
from voice_skill.core.intents import IntentParser, PhraseTable

# ---------------------------------------------------------------- voices

_ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-gbcwmd", "en-gb-x-gbclan",
                   "en-us-nyc", "en-gb-x-rp"]
_TRAIN_VARIANTS = ["m1", "m2", "m3", "m4", "f1", "f2", "f3", "Adam", "Alex", "Andy", "Annie", "Benjamin",
                   "Caleb", "David", "Ed", "Edward", "Gene", "John", "Linda", "Max", "Michael", "Mike", "Paul",
                   "Quincy", "Rob", "Robert", "Steph", "Zac", "klatt", "klatt2", "Andrea", "Antonio"]
_DEV_VARIANTS = ["m5", "f4", "Boris", "Denis", "Iven", "Lee", "Marco", "Hugo"]
_TEST_VARIANTS = ["m6", "m7", "f5", "Alicia", "Belinda", "grandpa", "Jacky", "Mario", "Pablo", "Diogo",
                  "Henrique", "Michel"]

#: Voice families by split. No speaker is in two splits; espeak-ng variants are distinct
#: formant settings, flite, festival and Piper voices are recorded speakers.
SPLIT_NEURAL = {"train": ["piper:joe", "hibari:heart", "hibari:heart_gb"], "dev": [], "test": []}
SPLIT_RECORDED = {
    "train": ["flite:kal16", "flite:awb", "flite:rms"],
    "dev": ["festival:kal"],
    "test": ["flite:slt", "festival:ked", "festival:slt_hts"],
}
SPLIT_VARIANTS = {"train": _TRAIN_VARIANTS, "dev": _DEV_VARIANTS, "test": _TEST_VARIANTS}


def voices(split: str, rng: np.random.Generator, n_espeak: int = 24) -> list[str]:
    """The voices of a split: its recorded and neural voices at a few speeds, and
    ``n_espeak`` espeak-ng accent/variant/speed combinations drawn from its variants."""
    out: list[str] = []
    for v in SPLIT_NEURAL[split]:
        out += [f"{v}@{s}" for s in (0.85, 1.0, 1.2)]
    for v in SPLIT_RECORDED[split]:
        out += [v, f"{v}@{rng.choice([0.85, 1.15, 1.3])}"]
    variants = SPLIT_VARIANTS[split]
    for i in range(n_espeak):
        accent = _ESPEAK_ACCENTS[int(rng.integers(len(_ESPEAK_ACCENTS)))]
        variant = variants[i % len(variants)]
        out.append(f"espeak:{accent}+{variant}@{int(rng.integers(125, 200))}")
    return out


SPLIT_SEEDS = {"train": 11, "dev": 12, "test": 13}


def split_voices(split: str, n_espeak: int = 24) -> list[str]:
    """The fixed voice list of a split (``n_espeak`` espeak-ng combinations)."""
    return voices(split, np.random.default_rng(SPLIT_SEEDS[split]), n_espeak=n_espeak)


def change_speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """Played ``factor`` times faster (pitch and formants move with it, as between speakers)."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 2:
        return np.asarray(samples, dtype=np.int16).copy()
    n = max(1, int(round(len(x) / factor)))
    return np.round(np.interp(np.arange(n) * factor, np.arange(len(x)), x)).astype(np.int16)


#: Engines whose voices are neural (each one speaker, whatever its settings).
NEURAL_ENGINES = ("piper", "hibari")


def noise_voices(voices: Sequence[str], n: int = 6) -> list[str]:
    """The first ``n`` voices that are not neural: babble and TV-like noise are made of these
    (neural voices render slowly and would make every room sound like one speaker)."""
    return [v for v in voices if v.partition(":")[0] not in NEURAL_ENGINES][:n]


def voice_family(voice: str) -> str:
    engine, _, rest = voice.partition(":")
    return engine if engine == "espeak" or engine in NEURAL_ENGINES else f"{engine}:{rest.partition('@')[0]}"


def speaker(voice: str) -> str:
    """Who speaks in a voice, whatever its engine and speed: flite's slt and festival's HTS slt
    are one speaker (CMU ARCTIC's slt), flite's kal16 and festival's kal another, hibari's
    heart and heart_gb one; an espeak-ng voice is its variant (its formant settings), whatever
    the accent."""
    engine, _, rest = voice.partition(":")
    name = rest.partition("@")[0]
    return name.partition("+")[2] if engine == "espeak" else re.sub(r"(_hts|_gb|16)$", "", name)


# ---------------------------------------------------------------- texts

#: Trigger phrases the spotter answers at once (the bare word "cramp" is left to the grammar
#: recognizer, which hears the whole sentence: "the cramp is gone" must never start anything).
SPOTTED = [
    "calf cramp", "leg cramp", "charley horse", "my calf is cramping", "my leg is cramping",
    "cramp in my calf", "cramp in my leg", "left calf cramp", "right calf cramp", "left leg cramp",
    "right leg cramp", "cramp in my left calf", "cramp in my right calf", "cramp in my left leg",
    "cramp in my right leg", "my left calf is cramping", "my right calf is cramping",
    "cramp during my run", "cramp during my workout",
]
_NOUN_TRIGGERS = [t for t in SPOTTED if not t.startswith(("my ", "cramp "))]
_PREFIX = {
    "train": ["", "", "", "ouch", "ow", "oh no", "help", "I have a", "I've got a", "I've got a really bad",
              "there's a", "I think I have a", "ugh another", "quick I have a", "oh god", "argh",
              "it's a", "I'm getting a", "hey I have a bad"],
    "dev": ["", "", "ouch", "oh no", "I have a", "I've got a nasty", "help me I have a", "ow ow"],
    "test": ["", "", "", "ow", "oh no", "I have a", "I've got a terrible", "help", "ouch ouch",
             "I think it's a", "not again a", "oh man I have a"],
}
_SENTENCE_PREFIX = {  # for the phrases that are sentences of their own ("my calf is cramping")
    "train": ["", "", "ouch", "ow", "oh no", "help", "I've got a", "ugh", "argh", "I think", "oh god"],
    "dev": ["", "ouch", "oh no", "I've got a"],
    "test": ["", "", "ow", "oh no", "help", "I have a", "ouch ouch", "I think"],
}
_SUFFIX = {  # said after the trigger (it ends mid-sentence)
    "train": ["help me", "it really hurts", "again", "what do I do", "please", "right now", "ouch"],
    "dev": ["help", "it hurts so much"],
    "test": ["it hurts", "what should I do", "please help", "ow"],
}

#: Sentences with trigger-like sounds that must not start anything, per split.
NEAR_MISSES = {
    "train": [
        "the calf was born last night", "we camped by the river", "he cleaned the crab pots",
        "she tramped through the snow", "the cramped cabin smelled of smoke", "charlie rode his horse home",
        "the calves are grazing in the field", "my leg room on the plane was tiny", "a champ never quits",
        "half a cup of cream please", "the car ramp is steep", "my cat is crying again",
        "the left lane is closed", "his calf muscles are huge", "the clamp is too tight",
        "we need more cram time", "the damp cellar needs a fan", "she ordered clam chowder",
        "that was a close call", "my leg is fine thanks", "the horse kicked the fence",
        "the cramp is gone", "my cramp is gone now", "the cramp is better", "the cramp has passed",
        "that cramp is over", "no more cramp", "the cramp stopped", "my leg feels better",
        "is your calf sore", "stretch your leg before the run", "my calf feels tight after running",
        "the lamp is in the corner", "a grand piano", "crab cakes for lunch", "I have a cold",
        "I have a question", "I've got a really bad headache", "oh no I forgot my keys",
        "help me carry this box", "I think I have a flat tyre", "my leg is asleep",
        "call me after the game", "the camp leader blew a whistle", "she has a charming horse",
        "it's a calm night", "a cramped little room", "the champion horse", "calf leather boots",
    ],
    "dev": [
        "the cramps were mild this time", "we took the tram", "the scamp ran away", "a camp bed",
        "the clams are fresh", "cramped quarters", "the calf is with its mother", "leg day at the gym",
        "charlie has a horse", "my leg hurts a little", "the cramp is gone", "cramp is gone",
    ],
    "test": list(),  # filled from benchdata.NEAR_MISSES plus these in ``test_near_misses``
}
_TEST_NEAR_MISSES_EXTRA = [
    "the cramp is gone", "my cramp has gone away", "the cramp went away", "that cramp is finished",
    "the calf stood up", "a leg of lamb", "the crampons are in the car", "a cramped flat in town",
    "my calf is fine", "my leg is okay now", "the horse is called charley", "camp fires are banned",
    "I have a cold drink", "I've got a terrible cough", "ouch that is hot", "help me find my glasses",
]

#: Filler words people put around commands.
_FILLERS = ["", "", "", "okay", "um", "please", "uh", "hey", "now", "okay please"]


#: The commands the command head spots: the intents with short phrases said during a routine
#: (red flags, "it's getting worse" and the other sentences about the person stay with the
#: grammar recognizer, which hears the whole sentence).
COMMAND_CLASSES = ("stop", "pause", "resume", "next", "back", "repeat", "slower", "faster", "done", "help")
_CMD_BEFORE = {
    "train": ["", "", "", "", "okay", "um", "please", "uh", "hey", "now", "oh", "okay please", "ah", "erm",
              "right", "can you"],
    "dev": ["", "", "", "okay", "um", "please", "uh"],
    "test": ["", "", "", "okay", "um", "hey", "please", "uh", "alright", "so"],
}
_CMD_AFTER = {
    "train": ["", "", "", "", "", "please", "now", "thanks", "thank you", "okay"],
    "dev": ["", "", "", "please"],
    "test": ["", "", "", "", "please", "now"],
}
#: Sentences near a command that are not one: negations and the cramp's news.
COMMAND_NEAR_MISSES = {
    "train": ["don't stop", "please don't stop", "never stop", "I'm not fine", "I'm not okay", "it's not better yet",
              "it is not done yet", "it hasn't let go", "not yet", "no not yet", "it still hurts", "it's bad",
              "ouch ouch", "oh that's tight", "mm hmm", "yes", "no", "okay", "thank you", "that's good"],
    "dev": ["don't stop now", "I'm not fine at all", "not quite", "yes please", "hmm"],
    "test": [],
}


#: The safety intents the safety head spots: red flags and the emergency, said the way a
#: person in trouble says them.
SAFETY_CLASSES = ("red_flag", "emergency")
SAFETY_BEFORE = {
    "train": ["", "", "", "oh", "ow", "ouch", "ah", "um", "uh", "help", "oh god", "okay", "er", "i think",
              "honestly", "look"],
    "dev": ["", "", "oh no", "wait", "um", "hey"],  # also scripts/eval_commands.py --safety's
    "test": ["", "", "", "oh", "ouch", "uh oh", "listen", "hang on"],
}
_SAFETY_AFTER = {
    "train": ["", "", "", "", "now", "please", "help", "really", "i think", "again"],
    "dev": ["", "", "", "please"],
    "test": ["", "", "", "", "please", "now"],
}
#: Said during a routine, near a safety phrase and not one (none of them parses as one).
SAFETY_NEAR_MISSES = {
    "train": ["i'm fine", "i can breathe", "my foot looks normal", "nothing hurts", "my chest is fine",
              "i'm not dizzy", "i feel okay", "it feels better", "that's warmer", "the colour is back",
              "it's a bit tender", "i can stand now", "i can move it", "nothing popped", "it's just tight",
              "the weather is cold", "a hot drink", "help me count", "i need a rest", "call me later"],
    "dev": ["i'm okay now", "my foot looks fine", "i can walk", "the room is cold"],
    "test": [],
}


#: The bare-word head's one class: a trigger whose last word is "cramp" or "cramping" has just
#: ended the utterance, and a moment of quiet followed. At the moment "cramp" ends, "the cramp is
#: gone" sounds the same; a moment later it does not.
BARE_CLASSES = ("cramp",)
BARE_TRIGGERS = {
    "train": ["cramp", "cramping", "cramp", "I have a cramp", "I've got a cramp", "I'm cramping", "it's cramping",
              "ow cramp", "ouch cramp", "oh no cramp", "another cramp", "cramp again", "a cramp", "got a cramp",
              "bad cramp", "cramp cramp", "ugh cramp", "I'm getting a cramp", "I have cramp", "it's a cramp",
              "oh cramp", "argh cramping", "I've got cramp", "ow ow cramp", "it's cramping up", "cramping up",
              "I've got a bad cramp", "oh god cramp"],
    "dev": ["cramp", "I have a cramp", "ow cramp", "cramping", "ouch, cramp", "I've got a cramp"],
    "test": ["cramp", "I have a cramp", "ow cramp", "cramping", "ouch, cramp", "I've got a cramp"],
}
#: Said after a bare-word trigger, still the end of it (a plea, not news).
_BARE_AFTER = {
    "train": ["", "", "", "", "", "please", "help", "help me", "ow"],
    "dev": ["", "", "", "please"],
    "test": ["", "", "", "help"],
}
#: Sentences with "cramp" in them that are no trigger: the cramp's news, talk about cramps, and
#: words that sound like it (for train, also ``_BARE_NEWS`` after each of ``_BARE_WHOSE``).
BARE_NEAR_MISSES = {
    "train": ["the cramp is gone", "my cramp is gone now", "the cramp is better", "the cramp has passed",
              "that cramp is over", "no more cramp", "the cramp stopped", "cramp's gone", "the cramp eased off",
              "the cramp is easing", "I don't have a cramp", "it's not a cramp", "no cramp now",
              "the cramp let go", "the cramp is fading", "I had a cramp last night", "the cramp was awful",
              "cramps run in my family", "the cramp is finally gone", "the cramp went away",
              "cramping is common at night", "a cramped little room", "cramp is better now", "that cramp was bad",
              "cramps are the worst", "the camp is full", "the clamp broke", "we cram for exams", "the crab is fresh",
              "a steep ramp", "the tramp walked on", "a champ", "camp", "clamp", "lamp", "champ", "ramp", "damp",
              "stamp", "cram", "crab", "tramp", "cramped", "crank", "grand", "camping", "cramming", "stamping",
              "clamping", "we went camping", "it's damp", "turn on the lamp", "what a champ", "buy a stamp",
              "the car is cramped", "a grand", "crank it", "I love camping", "it's so cramped", "a crab"],
    "dev": ["cramp is gone", "the cramp is gone", "the cramps were mild this time", "my cramp went away",
            "not a cramp", "the scamp ran away", "a camp bed", "we took the tram", "the clams are fresh"],
    "test": ["the cramp is gone", "my cramp has gone away", "that cramp is finished", "cramped"],
}
_BARE_WHOSE = ["the cramp", "my cramp", "that cramp", "this cramp", "the calf cramp", "my leg cramp", "cramp"]
_BARE_NEWS = ["is gone", "went away", "is easing off", "was awful", "lasted ages", "kept me up", "hurt so much",
              "feels better now", "is finally over", "is not so bad", "woke me up", "has eased", "is nearly gone",
              "was short", "is fading now", "let go", "is better thanks", "stopped at last", "was last week",
              "is almost gone", "is done", "has passed", "really hurt", "went quickly", "is gone I think"]
_BARE_END = ("cramp", "cramping")
#: Said alone with quiet after, as a bare-word trigger is, and no trigger: "cramp" with the
#: words that undo it ("no more cramp", "cramp gone"). In the negatives above they are one phrase
#: in hundreds, run on into the next sentence; said this way they started a routine for 15 of 30
#: test voices ("no more cramp") at stop 36. Each split has its own phrasings.
BARE_FOOLS = {
    "train": ["no more cramp", "no cramp", "not a cramp", "no cramp now", "cramp gone", "cramp's gone",
              "cramp is gone", "cramp over", "cramp's over", "cramp done", "cramp stopped", "cramp went away",
              "cramp eased", "cramp's better", "no more cramps", "no calf cramp", "no leg cramp",
              "no more calf cramp", "never a cramp", "wasn't a cramp", "it isn't a cramp", "no cramp at all",
              "not cramping", "not cramping now", "stopped cramping", "done cramping", "no longer cramping",
              "cramp free", "cramp gone now", "the cramp's gone", "finally no cramp", "phew no more cramp",
              "no more cramp thanks", "cramp let go", "cramp is over", "no cramp anymore", "the cramp went"],
    "dev": ["no cramps now", "cramp's finished", "not a cramp at all", "cramp all gone", "no more leg cramp",
            "not cramping anymore"],
    "test": ["the cramp is no more", "cramp has gone", "zero cramp", "no longer a cramp", "cramp finished",
             "no cramp any more"],
}


def ends_with_cramp(text: str) -> bool:
    """Whether ``text``'s last word is "cramp" or "cramping" (a bare-word positive, whatever came before)."""
    words = re.findall(r"[a-z']+", text.lower())
    return bool(words) and words[-1] in _BARE_END


def bare_trigger_texts(split: str, rng: np.random.Generator, n: int) -> list[tuple[str, str, str]]:
    """``n`` (utterance, "", "cramp"): a bare-word trigger of the split with a plea after it at
    times, or a quarter of the time a spotted trigger ending in "cramp" ("calf cramp"), which ends
    an utterance the same way."""
    ending = [t for t in SPOTTED if ends_with_cramp(t)]
    out = []
    for _ in range(n):
        if rng.random() < 0.25:
            said = ending[int(rng.integers(len(ending)))]
        else:
            said = BARE_TRIGGERS[split][int(rng.integers(len(BARE_TRIGGERS[split])))]
        after = _BARE_AFTER[split][int(rng.integers(len(_BARE_AFTER[split])))]
        out.append((f"{said} {after}".strip(), "", "cramp"))
    return out


def bare_fool_texts(split: str, rng: np.random.Generator, n: int) -> list[tuple[str, str, str]]:
    """``n`` (utterance, "", "none"): the split's ``BARE_FOOLS``, to be said as a bare-word
    trigger is, with quiet after."""
    fools = BARE_FOOLS[split]
    return [(fools[int(rng.integers(len(fools)))], "", "none") for _ in range(n)]


def bare_negatives(split: str, table: PhraseTable | None = None) -> tuple[list[str], list[str]]:
    """What is no bare-word trigger, in two pools: every phrase of every intent but ``start`` with
    the split's trigger near misses; and the split's sentences with "cramp" in them ("the cramp is
    gone", "I don't have a cramp") or a word that sounds like it. Phrases of other intents that end
    in "cramping" ("it's still cramping") are left out: they end an utterance as a trigger does,
    and mean a cramp too."""
    near = test_near_misses() if split == "test" else NEAR_MISSES[split]
    news = [f"{whose} {what}" for whose in _BARE_WHOSE for what in _BARE_NEWS] if split == "train" else []
    return ([t for t in command_texts(table) + near if not ends_with_cramp(t)],
            BARE_NEAR_MISSES[split] + news)


def command_phrases(table: PhraseTable | None = None, classes: Sequence[str] = COMMAND_CLASSES) -> dict[str, list[str]]:
    """The phrases of each spotted class (the commands, or ``classes``), from the phrase table."""
    table = table or PhraseTable.load()
    return {name: [" ".join(p) for p in phrases] for name, phrases in table.intents if name in classes}


def spoken_command_texts(split: str, rng: np.random.Generator, n: int,
                         table: PhraseTable | None = None, safety: bool = False) -> list[tuple[str, str, str]]:
    """``n`` (words up to and including the command, words after it, intent), classes in turn;
    red flags and emergencies instead of commands with ``safety``."""
    classes, before_words, after_words = ((SAFETY_CLASSES, SAFETY_BEFORE, _SAFETY_AFTER) if safety
                                          else (COMMAND_CLASSES, _CMD_BEFORE, _CMD_AFTER))
    phrases = command_phrases(table, classes)
    out = []
    for i in range(n):
        intent = classes[i % len(classes)]
        phrase = phrases[intent][int(rng.integers(len(phrases[intent])))]
        before = before_words[split][int(rng.integers(len(before_words[split])))]
        after = after_words[split][int(rng.integers(len(after_words[split])))]
        out.append((f"{before} {phrase}".strip(), after, intent))
    return out


def command_negatives(split: str, table: PhraseTable | None = None, safety: bool = False) -> list[str]:
    """What the person says during a routine that is no spotted command: the other intents'
    phrases (triggers, red flags, "it won't stop") and the split's near misses; with ``safety``,
    what is no red flag or emergency (every command among them)."""
    table = table or PhraseTable.load()
    classes, near = (SAFETY_CLASSES, SAFETY_NEAR_MISSES) if safety else (COMMAND_CLASSES, COMMAND_NEAR_MISSES)
    other = [" ".join(p) for name, phrases in table.intents if name not in classes for p in phrases]
    return other + near[split]


#: The skill's own voice (pyttsx3's default espeak-ng voice), heard back through the room.
OWN_VOICE = "espeak:en-us"
#: The skill's speaking rates in words a minute: quick, day, night.
OWN_RATES = (175, 160, 130)


def own_voices() -> list[str]:
    """The skill's own voices at its three rates: espeak-ng and the natural voice (Piper joe,
    the default), whose length scale follows the rate as the skill's own ``tts.piper`` sets it."""
    from voice_skill.tts.piper import length_scale  # noqa: PLC0415

    return [f"{OWN_VOICE}@{rate}" for rate in OWN_RATES] + [f"piper:joe@{length_scale('joe', rate):.2f}"
                                                           for rate in OWN_RATES]


def test_near_misses() -> list[str]:
    from voice_skill.devtools.benchdata import NEAR_MISSES as BENCH  # noqa: PLC0415 (heavy import)

    return list(BENCH) + _TEST_NEAR_MISSES_EXTRA


def trigger_texts(split: str, rng: np.random.Generator, n: int, bare_share: float = 0.0,
                  tail_share: float = 0.25) -> list[tuple[str, str]]:
    """``n`` (said-before-and-including-the-trigger, said-after) pairs; the second is empty but
    for ``tail_share`` of them. ``bare_share`` of them are a trigger phrase alone, nothing before
    or after it (the way a person in pain says it, and a case the mixed texts give only about
    one pair in 150)."""
    out = []
    for _ in range(n):
        trig = SPOTTED[int(rng.integers(len(SPOTTED)))]
        if bare_share and rng.random() < bare_share:
            out.append((trig, ""))
            continue
        prefixes = _PREFIX[split] if trig in _NOUN_TRIGGERS else _SENTENCE_PREFIX[split]
        pre = prefixes[int(rng.integers(len(prefixes)))]
        if trig not in _NOUN_TRIGGERS and pre in ("I have a", "I've got a"):
            trig = trig.replace("my calf is cramping", "calf cramp").replace("my leg is cramping", "leg cramp")
        head = f"{pre} {trig}".strip()
        tail = _SUFFIX[split][int(rng.integers(len(_SUFFIX[split])))] if rng.random() < tail_share else ""
        out.append((head, tail))
    return out


#: Words said before a spotted trigger that deny it ("I don't have a calf cramp"), for the denial
#: head (``train_spotter.py denial``). Only denials said *before* the trigger: when the trigger
#: head fires, the spotter's two seconds hold them, while one said after it ("the calf cramp is
#: gone") is not said yet and is left to the grammar's take-back. Each split has its own words;
#: the test split's are ``eval_said_alone.py``'s own (``TAKEN_BACK``), not repeated here.
DENIALS = {
    "train": ["I don't have any", "I didn't have a", "I did not get a", "it isn't a", "that isn't a",
              "this is not a", "there's no", "there is no", "I've never had a", "it wasn't a", "not a",
              "no sign of a", "I'm not having a", "it's not really a", "I don't think I have a", "I don't get",
              "never had a", "I don't feel a", "without a", "thankfully no", "it is not a", "no more of that",
              "I have never had a", "luckily I don't have a", "it's definitely not a", "there isn't a",
              "it's not like a", "not really a", "I'm not getting a", "I wouldn't call it a",
              "this isn't really a", "I don't need a", "that was not a", "I don't ever get a",
              "don't worry it's not a", "I didn't get a", "you don't have a", "he doesn't have a", "she hasn't got any",
              "we don't have a", "there wasn't a", "it's not even a", "no it isn't a",
              "I'm free of the", "I'm over the", "I got rid of the", "not one single"],
    "dev": ["I don't have a", "no more", "it's not a", "I never have a", "there's not a"],
}
DENIED_SENTENCES = {  # the sentence triggers ("my calf is cramping") denied in their own words
    "train": ["my calf isn't cramping", "my leg isn't cramping", "my calf is not cramping", "my leg is not cramping",
              "my calf stopped cramping", "my leg has stopped cramping", "my calf is no longer cramping",
              "my calf's not cramping", "my leg's not cramping anymore", "my calf isn't cramping at all"],
    "dev": ["my calf is not cramping now", "my leg isn't cramping"],
}
#: Affirmed triggers whose words before them sound like a denial ("oh no not another calf cramp"):
#: the denial head must hear a denial, not the word "no".
AFFIRMED_WITH_NO = {
    "train": ["oh no not another", "no no no", "nope it's a", "don't laugh but I have a", "never mind I have a",
              "I can't believe it another", "no way another", "don't panic it's a", "I can't move I have a",
              "it's no joke a", "not now a", "I don't know why but I have a"],
    "dev": ["no not again a", "I don't want this another", "oh no a"],
}


#: The train denials' words without their denial ("it isn't a" -> "it is a"): triggers, so the
#: head learns the denying word and not the words around it ("I don't feel a" against "I feel a").
AFFIRMED_PAIRS = {
    "train": ["I have a", "I had a", "I got a", "it is a", "that is a", "this is a", "there's a", "there is a",
              "I've just had a", "it was a", "a", "signs of a", "I'm having a", "it's really a", "I think I have a",
              "I get", "I just had a", "I feel a", "with a", "thankfully only a", "it is a", "more of that",
              "I have had a", "luckily it's only a", "it's definitely a", "there's a", "it's like a", "really a",
              "I'm getting a", "I would call it a", "this is really a", "I need help with a", "that was a",
              "I always get a", "don't worry it's just a", "I got a", "you have a", "he has a", "she has got a",
              "we have a", "there was a", "it's even a", "yes it is a", "I'm stuck with the", "I'm in the middle of the",
              "I've got the", "one single"],
    "dev": [],
}


#: Words that describe the cramp between the lead-in and the trigger ("I've got a horrible calf
#: cramp"): in the denial head's triggers, so that an unfamiliar word there is not a denial.
_ADJECTIVES = {
    "train": ["really bad", "horrible", "awful", "painful", "sudden", "massive", "huge", "bad", "severe",
              "dreadful", "killer", "sharp", "vicious", "big", "brutal", "little", "strong", "crazy", "major",
              "proper", "serious", "fierce"],
    "dev": [],
}
_ADJECTIVE_FRAMES = ["I've got a", "I have a", "there's a", "ouch a", "I'm having a", "it's a", "help a", "ow"]


def denied_trigger_texts(split: str, rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """``n`` (said-up-to-the-trigger, said-after) pairs that deny a spotted trigger."""
    out = []
    for _ in range(n):
        if rng.random() < 0.15:
            sentences = DENIED_SENTENCES[split]
            out.append((sentences[int(rng.integers(len(sentences)))], ""))
            continue
        trig = _NOUN_TRIGGERS[int(rng.integers(len(_NOUN_TRIGGERS)))]
        denial = DENIALS[split][int(rng.integers(len(DENIALS[split])))]
        tail = ["", "", "", "anymore", "thank goodness", "it's fine now", "today"][int(rng.integers(7))]
        out.append((f"{denial} {trig}", tail))
    return out


def affirmed_trigger_texts(split: str, rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """``n`` trigger texts as ``trigger_texts`` makes them, a quarter of them after words with
    "no" or "not" in them that do not deny it, and (where the split has them) a quarter after
    the words of a denial without the denying word (``AFFIRMED_PAIRS``) and a fifth with a word
    describing the cramp before it ("I've got a horrible calf cramp")."""
    out = trigger_texts(split, rng, n)
    for i in range(n):
        r = rng.random()
        pool = AFFIRMED_WITH_NO[split] if r < 0.25 else AFFIRMED_PAIRS[split] if r < 0.5 else []
        if r >= 0.5 and r < 0.7 and _ADJECTIVES[split]:
            frame = _ADJECTIVE_FRAMES[int(rng.integers(len(_ADJECTIVE_FRAMES)))]
            pool = [f"{frame} {_ADJECTIVES[split][int(rng.integers(len(_ADJECTIVES[split])))]}"]
        if pool:
            trig = _NOUN_TRIGGERS[int(rng.integers(len(_NOUN_TRIGGERS)))]
            out[i] = (f"{pool[int(rng.integers(len(pool)))]} {trig}", out[i][1])
    return out


def command_texts(table: PhraseTable | None = None) -> list[str]:
    """Every phrase of every intent but ``start``: commands, answers, red flags."""
    table = table or PhraseTable.load()
    return [" ".join(p) for name, phrases in table.intents if name != "start" for p in phrases]


def own_sentences() -> list[str]:
    """Everything the skill itself says (routines for both legs, and its messages)."""
    from voice_skill.core.rehearsal import fixed_sentences  # noqa: PLC0415

    return fixed_sentences()


FORTUNE_DIR = Path("/usr/share/games/fortunes")
FORTUNE_FILES = {
    "train": ["fortunes", "literature", "people", "wisdom", "science", "work", "education", "food", "pets",
              "sports", "love", "men-women", "humorists", "kids", "news", "politics", "platitudes", "startrek"],
    "dev": ["art", "ethnic", "cookie"],
    "test": ["miscellaneous", "songs-poems", "law", "magic", "riddles", "pratchett", "tao", "zippy",
             "computers", "paradoxum", "linux", "definitions"],
}
_FALLBACK_EVERYDAY = [
    "I need to pick up the children at four", "the soup needs more salt", "turn left at the next corner",
    "the weather will be warm and dry all week", "have you seen my reading glasses",
    "the bus was late again this morning", "we should plant tomatoes in the spring",
]
_WORDISH = re.compile(r"^[A-Za-z][A-Za-z ,.'?!;:-]*$")


def everyday_sentences(split: str, parser: IntentParser | None = None, limit: int | None = None) -> list[str]:
    """Ordinary sentences for a split, from Debian's fortune files (a short built-in list when
    they are not installed); any that would be a command or trigger are left out."""
    parser = parser or IntentParser()
    out: list[str] = []
    for name in FORTUNE_FILES[split]:
        path = FORTUNE_DIR / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in text.split("\n%\n"):
            for sent in re.split(r"(?<=[.!?])\s+", " ".join(entry.split())):
                sent = sent.strip(" \"'-")
                words = sent.split()
                if 3 <= len(words) <= 30 and _WORDISH.match(sent) and parser.parse(sent) is None:
                    out.append(sent)
    if not out:
        out = list(_FALLBACK_EVERYDAY)
    return out[:limit] if limit else out


# ---------------------------------------------------------------- rooms


def room_response(rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """A synthetic room impulse response: the direct sound, then decaying diffuse noise."""
    n = int(rt60_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s) * 0.25
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0
    tail[0] = 1.0
    return (tail / np.sqrt((tail ** 2).sum())).astype(np.float32)


def reverberate(samples: np.ndarray, rir: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    size = 1 << int(np.ceil(np.log2(len(x) + len(rir))))
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(rir, size), size)[: len(x)]
    peak = np.abs(x).max() + 1e-9
    return y * (peak / (np.abs(y).max() + 1e-9))


NOISE_KINDS = ("fan", "pink", "babble", "tv")


def noise(kind: str, seconds: float, seed: int, voices: Sequence[str]) -> np.ndarray:
    """Background of a kind, int16 at -20 dBFS: a fan (brown noise with a hum), pink noise,
    a crowd of talkers, or a television (speech, music-like tones and hiss)."""
    if kind == "fan":
        x = speechgen.brown_noise(seconds, seed).astype(np.float32)
        t = np.arange(len(x)) / SAMPLE_RATE
        hum = np.sin(2 * np.pi * (95 + seed % 40) * t) * 0.3 * np.sqrt((x ** 2).mean())
        return np.clip(x + hum, -32768, 32767).astype(np.int16)
    if kind == "pink":
        return speechgen.pink_noise(seconds, seed)
    if kind == "babble":
        return speechgen.babble_noise(seconds, seed, voices=voices)
    if kind == "tv":
        return speechgen.tv_noise(seconds, seed, voices=voices)
    raise ValueError(f"unknown noise {kind!r}")


@dataclass(frozen=True)
class Clip:
    samples: np.ndarray  # int16
    trigger_end_s: float | None  # where a spotted trigger ends, None for a clip without one
    voice: str
    text: str
    condition: str  # "clean", or "<noise> <snr> dB"


def place(speech: np.ndarray, rng: np.random.Generator, lead_s: tuple[float, float] = (0.3, 1.2),
          trail_s: tuple[float, float] = (0.6, 1.2)) -> tuple[np.ndarray, int]:
    """Speech with silence before and after; returns the samples and where the speech ends."""
    lead = np.zeros(int(rng.uniform(*lead_s) * SAMPLE_RATE), dtype=np.int16)
    trail = np.zeros(int(rng.uniform(*trail_s) * SAMPLE_RATE), dtype=np.int16)
    return np.concatenate([lead, speech, trail]), len(lead) + len(speech)


def trigger_clip(head: str, tail: str, voice: str, rng: np.random.Generator, *, speed_share: float = 0.0,
                 gap_s: tuple[float, float] = (0.03, 0.25), lead_s: tuple[float, float] = (0.3, 1.2),
                 trail_s: tuple[float, float] = (0.6, 1.2), breath_share: float = 0.0) -> tuple[np.ndarray, float]:
    """``head`` (ending with the trigger) and ``tail`` (words after it, or "") said by ``voice``
    with silence around; ``speed_share`` of the time played 0.87-1.15 times as fast. A tail is
    synthesized apart and joined after 0.03-0.25 s of silence, or ``breath_share`` of the time
    said in one breath with the head, the head's end found by aligning it said alone against
    the sentence (``phrase_end``). Returns the samples and where the trigger ends (seconds).
    Raises SpeechGenError when the voice fails."""
    said = speechgen.synthesize(head, voice)
    one_breath = bool(tail) and bool(breath_share) and rng.random() < breath_share
    if one_breath:
        whole = speechgen.synthesize(f"{head} {tail}", voice)
    else:
        after = speechgen.synthesize(tail, voice) if tail else np.zeros(0, np.int16)
    if speed_share and rng.random() < speed_share:
        factor = float(rng.uniform(0.87, 1.15))
        said = change_speed(said, factor)
        if one_breath:
            whole = change_speed(whole, factor)
        else:
            after = change_speed(after, factor)
    if one_breath:
        clip, speech_end = place(whole, rng, lead_s, trail_s)
        return clip, (speech_end - len(whole)) / SAMPLE_RATE + phrase_end(said, whole)
    said_all = join([said, after], rng, gap_s) if tail else said
    clip, speech_end = place(said_all, rng, lead_s, trail_s)
    return clip, (speech_end - len(said_all) + len(said)) / SAMPLE_RATE


_HOP = SAMPLE_RATE // 100  # alignment frames: 25 ms windows every 10 ms
_WIN = SAMPLE_RATE * 25 // 1000


def log_mel(samples: np.ndarray, bands: int = 40) -> np.ndarray:
    """Log mel energies, one row per 10 ms: what ``phrase_end`` aligns."""
    x = np.asarray(samples, np.float64)
    x = np.concatenate([x, np.zeros(max(0, _WIN - len(x)))])
    n = 1 + (len(x) - _WIN) // _HOP
    frames = x[np.arange(n)[:, None] * _HOP + np.arange(_WIN)[None, :]] * np.hanning(_WIN)
    power = np.abs(np.fft.rfft(frames, 512)) ** 2
    mel = 2595 * np.log10(1 + np.fft.rfftfreq(512, 1 / SAMPLE_RATE) / 700)
    edges = np.linspace(mel[0], mel[-1], bands + 2)
    fbank = np.maximum(0, np.minimum((mel[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None]),
                                     (edges[2:, None] - mel[None]) / (edges[2:, None] - edges[1:-1, None])))
    return np.log(power @ fbank.T + 1.0)


def phrase_end(phrase: np.ndarray, sentence: np.ndarray) -> float:
    """Where ``phrase``, said alone, ends in ``sentence`` that begins with it (seconds): dynamic
    time warping of their log mel energies, anchored at both starts and open at the phrase's
    end, with slopes between 1/2 and 2 (each step advances one of them one frame and the other
    one or two). Both said by one voice, trimmed of silence, so the frames are alike where the
    words are. Used to label a trigger said in one breath with the words after it."""
    q, t = log_mel(phrase), log_mel(sentence)
    cost = np.sqrt(((q[:, None, :] - t[None, :, :]) ** 2).sum(axis=2))
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    acc[0, 0] = cost[0, 0]
    for i in range(1, n):
        best = np.full(m, np.inf)
        best[1:] = acc[i - 1, :-1]  # one frame each
        best[2:] = np.minimum(best[2:], acc[i - 1, :-2] + cost[i, 1:-1])  # the sentence two
        if i >= 2:
            best[1:] = np.minimum(best[1:], acc[i - 2, :-1] + cost[i - 1, 1:])  # the phrase two
        acc[i] = cost[i] + best
    j = np.arange(m)
    score = acc[n - 1] / (n + j + 1)
    end = int(np.argmin(score))
    return min(len(sentence), end * _HOP + _WIN) / SAMPLE_RATE


def in_room(samples: np.ndarray, rng: np.random.Generator, snr_db: float | None, noise_kind: str | None,
            seed: int, noise_voices: Sequence[str], reverb: float = 0.0, gain_db: float = 0.0,
            floor_db: float = -70.0) -> np.ndarray:
    """Speech as a microphone hears it: a room's reverberation (with probability ``reverb``),
    a level, background noise at ``snr_db`` (None: a quiet room) and a faint noise floor."""
    x = np.asarray(samples, dtype=np.float64)
    if reverb and rng.random() < reverb:
        x = reverberate(x, room_response(rng, float(rng.uniform(0.15, 0.6))))
    x = x * 10 ** (gain_db / 20)
    speech = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    if snr_db is not None and noise_kind is not None:
        bg = noise(noise_kind, len(x) / SAMPLE_RATE + 0.1, seed, noise_voices)
        speech = speechgen.mix_at_snr(speech, bg, snr_db)
    floor = rng.standard_normal(len(speech)) * 32768 * 10 ** (floor_db / 20)
    return np.clip(np.round(speech + floor), -32768, 32767).astype(np.int16)


def join(parts: Sequence[np.ndarray], rng: np.random.Generator, gap_s: tuple[float, float]) -> np.ndarray:
    out: list[np.ndarray] = []
    for p in parts:
        out += [p, np.zeros(int(rng.uniform(*gap_s) * SAMPLE_RATE), dtype=np.int16)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


def stream_texts(texts: Sequence[str], voices_: Sequence[str], rng: np.random.Generator,
                 seconds: float) -> Iterator[tuple[np.ndarray, str, str]]:
    """Utterances of random texts in random voices, until ``seconds`` of speech were given."""
    total = 0.0
    while total < seconds:
        text = texts[int(rng.integers(len(texts)))]
        voice = voices_[int(rng.integers(len(voices_)))]
        try:
            audio = speechgen.synthesize(text, voice)
        except speechgen.SpeechGenError:
            continue
        total += len(audio) / SAMPLE_RATE
        yield audio, text, voice
