"""Training-time augmentation, batched on the training device: one pipeline for the engine and the Transform lab.

Modules, in the order a batch goes through them:

* :mod:`lib.augment.config`: :class:`AugmentConfig`, the range of each setting;
* :mod:`lib.augment.waveform`: time shift, gain, noise, reverb and EQ on waveforms ``(batch, channels, time)``;
* :mod:`lib.augment.power`: the same steps on cached power spectrograms (the fast default);
* :mod:`lib.augment.spectrogram`: frame roll, warp and stretch, SpecAugment masks and mixup on features
  ``(batch, 1, bins, frames)``;
* :mod:`lib.augment.pipeline`: :func:`draw_augment` draws every step for a batch, :func:`augment_batch` applies
  it (the engine), :func:`preview_augment` shows it stage by stage (the Transform lab).

Randomness is drawn first, from an explicit ``torch.Generator``, and applied deterministically, so a page can keep
a draw and a test can pin it.
"""

from lib.augment.config import (AUGMENT_DOMAINS, AUGMENT_RANGES, BATCH_SOURCES, EQ_KNOTS_HZ, NOISE_KINDS,
                                AugmentConfig, SettingRange)
from lib.augment.pipeline import (AugmentDraw, AugmentPreview, TrainingClips, augment_batch, draw_augment,
                                  mixup_partner, preview_augment)

__all__ = ["AUGMENT_DOMAINS", "AUGMENT_RANGES", "BATCH_SOURCES", "EQ_KNOTS_HZ", "NOISE_KINDS", "AugmentConfig",
           "SettingRange", "AugmentDraw", "AugmentPreview", "TrainingClips", "augment_batch",
           "draw_augment", "mixup_partner", "preview_augment"]
