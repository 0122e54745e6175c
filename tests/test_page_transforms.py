"""Page tests for app_pages/transforms.py (AppTest): the Transform lab."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import metric_value

from lib.augment import AugmentConfig
from lib.features import FeatureConfig

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "transforms.py")


def _shape_text(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "Feature shape" in m.value)


@pytest.fixture
def at(app_env) -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    return app


def test_renders_with_default_settings(at):
    assert not at.exception
    assert not at.error
    assert "`(1, 40, 101)`" in _shape_text(at)
    assert metric_value(at, "Window (samples)") == "400"
    assert metric_value(at, "Hop (samples)") == "160"
    assert any("These are the settings training uses" in s.value for s in at.success)  # untouched = saved
    assert metric_value(at, "Frames") == "101"
    assert len(at.get("audio")) == 2  # original and augmented


def test_changing_n_mels_and_hop_updates_shape(at):
    at.slider(key="tf_n_mels").set_value(64).run()
    assert not at.exception
    assert "`(1, 64, 101)`" in _shape_text(at)
    at.select_slider(key="tf_hop_length").set_value(320).run()
    assert not at.exception
    assert "`(1, 64, 51)`" in _shape_text(at)
    assert metric_value(at, "Overlap") == "20%"


def test_linear_and_mfcc_kinds(at):
    at.segmented_control(key="tf_kind").set_value("linear").run()
    assert not at.exception
    assert "`(1, 257, 101)`" in _shape_text(at)
    at.segmented_control(key="tf_kind").set_value("mel").run()
    at.slider(key="tf_n_mels").set_value(64).run()
    at.segmented_control(key="tf_kind").set_value("linear").run()
    at.segmented_control(key="tf_kind").set_value("mel").run()
    assert "`(1, 64, 101)`" in _shape_text(at)  # hidden widgets keep their values
    at.segmented_control(key="tf_kind").set_value("mfcc").run()
    at.slider(key="tf_n_mfcc").set_value(13).run()
    assert not at.exception
    assert "`(1, 13, 101)`" in _shape_text(at)


def test_invalid_combinations_show_error(at):
    at.select_slider(key="tf_win_length").set_value(1024).run()  # n_fft is 512
    assert not at.exception
    assert any("win_length" in e.value for e in at.error)
    assert not any("Feature shape" in m.value for m in at.markdown)  # plots stop
    at.select_slider(key="tf_win_length").set_value(400).run()
    assert not at.error
    at.number_input(key="tf_f_min").set_value(4000.0)
    at.number_input(key="tf_f_max").set_value(3000.0).run()
    assert not at.exception
    assert any("f_min" in e.value for e in at.error)


def test_new_random_draw_changes_seed(at):
    seed = at.session_state["aug_seed"]
    at.button(key="tf_reroll").click().run()
    assert not at.exception
    assert at.session_state["aug_seed"] == seed + 1
    assert any(f"Draw #{seed + 1}" in c.value for c in at.caption)


def test_use_for_training_writes_session_configs(at):
    at.slider(key="tf_n_mels").set_value(64)
    at.toggle(key="tf_noise_on").set_value(True).run()
    at.slider(key="tf_snr").set_value(20.0)
    at.slider(key="tf_n_time_masks").set_value(1).run()
    assert not at.exception
    assert not at.success
    assert any("Training still uses the saved settings" in i.value for i in at.info)
    at.button(key="tf_use").click().run()
    assert not at.exception
    feature = FeatureConfig.from_dict(at.session_state["feature_config"])
    augment = AugmentConfig.from_dict(at.session_state["augment_config"])
    assert feature.n_mels == 64 and feature.hop_length == 160
    assert augment.noise_probability == 0.8
    assert (augment.snr_db_min, augment.snr_db_max) == (15.0, 25.0)
    assert augment.n_time_masks == 1
    assert at.success


def test_corrupt_upload_shows_error(at):
    at.segmented_control(key="tf_source").set_value("upload").run()
    assert not at.exception
    at.file_uploader(key="tf_upload").set_value(("broken.wav", b"definitely not audio", "audio/wav")).run()
    assert not at.exception
    assert any("Could not read audio" in e.value for e in at.error)


def test_valid_upload_renders(at, tmp_path):
    import torch

    from lib.audio import wav_bytes

    t = torch.arange(44100 * 2) / 44100
    data = wav_bytes(torch.stack([torch.sin(2 * torch.pi * 440 * t), torch.sin(2 * torch.pi * 660 * t)]) * 0.3, 44100)
    at.segmented_control(key="tf_source").set_value("upload").run()
    at.file_uploader(key="tf_upload").set_value(("tone.wav", data, "audio/wav")).run()
    assert not at.exception
    assert not at.error
    assert "`(1, 40, 101)`" in _shape_text(at)


def test_recording_renders(at):
    import torch

    from lib.audio import wav_bytes

    t = torch.arange(16000 // 2) / 16000
    data = wav_bytes(0.3 * torch.sin(2 * torch.pi * 300 * t), 16000)
    at.segmented_control(key="tf_source").set_value("record").run()
    assert not at.exception
    at.audio_input(key="tf_record").set_value(("recording.wav", data, "audio/wav")).run()
    assert not at.exception
    assert not at.error
    assert any("0.50 s, 16000 Hz" in c.value for c in at.caption)
