"""Inference from a saved run (lib.serving.infer) and its command line (lib.serving.predict)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from lib.dsp.audio import pad_or_trim, resample, save_wav, wav_bytes
from lib.dsp.features import FeatureConfig, FeatureExtractor
from lib.serving.infer import Classifier, Prediction
from lib.models import build_model
from lib.serving.predict import main
from lib.engine.runs import RunError, load_run
from lib.engine.train import TrainConfig, run_training


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """A kws_resnet trained for 3 epochs on the tiny set and saved as run 'tiny'; (run path, done event)."""
    done = run_training(tiny_dataset, FeatureConfig(),
                        TrainConfig(model="kws_resnet", epochs=3, batch_size=16, device="cpu"),
                        runs_root=tmp_path_factory.mktemp("runs"), run_id="tiny")
    assert done.status == "finished", done.message
    return done.run_path, done


@pytest.fixture(scope="module")
def classifier(trained):
    return Classifier.from_run(trained[0])


@pytest.fixture(scope="module")
def reference(trained):
    """The saved model rebuilt by hand: (model in eval mode, feature config, class names)."""
    record = load_run(trained[0]).record
    feature_config = record.feature_config
    model = build_model(record.model, len(record.class_names), feature_config.n_bins, feature_config.n_frames)
    model.load_state_dict(load_run(trained[0]).state_dict)
    return model.eval(), feature_config, record.class_names


def _clip(dataset, index: int) -> tuple[torch.Tensor, int]:
    return dataset.waveforms[index], dataset.sample_rates[index]


def test_from_run_attributes(classifier, tiny_dataset):
    assert classifier.run_id == "tiny"
    assert classifier.class_names == list(tiny_dataset.class_names)
    assert classifier.feature_config == FeatureConfig()
    assert not classifier.model.training
    assert classifier.device == torch.device("cpu")


def test_matches_reference_model(classifier, reference, tiny_dataset):
    model, feature_config, _ = reference
    waveforms = tiny_dataset.to_tensor(feature_config.sample_rate, feature_config.n_samples)  # (n, 1, time)
    with torch.no_grad():
        expected = model(FeatureExtractor(feature_config)(waveforms)).softmax(-1)
    got = classifier.predict_batch(waveforms)
    assert got.shape == (len(tiny_dataset), len(tiny_dataset.class_names))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # predict() on a single clip repeats the same preprocessing
    waveform, rate = _clip(tiny_dataset, 0)
    prediction = classifier.predict(waveform, rate)
    np.testing.assert_allclose(prediction.probabilities, expected[0].numpy(), atol=1e-5)


def test_matches_in_memory_model_test_predictions(classifier, trained, tiny_dataset):
    """The confidences saved in metrics.json came from the in-memory model at the end of training."""
    metrics = trained[1].metrics
    rows = metrics["test"]["predictions"]
    indices = np.array([row["index"] for row in rows])
    fc = classifier.feature_config
    probabilities = classifier.predict_batch(tiny_dataset.to_tensor(fc.sample_rate, fc.n_samples, indices))
    assert probabilities.argmax(1).tolist() == [row["pred"] for row in rows]
    np.testing.assert_allclose(probabilities.max(1).values.numpy(), [row["confidence"] for row in rows], atol=1e-5)


def test_long_stereo_8k_input_is_windowed(classifier, tiny_dataset):
    waveform, rate = _clip(tiny_dataset, 3)
    mono = resample(waveform.mean(0), rate, 8000)
    long = torch.zeros(2, 3 * 8000)
    long[0, 8000:8000 + mono.shape[-1]] = mono[:8000]
    long[1, 8000:8000 + mono.shape[-1]] = 0.5 * mono[:8000]
    prediction = classifier.predict(long, 8000)
    assert isinstance(prediction, Prediction)
    # 3 s with 1 s windows every 0.5 s: starts 0, 0.5, ..., 2.0
    np.testing.assert_allclose(prediction.window_starts, [0.0, 0.5, 1.0, 1.5, 2.0])
    assert prediction.window_probabilities.shape == (5, 3)
    np.testing.assert_allclose(prediction.window_probabilities.sum(1), 1.0, atol=1e-5)
    assert len(prediction.detections) == 1 and 1.0 <= prediction.detections[0].start_sec < 2.0  # the one sound
    np.testing.assert_allclose(prediction.probabilities, prediction.detections[0].probabilities, atol=1e-6)
    assert prediction.duration_sec == pytest.approx(3.0)
    assert prediction.latency_ms > 0


def test_last_window_aligned_to_the_end(classifier):
    prediction = classifier.predict(torch.randn(16000 * 2 + 4000) * 0.1, 16000, hop_seconds=0.75)
    np.testing.assert_allclose(prediction.window_starts, [0.0, 0.75, 1.25])
    assert prediction.window_starts[-1] + 1.0 == pytest.approx(prediction.duration_sec)


def test_short_clip_is_one_padded_window(classifier, reference, tiny_dataset):
    model, feature_config, _ = reference
    waveform, rate = _clip(tiny_dataset, 5)
    short = waveform[..., int(0.3 * rate):int(0.5 * rate)]  # 0.2 s
    prediction = classifier.predict(short, rate)
    assert prediction.window_starts.tolist() == [0.0]
    assert prediction.window_probabilities.shape == (1, 3)
    assert prediction.duration_sec == pytest.approx(0.2)
    padded = pad_or_trim(resample(short.mean(0), rate, feature_config.sample_rate), feature_config.n_samples)
    with torch.no_grad():
        expected = model(FeatureExtractor(feature_config)(padded)).softmax(-1)[0]
    np.testing.assert_allclose(prediction.probabilities, expected.numpy(), atol=1e-5)


def test_a_clip_is_fitted_by_fit_clip_as_the_dataset_does(classifier, tiny_dataset):
    from lib.dsp.audio import fit_clip

    waveform, rate = _clip(tiny_dataset, 9)
    stereo = torch.stack([waveform[0], 0.5 * waveform[0]])
    stereo = resample(stereo, rate, 22050)[..., 2000:2000 + 18000]  # (2, 18000) at 22.05 kHz: 0.82 s
    clip = fit_clip(stereo, 22050, 16000, 16000)  # (1, 16000)
    with torch.inference_mode():
        expected = classifier.clip_probabilities(clip[None]).numpy()[0]
    assert np.array_equal(classifier.predict(stereo, 22050).probabilities, expected)
    at_rate = classifier.predict_batch(fit_clip(stereo, 22050, 16000)[None])  # (1, 1, 13061): centre padded
    assert np.array_equal(at_rate[0].numpy(), expected)
    two_channels = classifier.predict_batch(clip.expand(2, 2, 16000))  # channels mixed to mono first
    assert torch.allclose(two_channels, at_rate.expand(2, -1))


def test_resampled_input_gives_close_prediction(classifier, tiny_dataset):
    waveform, rate = _clip(tiny_dataset, 7)
    assert rate == 16000
    native = classifier.predict(waveform, 16000)
    upsampled = classifier.predict(resample(waveform, 16000, 44100), 44100)
    assert upsampled.top_class == native.top_class
    np.testing.assert_allclose(upsampled.probabilities, native.probabilities, atol=0.05)


def test_numpy_input_and_top(classifier, tiny_dataset):
    waveform, rate = _clip(tiny_dataset, 2)
    prediction = classifier.predict(waveform.numpy(), rate)
    top = prediction.top(3)
    assert [name for name, _ in top][0] == prediction.top_class
    assert top[0][1] == pytest.approx(prediction.top_probability)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert len(prediction.top(10)) == 3
    assert sorted(name for name, _ in top) == sorted(classifier.class_names)


@pytest.mark.parametrize("waveform", [torch.zeros(0), torch.zeros(2, 0)])
def test_empty_waveform_raises(classifier, waveform):
    with pytest.raises(ValueError, match="empty"):
        classifier.predict(waveform, 16000)


def test_non_finite_waveform_raises(classifier):
    waveform = torch.zeros(16000)
    waveform[100] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        classifier.predict(waveform, 16000)


def test_bad_hop_raises(classifier):
    with pytest.raises(ValueError, match="hop_seconds"):
        classifier.predict(torch.zeros(48000), 16000, hop_seconds=0)


def test_from_run_missing_folder(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        Classifier.from_run(tmp_path / "nope")


def test_from_run_bad_model_name(trained, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained[0], broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "model": "no_such_model"}))
    with pytest.raises(RunError, match="no_such_model"):
        Classifier.from_run(broken)


def test_predict_file_with_wav_bytes(classifier, tiny_dataset):
    waveform, rate = _clip(tiny_dataset, 4)
    from_bytes = classifier.predict_file(wav_bytes(waveform, rate, subtype="FLOAT"))
    direct = classifier.predict(waveform, rate)
    np.testing.assert_allclose(from_bytes.probabilities, direct.probabilities, atol=1e-5)
    assert from_bytes.top_class == direct.top_class


def test_cli(trained, classifier, tiny_dataset, tmp_path, capsys):
    run_path = trained[0]
    waveform, rate = _clip(tiny_dataset, 1)
    wav = tmp_path / "clip.wav"
    save_wav(wav, waveform, rate)
    long_wav = tmp_path / "long.wav"
    save_wav(long_wav, torch.cat([waveform, waveform, waveform], dim=-1), rate)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio")
    expected = classifier.predict_file(wav).top_class

    assert main([str(run_path), str(wav), str(bad), str(long_wav), "--windows", "--top", "2"]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith(f"{wav}: {expected} ")
    assert lines[0].endswith(" ms)") and lines[0].count(",") == 1
    assert lines[1].startswith(f"{long_wav}: ")
    # the long file: one line per sound heard (times and class), then the timeline's windows
    sounds = [line for line in lines[2:] if not line.startswith("  window ")]
    assert sounds and all(" s: " in line for line in sounds)
    assert [line for line in lines if line.startswith("  window 0.00-1.00 s: ")]
    assert f"{bad}: error: " in err
    assert str(wav) not in err

    assert main([str(run_path), str(wav)]) == 0
    assert capsys.readouterr().out.startswith(f"{wav}: {expected} ")


def test_cli_missing_run(tmp_path, capsys):
    wav = tmp_path / "clip.wav"
    save_wav(wav, torch.zeros(16000), 16000)
    assert main([str(tmp_path / "missing_run"), str(wav)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_latency_one_second(classifier, tiny_dataset):
    waveform, rate = _clip(tiny_dataset, 0)
    clip = pad_or_trim(waveform, rate)  # exactly one second
    for _ in range(5):
        classifier.predict(clip, rate)
    times = []
    for _ in range(50):
        started = time.perf_counter()
        classifier.predict(clip, rate)
        times.append((time.perf_counter() - started) * 1000)
    print(f"\nlatency of a one-second prediction: p50 {np.median(times):.2f} ms, "
          f"p90 {np.percentile(times, 90):.2f} ms ({torch.get_num_threads()} threads)")


def test_a_word_in_a_long_recording_is_answered_from_a_window_centred_on_it(classifier, tiny_dataset):
    # a one-second clip of the dataset placed at 2 s in 4 s of silence: the silence does not dilute the answer
    word, _ = _clip(tiny_dataset, 0)  # (channels, 16000) at 16 kHz
    clip = torch.zeros(1, 4 * 16000)
    clip[0, 32000:48000] = word[0]
    long = classifier.predict(clip, 16000)
    assert len(long.detections) == 1
    detection = long.detections[0]
    assert 2.0 <= detection.start_sec < detection.end_sec <= 3.0
    np.testing.assert_allclose(long.probabilities, detection.probabilities)
    assert long.top_class == classifier.predict(word, 16000).top_class


def test_window_table_columns(classifier, tiny_dataset):
    waveform, rate = _clip(tiny_dataset, 0)
    prediction = classifier.predict(torch.cat([waveform] * 3, dim=-1), rate)
    table = prediction.window_table()
    assert list(table) == ["start_sec", "end_sec", "top_class", "confidence"]
    assert all(len(column) == prediction.n_windows for column in table.values())
    assert table["end_sec"][-1] == pytest.approx(prediction.duration_sec, abs=1e-3)
    assert table["top_class"] == [prediction.class_names[j] for j in prediction.window_probabilities.argmax(1)]
    np.testing.assert_allclose(table["confidence"], prediction.window_probabilities.max(1), atol=1e-4)


def test_view_features_pads_a_short_clip_and_cuts_a_long_one(classifier, tiny_dataset):
    config = classifier.feature_config
    waveform, rate = _clip(tiny_dataset, 0)
    short = classifier.view_features(waveform[..., :rate // 4], rate)
    assert tuple(short.shape) == config.feature_shape                          # one clip: (1, bins, frames)
    long = torch.cat([waveform] * 4, dim=-1)
    assert classifier.view_features(long, rate).shape[-1] > config.n_frames
    cut = classifier.view_features(long, rate, max_seconds=config.clip_seconds)
    assert tuple(cut.shape) == config.feature_shape


def test_embed_features_matches_embed_batch(classifier, tiny_dataset):
    clips = tiny_dataset.to_tensor(classifier.feature_config.sample_rate, classifier.feature_config.n_samples,
                                   np.arange(4))
    with torch.no_grad():
        features = classifier.extractor(clips)
    torch.testing.assert_close(classifier.embed_features(features.numpy()), classifier.embed_batch(clips))
