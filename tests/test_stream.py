"""lib.serving.stream: continuous keyword detection with the shipped model on streams of built-in clips at known times."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.engine.runs import run_zip_bytes
from lib.serving.stream import (CONFIDENCE_FLOOR, EventRule, KeywordEvent, StreamingDetector, detect_stream,
                        moving_average, operating_point, save_operating_point)
from tests.keyword_streams import PLACEMENTS, RATE, make_stream, noise

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stream(clear_clips):
    return make_stream(clear_clips, PLACEMENTS, 22.0)


@pytest.fixture(scope="module")
def events(shipped_classifier, stream):
    return detect_stream(shipped_classifier, stream[0], RATE, threshold=0.7)


def test_events_are_the_placed_words_at_their_times(stream, events):
    _, placed = stream
    assert [e.word for e in events] == [word for word, *_ in placed]
    for event, (_, start, end) in zip(events, placed):
        assert start < event.time_sec <= end + 1.0 + 0.3 + 0.1       # within one clip and the smoothing after it
        assert 0.7 <= event.probability <= 1.0


def test_chunks_of_random_sizes_give_the_same_events(shipped_classifier, stream, events):
    waveform = stream[0][:12 * RATE]
    detector, pushed, position = StreamingDetector(shipped_classifier, threshold=0.7), [], 0
    sizes = iter([0, 1, 7, 1599, 1600, 1601, *np.random.default_rng(1).integers(0, 40000, size=len(waveform))])
    while position < len(waveform):
        size = int(next(sizes))
        pushed += detector.push(waveform[position:position + size])
        position += size
    expected = [e for e in events if e.time_sec <= 12]
    assert [(e.word, e.time_sec) for e in pushed] == [(e.word, e.time_sec) for e in expected]
    assert np.allclose([e.probability for e in pushed], [e.probability for e in expected], atol=1e-5)
    assert detector.time_sec == pytest.approx(len(waveform) / RATE)


def test_another_sample_rate_and_stereo_are_resampled_once(shipped_classifier, stream, events):
    import torchaudio.functional as F

    waveform = stream[0][:12 * RATE]
    stereo = F.resample(torch.from_numpy(waveform), RATE, 22050).repeat(2, 1)          # (2, time) at 22.05 kHz
    resampled = detect_stream(shipped_classifier, stereo, 22050, threshold=0.7)
    assert [(e.word, e.time_sec) for e in resampled] == [(e.word, e.time_sec) for e in events if e.time_sec <= 12]


def test_nothing_fires_on_silence_or_noise_alone(shipped_classifier):
    assert detect_stream(shipped_classifier, np.zeros(10 * RATE, dtype=np.float32), RATE) == []
    for rms in (0.0005, 0.01, 0.2):     # below lib.serving.detect's silence level, quiet and loud noise
        assert detect_stream(shipped_classifier, noise(5.0, rms=rms, seed=2), RATE, threshold=CONFIDENCE_FLOOR) == []


def test_refractory_time_holds(shipped_classifier, clear_clips):
    waveform, _ = make_stream(clear_clips, [("yes", 1.0), ("yes", 2.8), ("yes", 4.6)], 7.0, seed=3)
    assert [e.word for e in detect_stream(shipped_classifier, waveform, RATE, threshold=0.6, refractory_sec=0.0)] \
        .count("yes") >= 2
    quiet = detect_stream(shipped_classifier, waveform, RATE, threshold=0.6, refractory_sec=6.0)
    assert [e.word for e in quiet] == ["yes"]


def test_event_rule_crossing_refractory_and_ignored_classes():
    names = ["yes", "_unknown_", "_silence_", "no"]
    times = np.arange(1, 11) * 0.1
    track = np.zeros((10, 4))
    track[[1, 2, 3, 6, 7], 0] = 0.9     # "yes" above at 0.2-0.4 s and 0.7-0.8 s
    track[:, 1] = track[:, 2] = 0.95    # never fire
    rule = EventRule(names, threshold=0.8, refractory_sec=0.2)
    assert rule.step(times, track) == [KeywordEvent("yes", 0.2, 0.9), KeywordEvent("yes", 0.7, 0.9)]
    long = EventRule(names, threshold=0.8, refractory_sec=1.0)
    assert [e.time_sec for e in long.step(times, track)] == [0.2]
    short = EventRule(names, threshold=0.8, refractory_sec=0.05)          # a word must drop below to fire again
    assert [e.time_sec for e in short.step(times, track)] == [0.2, 0.7]
    for cut in range(11):                                                  # the same in pieces
        split = EventRule(names, threshold=0.8, refractory_sec=0.2)
        assert split.step(times[:cut], track[:cut]) + split.step(times[cut:], track[cut:]) == \
            EventRule(names, threshold=0.8, refractory_sec=0.2).step(times, track)
    assert EventRule(names, 0.8, 0.2, ignore=["yes"]).step(times, track) == []


def test_moving_average_continues_across_pieces():
    rows = np.random.default_rng(0).random((12, 3))
    whole = moving_average(rows, 4)
    assert np.allclose(whole[5], rows[2:6].mean(axis=0)) and np.allclose(whole[0], rows[0])
    assert np.allclose(np.concatenate([moving_average(rows[:5], 4), moving_average(rows[5:], 4, rows[:5])]), whole)


def test_operating_point_round_trip_and_defaults(tmp_path, shipped_classifier):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "model.pt", "metrics.json"):
        (run / name).write_bytes((ROOT / "models" / "default" / name).read_bytes())
    assert operating_point(run) is None
    point = {"threshold": 0.9, "smoothing_sec": 0.2, "refractory_sec": 2.0, "hop_sec": 0.05,
             "false_accepts_per_hour": 3.2, "miss_rate": 0.05, "how": "test"}
    save_operating_point(run, point)
    assert operating_point(run) == point
    detector = StreamingDetector.from_run(run, threshold=0.95)
    assert (detector.threshold, detector.smoothing_sec, detector.refractory_sec, detector.hop_sec) == \
        (0.95, 0.2, 2.0, 0.05)
    assert detector.n_smooth == 4 and detector.hop_samples == 800
    with zipfile.ZipFile(io.BytesIO(run_zip_bytes(run))) as archive:
        assert "run/detector.json" in archive.namelist()
    (run / "detector.json").write_text(json.dumps({**point, "threshold": 0.1}))
    with pytest.raises(ValueError, match="threshold"):
        operating_point(run)
    (run / "detector.json").write_text("{not json")
    with pytest.raises(ValueError, match="detector.json"):
        StreamingDetector.from_run(run)
    with pytest.raises(ValueError, match="does not exist"):
        save_operating_point(tmp_path / "missing", point)


@pytest.mark.parametrize("kwargs, match", [
    ({"hop_sec": 0}, "hop_sec"), ({"hop_sec": float("nan")}, "hop_sec"), ({"smoothing_sec": -1}, "smoothing_sec"),
    ({"threshold": 0.2}, "threshold"), ({"threshold": 1.5}, "threshold"), ({"threshold": True}, "threshold"),
    ({"refractory_sec": -0.1}, "refractory_sec"), ({"ignore": "yes"}, "ignore"),
    ({"ignore": ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]}, "no class can fire"),
])
def test_bad_settings_raise_value_error(shipped_classifier, kwargs, match):
    with pytest.raises(ValueError, match=match):
        StreamingDetector(shipped_classifier, **kwargs)


def test_bad_input_raises_value_error(shipped_classifier):
    detector = StreamingDetector(shipped_classifier)
    assert detector.push(np.zeros(0, dtype=np.float32)) == []
    with pytest.raises(ValueError, match="non-finite"):
        detector.push(np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match="int16"):
        detector.push(np.zeros(100, dtype=np.int16))
    with pytest.raises(ValueError, match="shape"):
        detector.push(np.zeros((1, 1, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="Classifier"):
        StreamingDetector("models/default")
    with pytest.raises(ValueError, match="empty"):
        detect_stream(shipped_classifier, np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(ValueError, match="sample_rate"):
        detect_stream(shipped_classifier, np.zeros(100, dtype=np.float32), 0)
