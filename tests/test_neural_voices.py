"""The neural voices (Piper, Kokoro) and the built-in set's neural-voice clips."""

import csv
import hashlib
import sys

import numpy as np
import pytest

from lib.data.synth import neural_voices
from lib.data.synth.builtin import BuiltinSpec, builtin_folder, generate_builtin


def _duration_and_peak(waveform: np.ndarray, sample_rate: int) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(waveform) > 0.05 * np.abs(waveform).max())
    return (loud[-1] - loud[0]) / sample_rate, float(np.abs(waveform).max())


@pytest.mark.parametrize("word, accent, expected", [("go", "en-us", "ɡˈO"), ("no", "en-gb-x-rp", "nˈQ"),
                                                    ("right", "en-us", "ɹˈIt"), ("down", "en-us", "dˈWn")])
def test_kokoro_phonemes_use_kokoro_diphthong_letters(word, accent, expected):
    assert neural_voices.kokoro_phonemes(word, accent) == expected


def test_piper_says_a_word_of_speech_length():
    waveform, sample_rate = neural_voices.piper_speak("yes", noise_scale=0.0, noise_w_scale=0.0)
    assert sample_rate == 22050 and waveform.dtype == np.float32 and waveform.ndim == 1
    duration, peak = _duration_and_peak(waveform, sample_rate)
    assert 0.15 < duration < 1.0 and peak > 0.05
    slow, _ = neural_voices.piper_speak("yes", length_scale=1.6, noise_scale=0.0, noise_w_scale=0.0)
    assert _duration_and_peak(slow, sample_rate)[0] > 1.3 * duration  # length_scale stretches the word


def test_kokoro_says_phonemes_in_a_mix_of_voices():
    one_voice = np.eye(len(neural_voices.KOKORO_VOICES))[0]
    waveform, sample_rate = neural_voices.kokoro_speak("jˈɛs.", one_voice)
    assert sample_rate == 24000 and waveform.dtype == np.float32
    duration, peak = _duration_and_peak(waveform, sample_rate)
    assert 0.15 < duration < 1.2 and peak > 0.05
    fast, _ = neural_voices.kokoro_speak("jˈɛs.", one_voice, speed=1.8)
    assert len(fast) < 0.7 * len(waveform)  # speed shortens the utterance (its pauses included)
    with pytest.raises(ValueError, match="style_weights"):
        neural_voices.kokoro_speak("jˈɛs", [1.0, 0.0])


def test_a_missing_wheel_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)  # makes `import piper` fail
    with pytest.raises(neural_voices.NeuralVoiceError, match="pip install piper-tts"):
        neural_voices.check_available(["piper"])


def _rows(manifest):
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def _digest(folder, paths):
    return {p: hashlib.sha1((folder / p).read_bytes()).hexdigest() for p in paths}


def test_builtin_set_with_neural_voices(tmp_path):
    plain = BuiltinSpec(words=("yes", "go"), clips_per_word=3, n_speakers=4, include_unknown=True,
                        include_silence=True)
    spec = BuiltinSpec(**{**plain.__dict__, "piper_clips_per_word": 2, "kokoro_clips_per_word": 2})
    assert plain.key() == BuiltinSpec(words=("yes", "go"), clips_per_word=3, n_speakers=4, include_unknown=True,
                                      include_silence=True, piper_clips_per_word=0).key()
    assert spec.key() != plain.key() and spec.n_clips == 3 * (3 + 4) + 3
    rows = _rows(generate_builtin(spec, tmp_path / "a"))
    assert len(rows) == spec.n_clips
    by_group = {engine: [r for r in rows if r["group"].startswith(engine + "-")] for engine in ("piper", "kokoro")}
    assert all(len(by_group[engine]) == 3 * 2 for engine in by_group)  # yes, go and _unknown_, not _silence_
    assert {r["label"] for r in by_group["kokoro"]} == {"yes", "go", "_unknown_"}
    folder = builtin_folder(spec, tmp_path / "a")
    import soundfile as sf
    for row in by_group["piper"] + by_group["kokoro"]:
        waveform, sample_rate = sf.read(folder / row["path"])
        assert sample_rate == 16000 and waveform.shape == (16000,) and np.abs(waveform).max() > 0.1
    # Adding neural clips leaves the eSpeak clips as they were, and the whole set is reproducible.
    plain_rows = _rows(generate_builtin(plain, tmp_path / "b"))
    espeak_paths = [r["path"] for r in plain_rows]
    assert _digest(folder, espeak_paths) == _digest(builtin_folder(plain, tmp_path / "b"), espeak_paths)
    again = builtin_folder(spec, tmp_path / "c")
    generate_builtin(spec, tmp_path / "c")
    all_paths = [r["path"] for r in rows]
    assert _digest(folder, all_paths) == _digest(again, all_paths)


def test_negative_neural_counts_are_refused():
    with pytest.raises(ValueError, match="cannot be negative"):
        BuiltinSpec(kokoro_clips_per_word=-1)
