"""lib.serving.detect and the rule Classifier.predict follows: sounds found on synthetic signals, one detection each."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lib.serving.detect import (SILENCE_DBFS, detection_windows, group_detections, main_sound_window, sound_segments,
                        sound_windows)
from lib.dsp.features import FeatureConfig
from lib.serving.infer import Classifier, penultimate

RATE = 16000


def _tone(freq_hz: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _recording(seconds: float, sounds: list[tuple[float, np.ndarray]], noise_db: float = -70.0,
               seed: int = 0) -> np.ndarray:
    """``seconds`` of faint white noise with each ``(start_sec, samples)`` added in."""
    out = np.random.default_rng(seed).normal(0, 10 ** (noise_db / 20), round(seconds * RATE)).astype(np.float32)
    for start, samples in sounds:
        i = round(start * RATE)
        out[i:i + len(samples)] += samples
    return out


def test_silence_has_no_sounds():
    assert sound_segments(np.zeros(3 * RATE), RATE) == []
    assert sound_segments(_recording(3, [], noise_db=SILENCE_DBFS - 10), RATE) == []


def test_two_words_apart_are_two_segments_at_their_times():
    recording = _recording(4, [(0.5, _tone(300, 0.4)), (2.5, _tone(300, 0.3))])
    segments = sound_segments(recording, RATE)
    assert len(segments) == 2
    (s1, e1, _), (s2, e2, _) = segments
    assert s1 == pytest.approx(0.5, abs=0.03) and e1 == pytest.approx(0.9, abs=0.03)
    assert s2 == pytest.approx(2.5, abs=0.03) and e2 == pytest.approx(2.8, abs=0.03)


def test_a_short_pause_inside_a_word_does_not_split_it():
    # "st-op": a 100 ms closure between two bursts stays one sound
    recording = _recording(2, [(0.5, _tone(3000, 0.1)), (0.7, _tone(300, 0.3))])
    assert len(sound_segments(recording, RATE)) == 1


def test_a_steady_sound_is_one_segment_from_start_to_end():
    rain = np.random.default_rng(1).normal(0, 0.1, 5 * RATE).astype(np.float32)
    assert sound_segments(rain, RATE) == [(0.0, 5.0, pytest.approx(-20, abs=1))]


def test_windows_are_centred_on_short_sounds_and_cover_long_ones_inside_the_recording():
    windows = detection_windows([(0.1, 0.3, -10.0), (2.0, 4.2, -10.0)], duration_sec=5.0, window_sec=1.0)
    assert windows[0] == (0, 0.0)  # centred at 0.2 s would start before 0: kept inside the recording
    long = [start for index, start in windows if index == 1]
    assert long[0] == pytest.approx(2.0) and long[-1] == pytest.approx(3.2)
    assert all(b - a <= 0.5 + 1e-9 for a, b in zip(long, long[1:]))


def test_windows_of_one_sound_that_disagree_become_two_detections():
    segments = [(0.0, 2.0, -10.0)]
    windows = [(0, 0.0), (0, 0.5), (0, 1.0)]
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    detections = group_detections(segments, windows, probabilities, ["yes", "stop"], window_sec=1.0)
    assert [d.label for d in detections] == ["yes", "stop"]
    assert detections[0].start_sec == 0.0 and detections[1].end_sec == 2.0
    np.testing.assert_allclose(detections[0].probabilities, [0.85, 0.15])


class _PitchModel(nn.Module):
    """Class 0 ("low") when the energy is in the lower half of the mel bins, else class 1 ("high")."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[20.0, -20.0], [-20.0, 20.0]]))

    def forward(self, x):  # (B, 1, bins, frames)
        half = x.shape[2] // 2
        bands = torch.stack([x[:, 0, :half].mean(dim=(1, 2)), x[:, 0, half:].mean(dim=(1, 2))], dim=1)
        return self.head(bands)  # (B, 2)


@pytest.fixture(scope="module")
def pitch_classifier():
    return Classifier(_PitchModel(), FeatureConfig(normalization="none"), ["low", "high"])


def test_two_words_in_one_file_are_two_detections_with_times(pitch_classifier):
    recording = _recording(4, [(0.5, _tone(200, 0.4)), (2.6, _tone(4000, 0.4))], noise_db=-50)
    prediction = pitch_classifier.predict(recording, RATE)
    assert [d.label for d in prediction.detections] == ["low", "high"]
    assert prediction.detections[0].start_sec == pytest.approx(0.5, abs=0.05)
    assert prediction.detections[1].start_sec == pytest.approx(2.6, abs=0.05)
    assert all(d.probability > 0.9 for d in prediction.detections)


def test_silence_around_a_word_does_not_dilute_the_answer(pitch_classifier):
    word = _tone(4000, 0.4)
    alone = pitch_classifier.predict(_recording(1, [(0.3, word)], noise_db=-50), RATE)
    padded = pitch_classifier.predict(_recording(4, [(2.0, word)], noise_db=-50), RATE)
    assert padded.top_class == alone.top_class == "high"
    assert padded.top_probability == pytest.approx(alone.top_probability, abs=0.02)


def test_the_answer_is_the_loudest_sound(pitch_classifier):
    recording = _recording(4, [(0.5, _tone(200, 0.4, amplitude=0.05)), (2.5, _tone(4000, 0.4, amplitude=0.8))],
                           noise_db=-50)
    assert pitch_classifier.predict(recording, RATE).top_class == "high"


def test_a_silent_recording_has_no_detection_but_still_an_answer(pitch_classifier):
    prediction = pitch_classifier.predict(np.zeros(3 * RATE, dtype=np.float32), RATE)
    assert prediction.detections == [] and prediction.probabilities.shape == (2,)


def test_penultimate_is_what_the_output_layer_reads(pitch_classifier):
    features = pitch_classifier.extractor(torch.from_numpy(_recording(1, [(0.2, _tone(300, 0.3))]))[None, None])
    embedding = penultimate(pitch_classifier.model, features)
    assert embedding.shape == (1, 2)
    with torch.no_grad():
        torch.testing.assert_close(pitch_classifier.model.head(embedding), pitch_classifier.model(features))


def test_is_silent_needs_both_a_peak_and_a_level():
    from lib.serving.detect import is_silent

    t = np.arange(16000) / 16000
    assert is_silent(np.zeros((1, 16000))) and is_silent(np.zeros(0))
    assert is_silent(5e-4 * np.sin(2 * np.pi * 440 * t))          # peak below 1e-3
    click = np.zeros(16000)
    click[100] = 0.05
    assert is_silent(click)                                        # a click above the peak, but -68 dBFS RMS
    assert not is_silent(0.1 * np.sin(2 * np.pi * 440 * t)[None])  # a tone at -23 dBFS


def test_main_sound_window_is_one_clip_centred_on_the_loudest_sound():
    """A long take is cut to the clip the live answer reads: centred on its loudest sound, inside the take."""
    take = _recording(3.0, [(0.4, _tone(440, 0.3, 0.1)), (2.0, _tone(880, 0.4, 0.6))])
    start, end = main_sound_window(take, RATE, 1.0)
    assert end - start == RATE and abs((start + end) / 2 / RATE - 2.2) < 0.05
    start, end = main_sound_window(_recording(3.0, [(2.85, _tone(440, 0.15))]), RATE, 1.0)
    assert (start, end) == (2 * RATE, 3 * RATE)                            # kept inside the take
    assert main_sound_window(take[:RATE // 2], RATE, 1.0) == (0, RATE // 2)  # no longer than a clip: whole
    assert main_sound_window(np.zeros(3 * RATE, np.float32), RATE, 1.0) == (0, 3 * RATE)  # no sound: whole


def test_sound_windows_are_one_clip_centred_on_each_sound_in_order():
    take = _recording(6.0, [(1.0, _tone(440, 0.3)), (3.0, _tone(660, 0.2)), (5.7, _tone(550, 0.25))])
    windows = sound_windows(take, RATE, 1.0)
    assert [(start, end) for start, end, _ in windows] == [
        (round(0.65 * RATE), round(1.65 * RATE)), (round(2.6 * RATE), round(3.6 * RATE)), (5 * RATE, 6 * RATE)]
    assert main_sound_window(take, RATE, 1.0) == max(windows, key=lambda w: w[2])[:2]
    assert sound_windows(take[:RATE // 2], RATE, 1.0) == [(0, RATE // 2, 0.0)]  # no longer than a clip: whole
