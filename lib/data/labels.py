"""The label names every keyword set shares: Speech Commands' ten words and its two extra classes.

Kept in a module of their own, with no import, so that the built-in set's generator workers (:mod:`lib.data.synth.builtin`,
a fresh process per class) start without loading torch.
"""

__all__ = ["SPEECH_COMMANDS_KEYWORDS", "UNKNOWN_LABEL", "SILENCE_LABEL"]

SPEECH_COMMANDS_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_LABEL = "_unknown_"
SILENCE_LABEL = "_silence_"
