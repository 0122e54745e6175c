"""Inference: classify uploaded files (or a clip of the active dataset) with a saved run."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from lib.dsp.audio import ACCEPTED_FORMATS, AUDIO_EXTENSIONS, AudioDecodeError, load_audio, wav_bytes
from lib.serving.infer import Prediction
from lib.plots import fig_probabilities, fig_spectrogram, fig_waveform, fig_window_predictions
from lib.serving.stream import KeywordEvent, detect_stream, detector_settings
from ui.common import active_dataset, detections_text, page_header, pick_classifier, show_detections

UPLOAD_TYPES = [suffix[1:] for suffix in AUDIO_EXTENSIONS]
SPECTROGRAM_MAX_SECONDS = 30.0  # a long file's spectrogram shows its start only (a heatmap of hours is useless)
EXPANDED_UP_TO = 3              # with more files than this, each file's details start collapsed
SOURCES = {"upload": "Upload files", "dataset": "A clip from the active dataset"}
LISTEN_MAX_SECONDS = 120.0    # keywords are detected along the timeline of a file's first two minutes
WINDOW_COLUMNS = {"start_sec": "start (s)", "end_sec": "end (s)", "top_class": "top class"}


page_header("Inference", "Classify audio files with a trained run: class probabilities, spectrogram, latency, "
                         "and predictions along the timeline of long recordings.")

run, classifier = pick_classifier("inference_run")

config = classifier.feature_config
st.caption(f"**{run.run_id}** knows {classifier.n_classes} classes: {', '.join(classifier.class_names)}. "
           f"It reads {config.clip_seconds:g} s clips at {config.sample_rate:,} Hz; a longer file is cut into "
           f"overlapping {config.clip_seconds:g} s windows and the file's probabilities are their mean.")

source = st.radio("Audio", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="inference_source")


# -------------------------------------------------------------------------------------------- inputs
def uploaded_items() -> list[dict]:
    """One item per uploaded file: its name and encoded bytes (decoded later, one error per file)."""
    files = st.file_uploader(f"Audio files ({', '.join(ACCEPTED_FORMATS)})", type=UPLOAD_TYPES,
                             accept_multiple_files=True, key="inference_files")
    if not files:
        st.info("Upload one or more audio files to classify them.")
        return []
    return [{"name": f.name, "source": f, "audio": f.getvalue(), "format": f.type or "audio/wav"} for f in files]


def reset_clip_index() -> None:
    st.session_state["inference_clip_index"] = 0


def dataset_items() -> list[dict]:
    """The chosen clip of the active dataset, already decoded."""
    dataset = active_dataset()
    if dataset is None:
        return []
    left, right = st.columns(2)
    class_name = left.selectbox("Class", dataset.class_names, key="inference_clip_class", on_change=reset_clip_index)
    rows = dataset.class_indices(class_name)
    if len(rows) == 0:
        st.warning(f"The class {class_name!r} has no clips in {dataset.name}: choose another class.")
        return []
    index = right.number_input(f"Clip (0 to {len(rows) - 1})", min_value=0, max_value=len(rows) - 1, step=1,
                               key="inference_clip_index")
    row = int(rows[min(int(index), len(rows) - 1)])
    waveform, rate = dataset.clip(row)
    name = dataset.paths[row].replace("\\", "/").rsplit("/", 1)[-1]
    if class_name not in classifier.class_names:
        st.info(f"This run was not trained on the class {class_name!r}: it can only answer one of its own classes.")
    return [{"name": name, "waveform": waveform, "sample_rate": rate, "truth": class_name,
             "audio": wav_bytes(waveform, rate), "format": "audio/wav"}]


items = uploaded_items() if source == "upload" else dataset_items()
if not items:
    st.stop()


# ------------------------------------------------------------------------------------------- classify
def classify(item: dict) -> Prediction | None:
    """Decode (when needed) and classify one item; on failure show ``st.error`` and return None."""
    if "waveform" not in item:
        try:
            item["waveform"], item["sample_rate"] = load_audio(item["source"])
        except AudioDecodeError as error:
            st.error(f"**{item['name']}** was skipped. {error} Convert it to one of these formats and upload it "
                     "again.", icon=":material/error:")
            return None
    try:
        return classifier.predict(item["waveform"], item["sample_rate"])
    except ValueError as error:
        st.error(f"**{item['name']}** could not be classified: {error}.", icon=":material/error:")
        return None


with st.spinner(f"Classifying {len(items)} file{'s' if len(items) > 1 else ''}..."):
    results = [(item, classify(item)) for item in items]
done = [(item, prediction) for item, prediction in results if prediction is not None]


# -------------------------------------------------------------------------------------------- summary
def summary_table() -> pd.DataFrame:
    rows = []
    for item, prediction in results:
        if prediction is None:
            rows.append({"file": item["name"], "status": "could not read", "top class": None, "confidence": None,
                         "2nd class": None, "2nd probability": None, "sounds heard": None, "latency (ms)": None,
                         "duration (s)": None})
            continue
        ranked = prediction.top(2) + [(None, None)]
        rows.append({"file": item["name"], "status": "ok", "top class": ranked[0][0],
                     "confidence": round(ranked[0][1], 4), "2nd class": ranked[1][0],
                     "2nd probability": None if ranked[1][1] is None else round(ranked[1][1], 4),
                     "sounds heard": detections_text(prediction) if prediction.n_windows > 1 else None,
                     "latency (ms)": round(prediction.latency_ms, 1),
                     "duration (s)": round(prediction.duration_sec, 3)})
    return pd.DataFrame(rows)


if len(items) > 1:
    st.subheader("Summary")
    table = summary_table()
    st.dataframe(table, hide_index=True, key="inference_summary", column_config={
        "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="percent"),
        "2nd probability": st.column_config.NumberColumn("2nd probability", format="percent")})
    st.download_button("Download the summary (CSV)", table.to_csv(index=False).encode("utf-8"),
                       file_name=f"predictions-{run.run_id}.csv", mime="text/csv", key="inference_csv",
                       on_click="ignore", icon=":material/download:")
    if done:
        counts = pd.Series([p.top_class for _, p in done]).value_counts()
        st.caption("Top classes: " + ", ".join(f"{name} × {n}" for name, n in counts.items()))


# ---------------------------------------------------------------------------------------- per file
def spectrogram_figure(item: dict, prediction: Prediction, key: str) -> None:
    """The features the model reads: the padded clip for a short file, the file's start for a long one."""
    spec = classifier.view_features(item["waveform"], item["sample_rate"], SPECTROGRAM_MAX_SECONDS)
    if prediction.n_windows == 1:
        caption = f"What the model reads: the file centred in a {config.clip_seconds:g} s clip."
    else:
        caption = ("The whole file" if prediction.duration_sec <= SPECTROGRAM_MAX_SECONDS
                   else f"The first {SPECTROGRAM_MAX_SECONDS:g} s") + \
            f"; the model reads it {config.clip_seconds:g} s at a time."
    st.plotly_chart(fig_spectrogram(spec, config, title=f"{config.kind} spectrogram"), key=key)
    st.caption(caption)


@st.cache_data(show_spinner=False, max_entries=16)
def _keyword_events(run_key: str, audio_sha1: str, _waveform, sample_rate: int) -> list[KeywordEvent]:
    """:func:`lib.serving.stream.detect_stream` of a file's first :data:`LISTEN_MAX_SECONDS` with the run's operating
    point, once per run and file (``run_key`` and ``audio_sha1`` name them): a rerun does not run the model over
    the file again."""
    seconds = int(LISTEN_MAX_SECONDS * sample_rate)
    return detect_stream(classifier, _waveform[..., :seconds], sample_rate, **detector_settings(run.path))


def keyword_events(item: dict) -> list[KeywordEvent]:
    """The keywords continuous listening detects in the file (its first :data:`LISTEN_MAX_SECONDS`), with the
    run's operating point: the Listen page's detector run over the recording."""
    try:
        return _keyword_events(f"{run.run_id}:{run.created}", hashlib.sha1(item["audio"]).hexdigest(),
                               item["waveform"], item["sample_rate"])
    except ValueError as error:
        st.warning(f"Keywords were not detected along the timeline: {error}.")
        return []


def show_result(i: int, item: dict, prediction: Prediction) -> None:
    cols = st.columns(4)
    verdict = ""
    if item.get("truth") is not None:
        verdict = "correct" if item["truth"] == prediction.top_class else f"wrong: it is {item['truth']}"
    cols[0].metric("Top class", prediction.top_class, delta=verdict or None,
                   delta_color="normal" if verdict == "correct" else "inverse", delta_arrow="off")
    cols[1].metric("Confidence", f"{prediction.top_probability:.1%}")
    cols[2].metric("Latency", f"{prediction.latency_ms:.1f} ms",
                   help="Resampling, features and the model on the CPU (decoding not included).")
    cols[3].metric("Duration", f"{prediction.duration_sec:.2f} s",
                   help=f"{prediction.n_windows} window{'s' if prediction.n_windows > 1 else ''} of "
                        f"{config.clip_seconds:g} s classified.")
    st.audio(item["audio"], format=item["format"])
    left, right = st.columns(2)
    with left:
        st.plotly_chart(fig_waveform(item["waveform"], item["sample_rate"], title="Waveform"),
                        key=f"inference_wave_{i}")
    with right:
        spectrogram_figure(item, prediction, key=f"inference_spec_{i}")
    st.plotly_chart(fig_probabilities(prediction.probabilities, prediction.class_names,
                                      title="Class probabilities" + (" (of the loudest sound)"
                                                                     if prediction.detections and
                                                                     prediction.n_windows > 1 else "")),
                    key=f"inference_probs_{i}")
    if prediction.n_windows > 1:
        show_detections(prediction, key=f"inference_detections_{i}")
        events = keyword_events(item)
        st.markdown(f"**Along the timeline**: every {config.clip_seconds:g} s window of the file (overlapping), "
                    "silence included, as the model sees it; ◆ marks each keyword detected as the Listen page "
                    "detects it (a window every 0.1 s, smoothed, the run's threshold"
                    + (f"; the first {LISTEN_MAX_SECONDS:g} s" if prediction.duration_sec > LISTEN_MAX_SECONDS
                       else "") + f"): {', '.join(e.word for e in events) or 'none'}.")
        st.plotly_chart(fig_window_predictions(prediction.window_starts, prediction.window_probabilities,
                                               prediction.class_names, title="Probability per window",
                                               events=[(e.time_sec - config.clip_seconds, e.word) for e in events]),
                        key=f"inference_windows_{i}")
        windows = pd.DataFrame(prediction.window_table()).rename(columns=WINDOW_COLUMNS)
        st.dataframe(windows, hide_index=True, height=min(400, 38 + 35 * len(windows)),
                     key=f"inference_window_table_{i}",
                     column_config={"confidence": st.column_config.ProgressColumn(
                         "confidence", min_value=0.0, max_value=1.0, format="percent")})


if len(done) == 1 and len(items) == 1:
    show_result(0, *done[0])
else:
    if done:
        st.subheader("Each file")
    for i, (item, prediction) in enumerate(done):
        label = f"{item['name']}: {prediction.top_class} ({prediction.top_probability:.0%})"
        with st.expander(label, expanded=len(done) <= EXPANDED_UP_TO, key=f"inference_file_{i}"):
            show_result(i, item, prediction)
