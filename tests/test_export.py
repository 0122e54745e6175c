"""Export of a saved run (lib.serving.export): ONNX and TorchScript against lib.serving.infer on real clips, example.py without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.dsp.audio import resample, save_wav
from lib.serving.export import (EXAMPLE_FILE, INT8_FILE, LABELS_FILE, MODEL_FILES, TOLERANCE, ExportedClassifier,
                        ExportedModel, ExportError, export_run, main)
from lib.serving.infer import Classifier

ROOT = Path(__file__).resolve().parents[1]

# Runs a script with `import torch` made impossible (a None entry in sys.modules raises ImportError).
NO_TORCH = ("import runpy, sys\n"
            "sys.modules['torch'] = None\n"
            "try:\n    import torch\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('torch imported')\n"
            "script = sys.argv[1]\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_path(script, run_name='__main__')\n")


def _real_clips(dataset, n_samples: int) -> list[np.ndarray]:
    """Real clips of the tiny set as (batch, time) batches: one clip long, shortened (padded) and lengthened."""
    clips = dataset.to_tensor(16000, n_samples)[:, 0].numpy()  # (n, n_samples)
    rng = np.random.default_rng(0)
    longer = np.concatenate([clips[:6], 0.01 * rng.standard_normal((6, 7001), dtype=np.float32)], axis=1)
    return [clips, np.ascontiguousarray(clips[:6, 3000:11001]), longer]


def _max_difference(exported: ExportedModel, classifier: Classifier, batches: list[np.ndarray]) -> float:
    return max(float(np.abs(exported(b) - classifier.predict_batch(torch.from_numpy(b)).numpy()).max())
               for b in batches)


@pytest.fixture(scope="module")
def classifier(tiny_run):
    return Classifier.from_run(tiny_run)


@pytest.fixture(scope="module")
def torchscript_export(tiny_run, tmp_path_factory):
    return export_run(tiny_run, tmp_path_factory.mktemp("ts") / "torchscript", format="torchscript")


def test_onnx_export_folder_and_labels(tiny_onnx_export, classifier):
    files = {p.name for p in tiny_onnx_export.iterdir()}
    assert files == {MODEL_FILES["onnx"], INT8_FILE, LABELS_FILE, EXAMPLE_FILE}
    labels = json.loads((tiny_onnx_export / LABELS_FILE).read_text())
    assert labels["class_names"] == classifier.class_names
    assert (labels["sample_rate"], labels["n_samples"], labels["clip_seconds"]) == (16000, 16000, 1.0)
    assert labels["input"]["shape"] == ["batch", "time"] and labels["output"]["shape"] == ["batch", 3]
    assert labels["check"]["max_abs_difference"] <= TOLERANCE
    assert len((tiny_onnx_export / EXAMPLE_FILE).read_text().splitlines()) <= 40


@pytest.mark.parametrize("fixture", ["tiny_onnx_export", "torchscript_export"])
def test_export_matches_lib_infer_on_real_clips(fixture, request, classifier, tiny_dataset):
    """Batch and length are dynamic: full clips, shorter ones (padded inside) and longer ones (trimmed)."""
    exported = ExportedModel(request.getfixturevalue(fixture))
    batches = _real_clips(tiny_dataset, 16000)
    assert {b.shape for b in batches} == {(72, 16000), (6, 8001), (6, 23001)}
    assert _max_difference(exported, classifier, batches) <= TOLERANCE
    single = exported(batches[0][:1])
    assert single.shape == (1, 3) and np.allclose(single.sum(axis=1), 1.0, atol=1e-5)


def test_int8_model_is_smaller_and_mostly_agrees(tiny_onnx_export, classifier, tiny_dataset):
    clips = _real_clips(tiny_dataset, 16000)[0]
    int8 = ExportedModel(tiny_onnx_export, int8=True)(clips)
    float32 = classifier.predict_batch(torch.from_numpy(clips)).numpy()
    assert np.allclose(int8.sum(axis=1), 1.0, atol=1e-4)
    assert (int8.argmax(1) == float32.argmax(1)).mean() >= 0.8
    assert (tiny_onnx_export / INT8_FILE).stat().st_size < 0.75 * (tiny_onnx_export / MODEL_FILES["onnx"]).stat().st_size


def test_exported_classifier_windows_a_long_recording_like_lib_infer(tiny_onnx_export, classifier, tiny_dataset):
    """Serving an export reuses Classifier.predict: same mixing, resampling and windows, 44.1 kHz stereo here."""
    mono = torch.cat([tiny_dataset.waveforms[i] for i in (0, 30, 60)], dim=-1)  # (1, 3 s) at 16 kHz
    stereo = resample(torch.cat([mono, 0.5 * mono]), 16000, 44100)
    expected = classifier.predict(stereo, 44100)
    got = ExportedClassifier.from_export(tiny_onnx_export).predict(stereo, 44100)
    assert got.n_windows == expected.n_windows == 5
    np.testing.assert_allclose(got.window_probabilities, expected.window_probabilities, atol=TOLERANCE)
    assert got.top_class == expected.top_class


@pytest.mark.parametrize("fixture", ["tiny_onnx_export", "torchscript_export"])
def test_example_script_classifies_a_file(fixture, request, classifier, tiny_dataset, tmp_path):
    """The ONNX example runs where torch cannot be imported; both print lib.serving.infer's top class."""
    export = request.getfixturevalue(fixture)
    wav = tmp_path / "clip.wav"
    confident = int(classifier.predict_batch(tiny_dataset.to_tensor(16000, 16000)).max(dim=1).values.argmax())
    save_wav(wav, resample(tiny_dataset.waveforms[confident], 16000, 22050), 22050)  # the example resamples
    if fixture == "tiny_onnx_export":
        command = [sys.executable, "-c", NO_TORCH, str(export / EXAMPLE_FILE), str(wav)]
    else:
        command = [sys.executable, str(export / EXAMPLE_FILE), str(wav)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(f"{wav}: {classifier.predict_file(wav).top_class} "), line


def test_no_torch_wrapper_really_blocks_torch(tmp_path):
    """The guard the example test relies on: a script importing torch fails under it."""
    script = tmp_path / "uses_torch.py"
    script.write_text("import torch\n")
    result = subprocess.run([sys.executable, "-c", NO_TORCH, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "import of torch halted" in result.stderr


def test_default_model_exports_and_matches(tmp_path, tiny_dataset):
    """The shipped ensemble (kws_resnet_x5) exports to ONNX and matches lib.serving.infer on real clips."""
    out = export_run(ROOT / "models" / "default", tmp_path / "default-onnx", format="onnx")
    classifier = Classifier.from_run(ROOT / "models" / "default")
    assert json.loads((out / LABELS_FILE).read_text())["model"] == "kws_resnet_x5"
    assert _max_difference(ExportedModel(out), classifier, _real_clips(tiny_dataset, 16000)) <= TOLERANCE


def test_export_errors(tiny_run, tiny_onnx_export, tmp_path):
    with pytest.raises(ExportError, match="int8 quantization is for ONNX"):
        export_run(tiny_run, tmp_path / "x", format="torchscript", int8=True)
    with pytest.raises(ExportError, match="unknown export format"):
        export_run(tiny_run, tmp_path / "x", format="tflite")
    with pytest.raises(ExportError, match="already exists"):
        export_run(tiny_run, tiny_onnx_export, format="onnx")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".tmp-*"))
    with pytest.raises(ExportError, match="not an export folder"):
        ExportedModel(tiny_run)


def test_command_line(tiny_run, tmp_path, capsys):
    out = tmp_path / "ts"
    assert main([str(tiny_run), "--format", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max abs difference vs lib.serving.infer" in printed and (out / MODEL_FILES["torchscript"]).is_file()
    assert main([str(tiny_run), "--format", "torchscript", "--out", str(out)]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "model.pt").write_bytes(b"not a checkpoint")
    assert main([str(broken), "--out", str(tmp_path / "never")]) == 2
    assert "model.pt" in capsys.readouterr().err and not (tmp_path / "never").exists()
