"""Record: say a word into the microphone, see it classified, and collect your own dataset (Teachable Machine
style)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import streamlit as st

from lib.dsp.audio import AudioDecodeError, load_audio, save_wav
from lib.serving.background import CONFIDENCE_THRESHOLD, NOTHING_HEARD, heard, is_background
from lib.dsp.features import FeatureConfig
from lib.plots import fig_class_counts, fig_probabilities, fig_spectrogram, fig_window_predictions
from lib.data.recordings import is_valid_name, split_take, take_counts, take_problem, take_stem
from lib.settings import settings
from ui.common import load_classifier, page_header, page_link, run_picker, show_detections
from ui.takes import (BACKGROUND_CLASS, MIN_CLASSES, RECORD_SAMPLE_RATE, adopt_trained_run, background_hint,
                      folder_source, gallery, notify, train_section)

DEFAULT_DATASET = "my-recordings"
NAME_HELP = "letters, digits, spaces, '-' and '_' only (at most 64 characters)"
SUGGESTED_PER_CLASS = 10
MAX_SPLIT_TAKES = 60             # a long take is split into at most this many clips, one per sound
RECORDINGS_DIR = settings().recordings_dir  # the operator's (lib.settings), read on every run of the page


# ------------------------------------------------------------------------------------------- helpers
def name_problem(name: str, what: str) -> str | None:
    """Why ``name`` cannot be a folder name for a dataset or class, or None when it can."""
    if not name:
        return f"Give the {what} a name."
    if not is_valid_name(name):
        return f"The {what} name {name!r} is not allowed: use {NAME_HELP}."
    return None


def decode(recording, quiet_ok: bool = False) -> tuple:
    """``(waveform, sample_rate, problem)``: problem is ``("warning"|"error", message)`` or None. A silent take
    is a problem unless ``quiet_ok`` (a take of the background class, where quiet is the point)."""
    silent = ("warning", "The recording is silent: check the microphone permission in your browser, "
                         "then speak closer to the microphone and record again.")
    try:
        waveform, rate = load_audio(recording)
    except AudioDecodeError as error:
        if error.reason in ("the file is empty", "the audio has no samples"):
            return None, None, silent
        return None, None, ("error", f"{error} Record again.")
    problem = take_problem(waveform, quiet_ok)
    if problem == "nonfinite":
        return None, None, ("error", "The recording has invalid samples (NaN or infinity). Record again.")
    if problem == "silent":
        return None, None, silent
    return waveform, rate, None


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}: {n}" for name, n in counts.items()) or "no clips yet"


def dataset_name() -> str:
    return str(st.session_state.get("record_dataset") or "").strip()


def chosen_class() -> str:
    """The new class typed in, else the existing class selected."""
    new = str(st.session_state.get("record_new_class") or "").strip()
    return new or str(st.session_state.get("record_class") or "").strip()


# ------------------------------------------------------------------------------------------ callbacks
def save_recording() -> None:
    """Save the current recording as ``<RECORDINGS_DIR>/<dataset>/<class>/<timestamp>.wav``."""
    recording = st.session_state.get("recorder")
    name, label = dataset_name(), chosen_class()
    problem = name_problem(name, "dataset") or name_problem(label, "class")
    if recording is None:
        problem = "Record something first."
    if problem:
        notify("error", problem)
        return
    waveform, rate, issue = decode(recording, quiet_ok=is_background(label))
    if issue:
        notify(issue[0], issue[1] + " Nothing was saved.")
        return
    folder = RECORDINGS_DIR / name
    # A word: one clip centred on each time it was said (lib.serving.detect), as the live test classifies it; a long take
    # of "yes ... yes ... yes" gives one take per "yes". The background class keeps the whole take.
    clips = split_take(waveform, rate, take_stem(folder, label, datetime.now()), FeatureConfig().clip_seconds,
                       whole=is_background(label), max_takes=MAX_SPLIT_TAKES)
    paths = [path for path, _ in clips]
    try:
        for path, clip in clips:
            save_wav(path, clip, rate)
    except OSError as error:
        notify("error", f"Could not save the recording to {path}: {error}. Check that the folder is writable.")
        return
    st.session_state["record_saved"][recording.file_id] = (label, [str(path) for path in paths])
    st.session_state["record_new_class"] = ""
    st.session_state["record_class"] = label
    saved = f"Saved {len(paths)} takes, one per sound heard in the recording," if len(paths) > 1 else "Saved"
    notify("success", f"{saved} as **{label}** in {name}. Clips per class: {counts_text(take_counts(folder))}.")


def undo_last() -> None:
    saved = st.session_state["record_saved"]
    if not saved:
        return
    file_id, (label, paths) = list(saved.items())[-1]
    for path in paths:
        Path(path).unlink(missing_ok=True)
    del saved[file_id]
    notify("info", f"Removed the last recording saved as **{label}** "
                   f"({', '.join(Path(path).name for path in paths)}).")


def use_as_dataset(folder: Path) -> None:
    st.session_state["dataset_source"] = folder_source(folder)
    notify("success", f"**{folder.name}** is now the active dataset: train a model on it on the Train page.")


# ----------------------------------------------------------------------------------------------- page
page_header("Record", "Say a word into your microphone and see what the model hears; collect your own examples "
                      "and train a model on them.")
st.session_state.setdefault("record_saved", {})        # file_id of each saved recording -> (class, its paths)
st.session_state.setdefault("record_dataset", DEFAULT_DATASET)
adopt_trained_run()

with st.expander("How it works: teach the model your own sounds", icon=":material/school:"):
    st.markdown(
        "1. **Record** a few takes of each class (a word, a clap, a whistle...) and add each one to your "
        "dataset below: 6 takes per word are enough to start, said a little differently each time. You can "
        "also say a word several times in one long take, with a pause between: it is saved as one take per "
        "time you said it.\n"
        f"2. **Add a background class** ({BACKGROUND_CLASS}: silence and room noise, no words), so that the model "
        f"can answer *{NOTHING_HEARD}*.\n"
        "3. **Train on my recordings**: Google's pretrained speech embedding, frozen, with a small head trained "
        "on all your takes; it takes seconds.\n"
        "4. **Say a word** into the microphone at the top: the new run answers live.\n\n"
        "For other models and settings, **use the folder as the active dataset** and train on the Train page.\n\n"
        "The shipped default model learned from synthetic voices only (eSpeak NG and two neural voices, Piper "
        "and Kokoro): on voices of other speech synthesizers it gets about nine words in ten right, but it has "
        "never heard a person, so expect some mistakes on your voice. The Evaluate page scores any run on "
        "your recordings (**My recordings**), which shows how far your voice is from what it trained on.")

run = run_picker("Run", key="record_run")
classifier = load_classifier(run) if run is not None else None
if run is None:
    page_link("app_pages/train.py", label="Train a model", icon=":material/model_training:")
    st.info("You can still record examples below and train your own model on them.")
elif classifier is not None:
    words = ", ".join(f"**{name}**" for name in classifier.class_names if not is_background(name))
    st.markdown(f"Say one of: {words}.")

recording = st.audio_input("Record", sample_rate=RECORD_SAMPLE_RATE, key="recorder")
waveform = rate = None
if recording is not None:
    waveform, rate, issue = decode(recording, quiet_ok=is_background(chosen_class()))  # quiet: background takes
    if issue:
        (st.warning if issue[0] == "warning" else st.error)(issue[1])

# ------------------------------------------------------------------------------------------ prediction
def show_prediction(prediction, classifier, threshold: float) -> None:
    answer = heard(prediction.probabilities, prediction.class_names, threshold)
    cols = st.columns(3)
    cols[0].metric("Heard", answer or NOTHING_HEARD)
    cols[1].metric("Confidence", f"{prediction.top_probability:.1%}")
    cols[2].metric("Latency", f"{prediction.latency_ms:.1f} ms", help="Resampling, features and the model on the CPU.")
    if answer is None:
        why = ("the background class" if is_background(prediction.top_class)
               else f"below the confidence threshold ({threshold:.0%})")
        st.caption(f"The likeliest class was **{prediction.top_class}** ({prediction.top_probability:.1%}): "
                   f"{why}, so the answer is *{NOTHING_HEARD}*.")
    show_detections(prediction, key="record_detections")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(fig_probabilities(prediction.probabilities, prediction.class_names,
                                          title="Class probabilities"), key="record_probabilities")
    with right:
        st.plotly_chart(fig_spectrogram(classifier.view_features(waveform, rate), classifier.feature_config,
                                        title="What the model reads"),
                        key="record_spectrogram")
    if prediction.n_windows > 1:
        st.plotly_chart(fig_window_predictions(prediction.window_starts, prediction.window_probabilities,
                                               prediction.class_names, title="Probability per window"),
                        key="record_windows")


if classifier is not None:
    threshold = st.slider("Confidence threshold", 0.0, 0.95, CONFIDENCE_THRESHOLD, 0.05, key="record_threshold",
                          help="Below this probability of the likeliest class, and whenever a background class "
                               f"({BACKGROUND_CLASS}, _silence_...) wins, the answer is “{NOTHING_HEARD}” "
                               f"(default {CONFIDENCE_THRESHOLD:.0%}; 0 always names a class).")
if waveform is not None and classifier is not None:
    try:
        prediction = classifier.predict(waveform, rate)  # the rule of lib.serving.detect, as on the Inference page
    except ValueError as error:  # non-finite samples
        st.error(f"Could not classify the recording: {error}. Record again.")
    else:
        show_prediction(prediction, classifier, threshold)

# ---------------------------------------------------------------------------------------- my dataset
st.divider()
st.subheader("Add to my dataset")
st.markdown("Record a few examples per class and add each one here, **use the folder as the active dataset**, "
            "**train** a model on it, then come back and test it live (details in *How it works* above).")
st.caption(f"Recordings are saved as WAV files under `{RECORDINGS_DIR}/<dataset>/<class>/`, one folder per "
           "class: the layout the Dataset page opens.")

notice = st.session_state.pop("record_notice", None)
if notice:
    getattr(st, notice[0])(notice[1])

left, right = st.columns(2)
left.text_input("Dataset name", key="record_dataset", max_chars=64,
                help=f"A folder under {RECORDINGS_DIR}: {NAME_HELP}.")
name = dataset_name()
problem = name_problem(name, "dataset")
folder = RECORDINGS_DIR / name if problem is None else None
counts = take_counts(folder) if folder is not None else {}
if counts:
    right.selectbox("Class", list(counts), key="record_class", help="An existing class of this dataset.")
else:
    st.session_state.pop("record_class", None)
right.text_input("New class" if counts else "Class", key="record_new_class", max_chars=64,
                 placeholder="e.g. clap, yes, whistle",
                 help=f"Type a name to create a class ({NAME_HELP}); it takes precedence over the list.")
label = chosen_class()
if problem is None and label:
    problem = name_problem(label, "class")
if problem:
    st.error(problem)

saved = st.session_state["record_saved"].get(recording.file_id) if recording is not None else None
if recording is None:
    hint = "Record something above first."
elif waveform is None:
    hint = "This recording cannot be saved: record again."
elif saved:
    hint = f"This recording is already saved as **{saved[0]}**: record another one."
elif not label:
    hint = "Choose a class or type a new one."
else:
    hint = None
st.button(f"Add recording as class “{label}”" if label else "Add recording", key="record_add",
          on_click=save_recording, type="primary", icon=":material/add:",
          disabled=bool(problem or hint))
if hint and not problem:
    st.caption(hint)
if st.session_state["record_saved"]:
    last_label, last_paths = list(st.session_state["record_saved"].values())[-1]
    what = Path(last_paths[0]).name if len(last_paths) == 1 else f"{len(last_paths)} takes"
    st.button(f"Undo: remove the last recording ({last_label}, {what})", key="record_undo",
              on_click=undo_last, icon=":material/undo:", type="tertiary", disabled=not last_paths)



# ---------------------------------------------------------------------------------- gallery and training
if folder is not None:
    if counts:
        st.plotly_chart(fig_class_counts(counts, title=f"{name}: clips per class"), key="record_counts")
        gallery(folder)
    else:
        st.caption(f"**{name}** has no recordings yet.")
    background_hint(folder, counts)
    with_clips = [c for c, n in counts.items() if n > 0]
    train_section(folder, with_clips)
    active = st.session_state["dataset_source"] == folder_source(folder)
    if active:
        st.success(f"**{name}** is the active dataset.")
        page_link("app_pages/train.py", label="Train a model on it", icon=":material/model_training:")
    else:
        st.button("Use this folder as the active dataset", key="record_use_dataset", on_click=use_as_dataset,
                  args=(folder,), disabled=len(with_clips) < MIN_CLASSES, icon=":material/dataset:")
        if len(with_clips) < MIN_CLASSES:
            st.caption(f"Training needs at least {MIN_CLASSES} classes with recordings; {name} has "
                       f"{len(with_clips)}. Add recordings to {MIN_CLASSES - len(with_clips)} more class"
                       f"{'es' if MIN_CLASSES - len(with_clips) > 1 else ''}.")
    few = [c for c, n in counts.items() if 0 < n < SUGGESTED_PER_CLASS]
    if len(with_clips) >= MIN_CLASSES and few:
        st.caption(f"Tip: {', '.join(few)} {'has' if len(few) == 1 else 'have'} fewer than {SUGGESTED_PER_CLASS} "
                   "clips; more examples make a model that generalises better (and a test split worth reading).")
