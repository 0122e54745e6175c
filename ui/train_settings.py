"""The Train page's settings read from the session: the next run's :class:`lib.train.TrainConfig`.

The Train page's widgets keep their values in ``st.session_state`` (``train_model``, ``train_epochs``,
``train_lr``, ...); :func:`train_settings` turns them into a config. The Train page starts its runs with it and
the Sweep page starts every trial of a sweep from it.
"""

from __future__ import annotations

import streamlit as st

from lib.augment import AugmentConfig
from lib.models import MODELS
from lib.train import TrainConfig
from ui.augment_editor import edited_augment
from ui.common import active_dataset, augment_config

DEFAULTS = TrainConfig()


def has_backbone(model: str) -> bool:
    """True for a model with a pretrained backbone (it can be frozen or fine-tuned)."""
    return model in MODELS and MODELS[model].pretrained


def chosen_augment() -> AugmentConfig:
    """The augmentation chosen on the Train page: the Transform lab's, or the one edited here (raises ValueError when
    the settings are invalid)."""
    lab = augment_config()
    return lab if st.session_state.get("train_aug_source", "lab") == "lab" else edited_augment("train_aug", lab)


def official_split(dataset) -> tuple[int, int] | None:
    """``(test_fold, validation_fold)`` of a real dataset's fixed official split, else None."""
    from lib.catalog import CATALOG

    source = getattr(dataset, "source", None) or {}
    card = CATALOG.get(source.get("key")) if source.get("kind") == "catalog" else None
    return card.official_split if card is not None else None


def train_settings() -> TrainConfig:
    """The TrainConfig of the Train page's widgets (raises ValueError with a message when a setting is invalid)."""
    s = st.session_state
    learning_rate = s.get("train_lr_exact") if s.get("train_lr_type") else s.get("train_lr", DEFAULTS.learning_rate)
    fold = s.get("train_fold", "grouped random split")
    test_fold, validation_fold = None, None
    if fold == "official split":
        test_fold, validation_fold = official_split(active_dataset(show_errors=False)) or (None, None)
    elif not isinstance(fold, str):
        test_fold = int(fold)
    model = s.get("train_model", DEFAULTS.model)
    steps = int(s.get("train_steps", 0) or 0)
    return TrainConfig(
        model=model, epochs=int(s.get("train_epochs", DEFAULTS.epochs)), steps=steps or None,
        finetune=s.get("train_finetune", "frozen") if has_backbone(model) else DEFAULTS.finetune,
        backbone_lr_scale=float(s.get("train_backbone_lr", DEFAULTS.backbone_lr_scale)),
        pretrained=bool(s.get("train_pretrained", DEFAULTS.pretrained)),
        backbone_run=s.get("train_backbone_run") or DEFAULTS.backbone_run,
        batch_size=int(s.get("train_batch", DEFAULTS.batch_size)),
        optimizer=s.get("train_optimizer", DEFAULTS.optimizer),
        learning_rate=float(learning_rate if learning_rate is not None else 0.0),
        weight_decay=float(s.get("train_wd", DEFAULTS.weight_decay)),
        momentum=float(s.get("train_momentum", DEFAULTS.momentum)),
        scheduler=s.get("train_scheduler", DEFAULTS.scheduler),
        label_smoothing=float(s.get("train_smoothing", DEFAULTS.label_smoothing)),
        augment=chosen_augment(),
        validation_fraction=float(s.get("train_val", DEFAULTS.validation_fraction)),
        test_fraction=float(s.get("train_test", DEFAULTS.test_fraction)),
        test_fold=test_fold, validation_fold=validation_fold,
        seed=int(s.get("train_seed", DEFAULTS.seed)), device=s.get("train_device", DEFAULTS.device),
        mixed_precision=bool(s.get("train_amp", DEFAULTS.mixed_precision)))

