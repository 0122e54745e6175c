"""Dataset: choose the data (built-in, folder, CSV, a real dataset of the catalog), see what is in it, listen to it and map it in 2-D."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from lib.dsp.audio import wav_bytes
from lib.data.synth.builtin import BuiltinSpec, builtin_folder
from lib.data.catalog import CATALOG, SPEECH_COMMANDS_KEYWORDS, find_root, resolve_source
from lib.data.sources import DatasetError
from lib.data.download import DownloadError, archive_path, dataset_folder, fetch_dataset
from lib.dsp.features import FeatureConfig
from lib.paths import PathNotAllowed, confine
from lib.plots import class_means, color_range, fig_class_counts, fig_embedding, fig_histogram, image_spectrogram, image_waveform
from lib.settings import settings
from lib.models.speech_embedding import pretrained_embeddings
from ui.common import (PROJECTIONS, active_dataset, active_run, dataset_features, default_builtin_spec,
                       feature_config, init_state, load_classifier, map_points, page_header, source_key, spec_from_dict)

SOURCES = {"builtin": "Built-in (synthetic keywords)", "folder": "Folder on disk", "csv": "CSV manifest",
           "catalog": "Real dataset"}
MAX_EXAMPLES = 24       # clips shown in the examples grid, all classes together
MAX_MEAN_SPECS = 40     # classes shown as mean spectrograms
MAX_VIEW_CLIPS = 2000   # features, examples, mean spectrograms and the map use a random subset of larger sets
MAP_KINDS = {"learned": "What the model learned", "pretrained": "A pretrained speech embedding",
             "features": "Input features"}


# --------------------------------------------------------------------------------------- callbacks
def _set_source(source: dict) -> None:
    st.session_state["dataset_source"] = source
    st.session_state.pop("ds_form_error", None)


def _open_builtin() -> None:
    """Form submit: build the spec from the form's widgets (validated by BuiltinSpec)."""
    words = tuple(w.strip() for w in str(st.session_state.get("ds_words", "")).split(","))
    try:
        spec = BuiltinSpec(words=words, clips_per_word=int(st.session_state["ds_clips"]),
                           include_unknown=bool(st.session_state["ds_unknown"]),
                           include_silence=bool(st.session_state["ds_silence"]),
                           seed=int(st.session_state["ds_seed"]),
                           piper_clips_per_word=int(st.session_state["ds_piper"]),
                           kokoro_clips_per_word=int(st.session_state["ds_kokoro"]))
    except ValueError as error:
        st.session_state["ds_form_error"] = f"Cannot build this set: {error}."
        return
    _set_source({"kind": "builtin", "spec": asdict(spec)})


def _confined(text: str, what: str) -> str | None:
    """``text`` resolved inside the allowed folders (:func:`lib.paths.confine`), else None with the form's error."""
    try:
        return str(confine(text))
    except PathNotAllowed as error:
        st.session_state["ds_form_error"] = f"Cannot open this {what}: {error}."
        return None


def _open_folder() -> None:
    path = str(st.session_state.get("ds_folder", "")).strip()
    if not path:
        st.session_state["ds_form_error"] = "Type the path of a folder first."
        return
    path = _confined(path, "folder")
    if path is not None:
        _set_source({"kind": "folder", "path": path})


def _open_csv() -> None:
    path = str(st.session_state.get("ds_csv", "")).strip()
    root = str(st.session_state.get("ds_csv_root", "")).strip() or None
    if not path:
        st.session_state["ds_form_error"] = "Type the path of a CSV manifest first."
        return
    path = _confined(path, "CSV manifest")
    if path is None:
        return
    if root is not None:
        root = _confined(root, "root folder")
        if root is None:
            return
    _set_source({"kind": "csv", "path": path, "root": root})


def _back_to_builtin() -> None:
    _set_source({"kind": "builtin", "spec": asdict(default_builtin_spec())})
    st.session_state["ds_kind"] = "builtin"


# --------------------------------------------------------------------------------------- real datasets
def _mb(n: float | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.1f}"


def _show_card(key: str) -> None:
    """What the dataset is, before anything is downloaded."""
    card = CATALOG[key]
    if isinstance(card.classes, tuple):
        few = ", ".join(card.classes[:8]) + (", ..." if len(card.classes) > 8 else "")
        classes = f"{len(card.classes)} classes: {few}"
    else:
        classes = card.classes
    url, _ = _safe_source(key)
    download = f"{card.download_bytes / 1e6:,.0f} MB download" if card.download_bytes else "download size unknown"
    split = (f"official split (test fold {card.official_split[0]}, validation fold {card.official_split[1]})"
             if card.official_split else f"{card.folds} official folds" if card.folds else "no official folds")
    with st.container(border=True):
        st.markdown(f"**{card.name}**: {card.task}")
        c1, c2, c3 = st.columns(3)
        c1.metric("Clips (official release)", f"{card.n_clips:,}")
        c2.metric("Size on disk", card.size_on_disk, help=download)
        c3.metric("Folds", f"{card.folds}" if card.folds else "none")
        st.markdown(f"- **Classes**: {classes}\n- **Split**: {split}\n- **Download**: {download}, "
                    f"{card.archive_format}\n- **Licence**: {card.license}\n- **Source**: {url}")
        if card.clip_seconds is not None:
            st.markdown(f"- **Clip length**: cached as {card.clip_seconds:g} s clips")
        st.caption("Citation")
        st.code(card.citation, language=None)
        st.caption(card.notes)


def _safe_source(key: str) -> tuple[str, str | None]:
    try:
        return resolve_source(key)
    except DatasetError:
        return CATALOG[CATALOG[key].source_key].url, None


def _catalog_source(key: str, root) -> dict:
    """The session source of catalog dataset ``key`` at ``root``: cached at the feature settings' rate, and at
    the dataset's suggested clip length (else the feature settings' one)."""
    config = feature_config()
    return {"kind": "catalog", "key": key, "root": str(root), "sample_rate": int(config.sample_rate),
            "clip_seconds": float(CATALOG[key].clip_seconds or config.clip_seconds)}


def _fetch(key: str, **how) -> None:
    """Run fetch_dataset with progress bars; on success make the dataset active (and rerun), else st.error."""
    name = CATALOG[key].name
    bar = st.progress(0.0, text=f"Getting {name}...")

    def on_download(done: int, total: int | None, rate: float, eta: float | None) -> None:
        eta_text = f", ETA {eta:,.0f} s" if eta is not None else ""
        bar.progress(min(done / total, 1.0) if total else 0.0,
                     text=f"Downloading {name}: {_mb(done)} / {_mb(total)} MB at {rate / 1e6:,.1f} MB/s{eta_text}")

    def on_extract(done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"Extracting {name}: {_mb(done)} / {_mb(total)} MB")

    try:
        root = fetch_dataset(key, settings().data_dir, progress=on_download, extract_progress=on_extract, **how)
    except DownloadError as error:
        bar.empty()
        if error.unreachable:  # offline or a dead address: what to do here, in the app
            card = CATALOG[key]
            st.error(f"Could not download {name}: {error.problem}. Without internet on this computer: download "
                     f"`{card.archive_name}` on one that has it (from {_safe_source(key)[0]}), copy it here and "
                     "open it in the **Use a downloaded archive** tab above; or, for a copy already extracted, use "
                     "**I already have it**. Meanwhile the built-in set stays active.")
        else:
            st.error(f"Could not get {name}: {error.problem}")
        return
    except (ValueError, OSError) as error:  # DatasetError, or a path outside the allowed folders
        bar.empty()
        st.error(f"Could not get {name}: {error}")
        return
    bar.empty()
    _set_source(_catalog_source(key, root))
    st.rerun()


def _catalog_path(text: str, what: str) -> str | None:
    """``text`` resolved inside the allowed folders, else None after an ``st.error`` naming them."""
    try:
        return str(confine(text))
    except PathNotAllowed as error:
        st.error(f"Cannot use this {what}: {error}.")
        return None


def _fetch_typed_path(key: str, widget: str, what: str, argument: str) -> None:
    """Get dataset ``key`` from the path typed in ``widget`` (passed to fetch_dataset as ``argument``), or
    ``st.error`` when it is empty or outside the allowed folders."""
    path = str(st.session_state.get(widget, "")).strip()
    if not path:
        st.error(f"Type the path of the {what} first.")
    elif (allowed := _catalog_path(path, "folder" if argument == "existing_root" else what)) is not None:
        _fetch(key, **{argument: allowed})


def _catalog_chooser(source: dict) -> None:
    keys = list(CATALOG)
    if "ds_cat_key" not in st.session_state:
        st.session_state["ds_cat_key"] = source["key"] if source["kind"] == "catalog" else keys[0]
    key = st.selectbox("Dataset", keys, key="ds_cat_key",
                       format_func=lambda k: f"{CATALOG[k].name} ({CATALOG[k].task})")
    _show_card(key)
    folder = dataset_folder(key, settings().data_dir)
    root = find_root(key, folder) if folder.is_dir() else None
    if root is not None:
        st.caption(f"Already on disk in `{root}`.")
        if st.button("Open", type="primary", key="ds_cat_open"):
            _fetch(key)
        return
    st.caption(f"Not on disk yet. It goes to `{folder}`; a downloaded archive is "
               f"kept as `{archive_path(key, settings().data_dir)}`.")
    t_download, t_existing, t_archive = st.tabs(["Download", "I already have it", "Use a downloaded archive"])
    with t_download:
        card = CATALOG[key]
        size = f" (about {card.download_bytes / 1e6:,.0f} MB)" if card.download_bytes else ""
        st.caption(f"Downloads `{_safe_source(key)[0]}`{size}, checks it and extracts it. The page waits until "
                   "it is done; an interrupted download resumes next time.")
        if st.button("Download", type="primary", key="ds_cat_download", icon=":material/download:"):
            _fetch(key)
    with t_existing:
        st.text_input("Folder of the extracted dataset", key="ds_cat_existing",
                      placeholder="/path/to/extracted/dataset")
        if st.button("Use this folder", key="ds_cat_use_existing"):
            _fetch_typed_path(key, "ds_cat_existing", "extracted dataset", "existing_root")
    with t_archive:
        st.text_input("Archive file", key="ds_cat_archive", placeholder=f"/path/to/{card.archive_name}")
        if st.button("Extract this archive", key="ds_cat_use_archive"):
            _fetch_typed_path(key, "ds_cat_archive", "archive", "local_archive")


# --------------------------------------------------------------------------------------- caches
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
    return wav_bytes(waveform, rate), image_waveform(waveform, 360, 90), image_spectrogram(_features[index], scale=2, time_scale=3)


@st.cache_data(show_spinner=False, max_entries=8)
def _mean_images(key: str, config_json: str, _dataset, _features: np.ndarray) -> dict[str, bytes]:
    """One PNG per class (at most MAX_MEAN_SPECS) of the mean features, on one colour scale."""
    means = class_means(_features, _dataset.labels, _dataset.class_names, max_classes=MAX_MEAN_SPECS)
    zmin, zmax = color_range(*means.values())
    return {name: image_spectrogram(mean, zmin, zmax, scale=3) for name, mean in means.items()}


# --------------------------------------------------------------------------------------- page
page_header("Dataset", "Pick the clips to learn from, then look at them and listen: classes, lengths, examples "
                       "and how the clips group together.")
init_state()
source = st.session_state["dataset_source"]
st.session_state.setdefault("ds_kind", source["kind"] if source["kind"] in SOURCES else "builtin")

# -- source chooser
st.subheader("Choose the data")
kind = st.segmented_control("Source", list(SOURCES), format_func=SOURCES.get, key="ds_kind", required=True)

if kind == "builtin":
    current = spec_from_dict(source["spec"]) if source["kind"] == "builtin" else default_builtin_spec()
    st.session_state.setdefault("ds_words", ", ".join(current.words))
    st.session_state.setdefault("ds_clips", int(current.clips_per_word))
    st.session_state.setdefault("ds_unknown", bool(current.include_unknown))
    st.session_state.setdefault("ds_silence", bool(current.include_silence))
    st.session_state.setdefault("ds_seed", int(current.seed))
    st.session_state.setdefault("ds_piper", int(current.piper_clips_per_word))
    st.session_state.setdefault("ds_kokoro", int(current.kokoro_clips_per_word))
    st.caption("Keywords spoken by synthetic eSpeak NG speakers on this machine (no download), optionally with "
               "neural voices that sound like recorded people. The same settings always give the same clips; a "
               "new set is synthesized once and then reused.")
    with st.form("ds_builtin_form"):
        st.text_input("Words (comma-separated, one class each)", key="ds_words",
                      help=f"The Speech Commands keywords are: {', '.join(SPEECH_COMMANDS_KEYWORDS)}.")
        c1, c2, c3 = st.columns(3)
        c1.number_input("Clips per word", min_value=1, max_value=100_000, step=10, key="ds_clips")
        c2.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="ds_seed")
        c3.checkbox("Add an `_unknown_` class", key="ds_unknown", help="Other words, as in Speech Commands.")
        c3.checkbox("Add a `_silence_` class", key="ds_silence", help="Background noise only.")
        c1.number_input("Piper clips per word", min_value=0, max_value=10_000, step=10, key="ds_piper",
                        help="Extra clips said by Piper's US English neural voice (about 20 clips/s).")
        c2.number_input("Kokoro clips per word", min_value=0, max_value=10_000, step=10, key="ds_kokoro",
                        help="Extra clips said by Kokoro-82M's voices (four female, one male) reading English: "
                             "accented, natural speech, about 2 clips/s. Models trained with neural voices "
                             "understand other voices better (docs/benchmarks.md).")
        st.form_submit_button("Generate / open", type="primary", on_click=_open_builtin, key="ds_generate")
elif kind == "folder":
    st.session_state.setdefault("ds_folder", source["path"] if source["kind"] == "folder" else "")
    st.caption("A folder with one sub-folder per class: `my_sounds/dog/*.wav`, `my_sounds/cat/*.wav`... "
               "(WAV, FLAC, OGG or MP3).")
    with st.form("ds_folder_form"):
        st.text_input("Folder path", key="ds_folder", placeholder="/path/to/my_sounds")
        st.form_submit_button("Open", type="primary", on_click=_open_folder, key="ds_open_folder")
elif kind == "catalog":
    st.caption("A public dataset of real recordings, downloaded once into the data folder and decoded once into an "
               "on-disk cache (large sets never sit in memory).")
    _catalog_chooser(source)
else:
    st.session_state.setdefault("ds_csv", source["path"] if source["kind"] == "csv" else "")
    st.session_state.setdefault("ds_csv_root", (source.get("root") or "") if source["kind"] == "csv" else "")
    st.caption("A CSV file with the columns `path` and `label` (optional: `group`, e.g. the speaker, and `fold`). "
               "Relative paths are read from the root folder (default: the CSV's folder).")
    with st.form("ds_csv_form"):
        st.text_input("CSV path", key="ds_csv", placeholder="/path/to/manifest.csv")
        st.text_input("Root folder for relative paths (optional)", key="ds_csv_root")
        st.form_submit_button("Open", type="primary", on_click=_open_csv, key="ds_open_csv")

if st.session_state.get("ds_form_error"):
    st.error(st.session_state.pop("ds_form_error"))  # shown once, after the click that caused it

# -- the active dataset
source = st.session_state["dataset_source"]
dataset = active_dataset()
if dataset is None:
    st.button("Back to the built-in set", on_click=_back_to_builtin, key="ds_back", type="primary",
              icon=":material/undo:")
    st.stop()
key = source_key(dataset.source)

if source["kind"] == "builtin":
    folder = builtin_folder(spec_from_dict(source["spec"]), settings().builtin_cache)
    st.caption(f"Active: **{dataset.name}**. Its WAV files (one sub-folder per word) and `manifest.csv` are in "
               f"`{folder}`.")
elif source["kind"] == "catalog":
    st.caption(f"Active: **{dataset.name}** (real dataset) from `{source['root']}`, cached as "
               f"{source.get('clip_seconds', 1.0):g} s clips at {source.get('sample_rate', 16000)} Hz.")
else:
    st.caption(f"Active: **{dataset.name}** ({source['kind']}) from `{source['path']}`.")
if dataset.n_classes < 2:
    st.warning(f"This dataset has only one class ({dataset.class_names[0]!r}): training needs at least two. "
               "Add a sub-folder (or labels) for another class, or go back to the built-in set.")
    st.button("Back to the built-in set", on_click=_back_to_builtin, key="ds_back_one_class")

# -- overview
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
    channel_values, channel_counts = np.unique(dataset.channels, return_counts=True)
    st.caption("Channels")
    st.dataframe({"channels": [int(c) for c in channel_values], "clips": [int(n) for n in channel_counts]},
                 hide_index=True, key="ds_channels")
    st.caption("Clips are mixed to mono, resampled and cut or padded to one length before features are made.")

# -- large sets: features, examples, mean spectrograms and the map use a fixed random subset
if len(dataset) > MAX_VIEW_CLIPS:
    st.info(f"This dataset has {len(dataset):,} clips: the examples, average spectrograms and map below use a "
            f"random subset of {MAX_VIEW_CLIPS:,} (training uses them all).")
    picks = np.sort(np.random.default_rng(0).choice(len(dataset), MAX_VIEW_CLIPS, replace=False))
    dataset = dataset.subset(picks)
    key = f"{key}#subset{MAX_VIEW_CLIPS}"

# -- features of every clip (cached per dataset and feature config)
config = feature_config()
with st.spinner("Computing features (once per dataset and settings)..."):
    features = dataset_features(dataset, config)
st.caption(f"Spectrograms below use the current feature settings ({config.kind}, {config.n_bins} bins, "
           f"{config.clip_seconds:g} s at {config.sample_rate} Hz): change them on the Transforms page.")

AXES = ("time → (one clip), frequency ↑ (low at the bottom); colours as on the Transforms page, where the "
        "spectrogram has real axes and hover values")


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
        label = dataset.class_names.index(name)
        rows = np.flatnonzero(dataset.labels == label)
        picks = rows[np.unique(np.linspace(0, len(rows) - 1, min(per_class, len(rows))).round().astype(int))]
        with box:
            if len(shown_classes) <= 3:
                st.markdown(f"**{name}** ({len(rows)} clips)")
            for column, i in zip(st.columns(per_class), picks):
                with column:
                    audio, wave_png, spec_png = _example_images(key, config.to_json(), int(i), dataset, features)
                    st.caption(Path(dataset.paths[i]).name)
                    st.audio(audio, format="audio/wav")
                    st.image(wave_png, width="stretch", output_format="PNG")  # as it is: "auto" re-encodes
                    st.image(spec_png, width="stretch", output_format="PNG")  # it as a JPEG on every rerun


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
        vectors, title, map_key = features, "Input features", f"{key}|{config.to_json()}"
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


examples(dataset, key, config, features)

# -- mean spectrogram per class
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

learned_map(dataset, key, config, features)
