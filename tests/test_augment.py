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


def test_warp_identity_and_frequency_scaling():
    from lib.augment import apply_warp

    features = torch.zeros(2, 1, 40, 50)
    features[:, :, 10, :] = 1.0  # energy in bin 10
    same = apply_warp(features, torch.ones(2), torch.ones(2))
    assert torch.allclose(same, features, atol=1e-5)
    up = apply_warp(features, torch.tensor([1.2, 0.8]), torch.ones(2))
    peak = up[:, 0].mean(dim=-1).argmax(dim=-1)
    assert peak[0] > 10 > peak[1]  # formants move up with a shorter vocal tract, down with a longer one


def test_time_stretch_lengthens_about_the_centre():
    from lib.augment import apply_warp

    features = torch.zeros(1, 1, 8, 101)
    features[..., 40:61] = 1.0  # an utterance of 21 frames in the middle
    long = apply_warp(features, torch.ones(1), torch.tensor([1.3]))
    active = (long[0, 0, 0] > 0.5).sum().item()
    assert 24 <= active <= 30


def test_reverb_keeps_length_and_peak_and_is_identity_when_off():
    from lib.augment import apply_reverb, draw_impulse_responses

    waveform = _batch(3)
    off = draw_impulse_responses(3, 16000, 0.3, probability=0.0)
    assert torch.allclose(apply_reverb(waveform, off), waveform, atol=1e-5)
    on = draw_impulse_responses(3, 16000, 0.3, probability=1.0, generator=torch.Generator().manual_seed(0))
    wet = apply_reverb(waveform, on)
    assert wet.shape == waveform.shape
    assert torch.allclose(wet.abs().amax(dim=-1), waveform.abs().amax(dim=-1), atol=1e-4)
    assert not torch.allclose(wet, waveform, atol=1e-3)


def test_mixup_mixes_features_and_targets_alike():
    from lib.augment import mixup

    features = torch.arange(4.0)[:, None, None, None].expand(4, 1, 2, 2).clone()
    targets = torch.eye(4)
    mixed, soft = mixup(features, targets, 0.4, torch.Generator().manual_seed(0))
    assert torch.allclose(soft.sum(1), torch.ones(4)) and (soft.max(1).values >= 0.5).all()
    # each mixed example's value is the target-weighted mean of the originals
    assert torch.allclose(mixed[:, 0, 0, 0], soft @ torch.arange(4.0), atol=1e-5)
    again = mixup(features, targets, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], mixed)


def test_warp_in_hz_moves_a_mel_row_to_the_scaled_frequency():
    from lib.augment import apply_warp
    from lib.features import frequency_axis

    config = FeatureConfig()
    bin_hz = torch.as_tensor(frequency_axis(config), dtype=torch.float32)
    for row in (5, 20, 35):
        features = torch.zeros(1, 1, config.n_bins, 4)
        features[0, 0, row] = 1.0
        moved = apply_warp(features, torch.tensor([1.2]), torch.ones(1), bin_hz)[0, 0, :, 0]
        centre_hz = float((moved * bin_hz).sum() / moved.sum())  # where the energy landed, in Hz
        # linear interpolation between mel rows: within a row's spacing of 1.2 x the original frequency
        spacing = float(bin_hz[row + 1] - bin_hz[row])
        assert abs(centre_hz - 1.2 * float(bin_hz[row])) < spacing
    same = apply_warp(features, torch.ones(1), torch.ones(1), bin_hz)
    assert torch.allclose(same, features, atol=1e-5)


def test_warp_features_leaves_mfcc_rows_alone():
    from lib.augment import warp_features

    config = FeatureConfig(kind="mfcc", n_mfcc=13)
    features = torch.randn(3, 1, 13, 50)
    warped = warp_features(features, AugmentConfig(freq_warp=0.3), torch.Generator().manual_seed(0), config)
    assert torch.allclose(warped, features, atol=1e-5)  # no time stretch asked, and MFCCs get no frequency warp


def test_eq_curve_passes_through_its_knots_and_is_flat_outside():
    from lib.augment import EQ_KNOTS_HZ, eq_curve

    gains = torch.tensor([[-6.0, 0.0, 3.0, 9.0, -3.0, 0.0, 6.0]])
    assert len(EQ_KNOTS_HZ) == gains.shape[1]
    at_knots = eq_curve(gains, torch.tensor(EQ_KNOTS_HZ))
    assert torch.allclose(at_knots, gains, atol=1e-4)
    between = eq_curve(gains, torch.tensor([500 * 2 ** 0.5, 20.0, 12000.0]))  # half an octave above 500 Hz
    assert torch.allclose(between, torch.tensor([[6.0, -6.0, 6.0]]), atol=1e-4)


def test_eq_filters_a_tone_by_the_curve_and_is_identity_when_flat():
    from lib.augment import apply_eq, eq_bin_gains

    n, rate = 16000, 16000
    t = torch.arange(n) / rate
    tone = torch.sin(2 * torch.pi * 1000 * t)[None, None].repeat(2, 1, 1)  # exactly on a knot and an FFT bin
    gains = torch.zeros(2, 7)
    gains[1, 3] = 12.0                                                     # +12 dB at 1 kHz
    out = apply_eq(tone, eq_bin_gains(gains, n, rate))
    assert torch.allclose(out[0], tone[0], atol=1e-4)
    ratio_db = 20 * torch.log10(out[1].pow(2).mean().sqrt() / tone[1].pow(2).mean().sqrt())
    assert abs(float(ratio_db) - 12.0) < 0.05


def test_eq_in_the_waveform_draw():
    config = AugmentConfig(time_shift_sec=0, eq_probability=1.0, eq_db=6.0)
    assert config.waveform_domain and "EQ" in config.summary()
    draw = draw_waveform_augment(5, 16000, 16000, config, torch.Generator().manual_seed(0))
    assert draw.eq_db.shape == (5, 7) and draw.eq_db.abs().max() <= 6.0 and draw.eq_gain.shape == (5, 8001)
    assert not torch.allclose(apply_waveform_augment(_batch(5), draw), _batch(5), atol=1e-3)
    off = draw_waveform_augment(5, 16000, 16000, config.replace(eq_probability=0.0))
    assert off.eq_db is None and torch.equal(apply_waveform_augment(_batch(5), off), _batch(5))
    with pytest.raises(ValueError, match="eq_db"):
        AugmentConfig(eq_db=40)
