"""Synthetic speech: the built-in offline keyword set (``builtin``, "Synthetic Speech Commands") and the
voices that say it, eSpeak NG through ctypes (``espeak``) and the neural Piper and Kokoro voices
(``neural_voices``). Every clip here is synthesized on this machine; nothing is a recording.
"""
