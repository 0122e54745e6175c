"""A folder of recorded takes on the Record page: notices, the gallery to replay and delete takes, the one-click
background class, and the one-click training on the takes (:data:`RECORD_TRAINING`, in the background).

Session keys: ``record_notice`` (the next message to show), ``record_saved`` (file id of each saved recording ->
its class and paths), ``record_job_id`` / ``record_handled_job`` (the training job, and the last one whose run the
session adopted), ``record_class`` / ``record_new_class`` (the class widgets).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from lib.serving.background import NOTHING_HEARD, is_background
from lib.dsp.features import FeatureConfig
from lib.engine.jobs import JOB_QUEUE
from lib.data.recordings import class_takes, take_counts, write_background_takes
from lib.engine.train_config import TrainConfig
from ui.common import load_dataset

RECORD_SAMPLE_RATE = 16000
MIN_CLASSES = 2
BACKGROUND_CLASS = "background"  # the one-click class of silence and room noise (lib.serving.background.is_background)
BACKGROUND_TAKES = 6             # takes of silence and quiet noise it starts with
GALLERY_TAKES = 24               # the newest takes of each class shown to replay and delete
# "Train on my recordings": a frozen pretrained speech embedding and a head trained for a fixed number of steps
# on every take (no validation or test clips to spare). Measured: 6 takes each of 2 words + _silence_ from one
# eSpeak voice, 100 steps: 100% on 72 other takes of that voice (yes/stop and go/no); 50 to 200 steps alike.
RECORD_TRAINING = TrainConfig(model="speech_embedding", finetune="frozen", steps=100, validation_fraction=0.0,
                              test_fraction=0.0)


def notify(kind: str, message: str) -> None:
    """Show ``message`` with ``st.<kind>`` ("success", "info", "error", ...) on the page's next run."""
    st.session_state["record_notice"] = (kind, message)


def folder_source(folder: Path) -> dict:
    """The dataset source of a folder of takes (:func:`ui.common.load_dataset`)."""
    return {"kind": "folder", "path": str(folder)}


def delete_take(path: str) -> None:
    """Delete one saved take (the gallery's button)."""
    Path(path).unlink(missing_ok=True)
    saved = st.session_state["record_saved"]
    for file_id, (label, paths) in list(saved.items()):
        if path in paths:
            saved[file_id] = (label, [p for p in paths if p != path])
    notify("info", f"Deleted the take {Path(path).parent.name}/{Path(path).name}.")


def add_background_class(folder: Path) -> None:
    """Create the class :data:`BACKGROUND_CLASS` with takes of silence and quiet noise, and select it."""
    target = folder / BACKGROUND_CLASS
    try:
        write_background_takes(target, BACKGROUND_TAKES, RECORD_SAMPLE_RATE, seed=len(take_counts(folder)))
    except OSError as error:
        notify("error", f"Could not write the background takes to {target}: {error}. Check that the folder is "
                        "writable.")
        return
    st.session_state["record_new_class"] = ""
    st.session_state["record_class"] = BACKGROUND_CLASS
    notify("success", f"Added the class **{BACKGROUND_CLASS}** with {BACKGROUND_TAKES} takes of silence and quiet "
                      "noise. Record a few takes of your room too (no words: typing, breathing, the fan) and add "
                      "them to it.")


def start_training(folder: Path) -> None:
    """Train :data:`RECORD_TRAINING` on the folder's takes in the background (lib.engine.jobs)."""
    try:
        dataset = load_dataset(folder_source(folder))
        job = JOB_QUEUE.submit(dataset, FeatureConfig(), RECORD_TRAINING)  # into the operator's runs folder
    except (ValueError, OSError) as error:
        notify("error", f"Cannot train on {folder.name}: {error}. Add takes to at least {MIN_CLASSES} classes "
                        "and try again.")
        return
    st.session_state["record_job_id"] = job.job_id


def adopt_trained_run() -> None:
    """Once the session's Record training job has ended, its run becomes the session's run (tried live above)."""
    job = JOB_QUEUE.find(st.session_state.get("record_job_id"))
    if job is None or not job.ended or st.session_state.get("record_handled_job") == job.job_id:
        return
    st.session_state["record_handled_job"] = job.job_id
    done = job.snapshot().done
    if done is not None and done.run_id and done.status in ("finished", "stopped"):
        st.session_state["run_id"] = done.run_id


def background_hint(folder: Path, counts: dict[str, int]) -> None:
    """Encourage a background class: without one, silence and noise are heard as the likeliest word."""
    if any(is_background(c) and n for c, n in counts.items()) or not counts:
        return
    st.info(f"Add a **{BACKGROUND_CLASS}** class (silence and room noise, no words): without one, the model "
            f"hears every sound as one of your words; with one, it answers *{NOTHING_HEARD}*.",
            icon=":material/lightbulb:")
    st.button(f"Add a “{BACKGROUND_CLASS}” class", key="record_add_background", on_click=add_background_class,
              args=(folder,), icon=":material/noise_aware:",
              help=f"Creates {BACKGROUND_TAKES} takes of silence and quiet noise; add takes of your own room to it.")


def gallery(folder: Path) -> None:
    """Each class's takes, to replay and delete one by one (the newest :data:`GALLERY_TAKES`)."""
    for label, takes in class_takes(folder).items():
        with st.expander(f"{label}: {len(takes)} take{'s' if len(takes) != 1 else ''}", icon=":material/mic:"):
            if len(takes) > GALLERY_TAKES:
                st.caption(f"The newest {GALLERY_TAKES} of {len(takes)} takes.")
            for path in reversed(takes[-GALLERY_TAKES:]):
                row = st.columns([5, 1], vertical_alignment="center")
                try:
                    row[0].audio(path.read_bytes(), format="audio/wav")
                except OSError:
                    row[0].caption(f"{path.name}: cannot be read.")
                row[1].button("Delete", key=f"record_delete_{label}/{path.name}", on_click=delete_take,
                              args=(str(path),), icon=":material/delete:", type="tertiary",
                              help=f"Delete {label}/{path.name}")


def training_status() -> None:
    """The Record training job's progress; once it ends, the page reruns and tries the new run live."""
    job = JOB_QUEUE.find(st.session_state.get("record_job_id"))
    if job is None:
        return
    snap = job.snapshot()
    if snap.state == "queued":
        st.info(f"Waiting in line: position {snap.position} (another training job is using the "
                f"{job.device_key} device).", icon=":material/hourglass_top:")
    elif snap.done is None:
        st.progress(snap.progress, text="Training: computing the embeddings of your takes…" if snap.start is None
                    else f"Training the head: step {snap.steps[-1].step if snap.steps else 0} / "
                         f"{snap.start.total_steps}")
    elif st.session_state.get("record_handled_job") != job.job_id:
        st.rerun()  # the whole page: the new run becomes the session's run (adopt_trained_run)
    elif snap.done.run_id and snap.done.status in ("finished", "stopped"):
        st.success(f"Trained **{snap.done.run_id}** on your takes: say a word into the microphone at the top to "
                   "try it.", icon=":material/check_circle:")
    else:
        st.error(f"Training {snap.done.status}: {snap.done.message}.", icon=":material/error:")


def train_section(folder: Path, with_clips: list[str]) -> None:
    """The one-click training on the folder's takes (:data:`RECORD_TRAINING`)."""
    job = JOB_QUEUE.find(st.session_state.get("record_job_id"))
    busy = job is not None and not job.ended
    st.button("Train on my recordings", key="record_train", on_click=start_training, args=(folder,),
              type="primary", icon=":material/model_training:", disabled=busy or len(with_clips) < MIN_CLASSES,
              help="Google's pretrained speech embedding, frozen, and a small head trained for "
                   f"{RECORD_TRAINING.steps} steps on every take (no validation or test takes held out): seconds "
                   "on a CPU. The new run is then tried live at the top of the page.")
    st.fragment(training_status, run_every=1.0 if busy else None)()
