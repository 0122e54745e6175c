"""Saved runs side by side: one table row per run, short labels for legends, the settings that differ and each
class's F1 (no Streamlit; the Runs page draws them).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from lib.engine.runs import RunInfo, RunRecord

#: Most runs compared at once: more lines than this on one chart cannot be told apart.
MAX_COMPARED = 8

_AUTO_ID = re.compile(r"^\d{8}-\d{6}-(.+)$")  # lib.engine.runs.new_run_id: date-time-model-hex
_SEPARATORS = "-_."


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def run_row(run: RunInfo) -> dict[str, Any]:
    """One row of the runs table: name, dataset, model, scores, size, latency and date first, then the sweep it
    belongs to and its main settings.

    Args:
        run: A usable run (``run.record`` is not None).

    Returns:
        dict: ``Run``, ``Dataset``, ``Model``, ``Val accuracy``, ``Test accuracy``, ``Macro F1`` (fractions),
        ``Parameters``, ``Latency (ms)`` (p50 of one clip, None for runs saved before it was measured),
        ``Created`` (``"YYYY-MM-DD HH:MM"``), ``Sweep`` (``"name #trial"`` or None), ``Epochs``, ``Batch``,
        ``Learning rate``, ``Optimizer``, ``Mel bins``, ``Augmentation``, ``Device``, ``Duration (s)``, ``Status``.
    """
    record = run.record
    train = record.train_config
    sweep = run.sweep
    created = str(record.created or "")[:16].replace("T", " ") or None
    return {"Run": run.run_id, "Dataset": record.dataset.name, "Model": record.model,
            "Val accuracy": _number(run.val_accuracy), "Test accuracy": _number(run.test_accuracy),
            "Macro F1": _number(run.macro_f1), "Parameters": record.n_parameters, "Latency (ms)": run.latency_ms,
            "Created": created, "Sweep": f"{sweep['name']} #{sweep['trial']}" if sweep else None,
            "Epochs": train.epochs if train else None, "Batch": train.batch_size if train else None,
            "Learning rate": train.learning_rate if train else None, "Optimizer": train.optimizer if train else None,
            "Mel bins": record.feature_config.n_mels,
            "Augmentation": train.augment.summary(detailed=False) if train else "?",
            "Device": record.device, "Duration (s)": record.duration_sec, "Status": record.status}


def matches(row: Mapping[str, Any], text: str) -> bool:
    """Whether a :func:`run_row` row holds every word of ``text`` (case-insensitive) in its name, dataset, model
    or sweep; an empty ``text`` matches every row."""
    haystack = " ".join(str(row.get(k) or "") for k in ("Run", "Dataset", "Model", "Sweep")).lower()
    return all(word in haystack for word in text.lower().split())


def _ellipsize(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    tail = min(5, max_chars // 3)
    return text[:max_chars - tail - 1] + "…" + text[-tail:]


def short_labels(run_ids: Sequence[str], max_chars: int = 20) -> list[str]:
    """Short, distinct legend labels for runs compared together, in the same order.

    An automatic name's date and time are dropped (``20261121-071500-bcresnet-3fa2`` -> ``bcresnet-3fa2``), a
    prefix every name shares up to a separator is dropped (``lr-sweep-t001``, ``lr-sweep-t002`` -> ``t001``,
    ``t002``) and a long name keeps its start and end (``very-long-name…0.001``). Where that would make two labels
    equal, the names themselves are shortened instead, and numbered if they still collide.

    Args:
        run_ids: The runs' names.
        max_chars: Longest label, characters (at least 8).

    Returns:
        list[str]: One label per name.
    """
    max_chars = max(8, int(max_chars))
    cores = [(_AUTO_ID.match(r).group(1) if _AUTO_ID.match(r) else r) for r in run_ids]
    if len(cores) > 1:
        common = len(_common_prefix(cores))
        if common and all(len(c) > common for c in cores):
            cores = [c[common:] for c in cores]
    labels = [_ellipsize(c, max_chars) for c in cores]
    if len(set(labels)) < len(labels):
        labels = [_ellipsize(r, max_chars) for r in run_ids]
    if len(set(labels)) < len(labels):
        labels = [f"{i + 1}: {_ellipsize(r, max_chars - 3)}" for i, r in enumerate(run_ids)]
    return labels


def _common_prefix(names: Sequence[str]) -> str:
    """The longest prefix of every name that ends with a separator (``-``, ``_``, ``.``), or ``""``."""
    first, last = min(names), max(names)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    prefix = first[:n]
    cut = max(prefix.rfind(s) for s in _SEPARATORS)
    return prefix[:cut + 1] if cut >= 0 else ""


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


def run_settings(record: RunRecord) -> dict[str, Any]:
    """Everything a run was made with, flat: ``dataset``, ``dataset clips``, ``model``, ``train.<field>`` (the
    augmentation as ``train.augment.<field>``), ``features.<field>`` and ``classes``."""
    out: dict[str, Any] = {"dataset": record.dataset.name, "dataset clips": record.dataset.n_clips,
                           "model": record.model}
    train = record.train_config.to_dict() if record.train_config else {}
    _flatten("train", {k: v for k, v in train.items() if k != "model"}, out)
    _flatten("features", record.feature_config.to_dict(), out)
    out["classes"] = list(record.class_names)
    return out


def settings_that_differ(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys of :func:`run_settings` dicts whose values are not all the same (a missing key counts as None),
    in the order they first appear."""
    keys = dict.fromkeys(k for s in settings for k in s)
    return [k for k in keys if len({json.dumps(s.get(k), sort_keys=True, default=str) for s in settings}) > 1]


def settings_table(records: Sequence[RunRecord], labels: Sequence[str]) -> list[dict[str, str]]:
    """The settings that differ between runs (:func:`settings_that_differ`), one row per setting: ``{"Setting":
    key, <label>: its value as text, ...}`` (columns in ``labels``' order, one label per record); ``[]`` when
    the runs share every setting."""
    settings_of = [run_settings(record) for record in records]
    return [{"Setting": key, **{label: setting_text(s.get(key)) for label, s in zip(labels, settings_of)}}
            for key in settings_that_differ(settings_of)]


def setting_text(value: Any) -> str:
    """A setting as a table cell: ``—`` for None, ``1e-05`` for floats, lists joined by commas."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(setting_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def class_f1(run: RunInfo, split: str = "test") -> dict[str, float]:
    """Each class's F1 on the run's ``split`` (``{}`` when the split was empty).

    Raises:
        ValueError: If the run's saved results are malformed.
    """
    report = run.report(split)
    return {} if report is None else {s.class_name: s.f1 for s in report.per_class}
