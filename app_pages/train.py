"""Train: choose a model and its settings, train it in the background and watch loss and accuracy live; start more
runs while one trains (they wait in line) and name them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

import plotly.graph_objects as go
import streamlit as st

from lib.engine.jobs import JOB_QUEUE, TrainingJob, focus_job
from lib.plots import fig_curves, fig_steps
from lib.engine.runs import check_run_target, is_valid_run_id
from lib.settings import settings as operator_settings
from ui.common import active_dataset, feature_config, page_header, page_link
from ui.train_settings import draw_settings
from ui.train_settings import train_settings as settings


# ----------------------------------------------------------------------------------------------- helpers
def session_jobs() -> list[TrainingJob]:
    """This session's training jobs still on the server (``train_jobs``: their ids, oldest first)."""
    ids = set(st.session_state.get("train_jobs", []))
    return [job for job in JOB_QUEUE.jobs if job.job_id in ids]


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
    if JOB_QUEUE.will_save(name):
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
        draw_settings(dataset, features)
else:
    if dataset is not None:
        draw_settings(dataset, features)
        draw_buttons()
    st.divider()
    st.subheader("Live view")
    live_view()
