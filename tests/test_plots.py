"""lib.plots: every figure builds, has the expected traces/shapes, and serialises."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from lib import plots
from lib.dsp.features import FeatureConfig, frame_grid, frequency_axis, time_axis


def _ok(fig) -> go.Figure:
    assert isinstance(fig, go.Figure)
    json.loads(fig.to_json())
    assert fig.layout.template.layout.paper_bgcolor is not None  # a template is set
    return fig


# -- helpers ---------------------------------------------------------------------------------------
def test_np_converts_tensors():
    t = torch.arange(6, dtype=torch.float32, requires_grad=True).reshape(2, 3) * 2
    a = plots._np(t)
    assert isinstance(a, np.ndarray) and a.shape == (2, 3) and a[1, 2] == 10
    assert plots._np(torch.ones(3, dtype=torch.bfloat16)).dtype == np.float32
    assert plots._np([1, 2]).tolist() == [1, 2]


# -- waveform --------------------------------------------------------------------------------------
def test_decimation_keeps_extremes_and_budget():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 48_001)).astype(np.float32)
    x[0, 12_345], x[1, 40_000] = 9.0, -7.0
    idx, values = plots.decimate_minmax(x, max_points=4000)
    assert idx.shape == values.shape and idx.shape[1] <= 4000
    for c in range(2):
        assert values[c].max() == x[c].max() and values[c].min() == x[c].min()
        assert np.all(np.diff(idx[c]) >= 0)  # time order
        np.testing.assert_array_equal(values[c], x[c, idx[c]])
    short_idx, short = plots.decimate_minmax(np.arange(10.0), max_points=4000)
    assert short.shape == (1, 10) and short_idx[0].tolist() == list(range(10))


def test_fig_waveform_channels_and_decimation():
    sr = 16000
    wave = torch.randn(2, 3 * sr) * 0.1
    wave[1, 20_000] = 0.95
    wave[0, 100] = -0.9
    fig = _ok(plots.fig_waveform(wave, sr, title="clip", max_points=2000))
    assert len(fig.data) == 2
    for c, trace in enumerate(fig.data):
        assert len(trace.x) <= 2 * 2000 and len(trace.x) == len(trace.y)
        assert max(trace.y) == pytest.approx(float(wave[c].max()))
        assert min(trace.y) == pytest.approx(float(wave[c].min()))
    assert fig.data[1].x[np.argmax(fig.data[1].y)] == pytest.approx(20_000 / sr)
    assert fig.layout.xaxis.title.text == "Time (s)" and fig.layout.title.text == "clip"
    mono = _ok(plots.fig_waveform(np.sin(np.linspace(0, 100, 800)), 8000))
    assert len(mono.data) == 1 and len(mono.data[0].x) == 800 and mono.layout.title.text is None


def test_fig_waveform_frame_grid():
    config = FeatureConfig()  # win 400 = 25 ms, hop 160 = 10 ms
    grid = frame_grid(config)
    fig = _ok(plots.fig_waveform(torch.randn(config.n_samples), config.sample_rate, frame_grid=grid))
    assert len(fig.data) == 2  # the channel + the hop ticks
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 6
    assert (rects[0].x0, rects[0].x1) == pytest.approx(grid[0])
    assert len({(s.y0, s.y1) for s in rects}) > 1  # rows alternate
    ticks = [x for x in fig.data[1].x if x is not None]
    assert len(ticks) == 2 * len(grid)
    np.testing.assert_allclose(sorted(set(ticks)), np.arange(len(grid)) * 0.01, atol=1e-9)
    text = fig.layout.annotations[0].text
    assert "window = 25 ms" in text and "hop = 10 ms" in text and f"{len(grid)} frames" in text


# -- spectrogram -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mel", "linear", "mfcc"])
def test_fig_spectrogram_axes(kind):
    config = FeatureConfig(kind=kind, n_mfcc=13)
    spec = torch.randn(1, config.n_bins, config.n_frames)
    fig = _ok(plots.fig_spectrogram(spec, config, zmin=-2, zmax=2))
    (heat,) = fig.data
    assert heat.type == "heatmap" and heat.z.shape == (config.n_bins, config.n_frames)
    assert len(heat.x) == config.n_frames and len(heat.y) == config.n_bins
    np.testing.assert_allclose(heat.x, time_axis(config, config.n_frames))
    np.testing.assert_allclose(heat.y, frequency_axis(config))
    assert heat.colorbar.title.text == "normalised" and (heat.zmin, heat.zmax) == (-2, 2)
    assert fig.layout.xaxis.title.text == "Time (s)"


def test_fig_spectrogram_db_and_long_and_mismatch():
    config = FeatureConfig(normalization="none")
    fig = _ok(plots.fig_spectrogram(np.zeros((config.n_bins, 250)), config, title="t"))
    assert fig.data[0].colorbar.title.text == "dB" and len(fig.data[0].x) == 250
    assert fig.layout.yaxis.title.text == "Mel bin centre (Hz)"
    with pytest.raises(ValueError):
        plots.fig_spectrogram(np.zeros((7, 10)), config)


# -- dataset ---------------------------------------------------------------------------------------
def test_fig_class_counts_and_histogram():
    fig = _ok(plots.fig_class_counts({"yes": 3, "no": 5, "1": 2}))
    assert list(fig.data[0].x) == ["yes", "no", "1"] and list(fig.data[0].y) == [3, 5, 2]
    assert fig.layout.xaxis.type == "category"
    hist = _ok(plots.fig_histogram(torch.rand(50), "Duration (s)", title="d", nbins=10))
    assert len(hist.data) == 1 and len(hist.data[0].x) == 50 and hist.data[0].nbinsx == 10
    assert hist.layout.xaxis.title.text == "Duration (s)"


def test_fig_embedding_traces_customdata_symbols():
    rng = np.random.default_rng(1)
    labels = ["b", "a", "b", "c", "a", "b"]
    points = rng.normal(size=(6, 2))
    hover = [f"clip{i}.wav" for i in range(6)]
    fig = _ok(plots.fig_embedding(points, labels, hover))
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    seen = []
    for trace in fig.data:
        for j, row in enumerate(np.asarray(trace.customdata)[:, 0]):
            assert labels[row] == trace.name and trace.hovertext[j] == hover[row]
            assert (trace.x[j], trace.y[j]) == tuple(points[row])
            seen.append(int(row))
    assert sorted(seen) == list(range(6))
    marks = ["correct", "wrong", "correct", "correct", "correct", "wrong"]
    fig = _ok(plots.fig_embedding(torch.tensor(points), labels, hover, symbols=marks))
    assert len(fig.data) == 3 + 2  # classes + legend-only symbol traces
    b = fig.data[1]
    assert list(b.marker.symbol) == ["x" if marks[r] == "wrong" else "circle" for r in b.customdata[:, 0]]
    with pytest.raises(ValueError):
        plots.fig_embedding(points[:5], labels, hover)


def test_fig_embedding_draws_many_points_with_webgl():
    n = plots.WEBGL_MIN_POINTS
    for count, kind in ((n, "scatter"), (n + 1, "scattergl")):
        points = np.random.default_rng(count).normal(size=(count, 2))
        fig = _ok(plots.fig_embedding(points, ["a", "b"] * (count // 2) + ["a"] * (count % 2),
                                      [str(i) for i in range(count)], symbols=["correct"] * count))
        assert {trace.type for trace in fig.data} == {kind}
        assert sum(len(trace.customdata) for trace in fig.data[:2]) == count


# -- evaluation ------------------------------------------------------------------------------------
def test_fig_confusion_counts_and_normalised():
    cm = np.array([[5, 1, 0], [2, 2, 0], [0, 0, 0]])
    names = ["0", "1", "2"]
    fig = _ok(plots.fig_confusion(cm, names, title="cm"))
    np.testing.assert_array_equal(fig.data[0].z, cm)
    assert fig.data[0].text[0][1] == "1" and fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"
    assert fig.layout.xaxis.title.text == "Predicted class" and fig.layout.yaxis.title.text == "True class"
    norm = _ok(plots.fig_confusion(torch.tensor(cm), names, normalize=True))
    z = np.asarray(norm.data[0].z)
    np.testing.assert_allclose(z.sum(axis=1), [1, 1, 0])  # an empty row stays 0, no NaN
    assert norm.data[0].text[0][0] == "0.83" and norm.data[0].zmax == 1


def test_fig_prf():
    rows = [{"class": "yes", "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10},
            {"class": "no", "precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 4}]
    fig = _ok(plots.fig_prf(rows))
    assert [t.name for t in fig.data] == ["Precision", "Recall", "F1"]
    assert list(fig.data[1].y) == [0.8, 1.0] and tuple(fig.layout.yaxis.range) == (0, 1)
    assert fig.layout.barmode == "group"


# -- training --------------------------------------------------------------------------------------
HISTORY = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "train_accuracy": 0.5, "learning_rate": 1e-3},
           {"epoch": 2, "train_loss": 0.7, "val_loss": 0.9, "train_accuracy": 0.7, "val_accuracy": 0.6},
           {"epoch": 3, "train_loss": 0.5, "val_loss": None, "val_accuracy": 0.7}]


def test_fig_curves():
    fig = _ok(plots.fig_curves(HISTORY))
    assert [t.name for t in fig.data] == ["train loss", "val loss"]
    assert list(fig.data[1].x) == [1, 2] and fig.layout.yaxis.title.text == "Loss"
    acc = _ok(plots.fig_curves(HISTORY, metrics=("train_accuracy", "val_accuracy", "missing"),
                               names={"val_accuracy": "validation"}))
    assert [t.name for t in acc.data] == ["train accuracy", "validation"]
    assert list(acc.data[1].x) == [2, 3] and acc.layout.yaxis.title.text == "Accuracy"
    assert len(_ok(plots.fig_curves([])).data) == 0


def test_smooth_ema_and_fig_steps():
    np.testing.assert_allclose(plots.smooth_ema([3.0] * 20, 0.9), 3.0)
    np.testing.assert_allclose(plots.smooth_ema([1.0, 2.0, 3.0], 0.0), [1, 2, 3])
    e = plots.smooth_ema([0.0, 10.0], 0.5)
    assert e[0] == 0 and e[1] == pytest.approx((0.5 * 10) / (1 - 0.25))
    with pytest.raises(ValueError):
        plots.smooth_ema([1.0], 1.0)
    steps = [{"step": s, "loss": 2.5} for s in range(0, 100, 5)] + [{"step": 100}]
    fig = _ok(plots.fig_steps(steps, smoothing=0.95))
    raw, smooth = fig.data
    assert len(raw.x) == 20 and list(raw.x) == list(range(0, 100, 5))
    np.testing.assert_allclose(smooth.y, 2.5)
    assert len(_ok(plots.fig_steps([])).data) == 2


def test_fig_compare_curves():
    fig = _ok(plots.fig_compare_curves({"run A": HISTORY, "run B": HISTORY[:2], "empty": []}))
    assert [t.name for t in fig.data] == ["run A", "run B"]
    assert list(fig.data[0].y) == [0.6, 0.7]


def test_comparison_legends_sit_below_the_plot_and_keep_its_height():
    """Many runs: the legend wraps into more rows under the plot, the figure grows, the plot area does not."""
    history = [{"epoch": e, "val_accuracy": e / 10} for e in (1, 2, 3)]
    few = plots.fig_compare_curves({f"run-{i}": history for i in range(2)}, title="Validation accuracy")
    many = plots.fig_compare_curves({f"run-number-{i}": history for i in range(8)}, title="Validation accuracy")
    for fig in (few, many):
        legend = fig.layout.legend
        assert (legend.orientation, legend.yref, legend.y, legend.yanchor) == ("h", "container", 0, "bottom")
        margin = fig.layout.margin
        assert fig.layout.height - margin.t - margin.b == 230
    assert many.layout.margin.b > few.layout.margin.b


def test_fig_compare_f1_groups_runs_per_class_in_the_curves_colours():
    fig = _ok(plots.fig_compare_f1({"a": {"yes": 0.5, "no": 1.0}, "b": {"no": 0.25, "up": 0.75}}, title="F1"))
    assert [t.name for t in fig.data] == ["a", "b"] and fig.layout.barmode == "group"
    assert list(fig.data[0].x) == ["yes", "no", "up"] and list(fig.data[1].y) == [None, 0.25, 0.75]
    curves = plots.fig_compare_curves({"a": HISTORY, "b": HISTORY})
    assert [t.marker.color for t in fig.data] == [t.line.color for t in curves.data]


# -- inference -------------------------------------------------------------------------------------
def test_fig_probabilities_sorted_and_highlighted():
    names = ["yes", "no", "up", "down"]
    p = torch.tensor([[0.1, 0.6, 0.05, 0.25]])
    fig = _ok(plots.fig_probabilities(p, names))
    bar = fig.data[0]
    assert list(bar.y) == ["no", "down", "yes", "up"]
    assert list(bar.x) == sorted(bar.x, reverse=True)
    assert bar.marker.color[0] != bar.marker.color[1] and len(set(bar.marker.color[1:])) == 1
    assert tuple(fig.layout.xaxis.range) == (0, 1) and fig.layout.yaxis.autorange == "reversed"
    top2 = _ok(plots.fig_probabilities(p[0].numpy(), names, top_k=2))
    assert list(top2.data[0].y) == ["no", "down"]


def test_fig_window_predictions():
    probs = torch.softmax(torch.randn(7, 3), dim=1)
    starts = np.arange(7) * 0.5
    fig = _ok(plots.fig_window_predictions(starts, probs, ["a", "b", "c"], title="w"))
    heat = fig.data[0]
    assert heat.z.shape == (3, 7) and list(heat.y) == ["a", "b", "c"] and len(heat.x) == 7
    np.testing.assert_allclose(heat.z, probs.numpy().T, rtol=1e-6)
    with pytest.raises(ValueError):
        plots.fig_window_predictions(starts[:3], probs, ["a", "b", "c"])
    marked = _ok(plots.fig_window_predictions(starts, probs, ["a", "b", "c"], events=[(0.5, "b"), (2.0, "a")]))
    assert len(marked.data) == 2 and list(marked.data[1].x) == [0.5, 2.0] and list(marked.data[1].y) == ["b", "a"]
    assert list(marked.layout.yaxis.categoryarray) == ["a", "b", "c"]  # the markers do not reorder the rows


def test_fig_pipeline():
    fig = _ok(plots.fig_pipeline())
    assert len(fig.data) == 0 and len(fig.layout.shapes) == 5
    texts = " ".join(a.text for a in fig.layout.annotations)
    for word in ("Waveform", "Spectrogram", "CNN"):
        assert word in texts
    assert sum(1 for a in fig.layout.annotations if a.showarrow) == 4


def test_a_titled_figure_with_a_legend_on_top_keeps_the_two_on_separate_rows():
    """The title sits at the top of the figure and the legend above the plot area, with a margin holding both
    (the title used to be drawn over the legend on the Train and Evaluate pages)."""
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e} for e in (1, 2, 3)]
    for fig in (plots.fig_curves(history, title="Loss"), plots.fig_prf([{"class": "a", "precision": 1,
                                                                           "recall": 1, "f1": 1, "support": 1}],
                                                                         title="Scores"),
                plots.fig_steps([{"step": 1, "loss": 1.0}], title="Loss per step")):
        layout = fig.layout
        assert layout.legend.orientation == "h" and layout.legend.y >= 1
        assert layout.title.yref == "container" and layout.title.yanchor == "top"
        assert layout.margin.t >= 80  # title row (~30 px) + legend row (~25 px) above the plot area


def test_epoch_axes_tick_at_whole_epochs_only():
    short = plots.fig_curves([{"epoch": e, "val_loss": 1.0} for e in (1, 2, 3)])
    assert (short.layout.xaxis.tick0, short.layout.xaxis.dtick) == (1, 1)
    long = plots.fig_compare_curves({"a": [{"epoch": e, "val_accuracy": 0.5} for e in range(1, 41)]})
    assert long.layout.xaxis.dtick == 5 and float(long.layout.xaxis.dtick).is_integer()


@pytest.mark.parametrize("n_steps, dtick", [(2, 1), (40, 5), (1234, 200)])
def test_step_axes_tick_at_whole_steps_only(n_steps, dtick):
    fig = plots.fig_steps([{"step": s, "loss": 1.0} for s in range(1, n_steps + 1)])
    assert (fig.layout.xaxis.tick0, fig.layout.xaxis.dtick, fig.layout.xaxis.tickformat) == (0, dtick, "d")


def test_still_images_have_the_promised_size_and_low_bins_at_the_bottom():
    import io

    from PIL import Image

    spec = np.zeros((40, 101))
    spec[0] = 1.0  # the lowest bin is the loudest
    image = Image.open(io.BytesIO(plots.image_spectrogram(spec, scale=2, time_scale=3))).convert("RGB")
    assert image.size == (303, 80)
    bottom, top = np.asarray(image)[-1, 0], np.asarray(image)[0, 0]
    assert bottom.sum() > top.sum()  # Viridis: loud is bright yellow, quiet dark purple
    wave = Image.open(io.BytesIO(plots.image_waveform(np.zeros(16000), 200, 50)))
    assert wave.size == (200, 50)


# -- helpers the pages use instead of array maths ---------------------------------------------------
def test_color_range_spans_every_image():
    assert plots.color_range(torch.tensor([[1.0, -2.0]]), np.array([5.0, 0.0])) == (-2.0, 5.0)
    with pytest.raises(ValueError, match="at least one"):
        plots.color_range()


def test_class_means_skips_empty_classes_and_keeps_class_order():
    features = np.arange(8, dtype=np.float32).reshape(4, 1, 2)          # (n_clips, bins, frames)
    labels = np.array([2, 0, 2, 0])
    means = plots.class_means(features, labels, ["a", "b", "c"])
    assert list(means) == ["a", "c"]                                      # "b" has no clips
    np.testing.assert_allclose(means["a"], (features[1] + features[3]) / 2)
    np.testing.assert_allclose(means["c"], (features[0] + features[2]) / 2)
    assert list(plots.class_means(features, labels, ["a", "b", "c"], max_classes=1)) == ["a"]


def test_fig_eq_curve_passes_through_the_knots_below_nyquist():
    from lib.augment.config import EQ_KNOTS_HZ

    knots = tuple(float(i) for i in range(len(EQ_KNOTS_HZ)))
    fig = _ok(plots.fig_eq(knots, 4000.0))
    curve, marks = fig.data
    assert len(curve.x) == 200 and curve.x[0] == pytest.approx(50.0) and curve.x[-1] == pytest.approx(4000.0)
    kept = [f for f in EQ_KNOTS_HZ if f <= 4000.0]
    assert list(marks.x) == kept and list(marks.y) == list(knots[:len(kept)])
    assert fig.layout.xaxis.type == "log"
