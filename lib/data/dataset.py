"""What a dataset is: the :class:`ClipDataset` interface and its in-memory implementation, :class:`AudioDataset`.

A dataset is a list of labelled clips, each with a group (speaker, recording, track: splits keep a group together)
and optionally an official fold. Two implementations share the interface:

* :class:`AudioDataset`: every clip decoded in memory (:mod:`lib.data.sources` opens folders, CSV manifests and the
  built-in set this way; :meth:`lib.data.catalog.DatasetIndex.decode` too);
* :class:`lib.data.cache.CachedDataset`: clips read from an on-disk int16 cache (the large catalog sets).

The engine, the evaluation and the pages use only what :class:`ClipDataset` declares. A
:class:`lib.data.catalog.DatasetIndex` is something else: a list of files to decode, without audio.

This module imports only :mod:`lib.dsp.audio`, so the loaders (:mod:`lib.data.sources`, :mod:`lib.data.catalog`,
:mod:`lib.data.cache`) all import it at the top without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from abc import ABC, abstractmethod
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from lib.dsp.audio import fit_clip, resample

__all__ = ["DatasetError", "ClipDataset", "AudioDataset", "class_counts", "ProgressCallback"]

#: Called as ``progress(done, total)`` while clips are decoded, synthesized or cached.
ProgressCallback = Callable[[int, int], None]


class DatasetError(ValueError):
    """A dataset cannot be opened: the message says what is wrong and what to do."""


def class_counts(labels: np.ndarray, class_names: Sequence[str]) -> dict[str, int]:
    """Clips per class, in class order.

    Args:
        labels: ``(n_clips,)`` int class indices into ``class_names``.
        class_names: the class names.

    Returns:
        ``{class name: clips}`` for every class (0 for a class without clips).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
    return {name: int(n) for name, n in zip(class_names, counts)}


@dataclass(eq=False, repr=False)
class ClipDataset(ABC):
    """The dataset interface: labelled clips, their groups and folds, and their audio. Both implementations extend
    it: they share its six fields (in this order: an :class:`AudioDataset` takes them first) and implement its
    abstract methods; each also has ``folds``, ``failed`` and ``sample_rates``.

    Attributes:
        name: a human name ("Synthetic Speech Commands", a folder name, a CSV name).
        source: where it came from, as a dict that can reopen it (:func:`lib.data.sources.load_source`).
        class_names: class names; ``labels`` index into them.
        paths: each clip's file path (with ``#t=start,end`` for a segment of a file).
        labels: ``(n_clips,)`` int64 class indices.
        groups: each clip's group (speaker, voice, recording); the path when the dataset has none.
        folds: each clip's official fold, or None when the dataset has no folds.
        failed: ``(path, reason)`` for every file that could not be decoded.
        sample_rates: each clip's sample rate in its source file, Hz.
    """

    name: str
    source: dict
    class_names: list[str]
    paths: list[str]
    labels: np.ndarray
    groups: list[str]

    @abstractmethod
    def __len__(self) -> int:
        ...

    @property
    @abstractmethod
    def durations(self) -> np.ndarray:
        """``(n_clips,)`` each clip's duration in its source, seconds."""
        ...

    @property
    @abstractmethod
    def channels(self) -> np.ndarray:
        """``(n_clips,)`` each clip's channel count in its source."""
        ...

    @abstractmethod
    def clip(self, index: int, sample_rate: int | None = None) -> tuple[Tensor, int]:
        """One clip ``(channels, time)`` and its sample rate (resampled to ``sample_rate`` when given)."""
        ...

    @abstractmethod
    def to_tensor(self, sample_rate: int, n_samples: int, indices: np.ndarray | None = None) -> Tensor:
        """Clips as one batch ``(n_selected, 1, n_samples)`` float32, fitted by :func:`lib.dsp.audio.fit_clip`."""
        ...

    @abstractmethod
    def subset(self, indices: np.ndarray) -> ClipDataset:
        """A dataset of the clips at ``indices`` (same classes)."""
        ...

    @property
    def n_classes(self) -> int:
        """The number of classes."""
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        """Clips per class, in class order (:func:`class_counts`)."""
        return class_counts(self.labels, self.class_names)

    def class_indices(self, class_name: str) -> list[int]:
        """The indices of the clips of class ``class_name``, in dataset order (``[]`` for a class without clips or
        not in the dataset)."""
        return [i for i, y in enumerate(self.labels.tolist()) if self.class_names[y] == class_name]

    def class_examples(self, class_name: str, k: int) -> list[int]:
        """Up to ``k`` indices of class ``class_name``'s clips, spread evenly from its first to its last (the same
        ones each time)."""
        rows = self.class_indices(class_name)
        if not rows or k < 1:
            return []
        return [rows[i] for i in np.unique(np.linspace(0, len(rows) - 1, min(k, len(rows))).round().astype(int))]

    def channel_counts(self) -> dict[int, int]:
        """Clips per channel count in the source files, ``{channels: clips}`` in increasing channels."""
        values, counts = np.unique(self.channels, return_counts=True)
        return {int(c): int(n) for c, n in zip(values, counts)}

    def view_subset(self, max_clips: int, seed: int = 0) -> ClipDataset:
        """The dataset itself when it has at most ``max_clips`` clips, else a fixed random subset of that many (in
        dataset order): what the app shows and maps of a large set."""
        if len(self) <= max_clips:
            return self
        return self.subset(np.sort(np.random.default_rng(seed).choice(len(self), max_clips, replace=False)))


@dataclass
class AudioDataset(ClipDataset):
    """A :class:`ClipDataset` held in memory: every clip decoded once, at its own rate and channels.

    Attributes (after :class:`ClipDataset`'s ``name, source, class_names, paths, labels, groups``):
        waveforms: each clip decoded, float32 ``(channels, time)`` at its own sample rate.
        sample_rates: each clip's sample rate in Hz.
        folds: each clip's official fold, or None when the dataset has no folds.
        failed: ``(path, reason)`` for every file that could not be decoded.
    """

    waveforms: list[Tensor]
    sample_rates: list[int]
    folds: list[int] | None = None
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def durations(self) -> np.ndarray:
        """``(n_clips,)`` clip durations in seconds."""
        return np.array([w.shape[-1] / sr for w, sr in zip(self.waveforms, self.sample_rates)], dtype=np.float64)

    @property
    def channels(self) -> np.ndarray:
        """``(n_clips,)`` channel counts."""
        return np.array([w.shape[0] for w in self.waveforms], dtype=np.int64)

    def clip(self, index: int, sample_rate: int | None = None) -> tuple[Tensor, int]:
        """One clip ``(channels, time)`` and its sample rate (resampled to ``sample_rate`` when given)."""
        waveform, rate = self.waveforms[index], self.sample_rates[index]
        if sample_rate is not None and sample_rate != rate:
            return resample(waveform, rate, sample_rate), sample_rate
        return waveform, rate

    def to_tensor(self, sample_rate: int, n_samples: int, indices: np.ndarray | None = None) -> Tensor:
        """Clips as one batch, each fitted by :func:`lib.dsp.audio.fit_clip` (mono, ``sample_rate``, ``n_samples``).

        Args:
            sample_rate: target sample rate in Hz.
            n_samples: target length in samples.
            indices: which clips (default: all).

        Returns:
            ``(n_selected, 1, n_samples)`` float32.
        """
        indices = np.arange(len(self)) if indices is None else np.asarray(indices)
        out = torch.empty(len(indices), 1, n_samples)  # every row is written below
        # Clips already at ``sample_rate`` (a built-in set: all of them) are fitted one batch per shape, without a
        # Python call per clip: the same numbers (mixing and cutting treat each clip alone; mono clips of
        # ``n_samples`` are copied as they are). Clips to resample go one by one, as a batched resampling may round
        # differently.
        alike: dict[tuple, list[int]] = {}
        for row, i in enumerate(indices.tolist()):
            if self.sample_rates[i] == sample_rate:
                alike.setdefault(tuple(self.waveforms[i].shape), []).append(row)
            else:
                out[row] = fit_clip(self.waveforms[i], self.sample_rates[i], sample_rate, n_samples)
        for shape, rows in alike.items():
            batch = torch.stack([self.waveforms[int(indices[row])] for row in rows])  # (n, channels, time)
            out[rows] = batch if shape == (1, n_samples) else fit_clip(batch, sample_rate, sample_rate, n_samples)
        return out

    def subset(self, indices: np.ndarray) -> AudioDataset:
        """A dataset of the clips at ``indices`` (same classes)."""
        idx = [int(i) for i in indices]
        return AudioDataset(self.name, self.source, list(self.class_names), [self.paths[i] for i in idx],
                            self.labels[idx], [self.groups[i] for i in idx], [self.waveforms[i] for i in idx],
                            [self.sample_rates[i] for i in idx],
                            None if self.folds is None else [self.folds[i] for i in idx], list(self.failed))
