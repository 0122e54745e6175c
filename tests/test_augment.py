import pytest
import torch

from lib.audio import time_shift
from lib.augment import (AugmentConfig, apply_waveform_augment, augment_features, augment_waveforms,
                         draw_waveform_augment, shift_frames)
from lib.features import FeatureConfig, FeatureExtractor


def _batch(batch=6, n=16000):
    t = torch.arange(n) / 16000
    return (0.5 * torch.sin(2 * torch.pi * 440 * t)).expand(batch, 1, n).clone()


def test_same_generator_seed_same_augmentation():
    config = AugmentConfig(noise_probability=0.5, gain_db=6)
    a = augment_waveforms(_batch(), 16000, config, torch.Generator().manual_seed(1))
    b = augment_waveforms(_batch(), 16000, config, torch.Generator().manual_seed(1))
    c = augment_waveforms(_batch(), 16000, config, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_draw_then_apply_is_deterministic_and_per_example():
    config = AugmentConfig(time_shift_sec=0.1, noise_probability=1.0, snr_db_min=10, snr_db_max=10)
    draw = draw_waveform_augment(6, 16000, 16000, config, torch.Generator().manual_seed(0))
    assert draw.shift.shape == (6,) and draw.shift.abs().max() <= 1600 and len(set(draw.shift.tolist())) > 1
    once, twice = apply_waveform_augment(_batch(), draw), apply_waveform_augment(_batch(), draw)
    assert torch.equal(once, twice)
    # measured SNR of each example ~ 10 dB (noise added after the shift and gain)
    clean = apply_waveform_augment(_batch(), type(draw)(draw.shift, draw.gain_db, torch.full((6,), float("inf")),
                                                        draw.noise))
    noise = once - clean
    snr = 10 * torch.log10(clean.pow(2).mean(dim=(1, 2)) / noise.pow(2).mean(dim=(1, 2)))
    assert torch.allclose(snr, torch.full((6,), 10.0), atol=0.5)


def test_noise_probability_zero_and_one():
    off = augment_waveforms(_batch(), 16000, AugmentConfig(time_shift_sec=0, noise_probability=0.0))
    assert torch.equal(off, _batch())
    config = AugmentConfig(time_shift_sec=0, noise_probability=1.0)
    on = augment_waveforms(_batch(), 16000, config, torch.Generator().manual_seed(0))
    assert ((on - _batch()).abs().amax(dim=(1, 2)) > 0).all()


def test_frame_shift_equals_rolled_features():
    config = FeatureConfig()
    features = FeatureExtractor(config)(_batch(4) * torch.linspace(0, 1, 16000))
    shifted = shift_frames(features, 0.1, config, torch.Generator().manual_seed(0))
    # each example is a roll of the original by at most 10 frames (0.1 s at hop 10 ms)
    for original, rolled in zip(features, shifted):
        matches = [k for k in range(-10, 11) if torch.equal(time_shift(original, k, mode="roll"), rolled)]
        assert matches


def test_spec_augment_masks_are_per_example():
    features = torch.randn(8, 1, 40, 101)
    config = AugmentConfig(freq_mask_param=10, n_freq_masks=1, time_mask_param=0, n_time_masks=0)
    out = augment_features(features, config, torch.Generator().manual_seed(0))
    changed = (out != features).any(dim=-1)[:, 0]  # (batch, bins): which rows were masked
    widths = changed.sum(dim=1)
    assert (widths <= 10).all() and len(set(widths.tolist())) > 1
    none = AugmentConfig(n_freq_masks=0, n_time_masks=0)
    assert torch.equal(augment_features(features, none), features)


@pytest.mark.parametrize("bad", [dict(time_shift_sec=-1), dict(noise_probability=2), dict(snr_db_min=30, snr_db_max=5),
                                 dict(noise_kinds=("purple",)), dict(n_freq_masks=-1)])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError):
        AugmentConfig(**bad)


def test_round_trip_and_domain():
    config = AugmentConfig(noise_probability=0.3)
    assert AugmentConfig.from_dict(config.to_dict()) == config
    assert config.waveform_domain and not AugmentConfig().waveform_domain
