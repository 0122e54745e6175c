"""Evaluate: how good a trained run is, where it goes wrong and how it does on other data (runs are compared on the
Runs page)."""

from __future__ import annotations

from typing import Callable

import streamlit as st

from lib.data.synth.builtin import builtin_folder
from lib.data.sources import AudioDataset, DatasetError
from lib.engine.evaluate import EvaluationReport, evaluate, matching_clips, unmatched_counts
from lib.serving.infer import Classifier
from lib.paths import PathNotAllowed, confine
from lib.plots import fig_curves, fig_embedding
from lib.data.recordings import recording_sets
from lib.engine.run_extras import test_embedding
from lib.engine.runs import RunInfo
from lib.settings import settings as operator_settings
from ui.common import (PROJECTIONS, active_dataset, dataset_features, load_classifier, load_dataset,
                       map_points, page_header, page_link, run_picker, runs, source_key, spec_from_dict)
from ui.report import fmt, show_mistakes, show_report

MAP_SOURCES = {"learned": "What the model learned", "features": "Input features"}
CHANGED = ("The dataset changed since this run was trained (other clips or classes), so its test clips cannot be "
           "mapped from it.")


# ----------------------------------------------------------------------------------------------- helpers
def guarded(run: RunInfo, what: str, draw: Callable[[], None]) -> None:
    """Draw a section; a malformed run file (or one the model cannot read) shows an error instead of a traceback."""
    try:
        draw()
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, OSError) as error:
        st.error(f"Cannot show the {what} of run '{run.run_id}': its files are malformed ({error!r}). "
                 "Retrain it, or delete it on the Runs page.")


def split_report(run: RunInfo, split: str) -> EvaluationReport | None:
    """The run's report of one split; shows why when there is none."""
    try:
        report = run.report(split)
    except ValueError as error:
        st.error(f"metrics.json of run '{run.run_id}' has no usable {split} results ({error}). Retrain the run "
                 "or delete it on the Runs page.")
        return None
    if report is None:
        st.info(f"Run '{run.run_id}' has no {split} clips (the split was empty).")
    return report


# ------------------------------------------------------------------------------------------------ sections
def show_summary(run: RunInfo) -> None:
    record, data = run.record, run.record.dataset
    parts = [f"**{record.model}**, {fmt(record.n_parameters, 'int')} parameters",
             f"trained on **{data.name or 'an unknown dataset'}** ({fmt(data.n_clips, 'int')} clips: "
             f"{data.split.get('train', '?')} train / {data.split.get('validation', '?')} validation / "
             f"{data.split.get('test', '?')} test)",
             f"{record.device or '?'}, {fmt(record.duration_sec, 'sec')}, {record.status or '?'}, "
             f"best epoch {fmt(record.best_epoch) if record.best_epoch is not None else '?'}, "
             f"created {record.created or '?'}"]
    st.markdown(" · ".join(parts))


def show_curves(run: RunInfo) -> None:
    history = run.history
    if not history:
        st.info("This run has no per-epoch history.")
        return
    left, right = st.columns(2, gap="large")
    left.plotly_chart(fig_curves(history, ("train_loss", "val_loss"), title="Loss"), key="eval_curve_loss")
    right.plotly_chart(fig_curves(history, ("train_accuracy", "val_accuracy"), title="Accuracy"),
                       key="eval_curve_acc")


def run_dataset(run: RunInfo) -> AudioDataset | None:
    """The dataset the run was trained on, when it can be opened here; else an info message and None."""
    source = run.record.dataset.source
    if not isinstance(source, dict) or source.get("kind") not in ("builtin", "folder", "csv", "catalog"):
        st.info("This run does not record which dataset it was trained on, so its test clips cannot be mapped.")
        return None
    try:
        if source["kind"] == "builtin":
            folder = builtin_folder(spec_from_dict(source["spec"]), operator_settings().builtin_cache)
            if not (folder / "manifest.csv").is_file():
                st.info("The built-in set this run was trained on is not generated on this machine: open it on "
                        "the Dataset page to see the map.")
                return None
            source = {"kind": "builtin", "spec": source["spec"]}
        elif not confine(source.get("path") or source.get("root", "")).exists():
            st.info(f"The dataset this run was trained on is gone ({source.get('path') or source.get('root')}), so "
                    "its test clips cannot be mapped.")
            return None
        return load_dataset(source)
    except PathNotAllowed:
        st.info("The dataset this run was trained on lies outside the folders this app may read, so its test "
                "clips cannot be mapped.")
        return None
    except (DatasetError, ValueError, OSError, KeyError, TypeError) as error:
        st.info(f"Cannot open the dataset this run was trained on ({error}), so its test clips cannot be mapped.")
        return None


def show_map(run: RunInfo, report: EvaluationReport) -> None:
    predictions = report.predictions
    if len(predictions) < 2:
        st.info("The map needs at least two test clips with saved predictions.")
        return
    names = report.class_names
    index = [p.index for p in predictions]
    left, right = st.columns(2)
    what = left.radio("Map of", list(MAP_SOURCES), format_func=MAP_SOURCES.get, horizontal=True, key="eval_map_what",
                      help="What the model learned separates the classes; the input features show why the task is "
                           "hard (spectrograms of one word differ more between voices than between words).")
    method = right.radio("Projection", list(PROJECTIONS), format_func=PROJECTIONS.get, horizontal=True,
                         key="eval_map_method")
    vectors = None
    if what == "learned":
        kept = test_embedding(run.path)
        if kept is not None and kept[0].tolist() == index:
            vectors = kept[1]
        else:  # a run saved before runs kept their test embedding: recompute it from its dataset
            dataset = run_dataset(run)
            classifier = load_classifier(run) if dataset is not None else None
            if dataset is None or classifier is None:
                return
            if not report.matches(dataset):
                st.info(CHANGED)
                return
            with st.spinner("Running the model over the test clips…"):
                vectors = classifier.embed_clips(dataset, index)
    else:
        dataset = run_dataset(run)
        if dataset is None:
            return
        if not report.matches(dataset):
            st.info(CHANGED)
            return
        with st.spinner("Computing features…"):
            vectors = dataset_features(dataset, run.record.feature_config)[index]
    with st.spinner("Projecting the clips…"):
        points = map_points(f"{run.run_id}:{run.created}:{what}", method, vectors)
    hover = [f"{p.caption}: predicted {names[p.pred]} ({p.confidence:.0%})" for p in predictions]
    symbols = ["correct" if p.correct else "wrong" for p in predictions]
    title = ("Test clips as the model sees them (its last hidden layer)" if what == "learned"
             else "Test clips: input features")
    st.plotly_chart(fig_embedding(points, [names[p.true] for p in predictions], hover, symbols=symbols,
                                  title=f"{title}, {PROJECTIONS[method].split(' ')[0]}"), key="eval_map")
    st.caption("Colour: true class; ✕: misclassified. Clips the model confuses often sit between classes.")


@st.cache_data(show_spinner=False, max_entries=8)
def cross_report(run_key: str, data_key: str, _classifier: Classifier, _dataset: AudioDataset,
                 keep: tuple[int, ...]) -> EvaluationReport:
    """:func:`lib.engine.evaluate.evaluate` of the run on the clips ``keep`` of a dataset (cached per run and dataset)."""
    return evaluate(_classifier, _dataset, keep)


def confined_source(kind: str, text: str) -> dict | None:
    """The source of a typed folder or CSV path inside the allowed folders; None (with an ``st.error`` naming
    them when something was typed) otherwise."""
    if not text.strip():
        return None
    try:
        return {"kind": kind, "path": str(confine(text))}
    except PathNotAllowed as error:
        st.error(f"Cannot open this {'folder' if kind == 'folder' else 'CSV manifest'}: {error}.")
        return None


def show_cross(run: RunInfo) -> None:
    kinds = {"active": "The active dataset", "recordings": "My recordings", "folder": "A folder",
             "csv": "A CSV manifest"}
    kind = st.radio("Test on", list(kinds), format_func=kinds.get, horizontal=True, key="eval_cross_kind",
                    help="See domain shift with your own eyes: a model trained on synthetic voices, tested on "
                         "recordings of yours or on another dataset.")
    if kind == "recordings":
        RECORDINGS_DIR = operator_settings().recordings_dir
        sets = recording_sets(RECORDINGS_DIR)
        if not sets:
            st.info("No recordings yet: record a few words per class on the Record page (they are saved under "
                    f"`{RECORDINGS_DIR}`), then come back.")
            page_link("app_pages/record.py", "Go to the Record page", icon=":material/mic:")
            return
        name = st.selectbox("Recordings", sets, key="eval_cross_recordings")
        source = {"kind": "folder", "path": str(RECORDINGS_DIR / name)}
    elif kind == "folder":
        path = st.text_input("Folder with one sub-folder per class", key="eval_cross_folder",
                             placeholder="/data/my_words")
        source = confined_source("folder", path)
    elif kind == "csv":
        path = st.text_input("CSV manifest (columns path and label)", key="eval_cross_csv",
                             placeholder="/data/my_words.csv")
        source = confined_source("csv", path)
    else:
        source = st.session_state["dataset_source"]
    wanted = {"run": run.run_id, "source": source_key(source) if source else None}

    def go() -> None:
        st.session_state["eval_cross"] = wanted

    st.button("Evaluate on this dataset", key="eval_cross_go", on_click=go, disabled=source is None,
              icon=":material/play_arrow:")
    if source is None or st.session_state.get("eval_cross") != wanted:
        st.caption("Classes are matched by name; clips of other classes are skipped.")
        return
    classifier = load_classifier(run)
    if classifier is None:
        return
    if kind == "active":
        dataset = active_dataset()
    else:
        try:
            dataset = load_dataset(source)
        except (DatasetError, ValueError, OSError) as error:
            st.error(f"Could not open the dataset: {error}. Check the path and try again.")
            return
    if dataset is None:
        return
    if dataset.failed:
        st.warning(f"{len(dataset.failed)} file(s) of {dataset.name} could not be read and were skipped.")
    names = set(classifier.class_names)
    keep = tuple(matching_clips(dataset, classifier.class_names).tolist())
    other = unmatched_counts(dataset, classifier.class_names)
    if other:
        st.warning(f"Skipped {sum(other.values())} clip(s) whose label is not a class of this run: "
                   + ", ".join(f"{c} ({n})" for c, n in other.items()) + ".")
    if not keep:
        st.error(f"None of {dataset.name}'s classes ({', '.join(dataset.class_names)}) is a class of run "
                 f"'{run.run_id}' ({', '.join(classifier.class_names)}). Pick a dataset with the same class names.")
        return
    with st.spinner(f"Classifying {len(keep):,} clips…"):
        report = cross_report(f"{run.run_id}:{run.created}", source_key(dataset.source), classifier, dataset, keep)
    st.markdown(f"**{dataset.name}**: {len(keep):,} clips of {len(names & set(dataset.class_names))} classes.")
    trained_on = dict(run.record.dataset.source or {})
    if source_key({**trained_on, "cache_dir": None}) == source_key({**dataset.source, "cache_dir": None}):
        st.caption("This looks like the dataset the run was trained on: the scores include its training clips, "
                   "so they are optimistic. The test split above is the fair measure.")
    show_report(report, "cross")


# ------------------------------------------------------------------------------------------------- page
page_header("Evaluate", "How good is a trained run, which classes it confuses, which clips it gets wrong "
                        "and how it does on other data.")
all_runs = runs()
broken = [r for r in all_runs if r.error]
if broken:
    st.error(f"{len(broken)} saved run(s) cannot be evaluated:\n\n" + "\n".join(f"- {r.error}" for r in broken)
             + "\n\nDelete them on the Runs page or retrain.", icon=":material/error:")
run = run_picker("Run to evaluate", key="eval_run")
if run is None:
    st.stop()
guarded(run, "summary", lambda: show_summary(run))

st.subheader("Scores")
test_tab, val_tab = st.tabs(["Test split", "Validation split"])
with test_tab:
    st.caption("Clips the model never saw while training or choosing its best epoch: the fair measure.")
    test_report = split_report(run, "test")
    if test_report:
        guarded(run, "test results", lambda: show_report(test_report, "test"))
with val_tab:
    st.caption("Clips used to pick the best epoch: slightly optimistic.")
    val_report = split_report(run, "validation")
    if val_report:
        guarded(run, "validation results", lambda: show_report(val_report, "validation"))

st.subheader("Training curves")
guarded(run, "training curves", lambda: show_curves(run))

if test_report:
    st.subheader("Misclassified test clips")
    guarded(run, "misclassified clips", lambda: show_mistakes(run, test_report))
    st.subheader("Map of the test clips")
    guarded(run, "map of the test clips", lambda: show_map(run, test_report))

st.subheader("Test this run on another dataset")
guarded(run, "evaluation on another dataset", lambda: show_cross(run))

st.subheader("Compare runs")
st.caption("Tick 2 to 8 runs in the Runs page's table to see their curves, scores, the settings that differ and "
           "each class's F1 side by side.")
page_link("app_pages/runs.py", "Compare runs on the Runs page", icon=":material/compare_arrows:")
