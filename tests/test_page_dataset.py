"""Page tests for app_pages/dataset.py (AppTest): sources, overview, errors that must not be tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.conftest import metric_value

from lib.dsp.audio import save_wav

pytestmark = pytest.mark.usefixtures("allowed_tmp")  # the tests' folders are allowed folders (lib.paths)
PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "dataset.py")


def _chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def _open(at: AppTest, kind: str, **fields: str) -> AppTest:
    at.segmented_control(key="ds_kind").set_value(kind).run()
    for key, value in fields.items():
        at.text_input(key=key).set_value(value)
    at.button(key={"folder": "ds_open_folder", "csv": "ds_open_csv"}[kind]).click().run()
    return at


def _until_built(at: AppTest, timeout: float = 180) -> AppTest:
    """A new built-in set is synthesized in the background while the page shows its progress: rerun until done."""
    import time

    deadline = time.monotonic() + timeout
    while not [m for m in at.metric if m.label == "Clips"]:
        assert not at.exception, at.exception
        assert time.monotonic() < deadline, "the built-in set was not synthesized in time"
        time.sleep(0.5)
        at.run()
    return at


@pytest.fixture
def at(app_env) -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    return app


def test_renders_default_builtin_with_class_counts(at):
    assert not at.exception
    assert not at.error
    assert metric_value(at, "Clips") == "80"
    assert metric_value(at, "Classes") == "10"
    assert metric_value(at, "Failed files") == "0"
    counts = next(s for s in _chart_specs(at) if s["data"][0]["type"] == "bar")
    assert counts["data"][0]["x"] == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    assert counts["data"][0]["y"] == [8] * 10
    assert any("speech-commands-synth-" in c.value for c in at.caption)  # where the files live
    assert len(at.get("audio")) >= 2


def test_generate_own_builtin_words(at):
    at.text_input(key="ds_words").set_value("cat, dog")
    at.number_input(key="ds_clips").set_value(4)
    at.button(key="ds_generate").click().run()
    assert not at.exception
    assert any("in the background" in p.proto.text for p in at.get("progress"))  # the page shows the synthesis
    _until_built(at)
    assert not at.error
    assert at.session_state["dataset_source"]["spec"]["words"] == ("cat", "dog")
    assert metric_value(at, "Clips") == "8"
    assert metric_value(at, "Classes") == "2"
    assert any("Synthetic keywords (cat, dog)" in m.value and "2 classes, 8 clips" in m.value
               for m in at.sidebar.markdown)  # not "Synthetic Speech Commands"


def test_generate_builtin_with_neural_voices(at):
    at.text_input(key="ds_words").set_value("yes, no")
    at.number_input(key="ds_clips").set_value(2)
    at.number_input(key="ds_piper").set_value(1)
    at.number_input(key="ds_kokoro").set_value(1)
    at.button(key="ds_generate").click().run()
    _until_built(at)
    assert not at.error
    spec = at.session_state["dataset_source"]["spec"]
    assert (spec["piper_clips_per_word"], spec["kokoro_clips_per_word"]) == (1, 1)
    assert metric_value(at, "Clips") == "8"  # 2 words x (2 eSpeak + 1 Piper + 1 Kokoro)


def test_invalid_builtin_spec_shows_error(at):
    at.text_input(key="ds_words").set_value("cat, cat")
    at.button(key="ds_generate").click().run()
    assert not at.exception
    assert any("duplicates" in e.value for e in at.error)
    assert metric_value(at, "Clips") == "80"  # the previous set stays active


def test_missing_folder_shows_error_and_way_back(at, tmp_path):
    _open(at, "folder", ds_folder=str(tmp_path / "nope"))
    assert not at.exception
    assert any("folder not found" in e.value for e in at.error)
    at.button(key="ds_back").click().run()
    assert not at.exception
    assert not at.error
    assert at.session_state["dataset_source"]["kind"] == "builtin"
    assert metric_value(at, "Clips") == "80"


def test_csv_missing_columns_shows_error(at, tmp_path):
    manifest = tmp_path / "bad.csv"
    manifest.write_text("file,class\na.wav,x\n")
    _open(at, "csv", ds_csv=str(manifest))
    assert not at.exception
    assert any("lacks the column" in e.value for e in at.error)


def _tone(path, freq: float, seconds: float = 0.5, rate: int = 16000) -> None:
    t = torch.arange(int(seconds * rate)) / rate
    save_wav(path, 0.5 * torch.sin(2 * torch.pi * freq * t), rate)


def test_folder_with_broken_file_lists_it(at, tmp_path):
    for label, freq in (("low", 220.0), ("high", 1760.0)):
        (tmp_path / label).mkdir()
        for i in range(2):
            _tone(tmp_path / label / f"{label}{i}.wav", freq * (1 + 0.1 * i))
    (tmp_path / "high" / "broken.wav").write_bytes(b"this is not audio")
    _open(at, "folder", ds_folder=str(tmp_path))
    assert not at.exception
    assert not at.error
    assert metric_value(at, "Clips") == "4"
    assert metric_value(at, "Failed files") == "1"
    assert any("Failed files (1)" in e.label for e in at.expander)
    table = next(d for d in at.dataframe if "reason" in d.value.columns)
    assert table.value["file"].iloc[0].endswith("broken.wav")


def test_one_class_folder_warns(at, tmp_path):
    (tmp_path / "only").mkdir()
    for i in range(2):
        _tone(tmp_path / "only" / f"c{i}.wav", 440.0 + 100 * i)
    _open(at, "folder", ds_folder=str(tmp_path))
    assert not at.exception
    assert any("training needs at least two" in w.value for w in at.warning)


def test_the_maps_a_user_opens_next_are_computed_ahead_in_the_helper(app_env, monkeypatch):
    """The first open asks the helper process for the input features' two maps and the learned map's t-SNE; once
    it has made them, choosing them draws its maps and computes nothing in the page."""
    from lib import embedding

    embedding.MAPS.close()  # forget other tests' maps
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    asked = dict(embedding.MAPS._maps)
    learned = {method for (key, method) in asked if not key.endswith("}")}
    features = {method for (key, method) in asked if key.endswith("}")}  # named by the feature config's JSON
    assert features == {"pca", "tsne"} and learned == {"pca", "tsne"}  # the learned PCA: drawn by the page
    for future in asked.values():
        future.result(timeout=120)

    def not_here(*args, **kwargs):
        raise AssertionError("a map was computed in the page")

    monkeypatch.setattr(embedding, "embedding_2d", not_here)
    for what, method in (("learned", "tsne"), ("features", "tsne"), ("features", "pca")):
        at.radio(key="ds_map_what").set_value(what).run()
        at.radio(key="ds_method").set_value(method).run()
        assert not at.exception
        title = next(s for s in _chart_specs(at) if s["layout"]["xaxis"]["title"]["text"] == "Component 1")[
            "layout"]["title"]["text"]
        assert ("t-SNE" if method == "tsne" else "PCA") in title and ("Input" in title) == (what == "features")


def test_tsne_map_and_example_controls(at):
    at.radio(key="ds_method").set_value("tsne").run()
    assert not at.exception
    at.slider(key="ds_per_class").set_value(4).run()
    assert not at.exception
    assert len(at.get("audio")) == 24  # 6 classes shown by default x 4 examples, the cap


def test_the_map_shows_what_the_active_model_learned_and_the_input_features(at):
    maps = [s for s in _chart_specs(at) if s["layout"]["xaxis"]["title"]["text"] == "Component 1"]
    assert len(maps) == 1 and "learned (its last hidden layer)" in maps[0]["layout"]["title"]["text"]
    assert len({trace["name"] for trace in maps[0]["data"]}) == 10  # one trace per class
    at.radio(key="ds_map_what").set_value("features").run()
    assert not at.exception
    maps = [s for s in _chart_specs(at) if s["layout"]["xaxis"]["title"]["text"] == "Component 1"]
    assert len(maps) == 1 and maps[0]["layout"]["title"]["text"].startswith("Input features")
    at.radio(key="ds_map_what").set_value("pretrained").run()  # Google's speech embedding, no training
    assert not at.exception
    maps = [s for s in _chart_specs(at) if s["layout"]["xaxis"]["title"]["text"] == "Component 1"]
    assert len(maps) == 1 and maps[0]["layout"]["title"]["text"].startswith("Google's speech embedding")
    assert len({trace["name"] for trace in maps[0]["data"]}) == 10  # every clip of every class is on it


def test_the_grids_are_images_so_a_rerun_sends_few_interactive_charts(at):
    """Examples and class averages are still images; only the overview (3) and the map (1) are Plotly charts
    (the page used to send 38 charts on every rerun)."""
    assert len(at.get("plotly_chart")) == 4
    assert len(at.get("image")) == 10 + 6 * 2 * 2  # class averages + (waveform, spectrogram) of 2 examples x 6 classes
    urls = [image.url for element in at.get("image") for image in element.proto.imgs]
    assert urls and all(url.endswith(".png") for url in urls)  # sent as made, not re-encoded as JPEGs every rerun
