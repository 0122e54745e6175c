"""Tests for lib.dsp.features: config, extractor and plotting axes."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import torchaudio

from lib.dsp.features import (FeatureConfig, FeatureExtractor, extract, frame_grid, frequency_axis,
                              frequency_axis_label, time_axis)

SR = 16000


def tone(freq: float, amplitude: float = 0.5, seconds: float = 1.0, sr: int = SR) -> torch.Tensor:
    """(time,) sine."""
    t = torch.arange(round(sr * seconds)) / sr
    return amplitude * torch.sin(2 * math.pi * freq * t)


# -- FeatureConfig -----------------------------------------------------------------------------------
def test_config_json_round_trip():
    for config in (FeatureConfig(), FeatureConfig(kind="mfcc", n_mfcc=13, f_max=7000.0, win_length=None, top_db=None),
                   FeatureConfig(kind="linear", power=1.0, normalization="per_bin", clip_seconds=0.5)):
        assert FeatureConfig.from_json(config.to_json()) == config
        assert FeatureConfig.from_dict(config.to_dict()) == config
    assert hash(FeatureConfig()) == hash(FeatureConfig.from_json(FeatureConfig().to_json()))


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown keys \['bogus', 'n_melz'\]"):
        FeatureConfig.from_dict({"n_mels": 40, "n_melz": 64, "bogus": 1})


@pytest.mark.parametrize("changes, field, value", [
    ({"win_length": 600}, "win_length", "600"),
    ({"hop_length": 0}, "hop_length", "0"),
    ({"hop_length": -160}, "hop_length", "-160"),
    ({"f_max": 9000.0}, "f_max", "9000.0"),
    ({"f_min": 8000.0}, "f_min", "8000.0"),
    ({"f_min": 4000.0, "f_max": 3000.0}, "f_min", "4000.0"),
    ({"n_mels": 300}, "n_mels", "300"),
    ({"n_mels": 200}, "n_mels", "200"),  # <= 257 bins, but the low mel filters fall between FFT bins
    ({"kind": "mfcc", "n_mfcc": 50}, "n_mfcc", "50"),
    ({"kind": "cqt"}, "kind", "'cqt'"),
    ({"normalization": "global"}, "normalization", "'global'"),
    ({"clip_seconds": 0.0}, "clip_seconds", "0.0"),
    ({"clip_seconds": -1.0}, "clip_seconds", "-1.0"),
    ({"power": 0.0}, "power", "0.0"),
    ({"top_db": -5.0}, "top_db", "-5.0"),
    ({"sample_rate": 16000.5}, "sample_rate", "16000.5"),
    ({"n_fft": True}, "n_fft", "True"),
    ({"lifter": -1}, "lifter", "-1"),
    ({"lifter": 41}, "lifter", "41"),
    ({"kind": "mfcc", "n_mfcc": 13, "lifter": 8}, "lifter", "8"),
    # a config.json is user input: bounds that keep one clip's features small
    ({"clip_seconds": 3600.0}, "clip_seconds", "3600.0"),
    ({"sample_rate": 10_000_000}, "sample_rate", "10000000"),
    ({"n_fft": 2**20, "win_length": None}, "n_fft", "1048576"),
    ({"kind": "linear", "n_fft": 4096, "win_length": None, "hop_length": 32, "clip_seconds": 30.0}, "hop_length",
     "32"),
])
def test_config_validation_names_field_and_value(changes, field, value):
    with pytest.raises(ValueError) as error:
        FeatureConfig(**changes)
    assert field in str(error.value) and value in str(error.value)
    with pytest.raises(ValueError, match=field):
        FeatureConfig().replace(**changes)


def test_config_derived_sizes():
    c = FeatureConfig()
    assert (c.n_samples, c.effective_win_length, c.effective_f_max, c.n_bins, c.n_frames) == (16000, 400, 8000.0, 40, 101)
    assert c.feature_shape == (1, 40, 101)
    assert FeatureConfig(win_length=None).effective_win_length == 512
    assert FeatureConfig(kind="linear").n_bins == 257
    assert FeatureConfig(kind="mfcc", n_mfcc=13).n_bins == 13
    assert c.replace(clip_seconds=0.5).n_samples == 8000


# -- FeatureExtractor ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mel", "mfcc", "linear"])
@pytest.mark.parametrize("normalization", ["none", "per_clip", "per_bin"])
def test_output_shape_dtype_and_stereo_mix(kind, normalization):
    config = FeatureConfig(kind=kind, normalization=normalization, n_mfcc=20)
    extractor = FeatureExtractor(config)
    assert extractor.config is config
    stereo = torch.randn(3, 2, config.n_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    out = extractor(stereo)
    assert out.shape == (3, *config.feature_shape) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    mono = extractor(stereo.mean(dim=1, keepdim=True))
    torch.testing.assert_close(out, mono, atol=1e-4, rtol=0)
    assert extractor(stereo.double()).dtype == torch.float32


def test_accepts_2d_and_1d_input_and_other_lengths():
    config = FeatureConfig()
    extractor = FeatureExtractor(config)
    wave = tone(440.0)
    assert extractor(wave).shape == (1, *config.feature_shape)
    assert extractor(torch.stack([wave, wave])).shape == (1, *config.feature_shape)
    assert extractor(wave[:12345][None, None]).shape == (1, 1, 40, config.frames_for(12345)) == (1, 1, 40, 12345 // 160 + 1)
    with pytest.raises(ValueError, match="shape"):
        extractor(wave.reshape(1, 1, 1, -1))


def test_n_frames_matches_output_for_odd_sizes():
    for config in (FeatureConfig(n_fft=511, win_length=None, hop_length=123, clip_seconds=0.77),
                   FeatureConfig(kind="linear", n_fft=256, win_length=200, hop_length=100, clip_seconds=0.3)):
        assert extract(torch.randn(2, 1, config.n_samples), config).shape == (2, *config.feature_shape)
        assert len(frame_grid(config)) == config.n_frames


def test_mel_peak_at_closest_filter_centre():
    for freq in (1000.0, 300.0, 3000.0):
        config = FeatureConfig(kind="mel", normalization="none")
        energy = extract(tone(freq), config)[0, 0].mean(dim=-1)
        assert int(energy.argmax()) == int(np.abs(frequency_axis(config) - freq).argmin())


def test_linear_peak_within_one_bin():
    config = FeatureConfig(kind="linear", normalization="none")
    axis = frequency_axis(config)
    energy = extract(tone(1000.0), config)[0, 0].mean(dim=-1)
    assert abs(axis[int(energy.argmax())] - 1000.0) <= axis[1] - axis[0]


def test_mfcc_matches_torchaudio_mfcc():
    config = FeatureConfig(kind="mfcc", normalization="none", n_mfcc=13)
    reference = torchaudio.transforms.MFCC(SR, 13, melkwargs=dict(
        n_fft=512, win_length=400, hop_length=160, n_mels=40, f_min=20.0, f_max=8000.0, mel_scale="htk"))
    wave = torch.randn(2, 1, SR, generator=torch.Generator().manual_seed(1)) * 0.1
    torch.testing.assert_close(extract(wave, config), reference(wave), atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("kind", ["mel", "mfcc", "linear"])
def test_batch_equals_item_by_item(kind):
    config = FeatureConfig(kind=kind)
    loud = tone(700.0, amplitude=0.9) + 0.05 * torch.randn(SR, generator=torch.Generator().manual_seed(2))
    quiet = 1e-3 * tone(2500.0) + 1e-5 * torch.randn(SR, generator=torch.Generator().manual_seed(3))
    batch = torch.stack([loud, quiet])[:, None]
    items = torch.cat([extract(batch[i:i + 1], config) for i in range(2)])
    torch.testing.assert_close(extract(batch, config), items, atol=1e-4, rtol=0)


def test_top_db_is_per_example():
    config = FeatureConfig(normalization="none", top_db=80.0)
    batch = torch.stack([tone(1000.0, amplitude=1.0), tone(1000.0, amplitude=1e-2)])[:, None]
    assert (extract(batch, config.replace(top_db=None)).amax(dim=(1, 2, 3)) -
            extract(batch, config.replace(top_db=None)).amin(dim=(1, 2, 3)) > 100).all()  # both ranges exceed 80 dB
    loud, quiet = extract(batch, config)
    assert quiet.max() == pytest.approx(loud.max().item() - 40, abs=0.1)  # 40 dB quieter tone
    assert loud.max() - loud.min() == pytest.approx(80.0, abs=1e-3)
    assert quiet.max() - quiet.min() == pytest.approx(80.0, abs=1e-3)    # clamped to its own maximum - 80,
    assert quiet.min() < loud.max() - 80 - 30                            # not to the loud clip's floor
    torch.testing.assert_close(quiet, extract(batch[1:], config)[0])


def test_module_equals_functional_and_is_cached():
    config = FeatureConfig(kind="mel", n_mels=32)
    wave = torch.randn(4, 1, SR, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(FeatureExtractor(config)(wave), extract(wave, config))
    from lib.dsp.features import _cached_extractor
    assert _cached_extractor(config, "cpu") is _cached_extractor(FeatureConfig.from_json(config.to_json()), "cpu")


def test_per_clip_and_per_bin_normalisation():
    wave = torch.stack([tone(500.0, 0.8), tone(3000.0, 0.01)])[:, None] + 1e-3 * torch.randn(2, 1, SR)
    per_clip = extract(wave, FeatureConfig(normalization="per_clip"))
    torch.testing.assert_close(per_clip.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_clip.std(dim=(1, 2, 3), correction=0), torch.ones(2), atol=1e-3, rtol=0)
    per_bin = extract(wave, FeatureConfig(normalization="per_bin"))
    torch.testing.assert_close(per_bin.mean(dim=-1), torch.zeros(2, 1, 40), atol=1e-4, rtol=0)


def test_silence_is_finite():
    for normalization in ("none", "per_clip", "per_bin"):
        assert torch.isfinite(extract(torch.zeros(2, 1, SR), FeatureConfig(normalization=normalization))).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    config = FeatureConfig()
    wave = torch.randn(8, 2, SR)
    torch.testing.assert_close(extract(wave.cuda(), config).cpu(), extract(wave, config), atol=1e-3, rtol=1e-3)


def test_speed_256_one_second_clips():
    """Sanity print, not an absolute-time assertion."""
    config = FeatureConfig()
    extractor, wave = FeatureExtractor(config), torch.randn(256, 1, SR) * 0.1
    with torch.inference_mode():
        extractor(wave[:8])
        start = time.perf_counter()
        out = extractor(wave)
        elapsed = time.perf_counter() - start
    print(f"\nmel features for 256 x 1 s clips: {elapsed * 1000:.0f} ms on {torch.get_num_threads()} threads")
    assert out.shape == (256, 1, 40, 101)


# -- axes --------------------------------------------------------------------------------------------
def test_axes():
    for kind, label in (("mel", "Mel bin centre (Hz)"), ("mfcc", "MFCC coefficient"), ("linear", "Frequency (Hz)")):
        config = FeatureConfig(kind=kind, n_mfcc=13)
        axis = frequency_axis(config)
        assert axis.shape == (config.n_bins,) and np.all(np.diff(axis) > 0)
        assert frequency_axis_label(config) == label
    mel = frequency_axis(FeatureConfig(f_min=20.0, f_max=8000.0))
    assert 20.0 < mel[0] < mel[-1] < 8000.0
    np.testing.assert_array_equal(frequency_axis(FeatureConfig(kind="mfcc", n_mfcc=13)), np.arange(13))
    linear = frequency_axis(FeatureConfig(kind="linear"))
    assert linear[0] == 0.0 and linear[-1] == 8000.0


def test_time_axis_and_frame_grid():
    config = FeatureConfig()
    times = time_axis(config, config.n_frames)
    assert times.shape == (101,) and times[0] == 0.0
    np.testing.assert_allclose(np.diff(times), config.hop_length / config.sample_rate)
    grid = frame_grid(config)
    assert len(grid) == config.n_frames
    assert grid[0] == (0.0, 200 / SR) and grid[1] == pytest.approx((0.0, 360 / SR))
    assert grid[50] == pytest.approx(((8000 - 200) / SR, (8000 + 200) / SR))
    assert grid[-1] == pytest.approx(((16000 - 200) / SR, 1.0))
    assert len(frame_grid(config, n_samples=8000)) == 8000 // 160 + 1


def test_lifter_smooths_away_harmonics_and_keeps_the_envelope():
    """A harmonic-rich tone's log-mel spectrum: liftered, its row-to-row ripple drops, its broad shape stays."""
    t = torch.arange(16000) / 16000
    harmonics = sum(torch.sin(2 * torch.pi * 200 * k * t) / k for k in range(1, 30))   # F0 200 Hz, falling tilt
    plain = FeatureExtractor(FeatureConfig(n_mels=64, normalization="none"))(harmonics)[0, 0].mean(dim=-1)
    smooth = FeatureExtractor(FeatureConfig(n_mels=64, normalization="none", lifter=12))(harmonics)[0, 0].mean(-1)
    assert smooth.shape == plain.shape == (64,)
    ripple = lambda x: (x[1:] - x[:-1]).abs().mean()  # noqa: E731
    assert ripple(smooth) < 0.5 * ripple(plain)
    assert torch.corrcoef(torch.stack([plain, smooth]))[0, 1] > 0.8
    full = FeatureExtractor(FeatureConfig(n_mels=64, normalization="none", lifter=64))(harmonics)[0, 0].mean(-1)
    assert torch.allclose(full, plain, atol=1e-3)  # every coefficient kept: the spectrum itself


@pytest.mark.parametrize("dim", [(-2, -1), -1, (1, 2, 3)])
def test_standardize_equals_the_mean_and_std_it_stands_for(dim):
    from lib.dsp.features import standardize

    x = torch.randn(6, 1, 40, 101, generator=torch.Generator().manual_seed(0)) * 20 - 40  # dB-like values
    x[0] = -80.0  # a silent clip: constant, std 0
    expected = (x - x.mean(dim=dim, keepdim=True)) / (x.std(dim=dim, keepdim=True, correction=0) + 1e-5)
    torch.testing.assert_close(standardize(x, dim), expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(standardize(x, dim)[0], torch.zeros_like(x[0]))
