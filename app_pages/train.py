"""Train: choose a model and its settings, train it in the background and watch loss and accuracy live; start more
runs while one trains (they wait in line) and name them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

import plotly.graph_objects as go
import streamlit as st
import torch

from lib.device import available_devices
from lib.imagenet import ARCHITECTURES, fetch_imagenet, weights_cached
from lib.features import FeatureConfig
from lib.jobs import JOB_QUEUE, TrainingJob
from lib.models import MODELS, build_model, count_parameters, model_features, model_summaries
from lib.plots import fig_curves, fig_steps
from lib.runs import check_run_target, is_valid_run_id, list_runs
from lib.settings import settings as operator_settings
from lib.train import OPTIMIZERS, SCHEDULERS
from lib.train_config import FINETUNE_MODES
from lib.weights import WeightsUnavailable
from ui.augment_editor import augment_editor
from ui.common import active_dataset, augment_config, feature_config, page_header, page_link
from ui.train_settings import DEFAULTS, has_backbone, official_split
from ui.train_settings import train_settings as settings

LEARNING_RATES = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0)
BATCH_SIZES = (4, 8, 16, 32, 64, 128, 256, 512)
SCHEDULER_HELP = {"onecycle": "warm up, then anneal (one cycle)", "cosine": "cosine decay", "none": "constant"}
FINETUNE_HELP = {"frozen": "frozen backbone: only the head trains, on embeddings computed once (fast; few clips)",
                 "last": "the head and the backbone's last layers train", "all": "everything trains"}
BACKBONE_LR_SCALES = (0.01, 0.03, 0.1, 0.3, 1.0)


# ----------------------------------------------------------------------------------------------- helpers
@st.cache_data(show_spinner=False, max_entries=16)
def summaries(n_classes: int, n_bins: int, n_frames: int) -> dict[str, dict]:
    return {s["name"]: s for s in model_summaries(n_classes, n_bins, n_frames)}


@st.cache_data(show_spinner=False, max_entries=16)
def parameter_counts(model: str, n_classes: int, finetune: str, run: str = "default") -> tuple[int, int]:
    """``(trainable, all)`` parameters of a pretrained-backbone model in fine-tuning mode ``finetune`` (``run``:
    run_embedding's)."""
    options = DEFAULTS.replace(model=model, backbone_run=run).model_kwargs
    own = model_features(model, FeatureConfig(), **options)  # the features it reads; the counts need no weights
    with torch.device("meta"):  # shapes only: nothing allocated or initialised
        network = build_model(model, n_classes, own.n_bins, own.n_frames, weights=False, **options)
    network.set_finetune(finetune)
    return count_parameters(network), count_parameters(network, trainable_only=False)


def find_job(job_id) -> TrainingJob | None:
    return next((job for job in JOB_QUEUE.jobs if job.job_id == job_id), None)


def session_jobs() -> list[TrainingJob]:
    """This session's training jobs still on the server (``train_jobs``: their ids, oldest first)."""
    ids = set(st.session_state.get("train_jobs", []))
    return [job for job in JOB_QUEUE.jobs if job.job_id in ids]


def focus_job(jobs: list[TrainingJob]) -> TrainingJob | None:
    """The job the live view shows: the session's running one, else its next in line, else its latest that saved
    a run, else its latest."""
    saved = [j for j in jobs if j.ended and j.snapshot().done.run_id]
    return (next((j for j in jobs if j.state == "running"), None) or next((j for j in jobs if not j.ended), None)
            or (saved[-1] if saved else None) or (jobs[-1] if jobs else None))


def name_problem(name: str) -> str | None:
    """Why a new run cannot be called ``name`` (and what to do), or None when it can."""
    if not is_valid_run_id(name):
        return (f"“{name}” cannot be a run name: use letters, digits, '-', '_' and '.' (not first), at most 128 "
                "characters. Change it, or leave the field empty for an automatic name.")
    try:
        check_run_target(operator_settings().runs_dir, name)
    except FileExistsError:
        return (f"A run called “{name}” already exists: choose another name, or rename or delete that run on the "
                "Runs page.")
    except (ValueError, OSError) as error:
        return f"Cannot save a run as “{name}”: {error}."
    if any(job.run_id == name and not job.ended for job in JOB_QUEUE.jobs):
        return f"A training job that is waiting or running will save a run called “{name}”: choose another name."
    return None


def figure(name: str, version: tuple, build: Callable[[], go.Figure]) -> go.Figure:
    """The live view's figure ``name``, rebuilt only when ``version`` (job id, number of events) changes."""
    cache = st.session_state.setdefault("train_figures", {})
    if name not in cache or cache[name][0] != version:
        cache[name] = (version, build())
    return cache[name][1]


def seconds(value: float | None) -> str:
    if value is None:
        return "…"
    value = int(round(value))
    return f"{value // 60} min {value % 60:02d} s" if value >= 60 else f"{value} s"


# --------------------------------------------------------------------------------------------- callbacks
def start() -> None:
    """Queue a job with the page's settings (and the typed run name); it starts when its device is free."""
    st.session_state["train_error"] = None
    dataset = active_dataset(show_errors=False)
    if dataset is None:
        st.session_state["train_error"] = "The active dataset could not be opened: choose another on the Dataset page."
        return
    name = (st.session_state.get("train_run_name") or "").strip() or None
    problem = name_problem(name) if name else None
    if problem:
        st.session_state["train_error"] = problem
        return
    try:
        config = settings()
        job = JOB_QUEUE.submit(dataset, feature_config(), config, run_id=name)  # into the operator's runs folder
    except ValueError as error:
        st.session_state["train_error"] = f"Cannot start training: {error}. Change the setting and start again."
        return
    st.session_state["train_job_id"] = job.job_id
    st.session_state["train_jobs"] = [*st.session_state.get("train_jobs", []), job.job_id]
    st.session_state["train_run_name"] = ""  # a name is for one run


def stop() -> None:
    """Stop the job the live view shows (a waiting one is cancelled)."""
    job = focus_job(session_jobs())
    if job is not None:
        job.stop()


def draw_settings(dataset) -> None:
    """Every setting of the next run (session-persisted widgets)."""
    info = summaries(dataset.n_classes, features.n_bins, features.n_frames)
    model_col, opt_col, data_col = st.columns(3, gap="large")
    with model_col:
        st.subheader("Model")
        names = list(MODELS)
        model = st.selectbox("Model", names, index=names.index(DEFAULTS.model), key="train_model", **persist)
        count = info[model]["parameters"]  # None: run_embedding without the default run
        st.caption((f"{count:,} parameters. " if count is not None else "") + info[model]["description"])
        if has_backbone(model):
            finetune_settings(model, dataset.n_classes)
        st.number_input("Epochs", 1, 500, DEFAULTS.epochs, key="train_epochs", **persist)  # passes over the data
        st.number_input("Steps (0: count epochs)", 0, 100_000, 0, key="train_steps", **persist,
                        help="Optimiser steps in all; when set, the epochs follow from it. For a small dataset, "
                             "where an epoch is a single step: e.g. 100 steps. Without validation clips the last "
                             "weights are kept.")
        st.select_slider("Batch size", BATCH_SIZES, DEFAULTS.batch_size, key="train_batch", **persist,
                         help="Clips per optimisation step. Lower it if you run out of memory.")
        devices = ["auto", *available_devices()]
        st.selectbox("Device", devices, key="train_device", **persist,
                     help="auto picks the best available (CUDA, then Apple MPS, then CPU). One job per device "
                          "runs at a time; others wait in line.")
        if "cuda" in available_devices():
            st.checkbox("Mixed precision (bfloat16)", DEFAULTS.mixed_precision, key="train_amp", **persist,
                        help="Faster on recent NVIDIA GPUs; ignored on the CPU.")
    with opt_col:
        st.subheader("Optimisation")
        optimizer = st.selectbox("Optimizer", OPTIMIZERS, key="train_optimizer", **persist,
                                 help="AdamW: adaptive steps, decoupled weight decay. SGD: Nesterov momentum.")
        if st.toggle("Type an exact learning rate", key="train_lr_type", **persist):
            st.number_input("Learning rate", min_value=0.0, value=DEFAULTS.learning_rate, format="%g",
                            key="train_lr_exact", **persist, help="Peak learning rate; must be positive.")
        else:
            st.select_slider("Learning rate (log scale)", LEARNING_RATES, DEFAULTS.learning_rate, key="train_lr",
                             format_func=lambda v: f"{v:g}", **persist, help="Peak learning rate.")
        if optimizer == "sgd":
            st.slider("Momentum", 0.0, 0.99, DEFAULTS.momentum, 0.01, key="train_momentum", **persist)
        scheduler = st.selectbox("Scheduler", SCHEDULERS, key="train_scheduler", **persist,
                                 help="How the learning rate changes over the run.")
        st.caption(f"Learning rate: {SCHEDULER_HELP.get(scheduler, scheduler)}.")
        st.select_slider("Weight decay", (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 0.1), DEFAULTS.weight_decay,
                         key="train_wd", format_func=lambda v: f"{v:g}", **persist)
        st.slider("Label smoothing", 0.0, 0.3, DEFAULTS.label_smoothing, 0.01, key="train_smoothing", **persist)
    with data_col:
        st.subheader("Data split")
        official = official_split(dataset)
        if official is not None:  # e.g. Speech Commands: folds 0/1/2 are train / validation / test lists
            st.selectbox("Split", ["official split", "grouped random split"], key="train_fold", **persist,
                         help="The dataset's own validation and testing lists, as its paper uses them.")
        elif dataset.folds is not None:
            folds = sorted(set(dataset.folds))
            st.selectbox("Test split", ["grouped random split", *folds], key="train_fold", **persist,
                         format_func=lambda f: f if isinstance(f, str) else f"hold out fold {f}",
                         help="The dataset has official folds: hold one out for test to compare with papers.")
        st.slider("Validation fraction", 0.05, 0.4, DEFAULTS.validation_fraction, 0.05, key="train_val", **persist)
        st.slider("Test fraction", 0.05, 0.4, DEFAULTS.test_fraction, 0.05, key="train_test", **persist,
                  help="Whole groups (speakers) go to one split, so no voice is both trained and tested on.")
        st.number_input("Seed", 0, 2**31 - 1, DEFAULTS.seed, key="train_seed", **persist,
                        help="Same seed, same split and, on the CPU, the same run.")

    aug_col, feat_col = st.columns(2, gap="large")
    with aug_col:
        st.subheader("Augmentation")
        lab = augment_config()
        source = st.radio("Settings", ["lab", "here"], key="train_aug_source", horizontal=True, **persist,
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
                            key="train_finetune", format_func=lambda m: f"{m}: {FINETUNE_HELP[m]}", **persist)
    if finetune != "frozen":
        st.select_slider("Backbone learning rate (× learning rate)", BACKBONE_LR_SCALES,
                         DEFAULTS.backbone_lr_scale, key="train_backbone_lr", format_func=lambda v: f"{v:g}",
                         **persist, help="The pretrained backbone learns more slowly than the new head.")
    run = backbone_run() if model == "run_embedding" else DEFAULTS.backbone_run
    if run is None:
        return
    trainable, total = parameter_counts(model, n_classes, finetune, run)
    own = (" This model reads its own features (its pretrained frontend's): the Transform lab's feature settings "
           "are not used, only its clip length." if MODELS[model].feature_kind or MODELS[model].own_features else "")
    st.caption(f"**{trainable:,} trainable**, {total - trainable:,} frozen parameters." + own
               + (" Frozen: the augmentation below is not used (each clip's embedding is computed once)."
                  if finetune == "frozen" else ""))
    if st.checkbox("Pretrained weights", DEFAULTS.pretrained, key="train_pretrained", **persist,
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
    return st.selectbox("Backbone run", runs, index=index, key="train_backbone_run", **persist,
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


def draw_buttons() -> None:
    """The run's name, Start and Stop, and why a start failed."""
    buttons = st.container(horizontal=True, vertical_alignment="bottom")
    buttons.text_input("Run name (optional)", key="train_run_name", max_chars=128, width=300,
                       placeholder="automatic: date, time and model",
                       help="The run's folder name: letters, digits, '-', '_' and '.' (not first). Empty: an "
                            "automatic name.")
    buttons.button("Start another run" if busy else "Start training", type="primary", key="train_start",
                   on_click=start, icon=":material/play_arrow:",
                   help="Queue another run with the settings below: it starts when yours have ended." if busy
                   else "Train in the background.")
    buttons.button("Stop", key="train_stop", on_click=stop, disabled=my_job is None, icon=":material/stop:",
                   help="End the run shown below at its next step (what it learned so far is saved), or cancel it "
                        "while it waits." if busy else "Your runs have ended: nothing to stop.")
    if st.session_state["train_error"]:
        st.error(st.session_state["train_error"])



# ---------------------------------------------------------------------------------------------- live view
def draw_status(job: TrainingJob, snap) -> None:
    """Where ``job`` is: waiting in line, its progress, or how it ended (with a link to evaluate its run)."""
    config = job.train_config
    if snap.state == "queued":
        st.info(f"Waiting in line: position {snap.position} for the {job.device_key} device "
                "(another training job is using it). It starts as soon as that one ends.",
                icon=":material/hourglass_top:")
    elif snap.done is None:
        if snap.start is None:
            st.progress(0.0, text="Preparing the data and the model…")
            return
        last = snap.steps[-1] if snap.steps else None
        speed = snap.samples_per_sec
        text = (f"step {last.step if last else 0:,} / {snap.start.total_steps:,} · "
                + (f"epoch {last.epoch if last else 1} / {config.epochs} · " if config.steps is None else "")
                + f"ETA {seconds(snap.eta_sec)}"
                + (f" · {speed:,.0f} samples/s" if speed else ""))
        st.progress(snap.progress, text=text)
        trainable = snap.start.n_trainable
        st.caption((f"**{job.run_id}**: " if job.run_id else "") + f"{config.model}, "
                   f"{snap.start.n_parameters:,} parameters"
                   + (f" ({trainable:,} trainable)" if trainable not in (None, snap.start.n_parameters) else "")
                   + f" on {snap.start.device}; {snap.start.n_train} train / {snap.start.n_validation} validation "
                   f"/ {snap.start.n_test} test clips.")
    elif snap.done.status in ("finished", "stopped"):
        done = snap.done
        if done.run_id:
            active = st.session_state.get("run_id") == done.run_id
            st.success(f"Run **{done.run_id}** {done.message}." + (
                " It is now your active run: Evaluate, Inference and Record use it in this browser session "
                "(other sessions keep their own)." if active else ""), icon=":material/check_circle:")
            page_link("app_pages/evaluate.py", "Evaluate this run")
        else:
            st.warning(f"Training {done.status}: {done.message}. Nothing was saved.")
    else:
        st.error(f"Training failed: {snap.done.message}", icon=":material/error:")


def draw_charts(job: TrainingJob, snap) -> None:
    """Loss and learning rate per step, loss and accuracy per epoch."""
    # Drawn from the start (empty at first), so the charts are in place when the first steps arrive; a figure
    # is rebuilt only when its data changed, which keeps each poll short.
    step_key, epoch_key = (job.job_id, len(snap.steps)), (job.job_id, len(snap.epochs))
    steps = lambda: [asdict(s) for s in snap.steps]  # noqa: E731
    epochs = lambda: [asdict(e) for e in snap.epochs]  # noqa: E731
    a, b = st.columns(2)
    a.plotly_chart(figure("loss", step_key, lambda: fig_steps(steps(), "loss", 0.9, title="Loss per step")),
                   key="train_fig_steps")
    b.plotly_chart(figure("lr", step_key, lambda: fig_steps(steps(), "learning_rate", 0.0, title="Learning rate")
                                       .update_layout(showlegend=False)), key="train_fig_lr")
    c, d = st.columns(2)
    c.plotly_chart(figure("epoch_loss", epoch_key, lambda: fig_curves(epochs(), ("train_loss", "val_loss"),
                                                                      title="Loss per epoch")), key="train_fig_loss")
    d.plotly_chart(figure("epoch_acc", epoch_key, lambda: fig_curves(epochs(), ("train_accuracy", "val_accuracy"),
                                                                     title="Accuracy per epoch")), key="train_fig_acc")


def job_line(number: int, job: TrainingJob, snap) -> str:
    """One line of the session's job list: its number, name, model and state."""
    name = f"**{snap.done.run_id}**" if snap.done and snap.done.run_id else (
        f"**{job.run_id}**" if job.run_id else "automatic name")
    state = {"queued": f"waiting, position {snap.position} in line", "running": "training"}.get(snap.state)
    if state is None:
        state = f"{snap.state}: {snap.done.message}" if snap.done else snap.state
    return f"{number}\\. {name} · {job.train_config.model} · {state}"


def draw_job_list(jobs: list[TrainingJob], shown: TrainingJob) -> None:
    """The session's jobs, oldest first (the last 10), each waiting one with a Cancel button."""
    st.markdown(f"**Your training jobs** ({len(jobs)}; they train one after another)")
    first = max(0, len(jobs) - 10)
    for number, job in enumerate(jobs[first:], start=first + 1):
        snap = job.snapshot()
        row = st.container(horizontal=True, vertical_alignment="center")
        row.markdown(job_line(number, job, snap) + (" · *shown above*" if job is shown else ""), width="stretch")
        if snap.state == "queued":
            row.button("Cancel", key=f"train_cancel_{job.job_id}", on_click=job.stop, icon=":material/close:",
                       help="Take this run out of the line: it is not trained.")


def handle_ended(jobs: list[TrainingJob]) -> None:
    """Once per ended job of this session: its run becomes the session's active run; then one full rerun (the
    sidebar shows the new run, and polling stops when nothing is left to train)."""
    handled = st.session_state.setdefault("train_handled", [])
    new = [job for job in jobs if job.ended and job.job_id not in handled]
    if not new:
        return
    for job in new:
        handled.append(job.job_id)
        done = job.snapshot().done
        if done.run_id and done.status in ("finished", "stopped"):
            st.session_state["run_id"] = done.run_id  # this session's only: st.session_state is per session
    st.rerun()


# ------------------------------------------------------------------------------------------------- page
page_header("Train", "Pick a model and its training settings, start a run in the background and watch it learn.")
st.session_state.setdefault("train_error", None)
st.session_state.setdefault("train_jobs", [])

dataset = active_dataset()
features = feature_config()
my_job = focus_job(session_jobs())
busy = any(not job.ended for job in session_jobs())
persist = dict(persist_state="session")

if dataset is not None:
    st.caption(f"Dataset: **{dataset.name}**, {len(dataset):,} clips, {dataset.n_classes} classes "
               f"({', '.join(dataset.class_names[:12])}{'…' if dataset.n_classes > 12 else ''}).")


@st.fragment(run_every=1.0 if busy else None)
def live_view() -> None:
    jobs = session_jobs()
    job = focus_job(jobs)
    mine = {j.job_id for j in jobs}
    others = [j for j in JOB_QUEUE.active() if j.job_id not in mine]
    if others:
        st.caption(f"{len(others)} other training job(s) are running or waiting on this server.")
    if job is None:
        if st.session_state.get("train_job_id") is not None:
            st.info("Your last training job is no longer on this server (it was restarted). Start a new one.")
        else:
            st.info("Start a run to watch its loss and accuracy here. You can leave the page: training goes on. "
                    "Start more while it trains: they wait in line.")
        return
    snap = job.snapshot()
    draw_status(job, snap)
    handle_ended(jobs)
    if len(jobs) > 1:
        draw_job_list(jobs, job)
    if snap.state != "queued" and (snap.done is None or snap.steps):
        draw_charts(job, snap)


# While a run trains, its live view comes first and the settings fold away below it: pressing Start shortens the
# page, so the progress lands where the eyes are (and is at the top when you come back to the page). Start stays
# on: another run, with the settings in the fold, waits in line behind.
if dataset is not None and busy:
    draw_buttons()
    live_view()
    with st.expander("Settings for the next run", icon=":material/tune:"):
        draw_settings(dataset)
else:
    if dataset is not None:
        draw_settings(dataset)
        draw_buttons()
    st.divider()
    st.subheader("Live view")
    live_view()
