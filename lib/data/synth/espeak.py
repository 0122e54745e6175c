"""eSpeak NG speech synthesis through ``ctypes``, from the PyPI wheel ``espeakng-loader``.

The wheel ships ``libespeak-ng`` and its ``espeak-ng-data`` folder, so no system package is needed.
eSpeak keeps global state, so calls are serialised with a lock; for parallel synthesis use processes.

Example:
    >>> waveform, sample_rate = synthesize("yes", voice="en-us", variant="m3", rate=160, pitch=50)
    >>> waveform.shape  # (time,) float32 in [-1, 1]
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["EspeakError", "synthesize", "list_variants", "female_variants", "english_voices", "espeak_sample_rate"]

# espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS = 2 (speech is returned to the callback, Synth blocks).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
# espeak_PARAMETER
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_EE_OK = 0

# int (t_espeak_callback)(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# The accents eSpeak speaks English with (voice names in espeak-ng-data/lang/gmw; en-Shaw, the Shavian
# alphabet, is left out).
english_voices: tuple[str, ...] = (
    "en-us", "en-us-nyc", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded or refused a request (unknown voice, bad parameter)."""


class _Engine:
    """The loaded library, initialised once per process; every call goes through ``lock``."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:  # pragma: no cover - the pin installs it
            raise EspeakError("the 'espeakng-loader' package is missing: run `make run` or "
                              "`pip install -r requirements.txt`") from error
        self.data_path = Path(espeakng_loader.get_data_path())
        try:
            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as error:  # pragma: no cover - platform specific
            raise EspeakError(f"could not load libespeak-ng: {error}") from error
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        # espeak_Initialize wants the folder *containing* espeak-ng-data.
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path.parent).encode(), 0)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (data folder {self.data_path})")
        self.libc = ctypes.CDLL(None)  # eSpeak also draws from libc's rand()
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, numsamples, _events) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    def speak(self, text: str, voice_name: str, rate: int, pitch: int, pitch_range: int, word_gap: int,
              seed: int) -> np.ndarray:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice_name.encode()) != _EE_OK:
                raise EspeakError(f"eSpeak has no voice {voice_name!r}; see lib.data.synth.espeak.list_variants()")
            for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range), (_WORDGAP, word_gap),
                                     (_VOLUME, 100)):
                self.lib.espeak_SetParameter(parameter, int(value), 0)
            self._chunks = []
            self.lib.espeak_ng_SetRandSeed(seed)  # eSpeak's flutter/noise RNGs: same call, same samples
            self.libc.srand(ctypes.c_uint(seed))
            data = text.encode("utf-8") + b"\0"
            status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
            if status != _EE_OK:
                raise EspeakError(f"espeak_Synth failed with status {status} for {text!r}")
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return pcm.astype(np.float32) / 32768.0


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


def espeak_sample_rate() -> int:
    """The sample rate eSpeak NG synthesizes at (22050 Hz for the bundled data)."""
    return _engine().sample_rate


def _variants_folder() -> Path:
    return _engine().data_path / "voices" / "!v"


@lru_cache(maxsize=1)
def list_variants() -> tuple[str, ...]:
    """Names of eSpeak's voice variants (``espeak-ng-data/voices/!v``), e.g. ``("Alex", ..., "m3", "klatt2")``."""
    return tuple(sorted(p.name for p in _variants_folder().iterdir() if p.is_file()))


@lru_cache(maxsize=1)
def female_variants() -> frozenset[str]:
    """The variants whose file says ``gender female`` (about a sixth of them: f1..f5, Alicia, steph, ...)."""
    female = set()
    for name in list_variants():
        for line in (_variants_folder() / name).read_text(encoding="utf-8", errors="replace").splitlines():
            words = line.lower().split()
            if len(words) >= 2 and words[0] == "gender" and words[1] == "female":
                female.add(name)
    return frozenset(female)


def synthesize(text: str, voice: str = "en-us", variant: str | None = None, rate: int = 175, pitch: int = 50,
               pitch_range: int = 50, word_gap: int = 0, seed: int = 0) -> tuple[np.ndarray, int]:
    """Speak ``text`` with eSpeak NG.

    Args:
        text: what to say (UTF-8; any language the voice speaks).
        voice: eSpeak language voice, e.g. ``"en-us"``, ``"en-gb-scotland"``, ``"de"``.
        variant: a voice variant from :func:`list_variants` (``"m3"``, ``"f2"``, ``"klatt4"``), or None.
        rate: words per minute (80 to 450).
        pitch: base pitch, 0 to 100.
        pitch_range: pitch range (intonation), 0 (monotone) to 100.
        word_gap: extra pause between words, in units of 10 ms.
        seed: seed of eSpeak's own random generator (voice flutter and noise); the same arguments give the
            same samples whatever was synthesized before.

    Returns:
        ``(waveform, sample_rate)``: float32 array of shape ``(time,)`` in [-1, 1], and eSpeak's rate in Hz.
    """
    name = f"{voice}+{variant}" if variant else voice
    waveform = _engine().speak(text, name, rate, pitch, pitch_range, word_gap, seed)
    return waveform, _engine().sample_rate
