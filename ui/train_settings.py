"""The Train page's settings: their widgets and the next run's :class:`lib.engine.train.TrainConfig` read from them.

:func:`draw_settings` draws the widgets, which keep their values in ``st.session_state`` (``train_model``,
``train_epochs``, ``train_lr``, ...); :func:`train_settings` turns them into a config. The Train page starts its
runs with it and the Sweep page starts every trial of a sweep from it.
"""

from __future__ import annotations

import streamlit as st

from lib.augment import AugmentConfig
from lib.device import available_devices
from lib.dsp.features import FeatureConfig
from lib.models.imagenet import ARCHITECTURES, fetch_imagenet, weights_cached
from lib.models import MODELS, finetune_parameter_counts, model_summaries
from lib.engine.runs import list_runs
from lib.settings import settings as operator_settings
from lib.engine.train import OPTIMIZERS, SCHEDULERS, TrainConfig
from lib.engine.train_config import FINETUNE_MODES
from lib.models.weights import WeightsUnavailable
from ui.augment_editor import augment_editor, edited_augment
from ui.common import active_dataset, augment_config, page_link

DEFAULTS = TrainConfig()
PERSIST = dict(persist_state="session")  # the widgets keep their values when the page is left and opened again
LEARNING_RATES = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0)
BATCH_SIZES = (4, 8, 16, 32, 64, 128, 256, 512)
SCHEDULER_HELP = {"onecycle": "warm up, then anneal (one cycle)", "cosine": "cosine decay", "none": "constant"}
FINETUNE_HELP = {"frozen": "frozen backbone: only the head trains, on embeddings computed once (fast; few clips)",
                 "last": "the head and the backbone's last layers train", "all": "everything trains"}
BACKBONE_LR_SCALES = (0.01, 0.03, 0.1, 0.3, 1.0)


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
    from lib.data.catalog import CATALOG

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


# ------------------------------------------------------------------------------------------ widgets
@st.cache_data(show_spinner=False, max_entries=16)
def summaries(n_classes: int, n_bins: int, n_frames: int) -> dict[str, dict]:
    return {s["name"]: s for s in model_summaries(n_classes, n_bins, n_frames)}


@st.cache_data(show_spinner=False, max_entries=16)
def parameter_counts(model: str, n_classes: int, finetune: str, run: str = "default") -> tuple[int, int]:
    """``(trainable, all)`` parameters of a pretrained-backbone model in fine-tuning mode ``finetune`` (``run``:
    run_embedding's)."""
    options = DEFAULTS.replace(model=model, backbone_run=run).model_kwargs
    return finetune_parameter_counts(model, n_classes, finetune, **options)  # the counts need no weights


def draw_settings(dataset, features: FeatureConfig) -> None:
    """Every setting of the next run (session-persisted widgets; the Transform lab's ``features`` shown, with a link
    to change them)."""
    info = summaries(dataset.n_classes, features.n_bins, features.n_frames)
    model_col, opt_col, data_col = st.columns(3, gap="large")
    with model_col:
        st.subheader("Model")
        names = list(MODELS)
        model = st.selectbox("Model", names, index=names.index(DEFAULTS.model), key="train_model", **PERSIST)
        count = info[model]["parameters"]  # None: run_embedding without the default run
        st.caption((f"{count:,} parameters. " if count is not None else "") + info[model]["description"])
        if has_backbone(model):
            finetune_settings(model, dataset.n_classes)
        st.number_input("Epochs", 1, 500, DEFAULTS.epochs, key="train_epochs", **PERSIST)  # passes over the data
        st.number_input("Steps (0: count epochs)", 0, 100_000, 0, key="train_steps", **PERSIST,
                        help="Optimiser steps in all; when set, the epochs follow from it. For a small dataset, "
                             "where an epoch is a single step: e.g. 100 steps. Without validation clips the last "
                             "weights are kept.")
        st.select_slider("Batch size", BATCH_SIZES, DEFAULTS.batch_size, key="train_batch", **PERSIST,
                         help="Clips per optimisation step. Lower it if you run out of memory.")
        devices = ["auto", *available_devices()]
        st.selectbox("Device", devices, key="train_device", **PERSIST,
                     help="auto picks the best available (CUDA, then Apple MPS, then CPU). One job per device "
                          "runs at a time; others wait in line.")
        if "cuda" in available_devices():
            st.checkbox("Mixed precision (bfloat16)", DEFAULTS.mixed_precision, key="train_amp", **PERSIST,
                        help="Faster on recent NVIDIA GPUs; ignored on the CPU.")
    with opt_col:
        st.subheader("Optimisation")
        optimizer = st.selectbox("Optimizer", OPTIMIZERS, key="train_optimizer", **PERSIST,
                                 help="AdamW: adaptive steps, decoupled weight decay. SGD: Nesterov momentum.")
        if st.toggle("Type an exact learning rate", key="train_lr_type", **PERSIST):
            st.number_input("Learning rate", min_value=0.0, value=DEFAULTS.learning_rate, format="%g",
                            key="train_lr_exact", **PERSIST, help="Peak learning rate; must be positive.")
        else:
            st.select_slider("Learning rate (log scale)", LEARNING_RATES, DEFAULTS.learning_rate, key="train_lr",
                             format_func=lambda v: f"{v:g}", **PERSIST, help="Peak learning rate.")
        if optimizer == "sgd":
            st.slider("Momentum", 0.0, 0.99, DEFAULTS.momentum, 0.01, key="train_momentum", **PERSIST)
        scheduler = st.selectbox("Scheduler", SCHEDULERS, key="train_scheduler", **PERSIST,
                                 help="How the learning rate changes over the run.")
        st.caption(f"Learning rate: {SCHEDULER_HELP.get(scheduler, scheduler)}.")
        st.select_slider("Weight decay", (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 0.1), DEFAULTS.weight_decay,
                         key="train_wd", format_func=lambda v: f"{v:g}", **PERSIST)
        st.slider("Label smoothing", 0.0, 0.3, DEFAULTS.label_smoothing, 0.01, key="train_smoothing", **PERSIST)
    with data_col:
        st.subheader("Data split")
        official = official_split(dataset)
        if official is not None:  # e.g. Speech Commands: folds 0/1/2 are train / validation / test lists
            st.selectbox("Split", ["official split", "grouped random split"], key="train_fold", **PERSIST,
                         help="The dataset's own validation and testing lists, as its paper uses them.")
        elif dataset.folds is not None:
            folds = sorted(set(dataset.folds))
            st.selectbox("Test split", ["grouped random split", *folds], key="train_fold", **PERSIST,
                         format_func=lambda f: f if isinstance(f, str) else f"hold out fold {f}",
                         help="The dataset has official folds: hold one out for test to compare with papers.")
        st.slider("Validation fraction", 0.05, 0.4, DEFAULTS.validation_fraction, 0.05, key="train_val", **PERSIST)
        st.slider("Test fraction", 0.05, 0.4, DEFAULTS.test_fraction, 0.05, key="train_test", **PERSIST,
                  help="Whole groups (speakers) go to one split, so no voice is both trained and tested on.")
        st.number_input("Seed", 0, 2**31 - 1, DEFAULTS.seed, key="train_seed", **PERSIST,
                        help="Same seed, same split and, on the CPU, the same run.")
    augment_and_features(features)


def augment_and_features(features: FeatureConfig) -> None:
    """The next run's augmentation (the Transform lab's, or edited here) and the features it trains on."""
    aug_col, feat_col = st.columns(2, gap="large")
    with aug_col:
        st.subheader("Augmentation")
        lab = augment_config()
        source = st.radio("Settings", ["lab", "here"], key="train_aug_source", horizontal=True, **PERSIST,
                          format_func=lambda v: {"lab": "Use the Transform lab's settings",
                                                 "here": "Edit here"}[v])
        if source == "lab":
            st.caption(f"Transform lab: {lab.summary()}.")
        else:
            try:
                st.caption(f"Training will use: {augment_editor('train_aug', lab, persist='session').summary()}.")
            except ValueError as error:
                st.warning(f"These augmentation settings are invalid: {error}")
    with feat_col:
        st.subheader("Features")
        st.markdown(f"**{features.kind}** spectrogram, {features.n_bins} bins, hop {features.hop_length} samples "
                    f"({features.hop_length / features.sample_rate * 1000:g} ms), {features.sample_rate:,} Hz, "
                    f"{features.clip_seconds:g} s clips → input shape **{features.n_bins} × {features.n_frames}**.")
        page_link("app_pages/transforms.py", "Change the features in the Transform lab")


def finetune_settings(model: str, n_classes: int) -> None:
    """A pretrained backbone's fine-tuning mode, its learning-rate scale and the trainable / frozen counts."""
    finetune = st.selectbox("Fine-tuning", FINETUNE_MODES, index=FINETUNE_MODES.index("frozen"),
                            key="train_finetune", format_func=lambda m: f"{m}: {FINETUNE_HELP[m]}", **PERSIST)
    if finetune != "frozen":
        st.select_slider("Backbone learning rate (× learning rate)", BACKBONE_LR_SCALES,
                         DEFAULTS.backbone_lr_scale, key="train_backbone_lr", format_func=lambda v: f"{v:g}",
                         **PERSIST, help="The pretrained backbone learns more slowly than the new head.")
    run = backbone_run() if model == "run_embedding" else DEFAULTS.backbone_run
    if run is None:
        return
    trainable, total = parameter_counts(model, n_classes, finetune, run)
    own = (" This model reads its own features (its pretrained frontend's): the Transform lab's feature settings "
           "are not used, only its clip length." if MODELS[model].feature_kind or MODELS[model].own_features else "")
    st.caption(f"**{trainable:,} trainable**, {total - trainable:,} frozen parameters." + own
               + (" Frozen: the augmentation below is not used (each clip's embedding is computed once)."
                  if finetune == "frozen" else ""))
    if st.checkbox("Pretrained weights", DEFAULTS.pretrained, key="train_pretrained", **PERSIST,
                   help="Start from the pretrained weights; unticked, the model trains from scratch (random "
                        "weights), e.g. offline when they cannot be downloaded.") and model in ARCHITECTURES:
        imagenet_weights(model)


def backbone_run() -> str | None:
    """run_embedding's source: a saved run picked from the runs folder (None, with a warning, when there is none)."""
    runs = [info.run_id for info in list_runs(operator_settings().runs_dir) if info.error is None]
    if not runs:
        st.warning("There is no saved run to use as a backbone yet: train one first (or choose another model).",
                   icon=":material/warning:")
        return None
    index = runs.index(DEFAULTS.backbone_run) if DEFAULTS.backbone_run in runs else 0
    return st.selectbox("Backbone run", runs, index=index, key="train_backbone_run", **PERSIST,
                        help="The saved run whose penultimate layer is the backbone; a new head learns your classes "
                             "on it. “default” is the shipped model (the ten built-in words).")


def imagenet_weights(model: str) -> None:
    """An ImageNet CNN's weights: downloaded once with a progress bar, or why not (then: train from scratch)."""
    if weights_cached(model):
        return
    arch = ARCHITECTURES[model]
    st.caption(f"{arch.title}'s ImageNet weights ({arch.megabytes:.0f} MB) are not on this machine yet: training "
               "downloads them, or download them now.")
    if st.button("Download the weights", key="train_weights_download", icon=":material/download:"):
        bar = st.progress(0.0, text="Downloading…")
        report = lambda done, total, rate, eta: bar.progress(  # noqa: E731
            done / total if total else 0.0, text=f"{done / 1e6:,.1f} of {(total or 0) / 1e6:,.1f} MB")
        try:
            fetch_imagenet(model, report)
            bar.progress(1.0, text="Downloaded.")
        except WeightsUnavailable as error:
            bar.empty()
            st.error(f"{error} Untick “Pretrained weights” to train from scratch.", icon=":material/cloud_off:")
