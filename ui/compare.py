"""Saved runs side by side (the Runs page's comparison): their metrics, curves, the settings that differ and each
class's F1, from :mod:`lib.engine.compare`; and how a runs table shows :func:`lib.engine.compare.run_row`'s columns."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.engine.compare import class_f1, run_row, settings_table, short_labels
from lib.plots import PALETTE, fig_compare_curves, fig_compare_f1
from lib.engine.runs import RunInfo

COLUMNS = {  # how the runs table and the comparison's metrics table show run_row's columns (narrow: at 1280 px
    # the lead columns, up to the date, fit without scrolling)
    "Run": st.column_config.TextColumn(pinned=True, width=170),
    "Dataset": st.column_config.TextColumn(width=96),
    "Model": st.column_config.TextColumn(width=88),
    "Val accuracy": st.column_config.NumberColumn("Val acc", format="percent", width=62,
                                                  help="Validation accuracy (the epoch kept)."),
    "Test accuracy": st.column_config.NumberColumn("Test acc", format="percent", width=66,
                                                   help="Test accuracy: clips never used in training."),
    "Macro F1": st.column_config.NumberColumn("F1", format="%.3f", width=48,
                                              help="Test macro F1: the mean of the per-class F1."),
    "Parameters": st.column_config.NumberColumn("Params", format="localized", width=72,
                                                help="Trainable parameters."),
    "Latency (ms)": st.column_config.NumberColumn("p50 ms", format="%.2f", width=58,
                                                  help="Latency: one clip on one CPU thread, median (ms)."),
    "Created": st.column_config.TextColumn(width=110),
    "Learning rate": st.column_config.NumberColumn(format="%g"),
    "Duration (s)": st.column_config.NumberColumn("Time (s)", format="%.1f", width=64,
                                                  help="Training time, seconds."),
    "Best epoch": st.column_config.NumberColumn(width=76, help="The epoch whose weights were kept."),
}
CONTENT_PX = 800  # the main column's width at 1280 px with the sidebar open: the comparison's tables fit in it
METRIC_COLUMNS = ("Label", "Val accuracy", "Test accuracy", "Macro F1", "Parameters", "Latency (ms)",
                  "Duration (s)", "Best epoch", "Run")


def compare_metrics(chosen: list[RunInfo], labels: list[str]) -> None:
    """One row per run, its label on the run's colour (the charts' colour)."""
    rows = [{"Label": label, **run_row(run), "Best epoch": run.record.best_epoch}
            for run, label in zip(chosen, labels)]
    table = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    colours = [f"background-color: {PALETTE[i]}55; font-weight: 600" for i in range(len(rows))]
    columns = {**COLUMNS, "Run": st.column_config.TextColumn(width=170),
               "Label": st.column_config.TextColumn(width=140, pinned=True, help="The run's name in the charts.")}
    st.dataframe(table.style.apply(lambda _: colours, subset=["Label"]), hide_index=True,
                 key="runs_compare_metrics", column_config=columns)


def compare_settings(chosen: list[RunInfo], labels: list[str]) -> None:
    """The settings (dataset, model, training, augmentation, features) that are not the same in every run."""
    rows = settings_table([run.record for run in chosen], labels)
    if not rows:
        st.caption("Same dataset, model, features and training settings.")
        return
    table = pd.DataFrame(rows)
    # Many runs: columns of equal width that fit the page (a long value shows whole on hover)
    setting_px = 190
    run_px = max(64, (CONTENT_PX - setting_px) // len(labels)) if len(labels) > 5 else None
    columns = {label: st.column_config.TextColumn(width=run_px) for label in labels if run_px}
    columns["Setting"] = st.column_config.TextColumn(pinned=True, width=setting_px if run_px else None)
    st.dataframe(table, hide_index=True, key="runs_compare_settings", column_config=columns)


def compare_f1(chosen: list[RunInfo], labels: list[str]) -> None:
    """Each class's test F1, runs side by side."""
    scores = {}
    for run, label in zip(chosen, labels):
        try:
            scores[label] = class_f1(run)
        except ValueError as error:
            st.warning(f"Run '{run.run_id}' has unusable test results ({error}): retrain or delete it.")
            scores[label] = {}
    if not any(scores.values()):
        st.caption("None of these runs has test clips to score per class.")
        return
    st.plotly_chart(fig_compare_f1(scores, title="Test F1 per class"), key="runs_compare_f1")


def show_compare(chosen: list[RunInfo]) -> None:
    """Curves, scores, the settings that differ and per-class F1 of 2 to MAX_COMPARED runs."""
    labels = short_labels([run.run_id for run in chosen], max_chars=16)
    st.subheader(f"Compare {len(chosen)} runs")
    compare_metrics(chosen, labels)
    histories = {label: run.history for run, label in zip(chosen, labels)}
    left, right = st.columns(2, gap="large")
    left.plotly_chart(fig_compare_curves(histories, "val_accuracy", title="Validation accuracy"),
                      key="runs_compare_acc")
    right.plotly_chart(fig_compare_curves(histories, "val_loss", title="Validation loss"), key="runs_compare_loss")
    st.markdown("**Settings that differ**")
    compare_settings(chosen, labels)
    compare_f1(chosen, labels)
