"""bench/cross_synth.py without flite, festival or PocketSphinx: clip helpers, manifests, scoring, evaluate_run."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lib.serving.infer import Classifier

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = ROOT / "models" / "default"


def _load_module():
    spec = importlib.util.spec_from_file_location("cross_synth", ROOT / "bench" / "cross_synth.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cross_synth"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


cs = _load_module()


def test_trim_silence_cuts_quiet_edges_only():
    x = np.zeros(1000, dtype=np.float32)
    x[300:400] = 0.5
    x[250] = 0.004  # below 1% of the peak: trimmed
    x[450] = 0.01   # above: kept, with the silent gap before it
    out = cs.trim_silence(x)
    assert out.shape == (151,)
    assert out[0] == pytest.approx(0.5) and out[-1] == pytest.approx(0.01)
    silent = np.zeros(10, dtype=np.float32)
    assert np.array_equal(cs.trim_silence(silent), silent)


def test_centre_clip_pads_and_crops_like_pad_or_trim():
    import torch

    from lib.dsp.audio import pad_or_trim

    for n in (5, 6, 10, 13, 16):
        x = np.arange(1, n + 1, dtype=np.float32)
        ours = cs.centre_clip(x, 10)
        assert ours.shape == (10,)
        assert np.array_equal(ours, pad_or_trim(torch.from_numpy(x), 10, mode="center").numpy())
    assert np.array_equal(cs.centre_clip(np.ones(4), 8), [0, 0, 1, 1, 1, 1, 0, 0])
    assert np.array_equal(cs.centre_clip(np.arange(10), 4), [3, 4, 5, 6])  # the middle is kept


def test_normalise_peak():
    out = cs.normalise_peak(np.array([0.1, -0.2, 0.05], dtype=np.float32))
    assert np.abs(out).max() == pytest.approx(0.5)
    assert out[1] == pytest.approx(-0.5)
    assert np.array_equal(cs.normalise_peak(np.zeros(3)), np.zeros(3))


def test_prepare_clip_resamples_trims_centres_and_normalises():
    rate = 32000
    t = np.arange(int(0.3 * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * 440 * t)
    raw = np.concatenate([np.zeros(rate // 2), tone, np.zeros(rate)]).astype(np.float32)  # 1.8 s, off-centre
    clip = cs.prepare_clip(np.stack([raw, raw], axis=1), rate)  # (time, channels), as soundfile reads it
    assert clip.shape == (16000,) and clip.dtype == np.float32
    assert np.abs(clip).max() == pytest.approx(0.5, abs=1e-6)
    loud = np.flatnonzero(np.abs(clip) > 0.01)
    assert abs((loud[0] + loud[-1]) / 2 - 8000) < 40  # the tone is in the middle
    assert (loud[-1] - loud[0]) / 16000 == pytest.approx(0.3, abs=0.01)
    long = cs.prepare_clip(np.full(30000, 0.3, dtype=np.float32), 16000)  # longer than a clip: the middle
    assert long.shape == (16000,) and np.allclose(long, 0.5)


def test_write_and_read_manifest(tmp_path):
    rows = [{"path": "b/yes.wav", "label": "yes", "group": "flite-b", "engine": "flite", "voice": "b",
             "variant": "s1.00_p1.00", "ignored": 1},
            {"path": "a/no.wav", "label": "no", "group": "festival-a", "engine": "festival", "voice": "a",
             "variant": "s0.80_p1.00"}]
    cs.write_manifest(tmp_path / "manifest.csv", rows)
    with open(tmp_path / "manifest.csv", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == list(cs.MANIFEST_COLUMNS)
    assert [line[0] for line in lines[1:]] == ["a/no.wav", "b/yes.wav"]  # sorted: deterministic
    back = cs.read_manifest(tmp_path)
    assert back[0]["full_path"] == str(tmp_path / "a/no.wav") and back[1]["engine"] == "flite"
    (tmp_path / "plain.csv").write_text("path,label\nx.wav,yes\n")  # e.g. the built-in set: no engine column
    plain = cs.read_manifest(tmp_path / "plain.csv")[0]
    assert plain["engine"] == "espeak" and plain["group"] == str(tmp_path / "x.wav")


def test_score_counts_missing_hypotheses_as_wrong():
    rows = [{"path": f"{i}.wav", "label": label, "group": group, "engine": group.split("-")[0], "variant": "v"}
            for i, (label, group) in enumerate([("yes", "flite-a"), ("no", "flite-a"), ("up", "festival-b"),
                                                ("up", "festival-b")])]
    result = cs.score(rows, ["yes", cs.NO_HYPOTHESIS, "up", "no"], ["yes", "no", "up"], "test")
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["per_engine"]["flite"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert result["per_voice"]["festival-b"]["accuracy"] == pytest.approx(0.5)
    assert result["metrics"]["class_names"] == ["yes", "no", "up", cs.NO_HYPOTHESIS]
    assert result["metrics"]["confusion_matrix"][1] == [0, 0, 0, 1]
    report = cs.markdown_report(result)
    assert "Overall accuracy: **50.0%** (2/4 clips)" in report and "| festival | 2 | 50.0% |" in report
    with pytest.raises(ValueError, match="not among the classes"):
        cs.score(rows, ["yes"] * 4, ["yes", "no"], "test")


def test_jsgf_grammar_lists_the_words():
    grammar = cs._jsgf(list(cs.WORDS))
    assert grammar.startswith("#JSGF V1.0;")
    assert "public <command> = yes | no | up | down | left | right | on | off | stop | go ;" in grammar


@pytest.fixture(scope="module")
def fake_set(tmp_path_factory, tiny_dataset):
    """A cross-synth-like set from built-in clips: two fake engines, one clip resampled to 8 kHz and lengthened."""
    root = tmp_path_factory.mktemp("cross_synth")
    rows = []
    for i in range(0, len(tiny_dataset), 6):  # 12 clips of yes/no/up
        waveform, rate = tiny_dataset.clip(i)
        label = tiny_dataset.class_names[tiny_dataset.labels[i]]
        engine = "flite" if i % 12 == 0 else "festival"
        rel = f"{engine}-v{i % 3}/{label}/{label}_{i}.wav"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        samples = waveform[0].numpy()
        if i == 6:  # an odd clip: 8 kHz, 1.5 s long -> goes through Classifier.predict, not predict_batch
            from scipy.signal import resample_poly
            samples, rate = np.concatenate([resample_poly(samples, 1, 2), np.zeros(4000)]).astype(np.float32), 8000
        sf.write(root / rel, samples, rate, subtype="PCM_16")
        rows.append({"path": rel, "label": label, "group": f"{engine}-v{i % 3}", "engine": engine,
                     "voice": f"v{i % 3}", "variant": "s1.00_p1.00"})
    cs.write_manifest(root / "manifest.csv", rows)
    return root


def test_evaluate_run_matches_classifier_predict(fake_set, tmp_path):
    result = cs.evaluate_run(DEFAULT_RUN, fake_set)
    classifier = Classifier.from_run(DEFAULT_RUN)
    assert result["n"] == 12 and not result["failed"]
    assert set(result["per_engine"]) == {"flite", "festival"}
    assert sum(v["n"] for v in result["per_voice"].values()) == 12
    assert len(result["metrics"]["confusion_matrix"]) == classifier.n_classes  # the run's ten classes
    correct = 0
    for entry in result["predictions"]:
        waveform, rate = sf.read(fake_set / entry["path"], dtype="float32")
        prediction = classifier.predict(waveform, rate)
        assert prediction.top_class == entry["predicted"]
        assert prediction.top_probability == pytest.approx(entry["probability"], abs=1e-5)
        correct += prediction.top_class == entry["label"]
    assert result["accuracy"] == pytest.approx(correct / 12)

    out = tmp_path / "result.json"
    assert cs.main(["eval", str(DEFAULT_RUN), "--set", str(fake_set), "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["accuracy"] == pytest.approx(result["accuracy"])
    assert saved["per_engine"] == result["per_engine"]


def test_compare_puts_the_run_and_the_baseline_in_one_table(fake_set, tmp_path, monkeypatch):
    rows = cs.read_manifest(fake_set)
    # PocketSphinx lives in its own venv (installed on first use): stand in a recogniser that is always right
    monkeypatch.setattr(cs, "run_baseline", lambda set_dir: dict(
        cs.score(rows, [r["label"] for r in rows], list(cs.WORDS), "perfect"), pocketsphinx="x", no_hypothesis=0))
    out = tmp_path / "benchmarks.md"
    assert cs.main(["compare", str(DEFAULT_RUN), "--set", str(fake_set), "--out", str(out)]) == 0
    text = out.read_text()
    model = cs.evaluate_run(DEFAULT_RUN, fake_set)
    assert "<!-- cross-synth-compare:start -->" in text
    assert f"| **overall** | **{model['accuracy']:.1%}** | **100.0%** |" in text
    assert all(f"| {group} (" in text for group in [*model["per_engine"], *model["per_voice"]])
    assert "p50" in text and "95% interval" in text


def test_unit_bootstrap_interval_brackets_the_accuracy_and_collapses_when_all_right():
    def result(correct_units):
        predictions = []
        for unit in range(10):
            right = unit < correct_units
            predictions += [{"group": f"v{unit % 5}", "label": f"w{unit // 5}",
                             "predicted": f"w{unit // 5}" if right else "x"} for _ in range(5)]
        return {"predictions": predictions}

    low, high = cs.unit_bootstrap_interval(result(7))
    assert low < 0.7 < high and high - low > 0.3  # 10 units: wide, though there are 50 clips
    assert cs.unit_bootstrap_interval(result(10)) == (1.0, 1.0)


def test_validation_accuracy_is_split_by_voice_kind():
    from lib.engine.metrics import classification_metrics

    predictions = [{"index": i, "path": path, "true": t, "pred": p, "confidence": 0.9}
                   for i, (path, t, p) in enumerate([("d/yes/yes_0001.wav", 0, 0), ("d/yes/yes_0002.wav", 0, 1),
                                                     ("d/no/no_piper_0000.wav", 1, 1),
                                                     ("d/no/no_kokoro_0003.wav", 1, 0)])]
    report = {**classification_metrics([0, 0, 1, 1], [0, 1, 1, 0], ["yes", "no"]), "predictions": predictions}
    split = cs.validation_by_voice_kind({"validation": report})
    assert split == {"eSpeak": (0.5, 2), "Piper": (1.0, 1), "Kokoro": (0.0, 1)}
    assert cs.validation_by_voice_kind({}) == {}
