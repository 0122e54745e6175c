"""Classification metrics as plain, JSON-ready Python types, and confusion-matrix helpers.

Everything is computed with :mod:`sklearn.metrics` over class indices ``0 .. n_classes - 1``, so a class
that never occurs (or is never predicted) still has its row, column and per-class entry. Undefined ratios
(a class never predicted has no precision) are 0, without warnings.

Example:
    >>> m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["yes", "no"])
    >>> m["accuracy"], m["confusion_matrix"]
    (0.75, [[1, 1], [0, 2]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

__all__ = ["classification_metrics", "macro_over_present", "normalize_confusion"]


def classification_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                           class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, confusion matrix, per-class and averaged precision/recall/F1.

    Args:
        y_true: True class indices.
        y_pred: Predicted class indices, same length.
        class_names: Name of each class index; its length sets the number of classes.

    Returns:
        A JSON-serialisable dict with keys ``accuracy`` (float), ``confusion_matrix`` (list of lists, rows
        are true classes, columns predicted), ``class_names`` (list), ``per_class`` (one dict per class with
        ``class``, ``precision``, ``recall``, ``f1``, ``support``), ``macro`` and ``weighted`` (each
        ``{precision, recall, f1}``) and ``n`` (number of examples).

    Raises:
        ValueError: If there are no examples, the lengths differ, ``class_names`` is empty or an index is
            not a class index.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    names = [str(name) for name in class_names]
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred differ in length ({len(y_true)} vs {len(y_pred)})")
    if not names:
        raise ValueError("class_names must not be empty")
    if len(y_true) == 0:
        raise ValueError("no examples to evaluate")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.min() < 0 or values.max() >= len(names):
            raise ValueError(f"{name} holds indices outside 0..{len(names) - 1}")
    labels = list(range(len(names)))

    cm = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    per_class = [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, support)
    ]

    def averaged(average: str) -> dict[str, float]:
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0)
        return {"precision": float(p), "recall": float(r), "f1": float(f)}

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "confusion_matrix": [[int(v) for v in row] for row in cm],
        "class_names": names,
        "per_class": per_class,
        "macro": averaged("macro"),
        "weighted": averaged("weighted"),
        "n": int(len(y_true)),
    }


def macro_over_present(cm: Sequence[Sequence[int]] | np.ndarray,
                       class_names: Sequence[str]) -> dict[str, Any] | None:
    """Macro precision/recall/F1 over the classes that occur in the clips (rows of ``cm`` with clips).

    Tested on a subset of the classes (say two words of ten), the plain macro average counts every absent
    class as 0 and reads 20% next to 100% accuracy; this is the average a reader expects. Computed from the
    confusion matrix alone, so it also serves runs saved before it existed. Predictions of an absent class
    still count against the recall of the true (present) class.

    Args:
        cm: Square confusion matrix of counts, rows are true classes.
        class_names: Name of each class index.

    Returns:
        ``{"classes": [present names], "macro": {precision, recall, f1}}``, or None when every class is
        present (the plain macro average is then the same) or no class is.
    """
    cm = np.asarray(cm, dtype=np.int64)
    present = [i for i in range(cm.shape[0]) if cm[i].sum() > 0]
    if not present or len(present) == cm.shape[0]:
        return None
    rows, cols = np.nonzero(cm)
    counts = cm[rows, cols]
    y_true, y_pred = np.repeat(rows, counts), np.repeat(cols, counts)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average="macro", zero_division=0)
    return {"classes": [str(class_names[i]) for i in present],
            "macro": {"precision": float(p), "recall": float(r), "f1": float(f)}}


def normalize_confusion(cm: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Row-normalise a confusion matrix: each true class's row sums to 1 (the per-class recall view).

    Args:
        cm: Square confusion matrix of counts, rows are true classes.

    Returns:
        A float array of the same shape; rows that were all zeros (a class absent from the data) stay zero.
    """
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)

