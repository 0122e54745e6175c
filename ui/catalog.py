"""The Dataset page's real datasets: a catalog card, and getting the set (download, an extracted copy, or an
archive) with progress, errors said in the app."""

from __future__ import annotations

import streamlit as st

from lib.data.catalog import CATALOG, find_root, resolve_source
from lib.data.download import DownloadError, archive_path, dataset_folder, fetch_dataset
from lib.data.sources import DatasetError
from lib.paths import PathNotAllowed, confine
from lib.settings import settings
from ui.common import feature_config

__all__ = ["set_source", "catalog_chooser"]


def set_source(source: dict) -> None:
    """Make ``source`` (a :func:`lib.data.sources.load_source` dict) this session's dataset."""
    st.session_state["dataset_source"] = source
    st.session_state.pop("ds_form_error", None)


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
    set_source(_catalog_source(key, root))
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


def catalog_chooser(source: dict) -> None:
    """Choose a catalog dataset, see its card, and open, download or point at it."""
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
