"""The feature steps of augmentation, on ``(batch, 1, bins, frames)`` features: time shift as a roll of whole
frames (for features cached once), frequency warping (vocal-tract length perturbation) and time stretching as
one per-example affine resampling of the spectrogram (together they approximate speed perturbation), SpecAugment
masks, and mixup of examples and their labels.

As everywhere in :mod:`lib.augment`, ``draw_*`` functions take an explicit ``torch.Generator`` and return
parameters; the functions that apply them are deterministic.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lib.augment.config import AugmentConfig
from lib.augment.waveform import draw_shifts, draw_uniform, interp, time_shift
from lib.dsp.features import FeatureConfig, frequency_axis

__all__ = ["max_frame_shift", "draw_frame_shifts", "roll_frames", "draw_warp", "apply_warp", "warp_axis",
           "draw_feature_warp", "draw_spec_masks", "apply_spec_masks", "spec_augment", "draw_mixup",
           "draw_mixup_weights", "apply_mixup"]


# ------------------------------------------------------------------------------------------- frame shift


def max_frame_shift(config: AugmentConfig, feature_config: FeatureConfig) -> int:
    """``time_shift_sec`` in whole frames (hops), the largest roll of cached features."""
    return round(config.time_shift_sec * feature_config.sample_rate / feature_config.hop_length)


def draw_frame_shifts(batch_size: int, config: AugmentConfig, feature_config: FeatureConfig,
                      generator: torch.Generator | None = None) -> Tensor | None:
    """Each example's time shift in whole frames, uniform in ``[-max, max]`` (:func:`max_frame_shift`):
    ``(batch,)`` int64, or None when that maximum is 0 (nothing is drawn)."""
    max_frames = max_frame_shift(config, feature_config)
    return draw_shifts(batch_size, max_frames, generator) if max_frames else None


def roll_frames(features: Tensor, shift_frames: Tensor) -> Tensor:
    """Time shift on cached features: roll each example by its own whole number of frames (circularly, as the
    frames that leave at one end come back at the other). ``features (batch, 1, bins, frames)``,
    ``shift_frames (batch,)`` -> same shape. Close to a circular waveform shift by ``shift_frames * hop_length``."""
    return time_shift(features, shift_frames.to(features.device), mode="roll")


# ------------------------------------------------------------------------------------ warp and stretch


def draw_warp(batch_size: int, freq_warp: float, time_stretch: float,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Per-example frequency and time scale factors, log-uniform in [1 - x, 1 + x]. Returns two ``(batch,)``."""
    def scales(amount: float) -> Tensor:
        low, high = torch.log(torch.tensor(1 - amount)).item(), torch.log(torch.tensor(1 + amount)).item()
        return torch.exp(draw_uniform(batch_size, low, high, generator))

    return scales(freq_warp), scales(time_stretch)


def apply_warp(features: Tensor, freq_scale: Tensor, time_scale: Tensor, bin_hz: Tensor | None = None) -> Tensor:
    """Stretch each example's spectrogram along frequency and time (one ``grid_sample`` for the batch).

    A frequency scale ``s`` moves what was at ``f`` Hz to ``s * f`` Hz, as a shorter (``s > 1``) or longer vocal
    tract would (vocal-tract length perturbation); ``bin_hz`` gives each row's centre frequency
    (:func:`lib.dsp.features.frequency_axis`), so on a mel axis the move is a scaling at low frequencies and nearly a
    shift at high ones, as in Hz. Without ``bin_hz`` the rows are taken as evenly spaced from 0 Hz and content
    moves from row ``r`` to row ``s * r``. A time scale ``s`` makes the utterance ``s`` times longer (anchored at
    the centre). Edges repeat the border values.

    ``features (batch, 1, bins, frames)``, scales ``(batch,)``, ``bin_hz (bins,)`` increasing ->
    ``(batch, 1, bins, frames)``.
    """
    batch, _, n_bins, n_frames = features.shape
    freq_scale, time_scale = freq_scale.to(features), time_scale.to(features)
    rows = torch.arange(n_bins, dtype=features.dtype, device=features.device)
    if bin_hz is None:
        source_row = (rows[None, :] + 0.5) / freq_scale[:, None] - 0.5           # even rows anchored at 0 Hz
    else:
        bin_hz = bin_hz.to(features)
        source_row = interp(bin_hz[None, :] / freq_scale[:, None], bin_hz, rows)  # fractional rows, (batch, bins)
    columns = torch.arange(n_frames, dtype=features.dtype, device=features.device)
    centre = (n_frames - 1) / 2
    source_column = (columns[None, :] - centre) / time_scale[:, None] + centre     # (batch, frames)
    # grid_sample's coordinates (align_corners=False): -1 and 1 are the outer edges of the first and last cell.
    y = (2 * source_row + 1) / n_bins - 1                                            # (batch, bins)
    x = (2 * source_column + 1) / n_frames - 1                                       # (batch, frames)
    grid = torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)  # (batch, bins, frames, 2)
    return torch.nn.functional.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_axis(feature_config: FeatureConfig) -> Tensor | None:
    """``bin_hz`` for :func:`apply_warp`: each row's centre frequency in Hz (:func:`lib.dsp.features.frequency_axis`),
    or None for MFCCs and the waveform, whose rows are no frequency axis. ``(bins,)`` float32."""
    if feature_config.kind in ("mfcc", "waveform"):
        return None
    return torch.as_tensor(frequency_axis(feature_config), dtype=torch.float32)


def draw_feature_warp(batch_size: int, config: AugmentConfig, feature_config: FeatureConfig | None = None,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """:func:`draw_warp` for features made with ``feature_config``: MFCCs get a frequency scale of 1 (the time
    stretch only). Returns ``freq_scale`` and ``time_scale``, each ``(batch,)``."""
    freq_scale, time_scale = draw_warp(batch_size, config.freq_warp, config.time_stretch, generator)
    if feature_config is not None and warp_axis(feature_config) is None:
        freq_scale = torch.ones_like(freq_scale)
    return freq_scale, time_scale


# ------------------------------------------------------------------------------------------ SpecAugment


def _bands(batch_size: int, size: int, param: int, n_masks: int, generator: torch.Generator | None) -> Tensor:
    """``(batch, size)`` bool: the union of ``n_masks`` random bands of width in [0, param] per example."""
    width = torch.randint(0, min(param, size) + 1, (batch_size, n_masks), generator=generator)
    start = (torch.rand(batch_size, n_masks, generator=generator) * (size - width + 1)).floor().long()
    index = torch.arange(size)                                      # (size,)
    inside = (index >= start[..., None]) & (index < (start + width)[..., None])  # (batch, n_masks, size)
    return inside.any(dim=1)


def draw_spec_masks(batch_size: int, n_bins: int, n_frames: int, freq_mask_param: int, n_freq_masks: int,
                    time_mask_param: int, n_time_masks: int, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> Tensor:
    """Draws SpecAugment masks, independently for each example (vectorised, no loop over the batch).

    Each of the ``n_freq_masks`` (``n_time_masks``) masks has width uniform in ``[0, param]`` (capped at
    the axis size) and start uniform in ``[0, size - width]``. Drawn on the CPU with ``generator``
    (generators are device-bound), then moved to ``device``.

    Returns:
        Tensor: ``(batch, 1, n_bins, n_frames)`` bool, True = masked.
    """
    _check_mask_params(freq_mask_param, n_freq_masks, time_mask_param, n_time_masks)
    freq = _bands(batch_size, n_bins, freq_mask_param, n_freq_masks, generator)     # (batch, bins)
    time = _bands(batch_size, n_frames, time_mask_param, n_time_masks, generator)   # (batch, frames)
    return (freq[:, None, :, None] | time[:, None, None, :]).to(device)


def apply_spec_masks(features: Tensor, mask: Tensor, value: float | None = None) -> Tensor:
    """Fills masked cells.

    Args:
        features (Tensor): ``(batch, 1, bins, frames)``.
        mask (Tensor): bool, broadcastable to ``features`` (True = masked).
        value (float | None): Fill value; ``None`` means each example's mean (about 0 after per-clip
            normalisation).

    Returns:
        Tensor: ``(batch, 1, bins, frames)``, a new tensor.
    """
    fill = (features.mean(dim=(1, 2, 3), keepdim=True) if value is None
            else torch.as_tensor(value, dtype=features.dtype, device=features.device))
    return torch.where(mask.to(features.device), fill, features)


def spec_augment(features: Tensor, freq_mask_param: int = 8, n_freq_masks: int = 2, time_mask_param: int = 10,
                 n_time_masks: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """Draws and applies SpecAugment masks (fill: each example's mean).

    Args:
        features (Tensor): ``(batch, 1, bins, frames)``.

    Returns:
        Tensor: ``(batch, 1, bins, frames)``.
    """
    batch, _, bins, frames = features.shape
    mask = draw_spec_masks(batch, bins, frames, freq_mask_param, n_freq_masks, time_mask_param, n_time_masks,
                           generator=generator, device=features.device)
    return apply_spec_masks(features, mask)


def _check_mask_params(*values: int) -> None:
    names = ("freq_mask_param", "n_freq_masks", "time_mask_param", "n_time_masks")
    for name, value in zip(names, values):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"SpecAugment {name} must be an int >= 0, got {value!r}")


# ----------------------------------------------------------------------------------------------- mixup


def draw_mixup_weights(batch_size: int, alpha: float, generator: torch.Generator | None = None) -> Tensor:
    """Mixup's weight of each example itself: ``max(u, 1 - u)`` with ``u ~ Beta(alpha, alpha)``. ``(batch,)``, CPU."""
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    # torch's Beta takes no generator: seed a forked global RNG from ours, so the draw stays reproducible.
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        weight = beta.sample((batch_size,))
    return torch.maximum(weight, 1 - weight)  # the example itself dominates


def draw_mixup(batch_size: int, alpha: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mixup's draw for a batch: each example's own weight (:func:`draw_mixup_weights`) and the index of the
    example it is mixed with (a random permutation of the batch). Returns two ``(batch,)`` tensors, CPU."""
    weight = draw_mixup_weights(batch_size, alpha, generator)
    return weight, torch.randperm(batch_size, generator=generator)


def apply_mixup(features: Tensor, targets: Tensor, weight: Tensor, partner: Tensor) -> tuple[Tensor, Tensor]:
    """Mix each example with another of the batch (Zhang et al. 2018): ``weight * own + (1 - weight) * partner's``,
    features and targets alike.

    Args:
        features: ``(batch, 1, bins, frames)``.
        targets: ``(batch, n_classes)`` class probabilities (one-hot for hard labels).
        weight: ``(batch,)`` each example's own weight.
        partner: ``(batch,)`` int64, the example each one is mixed with.

    Returns:
        Mixed ``features`` and ``targets``, same shapes.
    """
    weight, partner = weight.to(features.device), partner.to(features.device)
    mixed = weight[:, None, None, None] * features + (1 - weight[:, None, None, None]) * features[partner]
    return mixed, weight[:, None] * targets + (1 - weight[:, None]) * targets[partner]
