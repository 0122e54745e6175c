import subprocess
import sys
from pathlib import Path

import numpy as np

from lib.data.synth import espeak

ROOT = Path(__file__).resolve().parents[1]


def test_synthesize_returns_speech():
    waveform, sample_rate = espeak.synthesize("yes", voice="en-us", variant="m3")
    assert sample_rate == espeak.espeak_sample_rate() == 22050
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert 0.1 * sample_rate < waveform.size < 2 * sample_rate
    assert 0.05 < np.abs(waveform).max() <= 1.0


def _speak_in_fresh_process() -> str:
    code = ("import hashlib; from lib.data.synth import espeak\n"
            "for word in ('stop', 'go'):\n"
            "    w, _ = espeak.synthesize(word, voice='en', variant='f2', rate=150, pitch=40)\n"
            "    print(hashlib.sha1(w.tobytes()).hexdigest())")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_same_sequence_in_a_fresh_process_gives_the_same_samples():
    # eSpeak keeps hidden state between utterances; lib.data.synth.builtin relies on a fresh process being reproducible.
    assert _speak_in_fresh_process() == _speak_in_fresh_process()


def test_parameters_matter():
    fast, _ = espeak.synthesize("stop", voice="en", variant="f2", rate=150, pitch=40)
    slow, _ = espeak.synthesize("stop", voice="en", variant="f2", rate=90, pitch=40)
    assert slow.size > fast.size * 1.2  # slower speech is longer


def test_variants_and_unknown_voice():
    variants = espeak.list_variants()
    assert len(variants) > 50 and "m3" in variants and "klatt" in variants
    try:
        espeak.synthesize("yes", voice="no-such-voice")
    except espeak.EspeakError as error:
        assert "no-such-voice" in str(error)
    else:
        raise AssertionError("an unknown voice must raise EspeakError")
