"""Saved training runs: one folder per run under a root folder (``models/`` by default).

Layout::

    <root>/<run_id>/config.json    what was trained and how (model, class names, feature config, ...)
    <root>/<run_id>/model.pt       the model's state_dict (torch.save)
    <root>/<run_id>/metrics.json   evaluation results

Writes are atomic: :func:`save_run` builds the run in a hidden temporary folder and renames it into place,
so a crash never leaves a half-written run, and :func:`write_json_atomic` replaces a JSON file in one step.
Folders whose names start with ``"."`` (temporary or hidden) are never listed. A malformed run is not
hidden: :func:`list_runs` returns it with its ``error`` set, and :func:`load_run` raises :class:`RunError`.

What a run saves in config.json is a :class:`RunRecord`, read and written here only: every other module reads
``run.record`` (typed) rather than the JSON. Runs saved before the record existed still load: their config.json
held ``model`` twice (also in ``train_config``) and an always empty ``model_kwargs``.

Example:
    >>> path = save_run(root, new_run_id("bcresnet"), state_dict=model.state_dict(),
    ...                 record=record, metrics=metrics)
    >>> run = load_run(path)
    >>> model.load_state_dict(run.state_dict)
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib.engine.evaluate import EvaluationReport
from lib.dsp.features import FeatureConfig
from lib.engine.train_config import TrainConfig
from lib.engine.run_extras import EMBEDDING_FILE as _EMBEDDING_FILE, MISTAKES_DIR as _MISTAKES_DIR

__all__ = [
    "DEFAULT_ROOT", "CONFIG_FILE", "MODEL_FILE", "METRICS_FILE", "DETECTOR_FILE", "REQUIRED_CONFIG_KEYS",
    "RunError", "RunRecord", "DatasetRecord", "RunInfo", "LoadedRun", "read_record",
    "new_run_id", "is_valid_run_id", "check_run_target", "save_run", "list_runs", "load_run", "latest_run",
    "rename_run", "delete_run", "run_zip_bytes", "write_json_atomic",
]

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "models"
CONFIG_FILE = "config.json"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
DETECTOR_FILE = "detector.json"  # the keyword detector's measured operating point (lib.serving.stream)
REQUIRED_CONFIG_KEYS = ("model", "class_names", "feature_config")

_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_MISTAKE_CLIP = re.compile(r"[0-9]{1,12}\.flac")
_MAX_RUN_ID = 128
_NO_RUN_HINT = "Pick another run or retrain."


class RunError(ValueError):
    """A run folder is missing, lacks a file or holds a malformed one.

    Attributes:
        run_id: The run's folder name, when known.
        file: The offending file name (``config.json``, ``model.pt``, ``metrics.json``), when known.
    """

    def __init__(self, message: str, *, run_id: str | None = None, file: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.file = file


def _run_error(path: Path, file: str | None, problem: str,
               hint: str = "Delete the run or retrain.") -> RunError:
    """A :class:`RunError` naming the run, the file (if any), the problem and what to do."""
    where = f"{file} of run '{path.name}'" if file else f"Run '{path.name}'"
    return RunError(f"{where} {problem} ({path}). {hint}", run_id=path.name, file=file)


# -- JSON ------------------------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    """``json`` fallback: numpy scalars and arrays, tensors, paths and sets become plain types."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default) + "\n"


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, replacing ``path`` in one step.

    The JSON goes to a hidden temporary file in the same folder, which then replaces ``path`` with
    :func:`os.replace`, so readers see either the old file or the new one, never a partial one.
    numpy scalars and arrays, tensors, paths and sets are converted to plain JSON types.

    Args:
        path: Destination file; its folder must exist.
        obj: A JSON-serialisable object.

    Raises:
        TypeError: If ``obj`` holds something that cannot be converted (nothing is written then).
    """
    path = Path(path)
    text = _dumps(obj)  # serialise first: a TypeError leaves no temporary file behind
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_json(path: Path, file: str) -> dict[str, Any]:
    """A run file's JSON object, or a :class:`RunError` naming the run and the file."""
    file_path = path / file
    if not file_path.is_file():
        raise _run_error(path, file, "is missing")
    try:
        data = json.loads(file_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _run_error(path, file, f"is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise _run_error(path, file, f"must hold a JSON object, not {type(data).__name__}")
    return data


def _read_config(path: Path) -> RunRecord:
    """A run's :class:`RunRecord`, or a :class:`RunError` naming the run and what is wrong with its config.json."""
    try:
        return RunRecord.from_dict(_read_json(path, CONFIG_FILE))
    except ValueError as error:
        if isinstance(error, RunError):
            raise
        raise _run_error(path, CONFIG_FILE, str(error)) from error


def read_record(path: str | Path) -> RunRecord:
    """A run folder's config.json as a :class:`RunRecord` (its weights are not read).

    Raises:
        RunError: the folder or its config.json is missing or unusable.
    """
    return _read_config(Path(path))


# -- the record ------------------------------------------------------------------------------------
def _optional(kind: type, value: Any) -> Any:
    """``kind(value)``, or None when the value is missing or not of that kind."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class DatasetRecord:
    """The dataset a run was trained on.

    Attributes:
        name: A human name (``"Synthetic Speech Commands"``, a folder's name).
        source: How to open it again (:func:`lib.data.sources.load_source`'s ``{"kind": ..., ...}``), or None.
        n_clips: Its number of clips.
        split: Clips per split: ``{"train": ..., "validation": ..., "test": ...}``.
    """

    name: str | None = None
    source: dict[str, Any] | None = None
    n_clips: int | None = None
    split: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "n_clips": self.n_clips, "split": dict(self.split)}

    @classmethod
    def from_dict(cls, d: Any) -> DatasetRecord:
        """Reads :meth:`to_dict`'s dict; anything unreadable is left out (a run needs no dataset to be used)."""
        if not isinstance(d, dict):
            return cls()
        split = d.get("split") if isinstance(d.get("split"), dict) else {}
        return cls(_optional(str, d.get("name")), d["source"] if isinstance(d.get("source"), dict) else None,
                   _optional(int, d.get("n_clips")),
                   {str(k): int(v) for k, v in split.items() if _optional(int, v) is not None})


@dataclass(frozen=True)
class RunRecord:
    """What a run saves in config.json: enough to rebuild its model and to say how it was made.

    The model is ``build_model(model, len(class_names), feature_config.n_bins, feature_config.n_frames,
    **model_kwargs)``, the options coming from ``train_config`` (``run_embedding``'s run; runs saved before kept an
    always empty ``model_kwargs`` of their own).

    Attributes:
        model: The model's name in :data:`lib.models.MODELS` (saved once; ``train_config.model`` is the same).
        class_names: The model's outputs, in order.
        feature_config: The preprocessing the model was trained with (inference repeats it).
        train_config: The training settings; None when the run has none, or ones this version cannot read
            (the run still classifies).
        run_id: The run's name (its folder's).
        dataset: The dataset it was trained on.
        versions: Library versions (``{"torch": ..., ...}``).
        device: The training device, in words.
        created: Creation time, an ISO string.
        duration_sec: Training time, seconds.
        status: ``"finished"`` or ``"stopped"``.
        n_parameters: The model's trainable parameters.
        best_epoch: The epoch whose weights were kept.
        sweep: The sweep this run is a trial of, ``{"name": str, "trial": int}``, or None (:mod:`lib.sweep`).
        weights: The pretrained weights the model started from, ``{"source": str, "sha256": str}`` (a URL, file
            or package, and the file's SHA-256), or None (random initialisation); a backbone built from another
            run adds ``"architecture"``, what rebuilding it needs (``run_embedding``: the source run's model, classes,
            options and features), so the run loads without its source.
    """

    model: str
    class_names: list[str]
    feature_config: FeatureConfig
    train_config: TrainConfig | None = None
    run_id: str | None = None
    dataset: DatasetRecord = field(default_factory=DatasetRecord)
    versions: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    created: str | None = None
    duration_sec: float | None = None
    status: str | None = None
    n_parameters: int | None = None
    best_epoch: int | None = None
    sweep: dict[str, Any] | None = None
    weights: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.class_names:
            raise ValueError("a run needs at least one class name")
        if self.train_config is not None and self.train_config.model != self.model:
            raise ValueError(f"model {self.model!r} differs from train_config's {self.train_config.model!r}")

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """The builder's options besides the shape (:attr:`TrainConfig.model_kwargs`; none without a train config),
        with the backbone's saved ``architecture`` when :attr:`weights` has one."""
        options = self.train_config.model_kwargs if self.train_config is not None else {}
        if self.weights and "architecture" in self.weights:
            options = {**options, "architecture": self.weights["architecture"]}
        return options

    def to_dict(self) -> dict[str, Any]:
        """config.json's object: the model once (not again inside ``train_config``)."""
        train = None if self.train_config is None else {
            k: v for k, v in self.train_config.to_dict().items() if k != "model"}
        return {"run_id": self.run_id, "model": self.model, "class_names": list(self.class_names),
                "feature_config": self.feature_config.to_dict(), "train_config": train,
                "dataset": self.dataset.to_dict(), "versions": dict(self.versions), "device": self.device,
                "created": self.created, "duration_sec": self.duration_sec, "status": self.status,
                "n_parameters": self.n_parameters, "best_epoch": self.best_epoch,
                "sweep": dict(self.sweep) if self.sweep else None,
                "weights": dict(self.weights) if self.weights else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """Reads config.json's object, in this shape or in that of earlier runs.

        Raises:
            ValueError: If ``model``, ``class_names`` or ``feature_config`` is missing or unusable.
        """
        missing = [key for key in REQUIRED_CONFIG_KEYS if key not in d]
        if missing:
            raise ValueError(f"lacks {', '.join(map(repr, missing))}")
        if not isinstance(d["class_names"], list) or not d["class_names"]:
            raise ValueError("has no list of class names")
        if not isinstance(d["feature_config"], dict):
            raise ValueError("has a feature_config that is not an object")
        try:
            feature_config = FeatureConfig.from_dict(d["feature_config"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"has an invalid feature_config: {error}") from error
        model = str(d["model"])
        train = d.get("train_config")
        try:  # older runs saved the model inside train_config too: the top-level one counts
            train_config = TrainConfig.from_dict({**train, "model": model}) if isinstance(train, dict) else None
        except (TypeError, ValueError):
            train_config = None
        versions = d.get("versions") if isinstance(d.get("versions"), dict) else {}
        return cls(model=model, class_names=[str(c) for c in d["class_names"]], feature_config=feature_config,
                   train_config=train_config, run_id=_optional(str, d.get("run_id")),
                   dataset=DatasetRecord.from_dict(d.get("dataset")),
                   versions={str(k): str(v) for k, v in versions.items()}, device=_optional(str, d.get("device")),
                   created=_optional(str, d.get("created")), duration_sec=_optional(float, d.get("duration_sec")),
                   status=_optional(str, d.get("status")), n_parameters=_optional(int, d.get("n_parameters")),
                   best_epoch=_optional(int, d.get("best_epoch")), sweep=_sweep_tag(d.get("sweep")),
                   weights=_weights_tag(d.get("weights")))


def _sweep_tag(value: Any) -> dict[str, Any] | None:
    """config.json's ``sweep``: ``{"name": str, "trial": int}``, or None when absent or unreadable."""
    if not isinstance(value, dict):
        return None
    name, trial = _optional(str, value.get("name")), _optional(int, value.get("trial"))
    return {"name": name, "trial": trial} if name is not None and trial is not None else None


def _weights_tag(value: Any) -> dict[str, Any] | None:
    """config.json's ``weights``: ``{"source": str, "sha256": str}`` (and a dict ``"architecture"`` when saved), or
    None when absent or unreadable."""
    if not isinstance(value, dict) or not {"source", "sha256"} <= set(value):
        return None
    tag: dict[str, Any] = {"source": str(value["source"]), "sha256": str(value["sha256"])}
    if isinstance(value.get("architecture"), dict):
        tag["architecture"] = value["architecture"]
    return tag


# -- names -----------------------------------------------------------------------------------------
def is_valid_run_id(run_id: str) -> bool:
    """Whether ``run_id`` is a safe folder name: letters, digits, ``-``, ``_`` and ``.`` (not leading)."""
    return isinstance(run_id, str) and len(run_id) <= _MAX_RUN_ID and _RUN_ID.fullmatch(run_id) is not None


def _check_run_id(run_id: str) -> None:
    if not is_valid_run_id(run_id):
        raise ValueError(f"Invalid run name {run_id!r}: use letters, digits, '-', '_' and '.' (not first), "
                         f"at most {_MAX_RUN_ID} characters")


def _run_path(root: str | Path, run_id: str) -> Path:
    """``root / run_id``, refusing names that would leave ``root`` (``..``, separators)."""
    if not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id or "\0" in run_id:
        raise ValueError(f"Invalid run name {run_id!r}")
    return Path(root) / run_id


def new_run_id(model_name: str) -> str:
    """A fresh run id: local time, model name and 4 random hex digits.

    Args:
        model_name: Model name; lower-cased, and runs of other characters than letters and digits
            become ``-``.

    Returns:
        A filesystem-safe id such as ``20261121-071500-bcresnet-3fa2``.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", str(model_name).lower()).strip("-")[:40] or "model"
    return f"{datetime.now():%Y%m%d-%H%M%S}-{slug}-{secrets.token_hex(2)}"


# -- save ------------------------------------------------------------------------------------------
def check_run_target(root: str | Path, run_id: str | None, overwrite: bool = False) -> Path | None:
    """Check, before any work, that a run could be saved as ``<root>/<run_id>``: a safe name, not taken (unless
    ``overwrite``), and a folder that exists (it is created) and can be written. ``run_id`` None checks the folder
    only. Returns the run's folder (None without a name).

    Raises:
        ValueError: If ``run_id`` is not a safe folder name.
        FileExistsError: If the run exists and ``overwrite`` is false.
        OSError: If ``root`` cannot be created or written (the message says which folder).
    """
    if run_id is not None:
        _check_run_id(run_id)
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{secrets.token_hex(4)}"
        probe.mkdir()
        probe.rmdir()
    except OSError as error:
        raise OSError(f"cannot save runs in {root} ({error.strerror or error}): choose a folder you can write "
                      "to") from error
    if run_id is None:
        return None
    target = root / run_id
    if target.exists() and not overwrite:
        raise FileExistsError(f"Run '{run_id}' already exists in {root}: choose another name or overwrite it")
    return target


def save_run(root: str | Path, run_id: str, *, state_dict: dict[str, Any], record: RunRecord,
             metrics: dict[str, Any], overwrite: bool = False) -> Path:
    """Save a run atomically as ``<root>/<run_id>/{config.json, model.pt, metrics.json}``.

    Everything is written into a hidden folder ``<root>/.tmp-<run_id>-<random>`` that is then renamed to
    ``<root>/<run_id>``; on any error the temporary folder is removed. When overwriting, the old run is
    renamed aside first and deleted only once the new one is in place, so there is always a run.

    Args:
        root: Folder holding the runs (created if needed).
        run_id: The run's folder name (see :func:`is_valid_run_id`).
        state_dict: The model's weights (saved with :func:`torch.save`).
        record: What the run is (config.json); saved with its ``run_id`` set to ``run_id``.
        metrics: Evaluation results.
        overwrite: Replace an existing run of the same name.

    Returns:
        The run's folder.

    Raises:
        ValueError: If ``run_id`` is not a safe folder name.
        FileExistsError: If the run exists and ``overwrite`` is false.
        TypeError: If ``metrics`` is not JSON-serialisable.
    """
    root, target = Path(root), check_run_target(root, run_id, overwrite)
    tmp = root / f".tmp-{run_id}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        (tmp / CONFIG_FILE).write_text(_dumps(replace(record, run_id=run_id).to_dict()), encoding="utf-8")
        (tmp / METRICS_FILE).write_text(_dumps(metrics), encoding="utf-8")
        torch.save(state_dict, tmp / MODEL_FILE)
        if target.exists():
            old = root / f".old-{run_id}-{secrets.token_hex(4)}"
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)  # put the previous run back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# -- list and load ---------------------------------------------------------------------------------
def _dig(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


class _RunResults:
    """What :class:`RunInfo` and :class:`LoadedRun` read from metrics.json, typed."""

    metrics: dict[str, Any]

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch records (``epoch``, ``train_loss``, ``val_accuracy``, ...); empty when not saved."""
        history = self.metrics.get("history")
        return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []

    def report(self, split: str) -> EvaluationReport | None:
        """The evaluation of ``"validation"`` or ``"test"``; None when the split was empty (no clips).

        Raises:
            ValueError: If the report is missing or malformed.
        """
        saved = self.metrics.get(split)
        if saved == {}:
            return None
        try:
            return EvaluationReport.from_dict(saved)
        except ValueError as error:
            raise ValueError(f"the {split} results in metrics.json are unusable: {error}") from error


def _from_record(name: str, doc: str) -> property:
    """A :class:`RunInfo` property that reads its record's field ``name`` (None when config.json is unreadable)."""
    return property(lambda info: getattr(info.record, name) if info.record else None, doc=doc)


@dataclass
class RunInfo(_RunResults):
    """A saved run as listed (weights not loaded).

    Attributes:
        run_id: Folder name.
        path: Run folder.
        record: What config.json says (None if unreadable).
        metrics: Contents of metrics.json (``{}`` if unreadable); typed by :meth:`report` and ``history``.
        error: Why the run is malformed, or ``None`` if it looks complete.
    """

    run_id: str
    path: Path
    record: RunRecord | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    model = _from_record("model", "Model name.")
    created = _from_record("created", "Creation time, ISO string.")
    status = _from_record("status", '``"finished"`` or ``"stopped"``.')
    n_parameters = _from_record("n_parameters", "Number of model parameters.")
    sweep = _from_record("sweep", 'The sweep the run is a trial of (``{"name": ..., "trial": ...}``), or None.')

    @property
    def latency_ms(self) -> float | None:
        """``metrics["latency"]["p50_ms"]``: one clip on one CPU thread, median ms; None for older runs."""
        return _optional(float, _dig(self.metrics, "latency", "p50_ms"))

    @property
    def val_accuracy(self) -> float | None:
        """``metrics["validation"]["accuracy"]``, or ``None``."""
        return _dig(self.metrics, "validation", "accuracy")

    @property
    def test_accuracy(self) -> float | None:
        """``metrics["test"]["accuracy"]``, or ``None``."""
        return _dig(self.metrics, "test", "accuracy")

    @property
    def macro_f1(self) -> float | None:
        """``metrics["test"]["macro"]["f1"]``, or ``None``."""
        return _dig(self.metrics, "test", "macro", "f1")


@dataclass
class LoadedRun(_RunResults):
    """A saved run with its weights on the CPU.

    Attributes:
        run_id: Folder name.
        path: Run folder.
        record: What config.json says.
        metrics: Contents of metrics.json; typed by :meth:`report` and ``history``.
        state_dict: The model's weights (tensors on the CPU).
    """

    run_id: str
    path: Path
    record: RunRecord
    metrics: dict[str, Any]
    state_dict: dict[str, torch.Tensor]


def _run_info(path: Path) -> RunInfo:
    """Read a run folder's JSON files and check that its weights file exists; errors go into ``error``."""
    info = RunInfo(run_id=path.name, path=path)
    try:
        info.record = _read_config(path)
    except RunError as e:
        info.error = str(e)
    try:
        info.metrics = _read_json(path, METRICS_FILE)
    except RunError as e:
        info.error = info.error or str(e)
    weights = path / MODEL_FILE
    if info.error is None and (not weights.is_file() or weights.stat().st_size == 0):
        info.error = str(_run_error(path, MODEL_FILE, "is missing" if not weights.is_file() else "is empty"))
    return info


def _sort_time(info: RunInfo) -> float:
    """Seconds since the epoch of the run's ``created`` time (local if naive), else its folder's mtime."""
    try:
        return datetime.fromisoformat(str(info.created)).timestamp()
    except (TypeError, ValueError, OverflowError, OSError):
        pass
    try:
        return info.path.stat().st_mtime
    except OSError:
        return 0.0


def list_runs(root: str | Path = DEFAULT_ROOT) -> list[RunInfo]:
    """Every run folder under ``root``, newest first.

    Folders whose names start with ``"."`` (temporary, hidden) and plain files are skipped. Malformed runs
    are listed with ``error`` set. Order: config ``"created"`` time, else the folder's modification time.

    Args:
        root: Folder holding the runs; a missing folder has no runs.

    Returns:
        The runs, newest first (ties by name, descending).
    """
    root = Path(root)
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:  # no folder (yet, or deleted meanwhile)
        return []
    infos = [_run_info(p) for p in folders]
    # Another session may delete a run while this one lists: a folder gone meanwhile is not listed.
    infos = [info for info in infos if info.error is None or info.path.is_dir()]
    return sorted(infos, key=lambda info: (_sort_time(info), info.run_id), reverse=True)


def latest_run(root: str | Path = DEFAULT_ROOT) -> RunInfo | None:
    """The newest run without errors, or ``None``."""
    return next((info for info in list_runs(root) if info.error is None), None)


def load_run(path: str | Path) -> LoadedRun:
    """Load a run folder: its record, metrics and weights (on the CPU, ``weights_only=True``).

    Args:
        path: The run folder, e.g. ``models/20261121-071500-bcresnet-3fa2``.

    Returns:
        The loaded run.

    Raises:
        RunError: If the folder or a file is missing, a JSON file is malformed, the config lacks
            ``model``, ``class_names`` or a valid ``feature_config``, or the weights fail to load.
    """
    path = Path(path)
    if not path.is_dir():
        raise _run_error(path, None, "does not exist", _NO_RUN_HINT)
    record = _read_config(path)
    metrics = _read_json(path, METRICS_FILE)
    weights = path / MODEL_FILE
    if not weights.is_file():
        raise _run_error(path, MODEL_FILE, "is missing")
    try:
        state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise _run_error(path, MODEL_FILE, f"could not be loaded: {e}") from e
    if not isinstance(state_dict, dict):
        raise _run_error(path, MODEL_FILE, f"holds a {type(state_dict).__name__}, not a state_dict")
    return LoadedRun(run_id=path.name, path=path, record=record, metrics=metrics, state_dict=state_dict)


# -- manage ----------------------------------------------------------------------------------------
def rename_run(root: str | Path, run_id: str, new_id: str) -> Path:
    """Rename a run's folder and update the ``"run_id"`` in its config.json.

    Args:
        root: Folder holding the runs.
        run_id: Current name.
        new_id: New name (see :func:`is_valid_run_id`).

    Returns:
        The run's new folder.

    Raises:
        ValueError: If ``new_id`` is not a safe folder name.
        RunError: If the run does not exist.
        FileExistsError: If ``new_id`` is taken.
    """
    _check_run_id(new_id)
    src = _run_path(root, run_id)
    if not src.is_dir():
        raise _run_error(src, None, "does not exist", _NO_RUN_HINT)
    dst = Path(root) / new_id
    if new_id == run_id:
        return src
    if dst.exists():
        raise FileExistsError(f"A run named '{new_id}' already exists in {root}: choose another name")
    os.rename(src, dst)
    try:
        config = json.loads((dst / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return dst  # a malformed run keeps its (unreadable) config; list_runs still reports it
    if isinstance(config, dict):
        try:
            write_json_atomic(dst / CONFIG_FILE, {**config, "run_id": new_id})
        except BaseException:
            os.rename(dst, src)
            raise
    return dst


def delete_run(root: str | Path, run_id: str) -> None:
    """Delete a run's folder. It is first renamed to a hidden name, so it never shows half-deleted.

    Raises:
        RunError: If the run does not exist.
    """
    path = _run_path(root, run_id)
    if not path.is_dir():
        raise _run_error(path, None, "does not exist", _NO_RUN_HINT)
    if path.is_symlink():  # a run linked in from elsewhere: remove the link, never the folder it points to
        path.unlink()
        return
    doomed = path.with_name(f".del-{run_id}-{secrets.token_hex(4)}")
    os.rename(path, doomed)
    shutil.rmtree(doomed)


def _run_files(path: Path) -> list[str]:
    """The files a run is made of, relative to its folder, in a stable order: ``config.json``, ``model.pt``,
    ``metrics.json``, what :mod:`lib.engine.run_extras` keeps (``test_embedding.npz``, ``mistakes/<index>.flac``) and the
    detector's operating point (``detector.json``, :mod:`lib.serving.stream`)."""
    names = [CONFIG_FILE, MODEL_FILE, METRICS_FILE, _EMBEDDING_FILE, DETECTOR_FILE]
    mistakes = path / _MISTAKES_DIR
    if mistakes.is_dir() and not mistakes.is_symlink():
        clips = [file.name for file in mistakes.iterdir() if _MISTAKE_CLIP.fullmatch(file.name)]
        names += [f"{_MISTAKES_DIR}/{name}" for name in sorted(clips, key=lambda name: int(name[:-5]))]
    return names


def run_zip_bytes(path: str | Path, files: list[str] | None = None) -> bytes:
    """A zip archive of a run folder, in memory (for a download button).

    Files are stored under ``<run_id>/``, so unzipping into a runs root restores the run. Exactly the run's known
    files go in (:func:`_run_files`): nothing else dropped into its folder, and never a symbolic link's target.

    Args:
        path: The run folder.
        files: Other names to pack instead, relative to ``path`` (an export folder's files); links are skipped.

    Raises:
        RunError: If the folder does not exist.
    """
    path = Path(path)
    if not path.is_dir():
        raise _run_error(path, None, "does not exist", _NO_RUN_HINT)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in _run_files(path) if files is None else files:
            if (path / name).is_symlink() or not (path / name).is_file():
                continue
            archive.write(path / name, arcname=f"{path.name}/{name}")
    return buffer.getvalue()
