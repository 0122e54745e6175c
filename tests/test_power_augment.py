"""lib.augment.power: the waveform steps on cached power spectrograms, held to the waveform path.

Tolerances are in dB of the power spectrogram after a per-clip level offset (which the features' per-clip
normalisation removes anyway), measured over 32 built-in clips: the fast path must differ from the exact waveform
path by less than two exact draws of noise differ from each other.
"""

import copy

import pytest
import torch

from lib.augment import AugmentConfig
from lib.augment.power import (NoiseBank, apply_power_augment, draw_power_augment, render_power_augment,
                               reverb_envelope, signal_power)
from lib.augment.waveform import time_shift
from lib.dsp.features import FeatureConfig, FeatureExtractor

CONFIG = FeatureConfig()


@pytest.fixture(scope="module")
def setup(tiny_dataset):
    extractor = FeatureExtractor(CONFIG)
    waveforms = tiny_dataset.to_tensor(CONFIG.sample_rate, CONFIG.n_samples)[:32]
    bank = NoiseBank(extractor, ("white", "pink", "brown"), n_per_kind=16, seed=0)
    return extractor, waveforms, extractor.power(waveforms), signal_power(waveforms), bank


def _draw(config: AugmentConfig, seed: int = 1, n: int = 32):
    return draw_power_augment(n, CONFIG, config, torch.Generator().manual_seed(seed), n_noise_per_kind=16)


def _db_gap(extractor, a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean |dB difference| of two power spectrograms after removing each clip's mean offset."""
    gap = extractor.to_db(a) - extractor.to_db(b)
    return (gap - gap.mean(dim=(1, 2, 3), keepdim=True)).abs().mean().item()


def _fast_and_exact(setup, config: AugmentConfig):
    extractor, waveforms, power, clip_power, bank = setup
    draw = _draw(config)
    fast = apply_power_augment(power, clip_power, draw, bank, extractor, config.rt60_sec_max)
    rendered = render_power_augment(waveforms, draw, bank, CONFIG, config.rt60_sec_max, torch.Generator().manual_seed(2))
    return draw, fast, extractor.power(rendered)


def test_power_then_finish_is_the_feature_extractor(tiny_dataset):
    waveforms = tiny_dataset.to_tensor(CONFIG.sample_rate, CONFIG.n_samples)[:4]
    for kind in ("mel", "mfcc", "linear"):
        extractor = FeatureExtractor(FeatureConfig(kind=kind))
        power = extractor.power(waveforms)
        assert power.shape == (4, 1, extractor.config.power_bins, extractor.config.n_frames)
        assert torch.equal(extractor.finish(power), extractor(waveforms))


def test_nothing_on_changes_nothing(setup):
    extractor, _, power, clip_power, bank = setup
    draw = _draw(AugmentConfig(time_shift_sec=0.0))
    assert torch.equal(apply_power_augment(power, clip_power, draw, bank, extractor), power)


def test_gain_is_exact_and_invisible_after_per_clip_normalisation(setup):
    extractor, _, power, clip_power, bank = setup
    draw = _draw(AugmentConfig(time_shift_sec=0.0, gain_db=12.0))
    out = apply_power_augment(power, clip_power, draw, bank, extractor)
    expected = power * 10 ** (draw.gain_db / 10)[:, None, None, None]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(extractor.finish(out), extractor.finish(power), atol=1e-4, rtol=0)


def test_shift_equals_a_waveform_shift_by_whole_frames(setup):
    extractor, waveforms, power, clip_power, bank = setup
    config = AugmentConfig(time_shift_sec=0.1)
    draw, fast, exact = _fast_and_exact(setup, config)
    assert draw.shift_frames.abs().max() <= 10 and (draw.shift_frames != 0).any()
    # Frames whose window does not reach a shifted-in edge are the same numbers.
    margin = CONFIG.n_fft // CONFIG.hop_length + 1
    inner = slice(10 + margin, CONFIG.n_frames - 10 - margin)
    torch.testing.assert_close(fast[..., inner], exact[..., inner], rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 30.0])
def test_noise_is_closer_to_the_waveform_path_than_two_noise_draws(setup, snr_db):
    extractor, waveforms, power, clip_power, bank = setup
    config = AugmentConfig(time_shift_sec=0.0, noise_probability=1.0, snr_db_min=snr_db, snr_db_max=snr_db)
    draw, fast, exact = _fast_and_exact(setup, config)
    other = copy.deepcopy(draw)
    other.noise_index = (draw.noise_index + 1) % len(bank)
    exact_other = extractor.power(render_power_augment(waveforms, other, bank, CONFIG))
    gap, spread = _db_gap(extractor, fast, exact), _db_gap(extractor, exact_other, exact)
    assert gap < 2.0 and gap < spread, (gap, spread)
    if snr_db <= 10:  # the level (at 30 dB the waveform's signal x noise cross term outweighs the noise's power)
        added = (fast - power).sum(dim=(1, 2, 3)) / (exact - extractor.power(waveforms)).sum(dim=(1, 2, 3))
        assert (added - 1).abs().median() < 0.2


def test_reverb_is_close_to_the_waveform_path_and_decays_at_its_rt60(setup):
    extractor, *_ = setup
    config = AugmentConfig(time_shift_sec=0.0, reverb_probability=1.0, rt60_sec_max=0.6)
    draw, fast, exact = _fast_and_exact(setup, config)
    assert _db_gap(extractor, fast, exact) < 2.0
    # A 50 ms burst of noise, then silence: the tail falls at 60 dB per RT60.
    burst = torch.zeros(1, 1, CONFIG.n_samples)
    burst[..., 2000:2800] = torch.randn(800, generator=torch.Generator().manual_seed(0))
    one = copy.deepcopy(draw)
    for name in ("shift_frames", "gain_db", "snr_db", "noise_index", "noise_roll", "rt60_sec", "drr_db", "reverb"):
        setattr(one, name, getattr(draw, name)[:1])
    one.rt60_sec, one.drr_db = torch.tensor([0.4]), torch.tensor([0.0])
    out = apply_power_augment(extractor.power(burst), signal_power(burst), one, None, extractor, 0.6)
    level = 10 * torch.log10(out[0, 0].sum(dim=0))                                   # dB per frame
    frames_per_sec = CONFIG.sample_rate / CONFIG.hop_length
    slope = (level[40] - level[25]) / 15                                              # dB per frame, in the tail
    assert slope.item() == pytest.approx(-60 / (0.4 * frames_per_sec), rel=0.1)


def test_reverb_envelope_energy():
    envelope = reverb_envelope(torch.tensor([0.2, 0.6]), torch.tensor([0.0, 10.0]), CONFIG, 0.6)
    assert envelope.shape[0] == 2 and (envelope >= 0).all()
    torch.testing.assert_close(envelope.sum(dim=1), torch.tensor([2.0, 1.1]), rtol=1e-4, atol=0)


def test_equaliser_is_close_to_the_waveform_path(setup):
    extractor, *_ = setup
    _, fast, exact = _fast_and_exact(setup, AugmentConfig(time_shift_sec=0.0, eq_probability=1.0, eq_db=10.0))
    assert _db_gap(extractor, fast, exact) < 0.5


def test_draws_are_reproducible_and_stay_in_range(setup):
    config = AugmentConfig(time_shift_sec=0.1, gain_db=6, noise_probability=0.5, reverb_probability=0.5,
                           eq_probability=0.5)
    a, b = _draw(config, seed=5), _draw(config, seed=5)
    for name in ("shift_frames", "gain_db", "snr_db", "noise_index", "noise_roll", "rt60_sec", "drr_db", "reverb",
                 "eq_db"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.noise_index >= 0).all() and (a.noise_index < 3 * 16).all()
    assert ((a.rt60_sec >= 0.1) & (a.rt60_sec <= 0.6)).all()
    assert torch.isinf(a.snr_db).any() and torch.isfinite(a.snr_db).any()


def test_noise_bank_rows_are_their_seeded_noise(setup):
    extractor, _, _, _, bank = setup
    index = torch.tensor([0, 17, 47])
    waveforms = bank.waveforms(index)
    assert torch.equal(waveforms, bank.waveforms(index))
    torch.testing.assert_close(waveforms.pow(2).mean(dim=-1), torch.ones(3, 1), rtol=1e-4, atol=0)
    torch.testing.assert_close(bank.power[index], extractor.power(waveforms))


def test_a_shift_moves_noise_as_the_waveform_path_does(setup):
    """The bank's roll in frames is the waveform's roll by frames x hop (the same noise, heard and seen)."""
    extractor, _, _, _, bank = setup
    noise = bank.waveforms(torch.tensor([3]))
    rolled = extractor.power(time_shift(noise, torch.tensor([7 * CONFIG.hop_length]), mode="roll"))
    inner = slice(12, CONFIG.n_frames - 12)
    torch.testing.assert_close(time_shift(bank.power[3:4], torch.tensor([7]), mode="roll")[..., inner],
                               rolled[..., inner], rtol=1e-3, atol=1e-6)
