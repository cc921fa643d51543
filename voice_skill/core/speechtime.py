"""How long speech takes: the one default speaking rate and a deterministic estimate of
espeak-ng's duration for a sentence.

Core knowledge with no device behind it: the coach's rehearsal, settings and the text
speaker time lines with it, and nothing here imports an engine.
"""

from __future__ import annotations

import re

DEFAULT_RATE_WPM = 165  # the one default speaking rate: settings, options and engine
MIN_RATE_WPM = 80
MAX_RATE_WPM = 400
# What an unset ``voice`` setting means (``tts.choice.plan_voice``): the natural voice where it
# is installed and fast enough, else espeak-ng. (espeak-ng was the default until stop 23: over
# the natural voice the live self-hearing and barge-in tests used to fail more often on a busy
# machine; with the echo check of stop 22 they no longer do: docs/faults.md.)
DEFAULT_VOICE_SETTING = "auto"

_NUMBER_WORDS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
    "7": "seven", "8": "eight", "9": "nine", "10": "ten", "11": "eleven", "12": "twelve",
    "13": "thirteen", "14": "fourteen", "15": "fifteen", "16": "sixteen", "17": "seventeen",
    "18": "eighteen", "19": "nineteen", "20": "twenty", "30": "thirty", "40": "forty",
    "45": "forty five", "60": "sixty", "90": "ninety",
}
# Fitted by least squares against espeak-ng (through the pyttsx3 synthesis path in speaker.py) on 27 coaching
# sentences at 100, 130, 160, 175, 200 and 230 wpm (162 syntheses):
# mean absolute error 0.086 s, worst 0.36 s; mean relative error 4.7 %, worst 19 %.
_EST_CONST_S = -0.288
_EST_PER_RATE = (127.61, 7.0786, -2.1961, 9.1615, 41.985, 53.889)  # 1, syllables, words, letters, commas, inner stops


def _syllables(word: str) -> int:
    w = word.lower()
    n = len(re.findall(r"[aeiouy]+", w))
    if w.endswith("e") and not w.endswith(("le", "ee")) and n > 1:
        n -= 1
    return max(1, n)


def estimate_seconds(text: str, rate_wpm: float = DEFAULT_RATE_WPM) -> float:
    """A deterministic estimate of how long espeak-ng takes to say ``text`` at ``rate_wpm``.

    Includes espeak-ng's end-of-utterance pause. Calibrated on 100 to 230 wpm (see the
    constants above). Less reliable far outside that range.
    """
    if rate_wpm <= 0:
        raise ValueError("rate_wpm must be positive")
    tokens = re.findall(r"[A-Za-z']+|\d+", text)
    if not tokens:
        return 0.0
    words: list[str] = []
    for tok in tokens:
        words.extend(_NUMBER_WORDS.get(tok, " ".join(_NUMBER_WORDS.get(c, c) for c in tok) if tok.isdigit() else tok).split())
    syl = sum(_syllables(w) for w in words)
    letters = sum(len(w) for w in words)
    commas = len(re.findall(r"[,;:]", text))
    stops = len(re.findall(r"[.!?]+(?=\s)", text))
    k0, k_syl, k_word, k_let, k_comma, k_stop = _EST_PER_RATE
    per_rate = k0 + k_syl * syl + k_word * len(words) + k_let * letters + k_comma * commas + k_stop * stops
    return max(0.15, _EST_CONST_S + per_rate / rate_wpm)
