"""Answering "nothing heard": a background class, a confidence threshold, and takes of background to learn it from.

A classifier always names one of its classes, so silence or room noise would otherwise come out as the likeliest
word. Two guards, used by the Record page's live test:

1. a *background class* (``_silence_`` in the built-in set, ``background`` on the Record page, ...): when it wins,
   the answer is "nothing heard";
2. a *confidence threshold*: when the winning class's probability is below :data:`CONFIDENCE_THRESHOLD`, the
   model is not sure of any word, and the answer is "nothing heard" too.

:func:`background_clips` makes takes of silence and quiet noise (the built-in set's ``_silence_`` recipe), so that
a user's own dataset can get a background class in one click.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from lib.data.synth.builtin import _colored_noise

__all__ = ["CONFIDENCE_THRESHOLD", "BACKGROUND_CLASSES", "NOTHING_HEARD", "is_background", "heard",
           "background_clips"]

#: Below this probability of the likeliest class the answer is "nothing heard". With a background class the model
#: has somewhere to put noise; without one, an answer under even odds is more often a guess than a word.
CONFIDENCE_THRESHOLD = 0.5
#: Class names (compared without case) that mean "no word": silence, room noise.
BACKGROUND_CLASSES = ("_silence_", "_background_noise_", "_background_", "background", "silence", "noise",
                      "nothing")
#: What the Record page shows when nothing was heard.
NOTHING_HEARD = "nothing heard"


def is_background(class_name: str) -> bool:
    """True when ``class_name`` is one of :data:`BACKGROUND_CLASSES` (any case)."""
    return str(class_name).strip().lower() in BACKGROUND_CLASSES


def heard(probabilities: np.ndarray | Sequence[float], class_names: Sequence[str],
          threshold: float = CONFIDENCE_THRESHOLD) -> str | None:
    """The class heard in a clip, or None for "nothing heard".

    Args:
        probabilities: ``(n_classes,)`` class probabilities (e.g. :attr:`lib.serving.infer.Prediction.probabilities`).
        class_names: ``n_classes`` names, in the order of ``probabilities``.
        threshold: the least probability the likeliest class needs, in [0, 1]; 0 always answers a class.

    Returns:
        The likeliest class's name, or None when it is a background class (:func:`is_background`) or its
        probability is below ``threshold``.

    Raises:
        ValueError: if ``threshold`` is outside [0, 1] or the lengths of ``probabilities`` and ``class_names``
            differ.
    """
    if not 0.0 <= threshold <= 1.0:  # NaN fails too
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    if len(probabilities) != len(class_names) or len(probabilities) == 0:
        raise ValueError(f"{len(probabilities)} probabilities for {len(class_names)} class names: give one per class")
    best = int(np.argmax(probabilities))
    if probabilities[best] < threshold or is_background(class_names[best]):
        return None
    return str(class_names[best])


def background_clips(n_clips: int = 6, sample_rate: int = 16000, clip_seconds: float = 1.0,
                     seed: int = 0) -> Tensor:
    """Takes of "nothing": one of digital silence, the others white, pink or brown noise at a random level
    between -60 and -20 dBFS (the built-in set's ``_silence_`` clips).

    Args:
        n_clips: how many takes (at least 1).
        sample_rate: Hz.
        clip_seconds: the length of each take.
        seed: the same seed gives the same takes.

    Returns:
        ``(n_clips, n_samples)`` float32 in [-1, 1], ``n_samples = round(sample_rate * clip_seconds)``.
    """
    if n_clips < 1 or sample_rate < 1 or not clip_seconds > 0:
        raise ValueError(f"background_clips needs n_clips >= 1, a positive sample_rate and clip_seconds, got "
                         f"{n_clips}, {sample_rate}, {clip_seconds}")
    rng = np.random.default_rng(seed)
    n_samples = round(sample_rate * clip_seconds)
    clips = np.zeros((n_clips, n_samples))
    for clip in clips[1:]:
        clip += _colored_noise(rng, n_samples) * 10 ** (rng.uniform(-60, -20) / 20)
    return torch.from_numpy(np.clip(clips, -1.0, 1.0).astype(np.float32))
