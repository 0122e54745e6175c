"""Tests for lib.augment: settings, the waveform, power and feature steps, and the pipeline shared by the training
engine and the Transform lab."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib.augment import (AUGMENT_RANGES, NOISE_KINDS, AugmentConfig, augment_batch, draw_augment,
                         mixup_partner, preview_augment)
from lib.augment import waveform as wf
from lib.augment.spectrogram import (apply_mixup, apply_spec_masks, apply_warp, draw_feature_warp,
                                     draw_frame_shifts, draw_mixup, draw_spec_masks, roll_frames, spec_augment,
                                     warp_axis)
from lib.augment.waveform import (apply_eq, apply_reverb, apply_waveform_augment, draw_impulse_responses,
                                  draw_waveform_augment, eq_bin_gains, eq_curve, time_shift)
from lib.dsp.features import FeatureConfig, FeatureExtractor

SR = 16000


def augment_waveforms(waveform, sample_rate, config, generator=None):
    """Draw and apply the waveform steps: ``(batch, channels, time)`` -> same shape."""
    draw = draw_waveform_augment(waveform.shape[0], waveform.shape[-1], sample_rate, config, generator)
    return apply_waveform_augment(waveform, draw)


def tone(freq: float = 440.0, seconds: float = 0.5, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    return amplitude * torch.sin(2 * math.pi * freq * t)


def stereo_clip() -> torch.Tensor:
    return torch.stack([tone(440.0), tone(660.0, amplitude=0.25)])  # (2, time)


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
    shifted = roll_frames(features, draw_frame_shifts(4, AugmentConfig(time_shift_sec=0.1), config,
                                                      torch.Generator().manual_seed(0)))
    # each example is a roll of the original by at most 10 frames (0.1 s at hop 10 ms)
    for original, rolled in zip(features, shifted):
        matches = [k for k in range(-10, 11) if torch.equal(time_shift(original, k, mode="roll"), rolled)]
        assert matches


def test_spec_augment_masks_are_per_example():
    features = torch.randn(8, 1, 40, 101)
    out = spec_augment(features, 10, 1, 0, 0, torch.Generator().manual_seed(0))
    changed = (out != features).any(dim=-1)[:, 0]  # (batch, bins): which rows were masked
    widths = changed.sum(dim=1)
    assert (widths <= 10).all() and len(set(widths.tolist())) > 1
    assert torch.equal(spec_augment(features, n_freq_masks=0, n_time_masks=0), features)


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
    features = torch.zeros(2, 1, 40, 50)
    features[:, :, 10, :] = 1.0  # energy in bin 10
    same = apply_warp(features, torch.ones(2), torch.ones(2))
    assert torch.allclose(same, features, atol=1e-5)
    up = apply_warp(features, torch.tensor([1.2, 0.8]), torch.ones(2))
    peak = up[:, 0].mean(dim=-1).argmax(dim=-1)
    assert peak[0] > 10 > peak[1]  # formants move up with a shorter vocal tract, down with a longer one


def test_time_stretch_lengthens_about_the_centre():
    features = torch.zeros(1, 1, 8, 101)
    features[..., 40:61] = 1.0  # an utterance of 21 frames in the middle
    long = apply_warp(features, torch.ones(1), torch.tensor([1.3]))
    active = (long[0, 0, 0] > 0.5).sum().item()
    assert 24 <= active <= 30


def test_reverb_keeps_length_and_peak_and_is_identity_when_off():
    waveform = _batch(3)
    off = draw_impulse_responses(3, 16000, 0.3, probability=0.0)
    assert torch.allclose(apply_reverb(waveform, off), waveform, atol=1e-5)
    on = draw_impulse_responses(3, 16000, 0.3, probability=1.0, generator=torch.Generator().manual_seed(0))
    wet = apply_reverb(waveform, on)
    assert wet.shape == waveform.shape
    assert torch.allclose(wet.abs().amax(dim=-1), waveform.abs().amax(dim=-1), atol=1e-4)
    assert not torch.allclose(wet, waveform, atol=1e-3)


def test_mixup_mixes_features_and_targets_alike():
    features = torch.arange(4.0)[:, None, None, None].expand(4, 1, 2, 2).clone()
    targets = torch.eye(4)
    mixed, soft = apply_mixup(features, targets, *draw_mixup(4, 0.4, torch.Generator().manual_seed(0)))
    assert torch.allclose(soft.sum(1), torch.ones(4)) and (soft.max(1).values >= 0.5).all()
    # each mixed example's value is the target-weighted mean of the originals
    assert torch.allclose(mixed[:, 0, 0, 0], soft @ torch.arange(4.0), atol=1e-5)
    again = apply_mixup(features, targets, *draw_mixup(4, 0.4, torch.Generator().manual_seed(0)))
    assert torch.equal(again[0], mixed)


def test_warp_in_hz_moves_a_mel_row_to_the_scaled_frequency():
    config = FeatureConfig()
    bin_hz = warp_axis(config)
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


def test_mfcc_rows_get_no_frequency_warp():
    config = FeatureConfig(kind="mfcc", n_mfcc=13)
    features = torch.randn(3, 1, 13, 50)
    freq_scale, time_scale = draw_feature_warp(3, AugmentConfig(freq_warp=0.3), config, torch.Generator().manual_seed(0))
    assert warp_axis(config) is None and torch.equal(freq_scale, torch.ones(3))
    warped = apply_warp(features, freq_scale, time_scale, warp_axis(config))
    assert torch.allclose(warped, features, atol=1e-5)  # no time stretch asked, and MFCCs get no frequency warp


def test_eq_curve_passes_through_its_knots_and_is_flat_outside():
    gains = torch.tensor([[-6.0, 0.0, 3.0, 9.0, -3.0, 0.0, 6.0]])
    assert len(wf.EQ_KNOTS_HZ) == gains.shape[1]
    at_knots = eq_curve(gains, torch.tensor(wf.EQ_KNOTS_HZ))
    assert torch.allclose(at_knots, gains, atol=1e-4)
    between = eq_curve(gains, torch.tensor([500 * 2 ** 0.5, 20.0, 12000.0]))  # half an octave above 500 Hz
    assert torch.allclose(between, torch.tensor([[6.0, -6.0, 6.0]]), atol=1e-4)


def test_eq_filters_a_tone_by_the_curve_and_is_identity_when_flat():
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


# ------------------------------------------------------------------------------------ time shift


def test_draw_shifts():
    shifts = wf.draw_shifts(1000, 5, generator=torch.Generator().manual_seed(0))
    assert shifts.dtype == torch.int64 and shifts.shape == (1000,)
    assert shifts.min() == -5 and shifts.max() == 5
    torch.testing.assert_close(shifts, wf.draw_shifts(1000, 5, generator=torch.Generator().manual_seed(0)))


def test_time_shift_roll_matches_torch_roll_per_row():
    batch = torch.randn(6, 2, 50)
    shifts = torch.tensor([0, 3, -7, 50, 61, -120])
    out = wf.time_shift(batch, shifts, mode="roll")
    for i in range(len(batch)):
        torch.testing.assert_close(out[i], torch.roll(batch[i], int(shifts[i]), dims=-1))
        torch.testing.assert_close(out[i], wf.time_shift(batch[i], int(shifts[i])))
    torch.testing.assert_close(wf.time_shift(batch, 4), torch.roll(batch, 4, dims=-1))


def test_time_shift_zero_fills():
    x = torch.arange(1.0, 7.0)
    torch.testing.assert_close(wf.time_shift(x, 2, mode="zero"), torch.tensor([0.0, 0, 1, 2, 3, 4]))
    torch.testing.assert_close(wf.time_shift(x, -2, mode="zero"), torch.tensor([3.0, 4, 5, 6, 0, 0]))
    torch.testing.assert_close(wf.time_shift(x, 10, mode="zero"), torch.zeros(6))

    batch = torch.randn(5, 3, 40)
    shifts = wf.draw_shifts(5, 30, generator=torch.Generator().manual_seed(3))
    out = wf.time_shift(batch, shifts, mode="zero")
    for i in range(5):
        torch.testing.assert_close(out[i], wf.time_shift(batch[i], int(shifts[i]), mode="zero"))


def test_time_shift_rejects_mismatched_shift():
    with pytest.raises(ValueError):
        wf.time_shift(torch.zeros(4, 10), torch.zeros(3, dtype=torch.int64))


# ---------------------------------------------------------------------------------------- gain / noise


def test_apply_gain():
    x = torch.randn(2, 100)
    torch.testing.assert_close(wf.apply_gain(x, 6.0), x * 1.9953, rtol=1e-3, atol=1e-6)
    batch = torch.randn(3, 2, 100)
    gains = torch.tensor([0.0, 6.0, -20.0])
    out = wf.apply_gain(batch, gains)
    torch.testing.assert_close(out[0], batch[0])
    torch.testing.assert_close(out[1], batch[1] * 10 ** 0.3, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[2], batch[2] * 0.1, rtol=1e-5, atol=1e-6)


def test_draw_uniform():
    values = wf.draw_uniform(500, 5.0, 20.0, generator=torch.Generator().manual_seed(0))
    assert values.shape == (500,) and values.is_floating_point()
    assert values.min() >= 5.0 and values.max() < 20.0
    torch.testing.assert_close(values, wf.draw_uniform(500, 5.0, 20.0, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_make_noise_shape_rms_and_seed(kind):
    noise = wf.make_noise((3, 2, 4000), kind, generator=torch.Generator().manual_seed(0))
    assert noise.shape == (3, 2, 4000) and noise.dtype == torch.float32
    rms = noise.pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms))
    torch.testing.assert_close(noise, wf.make_noise((3, 2, 4000), kind, torch.Generator().manual_seed(0)))
    assert not torch.equal(noise, wf.make_noise((3, 2, 4000), kind, torch.Generator().manual_seed(1)))


def test_noise_spectral_slope():
    def low_high_ratio(kind: str) -> float:
        noise = wf.make_noise((8, 16000), kind, generator=torch.Generator().manual_seed(0))
        power = torch.fft.rfft(noise).abs().pow(2).mean(0)
        return (power[10:100].mean() / power[4000:8000].mean()).item()

    white, pink, brown = (low_high_ratio(kind) for kind in ("white", "pink", "brown"))
    assert 0.7 < white < 1.4
    assert pink > 10 * white
    assert brown > 10 * pink


def _snr_db(clean: torch.Tensor, noisy: torch.Tensor, dims) -> torch.Tensor:
    noise = noisy - clean
    return 10 * torch.log10(clean.pow(2).mean(dims) / noise.pow(2).mean(dims))


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_add_noise_snr(kind):
    clip = stereo_clip()
    noise = wf.make_noise(clip.shape, kind, generator=torch.Generator().manual_seed(0))
    noisy = wf.add_noise(clip, noise, 10.0)
    assert noisy.shape == clip.shape
    assert abs(_snr_db(clip, noisy, (0, 1)).item() - 10.0) < 0.5

    batch = torch.stack([clip, 0.1 * clip, 0.5 * clip.flip(-1)])  # (3, 2, time)
    snr = torch.tensor([0.0, 5.0, 20.0])
    noise = wf.make_noise(batch.shape, kind, generator=torch.Generator().manual_seed(1))
    measured = _snr_db(batch, wf.add_noise(batch, noise, snr), (1, 2))
    assert (measured - snr).abs().max() < 0.5


def test_add_noise_tiles_short_and_crops_long_noise():
    batch = torch.stack([stereo_clip(), 0.2 * stereo_clip()])  # (2, 2, 8000)
    short = wf.make_noise((3000,), "pink", generator=torch.Generator().manual_seed(0))
    noisy = wf.add_noise(batch, short, torch.tensor([3.0, 12.0]))
    assert noisy.shape == batch.shape
    assert (_snr_db(batch, noisy, (1, 2)) - torch.tensor([3.0, 12.0])).abs().max() < 0.5

    long = wf.make_noise((2, 20000), "white", generator=torch.Generator().manual_seed(0))
    noisy = wf.add_noise(batch[0], long, 6.0)
    assert noisy.shape == batch[0].shape
    assert abs(_snr_db(batch[0], noisy, (0, 1)).item() - 6.0) < 0.5


def test_add_noise_silent_signal_stays_finite():
    silent = torch.zeros(2, 1, 100)
    out = wf.add_noise(silent, torch.randn(2, 1, 100), torch.tensor([10.0, 0.0]))
    assert torch.isfinite(out).all()
    assert out.abs().max() == 0


# -- SpecAugment masks -------------------------------------------------------------------------------------
def masks(seed: int, batch: int = 16, **params) -> torch.Tensor:
    kwargs = dict(freq_mask_param=8, n_freq_masks=2, time_mask_param=10, n_time_masks=2) | params
    return draw_spec_masks(batch, 40, 101, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_masks_reproducible_and_differ_between_examples():
    a, b = masks(0), masks(0)
    assert a.shape == (16, 1, 40, 101) and a.dtype == torch.bool
    assert torch.equal(a, b) and not torch.equal(a, masks(1))
    assert len({tuple(m.flatten().tolist()) for m in a}) > 8


@pytest.mark.parametrize("axis", ["freq", "time"])
def test_single_mask_is_one_contiguous_band(axis):
    param = 7
    if axis == "freq":
        m = masks(3, batch=64, freq_mask_param=param, n_freq_masks=1, n_time_masks=0)[:, 0]  # (batch, bins, frames)
    else:
        m = masks(3, batch=64, time_mask_param=param, n_time_masks=1, n_freq_masks=0)[:, 0].transpose(1, 2)
    widths = []
    for example in m:  # (rows, cols): each masked row is masked in every column
        rows = example.any(dim=1)
        assert torch.equal(rows, example.all(dim=1))
        index = rows.nonzero().flatten()
        if len(index):
            assert torch.equal(index, torch.arange(int(index[0]), int(index[0]) + len(index)))
        widths.append(len(index))
    assert max(widths) <= param and len(set(widths)) > 2  # widths vary between examples


def test_zero_param_or_zero_masks_mask_nothing():
    assert not masks(0, freq_mask_param=0, time_mask_param=0).any()
    assert not masks(0, n_freq_masks=0, n_time_masks=0).any()


def test_apply_and_spec_augment():
    features = torch.randn(4, 1, 40, 101, generator=torch.Generator().manual_seed(5)) + torch.arange(4.0).view(4, 1, 1, 1)
    mask = masks(2, batch=4)
    out = apply_spec_masks(features, mask)
    means = features.mean(dim=(1, 2, 3))
    for i in range(4):
        torch.testing.assert_close(out[i][mask[i]], means[i].expand(int(mask[i].sum())))
        assert torch.equal(out[i][~mask[i]], features[i][~mask[i]])
    assert (apply_spec_masks(features, mask, value=-3.0)[mask] == -3.0).all()
    seeded = spec_augment(features, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(seeded, out)


@pytest.mark.parametrize("name", ["freq_mask_param", "n_freq_masks", "time_mask_param", "n_time_masks"])
def test_spec_augment_validation(name):
    with pytest.raises(ValueError, match=rf"{name}.*-1"):
        spec_augment(torch.zeros(1, 1, 40, 101), **{name: -1})


# -- settings --------------------------------------------------------------------------------------------


def test_every_numeric_setting_has_one_range_and_the_config_enforces_its_limits():
    numeric = {name for name, value in AugmentConfig().to_dict().items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    assert numeric - {"snr_db_min", "snr_db_max"} == set(AUGMENT_RANGES) - {"snr_db"}
    for name, bounds in AUGMENT_RANGES.items():
        if name == "snr_db":
            continue
        AugmentConfig(**{name: bounds.high})               # an editor's whole scale is valid
        with pytest.raises(ValueError, match=name):
            AugmentConfig(**{name: bounds.low - 1})
        if bounds.limit is not None:
            with pytest.raises(ValueError, match=name):
                AugmentConfig(**{name: bounds.limit + (0 if bounds.limit_excluded else 0.01)})


def test_every_step_on_sets_the_shares_of_the_steps_that_are_on():
    config = AugmentConfig(noise_probability=0.3, eq_probability=0.2).every_step_on()
    assert (config.noise_probability, config.eq_probability, config.reverb_probability) == (1.0, 1.0, 0.0)


# -- the pipeline: the engine's batch and the lab's preview ------------------------------------------------

SOURCES = {
    "features": AugmentConfig(freq_warp=0.1, time_stretch=0.1, mixup_alpha=0.3),
    "power": AugmentConfig(noise_probability=1.0, reverb_probability=1.0, eq_probability=1.0, gain_db=6.0,
                           freq_warp=0.1, mixup_alpha=0.3),
    "waveform": AugmentConfig(noise_probability=1.0, reverb_probability=1.0, eq_probability=1.0, gain_db=6.0,
                              time_stretch=0.1, mixup_alpha=0.3, domain="waveform"),
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_the_lab_preview_is_the_engines_batch_for_the_same_draw(tiny_dataset, source):
    """The Transform lab's preview (preview_augment) equals what the training engine makes from the same clips
    with the same seed: its clips as the engine keeps them (lib.engine.train), then augment_batch."""
    from lib.engine.train import _training_clips

    config, feature_config = SOURCES[source], FeatureConfig()
    assert config.batch_source() == source
    indices = np.array([3, 40])                                     # two clips of two classes
    waveforms = tiny_dataset.to_tensor(feature_config.sample_rate, feature_config.n_samples, indices)
    targets = F.one_hot(torch.as_tensor(tiny_dataset.labels[indices]), tiny_dataset.n_classes).float()
    preview = preview_augment(waveforms, targets, feature_config, config, seed=5)

    extractor = FeatureExtractor(feature_config)
    clips = _training_clips(tiny_dataset, indices, extractor, config, seed=0, device="cpu")
    draw = draw_augment(config, feature_config, 2, torch.Generator().manual_seed(5))
    draw.mixup_partner = preview.draw.mixup_partner                # the lab pairs each clip with the next one
    features, mixed = augment_batch(clips, torch.arange(2), targets, draw)
    torch.testing.assert_close(preview.batch_features, features, rtol=0, atol=0)
    torch.testing.assert_close(preview.batch_targets, mixed, rtol=0, atol=0)
    assert preview.waveform.shape == (1, feature_config.n_samples) and preview.augmented.shape == (1, 40, 101)
    assert not torch.equal(preview.augmented, preview.clean)


def test_the_preview_of_cached_features_rolls_frames_as_training_does():
    """With no waveform step on, training rolls cached features circularly by whole frames: the preview shows that
    (frames that leave one end come back at the other) and plays the clip rolled by as many samples."""
    config, feature_config = AugmentConfig(time_shift_sec=0.1, n_freq_masks=0, n_time_masks=0), FeatureConfig()
    clip = (tone(440.0, seconds=1.0) * torch.linspace(0, 1, SR))[None, None]             # (1, 1, n_samples)
    for seed in range(20):
        preview = preview_augment(clip, None, feature_config, config, seed)
        frames = int(preview.draw.shift_frames[0])
        if frames:
            break
    torch.testing.assert_close(preview.source, time_shift(preview.clean, frames, mode="roll"), rtol=0, atol=0)
    assert preview.shift_sec(feature_config) == frames * feature_config.hop_length / SR
    torch.testing.assert_close(preview.waveform, time_shift(clip[0], frames * feature_config.hop_length, "roll"))


def test_draw_augment_draws_nothing_for_steps_that_are_off():
    config = AugmentConfig(time_shift_sec=0, n_freq_masks=0, n_time_masks=0)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    draw = draw_augment(config, FeatureConfig(), 8, generator)
    assert torch.equal(generator.get_state(), state)
    assert draw.source == "features" and draw.shift_frames is None and draw.masks is None


def test_the_preview_draw_in_words_and_its_mixup_partner():
    config, feature_config = AugmentConfig(time_shift_sec=0.1, n_freq_masks=2, n_time_masks=1), FeatureConfig()
    clip = tone(440.0, seconds=1.0)[None]                                                     # (1, n_samples)
    preview = preview_augment([clip, clip], None, feature_config, config, seed=3)             # a list of clips
    assert preview.batch_features.shape[0] == 2
    steps = preview.steps(feature_config, config)
    assert steps[:3] == [f"shift {1000 * preview.shift_sec(feature_config):+.0f} ms", "gain +0.0 dB", "no noise"]
    assert steps[-1] == "2 frequency and 1 time mask(s)"
    assert mixup_partner([0, 0, 1, 1], 0, seed=1) in (2, 3) and mixup_partner([0, 0], 1, seed=1) is None
