"""Training-time augmentation, batched on the training device.

Waveform domain (``(batch, channels, time)``): time shift, gain, background noise at a random SNR.
Feature domain (``(batch, 1, bins, frames)``): time shift as a frame roll, SpecAugment masks.

Randomness follows one pattern: ``draw_*`` functions take an explicit ``torch.Generator`` and return plain
tensors of parameters; ``apply`` functions are deterministic. A page can keep a draw and show the same
augmentation on every rerun; a test can pin it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

import torch
from torch import Tensor

from lib.audio import NOISE_KINDS, add_noise, apply_gain, draw_shifts, draw_uniform, make_noise, time_shift
from lib.features import FeatureConfig, apply_spec_masks, draw_spec_masks

__all__ = ["AugmentConfig", "WaveformDraw", "draw_waveform_augment", "apply_waveform_augment",
           "augment_waveforms", "shift_frames", "augment_features"]


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings, read top to bottom; all off gives the clean pipeline.

    Attributes:
        time_shift_sec: maximum shift either way, in seconds (0: off).
        noise_probability: fraction of examples that get background noise (0: off).
        snr_db_min: lowest SNR of that noise, in dB.
        snr_db_max: highest SNR, in dB.
        noise_kinds: noise colours drawn from (white, pink, brown).
        gain_db: maximum gain either way, in dB (0: off).
        freq_mask_param: SpecAugment: widest frequency mask, in bins.
        n_freq_masks: SpecAugment: frequency masks per example.
        time_mask_param: SpecAugment: widest time mask, in frames.
        n_time_masks: SpecAugment: time masks per example.
    """

    time_shift_sec: float = 0.1
    noise_probability: float = 0.0
    snr_db_min: float = 5.0
    snr_db_max: float = 30.0
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    gain_db: float = 0.0
    freq_mask_param: int = 8
    n_freq_masks: int = 2
    time_mask_param: int = 10
    n_time_masks: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_kinds", tuple(self.noise_kinds))
        for name in ("time_shift_sec", "gain_db", "freq_mask_param", "n_freq_masks", "time_mask_param", "n_time_masks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.noise_probability <= 1:
            raise ValueError(f"noise_probability must be in [0, 1], got {self.noise_probability}")
        if self.snr_db_min > self.snr_db_max:
            raise ValueError(f"snr_db_min ({self.snr_db_min}) is above snr_db_max ({self.snr_db_max})")
        unknown = set(self.noise_kinds) - set(NOISE_KINDS)
        if unknown or not self.noise_kinds:
            raise ValueError(f"noise_kinds must be some of {NOISE_KINDS}, got {self.noise_kinds}")

    @property
    def waveform_domain(self) -> bool:
        """True when some step needs the waveform (noise, gain); time shift alone is done on frames."""
        return self.noise_probability > 0 or self.gain_db > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AugmentConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown AugmentConfig keys: {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "AugmentConfig":
        return replace(self, **changes)


@dataclass
class WaveformDraw:
    """One draw of waveform augmentation parameters for a batch (all ``(batch,)`` but ``noise``).

    Attributes:
        shift: time shift in samples (int64).
        gain_db: gain in dB.
        snr_db: SNR in dB; ``inf`` where the example gets no noise.
        noise: ``(batch, 1, time)`` unit-RMS noise.
    """

    shift: Tensor
    gain_db: Tensor
    snr_db: Tensor
    noise: Tensor


def draw_waveform_augment(batch_size: int, n_samples: int, sample_rate: int, config: AugmentConfig,
                          generator: torch.Generator | None = None) -> WaveformDraw:
    """Draw every random parameter of :func:`apply_waveform_augment` for a batch (on the generator's device)."""
    shift = draw_shifts(batch_size, round(config.time_shift_sec * sample_rate), generator)
    gain = draw_uniform(batch_size, -config.gain_db, config.gain_db, generator)
    snr = draw_uniform(batch_size, config.snr_db_min, config.snr_db_max, generator)
    noisy = torch.rand(batch_size, generator=generator, device=snr.device) < config.noise_probability
    snr = torch.where(noisy, snr, torch.full_like(snr, float("inf")))
    kind_index = torch.randint(len(config.noise_kinds), (batch_size,), generator=generator, device=snr.device)
    noise = torch.zeros(batch_size, 1, n_samples, device=snr.device)
    if bool(noisy.any()):
        for k, kind in enumerate(config.noise_kinds):  # a loop over noise colours, not over examples
            rows = noisy & (kind_index == k)
            if bool(rows.any()):
                noise[rows] = make_noise((int(rows.sum()), 1, n_samples), kind, generator).to(noise.device)
    return WaveformDraw(shift=shift, gain_db=gain, snr_db=snr, noise=noise)


def apply_waveform_augment(waveform: Tensor, draw: WaveformDraw) -> Tensor:
    """Apply a :class:`WaveformDraw`. ``waveform (batch, channels, time)`` -> same shape, on its device."""
    device = waveform.device
    out = time_shift(waveform, draw.shift.to(device), mode="zero")
    out = apply_gain(out, draw.gain_db.to(device))
    noisy = torch.isfinite(draw.snr_db)
    if bool(noisy.any()):
        snr = torch.where(noisy, draw.snr_db, torch.zeros_like(draw.snr_db)).to(device)
        with_noise = add_noise(out, draw.noise.to(device), snr)
        out = torch.where(noisy.to(device)[:, None, None], with_noise, out)
    return out


def augment_waveforms(waveform: Tensor, sample_rate: int, config: AugmentConfig,
                      generator: torch.Generator | None = None) -> Tensor:
    """Draw and apply waveform augmentation. ``(batch, channels, time)`` -> same shape."""
    draw = draw_waveform_augment(waveform.shape[0], waveform.shape[-1], sample_rate, config, generator)
    return apply_waveform_augment(waveform, draw)


def shift_frames(features: Tensor, max_shift_sec: float, feature_config: FeatureConfig,
                 generator: torch.Generator | None = None) -> Tensor:
    """Time shift on cached features: roll each example by its own whole number of frames.

    ``features (batch, 1, bins, frames)`` -> same shape. Equivalent to a circular waveform shift rounded to the hop.
    """
    max_frames = round(max_shift_sec * feature_config.sample_rate / feature_config.hop_length)
    if max_frames == 0:
        return features
    shifts = draw_shifts(features.shape[0], max_frames, generator).to(features.device)
    return time_shift(features, shifts, mode="roll")


def augment_features(features: Tensor, config: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """SpecAugment frequency and time masks, drawn independently per example. ``(batch, 1, bins, frames)``."""
    if not (config.n_freq_masks and config.freq_mask_param) and not (config.n_time_masks and config.time_mask_param):
        return features
    batch, _, n_bins, n_frames = features.shape
    mask = draw_spec_masks(batch, n_bins, n_frames, min(config.freq_mask_param, n_bins), config.n_freq_masks,
                           min(config.time_mask_param, n_frames), config.n_time_masks, generator,
                           device=features.device)
    return apply_spec_masks(features, mask)
