"""The training engine: one loop shared by the command line and the app, reporting through events.

Per batch, everything happens on the training device as batch operations: waveforms come from the in-memory
tensor, get time shift / gain / noise, become features, get SpecAugment. When no waveform-domain step is on
(the default: time shift and SpecAugment only), the features of every training clip are computed once and
cached on the device, and the time shift becomes a roll of frames; an epoch then costs only the model.

Use :func:`iter_training` to get events (:class:`StartEvent`, :class:`StepEvent`, :class:`EpochEvent`,
:class:`DoneEvent`) or :func:`run_training` with a callback; ``stop`` (a ``threading.Event``) ends the run at
the next step, and the run is saved with what it has. ``python -m lib.train --help`` is the command line.
"""

from __future__ import annotations

import argparse
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

from lib.audio import from_int16, to_int16
from lib.augment import (AUGMENT_DOMAINS, AugmentConfig, augment_features, augment_waveforms, mixup, shift_frames,
                         warp_features)
from lib.config import ConfigDict
from lib.data import AudioDataset, Split, split_dataset
from lib.device import describe_device, resolve_device
from lib.features import FeatureConfig, FeatureExtractor
from lib.infer import penultimate
from lib.metrics import classification_metrics
from lib.models import MODELS, Ensemble, build_model, count_parameters
from lib.power_augment import NoiseBank, apply_power_augment, draw_power_augment, signal_power
from lib.run_extras import save_run_extras
from lib.runs import check_run_target, new_run_id, save_run

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
    """The clips at ``indices`` as int16 ``(n, 1, n_samples)`` on ``device`` (:func:`lib.audio.to_int16`: lossless
    for clips decoded from 16-bit files; :func:`lib.audio.from_int16` gives the float clips back)."""
    indices = np.asarray(indices)
    out = torch.empty(len(indices), 1, config.n_samples, dtype=torch.int16, device=device)
    for rows, waveforms in _stream_clips(dataset, indices, config, device, chunk):
        out[rows] = to_int16(waveforms)
    return out


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
                  runs_root: str | Path = "models", run_id: str | None = None, overwrite: bool = False,
                  stop: threading.Event | None = None, save: bool = True) -> Iterator[Event]:
    """Train a model on ``dataset`` and save the run, yielding events as it goes.

    Args:
        dataset: decoded clips with labels and groups.
        feature_config: the preprocessing (saved with the run; inference repeats it exactly).
        config: the training settings.
        runs_root: folder of saved runs.
        run_id: the run's name (default: time, model and a random suffix).
        overwrite: replace an existing run of that name.
        stop: when set (from any thread), training ends at the next step and the run is saved as "stopped".
        save: write the run to ``runs_root`` (False: only events, for benchmarks).

    Yields:
        One :class:`StartEvent`, a :class:`StepEvent` per step, an :class:`EpochEvent` per epoch, then a
        :class:`DoneEvent` (also after a failure: status "failed" and the message).
    """
    try:
        yield from _train(dataset, feature_config, config, Path(runs_root), run_id, overwrite,
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
    # Three ways to make a training batch: features cached once (no waveform step is on), power spectrograms
    # cached once and augmented per batch (lib.power_augment), or waveforms augmented and featurised per batch.
    mode = ("features" if not augment.waveform_domain else
            "power" if augment.domain == "spectrogram" and feature_config.power == 2 else "waveform")
    # Features are built chunk by chunk from the dataset, so no split's waveforms are ever all in memory as
    # float32 (Speech Commands v2 would need 6.7 GB); only when waveform-domain augmentation needs them are the
    # training waveforms kept, as int16 (half that), and turned back to float one batch at a time.
    val_features, test_features = (featurize_dataset(dataset, extractor, split.validation, device),
                                   featurize_dataset(dataset, extractor, split.test, device))
    train_features = featurize_dataset(dataset, extractor, split.train, device) if mode == "features" else None
    train_power, train_clip_power = (power_dataset(dataset, extractor, split.train, device) if mode == "power"
                                     else (None, None))
    noise_bank = (NoiseBank(extractor, augment.noise_kinds, seed=config.seed)
                  if mode == "power" and augment.noise_probability > 0 else None)
    train_waveforms = _int16_waveforms(dataset, split.train, feature_config, device) if mode == "waveform" else None
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
        if mode == "features":
            features = shift_frames(train_features[index], augment.time_shift_sec, feature_config, generator)
        elif mode == "power":
            draw = draw_power_augment(len(index), feature_config, augment, generator)
            with torch.no_grad():
                features = extractor.finish(apply_power_augment(train_power[index], train_clip_power[index], draw,
                                                                noise_bank, extractor, augment.rt60_sec_max))
        else:
            waveforms = augment_waveforms(from_int16(train_waveforms[index]), feature_config.sample_rate,
                                          augment, generator)
            with torch.no_grad():
                features = extractor(waveforms)
        features = augment_features(warp_features(features, augment, generator, feature_config), augment,
                                    generator)
        labels = train_labels[index]
        features, targets = mixup(features, F.one_hot(labels, dataset.n_classes).float(), augment.mixup_alpha,
                                  generator)
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


# ----------------------------------------------------------------------------------------------- command line
def load_dataset_arg(spec: str, args: argparse.Namespace | None = None) -> AudioDataset:
    """``builtin``, a catalog key (``esc50``, ``speech_commands_v2``, ...), a folder of class sub-folders, or a CSV."""
    from lib.builtin import BuiltinSpec
    from lib.catalog import CATALOG
    from lib.data import load_source

    data_dir = Path(args.data_dir) if args else Path("data")
    if spec in CATALOG:
        from lib.download import fetch_dataset

        clip_seconds = args.clip_seconds if args else FeatureConfig().clip_seconds
        source = {"kind": "catalog", "key": spec, "root": str(fetch_dataset(spec, data_dir)),
                  "clip_seconds": clip_seconds}
    elif spec == "builtin":
        options = {}
        if args is not None:
            if args.words:
                options["words"] = tuple(w.strip() for w in args.words.split(",") if w.strip())
            options.update(clips_per_word=args.clips_per_word, include_unknown=args.unknown,
                           include_silence=args.silence, seed=args.data_seed, n_speakers=args.n_speakers,
                           female_share=None if args.female_share < 0 else args.female_share,
                           piper_clips_per_word=args.piper_clips_per_word,
                           kokoro_clips_per_word=args.kokoro_clips_per_word)
        source = {"kind": "builtin", "spec": asdict(BuiltinSpec(**options))}
    else:
        source = {"kind": "csv" if Path(spec).suffix.lower() == ".csv" else "folder", "path": spec}
    return load_source(source, data_dir)


def _parser() -> argparse.ArgumentParser:
    from lib.builtin import BuiltinSpec

    defaults, augment, builtin = TrainConfig(), AugmentConfig(), BuiltinSpec()
    p = argparse.ArgumentParser(prog="python -m lib.train", description="Train an audio classifier and save the run.")
    p.add_argument("--dataset", default="builtin",
                   help="'builtin', a real dataset key (see `python -m lib.download --list`), a folder of class "
                        "sub-folders, or a CSV manifest")
    p.add_argument("--test-fold", type=int, help="hold out this official fold for test (ESC-50, UrbanSound8K)")
    p.add_argument("--validation-fold", type=int, help="the fold for validation (default: the next one)")
    p.add_argument("--cross-validate", action="store_true",
                   help="k-fold cross-validation over the dataset's official folds; reports mean ± std accuracy")
    p.add_argument("--clip-seconds", type=float, default=FeatureConfig().clip_seconds)
    p.add_argument("--words", help="built-in set: comma-separated words (default: the ten Speech Commands keywords)")
    p.add_argument("--clips-per-word", type=int, default=builtin.clips_per_word)
    p.add_argument("--n-speakers", type=int, default=builtin.n_speakers,
                   help="built-in set: synthetic speakers (eSpeak accent + voice variant identities)")
    p.add_argument("--female-share", type=float, default=builtin.female_share,
                   help="built-in set: fraction of female voices (-1: draw every eSpeak variant alike)")
    p.add_argument("--piper-clips-per-word", type=int, default=builtin.piper_clips_per_word,
                   help="built-in set: extra clips of each word said by the Piper neural voice")
    p.add_argument("--kokoro-clips-per-word", type=int, default=builtin.kokoro_clips_per_word,
                   help="built-in set: extra clips of each word said by Kokoro neural voices (slower to make)")
    p.add_argument("--unknown", action="store_true", help="built-in set: add the _unknown_ class")
    p.add_argument("--silence", action="store_true", help="built-in set: add the _silence_ class")
    p.add_argument("--data-seed", type=int, default=0, help="built-in set: generation seed")
    p.add_argument("--data-dir", default="data", help="where datasets are cached")
    p.add_argument("--model", default=defaults.model, choices=list(MODELS))
    for name in ("epochs", "batch_size"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("learning_rate", "weight_decay", "label_smoothing", "validation_fraction", "test_fraction"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    p.add_argument("--optimizer", default=defaults.optimizer, choices=OPTIMIZERS)
    p.add_argument("--scheduler", default=defaults.scheduler, choices=SCHEDULERS)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--max-batches", type=int, default=None, help="stop each epoch after N batches (smoke runs)")
    p.add_argument("--memory-format", default=defaults.memory_format, choices=MEMORY_FORMATS,
                   help="weights and features in channels_last or contiguous layout (auto: the model's preference)")
    p.add_argument("--time-shift-sec", type=float, default=augment.time_shift_sec)
    p.add_argument("--noise-probability", type=float, default=augment.noise_probability)
    p.add_argument("--freq-warp", type=float, default=augment.freq_warp, help="max frequency scaling, e.g. 0.15")
    p.add_argument("--time-stretch", type=float, default=augment.time_stretch, help="max time scaling, e.g. 0.2")
    p.add_argument("--reverb-probability", type=float, default=augment.reverb_probability)
    p.add_argument("--rt60-sec-max", type=float, default=augment.rt60_sec_max, help="longest reverberation time")
    p.add_argument("--eq-probability", type=float, default=augment.eq_probability,
                   help="fraction of clips through a random equaliser")
    p.add_argument("--eq-db", type=float, default=augment.eq_db, help="the equaliser's largest boost/cut, dB")
    p.add_argument("--gain-db", type=float, default=augment.gain_db, help="max random gain either way, dB")
    p.add_argument("--mixup-alpha", type=float, default=augment.mixup_alpha)
    p.add_argument("--augment-domain", default=augment.domain, choices=AUGMENT_DOMAINS,
                   help="apply shift, gain, noise, reverb and EQ to cached power spectrograms (fast) or to "
                        "waveforms (exact, re-featurised every batch)")
    p.add_argument("--freq-masks", type=int, default=augment.n_freq_masks)
    p.add_argument("--time-masks", type=int, default=augment.n_time_masks)
    p.add_argument("--n-mels", type=int, default=FeatureConfig().n_mels)
    p.add_argument("--feature-kind", default=FeatureConfig().kind, choices=("mel", "mfcc", "linear"))
    p.add_argument("--lifter", type=int, default=FeatureConfig().lifter,
                   help="keep this many cepstral coefficients of each frame (a smooth envelope; 0: off)")
    p.add_argument("--run-id", help="name of the saved run (default: time-model-suffix)")
    p.add_argument("--out", default="models", help="folder of saved runs")
    p.add_argument("--force", action="store_true", help="overwrite a run of the same name")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        dataset = load_dataset_arg(args.dataset, args)
        feature_config = FeatureConfig(n_mels=args.n_mels, kind=args.feature_kind, clip_seconds=args.clip_seconds,
                                       lifter=args.lifter)
        augment = AugmentConfig(time_shift_sec=args.time_shift_sec, noise_probability=args.noise_probability,
                                n_freq_masks=args.freq_masks, n_time_masks=args.time_masks,
                                freq_warp=args.freq_warp, time_stretch=args.time_stretch,
                                reverb_probability=args.reverb_probability, rt60_sec_max=args.rt60_sec_max,
                                eq_probability=args.eq_probability, eq_db=args.eq_db, gain_db=args.gain_db,
                                mixup_alpha=args.mixup_alpha, domain=args.augment_domain)
        config = TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                             optimizer=args.optimizer, learning_rate=args.learning_rate,
                             weight_decay=args.weight_decay, scheduler=args.scheduler,
                             label_smoothing=args.label_smoothing, augment=augment,
                             validation_fraction=args.validation_fraction, test_fraction=args.test_fraction,
                             seed=args.seed, device=args.device, max_batches=args.max_batches,
                             test_fold=args.test_fold, validation_fold=args.validation_fold,
                             memory_format=args.memory_format)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if dataset.failed:
        print(f"skipped {len(dataset.failed)} file(s) that could not be decoded", file=sys.stderr)
    if args.cross_validate:
        return _cross_validate(dataset, feature_config, config, args)
    return _train_once(dataset, feature_config, config, args)


def _cross_validate(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig,
                    args: argparse.Namespace) -> int:
    """Train once per official fold held out for test; print each fold's and the mean ± std test accuracy."""
    if dataset.folds is None:
        print(f"error: {dataset.name!r} has no official folds to cross-validate over", file=sys.stderr)
        return 2
    accuracies = []
    for fold in sorted(set(dataset.folds)):
        run_id = f"{args.run_id or new_run_id(config.model)}-fold{fold}"
        print(f"--- fold {fold} held out for test")
        code = _train_once(dataset, feature_config, config.replace(test_fold=fold, validation_fold=None), args,
                           run_id=run_id, on_done=lambda done: accuracies.append(done.metrics["test"]["accuracy"]))
        if code != 0:
            return code
    mean, std = float(np.mean(accuracies)), float(np.std(accuracies))
    print(f"{len(accuracies)}-fold cross-validation: test accuracy {mean:.1%} ± {std:.1%} "
          f"({', '.join(f'{a:.1%}' for a in accuracies)})")
    return 0


def _train_once(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig, args: argparse.Namespace,
                run_id: str | None = None, on_done: Callable[[DoneEvent], None] | None = None) -> int:
    from tqdm import tqdm

    bar = None
    for event in iter_training(dataset, feature_config, config, runs_root=args.out, run_id=run_id or args.run_id,
                               overwrite=args.force):
        if isinstance(event, StartEvent):
            print(f"{dataset.name}: {event.n_train} train / {event.n_validation} validation / {event.n_test} test "
                  f"clips, {len(dataset.class_names)} classes; {config.model} ({event.n_parameters:,} parameters) "
                  f"on {event.device}")
            bar = tqdm(total=event.total_steps, unit="step", dynamic_ncols=True)
        elif isinstance(event, StepEvent):
            bar.update(1)
            bar.set_postfix(loss=f"{event.loss:.3f}", samples_s=f"{event.samples_per_sec:.0f}")
        elif isinstance(event, EpochEvent):
            bar.write(f"epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.3f} "
                      f"acc {event.train_accuracy:.1%} | val loss {event.val_loss:.3f} acc {event.val_accuracy:.1%}")
        elif isinstance(event, DoneEvent):
            if bar:
                bar.close()
            print(event.message)
            if event.run_path:
                print(f"saved run {event.run_id} in {event.run_path}")
            if on_done and event.status != "failed":
                on_done(event)
            return 0 if event.status != "failed" else 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
