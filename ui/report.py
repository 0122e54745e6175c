"""An evaluation report shown (the Evaluate page): its scores, confusion matrix and per-class table
(:func:`show_report`), and its most confident mistakes to hear and see (:func:`show_mistakes`)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from lib.dsp.audio import AudioDecodeError, wav_bytes
from lib.engine.evaluate import EvaluationReport, clip_features, load_segment
from lib.dsp.features import FeatureConfig
from lib.paths import PathNotAllowed, allowed_roots, confine
from lib.plots import fig_confusion, fig_prf, fig_spectrogram
from lib.engine.run_extras import mistake_clip
from lib.engine.runs import RunInfo

MAX_MISTAKES = 12


def fmt(value: Any, kind: str = "") -> str:
    """A value as the page shows it: ``—`` for None; ``kind`` "pct" (``93.1%``), "int" (``1,234``), "sec"
    (``12.5 s``); else floats as ``%g``, lists and dicts as JSON."""
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "sec":
        return f"{value:,.1f} s"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def show_report(report: EvaluationReport, key: str) -> None:
    """Accuracy and averaged scores, confusion matrix (counts / normalised) and per-class scores."""
    macro, weighted, full = report.macro_present, report.weighted, report.macro
    k, n = len(report.present_classes), len(report.class_names)
    row1, row2 = st.columns(4), st.columns(4)
    row1[0].metric("Accuracy", fmt(report.accuracy, "pct"))
    if not report.all_classes_present:  # a subset: absent classes would count as zeros in the plain average
        row1[1].metric(f"Macro precision ({k} classes)", fmt(macro.precision, "pct"))
        row1[2].metric(f"Macro recall ({k} classes)", fmt(macro.recall, "pct"))
        row1[3].metric(f"Macro F1 ({k} classes)", fmt(macro.f1, "pct"),
                       help="Mean of the per-class F1 over the classes these clips have.")
    else:
        row1[1].metric("Macro precision", fmt(macro.precision, "pct"))
        row1[2].metric("Macro recall", fmt(macro.recall, "pct"))
        row1[3].metric("Macro F1", fmt(macro.f1, "pct"),
                       help="Mean of the per-class F1: every class counts the same.")
    row2[0].metric("Clips", fmt(report.n, "int"))
    row2[1].metric("Weighted precision", fmt(weighted.precision, "pct"))
    row2[2].metric("Weighted recall", fmt(weighted.recall, "pct"))
    row2[3].metric("Weighted F1", fmt(weighted.f1, "pct"), help="Per-class F1 weighted by each class's clips.")
    if not report.all_classes_present:
        st.caption(f"These clips hold only {k} of the run's {n} classes ({', '.join(report.present_classes)}): "
                   f"the macro scores above are averaged over those {k}. Over all {n} classes, where the absent "
                   f"ones count as 0, they would read precision {fmt(full.precision, 'pct')}, recall "
                   f"{fmt(full.recall, 'pct')}, F1 {fmt(full.f1, 'pct')}.")
    per_class = [scores.to_dict() for scores in report.per_class]
    left, right = st.columns(2, gap="large")
    with left:
        normalize = st.toggle("Normalise each row (recall per class)", key=f"eval_norm_{key}")
        st.plotly_chart(fig_confusion(report.confusion_matrix, report.class_names, normalize=normalize,
                                      title="Confusion matrix"), key=f"eval_cm_{key}")
    with right:
        st.plotly_chart(fig_prf(per_class, title="Precision, recall and F1 per class"), key=f"eval_prf_{key}")
        table = pd.DataFrame(per_class, columns=["class", "precision", "recall", "f1", "support"])
        st.dataframe(table, hide_index=True, key=f"eval_table_{key}", column_config={
            name: st.column_config.NumberColumn(name.capitalize() if name != "f1" else "F1", format="%.3f")
            for name in ("precision", "recall", "f1")})


@st.cache_data(show_spinner=False, max_entries=256)
def clip_view(path: str, mtime: float, config_json: str, start_sec: float = 0.0,
              end_sec: float | None = None) -> tuple[bytes, Any]:
    """A clip's WAV bytes and its spectrogram with the run's features (cached per file, segment and config)."""
    waveform, sample_rate = load_segment(path, start_sec, end_sec)
    return wav_bytes(waveform, sample_rate), clip_features(waveform, sample_rate, FeatureConfig.from_json(config_json))


def show_mistakes(run: RunInfo, report: EvaluationReport) -> None:
    names = report.class_names
    wrong = report.mistakes()
    if not report.predictions:
        st.info("This run did not save its test predictions.")
        return
    if not wrong:
        st.success("No test clip is misclassified.")
        return
    st.caption(f"{len(wrong)} of {len(report.predictions)} test clips are wrong; the "
               f"{min(len(wrong), MAX_MISTAKES)} most confident mistakes first.")
    config = run.record.feature_config
    columns = st.columns(3, gap="medium")
    for i, p in enumerate(wrong[:MAX_MISTAKES]):
        with columns[i % 3].container(border=True):
            st.markdown(f"true **{names[p.true]}** → predicted **{names[p.pred]}** ({p.confidence:.0%})")
            kept = mistake_clip(run.path, p.index)  # the run's own copy of the clip, else the clip in its file
            st.caption(p.caption)
            try:  # either inside the run or the allowed folders
                path, start, end = ((kept, 0.0, None) if kept else
                                    (confine(p.path, (run.path, *allowed_roots())), p.start_sec, p.end_sec))
                audio, spec = clip_view(str(path), path.stat().st_mtime, config.to_json(), start, end)
            except PathNotAllowed:
                st.warning(f"Not played: metrics.json of run '{run.run_id}' names a clip outside the run's folder "
                           "and the allowed folders. Retrain the run or delete it on the Runs page.")
                continue
            except (OSError, AudioDecodeError) as error:
                st.warning(f"Cannot play {path.name}: the run kept no copy and the dataset's file is gone or "
                           f"unreadable ({error}). Open the dataset it was trained on on the Dataset page.")
                continue
            st.audio(audio, format="audio/wav")
            fig = fig_spectrogram(spec, config)
            fig.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=30)).update_traces(showscale=False)
            st.plotly_chart(fig, key=f"eval_mistake_{i}")
