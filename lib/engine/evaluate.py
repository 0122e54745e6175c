"""One evaluation: a classifier on a dataset or a split, as a typed report.

The training engine (its validation and test splits), the Evaluate page (a run on another dataset) and the
benchmarks all call this module, so a score means the same everywhere. A report holds the metrics of
:mod:`lib.engine.metrics` and one :class:`ClipPrediction` per clip, named by its clip id (the clip's index in the
dataset) and located by its file and its start and end in that file, so the app can play back a segment of a
long recording as well as a whole file.

A report is saved in a run's ``metrics.json`` as :meth:`EvaluationReport.to_dict` (the keys of
:func:`lib.engine.metrics.classification_metrics` plus ``predictions``); :meth:`EvaluationReport.from_dict` reads it
back, runs saved before this module included (their predictions name a segment ``file.wav#t=a,b``).

Example:
    >>> report = evaluate(Classifier.from_run("models/default"), dataset)
    >>> report.accuracy, report.macro_present.f1
    (0.93, 0.92)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from lib.dsp.audio import AudioSource, fit_clip, load_audio
from lib.dsp.features import FeatureConfig, extract
from lib.engine.metrics import classification_metrics, macro_over_present

if TYPE_CHECKING:  # types only: lib.serving.infer reads runs, and lib.engine.runs reads reports
    from lib.data.sources import AudioDataset
    from lib.serving.infer import Classifier

__all__ = ["ClipPrediction", "ClassScores", "AverageScores", "EvaluationReport", "clip_location", "load_segment",
           "clip_features", "unmatched_counts",
           "split_report", "evaluate", "matching_clips", "REPORT_KEYS"]

REPORT_KEYS = ("accuracy", "confusion_matrix", "class_names", "per_class", "macro", "weighted")
_FRAGMENT = "#t="


def clip_location(name: str) -> tuple[str, float, float | None]:
    """Where a dataset's clip lies: its file and its start and end in seconds.

    A dataset names a segment of a long file with a media fragment, ``file.wav#t=start,end`` (seconds; the
    end may be empty: to the end of the file), and a whole file by its path.

    Args:
        name: The clip's name in the dataset (``dataset.paths[i]``).

    Returns:
        ``(path, start_sec, end_sec)``; ``end_sec`` is None when the clip runs to the end of the file.
    """
    path, mark, fragment = str(name).rpartition(_FRAGMENT)
    if not mark:
        return str(name), 0.0, None
    start, _, end = fragment.partition(",")
    try:
        return path, float(start or 0.0), float(end) if end else None
    except ValueError:  # not a fragment of ours: a file whose name holds "#t="
        return str(name), 0.0, None


def load_segment(source: AudioSource, start_sec: float = 0.0, end_sec: float | None = None
                 ) -> tuple[torch.Tensor, int]:
    """Decode a clip from its file: the samples from ``start_sec`` to ``end_sec`` (None: the file's end).

    Returns:
        ``(waveform (channels, time), sample_rate)``; a segment past the file's end is empty.

    Raises:
        AudioDecodeError: If the file cannot be decoded.
    """
    waveform, sample_rate = load_audio(source)
    first = max(0, round(start_sec * sample_rate))
    last = None if end_sec is None else max(first, round(end_sec * sample_rate))
    return waveform[..., first:last], sample_rate


def clip_features(waveform: torch.Tensor, sample_rate: int, config: FeatureConfig) -> torch.Tensor:
    """One clip's features as evaluation reads it: fitted to one clip (:func:`lib.dsp.audio.fit_clip`), then
    :func:`lib.dsp.features.extract`.

    Args:
        waveform: ``(channels, time)`` float samples at ``sample_rate``.
        sample_rate: Hz.
        config: The run's features.

    Returns:
        ``(bins, frames)`` float32, on the CPU.
    """
    clip = fit_clip(waveform, sample_rate, config.sample_rate, config.n_samples)
    return extract(clip, config)[0, 0].detach().cpu()


@dataclass(frozen=True)
class ClipPrediction:
    """The classifier's answer on one clip.

    Attributes:
        index: The clip id: its index in the dataset (a run keeps a copy of a misclassified test clip as
            ``mistakes/<index>.flac``, and its test embedding row by row in this order).
        path: The audio file that holds the clip.
        start_sec: Where the clip starts in the file, seconds.
        end_sec: Where it ends, seconds; None: at the end of the file.
        true: The true class index.
        pred: The predicted class index.
        confidence: The predicted class's probability.
    """

    index: int
    path: str
    start_sec: float
    end_sec: float | None
    true: int
    pred: int
    confidence: float

    @property
    def correct(self) -> bool:
        """Whether the prediction is the true class."""
        return self.true == self.pred

    @property
    def is_segment(self) -> bool:
        """Whether the clip is a part of its file rather than the whole file."""
        return self.start_sec != 0 or self.end_sec is not None

    @property
    def name(self) -> str:
        """The clip's name in its dataset: the path, with ``#t=start,end`` for a segment of a file."""
        if not self.is_segment:
            return self.path
        end = "" if self.end_sec is None else f"{self.end_sec:g}"
        return f"{self.path}{_FRAGMENT}{self.start_sec:g},{end}"

    @property
    def caption(self) -> str:
        """The clip's file name, with its place in the file for a segment of a longer recording (``rec.wav, 2.5 s
        to 3.5 s``)."""
        name = Path(self.path).name
        if not self.is_segment:
            return name
        return f"{name}, {self.start_sec:g} s to " + (f"{self.end_sec:g} s" if self.end_sec is not None else "the end")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape of ``metrics.json``)."""
        return {"index": self.index, "path": self.path, "start_sec": self.start_sec, "end_sec": self.end_sec,
                "true": self.true, "pred": self.pred, "confidence": self.confidence}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClipPrediction:
        """Reads :meth:`to_dict`'s dict, or one saved before clips had a location (a ``#t=`` path).

        Raises:
            ValueError: If a key is missing or a value has the wrong type.
        """
        try:
            path, start, end = clip_location(str(d["path"]))
            if "start_sec" in d:
                start, end = float(d["start_sec"]), None if d.get("end_sec") is None else float(d["end_sec"])
            return cls(int(d["index"]), path, start, end, int(d["true"]), int(d["pred"]), float(d["confidence"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"a prediction is malformed ({error!r}): {dict(d)}") from error


@dataclass(frozen=True)
class AverageScores:
    """Precision, recall and F1 averaged over classes."""

    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AverageScores:
        return cls(float(d["precision"]), float(d["recall"]), float(d["f1"]))


@dataclass(frozen=True)
class ClassScores:
    """One class's precision, recall, F1 and support (its number of clips)."""

    class_name: str
    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.class_name, "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "support": self.support}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassScores:
        return cls(str(d["class"]), float(d["precision"]), float(d["recall"]), float(d["f1"]), int(d["support"]))


@dataclass(frozen=True)
class EvaluationReport:
    """How a classifier did on a set of clips.

    Attributes:
        class_names: The classifier's classes; class indices below index them.
        accuracy: Fraction of clips predicted right.
        confusion_matrix: ``(n_classes, n_classes)`` counts, rows are true classes, columns predicted.
        per_class: Precision, recall, F1 and support of each class, in class order.
        macro: Precision, recall and F1 averaged over all classes (an absent class counts as 0).
        weighted: The per-class scores weighted by each class's clips.
        present_classes: The classes the clips hold (all of them on a run's own splits, as a rule).
        macro_present: Precision, recall and F1 averaged over ``present_classes`` only: the average a reader
            expects when the clips hold a subset of the classes (the same as ``macro`` when they hold all).
        predictions: One per clip, in the order evaluated (empty for reports saved without them).
        probabilities: ``(n_clips, n_classes)`` float32 class probabilities, in the order of ``predictions``;
            None for a report read back from a file (they are not saved).
    """

    class_names: list[str]
    accuracy: float
    confusion_matrix: list[list[int]]
    per_class: list[ClassScores]
    macro: AverageScores
    weighted: AverageScores
    present_classes: list[str]
    macro_present: AverageScores
    predictions: list[ClipPrediction] = field(default_factory=list)
    probabilities: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int:
        """Number of clips evaluated."""
        return int(sum(scores.support for scores in self.per_class))

    @property
    def all_classes_present(self) -> bool:
        """Whether the clips hold every class (then ``macro_present`` is ``macro``)."""
        return len(self.present_classes) == len(self.class_names)

    def mistakes(self) -> list[ClipPrediction]:
        """The wrong predictions, most confident first (ties in evaluation order)."""
        return sorted((p for p in self.predictions if not p.correct), key=lambda p: -p.confidence)

    def matches(self, dataset: AudioDataset) -> bool:
        """Whether ``dataset`` is still the one the predictions index into: the same classes, and each predicted
        clip's index names its clip (a dataset whose clips or classes changed since does not)."""
        return list(dataset.class_names) == list(self.class_names) and bool(self.predictions) and max(
            p.index for p in self.predictions) < len(dataset) and all(
            dataset.paths[p.index] == p.name for p in self.predictions)

    # -- files -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The report as saved in ``metrics.json``: :func:`lib.engine.metrics.classification_metrics`'s keys, the clip
        count ``n`` and ``predictions`` (probabilities are not saved)."""
        return {"accuracy": self.accuracy, "confusion_matrix": self.confusion_matrix,
                "class_names": list(self.class_names), "per_class": [s.to_dict() for s in self.per_class],
                "macro": self.macro.to_dict(), "weighted": self.weighted.to_dict(), "n": self.n,
                "predictions": [p.to_dict() for p in self.predictions]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvaluationReport:
        """Reads a saved report (:meth:`to_dict`, or a ``metrics.json`` split of any earlier run).

        Raises:
            ValueError: If a key of :data:`REPORT_KEYS` is missing or a value is malformed.
        """
        missing = [key for key in REPORT_KEYS if not isinstance(d, Mapping) or key not in d]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        try:
            names = [str(name) for name in d["class_names"]]
            cm = [[int(v) for v in row] for row in d["confusion_matrix"]]
            if len(cm) != len(names) or any(len(row) != len(names) for row in cm):
                raise ValueError(f"the confusion matrix is not {len(names)} x {len(names)}")
            present, macro_present = _present_scores(cm, names, AverageScores.from_dict(d["macro"]))
            return cls(names, float(d["accuracy"]), cm, [ClassScores.from_dict(s) for s in d["per_class"]],
                       AverageScores.from_dict(d["macro"]), AverageScores.from_dict(d["weighted"]), present,
                       macro_present, [ClipPrediction.from_dict(p) for p in d.get("predictions") or []])
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed ({error!r})") from error


def _present_scores(cm: list[list[int]], names: list[str],
                    macro: AverageScores) -> tuple[list[str], AverageScores]:
    """The classes with clips (rows of ``cm`` with counts) and the macro average over them."""
    present = macro_over_present(cm, names)
    if present is None:  # every class present (or none): the plain macro average is the one
        return [name for name, row in zip(names, cm) if sum(row) > 0] or list(names), macro
    return list(present["classes"]), AverageScores.from_dict(present["macro"])


def _report(probabilities: np.ndarray, y_true: np.ndarray, class_names: Sequence[str], indices: np.ndarray,
            clip_names: Sequence[str]) -> EvaluationReport:
    """The report of clips whose probabilities, true classes, dataset indices and names are given row by row."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    y_pred = probabilities.argmax(1)
    metrics = classification_metrics(y_true, y_pred, class_names)
    predictions = [ClipPrediction(int(i), *clip_location(name), int(t), int(p), float(c))
                   for i, name, t, p, c in zip(indices, clip_names, y_true, y_pred, probabilities.max(1))]
    return replace(EvaluationReport.from_dict(metrics), predictions=predictions, probabilities=probabilities)


def split_report(dataset: AudioDataset, indices: np.ndarray, probabilities: np.ndarray | torch.Tensor
                 ) -> EvaluationReport | None:
    """The report of a split of the dataset a model was trained on (the engine's validation and test).

    Args:
        dataset: The dataset; its labels are the true classes and its class names the model's.
        indices: ``(n,)`` the split's dataset indices.
        probabilities: ``(n, n_classes)`` the model's probabilities on those clips, in that order.

    Returns:
        The report, or None for an empty split.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        return None
    probabilities = torch.as_tensor(probabilities).float().cpu().numpy()
    return _report(probabilities, np.asarray(dataset.labels)[indices], dataset.class_names, indices,
                   [dataset.paths[i] for i in indices])


def matching_clips(dataset: AudioDataset, class_names: Sequence[str]) -> np.ndarray:
    """``(n,)`` int64 indices of the dataset's clips whose class (by name) is one of ``class_names``."""
    names = set(class_names)
    return np.array([i for i, label in enumerate(dataset.labels) if dataset.class_names[label] in names],
                    dtype=np.int64)


def unmatched_counts(dataset: AudioDataset, class_names: Sequence[str]) -> dict[str, int]:
    """Clips per class of the dataset's classes that are not among ``class_names`` (classes without clips left
    out): what :func:`matching_clips` skips."""
    names = set(class_names)
    return {c: n for c, n in dataset.class_counts().items() if c not in names and n}


def _probabilities(classifier: Classifier, dataset: AudioDataset, indices: np.ndarray,
                   whole_recordings: bool) -> np.ndarray:
    """``(n, n_classes)`` the classifier's probabilities of the clips at ``indices``."""
    config = classifier.feature_config
    if not whole_recordings:
        return classifier.predict_batch(dataset.to_tensor(config.sample_rate, config.n_samples, indices)).numpy()
    out = np.zeros((len(indices), classifier.n_classes), dtype=np.float32)
    batch = []  # rows already in the model's format: one batch gives what predict() would, faster
    for row, i in enumerate(indices):
        waveform, rate = dataset.clip(int(i))
        if rate == config.sample_rate and waveform.shape[0] == 1 and waveform.shape[-1] <= config.n_samples:
            batch.append(row)
        else:
            out[row] = classifier.predict(waveform, rate).probabilities
    if batch:
        out[batch] = classifier.predict_batch(
            dataset.to_tensor(config.sample_rate, config.n_samples, indices[batch])).numpy()
    return out


def evaluate(classifier: Classifier, dataset: AudioDataset, indices: Sequence[int] | np.ndarray | None = None, *,
             whole_recordings: bool = False) -> EvaluationReport:
    """Evaluate a classifier (a saved run's :class:`lib.serving.infer.Classifier`) on a dataset or some of its clips.

    Classes are matched by name, so the dataset may hold a subset of the classifier's classes in another order
    (select its clips with :func:`matching_clips`).

    Args:
        classifier: The model with its preprocessing.
        dataset: The clips with their labels.
        indices: Which clips (default: all); each must be of a class the classifier knows.
        whole_recordings: Classify a clip that is longer than one clip (or at another rate, or in stereo) as the
            Inference page classifies a recording (:meth:`lib.serving.infer.Classifier.predict`: its loudest sound);
            False: centre trim every clip to one clip, as training does.

    Returns:
        The report, its ``probabilities`` included, over the classifier's class names.

    Raises:
        ValueError: If no clip is selected or a clip's class is not one of the classifier's.
    """
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise ValueError(f"no clips of {dataset.name!r} to evaluate: pick a dataset with clips of the run's classes")
    names = list(classifier.class_names)
    foreign = sorted({dataset.class_names[dataset.labels[i]] for i in indices} - set(names))
    if foreign:
        raise ValueError(f"{', '.join(foreign)} {'is not a class' if len(foreign) == 1 else 'are not classes'} of "
                         f"the classifier ({', '.join(names)}): leave those clips out (see matching_clips)")
    y_true = np.array([names.index(dataset.class_names[dataset.labels[i]]) for i in indices], dtype=np.int64)
    probabilities = _probabilities(classifier, dataset, indices, whole_recordings)
    if not np.isfinite(probabilities).all():
        raise ValueError("the classifier gave non-finite probabilities: the run's weights are broken; retrain it")
    return _report(probabilities, y_true, names, indices, [dataset.paths[i] for i in indices])
