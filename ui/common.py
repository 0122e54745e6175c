"""What every page shares: folders, the active dataset / run / feature settings, caches and the sidebar.

Everything a user chooses (dataset, run, feature and training settings) lives in the browser session's
``st.session_state``: one session's choices never change another's. Process-wide state here is either the
operator's (folders) or a cache keyed by its inputs (datasets, features, classifiers, the built-in set's build).

Session state keys (initialised once by :func:`init_state`, changed in callbacks):
    ``dataset_source``  dict that rebuilds the active dataset (``{"kind": "builtin", "spec": {...}}``,
                        ``{"kind": "folder", "path": ...}``, ``{"kind": "csv", "path": ...}`` or
                        ``{"kind": "catalog", "key": ..., "root": ..., "clip_seconds": ..., "sample_rate": ...}``)
    ``run_id``          the session's active saved run (None until :func:`active_run` picks the default)
    ``feature_config``  dict of :class:`lib.dsp.features.FeatureConfig` (set by the Transform lab)
    ``augment_config``  dict of :class:`lib.augment.AugmentConfig` (set by the Transform lab)
    ``train_job_id``    this session's latest training job

The folders (data, runs, the built-in set's cache, recordings) are the operator's, read once by
:func:`lib.settings.settings` from the environment; no page changes them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from streamlit.errors import StreamlitAPIException

from lib.augment import AugmentConfig
from lib.data.synth.builtin import BuiltinSpec, builtin_folder, builtin_name, generate_builtin
from lib.data.catalog import CATALOG, get_card
from lib.data.sources import AudioDataset, DatasetError, catalog_cache_args, load_source
from lib.device import describe_device, page_threads, resolve_device, train_threads
from lib.data.cache import cached_dataset
from lib.dsp.features import FeatureConfig, FeatureExtractor
from lib.serving.infer import Classifier
from lib.embedding import MAPS
from lib.engine.runs import RunError, RunInfo, list_runs
from lib.settings import settings
from lib.engine.train import featurize_dataset

DEFAULT_RUN_ID = "default"  # the shipped default model (``make default-model``): every new session starts on it



def keep_page_threads() -> None:
    """The pages' own torch work (inference, features, maps) runs on the cores a training job leaves: training runs
    in processes of its own with :func:`lib.device.train_threads`, so together they never ask for more threads than
    cores. Set on import and again on every page run (something else in the process may have changed it)."""
    if torch.get_num_threads() != page_threads():
        torch.set_num_threads(page_threads())


keep_page_threads()


def default_builtin_spec() -> BuiltinSpec:
    """The built-in set the app opens on (its size is the operator's ``AUDIOWB_BUILTIN_CLIPS``)."""
    return BuiltinSpec(clips_per_word=settings().builtin_clips)


def init_state() -> None:
    """Set every session key once (pages call this first)."""
    defaults = {"dataset_source": {"kind": "builtin", "spec": asdict(default_builtin_spec())}, "run_id": None,
                "feature_config": FeatureConfig().to_dict(), "augment_config": AugmentConfig().to_dict(),
                "train_job_id": None}
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)


def source_key(source: dict) -> str:
    """A stable string for a dataset source (cache key); where a set is cached on disk is not part of it."""
    return json.dumps({k: v for k, v in source.items() if k != "cache_dir"}, sort_keys=True, default=str)


def spec_from_dict(spec: dict) -> BuiltinSpec:
    return BuiltinSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})


def _fingerprint(source: dict) -> str:
    """Changes when a folder or CSV dataset's files change (so a recording added to a folder shows up)."""
    if source["kind"] == "folder":
        files = [p for p in Path(source["path"]).expanduser().rglob("*") if p.is_file()]
        return f"{len(files)}:{max((p.stat().st_mtime_ns for p in files), default=0)}"
    if source["kind"] == "csv":
        path = Path(source["path"]).expanduser()
        return str(path.stat().st_mtime_ns) if path.is_file() else "missing"
    return ""


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_dataset(key: str, fingerprint: str = "") -> AudioDataset:
    from lib.paths import allowed_roots  # folders, CSV manifests and their rows: only inside the allowed folders

    return load_source(json.loads(key), settings().data_dir, roots=allowed_roots())


def ensure_catalog_cache(source: dict) -> None:
    """Build a catalog dataset's on-disk cache with a progress bar if none for its settings is on disk yet."""
    args = catalog_cache_args(source, settings().data_dir)
    crops = args.get("crops") or get_card(args["key"]).long_clips
    pattern = f"{args['key']}-{args['sample_rate']}hz-{round(args['sample_rate'] * args['clip_seconds'])}-{crops}-*"
    for meta in Path(args["cache_root"]).glob(f"{pattern}/meta.json"):
        try:
            if Path(json.loads(meta.read_text())["source"]["root"]).resolve() == Path(args["root"]).resolve():
                return  # a cache of this copy exists; _load_dataset reuses it (or rebuilds it if the files changed)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    name = get_card(args["key"]).name
    bar = st.progress(0.0, text=f"Decoding {name} into the on-disk cache (once)...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Decoding {name} into the on-disk cache (once): {done:,} / "
                                                f"{total:,} clips")

    try:
        cached_dataset(**args, progress=progress)
    finally:
        bar.empty()


@dataclass
class BuiltinBuild:
    """A built-in set being synthesized in a background thread (one per set and process, shared by sessions)."""

    n_clips: int
    done: int = 0
    error: str | None = None
    finished: bool = False


_BUILDS: dict[str, BuiltinBuild] = {}
_BUILDS_LOCK = threading.Lock()


class DatasetBuilding(Exception):
    """The built-in set is still being synthesized (its progress is on the page)."""


def _build_in_background(spec: BuiltinSpec) -> BuiltinBuild:
    """The build of ``spec``'s set, started in a background thread if it is not under way (or failed before)."""
    cache = settings().builtin_cache
    key = str(builtin_folder(spec, cache))
    with _BUILDS_LOCK:
        build = _BUILDS.get(key)
        if build is None or build.error is not None:
            build = _BUILDS[key] = BuiltinBuild(spec.n_clips)

            def work() -> None:
                def progress(done: int, total: int) -> None:
                    build.done = done

                try:
                    generate_builtin(spec, cache, progress)
                except (RuntimeError, OSError, ValueError) as error:  # eSpeak, a worker or a missing voice
                    build.error = str(error)
                finally:
                    build.finished = True

            threading.Thread(target=work, name=f"builtin-{spec.key()}", daemon=True).start()
    return build


@st.fragment(run_every=1.0)
def _build_progress(key: str, engines: str) -> None:
    """The synthesis progress bar; reruns the whole page once the set is ready."""
    build = _BUILDS[key]
    if build.finished:
        st.rerun()
    st.progress(build.done / max(build.n_clips, 1),
                text=f"Synthesizing the built-in set with {engines} (once, in the background): "
                     f"{build.done:,} / {build.n_clips:,} clips")


def ensure_builtin(spec: BuiltinSpec) -> None:
    """Make sure the built-in set of ``spec`` is on disk. The first time it is synthesized in a background thread
    while the page shows its progress and goes on drawing (the home page is usable at once).

    Raises:
        DatasetBuilding: While the set is being synthesized (its progress bar is drawn where this was called).
        RuntimeError: If the synthesis failed.
    """
    folder = builtin_folder(spec, settings().builtin_cache)
    if (folder / "manifest.csv").is_file():
        return
    build = _build_in_background(spec)
    if build.finished and build.error is None:
        return
    if build.error is not None:
        raise RuntimeError(build.error)
    engines = "eSpeak NG" + (" and neural voices (Kokoro takes minutes)" if spec.neural_clips_per_word else "")
    _build_progress(str(folder), engines)
    raise DatasetBuilding()


def load_dataset(source: dict) -> AudioDataset:
    """The dataset for ``source`` (decoded once per process). Raises DatasetError / ValueError with a message,
    or DatasetBuilding while the built-in set is synthesized."""
    if source["kind"] == "builtin":
        ensure_builtin(spec_from_dict(source["spec"]))
    if source["kind"] == "catalog":
        ensure_catalog_cache(source)
    with st.spinner("Decoding audio (once)..."):
        return _load_dataset(source_key(source), _fingerprint(source))


def active_dataset(show_errors: bool = True, wait: bool = True) -> AudioDataset | None:
    """The session's dataset; on failure shows ``st.error`` with what to do and returns None.

    While the built-in set is being synthesized its progress is shown and the page stops there, or, with
    ``wait=False`` (the home page), None is returned and the page goes on.
    """
    init_state()
    try:
        return load_dataset(st.session_state["dataset_source"])
    except DatasetBuilding:
        if wait:
            st.stop()
        return None
    except (DatasetError, ValueError, OSError, RuntimeError) as error:  # RuntimeError: eSpeak or a worker failed
        if show_errors:
            st.error(f"Could not open the dataset: {error}. Choose another one on the Dataset page.")
        return None


def feature_config() -> FeatureConfig:
    init_state()
    return FeatureConfig.from_dict(st.session_state["feature_config"])


def augment_config() -> AugmentConfig:
    init_state()
    return AugmentConfig.from_dict(st.session_state["augment_config"])


@st.cache_resource(show_spinner=False, max_entries=8)
def _featurize(key: str, config_json: str, n_clips: int, _dataset: AudioDataset) -> np.ndarray:
    return featurize_dataset(_dataset, FeatureExtractor(FeatureConfig.from_json(config_json))).numpy()


def dataset_features(dataset: AudioDataset, config: FeatureConfig) -> np.ndarray:
    """Features of every clip ``(n_clips, 1, bins, frames)``, cached per dataset and feature config."""
    return _featurize(source_key(dataset.source) + _fingerprint(dataset.source), config.to_json(), len(dataset), dataset)


#: 2-D projections of the maps (Dataset and Evaluate pages).
PROJECTIONS = {"pca": "PCA (linear, instant)", "tsne": "t-SNE (keeps neighbours; a few seconds the first time)"}


def map_points(key: str, method: str, vectors: np.ndarray) -> np.ndarray:
    """``(n, 2)`` points of ``vectors`` ``(n, ...)`` by :func:`lib.embedding.embedding_2d`, computed once per ``key``
    (which must name the vectors: the array itself is not hashed) and method for every session of the server
    (:data:`lib.embedding.MAPS`; at once when :func:`prefetch_maps` asked for it in time). The vectors' other
    projections are asked for ahead: the user's next click."""
    points = MAPS.points(key, method, vectors)
    prefetch_maps(key, vectors, [other for other in PROJECTIONS if other != method])
    return points


def prefetch_maps(key: str, vectors: np.ndarray, methods: Iterable[str] = tuple(PROJECTIONS)) -> None:
    """Start computing the maps ``key`` of ``vectors`` by each of ``methods`` in the background, for a later
    :func:`map_points` (a no-op for maps known or when the helper is busy)."""
    for method in methods:
        MAPS.prefetch(key, method, vectors)


# --------------------------------------------------------------------------------------------------- runs
def runs() -> list[RunInfo]:
    return list_runs(settings().runs_dir)


def default_run(all_runs: list[RunInfo]) -> RunInfo | None:
    """The run a new session starts on: the shipped default model (the run called :data:`DEFAULT_RUN_ID`) when it
    is there and loadable, else the newest usable run, else None. ``all_runs`` is :func:`lib.engine.runs.list_runs`'s
    list (newest first)."""
    usable = [r for r in all_runs if r.error is None]
    return next((r for r in usable if r.run_id == DEFAULT_RUN_ID), usable[0] if usable else None)


def active_run() -> RunInfo | None:
    """This session's run. A session that has none yet (a new one, or one whose run was deleted) gets
    :func:`default_run` and keeps it: runs other sessions train later never replace it. Only this session's own
    choices change it (the run pickers, the Runs page, a run it trains itself)."""
    init_state()
    all_runs = runs()
    chosen = next((r for r in all_runs if r.run_id == st.session_state["run_id"] and r.error is None), None)
    if chosen is None:
        chosen = default_run(all_runs)
        st.session_state["run_id"] = chosen.run_id if chosen is not None else None
    return chosen


def run_picker(label: str = "Run", key: str = "run_picker") -> RunInfo | None:
    """A selectbox of usable runs, defaulting to the active one; choosing one makes it active."""
    usable = [r for r in runs() if r.error is None]
    if not usable:
        st.warning("No saved run yet: train one on the Train page.")
        return None
    current = active_run()
    ids = [r.run_id for r in usable]
    # The widget shows the active run, set through its key (not `index`, which a browser that already shows the
    # widget ignores): when the run changes elsewhere on the page (the Record page's training), the picker follows.
    st.session_state[key] = current.run_id if current and current.run_id in ids else ids[0]

    def choose() -> None:
        st.session_state["run_id"] = st.session_state[key]

    st.selectbox(label, ids, key=key, on_change=choose,
                 format_func=lambda rid: _run_label(next(r for r in usable if r.run_id == rid)))
    return next(r for r in usable if r.run_id == st.session_state[key])


def _run_label(run: RunInfo) -> str:
    accuracy = f", test {run.test_accuracy:.0%}" if run.test_accuracy is not None else ""
    return f"{run.run_id} ({run.model}{accuracy})"


@st.cache_resource(show_spinner=False, max_entries=4)
def _classifier(path: str, mtime: float, device: str) -> Classifier:
    return Classifier.from_run(path, device=device)


def load_classifier(run: RunInfo) -> Classifier | None:
    """The run's classifier (cached); on failure shows ``st.error`` and returns None."""
    try:
        config_file = Path(run.path) / "config.json"
        return _classifier(str(run.path), config_file.stat().st_mtime, "cpu")
    except (RunError, OSError, RuntimeError, KeyError, ValueError) as error:
        st.error(f"Could not load run {run.run_id}: {error}. Delete it on the Runs page or retrain.")
        return None


def pick_classifier(key: str, label: str = "Run") -> tuple[RunInfo, Classifier]:
    """A :func:`run_picker` and its run's classifier, for a page that needs a model to run at all: with no usable
    run (or one that fails to load) it shows why, links to the Train page and stops the page."""
    run = run_picker(label, key=key)
    if run is None:
        page_link("app_pages/train.py", label="Train a model", icon=":material/model_training:")
        st.stop()
    classifier = load_classifier(run)
    if classifier is None:
        st.stop()
    return run, classifier


# --------------------------------------------------------------------------------------------------- layout
@st.cache_resource(show_spinner=False)
def device_description() -> str:
    """The sidebar's device line; on the CPU, how its cores are shared between training and the pages."""
    device = resolve_device("auto")
    if device.type != "cpu":
        return describe_device(device)
    return f"CPU: {train_threads()} training thread(s), {page_threads()} for the pages"


def sidebar() -> None:
    """The shared sidebar: active dataset, active run, compute device and the (read-only) data folder."""
    keep_page_threads()
    init_state()
    source = st.session_state["dataset_source"]
    with st.sidebar:
        st.caption("Active dataset")
        if source["kind"] == "builtin":
            spec = spec_from_dict(source["spec"])
            st.markdown(f"**{builtin_name(spec)}**  \n{len(spec.class_names)} classes, {spec.n_clips:,} clips")
        elif source["kind"] == "catalog":
            name = CATALOG[source["key"]].name if source.get("key") in CATALOG else source.get("key")
            st.markdown(f"**{name}**  \nreal dataset: `{source.get('root')}`")
        else:
            st.markdown(f"**{Path(source['path']).name}**  \n{source['kind']}: `{source['path']}`")
        run = active_run()
        st.caption("Active run")
        st.markdown(f"**{run.run_id}**  \n{run.model}" if run else "none yet: train one")
        st.caption("Compute device")
        st.markdown(f"**{device_description()}**")
        st.caption("Data folder", help="Set by whoever runs the server (AUDIOWB_DATA_DIR), not from a page.")
        st.markdown(f"`{settings().data_dir}`")


def detections_text(prediction) -> str:
    """``yes (0.52–0.93 s), stop (2.10–2.55 s)``: the sounds a :class:`lib.serving.infer.Prediction` heard."""
    return ", ".join(f"{d.label} ({d.start_sec:.2f}–{d.end_sec:.2f} s)" for d in prediction.detections)


def show_detections(prediction, key: str) -> None:
    """What a long recording was heard to say, by the one rule of :mod:`lib.serving.detect` (Record and Inference):
    one row per sound with its times, class and confidence; a line when it was silent."""
    if prediction.n_windows < 2:
        return
    if not prediction.detections:
        st.info("No sound stands out from the background in this recording: nothing was heard (the answer "
                "above is the model's guess for its middle).")
        return
    n = len(prediction.detections)
    st.markdown(f"**Heard {n} sound{'s' if n > 1 else ''}** (each classified in a "
                f"{prediction.window_seconds:g} s window centred on it; silence is not classified"
                + ("; the answer above is the loudest" if n > 1 else "") + ")")
    st.dataframe({"start (s)": [round(d.start_sec, 2) for d in prediction.detections],
                  "end (s)": [round(d.end_sec, 2) for d in prediction.detections],
                  "class": [d.label for d in prediction.detections],
                  "confidence": [round(d.probability, 4) for d in prediction.detections]},
                 hide_index=True, key=key, column_config={"confidence": st.column_config.ProgressColumn(
                     "confidence", min_value=0.0, max_value=1.0, format="percent")})


def page_link(page: str, label: str, icon: str | None = None) -> None:
    """``st.page_link`` to another page; when a page runs outside the router (on its own, as in some tests)
    a plain hint instead of an error."""
    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitAPIException:
        st.caption(f"{label}: open it from the navigation menu.")


def page_header(title: str, what: str) -> None:
    """Title and the one sentence saying what the page shows; also draws the sidebar."""
    init_state()
    st.title(title)
    st.caption(what)
    sidebar()
