"""Speech recognizers: engines that turn audio chunks into hypotheses, free of device I/O."""

from voice_skill.asr.base import Hypothesis, Recognizer

__all__ = ["Hypothesis", "Recognizer"]
