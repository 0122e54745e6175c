"""The settings of one training run (everything but the features), read top to bottom.

Kept apart from the engine (:mod:`lib.engine.train`) so that a saved run's record (:mod:`lib.engine.runs`) can hold a typed
:class:`TrainConfig` without importing the engine, which itself saves runs.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Mapping

from lib.augment import AugmentConfig
from lib.config import ConfigDict
from lib.models import MODELS

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULERS", "MEMORY_FORMATS", "FINETUNE_MODES"]

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("onecycle", "cosine", "none")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
FINETUNE_MODES = ("all", "last", "frozen")


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
        steps: train for this many optimiser steps in all (None: ``epochs`` full epochs). For small datasets,
            where an epoch is one or two steps: the epochs follow from it (the last one may be cut short), the
            learning-rate schedule spans exactly these steps, and a run without validation clips keeps its last
            weights (no "best epoch" chosen by training accuracy).
        finetune: for a model with a pretrained backbone (``speech_embedding``, ``run_embedding``, the ImageNet CNNs,
            ...): ``"frozen"`` (the backbone's embeddings are computed once and cached, only the head trains,
            augmentation is not used), ``"last"`` (the head and the backbone's last layers) or ``"all"``. Other models
            train whole (``"all"``).
        backbone_lr_scale: the backbone's learning rate, as a fraction of ``learning_rate`` (fine-tuning).
        backbone_run: ``run_embedding`` only: the saved run (its name in the runs folder) whose penultimate layer is
            the backbone; ``"default"`` is the shipped model.
        pretrained: a model with pretrained weights starts from them; False: from random weights (from scratch,
            e.g. offline when the weights cannot be downloaded). Other models ignore it.
        weights_file: a ``.pth`` state dict to start an ImageNet CNN from instead of its standard weights (the
            network's own layout, 1000 classes); None: the standard ones.
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
    steps: int | None = None
    finetune: str = "all"
    backbone_lr_scale: float = 0.1
    backbone_run: str = "default"
    pretrained: bool = True
    weights_file: str | None = None

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
        if self.finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {self.finetune!r}")
        if self.finetune != "all" and not MODELS[self.model].pretrained:
            raise ValueError(f"finetune={self.finetune!r} needs a model with a pretrained backbone "
                             f"({', '.join(n for n, s in MODELS.items() if s.pretrained)}); {self.model!r} trains "
                             f"whole: use finetune='all'")
        if self.weights_file is not None and not self.pretrained:
            raise ValueError("weights_file is a pretrained start, but pretrained is False (random weights): leave "
                             "weights_file empty to train from scratch, or set pretrained=True to start from the file")
        if self.weights_file is not None and "weights_file" not in inspect.signature(
                MODELS[self.model].builder).parameters:
            raise ValueError(f"weights_file is for the ImageNet CNNs; {self.model!r} cannot start from a .pth file: "
                             "leave it empty")
        if not (0 < self.backbone_lr_scale <= 1):
            raise ValueError(f"backbone_lr_scale must be in (0, 1], got {self.backbone_lr_scale}")
        if self.max_batches is not None and self.max_batches < 1:
            raise ValueError(f"max_batches must be at least 1 or None, got {self.max_batches}")
        if self.steps is not None and (isinstance(self.steps, bool) or self.steps < 1):
            raise ValueError(f"steps must be at least 1 or None, got {self.steps}")
        if not isinstance(self.backbone_run, str) or not self.backbone_run.strip():
            raise ValueError(f"backbone_run must name a saved run, got {self.backbone_run!r}")

    @property
    def model_kwargs(self) -> dict:
        """What the model's builder gets besides its shape (:func:`lib.models.build_model`): ``{"run":
        backbone_run}`` for ``run_embedding``, else nothing."""
        return {"run": self.backbone_run} if self.model == "run_embedding" else {}
