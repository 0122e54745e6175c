"""What the Dataset page shows of the active dataset: its overview charts, examples to hear and see, the average
spectrogram per class and the 2-D map of every clip, each cached per dataset (and settings, and run)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from lib.dsp.audio import wav_bytes
from lib.dsp.features import FeatureConfig
from lib.models.speech_embedding import pretrained_embeddings
from lib.plots import (class_means, color_range, fig_class_counts, fig_embedding, fig_histogram, image_spectrogram,
                       image_waveform)
from ui.common import PROJECTIONS, active_run, dataset_features, load_classifier, map_points, prefetch_maps

__all__ = ["overview", "examples", "mean_spectrograms", "learned_map", "prefetch_feature_maps"]

MAX_EXAMPLES = 24       # clips shown in the examples grid, all classes together
MAX_MEAN_SPECS = 40     # classes shown as mean spectrograms
MAP_KINDS = {"learned": "What the model learned", "pretrained": "A pretrained speech embedding",
             "features": "Input features"}
AXES = ("time → (one clip), frequency ↑ (low at the bottom); colours as on the Transforms page, where the "
        "spectrogram has real axes and hover values")


@st.cache_data(show_spinner=False, max_entries=8)
def _learned_vectors(key: str, run_key: str, _classifier, _dataset) -> np.ndarray:
    """``(n_clips, dim)``: what the run learned to see in each clip (its last hidden layer; for an ensemble its
    first network, a fifth of the compute), cached per dataset and run."""
    features = dataset_features(_dataset, _classifier.feature_config)
    return _classifier.embed_features(features, first_member_only=True).numpy()


@st.cache_data(show_spinner=False, max_entries=4)
def _pretrained_vectors(key: str, clip_seconds: float, _dataset) -> np.ndarray:
    """``(n_clips, 192)``: Google's pretrained speech embedding of each clip (no training), cached per dataset."""
    config = FeatureConfig(kind="speech_embedding", clip_seconds=clip_seconds)
    return pretrained_embeddings(torch.from_numpy(dataset_features(_dataset, config))).numpy()


@st.cache_resource(show_spinner=False, max_entries=8)
def _embedding_fig(key: str, what: str, method: str, title: str, _dataset, _points: np.ndarray):
    """The clips' 2-D map; hover: file name and class."""
    labels = [_dataset.class_names[int(y)] for y in _dataset.labels]
    hover = [f"{Path(p).name} ({label})" for p, label in zip(_dataset.paths, labels)]
    return fig_embedding(_points, labels, hover, title=title)


def _selected_row(point: dict) -> int | None:
    """The clip index of a selected embedding point (its ``customdata`` is ``[row]``; Streamlit may hand it
    back as a list or as ``{"0": row}``)."""
    data = point.get("customdata")
    if isinstance(data, dict):
        data = data.get("0", next(iter(data.values()), None))
    elif isinstance(data, (list, tuple)):
        data = data[0] if data else None
    try:
        return int(data)
    except (TypeError, ValueError):
        return None


# Building a Plotly figure costs tens of ms and the browser much more to draw; the overview's three are built once
# per dataset, and the grids (dozens of clips) are still images (PNG), which cost nothing to draw.
@st.cache_resource(show_spinner=False, max_entries=8)
def _overview_figs(key: str, _dataset) -> tuple:
    """The class counts, durations and sample rates charts, and the total duration in seconds (one pass over the
    clips' lengths)."""
    durations = _dataset.durations
    return (fig_class_counts(_dataset.class_counts(), title="Clips per class"),
            fig_histogram(durations, "Duration (s)", title="Clip durations"),
            fig_histogram(_dataset.sample_rates, "Sample rate (Hz)", title="Sample rates", nbins=20),
            float(durations.sum()))


@st.cache_data(show_spinner=False, max_entries=512)
def _example_images(key: str, config_json: str, index: int, _dataset, _features: np.ndarray) -> tuple:
    """One example's WAV bytes, waveform PNG and spectrogram PNG."""
    waveform, rate = _dataset.clip(index)
    return (wav_bytes(waveform, rate), image_waveform(waveform, 360, 90),
            image_spectrogram(_features[index], scale=2, time_scale=3))


@st.cache_data(show_spinner=False, max_entries=8)
def _mean_images(key: str, config_json: str, _dataset, _features: np.ndarray) -> dict[str, bytes]:
    """One PNG per class (at most MAX_MEAN_SPECS) of the mean features, on one colour scale."""
    means = class_means(_features, _dataset.labels, _dataset.class_names, max_classes=MAX_MEAN_SPECS)
    zmin, zmax = color_range(*means.values())
    return {name: image_spectrogram(mean, zmin, zmax, scale=3) for name, mean in means.items()}


def overview(dataset, key: str) -> None:
    """Clips, classes, total duration, failed files, and the class, duration, rate and channel charts."""
    st.subheader("Overview")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Clips", f"{len(dataset):,}")
    m2.metric("Classes", f"{dataset.n_classes}")
    fig_counts, fig_durations, fig_rates, total = _overview_figs(key, dataset)
    m3.metric("Total duration", f"{total / 60:.1f} min" if total >= 120 else f"{total:.1f} s")
    m4.metric("Failed files", f"{len(dataset.failed)}",
              help="Files that could not be decoded or were not found; they are left out.")
    if dataset.failed:
        with st.expander(f"Failed files ({len(dataset.failed)}): left out of the dataset", icon=":material/error:"):
            st.dataframe({"file": [p for p, _ in dataset.failed], "reason": [r for _, r in dataset.failed]},
                         hide_index=True, key="ds_failed_table")

    counts = dataset.class_counts()
    st.plotly_chart(fig_counts, key="ds_class_counts")
    if min(counts.values()) * 2 < max(counts.values()):
        st.info("The classes are unbalanced (the smallest has less than half the clips of the largest): watch the "
                "per-class recall on the Evaluate page.")
    h1, h2, h3 = st.columns([2, 2, 1])
    h1.plotly_chart(fig_durations, key="ds_durations")
    h2.plotly_chart(fig_rates, key="ds_rates")
    with h3:
        channels = dataset.channel_counts()
        st.caption("Channels")
        st.dataframe({"channels": list(channels), "clips": list(channels.values())}, hide_index=True,
                     key="ds_channels")
        st.caption("Clips are mixed to mono, resampled and cut or padded to one length before features are made.")


@st.fragment
def examples(dataset, key: str, config, features: np.ndarray) -> None:
    """Examples per class (a fragment: choosing classes reruns only this section)."""
    st.subheader("Listen to examples")
    suffix = hashlib.sha1(key.encode()).hexdigest()[:8]  # per-dataset widget key: the options change with it
    e1, e2 = st.columns([1, 3])
    per_class = e1.slider("Examples per class", 1, 4, 2, key="ds_per_class")
    chosen = e2.multiselect("Classes", dataset.class_names,
                            default=dataset.class_names[:min(6, dataset.n_classes)], key=f"ds_classes_{suffix}")
    if not chosen:
        st.info("Choose at least one class to see examples.")
        return
    shown_classes = chosen[:max(1, MAX_EXAMPLES // per_class)]
    if len(shown_classes) < len(chosen):
        st.caption(f"Showing the first {len(shown_classes)} classes ({MAX_EXAMPLES} examples at most): pick fewer "
                   "classes or fewer examples per class to see others.")
    st.caption(f"Each example: its sound, its waveform and its spectrogram ({AXES}).")
    containers = st.tabs(shown_classes) if len(shown_classes) > 3 else [st.container() for _ in shown_classes]
    for name, box in zip(shown_classes, containers):
        picks = dataset.class_examples(name, per_class)
        with box:
            if len(shown_classes) <= 3:
                st.markdown(f"**{name}** ({len(dataset.class_indices(name))} clips)")
            for column, i in zip(st.columns(per_class), picks):
                with column:
                    audio, wave_png, spec_png = _example_images(key, config.to_json(), int(i), dataset, features)
                    st.caption(Path(dataset.paths[i]).name)
                    st.audio(audio, format="audio/wav")
                    st.image(wave_png, width="stretch", output_format="PNG")  # as it is: "auto" re-encodes
                    st.image(spec_png, width="stretch", output_format="PNG")  # it as a JPEG on every rerun


def _features_map_key(key: str, config) -> str:
    return f"{key}|{config.to_json()}"


def prefetch_feature_maps(key: str, config, features: np.ndarray) -> None:
    """Ask ahead for the input features' maps (both projections), computed in the background while the page
    draws the rest."""
    prefetch_maps(_features_map_key(key, config), features)


@st.fragment
def learned_map(dataset, key: str, config, features: np.ndarray) -> None:
    """The 2-D map of every clip (a fragment: choosing what to map, or clicking a point, reruns only this)."""
    st.subheader("Map of all clips")
    st.caption("Every clip squeezed to two numbers: clips that are alike land close together. Click a point to "
               "listen to it.")
    left, right = st.columns(2)
    what = left.radio("Map of", list(MAP_KINDS), horizontal=True, key="ds_map_what", format_func=MAP_KINDS.get,
                      help="The input features (spectrograms) of one word differ more between voices than between "
                           "words, so they are intermixed; the model's last hidden layer is where it has pulled "
                           "the classes apart. Google's pretrained speech embedding never saw these words, yet "
                           "often separates them already: why a head on it learns new words from a few clips.")
    method = right.radio("Projection", list(PROJECTIONS), format_func=PROJECTIONS.get, horizontal=True,
                         key="ds_method")
    if len(dataset) < 2:
        st.info("A map needs at least two clips.")
        return
    if what == "learned":
        run = active_run()
        classifier = load_classifier(run) if run is not None else None
        if classifier is None:
            st.info("No trained model yet: train one on the Train page to see what it learned, or map the input "
                    "features.")
            return
        with st.spinner(f"Running {run.run_id} over the clips (once)..."):
            vectors = _learned_vectors(key, f"{run.run_id}:{run.created}", classifier, dataset)
        title = f"What {run.run_id} learned (its last hidden layer)"
        if run.model and "_x" in run.model:
            title += ", first network of the ensemble"
        map_key = f"{key}|{run.run_id}:{run.created}"
    elif what == "pretrained":
        with st.spinner("Running Google's speech embedding over the clips (once)..."):
            vectors = _pretrained_vectors(key, config.clip_seconds, dataset)
        title, map_key = "Google's speech embedding (pretrained, not trained on these words)", f"{key}|pretrained"
    else:
        vectors, title, map_key = features, "Input features", _features_map_key(key, config)
    with st.spinner("Projecting the clips..."):
        points = map_points(map_key, method, vectors)
    title = f"{title}, {PROJECTIONS[method].split(' ')[0]} (click a point to listen)"
    fig = _embedding_fig(map_key, what, method, title, dataset, points)
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="embedding")
    unknown = sorted(set(dataset.class_names) - set(classifier.class_names)) if what == "learned" else []
    if unknown:
        st.caption(f"Classes {run.run_id} was not trained on ({', '.join(unknown)}) land wherever they sound most "
                   "like its own.")
    selected = list(getattr(getattr(event, "selection", None), "points", None) or [])
    if not selected:
        st.caption("No clip selected.")
        return
    row = _selected_row(selected[0])
    if row is None or not 0 <= row < len(dataset):
        st.warning("Could not find the clip of that point: click it again.")
        return
    waveform, rate = dataset.clip(row)
    st.markdown(f"**{dataset.class_names[int(dataset.labels[row])]}**: `{dataset.paths[row]}` "
                f"({waveform.shape[-1] / rate:.2f} s, {rate} Hz)")
    st.audio(wav_bytes(waveform, rate))


def mean_spectrograms(dataset, key: str, config, features: np.ndarray) -> None:
    """One image per class: the mean of its clips' features, on one colour scale."""
    st.subheader("Average spectrogram per class")
    st.caption("Each image is the mean of the features of all the class's clips: where the energy of a word usually "
               f"lies in time and frequency. Same colour scale for every class; {AXES}.")
    mean_images = _mean_images(key, config.to_json(), dataset, features)
    if len(mean_images) < dataset.n_classes:
        st.caption(f"The first {len(mean_images)} classes are shown.")
    per_row = 5
    names = list(mean_images)
    for start in range(0, len(names), per_row):
        for col, name in zip(st.columns(per_row), names[start:start + per_row]):
            col.image(mean_images[name], caption=name, width="stretch", output_format="PNG")
