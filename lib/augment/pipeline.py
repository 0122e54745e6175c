"""The augmentation pipeline: one draw of every step for a batch, then its application, stage by stage.

The training engine makes each batch with :func:`draw_augment` and :func:`augment_batch`; the Transform lab
previews one clip with :func:`preview_augment`, which calls the very same functions, so what the lab shows is what
training does. The stages, in order:

1. the source stage, by :meth:`AugmentConfig.batch_source`: features cached once and rolled by whole frames (no
   waveform step is on), power spectrograms cached once with shift, gain, noise, reverb and EQ applied to them
   (:mod:`lib.augment.power`), or waveforms with those steps (:mod:`lib.augment.waveform`) featurised again;
2. the feature stage (:mod:`lib.augment.spectrogram`): frequency warp and time stretch, then SpecAugment masks;
3. mixup of examples and their targets.

Every random number is drawn first, from one ``torch.Generator``, in that order (:class:`AugmentDraw`); applying a
draw is deterministic.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from lib.dsp.audio import from_int16, to_int16
from lib.augment.config import EQ_KNOTS_HZ, AugmentConfig
from lib.augment.power import (NoiseBank, PowerDraw, apply_power_augment, cached_noise_bank, draw_power_augment,
                               render_power_augment, signal_power)
from lib.augment.spectrogram import (apply_mixup, apply_spec_masks, apply_warp, draw_feature_warp,
                                     draw_frame_shifts, draw_mixup, draw_spec_masks, roll_frames, warp_axis)
from lib.augment.waveform import WaveformDraw, apply_waveform_augment, draw_waveform_augment, time_shift
from lib.dsp.features import FeatureConfig, FeatureExtractor

__all__ = ["AugmentDraw", "draw_augment", "TrainingClips", "augment_batch",
           "augmented_waveforms", "source_features", "feature_steps", "mix", "AugmentPreview", "preview_augment"]



@dataclass
class AugmentDraw:
    """One draw of every augmentation step for a batch, in the order the engine draws them.

    Attributes:
        source: the source stage, one of :data:`lib.augment.config.BATCH_SOURCES`.
        shift_frames: ``(batch,)`` int64 frame rolls (source ``"features"``); None: no shift.
        waveform: the waveform steps (source ``"waveform"``).
        power: the same steps on power spectrograms (source ``"power"``).
        freq_scale, time_scale: ``(batch,)`` warp factors; None when warp and stretch are off.
        masks: ``(batch, 1, bins, frames)`` bool SpecAugment masks (True: masked); None when masking is off.
        mixup_weight: ``(batch,)`` each example's own weight in mixup; None when mixup is off.
        mixup_partner: ``(batch,)`` int64, the example each one is mixed with.
    """

    source: str
    shift_frames: Tensor | None = None
    waveform: WaveformDraw | None = None
    power: PowerDraw | None = None
    freq_scale: Tensor | None = None
    time_scale: Tensor | None = None
    masks: Tensor | None = None
    mixup_weight: Tensor | None = None
    mixup_partner: Tensor | None = None


def draw_augment(config: AugmentConfig, feature_config: FeatureConfig, batch_size: int,
                 generator: torch.Generator | None = None) -> AugmentDraw:
    """Draw every step of ``config`` for a batch of ``batch_size`` clips made with ``feature_config``.

    Draws nothing for a step that is off, so the generator moves exactly as the steps that are on need.
    """
    draw = AugmentDraw(config.batch_source(feature_config.power))
    if draw.source == "features":
        draw.shift_frames = draw_frame_shifts(batch_size, config, feature_config, generator)
    elif draw.source == "power":
        draw.power = draw_power_augment(batch_size, feature_config, config, generator)
    else:
        draw.waveform = draw_waveform_augment(batch_size, feature_config.n_samples, feature_config.sample_rate,
                                              config, generator)
    if config.freq_warp or config.time_stretch:
        draw.freq_scale, draw.time_scale = draw_feature_warp(batch_size, config, feature_config, generator)
    n_bins, n_frames = feature_config.n_bins, feature_config.n_frames
    if (config.n_freq_masks and config.freq_mask_param) or (config.n_time_masks and config.time_mask_param):
        # the waveform has one row: a frequency mask would silence the whole clip
        freq_mask_param = 0 if feature_config.kind == "waveform" else min(config.freq_mask_param, n_bins)
        draw.masks = draw_spec_masks(batch_size, n_bins, n_frames, freq_mask_param,
                                     config.n_freq_masks, min(config.time_mask_param, n_frames),
                                     config.n_time_masks, generator)
    if config.mixup_alpha > 0:
        draw.mixup_weight, draw.mixup_partner = draw_mixup(batch_size, config.mixup_alpha, generator)
    return draw


@dataclass
class TrainingClips:
    """The clips batches are made from, in the form their source stage needs, on the training device.

    Attributes:
        config: the augmentation settings.
        extractor: the feature extractor.
        features: ``(n, 1, bins, frames)`` (source ``"features"``).
        power: ``(n, 1, power_bins, frames)`` power spectrograms and ``clip_power`` ``(n,)`` their clips' mean
            squares (source ``"power"``), with ``noise_bank`` (None when no clip gets noise).
        waveforms: ``(n, 1, n_samples)`` int16 (:func:`lib.dsp.audio.to_int16`; source ``"waveform"``).
    """

    config: AugmentConfig
    extractor: FeatureExtractor
    features: Tensor | None = None
    power: Tensor | None = None
    clip_power: Tensor | None = None
    noise_bank: NoiseBank | None = None
    waveforms: Tensor | None = None

    @property
    def source(self) -> str:
        """The source stage these clips are kept for (:meth:`AugmentConfig.batch_source`)."""
        return self.config.batch_source(self.extractor.config.power)

    @classmethod
    @torch.no_grad()
    def from_waveforms(cls, waveforms: Tensor, extractor: FeatureExtractor, config: AugmentConfig,
                       noise_bank: NoiseBank | None = None) -> "TrainingClips":
        """Clips from float waveforms ``(n, 1, n_samples)`` on the extractor's device (few clips: the engine
        streams a dataset into the same fields)."""
        clips = cls(config, extractor, noise_bank=noise_bank)
        if clips.source == "features":
            clips.features = extractor(waveforms)
        elif clips.source == "power":
            clips.power, clips.clip_power = extractor.power(waveforms), signal_power(waveforms)
        else:
            clips.waveforms = to_int16(waveforms)
        return clips


def augmented_waveforms(clips: TrainingClips, index: Tensor, draw: AugmentDraw) -> Tensor:
    """The waveform steps of ``draw`` on the clips at ``index (batch,)``: ``(batch, 1, n_samples)`` float."""
    return apply_waveform_augment(from_int16(clips.waveforms[index]), draw.waveform)


@torch.no_grad()
def source_features(clips: TrainingClips, index: Tensor, draw: AugmentDraw) -> Tensor:
    """Stage 1: the features of the clips at ``index (batch,)`` after the shift, gain, noise, reverb and EQ of
    ``draw``: ``(batch, 1, bins, frames)``."""
    if draw.source == "features":
        features = clips.features[index]
        return features if draw.shift_frames is None else roll_frames(features, draw.shift_frames)
    extractor = clips.extractor
    if draw.source == "power":
        return extractor.finish(apply_power_augment(clips.power[index], clips.clip_power[index], draw.power,
                                                    clips.noise_bank, extractor, clips.config.rt60_sec_max))
    return extractor(augmented_waveforms(clips, index, draw))


def feature_steps(features: Tensor, draw: AugmentDraw, bin_hz: Tensor | None) -> Tensor:
    """Stage 2: warp and stretch, then SpecAugment masks. ``(batch, 1, bins, frames)`` -> same shape; ``bin_hz``
    is :func:`lib.augment.spectrogram.warp_axis` of the features."""
    if draw.freq_scale is not None:
        features = apply_warp(features, draw.freq_scale, draw.time_scale, bin_hz)
    if draw.masks is not None:
        features = apply_spec_masks(features, draw.masks)
    return features


def augment_batch(clips: TrainingClips, index: Tensor, targets: Tensor, draw: AugmentDraw) -> tuple[Tensor, Tensor]:
    """One augmented training batch: every stage of ``draw`` on the clips at ``index``.

    Args:
        clips: the training clips.
        index: ``(batch,)`` int64 rows of ``clips``, on their device.
        targets: ``(batch, n_classes)`` class probabilities (one-hot labels).
        draw: from :func:`draw_augment` for this batch.

    Returns:
        ``features (batch, 1, bins, frames)`` and ``targets (batch, n_classes)`` (mixed by mixup).
    """
    features = feature_steps(source_features(clips, index, draw), draw, warp_axis(clips.extractor.config))
    return mix(features, targets, draw)


def mix(features: Tensor, targets: Tensor, draw: AugmentDraw) -> tuple[Tensor, Tensor]:
    """Stage 3: mixup of ``features (batch, 1, bins, frames)`` and ``targets (batch, n_classes)`` (unchanged when
    mixup is off)."""
    if draw.mixup_weight is None:
        return features, targets
    return apply_mixup(features, targets, draw.mixup_weight, draw.mixup_partner)


@dataclass
class AugmentPreview:
    """One draw of the training augmentation on a clip, stage by stage (the Transform lab).

    Tensors are the first clip's unless named ``batch_*``.

    Attributes:
        draw: the draw (of the whole preview batch).
        waveform: ``(1, n_samples)`` what you hear: the waveform steps (with source ``"features"`` the clip rolled
            by the frames' samples; with ``"power"`` the draw played on the waveform).
        clean: ``(1, bins, frames)`` the clip's features without augmentation.
        source: ``(1, bins, frames)`` after stage 1 (shift, gain, noise, reverb, EQ).
        augmented: ``(1, bins, frames)`` after stage 2 (warp, stretch, masks).
        batch_features: ``(batch, 1, bins, frames)`` after mixup: the engine's batch for this draw.
        batch_targets: ``(batch, n_classes)`` the engine's targets.
    """

    draw: AugmentDraw
    waveform: Tensor
    clean: Tensor
    source: Tensor
    augmented: Tensor
    batch_features: Tensor
    batch_targets: Tensor

    def shift_sec(self, feature_config: FeatureConfig) -> float:
        """The first clip's time shift, in seconds."""
        d, rate = self.draw, feature_config.sample_rate
        if d.source == "waveform":
            return int(d.waveform.shift[0]) / rate
        frames = d.power.shift_frames if d.source == "power" else d.shift_frames
        return 0.0 if frames is None else int(frames[0]) * feature_config.hop_length / rate

    @property
    def gain_db(self) -> float:
        """The first clip's gain in dB (0 with source ``"features"``)."""
        step = self.draw.waveform or self.draw.power
        return 0.0 if step is None else float(step.gain_db[0])

    @property
    def snr_db(self) -> float:
        """The first clip's noise SNR in dB (``inf``: no noise)."""
        step = self.draw.waveform or self.draw.power
        return float("inf") if step is None else float(step.snr_db[0])

    @property
    def reverb(self) -> bool:
        """Whether the first clip is played in a room."""
        d = self.draw
        if d.waveform is not None and d.waveform.impulse_response is not None:
            return bool((d.waveform.impulse_response[0, 0, 1:] != 0).any())
        return d.power is not None and d.power.reverb is not None and bool(d.power.reverb[0])

    @property
    def eq_db(self) -> tuple[float, ...] | None:
        """The first clip's equaliser gains at the knots in dB, or None when EQ is off."""
        step = self.draw.waveform or self.draw.power
        if step is None or step.eq_db is None:
            return None
        return tuple(round(float(g), 2) for g in step.eq_db[0])

    @property
    def scales(self) -> tuple[float, float] | None:
        """The first clip's frequency and time scale factors, or None when warp and stretch are off."""
        d = self.draw
        return None if d.freq_scale is None else (float(d.freq_scale[0]), float(d.time_scale[0]))

    @property
    def mixup_weight(self) -> float | None:
        """The first clip's own weight in mixup (None: mixup is off)."""
        return None if self.draw.mixup_weight is None else float(self.draw.mixup_weight[0])

    def steps(self, feature_config: FeatureConfig, config: AugmentConfig) -> list[str]:
        """The first clip's draw in words, one item per step (``"shift +12 ms"``, ``"gain -3.1 dB"``, ...), for
        ``config``, the augmentation previewed, on ``feature_config``'s features."""
        steps = [f"shift {1000 * self.shift_sec(feature_config):+.0f} ms", f"gain {self.gain_db:+.1f} dB",
                 f"noise at {self.snr_db:.1f} dB SNR" if math.isfinite(self.snr_db) else "no noise"]
        if self.reverb:
            steps.append(f"room reverb (RT60 up to {config.rt60_sec_max:g} s)")
        if self.eq_db is not None:
            steps.append("EQ " + " ".join(f"{round(g):+d}" for g in self.eq_db)
                         + f" dB at {EQ_KNOTS_HZ[0]:g} Hz to {EQ_KNOTS_HZ[-1] / 1000:g} kHz")
        if self.scales is not None:
            freq_scale, time_scale = self.scales
            if feature_config.kind != "mfcc" and config.freq_warp > 0:   # MFCCs have no frequency axis
                steps.append(f"frequency × {freq_scale:.3f}")
            if config.time_stretch > 0:
                steps.append(f"time × {time_scale:.3f}")
        steps.append(f"{config.n_freq_masks} frequency and {config.n_time_masks} time mask(s)")
        return steps


def mixup_partner(labels: Sequence[int], index: int, seed: int) -> int | None:
    """The preview's batch-mate for clip ``index``: a clip of another class, drawn with ``seed`` (None when every
    clip has ``index``'s class)."""
    others = [i for i, y in enumerate(labels) if y != labels[index]]
    return random.Random(seed).choice(others) if others else None


@torch.no_grad()
def preview_augment(waveforms: Tensor | Sequence[Tensor], targets: Tensor | None, feature_config: FeatureConfig,
                    config: AugmentConfig, seed: int, noise_seed: int = 0) -> AugmentPreview:
    """One draw of ``config`` on a preview batch, through the engine's own stages.

    Args:
        waveforms: ``(batch, 1, n_samples)`` float model inputs, or a list of ``(1, n_samples)``; the first is the
            clip shown, the others its batch-mates (mixup partners).
        targets: ``(batch, n_classes)`` their one-hot labels (None: each clip a class of its own).
        feature_config: the features.
        config: the augmentation (a preview usually shows :meth:`AugmentConfig.every_step_on`).
        seed: seeds the draw's generator (the engine's batch with a generator so seeded is the same batch).
        noise_seed: seeds the noise bank of the power source (the engine seeds it with the training seed).

    Returns:
        The stages for the first clip, and the whole batch as the engine makes it. With mixup and more than one
        clip, each clip is mixed with the next one (the engine draws a random batch-mate, the lab shows one).
    """
    waveforms = waveforms if isinstance(waveforms, Tensor) else torch.stack(list(waveforms))
    extractor = FeatureExtractor(feature_config)
    source = config.batch_source(feature_config.power)
    bank = (cached_noise_bank(feature_config, tuple(config.noise_kinds), noise_seed)
            if source == "power" and config.noise_probability > 0 else None)
    clips = TrainingClips.from_waveforms(waveforms, extractor, config, bank)
    batch = len(waveforms)
    targets = torch.eye(batch) if targets is None else targets
    draw = draw_augment(config, feature_config, batch, torch.Generator().manual_seed(seed))
    if draw.mixup_weight is not None and batch > 1:
        draw.mixup_partner = torch.roll(torch.arange(batch), -1)
    index = torch.arange(batch)
    stage1 = source_features(clips, index, draw)
    stage2 = feature_steps(stage1, draw, warp_axis(feature_config))
    features, mixed_targets = mix(stage2, targets, draw)
    if source == "waveform":
        heard = augmented_waveforms(clips, index, draw)[:1]
    elif source == "power":
        # The room's tail is one random room of the drawn RT60 (the power path uses its average): its own generator.
        first = PowerDraw(**{k: None if v is None else v[:1] for k, v in vars(draw.power).items()})
        heard = render_power_augment(waveforms[:1], first, bank, feature_config, config.rt60_sec_max,
                                     torch.Generator().manual_seed(seed))
    else:
        shift = 0 if draw.shift_frames is None else int(draw.shift_frames[0]) * feature_config.hop_length
        heard = time_shift(waveforms[:1], torch.tensor([shift]), mode="roll")
    return AugmentPreview(draw, heard[0], extractor(waveforms[:1])[0], stage1[0], stage2[0], features,
                          mixed_targets)
