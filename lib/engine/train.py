"""The training engine: one loop shared by the command line and the app, reporting through events.

Per batch, everything happens on the training device as batch operations: waveforms come from the in-memory
tensor, get time shift / gain / noise, become features, get SpecAugment (the stages of :mod:`lib.augment`). When no waveform-domain step is on
(the default: time shift and SpecAugment only), the features of every training clip are computed once and
cached on the device, and the time shift becomes a roll of frames; an epoch then costs only the model.

Use :func:`iter_training` to get events (:class:`StartEvent`, :class:`StepEvent`, :class:`EpochEvent`,
:class:`DoneEvent`) or :func:`run_training` with a callback; ``stop`` (a ``threading.Event``) ends the run at
the next step, and the run is saved with what it has. ``python -m lib.engine.train --help`` is the command line
(:mod:`lib.engine.cli`, generated from the configuration dataclasses).
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
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.augment import AugmentConfig, TrainingClips, augment_batch, draw_augment
from lib.dsp.audio import to_int16
from lib.augment.power import NoiseBank, signal_power
from lib.data.sources import AudioDataset, Split, split_dataset
from lib.device import describe_device, resolve_device
from lib.engine.evaluate import split_report
from lib.dsp.features import FeatureConfig, FeatureExtractor
from lib.serving.infer import Classifier, penultimate
from lib.models import MODELS, Ensemble, build_model, count_parameters, model_features
from lib.engine.run_extras import save_run_extras
from lib.engine.runs import DatasetRecord, RunRecord, check_run_target, new_run_id, save_run
from lib.settings import settings
from lib.engine.train_config import MEMORY_FORMATS, OPTIMIZERS, SCHEDULERS, TrainConfig

__all__ = ["TrainConfig", "StartEvent", "StepEvent", "EpochEvent", "DoneEvent", "TrainingDiverged",
           "iter_training", "run_training", "featurize", "featurize_dataset", "power_dataset", "predict_logits",
           "library_versions", "MEMORY_FORMATS", "OPTIMIZERS", "SCHEDULERS"]


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
    batches_from: str = "features"  # "features" (cached), "power" (cached, augmented per batch), "waveform" or
    # "embeddings" (a frozen backbone's, cached; only the head trains)
    n_trainable: int | None = None  # parameters that train (fewer than n_parameters when a backbone is frozen)
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
def featurize(extractor: FeatureExtractor, waveforms: Tensor, batch_size: int = 128) -> Tensor:
    """Features of many clips in chunks. ``(n, channels, time)`` -> ``(n, 1, bins, frames)`` on the same device.
    128 clips a chunk: their spectrograms stay in the CPU's caches (2,000 clips: 1.1 s on one thread, 2.5 s by
    512)."""
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
    """The clips at ``indices`` as int16 ``(n, 1, n_samples)`` on ``device`` (:func:`lib.dsp.audio.to_int16`: lossless
    for clips decoded from 16-bit files; :func:`lib.dsp.audio.from_int16` gives the float clips back)."""
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


def _frozen_head(model: nn.Module, train_features: Tensor, train_labels: Tensor, val_features: Tensor,
                 val_labels: Tensor, n_classes: int) -> tuple[nn.Module, Callable, tuple[Tensor, Tensor], str]:
    """A frozen backbone's run: every clip's pooled embedding computed once (``(n, dim)``, un-augmented), and the
    head that trains on them. Returns the head, its ``training_batch``, its validation set and the batch source
    ``"embeddings"``. The head's modules are the model's own, so the model holds what the head learns."""
    with torch.no_grad():
        model.eval()
        embed = lambda features: torch.cat([model.embed(features[i:i + 256]) for i in range(0, len(features), 256)]
                                           or [torch.empty(0, 0)])  # noqa: E731
        train_embeddings, val_embeddings = embed(train_features), embed(val_features)
    head = model.head_module()

    def training_batch(index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        labels = train_labels[index]
        return train_embeddings[index], F.one_hot(labels, n_classes).float(), labels

    return head, training_batch, (val_embeddings, val_labels), "embeddings"


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


def _parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The parameters that train, a pretrained backbone's at ``backbone_lr_scale`` times the learning rate."""
    backbone = set(model.backbone_parameters()) if hasattr(model, "backbone_parameters") else set()
    rest = [p for p in model.parameters() if p.requires_grad and p not in backbone]
    groups = [{"params": rest, "lr": config.learning_rate}]
    if backbone:
        groups.append({"params": [p for p in model.parameters() if p in backbone],
                       "lr": config.learning_rate * config.backbone_lr_scale})
    return groups


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = _parameter_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum,
                               nesterov=config.momentum > 0, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    if config.scheduler == "onecycle":
        # warm up for the first 20% of the steps; with exactly 5 steps that phase would end at step 0 and
        # OneCycleLR divides by its length (ZeroDivisionError), so 25% there
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total_steps, pct_start=0.25 if total_steps == 5 else 0.2)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return None


def _split(dataset: AudioDataset, config: TrainConfig) -> Split:
    if config.test_fold is not None:
        from lib.data.sources import fold_split

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


def iter_training(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig, *,
                  runs_root: str | Path | None = None, run_id: str | None = None, overwrite: bool = False,
                  stop: threading.Event | None = None, save: bool = True,
                  sweep: dict | None = None) -> Iterator[Event]:
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
        sweep: the sweep this run is a trial of, ``{"name": ..., "trial": number}`` (saved in its record).

    Yields:
        One :class:`StartEvent`, a :class:`StepEvent` per step, an :class:`EpochEvent` per epoch, then a
        :class:`DoneEvent` (also after a failure: status "failed" and the message).
    """
    try:
        yield from _train(dataset, feature_config, config, Path(runs_root or settings().runs_dir), run_id, overwrite,
                          stop or threading.Event(), save, sweep)
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


@dataclass
class _Optimisation:
    """The optimiser, its learning-rate schedule and the step counts of one run."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    batches_per_epoch: int
    total_steps: int
    autocast: bool
    epochs: int


def _optimisation(model: nn.Module, config: TrainConfig, n_train: int, device: torch.device) -> _Optimisation:
    """The optimiser and schedule for ``config.epochs`` epochs over ``n_train`` clips (``max_batches`` caps each),
    or, when ``config.steps`` is set, for that many steps (as many epochs as they need, the last maybe cut short)."""
    optimizer = _optimizer(model, config)
    batches_per_epoch = math.ceil(n_train / config.batch_size)
    if config.max_batches:
        batches_per_epoch = min(batches_per_epoch, config.max_batches)
    if config.steps is None:
        epochs, total_steps = config.epochs, batches_per_epoch * config.epochs
    else:
        epochs, total_steps = math.ceil(config.steps / batches_per_epoch), config.steps
    return _Optimisation(optimizer, _scheduler(optimizer, config, total_steps), batches_per_epoch, total_steps,
                         device.type == "cuda" and config.mixed_precision, epochs)


def _build(config: TrainConfig, n_classes: int, feature_config: FeatureConfig,
           device: torch.device) -> tuple[nn.Module, torch.memory_format]:
    """The model, on ``device`` in the memory format ``config.memory_format`` asks for, and that format."""
    kwargs = {"weights_file": config.weights_file} if config.weights_file else {}
    model = build_model(config.model, n_classes, feature_config.n_bins, feature_config.n_frames,
                        weights=config.pretrained, **kwargs, **config.model_kwargs).to(device)
    if hasattr(model, "set_finetune"):  # a pretrained backbone: frozen, its last layers, or all of it trains
        model.set_finetune(config.finetune)
    channels_last = (config.memory_format == "channels_last"
                     or (config.memory_format == "auto" and MODELS[config.model].channels_last))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(memory_format=memory_format), memory_format


@dataclass
class _Outcome:
    """What the epochs leave: their history, the best epoch's weights, the steps taken and the status."""

    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"val_accuracy": -1.0, "state": None, "epoch": 0})
    step: int = 0
    status: str = "finished"


def _optimisation_step(model: nn.Module, inputs: list[tuple[Tensor, Tensor, Tensor]], run: _Optimisation,
                       config: TrainConfig, device: torch.device, epoch: int, step: int) -> tuple[Tensor, Tensor]:
    """One step on the batches ``inputs`` (``(features, targets, labels)`` per ensemble member): logits
    ``(total, n_classes)`` and the loss. Raises :class:`TrainingDiverged` on a non-finite loss."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.autocast):
        logits, loss = _forward_loss(model, [f for f, _, _ in inputs], [t for _, t, _ in inputs],
                                     config.label_smoothing)
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"the loss became {loss.item()} at epoch {epoch}, step {step + 1}: the learning rate "
            f"({config.learning_rate:g}) is probably too high; try {config.learning_rate / 10:g}")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    if run.scheduler is not None:
        run.scheduler.step()
    return logits, loss


def _epochs(model: nn.Module, training_batch: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]], n_train: int,
            run: _Optimisation, config: TrainConfig, device: torch.device, validation: tuple[Tensor, Tensor],
            stop: threading.Event, generator: torch.Generator) -> Iterator[Event]:
    """The training epochs, yielding a :class:`StepEvent` per step and an :class:`EpochEvent` per epoch; returns
    the :class:`_Outcome` (``outcome = yield from _epochs(...)``)."""
    outcome = _Outcome()
    n_members = len(model.members) if isinstance(model, Ensemble) else 1
    train_started = time.perf_counter()
    for epoch in range(1, run.epochs + 1):
        model.train()
        # An ensemble's members each get their own shuffle (and augmentation draws): different batch orders make
        # them differ far more than different initialisations alone.
        orders = [torch.randperm(n_train, generator=generator)[:run.batches_per_epoch * config.batch_size]
                  for _ in range(n_members)]
        loss_sum, correct, seen = 0.0, 0, 0
        for batches in zip(*(order.split(config.batch_size) for order in orders)):
            if stop.is_set():
                outcome.status = "stopped"
                break
            if outcome.step == run.total_steps:  # ``steps`` reached inside the last epoch
                break
            step_started = time.perf_counter()
            inputs = [training_batch(batch.to(device)) for batch in batches]   # [(features, targets, labels)]
            labels = torch.cat([y for _, _, y in inputs])
            logits, loss = _optimisation_step(model, inputs, run, config, device, epoch, outcome.step)
            outcome.step += 1
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            now = time.perf_counter()
            yield StepEvent(epoch, outcome.step, run.total_steps, loss.item(), run.optimizer.param_groups[0]["lr"],
                            len(labels) / max(now - step_started, 1e-9), len(labels), now - train_started)
        if seen == 0:  # stopped before this epoch did anything
            break
        val_loss, val_accuracy, _ = _evaluate(model, *validation)
        elapsed = time.perf_counter() - train_started
        record = EpochEvent(epoch, run.epochs, loss_sum / seen, correct / seen, val_loss, val_accuracy,
                            run.optimizer.param_groups[0]["lr"], elapsed,
                            elapsed / outcome.step * (run.total_steps - outcome.step)
                            if outcome.status == "finished" else 0.0)
        outcome.history.append({k: v for k, v in asdict(record).items() if k != "kind"})
        score = val_accuracy if not math.isnan(val_accuracy) else record.train_accuracy
        if config.steps is not None and math.isnan(val_accuracy):  # no validation: the last weights are kept
            outcome.best = {"val_accuracy": score, "state": None, "epoch": epoch}
        elif score > outcome.best["val_accuracy"]:
            outcome.best = {"val_accuracy": score, "state": copy.deepcopy(model.state_dict()), "epoch": epoch}
        yield record
        if outcome.status == "stopped":
            break
    return outcome


def _done_message(outcome: _Outcome, run: _Optimisation, metrics: dict) -> str:
    """What the run did and its scores, in one line."""
    full_epochs, extra_steps = divmod(outcome.step, run.batches_per_epoch)
    ran = (f"{len(outcome.history)} epoch(s)" if outcome.status == "finished" else
           f"{outcome.step:,} of {run.total_steps:,} steps ({full_epochs} full epoch(s)"
           + (f" and {extra_steps} step(s) of epoch {full_epochs + 1})" if extra_steps else ")"))
    return (f"{outcome.status} after {ran}: validation accuracy "
            f"{metrics['validation'].get('accuracy', float('nan')):.1%}, "
            f"test accuracy {metrics['test'].get('accuracy', float('nan')):.1%}")


def _run_record(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig, split: Split,
                device: torch.device, seconds: float, outcome: _Outcome, n_parameters: int, model: nn.Module,
                sweep: dict | None = None) -> RunRecord:
    """What the run saves in config.json (with the pretrained weights ``model`` started from)."""
    return RunRecord(
        model=config.model, class_names=list(dataset.class_names), feature_config=feature_config,
        train_config=config,
        dataset=DatasetRecord(dataset.name, dataset.source, len(dataset),
                              {"train": len(split.train), "validation": len(split.validation),
                               "test": len(split.test)}),
        versions=library_versions(), device=describe_device(device),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), duration_sec=round(seconds, 2),
        status=outcome.status, n_parameters=n_parameters, best_epoch=outcome.best["epoch"], sweep=sweep,
        weights=getattr(model, "weights_record", None))


def _train(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig, runs_root: Path,
           run_id: str | None, overwrite: bool, stop: threading.Event, save: bool,
           sweep: dict | None = None) -> Iterator[Event]:
    """:func:`iter_training`'s work: the split and its features, the model, the epochs, then :func:`_finish`."""
    started = time.perf_counter()
    feature_config = model_features(config.model, feature_config, **config.model_kwargs)  # a backbone's own
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
    val_features, test_features = (featurize_dataset(dataset, extractor, split.validation, device),
                                   featurize_dataset(dataset, extractor, split.test, device))
    train_labels, val_labels, test_labels = (torch.as_tensor(dataset.labels[i], device=device)
                                             for i in (split.train, split.validation, split.test))
    if config.finetune == "frozen":  # the backbone's embeddings once, then only the head trains on them
        model, _ = _build(config, dataset.n_classes, feature_config, device)
        trained, training_batch, validation, mode = _frozen_head(
            model, featurize_dataset(dataset, extractor, split.train, device), train_labels, val_features,
            val_labels, dataset.n_classes)
    else:
        train_clips = _training_clips(dataset, split.train, extractor, config.augment, config.seed, device)
        mode = train_clips.source
        model, memory_format = _build(config, dataset.n_classes, feature_config, device)
        trained, validation = model, (val_features, val_labels)

        def training_batch(index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            """One augmented batch: features ``(batch, 1, bins, frames)``, targets ``(batch, classes)``, labels."""
            labels = train_labels[index]
            draw = draw_augment(config.augment, feature_config, len(index), generator)
            features, targets = augment_batch(train_clips, index, F.one_hot(labels, dataset.n_classes).float(), draw)
            return features.contiguous(memory_format=memory_format), targets, labels

    run = _optimisation(trained, config, len(split.train), device)
    n_parameters = count_parameters(model, trainable_only=False)
    yield StartEvent(len(split.train), len(split.validation), len(split.test), n_parameters,
                     describe_device(device), run.total_steps, mode != "waveform", mode, count_parameters(model))
    outcome = yield from _epochs(trained, training_batch, len(split.train), run, config, device, validation, stop,
                                 generator)
    if trained is not model and outcome.best["state"] is not None:  # the best head, inside the whole model
        trained.load_state_dict(outcome.best["state"])
        outcome.best["state"] = None
    if outcome.step == 0:
        yield DoneEvent("stopped", "stopped before the first training step: nothing was trained or saved")
        return
    held_out = {"validation": (split.validation, val_features, val_labels),
                "test": (split.test, test_features, test_labels)}
    yield _finish(model, outcome, run, held_out, dataset, feature_config, config, split, device,
                  started, n_parameters, save, runs_root, run_id, overwrite, sweep)


def _finish(model: nn.Module, outcome: _Outcome, run: _Optimisation,
            held_out: dict[str, tuple[np.ndarray, Tensor, Tensor]], dataset: AudioDataset,
            feature_config: FeatureConfig, config: TrainConfig, split: Split, device: torch.device, started: float,
            n_parameters: int, save: bool, runs_root: Path, run_id: str | None, overwrite: bool,
            sweep: dict | None = None) -> DoneEvent:
    """Keep the best epoch's weights, evaluate the validation and test splits (``held_out``: their indices,
    features and labels) with :func:`lib.engine.evaluate.split_report`, save the run (unless ``save`` is false) and
    say so in the :class:`DoneEvent`. ``started`` is the run's :func:`time.perf_counter` start."""
    if outcome.best["state"] is not None:
        model.load_state_dict(outcome.best["state"])
    if not all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()):
        raise TrainingDiverged(f"the weights are no longer finite numbers: the learning rate "
                               f"({config.learning_rate:g}) is probably too high; try {config.learning_rate / 10:g}")
    reports = {name: split_report(dataset, indices, _evaluate(model, features, labels)[2])
               for name, (indices, features, labels) in held_out.items()}
    metrics = {"history": outcome.history, "best_epoch": outcome.best["epoch"],
               **{name: report.to_dict() if report else {} for name, report in reports.items()},
               # one clip at a time on one CPU thread, as deployed (Runs table, sweeps' latency objective)
               "latency": Classifier(copy.deepcopy(model).cpu(), feature_config, dataset.class_names).latency()}
    message = _done_message(outcome, run, metrics)
    if not save:
        return DoneEvent(outcome.status, message, metrics=metrics)
    run_id = run_id or new_run_id(config.model)
    record = _run_record(dataset, feature_config, config, split, device, time.perf_counter() - started, outcome,
                         n_parameters, model, sweep)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = save_run(runs_root, run_id, state_dict=state, record=record, metrics=metrics, overwrite=overwrite)
    # The run keeps its misclassified test clips and its test embedding, to show them where the dataset is not.
    save_run_extras(path, reports["test"], dataset.clip, penultimate(model.eval(), held_out["test"][1]).numpy())
    return DoneEvent(outcome.status, message, run_id, str(path), metrics)


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


if __name__ == "__main__":  # the command line lives in lib.engine.cli
    from lib.device import keep_freed_memory
    from lib.engine.cli import main

    keep_freed_memory()  # a process of its own that trains
    sys.exit(main())
