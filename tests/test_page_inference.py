"""Page test (AppTest) of app_pages/inference.py: uploads, a corrupt file, the summary table, long files."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from lib.dsp.audio import wav_bytes

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "app_pages" / "inference.py"


def tone(seconds: float, sample_rate: int = 16000, hz: float = 440.0) -> bytes:
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return wav_bytes(0.3 * torch.sin(2 * math.pi * hz * t), sample_rate)


def builtin_clip(app_env) -> tuple[str, bytes]:
    """A clip of the built-in set (speech): name and WAV bytes."""
    clips = sorted((Path(app_env["data_dir"]) / "builtin").glob("**/*.wav"))
    assert clips, "the app_env fixture should have generated the built-in set"
    return clips[0].name, clips[0].read_bytes()


def open_page(app_env) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def table_with(at: AppTest, column: str):
    """The first st.dataframe whose table has ``column`` (read-only dataframes carry no key in AppTest)."""
    tables = [df.value for df in at.dataframe if column in df.value.columns]
    assert tables, f"no table with a {column!r} column"
    return tables[0]


def class_names(app_env) -> list[str]:
    from lib.engine.runs import load_run

    return load_run(app_env["run_path"]).record.class_names


def test_renders_with_the_default_run(app_env):
    at = open_page(app_env)
    assert not errors(at)
    assert at.selectbox(key="inference_run").value == "default"
    assert at.file_uploader(key="inference_files").accept_multiple_files
    assert set(at.file_uploader(key="inference_files").allowed_type) >= {".wav", ".flac", ".ogg", ".mp3"}


def test_one_valid_file_shows_top_class_and_probabilities(app_env):
    at = open_page(app_env)
    name, data = builtin_clip(app_env)
    at.file_uploader(key="inference_files").set_value((name, data, "audio/wav"))
    at.run()
    assert not at.exception, at.exception
    assert not errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Top class"] in class_names(app_env)
    assert metrics["Confidence"].endswith("%")
    assert metrics["Latency"].endswith("ms")
    assert metrics["Duration"].endswith("s")
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # waveform, spectrogram, probabilities
    assert not at.get("download_button")  # one file: no summary


def test_corrupt_file_is_reported_and_the_others_classified(app_env):
    at = open_page(app_env)
    name, data = builtin_clip(app_env)
    at.file_uploader(key="inference_files").set_value(
        [(name, data, "audio/wav"), ("x.wav", b"this is not audio at all" * 10, "audio/wav")])
    at.run()
    assert not at.exception, at.exception
    problems = errors(at)
    assert len(problems) == 1 and "x.wav" in problems[0] and "WAV, FLAC, OGG, MP3" in problems[0]
    assert [m.value for m in at.metric if m.label == "Top class"][0] in class_names(app_env)
    table = table_with(at, "file")
    assert list(table["file"]) == [name, "x.wav"]
    assert list(table["status"]) == ["ok", "could not read"]
    assert table["top class"][0] in class_names(app_env)
    assert {"confidence", "2nd class", "latency (ms)", "duration (s)"} <= set(table.columns)
    assert at.download_button(key="inference_csv").label.startswith("Download")
    assert len(at.main.expander) == 1  # the sidebar has its own (data folder)


def test_long_file_shows_window_predictions(app_env):
    at = open_page(app_env)
    at.file_uploader(key="inference_files").set_value(("long.wav", tone(3.0), "audio/wav"))
    at.run()
    assert not at.exception, at.exception
    assert not errors(at)
    windows = table_with(at, "top class")
    assert len(windows) == 5  # 1 s windows every 0.5 s over 3 s
    assert windows["start (s)"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert {m.label: m.value for m in at.metric}["Duration"] == "3.00 s"
    assert any("Along the timeline" in md.value for md in at.markdown)


def test_two_sounds_in_one_file_are_two_detections_with_times(app_env):
    """A file with two sounds 2 s apart reads as two detections (times, class), not one label for the file."""
    silence = torch.zeros(16000)
    t = torch.arange(8000) / 16000
    burst = 0.3 * torch.sin(2 * math.pi * 440.0 * t)
    audio = torch.cat([silence, burst, silence, silence, burst, silence])  # sounds at 1.0 s and 3.5 s
    at = open_page(app_env)
    at.file_uploader(key="inference_files").set_value(("two.wav", wav_bytes(audio, 16000), "audio/wav"))
    at.run()
    assert not at.exception, at.exception
    assert not errors(at)
    sounds = table_with(at, "class")
    assert [round(x, 1) for x in sounds["start (s)"]] == [1.0, 3.5]
    assert [round(x, 1) for x in sounds["end (s)"]] == [1.5, 4.0]
    assert any("Heard 2 sounds" in md.value for md in at.markdown)


def test_the_timeline_marks_the_keywords_continuous_listening_detects(shipped_default_run, clear_clips):
    """Keywords at known times in a long file: the timeline marks what lib.serving.stream detects with the run's
    operating point (the Listen page's detector), the same words in the same order."""
    from lib.serving.stream import detect_stream, detector_settings
    from lib.serving.infer import Classifier
    from tests.keyword_streams import PLACEMENTS, RATE, make_stream

    waveform, _ = make_stream(clear_clips, PLACEMENTS[:3], 11.0)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["run_id"] = "shipped-default"
    at.run()
    at.file_uploader(key="inference_files").set_value(("words.wav", wav_bytes(torch.from_numpy(waveform), RATE),
                                                       "audio/wav"))
    at.run()
    assert not at.exception, at.exception
    expected = detect_stream(Classifier.from_run(shipped_default_run), waveform, RATE,
                             **detector_settings(shipped_default_run))
    assert [e.word for e in expected] == [word for word, _ in PLACEMENTS[:3]]
    timeline = next(md.value for md in at.markdown if "Along the timeline" in md.value)
    assert timeline.endswith(": yes, no, up.")
    chart = next(c for c in at.get("plotly_chart") if '"detected"' in c.proto.spec)
    assert '"y":["yes","no","up"]' in chart.proto.spec.replace(" ", "")


def test_a_clip_of_the_active_dataset(app_env):
    at = open_page(app_env)
    at.radio(key="inference_source").set_value("dataset")
    at.run()
    assert not at.exception, at.exception
    assert not errors(at)
    assert {m.label: m.value for m in at.metric}["Top class"] in class_names(app_env)
    at.number_input(key="inference_clip_index").set_value(3)
    at.run()
    assert not at.exception, at.exception
    assert at.number_input(key="inference_clip_index").value == 3


def test_no_run_warns_and_points_to_train(app_env, operator_folders, tmp_path):
    operator_folders(runs_dir=tmp_path)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert any("train" in w.value.lower() for w in at.warning)
    assert not at.get("file_uploader")


def test_a_run_that_cannot_be_loaded_stops_with_an_error(app_env):
    broken = Path(app_env["runs_dir"]) / "zz-broken"
    shutil.copytree(app_env["run_path"], broken)
    try:
        (broken / "model.pt").write_bytes(b"not a torch file")
        at = AppTest.from_file(str(PAGE), default_timeout=60)
        at.session_state["run_id"] = "zz-broken"
        at.run()
        assert not at.exception, at.exception
        assert at.selectbox(key="inference_run").value == "zz-broken"
        assert any("zz-broken" in message for message in errors(at))
        assert not at.get("file_uploader")
    finally:
        shutil.rmtree(broken, ignore_errors=True)
