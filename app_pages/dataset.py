"""Dataset: choose the data (built-in, folder, CSV, a real dataset of the catalog), see what is in it, listen to it
and map it in 2-D (the views: ui/dataset_view.py; real datasets: ui/catalog.py)."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from lib.data.catalog import SPEECH_COMMANDS_KEYWORDS
from lib.data.synth.builtin import BuiltinSpec, builtin_folder
from lib.embedding import MAPS
from lib.paths import PathNotAllowed, confine
from lib.settings import settings
from ui.catalog import catalog_chooser, set_source
from ui.common import (active_dataset, dataset_features, default_builtin_spec, feature_config, init_state,
                       page_header, source_key, spec_from_dict)
from ui.dataset_view import examples, learned_map, mean_spectrograms, overview, prefetch_feature_maps

SOURCES = {"builtin": "Built-in (synthetic keywords)", "folder": "Folder on disk", "csv": "CSV manifest",
           "catalog": "Real dataset"}
MAX_VIEW_CLIPS = 2000   # features, examples, mean spectrograms and the map use a random subset of larger sets


# --------------------------------------------------------------------------------------- callbacks
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
    set_source({"kind": "builtin", "spec": asdict(spec)})


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
        set_source({"kind": "folder", "path": path})


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
    set_source({"kind": "csv", "path": path, "root": root})


def _back_to_builtin() -> None:
    set_source({"kind": "builtin", "spec": asdict(default_builtin_spec())})
    st.session_state["ds_kind"] = "builtin"


# --------------------------------------------------------------------------------------- page
page_header("Dataset", "Pick the clips to learn from, then look at them and listen: classes, lengths, examples "
                       "and how the clips group together.")
init_state()
MAPS.start()  # the 2-D maps' helper process starts (imports) while the data loads
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
    catalog_chooser(source)
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
overview(dataset, key)

# -- large sets: features, examples, mean spectrograms and the map use a fixed random subset
if len(dataset) > MAX_VIEW_CLIPS:
    st.info(f"This dataset has {len(dataset):,} clips: the examples, average spectrograms and map below use a "
            f"random subset of {MAX_VIEW_CLIPS:,} (training uses them all).")
    dataset = dataset.view_subset(MAX_VIEW_CLIPS)
    key = f"{key}#subset{MAX_VIEW_CLIPS}"

# -- features of every clip (cached per dataset and feature config)
config = feature_config()
with st.spinner("Computing features (once per dataset and settings)..."):
    features = dataset_features(dataset, config)
prefetch_feature_maps(key, config, features)
st.caption(f"Spectrograms below use the current feature settings ({config.kind}, {config.n_bins} bins, "
           f"{config.clip_seconds:g} s at {config.sample_rate} Hz): change them on the Transforms page.")

examples(dataset, key, config, features)
mean_spectrograms(dataset, key, config, features)
learned_map(dataset, key, config, features)
