"""Plotly figures for the workbench: one small function per figure, each returning a ``go.Figure``.

The functions only build figures; the page decides where they go (``st.plotly_chart(fig)``). Every
function accepts numpy arrays, lists or torch tensors (tensors are detached and moved to the CPU), uses
the ``"plotly_white"`` template with compact margins, and takes an optional ``title``.

Class names are always put on category axes, so names that look like numbers (``"0"``, ``"1"``) are not
turned into a numeric axis.

Example:
    >>> fig = fig_spectrogram(features[0], config, title="Log-mel spectrogram")
    >>> fig.to_json()  # serialisable; st.plotly_chart(fig) on a page
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative

from lib.augment.config import EQ_KNOTS_HZ
from lib.augment.waveform import eq_curve
from lib.dsp.features import FeatureConfig, frequency_axis, frequency_axis_label, time_axis
from lib.engine.metrics import normalize_confusion

__all__ = [
    "fig_waveform", "fig_spectrogram", "fig_class_counts", "fig_histogram", "fig_embedding",
    "fig_confusion", "fig_prf", "fig_curves", "fig_steps", "fig_compare_curves", "fig_compare_f1", "fig_probabilities",
    "fig_window_predictions", "fig_pipeline", "smooth_ema", "decimate_minmax",
    "image_spectrogram", "image_waveform", "fig_eq", "color_range", "class_means",
]

TEMPLATE = "plotly_white"
ACCENT = "#EF553B"       # highlighted bar (top class)
MUTED = "#9DB4D0"        # other bars
PRIMARY = "#636EFA"      # single-series colour
# Qualitative palette for classes/runs: Plotly's 10, then Dark24 and Alphabet for larger label sets.
PALETTE: tuple[str, ...] = tuple(qualitative.Plotly) + tuple(qualitative.Dark24) + tuple(qualitative.Alphabet)
_SYMBOLS = ("circle", "x", "diamond", "square", "triangle-up", "cross", "star", "triangle-down", "pentagon")
_KNOWN_SYMBOLS = {"correct": "circle", "wrong": "x", "incorrect": "x", "error": "x"}
_WINDOW_ROW_COLORS = ("rgba(99, 110, 250, 0.22)", "rgba(239, 85, 59, 0.22)", "rgba(0, 204, 150, 0.22)",
                      "rgba(171, 99, 250, 0.22)")


# -- helpers ---------------------------------------------------------------------------------------
def _np(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` as a numpy array: torch tensors are detached and moved to the CPU (bfloat16/half become
    float32), anything else goes through ``np.asarray``."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _style(fig: go.Figure, title: str | None, height: int, xtitle: str | None = None,
           ytitle: str | None = None, **layout: Any) -> go.Figure:
    """Applies the shared look: template, compact margins, height, optional title, axis titles.

    A horizontal legend above the plot gets its own row under the title (the title sits at the top of the
    figure, the legend just above the plot area), so the two never overlap however wide the figure is.
    """
    legend = layout.get("legend") or {}
    legend_on_top = legend.get("orientation") == "h" and float(legend.get("y", 0)) >= 1
    top = (85 if legend_on_top else 50) if title else (45 if legend_on_top else 20)
    margin = dict(l=60, r=20, t=top, b=50) | layout.pop("margin", {})
    fig.update_layout(
        template=TEMPLATE, height=int(height), margin=margin,
        title=dict(text=title, x=0.0, xanchor="left", font=dict(size=15), yref="container", y=1.0,
                   yanchor="top", pad=dict(t=10)) if title else None,
        hoverlabel=dict(namelength=-1),
        **layout,
    )
    if xtitle is not None:
        fig.update_xaxes(title_text=xtitle)
    if ytitle is not None:
        fig.update_yaxes(title_text=ytitle)
    return fig


def _clamp(value: float, low: float, high: float) -> int:
    return int(max(low, min(high, value)))


def _pretty(key: str) -> str:
    """``"val_accuracy"`` -> ``"val accuracy"``."""
    return str(key).replace("_", " ")


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# -- waveform --------------------------------------------------------------------------------------
def decimate_minmax(samples: Any, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Min/max envelope of each channel, for plotting long waveforms without losing peaks.

    The signal is cut into ``max_points // 2`` buckets; each bucket contributes its minimum and its
    maximum sample, in time order, at their true sample positions. So the global maximum and minimum
    are always kept and at most ``max_points`` points (per channel) come back.

    Args:
        samples: ``(channels, time)`` or ``(time,)``.
        max_points (int): Point budget per channel (>= 2). Signals no longer than it are returned whole.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``indices`` ``(channels, points)`` int sample positions and
        ``values`` ``(channels, points)``.
    """
    x = _np(samples)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"expected a (channels, time) or (time,) waveform, got shape {x.shape}")
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    channels, length = x.shape
    if length <= max_points:
        idx = np.broadcast_to(np.arange(length), (channels, length)).copy()
        return idx, x.copy()
    n_buckets = max_points // 2
    size = math.ceil(length / n_buckets)
    n_buckets = math.ceil(length / size)
    padded = np.concatenate([x, np.repeat(x[:, -1:], n_buckets * size - length, axis=1)], axis=1)
    buckets = padded.reshape(channels, n_buckets, size)
    offsets = np.arange(n_buckets)[None, :] * size
    i_min = np.minimum(buckets.argmin(axis=2) + offsets, length - 1)
    i_max = np.minimum(buckets.argmax(axis=2) + offsets, length - 1)
    idx = np.stack([np.minimum(i_min, i_max), np.maximum(i_min, i_max)], axis=2).reshape(channels, -1)
    return idx, np.take_along_axis(x, idx, axis=1)


def _grid_geometry(grid: list[tuple[float, float]]) -> tuple[float, float, np.ndarray]:
    """Window length, hop and frame centres (s) of a uniform, possibly edge-clipped frame grid."""
    starts = np.array([s for s, _ in grid], dtype=float)
    ends = np.array([e for _, e in grid], dtype=float)
    window = float(np.max(ends - starts))
    hop = 0.0
    # Consecutive unclipped starts (start > 0) or unclipped ends (end < the signal's end) are one hop
    # apart; if every window is clipped (a clip shorter than a window), fall back to any positive step.
    unclipped_starts = (starts[:-1] > 1e-12) & (starts[1:] > 1e-12)
    unclipped_ends = (ends[:-1] < ends.max() - 1e-12) & (ends[1:] < ends.max() - 1e-12)
    for diffs in (np.diff(starts)[unclipped_starts], np.diff(ends)[unclipped_ends],
                  np.diff(starts), np.diff(ends)):
        diffs = diffs[diffs > 1e-12]
        if diffs.size:
            hop = float(np.median(diffs))
            break
    full = np.flatnonzero(np.isclose(ends - starts, window))
    k = int(full[0]) if full.size else 0
    offset = (starts[k] + ends[k]) / 2 - k * hop
    return window, hop, offset + np.arange(len(grid)) * hop


def fig_waveform(waveform: Any, sample_rate: int, title: str | None = None,
                 frame_grid: list[tuple[float, float]] | None = None, max_points: int = 4000,
                 max_windows: int = 6) -> go.Figure:
    """Waveform against time, one trace per channel (min/max-decimated, so peaks survive).

    Args:
        waveform: ``(channels, time)`` or ``(time,)`` samples.
        sample_rate (int): Hz; x is in seconds.
        title (str | None): Figure title.
        frame_grid: Optional ``(start_sec, end_sec)`` windows from :func:`lib.dsp.features.frame_grid`. The
            first ``max_windows`` windows are drawn as translucent rectangles (in alternating rows and
            colours, so their overlap shows), every frame centre (one per hop) as a thin vertical line
            (one extra trace, named ``"frame hops"``, after the channel traces), and an annotation reads
            ``"window = X ms, hop = Y ms, N frames"`` (window and hop are read off the grid, so a clip
            shorter than one window shows clipped values). Pass a clip of a few seconds at most: every
            hop is one tick line.
        max_points (int): Point budget per channel, see :func:`decimate_minmax`.
        max_windows (int): How many windows to shade.

    Returns:
        go.Figure: ``channels`` Scatter traces (+1 with ``frame_grid``).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    x = _np(waveform, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    idx, values = decimate_minmax(x, max_points)
    channels = x.shape[0]
    names = (["mono"] if channels == 1 else ["left", "right"] if channels == 2
             else [f"channel {c + 1}" for c in range(channels)])
    fig = go.Figure()
    for c in range(channels):
        fig.add_trace(go.Scatter(
            x=idx[c] / sample_rate, y=values[c], mode="lines", name=names[c],
            line=dict(width=1, color=_color(c)),
            hovertemplate="%{x:.4f} s<br>%{y:.3f}<extra>" + names[c] + "</extra>"))
    duration = x.shape[1] / sample_rate
    fig.update_xaxes(range=[0, duration])
    if frame_grid:
        window, hop, centres = _grid_geometry(frame_grid)
        n_rows = max(1, min(len(frame_grid), max_windows, math.ceil(window / hop) if hop > 0 else 1))
        for i, (start, end) in enumerate(frame_grid[:max_windows]):
            row = i % n_rows
            fig.add_shape(
                type="rect", xref="x", yref="y domain", x0=start, x1=end,
                y0=row / n_rows, y1=(row + 1) / n_rows, line=dict(width=1, color="rgba(0,0,0,0.35)"),
                fillcolor=_WINDOW_ROW_COLORS[row % len(_WINDOW_ROW_COLORS)], layer="below",
                label=dict(text=f"frame {i}", font=dict(size=9), textposition="top left"))
        tick_x = np.repeat(centres, 3).astype(object)
        tick_x[2::3] = None
        tick_y = np.tile(np.array([0.0, 1.0, None], dtype=object), len(centres))
        fig.add_trace(go.Scatter(
            x=tick_x, y=tick_y, yaxis="y2", mode="lines", name="frame hops", hoverinfo="skip",
            line=dict(width=0.5, color="rgba(0,0,0,0.25)")))
        fig.update_layout(yaxis2=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True))
        fig.add_annotation(
            xref="paper", yref="paper", x=1.0, y=1.0, xanchor="right", yanchor="bottom", showarrow=False,
            text=f"window = {window * 1000:.3g} ms, hop = {hop * 1000:.3g} ms, {len(frame_grid)} frames",
            font=dict(size=11, color="#444"))
    return _style(fig, title, 300, "Time (s)", "Amplitude", showlegend=channels > 1,
                  legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))


# -- features --------------------------------------------------------------------------------------
def fig_spectrogram(spec: Any, config: FeatureConfig, title: str | None = None, zmin: float | None = None,
                    zmax: float | None = None) -> go.Figure:
    """Feature image as a heatmap on real axes.

    Args:
        spec: ``(bins, frames)`` (or with leading size-1 dimensions, e.g. ``(1, bins, frames)``).
        config (FeatureConfig): The config that made ``spec``: x is :func:`lib.dsp.features.time_axis`
            (frame centres, s), y is :func:`lib.dsp.features.frequency_axis` (Hz, or MFCC index; mel
            centres are non-uniform and the heatmap draws each row between its neighbours' midpoints).
        zmin, zmax: Colour range; ``None`` = data range.

    Returns:
        go.Figure: one Heatmap with ``z.shape == (bins, frames)``.
    """
    z = _np(spec, dtype=np.float32)
    while z.ndim > 2 and z.shape[0] == 1:
        z = z[0]
    if z.ndim != 2:
        raise ValueError(f"spec must be (bins, frames) or (1, bins, frames), got shape {_np(spec).shape}")
    if z.shape[0] != config.n_bins:
        raise ValueError(f"spec has {z.shape[0]} bins but the config ({config.kind}) has {config.n_bins}")
    unit = "dB" if config.normalization == "none" else "normalised"
    y = frequency_axis(config)
    y_hover = "coefficient %{y}" if config.kind == "mfcc" else "%{y:.0f} Hz"
    fig = go.Figure(go.Heatmap(
        z=z, x=time_axis(config, z.shape[1]), y=y, colorscale="Viridis", zmin=zmin, zmax=zmax,
        colorbar=dict(title=dict(text=unit), thickness=12),
        hovertemplate="%{x:.3f} s<br>" + y_hover + "<br>%{z:.2f} " + ("dB" if unit == "dB" else "")
                      + "<extra></extra>"))
    return _style(fig, title, 320, "Time (s)", frequency_axis_label(config))


def color_range(*images: Any) -> tuple[float, float]:
    """One colour scale for several feature images: the smallest and the largest value of them all.

    Args:
        *images: Arrays or tensors of any shape (at least one, none empty).

    Returns:
        ``(zmin, zmax)`` as floats.
    """
    if not images:
        raise ValueError("color_range needs at least one image")
    arrays = [_np(image) for image in images]
    return float(min(a.min() for a in arrays)), float(max(a.max() for a in arrays))


def class_means(features: Any, labels: Any, class_names: Sequence[str],
                max_classes: int | None = None) -> dict[str, np.ndarray]:
    """The mean feature image of each class that has clips (in class order): where its energy usually lies.

    Args:
        features: ``(n_clips, ...)`` one feature image per clip, e.g. ``(n_clips, 1, bins, frames)``.
        labels: ``(n_clips,)`` int class indices into ``class_names``.
        class_names: The class names.
        max_classes: Keep only the first this many classes with clips; ``None``: all.

    Returns:
        ``{class name: (...) mean image}``, classes without clips left out.
    """
    x, y = _np(features), _np(labels)
    means = {name: x[y == i].mean(axis=0) for i, name in enumerate(class_names) if (y == i).any()}
    return dict(list(means.items())[:max_classes])


# -- still images (for grids of many small figures: a PNG costs the browser nothing to draw) -----------
def _viridis_lut() -> np.ndarray:
    """``(256, 3)`` uint8: Plotly's Viridis, the colour scale of :func:`fig_spectrogram`, interpolated."""
    from plotly.colors import hex_to_rgb, sequential

    stops = np.array([hex_to_rgb(c) for c in sequential.Viridis], dtype=float)
    positions = np.linspace(0, 1, len(stops))
    grid = np.linspace(0, 1, 256)
    return np.stack([np.interp(grid, positions, stops[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def image_spectrogram(spec: Any, zmin: float | None = None, zmax: float | None = None, scale: int = 3,
                      time_scale: int = 1) -> bytes:
    """A feature image as a PNG in the colours of :func:`fig_spectrogram` (low bins at the bottom).

    Args:
        spec: ``(bins, frames)`` (or with leading size-1 dimensions).
        zmin, zmax: Colour range; ``None`` = data range.
        scale: Pixels per bin vertically.
        time_scale: Pixels per frame horizontally.

    Returns:
        PNG bytes, ``bins * scale`` pixels high and ``frames * time_scale`` wide.
    """
    z = _np(spec, dtype=np.float32)
    while z.ndim > 2 and z.shape[0] == 1:
        z = z[0]
    if z.ndim != 2:
        raise ValueError(f"spec must be (bins, frames), got shape {z.shape}")
    low = float(np.nanmin(z)) if zmin is None else float(zmin)
    high = float(np.nanmax(z)) if zmax is None else float(zmax)
    level = np.clip((np.nan_to_num(z, nan=low) - low) / max(high - low, 1e-12), 0, 1)
    pixels = _viridis_lut()[(level[::-1] * 255).round().astype(np.intp)]  # (bins, frames, 3), low bins at the bottom
    return _png(np.repeat(np.repeat(pixels, max(1, int(scale)), axis=0), max(1, int(time_scale)), axis=1))


def image_waveform(waveform: Any, width: int = 400, height: int = 120) -> bytes:
    """A waveform (channels mixed) as a PNG: the min and max of the samples under each pixel column, on
    a zero line, full scale ±1 from top to bottom.

    Returns:
        PNG bytes, ``width`` x ``height``.
    """
    x = _np(waveform, dtype=np.float32)
    mono = x.reshape(-1, x.shape[-1]).mean(axis=0) if x.ndim > 1 else x
    pixels = np.full((height, width, 3), 255, dtype=np.uint8)
    pixels[height // 2] = (200, 200, 200)
    if mono.size:
        columns = np.array_split(np.clip(mono, -1, 1), min(width, mono.size))
        colour = np.array([int(PRIMARY[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
        for c, chunk in enumerate(columns):
            top = int(round((1 - chunk.max()) / 2 * (height - 1)))
            bottom = int(round((1 - chunk.min()) / 2 * (height - 1)))
            pixels[top:bottom + 1, c * width // len(columns)] = colour
    return _png(pixels)


def fig_eq(knots_db: Sequence[float], nyquist: float, title: str | None = None) -> go.Figure:
    """One draw's equaliser (:func:`lib.augment.waveform.eq_curve`): gain in dB over log frequency from 50 Hz
    to ``nyquist``, its knots (:data:`lib.augment.config.EQ_KNOTS_HZ` up to ``nyquist``) marked.

    Args:
        knots_db: ``len(EQ_KNOTS_HZ)`` gains in dB, one per knot.
        nyquist: The highest frequency shown (half the sample rate), Hz.
        title: Optional title.

    Returns:
        go.Figure: the curve (200 points) and the knots.
    """
    frequencies = torch.logspace(math.log10(50.0), math.log10(nyquist), 200)
    curve = eq_curve(torch.tensor([list(knots_db)]), frequencies)[0]
    knots = [(f, g) for f, g in zip(EQ_KNOTS_HZ, knots_db) if f <= nyquist]
    fig = go.Figure(go.Scatter(x=frequencies.numpy(), y=curve.numpy(), mode="lines", hoverinfo="skip"))
    fig.add_scatter(x=[f for f, _ in knots], y=[g for _, g in knots], mode="markers",
                    hovertemplate="%{x:.0f} Hz: %{y:+.1f} dB<extra></extra>")
    fig.update_layout(template=TEMPLATE, height=200, margin=dict(l=50, r=10, t=10, b=40), showlegend=False)
    fig.update_xaxes(type="log", title_text="Frequency (Hz)")
    fig.update_yaxes(title_text="Gain (dB)", zeroline=True)
    if title:
        fig.update_layout(title=title, margin=dict(t=40))
    return fig


# -- dataset ---------------------------------------------------------------------------------------
def fig_class_counts(counts: Mapping[str, int], title: str | None = None) -> go.Figure:
    """Clips per class as a bar chart (in the mapping's order)."""
    names = [str(k) for k in counts]
    values = [int(v) for v in counts.values()]
    fig = go.Figure(go.Bar(x=names, y=values, text=values, textposition="outside", marker_color=PRIMARY,
                           cliponaxis=False, hovertemplate="%{x}: %{y} clips<extra></extra>"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(rangemode="tozero")
    return _style(fig, title, 300, "Class", "Clips")


def fig_histogram(values: Any, xlabel: str, title: str | None = None, nbins: int = 30,
                  ylabel: str = "Clips") -> go.Figure:
    """Histogram of any values (durations in s, sample rates in Hz...); ``xlabel`` is the x title."""
    v = _np(values, dtype=float).ravel()
    fig = go.Figure(go.Histogram(x=v[np.isfinite(v)], nbinsx=int(nbins), marker_color=PRIMARY,
                                 marker_line=dict(width=0.5, color="white"),
                                 hovertemplate=f"{xlabel}: %{{x}}<br>%{{y}} {ylabel.lower()}<extra></extra>"))
    return _style(fig, title, 280, xlabel, ylabel, bargap=0.02)


#: Embeddings with more points than this are drawn with WebGL (Plotly Express's ``render_mode="auto"`` threshold).
WEBGL_MIN_POINTS = 1000


def fig_embedding(points: Any, labels: Sequence[str], hover: Sequence[str], title: str | None = None,
                  symbols: Sequence[str] | None = None) -> go.Figure:
    """2-D embedding scatter, one trace per label (so clicking the legend toggles a class).

    Each point's ``customdata`` is ``[row]``, its row index in ``points``; in a Streamlit selection
    event, ``point["customdata"][0]`` maps a selected point back to its clip (``point_index`` is only
    the index within its trace).

    Args:
        points: ``(n, 2)``.
        labels: ``n`` class names (colour; traces in sorted label order).
        hover: ``n`` hover texts (e.g. file name and prediction).
        symbols: Optional ``n`` marker kinds, e.g. ``"correct"``/``"wrong"`` (circle/x); other values get
            symbols in order of appearance. One legend-only trace per kind (no points) is added after
            the class traces to explain the symbols.

    Returns:
        go.Figure: one Scatter per distinct label (+ one per distinct symbol kind); Scattergl (WebGL) above
        :data:`WEBGL_MIN_POINTS` points, as Plotly Express does, since a browser draws thousands of SVG markers
        slowly (2,000 points: about 0.7 s less per redraw in headless Chromium).
    """
    p = _np(points, dtype=float)
    n = len(labels)
    if p.ndim != 2 or p.shape != (n, 2) or len(hover) != n or (symbols is not None and len(symbols) != n):
        raise ValueError(f"points must be (n, 2) with n labels/hover texts (and symbols); got points "
                         f"{p.shape}, {n} labels, {len(hover)} hover texts"
                         + (f", {len(symbols)} symbols" if symbols is not None else ""))
    labels = [str(label) for label in labels]
    symbol_of: dict[str, str] = {}
    if symbols is not None:
        for s in dict.fromkeys(str(s) for s in symbols):
            used = set(symbol_of.values())
            symbol_of[s] = _KNOWN_SYMBOLS.get(s.lower()) or next(
                (m for m in _SYMBOLS if m not in used), "circle")
    fig = go.Figure()
    scatter = go.Scattergl if n > WEBGL_MIN_POINTS else go.Scatter
    for i, label in enumerate(sorted(set(labels))):
        rows = np.array([r for r in range(n) if labels[r] == label], dtype=int)
        marker: dict[str, Any] = dict(size=8, color=_color(i), opacity=0.85, line=dict(width=0.5, color="white"))
        if symbols is not None:
            marker["symbol"] = [symbol_of[str(symbols[r])] for r in rows]
        fig.add_trace(scatter(
            x=p[rows, 0], y=p[rows, 1], mode="markers", name=label, legendgroup=label, marker=marker,
            customdata=rows[:, None], hovertext=[str(hover[r]) for r in rows],
            hovertemplate="%{hovertext}<extra>" + label + "</extra>"))
    for kind, symbol in symbol_of.items():
        fig.add_trace(scatter(x=[None], y=[None], mode="markers", name=kind, legendgroup="symbols",
                                 legendgrouptitle_text="marker" if kind == next(iter(symbol_of)) else None,
                                 marker=dict(symbol=symbol, size=8, color="#555"), hoverinfo="skip"))
    return _style(fig, title, 450, "Component 1", "Component 2", legend=dict(itemsizing="constant"))


# -- evaluation ------------------------------------------------------------------------------------
def fig_confusion(cm: Any, class_names: Sequence[str], normalize: bool = False,
                  title: str | None = None) -> go.Figure:
    """Confusion matrix heatmap: true class on y (first class on top), predicted on x.

    Args:
        cm: ``(n, n)`` counts, rows = true class.
        normalize (bool): Show each row divided by its total (rows with no examples stay 0); cells read
            as ``.2f`` fractions, colours span [0, 1]. Otherwise cells read as counts.

    Returns:
        go.Figure: one Heatmap whose ``z`` is the counts or the row-normalised matrix.
    """
    counts = _np(cm, dtype=float)
    k = len(class_names)
    if counts.shape != (k, k):
        raise ValueError(f"cm must be ({k}, {k}) for {k} class names, got {counts.shape}")
    names = [str(c) for c in class_names]
    if normalize:
        z = normalize_confusion(counts)
        text = np.vectorize(lambda v: f"{v:.2f}")(z) if k else np.zeros((0, 0), dtype=str)
        hover = "true %{y}<br>predicted %{x}<br>%{z:.1%} of the row (%{customdata:.0f} clips)<extra></extra>"
    else:
        z = counts
        text = np.vectorize(lambda v: f"{v:.0f}")(z) if k else np.zeros((0, 0), dtype=str)
        hover = "true %{y}<br>predicted %{x}<br>%{z:.0f} clips<extra></extra>"
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, colorscale="Blues", zmin=0, zmax=1 if normalize else None,
        text=text, texttemplate="%{text}", textfont=dict(size=12 if k <= 10 else 9 if k <= 20 else 7),
        customdata=counts, hovertemplate=hover, xgap=1, ygap=1,
        colorbar=dict(title=dict(text="fraction" if normalize else "clips"), thickness=12)))
    fig.update_xaxes(type="category", side="bottom", tickangle=-45 if k > 8 else 0)
    fig.update_yaxes(type="category", autorange="reversed")
    return _style(fig, title, _clamp(150 + 28 * k, 320, 800), "Predicted class", "True class")


def fig_prf(per_class: Sequence[Mapping[str, Any]], title: str | None = None) -> go.Figure:
    """Grouped bars of precision, recall and F1 per class (``per_class`` items as from
    :func:`lib.engine.metrics.classification_metrics`: ``class``, ``precision``, ``recall``, ``f1``, ``support``).

    Returns:
        go.Figure: three Bar traces (Precision, Recall, F1), y in [0, 1].
    """
    names = [str(row["class"]) for row in per_class]
    support = [[int(row.get("support", 0))] for row in per_class]
    fig = go.Figure()
    for i, (key, label) in enumerate((("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"))):
        fig.add_trace(go.Bar(
            x=names, y=[float(row[key]) for row in per_class], name=label, marker_color=_color(i),
            customdata=support, hovertemplate="%{x}<br>" + label + " %{y:.3f}<br>support %{customdata[0]}"
                                              "<extra></extra>"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[0, 1])
    return _style(fig, title, 320, "Class", "Score", barmode="group",
                  legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))


# -- training curves -------------------------------------------------------------------------------
def _default_ytitle(metrics: Sequence[str]) -> str:
    for word in ("loss", "accuracy", "learning_rate", "f1"):
        if all(str(m).endswith(word) for m in metrics):
            return {"loss": "Loss", "accuracy": "Accuracy", "learning_rate": "Learning rate", "f1": "F1"}[word]
    return "Value"


def _series(history: Sequence[dict], metric: str) -> tuple[list, list[float]]:
    """Epochs and finite values of ``metric`` in a per-epoch history (missing or NaN entries skipped)."""
    points = [(item.get("epoch", j + 1), float(item[metric])) for j, item in enumerate(history)
              if _finite(item.get(metric))]
    return [x for x, _ in points], [y for _, y in points]


def _whole_number_axis(fig: go.Figure, last: float, tick0: int) -> go.Figure:
    """Whole-number x ticks (never 1.5), about ten at most: ``dtick`` is 1, 2 or 5 times a power of ten."""
    wanted = max(1.0, last / 10)
    power = 10 ** math.floor(math.log10(wanted))
    dtick = next(m * power for m in (1, 2, 5, 10) if m * power >= wanted)
    fig.update_xaxes(tick0=tick0, dtick=int(dtick), tickformat="d")
    return fig


def _epoch_axis(fig: go.Figure, histories: Sequence[Sequence[Mapping[str, Any]]]) -> go.Figure:
    """Whole-number epoch ticks from epoch 1."""
    last = max((float(item.get("epoch", j + 1)) for history in histories for j, item in enumerate(history)),
               default=1.0)
    return _whole_number_axis(fig, last, tick0=1)


def fig_curves(history: Sequence[Mapping[str, Any]], metrics: Sequence[str] = ("train_loss", "val_loss"),
               title: str | None = None, ytitle: str | None = None,
               names: Sequence[str] | Mapping[str, str] | None = None) -> go.Figure:
    """Per-epoch lines, one per metric that has at least one value in ``history``.

    Args:
        history: Items like ``{"epoch": 1, "train_loss": .., "val_loss": .., ...}``; an item missing a
            metric (or holding None/NaN) is skipped for that line. Without ``"epoch"``, x is the item's
            position + 1.
        metrics: Keys to draw.
        ytitle: y-axis title; ``None`` guesses from the keys drawn ("Loss", "Accuracy", ...).
        names: Legend names: a list parallel to ``metrics`` or a mapping key -> name; default: the key
            with spaces ("val loss").

    Returns:
        go.Figure: one Scatter (lines+markers) per metric with data.
    """
    if isinstance(names, Mapping):
        legend = [names.get(m, _pretty(m)) for m in metrics]
    elif names is not None:
        legend = list(names)
    else:
        legend = [_pretty(m) for m in metrics]
    fig = go.Figure()
    drawn = []
    for i, metric in enumerate(metrics):
        xs, ys = _series(history, metric)
        if ys:
            drawn.append(metric)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=legend[i],
                                     line=dict(color=_color(i), width=2), marker=dict(size=5),
                                     hovertemplate="epoch %{x}<br>%{y:.4g}<extra>" + legend[i] + "</extra>"))
    _epoch_axis(fig, [history])
    return _style(fig, title, 300, "Epoch", ytitle or _default_ytitle(drawn or metrics),
                  legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))


def smooth_ema(values: Any, smoothing: float = 0.9) -> np.ndarray:
    """Bias-corrected exponential moving average, as TensorBoard's scalar smoothing.

    ``ema_t = smoothing * ema_{t-1} + (1 - smoothing) * v_t`` (from 0), divided by
    ``1 - smoothing ** (t + 1)``, so the first value is kept and a constant stays that constant.
    Non-finite values are carried over from the previous average (NaN before the first finite value).

    Args:
        values: 1-D values.
        smoothing (float): In [0, 1); 0 returns the values unchanged.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    v = _np(values, dtype=float).ravel()
    out = np.full_like(v, np.nan)
    ema, count, last = 0.0, 0, np.nan
    for i, value in enumerate(v):
        if np.isfinite(value):
            ema = smoothing * ema + (1.0 - smoothing) * value
            count += 1
            last = ema / (1.0 - smoothing ** count) if smoothing > 0 else ema
        out[i] = last
    return out


def fig_steps(steps: Sequence[Mapping[str, Any]], key: str = "loss", smoothing: float = 0.9,
              title: str | None = None) -> go.Figure:
    """Per-step values: the raw values as faint markers and their bias-corrected EMA as a line.

    Args:
        steps: Items like ``{"step": 10, "loss": 0.7}``; items without a finite ``key`` are skipped;
            without ``"step"``, x is the item's position.
        key: The value to draw.
        smoothing (float): EMA weight in [0, 1), see :func:`smooth_ema`.

    Returns:
        go.Figure: two Scatter traces: ``raw`` (markers) and ``smoothed`` (line).
    """
    xs, ys = [], []
    for j, item in enumerate(steps):
        if _finite(item.get(key)):
            xs.append(item.get("step", j))
            ys.append(float(item[key]))
    fig = go.Figure([
        go.Scatter(x=xs, y=ys, mode="markers", name=f"{_pretty(key)} (raw)",
                   marker=dict(size=4, color=PRIMARY, opacity=0.25),
                   hovertemplate="step %{x}<br>%{y:.4g}<extra>raw</extra>"),
        go.Scatter(x=xs, y=smooth_ema(ys, smoothing) if ys else [], mode="lines",
                   name=f"{_pretty(key)} (smoothed {smoothing:g})", line=dict(width=2, color=PRIMARY),
                   hovertemplate="step %{x}<br>%{y:.4g}<extra>smoothed</extra>"),
    ])
    fig = _style(fig, title, 300, "Step", _pretty(key).capitalize(),
                 legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    return _whole_number_axis(fig, max(xs, default=1), tick0=0)


def _legend_below(fig: go.Figure, names: Sequence[str], plot_height: int, width_px: int) -> go.Figure:
    """A horizontal legend under the x-axis title, in a bottom margin made for its rows, so the plot area keeps
    ``plot_height`` px however many entries there are. ``width_px``: the narrowest the figure is drawn, to count the
    rows (a wrapping legend lays its entries out in columns as wide as the widest)."""
    widest = max((44 + 7 * len(str(n)) for n in names), default=0)
    columns = max(1, (int(width_px) - 80) // widest) if names else 1
    rows = -(-len(names) // columns)
    bottom = 50 + 20 * rows + (10 if rows else 0)
    fig.update_layout(height=plot_height + bottom + int(fig.layout.margin.t or 0), margin=dict(b=bottom),
                      legend=dict(orientation="h", x=0, xanchor="left", yref="container", y=0, yanchor="bottom"))
    return fig


def fig_compare_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]], metric: str = "val_accuracy",
                       title: str | None = None, width_px: int = 400) -> go.Figure:
    """One line per run (``histories``: run label -> per-epoch history) for one metric; runs without the metric
    get no trace. Run ``i`` of the mapping has colour ``PALETTE[i]`` here and in :func:`fig_compare_f1`, so charts
    of the same runs agree; the legend sits below the plot, in rows for a figure ``width_px`` wide.

    Returns:
        go.Figure: one Scatter (lines+markers) per run with data, named by its label.
    """
    fig = go.Figure()
    for i, (run, history) in enumerate(histories.items()):
        xs, ys = _series(history, metric)
        if ys:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=str(run),
                                     line=dict(color=_color(i), width=2), marker=dict(size=5),
                                     hovertemplate="epoch %{x}<br>%{y:.4g}<extra>" + str(run) + "</extra>"))
    _epoch_axis(fig, list(histories.values()))
    _style(fig, title, 300, "Epoch", _pretty(metric).capitalize())
    return _legend_below(fig, [t.name for t in fig.data], plot_height=230, width_px=width_px)


def fig_compare_f1(f1: Mapping[str, Mapping[str, float]], title: str | None = None,
                   width_px: int = 800) -> go.Figure:
    """Each class's F1 side by side for several runs: grouped bars, one colour per run as in
    :func:`fig_compare_curves`.

    Args:
        f1: Run label -> ``{class name: F1}``; classes are the union over runs in first-seen order (a run without
            a class has no bar there).
        width_px: The narrowest the figure is drawn (for the legend's rows).

    Returns:
        go.Figure: one Bar trace per run (its label as name), x the classes, y in [0, 1].
    """
    classes = list(dict.fromkeys(c for scores in f1.values() for c in scores))
    fig = go.Figure()
    for i, (run, scores) in enumerate(f1.items()):
        fig.add_trace(go.Bar(x=classes, y=[scores.get(c) for c in classes], name=str(run),
                             marker_color=_color(i),
                             hovertemplate="%{x}<br>F1 %{y:.3f}<extra>" + str(run) + "</extra>"))
    fig.update_xaxes(type="category", tickangle=-45 if len(classes) > 12 else 0)
    fig.update_yaxes(range=[0, 1])
    _style(fig, title, 340, "Class", "F1", barmode="group", bargroupgap=0.08)
    return _legend_below(fig, list(f1), plot_height=240, width_px=width_px)


# -- inference -------------------------------------------------------------------------------------
def fig_probabilities(probabilities: Any, class_names: Sequence[str], top_k: int | None = None,
                      title: str | None = None) -> go.Figure:
    """Class probabilities as horizontal bars, highest first (at the top), the top class highlighted.

    Args:
        probabilities: ``(n_classes,)`` (or ``(1, n_classes)``).
        top_k (int | None): Show only the ``top_k`` most probable classes.

    Returns:
        go.Figure: one Bar trace (``orientation="h"``) whose ``x`` is sorted descending; x in [0, 1].
    """
    p = _np(probabilities, dtype=float).ravel()
    if p.shape[0] != len(class_names):
        raise ValueError(f"{p.shape[0]} probabilities for {len(class_names)} class names")
    order = np.argsort(-p, kind="stable")
    if top_k is not None:
        order = order[:max(1, int(top_k))]
    names = [str(class_names[i]) for i in order]
    values = p[order]
    colors = [ACCENT if j == 0 else MUTED for j in range(len(order))]
    fig = go.Figure(go.Bar(
        x=values, y=names, orientation="h", marker_color=colors, text=[f"{v:.1%}" for v in values],
        textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(type="category", autorange="reversed")
    return _style(fig, title, _clamp(80 + 26 * len(order), 200, 600), "Probability", None,
                  margin=dict(l=100, r=50, t=50 if title else 20, b=50))


def fig_window_predictions(window_starts_sec: Any, window_probs: Any, class_names: Sequence[str],
                           title: str | None = None, events: Sequence[tuple[float, str]] = ()) -> go.Figure:
    """Class probability over time for a long file, as a heatmap, with detected keywords marked on it.

    Args:
        window_starts_sec: ``(n_windows,)`` window start times, s (x).
        window_probs: ``(n_windows, n_classes)`` probabilities.
        class_names: ``n_classes`` names (y, first class on top).
        events: ``(window_start_sec, word)`` of each detected keyword (:mod:`lib.serving.stream`'s events, placed at the
            start of the window that fired), drawn as markers on the word's row.

    Returns:
        go.Figure: a Heatmap with ``z`` ``(n_classes, n_windows)`` in [0, 1], then a Scatter of the events when
        there are any.
    """
    starts = _np(window_starts_sec, dtype=float).ravel()
    probs = _np(window_probs, dtype=float)
    if probs.ndim == 1:
        probs = probs[None]
    if probs.shape != (starts.shape[0], len(class_names)):
        raise ValueError(f"window_probs must be ({starts.shape[0]}, {len(class_names)}), got {probs.shape}")
    names = [str(c) for c in class_names]
    fig = go.Figure(go.Heatmap(
        z=probs.T, x=starts, y=names, colorscale="Viridis", zmin=0, zmax=1,
        colorbar=dict(title=dict(text="probability"), thickness=12),
        hovertemplate="%{x:.2f} s<br>%{y}: %{z:.1%}<extra></extra>"))
    if len(events):
        fig.add_trace(go.Scatter(
            x=[float(start) for start, _ in events], y=[str(word) for _, word in events], mode="markers",
            name="detected", showlegend=False, marker=dict(symbol="diamond", size=11, color=ACCENT,
                                                           line=dict(color="white", width=1.5)),
            hovertemplate="detected %{y}: window from %{x:.2f} s<extra></extra>"))
    fig.update_yaxes(type="category", autorange="reversed", categoryorder="array", categoryarray=names)
    return _style(fig, title, _clamp(100 + 22 * len(names), 250, 600), "Window start (s)", "Class")


# -- home page -------------------------------------------------------------------------------------
def fig_pipeline(title: str | None = None) -> go.Figure:
    """Schematic of the pipeline: audio file -> waveform -> spectrogram -> CNN -> class probabilities,
    drawn as boxes and arrows (shapes and annotations only, no traces)."""
    stages = [("Audio file", "WAV · FLAC · OGG · MP3"), ("Waveform", "(channels, time)"),
              ("Spectrogram", "(1, bins, frames)"), ("CNN", "conv → pool → linear"),
              ("Classes", "softmax probabilities")]
    colors = ["#EEF0FF", "#E6F6FF", "#E8F8F0", "#FFF4E5", "#FDECEC"]
    width, gap = 1.6, 0.5
    fig = go.Figure()
    for i, ((name, detail), fill) in enumerate(zip(stages, colors)):
        x0 = i * (width + gap)
        fig.add_shape(type="rect", x0=x0, x1=x0 + width, y0=0.15, y1=0.85, xref="x", yref="y",
                      line=dict(color="#555", width=1.5), fillcolor=fill, layer="below")
        fig.add_annotation(x=x0 + width / 2, y=0.6, text=f"<b>{name}</b>", showarrow=False,
                           font=dict(size=14, color="#222"))
        fig.add_annotation(x=x0 + width / 2, y=0.35, text=detail, showarrow=False,
                           font=dict(size=10, color="#555"))
        if i:
            fig.add_annotation(x=x0, y=0.5, ax=x0 - gap, ay=0.5, xref="x", yref="y", axref="x", ayref="y",
                               text="", showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=2,
                               arrowcolor="#555")
    total = len(stages) * width + (len(stages) - 1) * gap
    fig.update_xaxes(visible=False, range=[-0.05, total + 0.05], fixedrange=True)
    fig.update_yaxes(visible=False, range=[0, 1], fixedrange=True)
    fig = _style(fig, title, 160, showlegend=False)
    fig.update_layout(margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return fig
