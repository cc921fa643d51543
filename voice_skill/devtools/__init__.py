"""Developer tools: test speech and benchmark corpora built at run time from real TTS engines.

Nothing here is used by the skill at run time; tests and ``scripts/bench*.py`` import it.
It needs the ``espeak-ng`` and/or ``flite`` command-line programs, and no sound card.
"""
