"""The training engine: one loop shared by the command line and the app, reporting through events.

Per batch, everything happens on the training device as batch operations: waveforms come from the in-memory
tensor, get time shift / gain / noise, become features, get SpecAugment (the stages of :mod:`lib.augment`). When no waveform-domain step is on
(the default: time shift and SpecAugment only), the features of every training clip are computed once and
cached on the device, and the time shift becomes a roll of frames; an epoch then costs only the model.

Use :func:`iter_training` to get events (:class:`StartEvent`, :class:`StepEvent`, :class:`EpochEvent`,
:class:`DoneEvent`) or :func:`run_training` with a callback; ``stop`` (a ``threading.Event``) ends the run at
the next step, and the run is saved with what it has. ``python -m lib.train --help`` is the command line
(:mod:`lib.cli`, generated from the configuration dataclasses).
"""

from __future__ import annotations

import copy
import math
import platform
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.augment import AugmentConfig, TrainingClips, augment_batch, draw_augment
from lib.augment.pipeline import to_int16
from lib.augment.power import NoiseBank, signal_power
from lib.config import ConfigDict
from lib.data import AudioDataset, Split, split_dataset
from lib.device import describe_device, resolve_device
from lib.features import FeatureConfig, FeatureExtractor
from lib.infer import penultimate
from lib.metrics import classification_metrics
from lib.models import MODELS, Ensemble, build_model, count_parameters
from lib.run_extras import save_run_extras
from lib.runs import check_run_target, new_run_id, save_run
from lib.settings import settings

__all__ = ["TrainConfig", "StartEvent", "StepEvent", "EpochEvent", "DoneEvent", "TrainingDiverged",
           "iter_training", "run_training", "featurize", "featurize_dataset", "power_dataset", "predict_logits",
           "library_versions"]

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("onecycle", "cosine", "none")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


@dataclass(frozen=True)
class TrainConfig(ConfigDict):
    """Everything about one training run except the features, read top to bottom.

    Attributes:
        model: a name from :data:`lib.models.MODELS`.
        epochs: passes over the training split.
        batch_size: examples per step.
        optimizer: ``"adamw"`` or ``"sgd"`` (with ``momentum``, Nesterov).
        learning_rate: peak learning rate.
        weight_decay: decoupled weight decay (AdamW) or L2 (SGD).
        momentum: SGD momentum.
        scheduler: ``"onecycle"``, ``"cosine"`` or ``"none"``.
        label_smoothing: cross-entropy label smoothing.
        augment: augmentation settings.
        validation_fraction: fraction of clips (whole groups) for validation.
        test_fraction: fraction of clips (whole groups) for test.
        test_fold: hold out this fold for test when the dataset has folds (None: grouped random split).
        validation_fold: the fold for validation (None: the fold after ``test_fold``); Speech Commands'
            official split is ``test_fold=2, validation_fold=1``.
        seed: seeds initialisation, the split, shuffling and augmentation; on CPU the same seed gives the same run.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
        mixed_precision: bfloat16 autocast on CUDA (ignored elsewhere).
        memory_format: ``"auto"`` (the model's preference, :attr:`lib.models.ModelSpec.channels_last`),
            ``"channels_last"`` or ``"contiguous"``: how weights and features are laid out in memory (the same
            arithmetic, summed in another order; channels_last trains ``kws_resnet`` about 1.5x faster on a CPU).
        max_batches: stop each epoch after this many batches (smoke runs); None: all.
    """

    model: str = "kws_resnet"
    epochs: int = 15
    batch_size: int = 64
    optimizer: str = "adamw"
    learning_rate: float = 1e-2
    weight_decay: float = 1e-2
    momentum: float = 0.9
    scheduler: str = "onecycle"
    label_smoothing: float = 0.05
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    test_fold: int | None = None
    validation_fold: int | None = None
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    memory_format: str = "auto"
    max_batches: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.augment, Mapping):
            object.__setattr__(self, "augment", AugmentConfig.from_dict(self.augment))
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.memory_format not in MEMORY_FORMATS:
            raise ValueError(f"memory_format must be one of {MEMORY_FORMATS}, got {self.memory_format!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a positive finite number, got {self.learning_rate}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.max_batches is not None and self.max_batches < 1:
            raise ValueError(f"max_batches must be at least 1 or None, got {self.max_batches}")





@dataclass
class StartEvent:
    """Sent once, when data and model are ready."""

    n_train: int
    n_validation: int
    n_test: int
    n_parameters: int
    device: str
    total_steps: int
    cached_features: bool
    batches_from: str = "features"  # "features" (cached), "power" (cached, augmented per batch) or "waveform"
    kind: str = "start"


@dataclass
class StepEvent:
    """Sent after every optimisation step."""

    epoch: int
    step: int
    total_steps: int
    loss: float
    learning_rate: float
    samples_per_sec: float
    batch_size: int
    elapsed_sec: float
    kind: str = "step"


@dataclass
class EpochEvent:
    """Sent after every epoch, with validation."""

    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    elapsed_sec: float
    eta_sec: float
    kind: str = "epoch"


@dataclass
class DoneEvent:
    """Sent last: ``status`` is ``"finished"``, ``"stopped"`` or ``"failed"``."""

    status: str
    message: str
    run_id: str | None = None
    run_path: str | None = None
    metrics: dict | None = None
    kind: str = "done"


Event = StartEvent | StepEvent | EpochEvent | DoneEvent


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def library_versions() -> dict[str, str]:
    """Versions that matter to reproduce a run."""
    import sklearn
    import torchaudio

    return {"python": platform.python_version(), "torch": torch.__version__, "torchaudio": torchaudio.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


@torch.no_grad()
def featurize(extractor: FeatureExtractor, waveforms: Tensor, batch_size: int = 512) -> Tensor:
    """Features of many clips in chunks. ``(n, channels, time)`` -> ``(n, 1, bins, frames)`` on the same device."""
    chunks = [extractor(waveforms[i:i + batch_size]) for i in range(0, len(waveforms), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, *extractor.config.feature_shape, device=waveforms.device)


def _stream_clips(dataset: AudioDataset, indices: np.ndarray, config: FeatureConfig, device: torch.device | str,
                  chunk: int) -> Iterator[tuple[slice, Tensor]]:
    """The clips at ``indices``, ``chunk`` at a time: the rows they fill in an output of ``len(indices)`` rows, and
    their waveforms ``(n, 1, n_samples)`` on ``device``. Outputs are filled in place, so that no more than one chunk
    of waveforms and no second copy of the output (as ``torch.cat`` of parts would make) is ever in memory."""
    for first in range(0, len(indices), chunk):
        part = indices[first:first + chunk]
        yield (slice(first, first + len(part)),
               dataset.to_tensor(config.sample_rate, config.n_samples, part).to(device))


@torch.no_grad()
def featurize_dataset(dataset: AudioDataset, extractor: FeatureExtractor, indices: np.ndarray | None = None,
                      device: torch.device | str = "cpu", chunk: int = 2048) -> Tensor:
    """Features of a dataset's clips (all, or those at ``indices``), streamed ``chunk`` clips at a time.
    Returns ``(n, 1, bins, frames)`` on ``device``."""
    config = extractor.config
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    out = torch.empty(len(indices), *config.feature_shape, device=device)
    for rows, waveforms in _stream_clips(dataset, indices, config, device, chunk):
        out[rows] = featurize(extractor, waveforms)
    return out


@torch.no_grad()
def power_dataset(dataset: AudioDataset, extractor: FeatureExtractor, indices: np.ndarray,
                  device: torch.device | str = "cpu", chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """Power spectrograms (:meth:`FeatureExtractor.power`) and mean squares of the clips at ``indices``, streamed
    ``chunk`` clips at a time: ``(n, 1, power_bins, frames)`` and ``(n,)`` on ``device``."""
    config, indices = extractor.config, np.asarray(indices)
    powers = torch.empty(len(indices), 1, config.power_bins, config.n_frames, device=device)
    clip_powers = torch.empty(len(indices), device=device)
    for rows, waveforms in _stream_clips(dataset, indices, config, device, chunk):
        clip_powers[rows] = signal_power(waveforms)
        powers[rows] = torch.cat([extractor.power(waveforms[i:i + 512]) for i in range(0, len(waveforms), 512)])
    return powers, clip_powers


def _int16_waveforms(dataset: AudioDataset, indices: np.ndarray, config: FeatureConfig, device: torch.device,
                     chunk: int = 2048) -> Tensor:
    """The clips at ``indices`` as int16 ``(n, 1, n_samples)`` on ``device`` (:func:`lib.augment.pipeline.to_int16`)."""
    indices = np.asarray(indices)
    out = torch.empty(len(indices), 1, config.n_samples, dtype=torch.int16, device=device)
    for rows, waveforms in _stream_clips(dataset, indices, config, device, chunk):
        out[rows] = to_int16(waveforms)
    return out


def _training_clips(dataset: AudioDataset, indices: np.ndarray, extractor: FeatureExtractor, augment: AugmentConfig,
                    seed: int, device: torch.device | str) -> TrainingClips:
    """The clips at ``indices`` kept as their batches' source stage needs (:meth:`AugmentConfig.batch_source`):
    features, power spectrograms (with a noise bank seeded ``seed``) or int16 waveforms, on ``device``.

    Features are built chunk by chunk from the dataset, so no split's waveforms are ever all in memory as float32
    (Speech Commands v2 would need 6.7 GB); only when waveform-domain augmentation needs them are the training
    waveforms kept, as int16 (half that), and turned back to float one batch at a time.
    """
    clips = TrainingClips(augment, extractor)
    if clips.source == "features":
        clips.features = featurize_dataset(dataset, extractor, indices, device)
    elif clips.source == "power":
        clips.power, clips.clip_power = power_dataset(dataset, extractor, indices, device)
        if augment.noise_probability > 0:
            clips.noise_bank = NoiseBank(extractor, augment.noise_kinds, seed=seed)
    else:
        clips.waveforms = _int16_waveforms(dataset, indices, extractor.config, device)
    return clips


@torch.no_grad()
def predict_logits(model: nn.Module, features: Tensor, batch_size: int = 512) -> Tensor:
    """Model outputs in eval mode. ``(n, 1, bins, frames)`` -> ``(n, n_classes)`` float32."""
    was_training = model.training
    model.eval()
    out = [model(features[i:i + batch_size]).float() for i in range(0, len(features), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def _forward_loss(model: nn.Module, features: list[Tensor], targets: list[Tensor],
                  label_smoothing: float) -> tuple[Tensor, Tensor]:
    """Logits and loss of one training step.

    ``features``/``targets`` hold one batch (``(batch, 1, bins, frames)`` / ``(batch, n_classes)``) per ensemble
    member, or one for a single model. An :class:`~lib.models.Ensemble` is trained as separate models: member
    ``k`` sees batch ``k`` and the loss is the mean of the members' own losses. Returns the logits of every
    batch, concatenated ``(total, n_classes)``, and the loss.
    """
    members = model.members if isinstance(model, Ensemble) else [model]
    if len(members) != len(features):
        raise ValueError(f"{len(members)} model(s) but {len(features)} batch(es)")
    logits = [member(x).float() for member, x in zip(members, features)]
    losses = [F.cross_entropy(z, t, label_smoothing=label_smoothing) for z, t in zip(logits, targets)]
    return torch.cat(logits), torch.stack(losses).mean()


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum,
                               nesterov=config.momentum > 0, weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate, total_steps=total_steps,
                                                   pct_start=0.2)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return None


def _split(dataset: AudioDataset, config: TrainConfig) -> Split:
    if config.test_fold is not None:
        from lib.data import fold_split

        if dataset.folds is None:
            raise ValueError(f"test_fold={config.test_fold} was asked for, but {dataset.name!r} has no folds")
        return fold_split(dataset.folds, config.test_fold, config.validation_fold)
    return split_dataset(dataset.labels, dataset.groups, config.validation_fraction, config.test_fraction,
                         config.seed)


def _evaluate(model: nn.Module, features: Tensor, labels: Tensor) -> tuple[float, float, Tensor]:
    """Mean loss, accuracy and probabilities ``(n, n_classes)`` of a split."""
    if len(labels) == 0:
        return float("nan"), float("nan"), torch.empty(0)
    logits = predict_logits(model, features)
    loss = F.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(1) == labels).float().mean().item(), logits.softmax(1)


def _split_report(name: str, dataset: AudioDataset, indices: np.ndarray, probabilities: Tensor) -> dict:
    """Metrics of one split plus each clip's prediction (for the Evaluate page)."""
    if len(indices) == 0:
        return {}
    y_true = dataset.labels[indices]
    probabilities = probabilities.cpu().numpy()
    y_pred = probabilities.argmax(1)
    report = classification_metrics(y_true, y_pred, dataset.class_names)
    report["predictions"] = [
        {"index": int(i), "path": dataset.paths[i], "true": int(t), "pred": int(p), "confidence": float(c)}
        for i, t, p, c in zip(indices, y_true, y_pred, probabilities.max(1))]
    return report


def iter_training(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig, *,
                  runs_root: str | Path | None = None, run_id: str | None = None, overwrite: bool = False,
                  stop: threading.Event | None = None, save: bool = True) -> Iterator[Event]:
    """Train a model on ``dataset`` and save the run, yielding events as it goes.

    Args:
        dataset: decoded clips with labels and groups.
        feature_config: the preprocessing (saved with the run; inference repeats it exactly).
        config: the training settings.
        runs_root: folder of saved runs (default: the operator's, :func:`lib.settings.settings`).
        run_id: the run's name (default: time, model and a random suffix).
        overwrite: replace an existing run of that name.
        stop: when set (from any thread), training ends at the next step and the run is saved as "stopped".
        save: write the run to ``runs_root`` (False: only events, for benchmarks).

    Yields:
        One :class:`StartEvent`, a :class:`StepEvent` per step, an :class:`EpochEvent` per epoch, then a
        :class:`DoneEvent` (also after a failure: status "failed" and the message).
    """
    try:
        yield from _train(dataset, feature_config, config, Path(runs_root or settings().runs_dir), run_id, overwrite,
                          stop or threading.Event(), save)
    except TrainingDiverged as error:
        yield DoneEvent("failed", str(error))
    except torch.cuda.OutOfMemoryError:
        yield DoneEvent("failed", f"out of GPU memory with batch size {config.batch_size}: lower the batch size "
                                  "or choose a smaller model")
    except (ValueError, RuntimeError, OSError) as error:  # OSError: a taken run name, a folder not writable
        if "out of memory" in str(error).lower():
            yield DoneEvent("failed", f"out of memory with batch size {config.batch_size}: lower the batch size")
        elif isinstance(error, (ValueError, OSError)):
            yield DoneEvent("failed", str(error))
        else:
            raise


def _train(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig, runs_root: Path,
           run_id: str | None, overwrite: bool, stop: threading.Event, save: bool) -> Iterator[Event]:
    started = time.perf_counter()
    if dataset.n_classes < 2 or len(np.unique(dataset.labels)) < 2:
        raise ValueError(f"{dataset.name!r} has only one class: a classifier needs at least two classes")
    device = resolve_device(config.device)
    if save:  # a taken name or a folder that cannot be written fails now, not after the training
        check_run_target(runs_root, run_id, overwrite)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)  # CPU draws; moved to the device when applied
    split = _split(dataset, config)
    if len(split.train) == 0:
        raise ValueError("the training split is empty: lower validation/test fractions or add clips")

    extractor = FeatureExtractor(feature_config).to(device)
    augment = config.augment
    # Three ways to make a training batch (lib.augment.pipeline): features cached once (no waveform step is on),
    # power spectrograms cached once and augmented per batch, or waveforms augmented and featurised per batch.
    val_features, test_features = (featurize_dataset(dataset, extractor, split.validation, device),
                                   featurize_dataset(dataset, extractor, split.test, device))
    train_clips = _training_clips(dataset, split.train, extractor, augment, config.seed, device)
    mode = train_clips.source
    train_labels, val_labels, test_labels = (torch.as_tensor(dataset.labels[i], device=device)
                                             for i in (split.train, split.validation, split.test))

    model = build_model(config.model, dataset.n_classes, feature_config.n_bins, feature_config.n_frames).to(device)
    channels_last = (config.memory_format == "channels_last"
                     or (config.memory_format == "auto" and MODELS[config.model].channels_last))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = _optimizer(model, config)
    n_train = len(split.train)
    batches_per_epoch = math.ceil(n_train / config.batch_size)
    if config.max_batches:
        batches_per_epoch = min(batches_per_epoch, config.max_batches)
    total_steps = batches_per_epoch * config.epochs
    scheduler = _scheduler(optimizer, config, total_steps)
    autocast = device.type == "cuda" and config.mixed_precision
    n_parameters = count_parameters(model)
    yield StartEvent(n_train, len(split.validation), len(split.test), n_parameters, describe_device(device),
                     total_steps, mode != "waveform", mode)

    n_members = len(model.members) if isinstance(model, Ensemble) else 1

    def training_batch(index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One augmented batch: features ``(batch, 1, bins, frames)``, targets ``(batch, classes)``, labels."""
        labels = train_labels[index]
        draw = draw_augment(augment, feature_config, len(index), generator)
        features, targets = augment_batch(train_clips, index, F.one_hot(labels, dataset.n_classes).float(), draw)
        return features.contiguous(memory_format=memory_format), targets, labels

    history: list[dict] = []
    best = {"val_accuracy": -1.0, "state": None, "epoch": 0}
    step, status = 0, "finished"
    train_started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        # An ensemble's members each get their own shuffle (and augmentation draws): different batch orders make
        # them differ far more than different initialisations alone.
        orders = [torch.randperm(n_train, generator=generator)[:batches_per_epoch * config.batch_size]
                  for _ in range(n_members)]
        loss_sum, correct, seen = 0.0, 0, 0
        for batches in zip(*(order.split(config.batch_size) for order in orders)):
            if stop.is_set():
                status = "stopped"
                break
            step_started = time.perf_counter()
            inputs = [training_batch(batch.to(device)) for batch in batches]   # [(features, targets, labels)]
            labels = torch.cat([y for _, _, y in inputs])
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits, loss = _forward_loss(model, [f for f, _, _ in inputs], [t for _, t, _ in inputs],
                                             config.label_smoothing)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at epoch {epoch}, step {step + 1}: the learning rate "
                    f"({config.learning_rate:g}) is probably too high; try {config.learning_rate / 10:g}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            now = time.perf_counter()
            yield StepEvent(epoch, step, total_steps, loss.item(), optimizer.param_groups[0]["lr"],
                            len(labels) / max(now - step_started, 1e-9), len(labels), now - train_started)
        if seen == 0:  # stopped before this epoch did anything
            break
        val_loss, val_accuracy, _ = _evaluate(model, val_features, val_labels)
        elapsed = time.perf_counter() - train_started
        record = EpochEvent(epoch, config.epochs, loss_sum / seen, correct / seen, val_loss, val_accuracy,
                            optimizer.param_groups[0]["lr"], elapsed,
                            elapsed / step * (total_steps - step) if status == "finished" else 0.0)
        history.append({k: v for k, v in asdict(record).items() if k != "kind"})
        score = val_accuracy if not math.isnan(val_accuracy) else record.train_accuracy
        if score > best["val_accuracy"]:
            best = {"val_accuracy": score, "state": copy.deepcopy(model.state_dict()), "epoch": epoch}
        yield record
        if status == "stopped":
            break

    if step == 0:
        yield DoneEvent("stopped", "stopped before the first training step: nothing was trained or saved")
        return
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    if not all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()):
        raise TrainingDiverged(f"the weights are no longer finite numbers: the learning rate "
                               f"({config.learning_rate:g}) is probably too high; try {config.learning_rate / 10:g}")
    _, _, val_probabilities = _evaluate(model, val_features, val_labels)
    _, _, test_probabilities = _evaluate(model, test_features, test_labels)
    metrics = {"history": history, "best_epoch": best["epoch"],
               "validation": _split_report("validation", dataset, split.validation, val_probabilities),
               "test": _split_report("test", dataset, split.test, test_probabilities)}
    full_epochs, extra_steps = divmod(step, batches_per_epoch)
    ran = (f"{len(history)} epoch(s)" if status == "finished" else
           f"{step:,} of {total_steps:,} steps ({full_epochs} full epoch(s)"
           + (f" and {extra_steps} step(s) of epoch {full_epochs + 1})" if extra_steps else ")"))
    message = (f"{status} after {ran}: validation accuracy "
               f"{metrics['validation'].get('accuracy', float('nan')):.1%}, "
               f"test accuracy {metrics['test'].get('accuracy', float('nan')):.1%}")
    if not save:
        yield DoneEvent(status, message, metrics=metrics)
        return
    run_id = run_id or new_run_id(config.model)
    run_config = {
        "run_id": run_id, "model": config.model, "model_kwargs": {}, "class_names": list(dataset.class_names),
        "feature_config": feature_config.to_dict(), "train_config": config.to_dict(),
        "dataset": {"name": dataset.name, "source": dataset.source, "n_clips": len(dataset),
                    "split": {"train": len(split.train), "validation": len(split.validation), "test": len(split.test)}},
        "versions": library_versions(), "device": describe_device(device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_sec": round(time.perf_counter() - started, 2), "status": status, "n_parameters": n_parameters,
        "best_epoch": best["epoch"]}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = save_run(runs_root, run_id, state_dict=state, config=run_config, metrics=metrics, overwrite=overwrite)
    # The run keeps its misclassified test clips and its test embedding, to show them where the dataset is not.
    save_run_extras(path, metrics["test"], dataset.clip, penultimate(model.eval(), test_features).numpy())
    yield DoneEvent(status, message, run_id, str(path), metrics)


def run_training(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig,
                 callback: Callable[[Event], None] | None = None, **kwargs) -> DoneEvent:
    """:func:`iter_training` with a callback for each event; returns the final :class:`DoneEvent`."""
    done = None
    for event in iter_training(dataset, feature_config, config, **kwargs):
        if callback:
            callback(event)
        done = event
    assert isinstance(done, DoneEvent)
    return done


if __name__ == "__main__":  # the command line lives in lib.cli
    from lib.cli import main
    sys.exit(main())
