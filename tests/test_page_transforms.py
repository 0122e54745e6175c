"""Page tests for app_pages/transforms.py (AppTest): the Transform lab."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import metric_value

from lib.augment import AugmentConfig
from lib.dsp.features import FeatureConfig

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
    at.slider(key="tf_snr_db").set_value((15.0, 25.0))
    at.slider(key="tf_n_time_masks").set_value(1).run()
    assert not at.exception
    assert not at.success
    assert any("Training still uses the saved settings" in i.value for i in at.info)
    at.button(key="tf_use").click().run()
    assert not at.exception
    feature = FeatureConfig.from_dict(at.session_state["feature_config"])
    augment = AugmentConfig.from_dict(at.session_state["augment_config"])
    assert feature.n_mels == 64 and feature.hop_length == 160
    assert augment.noise_probability == 0.5  # a switched-on step starts at half the clips
    assert (augment.snr_db_min, augment.snr_db_max) == (15.0, 25.0)
    assert augment.n_time_masks == 1
    assert at.success


def test_domain_choice_is_shown_and_saved_for_training(at):
    at.toggle(key="tf_noise_on").set_value(True).run()
    assert not at.exception
    assert at.session_state["tf_domain"] == "spectrogram"
    assert any("cached power spectrogram" in c.value for c in at.caption)
    at.radio(key="tf_domain").set_value("waveform").run()
    assert not at.exception
    assert not any("cached power spectrogram" in c.value for c in at.caption)
    at.button(key="tf_use").click().run()
    assert AugmentConfig.from_dict(at.session_state["augment_config"]).domain == "waveform"


def test_corrupt_upload_shows_error(at):
    at.segmented_control(key="tf_source").set_value("upload").run()
    assert not at.exception
    at.file_uploader(key="tf_upload").set_value(("broken.wav", b"definitely not audio", "audio/wav")).run()
    assert not at.exception
    assert any("Could not read audio" in e.value for e in at.error)


def test_valid_upload_renders(at, tmp_path):
    import torch

    from lib.dsp.audio import wav_bytes

    t = torch.arange(44100 * 2) / 44100
    data = wav_bytes(torch.stack([torch.sin(2 * torch.pi * 440 * t), torch.sin(2 * torch.pi * 660 * t)]) * 0.3, 44100)
    at.segmented_control(key="tf_source").set_value("upload").run()
    at.file_uploader(key="tf_upload").set_value(("tone.wav", data, "audio/wav")).run()
    assert not at.exception
    assert not at.error
    assert "`(1, 40, 101)`" in _shape_text(at)


def test_recording_renders(at):
    import torch

    from lib.dsp.audio import wav_bytes

    t = torch.arange(16000 // 2) / 16000
    data = wav_bytes(0.3 * torch.sin(2 * torch.pi * 300 * t), 16000)
    at.segmented_control(key="tf_source").set_value("record").run()
    assert not at.exception
    at.audio_input(key="tf_record").set_value(("recording.wav", data, "audio/wav")).run()
    assert not at.exception
    assert not at.error
    assert any("0.50 s, 16000 Hz" in c.value for c in at.caption)


def _everything_on(at: AppTest) -> None:
    """Every augmentation of AugmentConfig on, and an envelope lifter on the features."""
    at.slider(key="tf_freq_warp").set_value(0.2)
    at.slider(key="tf_time_stretch").set_value(0.15)
    at.toggle(key="tf_reverb_on").set_value(True)
    at.toggle(key="tf_eq_on").set_value(True)
    at.toggle(key="tf_noise_on").set_value(True)
    at.slider(key="tf_gain_db").set_value(3.0)
    at.slider(key="tf_mixup_alpha").set_value(0.4)
    at.number_input(key="tf_lifter").set_value(12)
    at.run()
    at.slider(key="tf_reverb_probability").set_value(0.3)
    at.slider(key="tf_rt60_sec_max").set_value(1.2)
    at.slider(key="tf_eq_probability").set_value(0.6)
    at.slider(key="tf_eq_db").set_value(12.0)
    at.run()


def test_every_augmentation_renders_and_is_saved_for_training(at):
    _everything_on(at)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    draw = next(c.value for c in at.caption if c.value.startswith("Draw #"))
    assert "room reverb (RT60 up to 1.2 s)" in draw and "EQ " in draw
    assert "frequency × " in draw and "time × " in draw
    assert any("do not hear them" in c.value for c in at.caption)
    assert at.get("plotly_chart")  # figures drawn, the EQ curve and the mixed spectrogram among them
    keys = {chart.proto.id for chart in at.get("plotly_chart")}
    assert any("tf_eq_curve" in k for k in keys) and any("tf_spec_mixup" in k for k in keys), keys
    mix = next(c.value for c in at.caption if "the training target is" in c.value)
    assert "×" in mix
    at.button(key="tf_use").click().run()
    assert not at.exception, at.exception
    augment = AugmentConfig.from_dict(at.session_state["augment_config"])
    assert (augment.freq_warp, augment.time_stretch) == (0.2, 0.15)
    assert (augment.reverb_probability, augment.rt60_sec_max) == (0.3, 1.2)
    assert (augment.eq_probability, augment.eq_db) == (0.6, 12.0)
    assert augment.mixup_alpha == 0.4 and augment.noise_probability == 0.5 and augment.gain_db == 3.0
    assert FeatureConfig.from_dict(at.session_state["feature_config"]).lifter == 12
    assert at.success  # the saved settings are now the page's
    summary = next(c.value for c in at.caption if c.value.startswith("Training would get"))
    for text in ("frequency warp ±20%", "time stretch ±15%", "reverb 30%", "EQ 60%", "mixup α=0.4",
                 "12 cepstral coefficients"):
        assert text in summary, (text, summary)


def test_mixup_names_both_classes_and_weights(at):
    at.slider(key="tf_mixup_alpha").set_value(0.2).run()
    assert not at.exception, at.exception
    mix = next(c.value for c in at.caption if "the training target is" in c.value)
    this = at.selectbox(key="tf_class").value
    names = at.selectbox(key="tf_class").options
    others = [n for n in names if n != this and f"**{n}**" in mix]
    assert f"**{this}**" in mix and len(others) == 1, mix
    weights = re.findall(r"(\d\.\d\d) ×", mix)
    assert len(weights) == 2 and abs(sum(map(float, weights)) - 1) < 0.011 and float(weights[0]) >= 0.5, mix
    at.button(key="tf_reroll").click().run()  # a new draw keeps the page working (another partner or weight)
    assert not at.exception, at.exception
    assert any("the training target is" in c.value for c in at.caption)


def test_reverb_and_eq_change_the_augmented_audio(at):
    def augmented_audio() -> bytes:
        return at.get("audio")[1].proto.url

    plain = augmented_audio()
    at.toggle(key="tf_reverb_on").set_value(True).run()
    assert not at.exception, at.exception
    reverb = augmented_audio()
    at.toggle(key="tf_reverb_on").set_value(False)
    at.toggle(key="tf_eq_on").set_value(True).run()
    assert not at.exception, at.exception
    eq = augmented_audio()
    assert len({plain, reverb, eq}) == 3
    at.toggle(key="tf_eq_on").set_value(False)
    at.slider(key="tf_freq_warp").set_value(0.3).run()  # feature domain only: the audio stays the same
    assert augmented_audio() == plain


def test_warp_changes_the_augmented_spectrogram_only(at):
    def spectrograms() -> list:
        return [c.proto.spec for c in at.get("plotly_chart") if "tf_spec_" in c.proto.id]

    at.slider(key="tf_n_freq_masks").set_value(0)
    at.slider(key="tf_n_time_masks").set_value(0).run()
    before, after = spectrograms()
    at.slider(key="tf_freq_warp").set_value(0.3).run()
    assert not at.exception, at.exception
    _, warped_after = spectrograms()
    assert warped_after != after
    at.segmented_control(key="tf_kind").set_value("mfcc").run()  # no frequency axis: the warp is skipped
    assert not at.exception, at.exception
    assert any("frequency warp is skipped" in c.value for c in at.caption)
    draw = next(c.value for c in at.caption if c.value.startswith("Draw #"))
    assert "frequency × " not in draw


def test_lifter(at):
    at.number_input(key="tf_lifter").set_value(20).run()
    assert not at.exception, at.exception
    assert not at.error
    assert "first 20 cepstral coefficients" in _shape_text(at)
    at.number_input(key="tf_lifter").set_value(41).run()  # more than the 40 mel bands
    assert not at.exception, at.exception
    assert any("lifter" in e.value for e in at.error), [e.value for e in at.error]
    at.number_input(key="tf_lifter").set_value(20).run()
    at.segmented_control(key="tf_kind").set_value("mfcc").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]      # MFCC ignores the (disabled) lifter
    assert at.number_input(key="tf_lifter").disabled
    at.button(key="tf_use").click().run()
    assert FeatureConfig.from_dict(at.session_state["feature_config"]).lifter == 0
    at.segmented_control(key="tf_kind").set_value("linear").run()
    assert not at.exception and not at.error
    assert "first 20 cepstral coefficients" in _shape_text(at)  # the widget kept its value


def test_saved_augmentation_fills_the_widgets(app_env):
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.session_state["augment_config"] = AugmentConfig(
        freq_warp=0.1, time_stretch=0.05, reverb_probability=0.25, rt60_sec_max=0.9, eq_probability=0.4,
        eq_db=6.0, mixup_alpha=0.3).to_dict()
    app.session_state["feature_config"] = FeatureConfig(lifter=10).to_dict()
    app.run()
    assert not app.exception, app.exception
    assert app.toggle(key="tf_reverb_on").value and app.toggle(key="tf_eq_on").value
    assert app.slider(key="tf_reverb_probability").value == 0.25 and app.slider(key="tf_eq_db").value == 6.0
    assert app.number_input(key="tf_lifter").value == 10
    assert app.success  # untouched widgets = the saved settings


def _plotted(at: AppTest, key: str):
    """The z values of the heatmap in the chart ``key`` (float32, ``(bins, frames)``)."""
    import base64
    import json

    import numpy as np

    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    z = json.loads(chart.proto.spec)["data"][0]["z"]
    shape = tuple(int(n) for n in z["shape"].split(","))
    return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)


@pytest.mark.parametrize("noise", [False, True])
def test_the_augmented_spectrogram_is_the_engines_batch(at, noise):
    """What the lab plots as "Augmented" is the training engine's batch for the same draw: the page's clip and its
    batch-mate kept as lib.engine.train keeps training clips, the draw from a generator seeded with the page's seed."""
    import random

    import torch

    from lib.augment import augment_batch, draw_augment
    from lib.dsp.features import FeatureExtractor
    from lib.engine.train import _training_clips
    from ui.common import active_dataset

    if noise:  # a waveform step: the power spectrogram source
        at.toggle(key="tf_noise_on").set_value(True).run()
    at.button(key="tf_reroll").click().run()
    assert not at.exception, at.exception
    seed, feature_config = at.session_state["aug_seed"], FeatureConfig.from_dict(at.session_state["feature_config"])
    config = AugmentConfig.from_dict(at.session_state["augment_config"])
    if noise:
        config = config.replace(noise_probability=1.0)  # the preview: every step that is on, on its clip
    dataset = active_dataset()
    labels = dataset.labels.tolist()
    index = labels.index(dataset.class_names.index(at.selectbox(key="tf_class").value))
    partner = random.Random(seed).choice([i for i, y in enumerate(labels) if y != labels[index]])
    clips = _training_clips(dataset, [index, partner], FeatureExtractor(feature_config), config, 0, "cpu")
    draw = draw_augment(config, feature_config, 2, torch.Generator().manual_seed(seed))
    features, _ = augment_batch(clips, torch.arange(2), torch.eye(2), draw)
    torch.testing.assert_close(torch.from_numpy(_plotted(at, "tf_spec_Augmented").copy()), features[0, 0])
