"""Cramp coach: an offline voice skill that talks a person through a calf cramp, hands-free."""

__version__ = "0.1.0"

NOTICE = (
    "Cramp coach gives general information, not medical advice; "
    "if something feels wrong, see a doctor."
)
