"""lib.serving.background: the "nothing heard" answer (background class, confidence threshold) and background takes."""

import numpy as np
import pytest

from lib.serving.background import CONFIDENCE_THRESHOLD, NOTHING_HEARD, background_clips, heard, is_background
from lib.serving.detect import is_silent


def test_a_confident_word_is_heard():
    assert heard([0.1, 0.8, 0.1], ["yes", "stop", "background"]) == "stop"


def test_an_unsure_answer_is_nothing_heard():
    assert 0 < CONFIDENCE_THRESHOLD < 1 and NOTHING_HEARD == "nothing heard"
    assert heard([0.45, 0.35, 0.2], ["yes", "stop", "go"]) is None        # below the default threshold
    assert heard([0.45, 0.35, 0.2], ["yes", "stop", "go"], threshold=0.4) == "yes"
    assert heard([0.45, 0.35, 0.2], ["yes", "stop", "go"], threshold=0.0) == "yes"  # 0: always a class


@pytest.mark.parametrize("name", ["_silence_", "background", "Background", "_background_noise_", "nothing"])
def test_a_background_class_is_nothing_heard(name):
    assert is_background(name)
    assert heard([0.05, 0.05, 0.9], ["yes", "stop", name]) is None
    assert heard([0.05, 0.9, 0.05], ["yes", "stop", name]) == "stop"


def test_words_are_not_background():
    assert not any(is_background(word) for word in ("yes", "_unknown_", "backgrounds", "noisy"))


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_bad_threshold_is_refused(threshold):
    with pytest.raises(ValueError, match="threshold"):
        heard([0.5, 0.5], ["a", "b"], threshold=threshold)


def test_probabilities_and_names_must_match():
    with pytest.raises(ValueError, match="one per class"):
        heard([0.5, 0.5], ["a", "b", "c"])


def test_background_clips_are_quiet_and_reproducible():
    clips = background_clips(6, 16000, 1.0, seed=3)
    assert clips.shape == (6, 16000) and str(clips.dtype) == "torch.float32"
    assert float(clips[0].abs().max()) == 0.0                     # one take of digital silence
    rms_db = 20 * np.log10(clips[1:].pow(2).mean(1).sqrt().numpy())
    assert np.all((rms_db > -61) & (rms_db < -19))                # the others: noise from -60 to -20 dBFS
    assert is_silent(clips[0].numpy())
    assert np.array_equal(clips.numpy(), background_clips(6, 16000, 1.0, seed=3).numpy())
    with pytest.raises(ValueError, match="n_clips"):
        background_clips(0)
