"""The trigger spotter in front of a grammar recognizer, behind the one ``Recognizer`` protocol.

Both hear every chunk. The spotter (``asr.spotter``) decides a trigger phrase the moment it
ends and is reported at once, as the text of the first spotted phrase; the grammar
recognizer (PocketSphinx or Vosk) goes on hearing everything else: commands, answers, red
flags, and the triggers the spotter leaves to it (the bare word "cramp", which only the
whole sentence tells apart from "the cramp is gone").

A trigger from the grammar recognizer is a second chance, not a veto-free path: it counts
only if the spotter scored the same stretch of audio at least ``confirm_threshold`` (lower
than the firing threshold) or already fired there; otherwise the hypothesis is dropped. That second opinion is what keeps the
grammar recognizer's own false starts (it turns "the crab for dinner" into "cramp") out.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable

from voice_skill.asr.base import Hypothesis, Recognizer
from voice_skill.asr.spotter import TriggerSpotter
from voice_skill.audio import AudioChunk

log = logging.getLogger(__name__)

SPAN_MARGIN_S = 0.3  # the grammar recognizer's word times are approximate by this much


class SpottingRecognizer:
    """``spotter`` + ``grammar``: see the module docstring."""

    def __init__(self, spotter: TriggerSpotter, grammar: Recognizer, is_trigger: Callable[[str], bool],
                 trigger_text: str, confirm_threshold: float | None = None) -> None:
        self.spotter = spotter
        self.grammar = grammar
        self.is_trigger = is_trigger
        self.trigger_text = trigger_text
        self.confirm_threshold = (spotter.head.confirm_threshold if confirm_threshold is None
                                  else confirm_threshold)
        self.name = f"spotter+{getattr(grammar, 'name', 'recognizer')}"
        self._fired: list[float] = []  # end times of the spotter's recent detections

    @property
    def missing_words(self):
        return getattr(self.grammar, "missing_words", ())

    def accept(self, chunk: AudioChunk) -> list[Hypothesis]:
        out = [Hypothesis(self.trigger_text, d.score, d.start_s, d.end_s) for d in self.spotter.accept(chunk)]
        for hyp in out:
            self._fired = [t for t in self._fired if t > hyp.end_s - 60.0] + [hyp.end_s]
        return out + self._second_opinion(self.grammar.accept(chunk))

    def flush(self) -> list[Hypothesis]:
        return self._second_opinion(self.grammar.flush())

    def reset(self) -> None:
        self.spotter.reset()
        self.grammar.reset()

    def close(self) -> None:
        close = getattr(self.grammar, "close", None)
        if close is not None:
            close()

    def _second_opinion(self, hyps: list[Hypothesis]) -> list[Hypothesis]:
        kept = []
        for hyp in hyps:
            if not hyp.final or not self.is_trigger(hyp.text):
                kept.append(hyp)
                continue
            lo, hi = hyp.start_s - SPAN_MARGIN_S, hyp.end_s + SPAN_MARGIN_S
            if any(lo <= t <= hi for t in self._fired):
                kept.append(hyp)  # the spotter already started it; the text may carry a leg or a routine hint
                continue
            score = self.spotter.max_score(lo, hi)
            if score >= self.confirm_threshold:
                kept.append(replace(hyp, confidence=min(hyp.confidence, score) if hyp.confidence else score))
            else:
                log.debug("trigger %r at %.2f-%.2f s not confirmed by the spotter (%.2f < %.2f): dropped",
                          hyp.text, hyp.start_s, hyp.end_s, score, self.confirm_threshold)
        return kept
