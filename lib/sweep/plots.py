"""Plotly figures of a sweep's trials: one small function per figure, each returning a ``go.Figure``.

Beside them, what the Sweep page shows in words and tables: :func:`trials_table`, :func:`progress_text`, and a
log range's slider stops (:func:`log_steps`, :func:`power_of_ten`).

Every figure function takes the sweep's trials as :class:`lib.sweep.TrialInfo` items (anything with their attributes:
``number``, ``state``, ``params``, ``values``, ``curve``, ``run_id``) and draws with :mod:`lib.plots`' look
(template, margins, colours). The page decides where each figure goes.

Example:
    >>> sweep = open_sweep("lr-search", default_storage())
    >>> fig_trial_curves(sweep.trials(), best=[t.number for t in sweep.best()])
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from lib.plots import ACCENT, MUTED, PRIMARY, _finite, _style, _whole_number_axis

__all__ = ["fig_trial_curves", "fig_parallel", "fig_importance", "fig_pareto", "param_label", "pareto_front",
           "best_trial_number", "trials_table", "progress_text", "log_steps", "power_of_ten"]

GREY = "#C8C8C8"         # pruned and failed trials
OBJECTIVE_LABELS = {"val_accuracy": "Validation accuracy", "latency_ms": "Latency (ms per clip, p50)",
                    "n_parameters": "Parameters"}


def param_label(name: str) -> str:
    """A parameter's short label: ``"train.augment.freq_mask_param"`` -> ``"freq mask param"``,
    ``"features.n_mels"`` -> ``"n_mels"`` (torchaudio's names are kept as they are)."""
    last = str(name).rsplit(".", 1)[-1]
    return last if last.startswith("n_") else last.replace("_", " ")


def log_steps(low: float, high: float) -> list[float]:
    """1 and 3 times the powers of ten from ``low`` to ``high`` (both kept): a log range's slider stops."""
    values = {float(low), float(high)}
    for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        values |= {m * 10.0 ** k for m in (1, 3) if low < m * 10.0 ** k < high}
    return sorted(values)


def power_of_ten(value: float) -> str:
    """``0.0001`` -> ``"1e-4"``, ``0.03`` -> ``"3e-2"``."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def trials_table(trials: Sequence[Any], names: Sequence[str], objectives: Sequence[str]) -> dict[str, list]:
    """The table of trials: number, state, objectives, epochs, parameters (by :func:`param_label`), run id,
    duration and note, one column (list) each."""
    table: dict[str, list] = {"trial": [t.number for t in trials],
                              "state": [t.state for t in trials]}
    for objective in objectives:
        table[objective] = [t.values.get(objective) for t in trials]
    table["epochs"] = [len(t.curve) for t in trials]
    for name in names:
        table[param_label(name)] = [t.params.get(name) for t in trials]
    table["run id"] = [t.run_id for t in trials]
    table["seconds"] = [round(t.duration_sec, 1) if t.duration_sec is not None else None for t in trials]
    table["note"] = [t.message for t in trials]
    return table


def progress_text(counts: Mapping[str, int], n_trials: int | None, minutes: float | None) -> tuple[float, str]:
    """A sweep's progress bar: ``(fraction, text)`` from its :meth:`lib.sweep.Sweep.counts` and budget (trials
    and minutes, None: no limit); the fraction is 0 without a trial budget."""
    ended = sum(counts.get(s, 0) for s in ("complete", "pruned", "failed"))
    parts = [f"{counts.get(s, 0)} {s}" for s in ("complete", "pruned", "failed", "running") if counts.get(s)]
    text = (f"{ended} of {n_trials} trials ended" if n_trials else f"{ended} trials ended") + (
        f" ({', '.join(parts)})" if parts else "") + (f" · budget {minutes:g} min" if minutes else "")
    return (min(1.0, ended / n_trials) if n_trials else 0.0), text


def _value_text(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _hover(trial) -> str:
    """A trial's hover lines: number, state, run and parameters."""
    lines = [f"trial {trial.number} ({trial.state})"] + ([trial.run_id] if trial.run_id else [])
    lines += [f"{param_label(k)}: {_value_text(v)}" for k, v in sorted(trial.params.items())]
    return "<br>".join(lines)


def best_trial_number(trials: Sequence[Any], objective: str = "val_accuracy") -> int | None:
    """The number of the complete trial with the highest ``objective`` (the first of equals), or None."""
    done = [t for t in trials if t.state == "complete" and _finite(t.values.get(objective))]
    return max(done, key=lambda t: (float(t.values[objective]), -t.number)).number if done else None


def fig_trial_curves(trials: Sequence[Any], best: Collection[int] | None = None,
                     title: str | None = "Validation accuracy per epoch") -> go.Figure:
    """One line per trial: its validation accuracy per epoch (``trial.curve``), live while it runs.

    Pruned and failed trials are grey and dotted; the best trials (``best``: trial numbers; default the complete
    trial with the highest validation accuracy) are thick and in the accent colour; running trials are solid,
    complete ones pale. The legend has one entry per kind of line, not per trial.

    Args:
        trials: The sweep's trials (:class:`lib.sweep.TrialInfo`); trials without any epoch yet are left out.
        best: Trial numbers to highlight.

    Returns:
        go.Figure: one Scatter (lines+markers) per trial with a curve.
    """
    if best is None:
        number = best_trial_number(trials)
        best = () if number is None else (number,)
    styles = {"best": ("best", dict(color=ACCENT, width=3)), "running": ("running", dict(color=PRIMARY, width=2)),
              "complete": ("complete", dict(color=MUTED, width=1.5)),
              "pruned": ("pruned or failed", dict(color=GREY, width=1.2, dash="dot"))}
    fig, shown, last = go.Figure(), set(), 1
    # Grey lines first, the best last, so the highlighted line is drawn on top.
    order = {"pruned": 0, "failed": 0, "complete": 1, "running": 2}
    for trial in sorted(trials, key=lambda t: (t.number in best, order.get(t.state, 1), t.number)):
        curve = [float(v) for v in trial.curve]
        if not curve:
            continue
        kind = "best" if trial.number in best else "pruned" if trial.state in ("pruned", "failed") else (
            "running" if trial.state == "running" else "complete")
        name, line = styles[kind]
        last = max(last, len(curve))
        fig.add_trace(go.Scatter(
            x=list(range(1, len(curve) + 1)), y=curve, mode="lines+markers", name=name, legendgroup=kind,
            showlegend=kind not in shown, line=line, marker=dict(size=4 if kind != "best" else 6),
            customdata=[_hover(trial)] * len(curve),
            hovertemplate="epoch %{x}: %{y:.3f}<br>%{customdata}<extra></extra>"))
        shown.add(kind)
    fig = _style(fig, title, 320, "Epoch", "Validation accuracy",
                 legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    return _whole_number_axis(fig, last, tick0=1)


def _dimension(name: str, values: list[Any], log: bool) -> dict:
    """A parcoords axis for one parameter: numbers as they are (``log``: as powers of ten, ticks ``10^k``),
    anything else (a model name, a switch) mapped to ticks 0, 1, ... in sorted order."""
    label = param_label(name)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        if log and all(v > 0 for v in values):
            logs = [math.log10(v) for v in values]
            ticks = list(range(math.floor(min(logs)), math.ceil(max(logs)) + 1))
            return dict(label=label, values=logs, tickvals=ticks, ticktext=[f"1e{k}" for k in ticks])
        return dict(label=label, values=[float(v) for v in values])
    choices = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(choices)}
    return dict(label=label, values=[index[str(v)] for v in values], tickvals=list(range(len(choices))),
                ticktext=choices, range=[-0.25, len(choices) - 0.75] if len(choices) > 1 else [-1, 1])


def fig_parallel(trials: Sequence[Any], params: Sequence[str] | None = None, log: Collection[str] = (),
                 objective: str = "val_accuracy", title: str | None = "Parameters and validation accuracy"
                 ) -> go.Figure:
    """Parallel coordinates: one axis per parameter and a last one for ``objective``, one line per trial that has
    a value of it (complete trials, and pruned ones with the accuracy of their last epoch), coloured by it.

    Args:
        trials: The sweep's trials (:class:`lib.sweep.TrialInfo`).
        params: Parameter names, in axis order (default: every parameter of the trials, sorted); a trial without
            one of them is left out.
        log: Parameters drawn on a log scale (ticks at powers of ten).
        objective: The value on the last axis and the colour.

    Returns:
        go.Figure: one Parcoords trace (no trace when no trial has a value yet).
    """
    names = list(params) if params is not None else sorted({k for t in trials for k in t.params})
    rows = [t for t in trials if _finite(t.values.get(objective)) and all(n in t.params for n in names)]
    fig = go.Figure()
    if rows:
        dimensions = [_dimension(n, [t.params[n] for t in rows], n in log) for n in names]
        scores = [float(t.values[objective]) for t in rows]
        dimensions.append(dict(label=OBJECTIVE_LABELS.get(objective, param_label(objective)), values=scores))
        fig.add_trace(go.Parcoords(
            dimensions=dimensions, labelangle=0, labelside="top",
            line=dict(color=scores, colorscale="Viridis", showscale=True,
                      colorbar=dict(title=dict(text="val acc" if objective == "val_accuracy" else objective)))))
    return _style(fig, title, 380, margin=dict(l=70, r=40, t=95 if title else 60, b=30))


def fig_importance(importance: Mapping[str, float], title: str | None = "Parameter importance") -> go.Figure:
    """Horizontal bars of each parameter's importance (``{name: share}``, e.g. Optuna's fANOVA, summing to 1),
    the most important at the top."""
    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[float(v) for _, v in items], y=[param_label(k) for k, _ in items], orientation="h",
                           marker_color=PRIMARY, text=[f"{v:.0%}" for _, v in items], textposition="auto",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig = _style(fig, title, max(160, 60 + 32 * len(items)), None, None, margin=dict(l=130))
    return fig.update_xaxes(tickformat=".0%", rangemode="tozero")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: ``(cost, score)`` pairs, lower cost and higher score better.
    Sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_score = [], -math.inf
    for i in order:
        if points[i][1] > best_score:
            front.append(i)
            best_score = points[i][1]
    return front


def fig_pareto(trials: Sequence[Any], cost: str = "latency_ms", objective: str = "val_accuracy",
               title: str | None = None) -> go.Figure:
    """Accuracy against a cost (``"latency_ms"`` or ``"n_parameters"``) of the complete trials, with the Pareto
    front of the two (no trial both cheaper and more accurate) highlighted and joined as a staircase.

    Args:
        trials: The sweep's trials (:class:`lib.sweep.TrialInfo`); complete ones with both values are drawn.
        cost: The value on the x axis (lower is better); parameters are drawn on a log axis.
        objective: The value on the y axis (higher is better).

    Returns:
        go.Figure: Scatter traces ``other trials``, ``Pareto front`` (markers and line).
    """
    rows = [t for t in trials if t.state == "complete" and _finite(t.values.get(cost))
            and _finite(t.values.get(objective))]
    points = [(float(t.values[cost]), float(t.values[objective])) for t in rows]
    front = set(pareto_front(points))
    fig = go.Figure()
    for name, chosen, style in (("other trials", [i for i in range(len(rows)) if i not in front],
                                 dict(color=MUTED, size=9)),
                                ("Pareto front", sorted(front, key=lambda i: points[i][0]),
                                 dict(color=ACCENT, size=11, line=dict(color="white", width=1)))):
        fig.add_trace(go.Scatter(
            x=[points[i][0] for i in chosen], y=[points[i][1] for i in chosen], name=name,
            mode="markers+lines" if name == "Pareto front" else "markers", marker=style,
            line=dict(color=ACCENT, width=1.5, shape="hv"), text=[f"trial {rows[i].number}" for i in chosen],
            customdata=[_hover(rows[i]) for i in chosen],
            hovertemplate="%{x:.4g}, %{y:.3f}<br>%{customdata}<extra></extra>"))
    xlabel = OBJECTIVE_LABELS.get(cost, param_label(cost))
    fig = _style(fig, title, 340, xlabel, OBJECTIVE_LABELS.get(objective, param_label(objective)),
                 legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    if cost == "n_parameters":
        fig.update_xaxes(type="log")
    return fig
