"""Page test: Evaluate (AppTest), on the "default" run of the app_env fixture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.settings import settings

pytestmark = pytest.mark.usefixtures("allowed_tmp")  # the tests' folders are allowed folders (lib.paths)

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "evaluate.py")


def _page(run_id: str = "default") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["run_id"] = run_id
    at.run()
    assert not at.exception, at.exception
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _confusion_colorbars(at: AppTest) -> list[str]:
    return [trace["colorbar"]["title"]["text"] for spec in _charts(at) for trace in spec["data"]
            if trace.get("type") == "heatmap" and spec["layout"]["xaxis"]["title"]["text"] == "Predicted class"]


def test_evaluate_renders_the_default_run(app_env):
    at = _page()
    assert at.selectbox(key="eval_run").value == "default"
    assert not at.error, [e.value for e in at.error]
    labels = [m.label for m in at.metric]
    assert {"Accuracy", "Macro F1", "Weighted F1"} <= set(labels)
    # test and validation confusion matrices, in counts
    assert _confusion_colorbars(at) == ["clips", "clips"]
    assert len(at.dataframe) >= 2  # per-class tables
    assert "Misclassified test clips" in [h.value for h in at.subheader]


def test_evaluate_normalise_toggle(app_env):
    at = _page()
    at.toggle(key="eval_norm_test").set_value(True).run()
    assert not at.exception, at.exception
    assert _confusion_colorbars(at) == ["fraction", "clips"]


def test_evaluate_map_of_test_clips(app_env):
    at = _page()
    maps = [s for s in _charts(at) if s["layout"]["xaxis"]["title"]["text"] == "Component 1"]
    assert len(maps) == 1, [i.value for i in at.info]


def test_evaluate_on_the_active_dataset(app_env):
    at = _page()
    at.button(key="eval_cross_go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert _confusion_colorbars(at)[-1] == "clips"  # a third confusion matrix: the cross-dataset one
    assert len(_confusion_colorbars(at)) == 3


def test_evaluate_on_a_missing_folder_shows_an_error(app_env, tmp_path):
    at = _page()
    at.radio(key="eval_cross_kind").set_value("folder").run()
    at.text_input(key="eval_cross_folder").input(str(tmp_path / "nothing-here")).run()
    at.button(key="eval_cross_go").click().run()
    assert not at.exception, at.exception
    assert any("folder not found" in e.value for e in at.error), [e.value for e in at.error]


def test_evaluate_sends_comparisons_to_the_runs_page(app_env):
    at = _page()
    assert "Compare runs" in [h.value for h in at.subheader]
    assert not [s for s in at.selectbox if s.key == "eval_compare_run"]  # one place compares runs: the Runs page
    assert any("Runs page" in c.value for c in at.caption), [c.value for c in at.caption]


def test_evaluate_broken_runs_show_errors(app_env):

    bad_metrics, no_model = settings().runs_dir / "eval-bad-metrics", settings().runs_dir / "eval-no-model"
    try:
        shutil.copytree(app_env["run_path"], bad_metrics)
        (bad_metrics / "metrics.json").write_text("{ not json", encoding="utf-8")
        shutil.copytree(app_env["run_path"], no_model)
        (no_model / "model.pt").unlink()
        at = _page()
        errors = " ".join(e.value for e in at.error)
        assert "metrics.json of run 'eval-bad-metrics'" in errors
        assert "model.pt of run 'eval-no-model'" in errors
        # the good run is still evaluated
        assert _confusion_colorbars(at)
        # asking for a broken run falls back to a usable one
        at = _page("eval-no-model")
        assert at.selectbox(key="eval_run").value != "eval-no-model"
    finally:
        shutil.rmtree(bad_metrics, ignore_errors=True)
        shutil.rmtree(no_model, ignore_errors=True)


def test_evaluate_metrics_without_test_results(app_env):

    partial = settings().runs_dir / "eval-partial"
    try:
        shutil.copytree(app_env["run_path"], partial)
        metrics = json.loads((partial / "metrics.json").read_text())
        metrics["test"] = {"accuracy": 0.5}
        metrics["history"] = [{"epoch": "one"}]
        (partial / "metrics.json").write_text(json.dumps(metrics))
        at = _page("eval-partial")
        assert at.selectbox(key="eval_run").value == "eval-partial"
        assert any("no usable test results" in e.value for e in at.error), [e.value for e in at.error]
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def test_evaluate_on_my_recordings(app_env):
    """The Record page's folders are offered by name; the run is scored on them like any dataset."""
    import soundfile as sf

    from lib.data.sources import load_builtin
    from ui.common import default_builtin_spec

    if settings().recordings_dir.is_dir():
        shutil.rmtree(settings().recordings_dir)
    at = _page()
    at.radio(key="eval_cross_kind").set_value("recordings").run()
    assert not at.exception, at.exception
    assert any("No recordings yet" in i.value for i in at.info), [i.value for i in at.info]

    dataset = load_builtin(default_builtin_spec(), settings().builtin_cache)
    for i in range(0, len(dataset), 10):  # a few "recordings" of the run's own words
        waveform, rate = dataset.clip(i)
        folder = settings().recordings_dir / "my-words" / dataset.class_names[dataset.labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"take{i}.wav", waveform[0].numpy(), rate)
    try:
        at = _page()
        at.radio(key="eval_cross_kind").set_value("recordings").run()
        assert at.selectbox(key="eval_cross_recordings").value == "my-words"
        at.button(key="eval_cross_go").click().run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        assert len(_confusion_colorbars(at)) == 3  # the recordings' confusion matrix joins test and validation
    finally:
        shutil.rmtree(settings().recordings_dir, ignore_errors=True)


def test_the_shipped_default_model_shows_its_mistakes_and_map_on_a_fresh_install(app_env):
    """models/default was trained on a 6,500-clip set that a fresh install does not have: its misclassified
    clips play from the run folder, and its map is drawn from the embedding it keeps."""
    from lib.engine.run_extras import kept_mistakes
    from lib.engine.runs import load_run

    shipped = Path(__file__).resolve().parents[1] / "models" / "default"
    copy = settings().runs_dir / "shipped-default"
    shutil.copytree(shipped, copy, dirs_exist_ok=True)
    try:
        at = _page("shipped-default")
        assert at.selectbox(key="eval_run").value == "shipped-default"
        assert not at.error, [e.value for e in at.error]
        assert not [w.value for w in at.warning if "Cannot play" in w.value]
        wrong = kept_mistakes(load_run(copy).report("test"))
        assert len(at.get("audio")) == min(len(wrong), 12)  # every mistake shown plays
        maps = [s for s in _charts(at) if s["layout"]["xaxis"]["title"]["text"] == "Component 1"]
        assert len(maps) == 1, [i.value for i in at.info]
        assert "last hidden layer" in maps[0]["layout"]["title"]["text"]
        # the raw input features need the training set, which this machine does not have: said, not crashed
        at.radio(key="eval_map_what").set_value("features").run()
        assert not at.exception, at.exception
        assert any("not generated on this machine" in i.value for i in at.info)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_the_map_of_what_the_model_learned_and_of_the_input_features(app_env):
    at = _page()
    maps = [s for s in _charts(at) if s["layout"]["xaxis"]["title"]["text"] == "Component 1"]
    assert "last hidden layer" in maps[0]["layout"]["title"]["text"]
    at.radio(key="eval_map_what").set_value("features").run()
    assert not at.exception, at.exception
    maps = [s for s in _charts(at) if s["layout"]["xaxis"]["title"]["text"] == "Component 1"]
    assert len(maps) == 1 and "input features" in maps[0]["layout"]["title"]["text"]


def test_macro_scores_on_a_subset_of_classes_are_over_the_classes_present(app_env):
    """Tested on recordings of two of the run's classes, the macro scores are over those two (labelled so),
    with the all-class figures still given."""
    import soundfile as sf

    from lib.data.sources import load_builtin
    from ui.common import default_builtin_spec

    dataset = load_builtin(default_builtin_spec(), settings().builtin_cache)
    two = dataset.class_names[:2]
    for i in range(len(dataset)):
        name = dataset.class_names[dataset.labels[i]]
        if name in two:
            folder = settings().recordings_dir / "two-words" / name
            folder.mkdir(parents=True, exist_ok=True)
            waveform, rate = dataset.clip(i)
            sf.write(folder / f"take{i}.wav", waveform[0].numpy(), rate)
    try:
        at = _page()
        at.radio(key="eval_cross_kind").set_value("recordings").run()
        at.selectbox(key="eval_cross_recordings").set_value("two-words").run()
        at.button(key="eval_cross_go").click().run()
        assert not at.exception, at.exception
        labels = [m.label for m in at.metric]
        assert "Macro F1 (2 classes)" in labels
        assert any(f"only 2 of the run's {dataset.n_classes} classes" in c.value for c in at.caption)
    finally:
        shutil.rmtree(settings().recordings_dir, ignore_errors=True)


def test_a_misclassified_segment_of_a_long_file_plays_from_its_file(app_env, tmp_path):
    """A clip cut from a long recording (a catalog dataset's ``file.wav#t=a,b``, as older runs saved it) is
    played from its file, from a to b, not opened as a file named ``…#t=a,b``."""
    import numpy as np
    import soundfile as sf

    long_file = tmp_path / "recording.wav"
    sf.write(long_file, np.random.default_rng(0).normal(0, 0.1, 16000 * 4).astype(np.float32), 16000)
    segments = settings().runs_dir / "eval-segments"
    shutil.copytree(app_env["run_path"], segments)
    try:
        shutil.rmtree(segments / "mistakes", ignore_errors=True)  # no kept copies: the clips come from the file
        metrics = json.loads((segments / "metrics.json").read_text())
        for i, p in enumerate(metrics["test"]["predictions"]):
            p.pop("start_sec", None), p.pop("end_sec", None)
            p["path"] = f"{long_file}#t={i % 3},{i % 3 + 1}"
            p["pred"] = (p["true"] + 1) % len(metrics["test"]["class_names"])  # every clip a mistake
        (segments / "metrics.json").write_text(json.dumps(metrics))
        at = _page("eval-segments")
        assert not [w.value for w in at.warning if "Cannot play" in w.value]
        assert len(at.get("audio")) == min(len(metrics["test"]["predictions"]), 12)
        assert any("recording.wav, 1 s to 2 s" in c.value for c in at.caption), [c.value for c in at.caption]
    finally:
        shutil.rmtree(segments, ignore_errors=True)
