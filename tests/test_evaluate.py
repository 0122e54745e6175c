"""lib.engine.evaluate: one report for the engine, the Evaluate page and the benchmarks; clips located for playback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from lib.engine.evaluate import (ClipPrediction, EvaluationReport, clip_features, clip_location, evaluate, load_segment,
                          matching_clips, split_report, unmatched_counts)
from lib.engine.metrics import classification_metrics


def test_clip_location_reads_media_fragments():
    assert clip_location("a/b.wav") == ("a/b.wav", 0.0, None)
    assert clip_location("a/b.wav#t=1.5,2.5") == ("a/b.wav", 1.5, 2.5)
    assert clip_location("a/b.wav#t=3,") == ("a/b.wav", 3.0, None)
    assert clip_location("odd#t=name.wav") == ("odd#t=name.wav", 0.0, None)  # not a fragment: a file name


@pytest.mark.parametrize("name", ["d/yes/1.wav", "d/rec.wav#t=0,1", "d/rec.wav#t=12.5,13.5", "d/rec.wav#t=4,"])
def test_a_prediction_names_its_clip_as_the_dataset_does(name):
    prediction = ClipPrediction(3, *clip_location(name), true=0, pred=1, confidence=0.5)
    assert prediction.name == name
    assert ClipPrediction.from_dict(prediction.to_dict()) == prediction
    assert ClipPrediction.from_dict(json.loads(json.dumps(prediction.to_dict()))) == prediction


def test_an_old_prediction_with_a_fragment_path_is_located():
    old = {"index": 7, "path": "data/esc/1-100.wav#t=2.5,3.5", "true": 1, "pred": 0, "confidence": 0.8}
    prediction = ClipPrediction.from_dict(old)
    assert (prediction.path, prediction.start_sec, prediction.end_sec) == ("data/esc/1-100.wav", 2.5, 3.5)
    assert prediction.is_segment and not prediction.correct and prediction.name == old["path"]
    assert prediction.caption == "1-100.wav, 2.5 s to 3.5 s"
    assert ClipPrediction(1, "d/rec.wav", 4.0, None, 0, 0, 1.0).caption == "rec.wav, 4 s to the end"
    assert ClipPrediction(1, "d/yes/1.wav", 0.0, None, 0, 0, 1.0).caption == "1.wav"
    with pytest.raises(ValueError, match="malformed"):
        ClipPrediction.from_dict({"index": 1})


def test_load_segment_cuts_the_clip_out_of_its_file(tmp_path):
    rate = 8000
    samples = np.arange(3 * rate, dtype=np.float32) / (3 * rate)
    sf.write(tmp_path / "long.wav", samples, rate, subtype="FLOAT")
    whole, got_rate = load_segment(tmp_path / "long.wav")
    part, _ = load_segment(tmp_path / "long.wav", 1.0, 2.0)
    tail, _ = load_segment(tmp_path / "long.wav", 2.5)
    assert got_rate == rate and whole.shape == (1, 3 * rate) and part.shape == (1, rate) and tail.shape[-1] == rate // 2
    torch.testing.assert_close(part[0], torch.from_numpy(samples[rate:2 * rate]))


def test_report_round_trips_and_matches_lib_metrics(tiny_dataset):
    indices = np.array([0, 5, 10, 30, 60])
    probabilities = torch.softmax(torch.randn(len(indices), tiny_dataset.n_classes, generator=torch.Generator().manual_seed(0)), 1)
    report = split_report(tiny_dataset, indices, probabilities)
    expected = classification_metrics(tiny_dataset.labels[indices], probabilities.argmax(1).numpy(),
                                      tiny_dataset.class_names)
    saved = report.to_dict()
    assert {k: v for k, v in saved.items() if k != "predictions"} == expected
    assert [p.index for p in report.predictions] == indices.tolist()
    assert [p.name for p in report.predictions] == [tiny_dataset.paths[i] for i in indices]
    back = EvaluationReport.from_dict(json.loads(json.dumps(saved)))
    assert back == report and back.probabilities is None
    assert split_report(tiny_dataset, np.array([], dtype=np.int64), torch.empty(0)) is None


def test_macro_over_present_classes_on_a_subset():
    names = ["a", "b", "c", "d"]
    report = EvaluationReport.from_dict(classification_metrics([0, 0, 1, 1], [0, 0, 1, 1], names))
    assert report.accuracy == 1.0 and report.present_classes == ["a", "b"] and not report.all_classes_present
    assert report.macro_present.f1 == 1.0 and report.macro.f1 == 0.5
    full = EvaluationReport.from_dict(classification_metrics([0, 1, 2, 3], [0, 1, 2, 2], names))
    assert full.all_classes_present and full.macro_present == full.macro


def test_mistakes_most_confident_first():
    metrics = classification_metrics([0, 1, 1], [1, 0, 1], ["x", "y"])
    predictions = [{"index": i, "path": f"{i}.wav", "true": t, "pred": p, "confidence": c}
                   for i, (t, p, c) in enumerate([(0, 1, 0.6), (1, 0, 0.9), (1, 1, 0.99)])]
    report = EvaluationReport.from_dict({**metrics, "predictions": predictions})
    assert [p.index for p in report.mistakes()] == [1, 0]


def test_a_malformed_report_is_refused():
    with pytest.raises(ValueError, match="missing"):
        EvaluationReport.from_dict({"accuracy": 0.5})
    good = classification_metrics([0, 1], [0, 1], ["x", "y"])
    with pytest.raises(ValueError, match="2 x 2"):
        EvaluationReport.from_dict({**good, "confusion_matrix": [[1]]})


@pytest.fixture(scope="module")
def classifier(tiny_run):
    from lib.serving.infer import Classifier

    return Classifier.from_run(tiny_run)


def test_evaluate_a_classifier_on_a_dataset_matches_predict_batch(classifier, tiny_dataset):
    report = evaluate(classifier, tiny_dataset)
    fc = classifier.feature_config
    probabilities = classifier.predict_batch(tiny_dataset.to_tensor(fc.sample_rate, fc.n_samples)).numpy()
    np.testing.assert_allclose(report.probabilities, probabilities, atol=1e-6)
    assert report.n == len(tiny_dataset) and [p.pred for p in report.predictions] == probabilities.argmax(1).tolist()
    # whole recordings: these clips already fit one clip, so the answers are the same
    whole = evaluate(classifier, tiny_dataset, whole_recordings=True)
    np.testing.assert_allclose(whole.probabilities, probabilities, atol=1e-5)


def test_evaluate_matches_classes_by_name(classifier, tiny_dataset):
    subset = tiny_dataset.subset(np.flatnonzero(tiny_dataset.labels != 0))
    reordered = type(subset)(**{**subset.__dict__, "class_names": subset.class_names[::-1],
                                "labels": (subset.n_classes - 1) - subset.labels})
    report = evaluate(classifier, reordered)
    assert report.class_names == classifier.class_names
    assert [report.class_names[p.true] for p in report.predictions] == [
        reordered.class_names[label] for label in reordered.labels]
    assert report.present_classes == classifier.class_names[1:]


def test_evaluate_refuses_clips_of_unknown_classes(classifier, tiny_dataset):
    other = type(tiny_dataset)(**{**tiny_dataset.__dict__, "class_names": ["yes", "no", "maybe"]})
    with pytest.raises(ValueError, match="maybe"):
        evaluate(classifier, other)
    keep = matching_clips(other, classifier.class_names)
    assert len(keep) == int((other.labels != 2).sum())
    assert unmatched_counts(other, classifier.class_names) == {"maybe": int((other.labels == 2).sum())}
    assert evaluate(classifier, other, keep).n == len(keep)
    with pytest.raises(ValueError, match="no clips"):
        evaluate(classifier, other, [])


def test_a_report_matches_the_dataset_it_indexes_and_its_clips_are_shown_as_evaluated(classifier, tiny_dataset):
    report = evaluate(classifier, tiny_dataset, [0, 5, 9])
    assert report.matches(tiny_dataset)
    assert not report.matches(tiny_dataset.subset(np.arange(5)))  # clip 5 and 9 are gone
    renamed = type(tiny_dataset)(**{**tiny_dataset.__dict__, "paths": list(reversed(tiny_dataset.paths))})
    assert not report.matches(renamed)
    fc = classifier.feature_config
    vectors = classifier.embed_clips(tiny_dataset, [0, 5])
    expected = classifier.embed_batch(tiny_dataset.to_tensor(fc.sample_rate, fc.n_samples, np.array([0, 5])))
    np.testing.assert_allclose(vectors, expected.numpy())
    waveform, rate = tiny_dataset.clip(5)
    features = clip_features(waveform, rate, fc)
    assert features.shape == (fc.n_bins, fc.n_frames)
