"""lib.sweep.plots: each figure of a sweep's trials builds from TrialInfo lists, draws what it should, serialises."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest

from lib.plots import ACCENT
from lib.sweep import TrialInfo
from lib.sweep.plots import (GREY, best_trial_number, fig_importance, fig_parallel, fig_pareto, fig_trial_curves,
                             log_steps, param_label, pareto_front, power_of_ten, progress_text, trials_table)


def _trial(number, state, curve, lr, model, values=None) -> TrialInfo:
    return TrialInfo(number, state, {"train.learning_rate": lr, "train.model": model, "features.n_mels": 32 + number},
                     dict(values or {}), list(curve), f"s-t{number:03d}" if state != "waiting" else None, 1.0, None)


TRIALS = [
    _trial(0, "complete", [0.3, 0.6, 0.8], 1e-3, "tutorial_cnn", {"val_accuracy": 0.8, "latency_ms": 1.0,
                                                                  "n_parameters": 2e4}),
    _trial(1, "pruned", [0.2], 1e-1, "kws_resnet", {"val_accuracy": 0.2}),
    _trial(2, "complete", [0.4, 0.7, 0.9], 3e-4, "kws_resnet", {"val_accuracy": 0.9, "latency_ms": 3.0,
                                                                "n_parameters": 9e4}),
    _trial(3, "complete", [0.3, 0.5, 0.7], 3e-4, "kws_resnet", {"val_accuracy": 0.7, "latency_ms": 4.0,
                                                                "n_parameters": 1e5}),
    _trial(4, "failed", [], 1e-2, "tutorial_cnn"),
    _trial(5, "running", [0.5], 1e-3, "tutorial_cnn"),
]


def _ok(fig) -> go.Figure:
    assert isinstance(fig, go.Figure)
    json.loads(fig.to_json())
    return fig


def test_trial_curves_grey_the_pruned_and_highlight_the_best():
    fig = _ok(fig_trial_curves(TRIALS))
    assert len(fig.data) == 5  # the failed trial has no epoch yet
    by_trial = {int(t.customdata[0].split()[1]): t for t in fig.data}
    assert by_trial[1].line.color == GREY and by_trial[1].line.dash == "dot"
    assert by_trial[2].line.color == ACCENT and fig.data[-1] is by_trial[2]  # the best on top
    assert list(by_trial[2].x) == [1, 2, 3] and list(by_trial[2].y) == [0.4, 0.7, 0.9]
    assert sorted(t.name for t in fig.data if t.showlegend) == ["best", "complete", "pruned or failed", "running"]
    assert best_trial_number(TRIALS) == 2 and best_trial_number(TRIALS[1:2]) is None
    assert [t for t in _ok(fig_trial_curves(TRIALS, best=[0])).data if t.line.color == ACCENT][0].y[-1] == 0.8


def test_parallel_coordinates_map_choices_to_ticks_and_logs_to_powers_of_ten():
    fig = _ok(fig_parallel(TRIALS, ["train.learning_rate", "train.model", "features.n_mels"],
                           log={"train.learning_rate"}))
    (trace,) = fig.data
    lr, model, n_mels, accuracy = trace.dimensions
    assert len(accuracy.values) == 4  # complete and pruned trials have a value; running and failed not
    assert list(model.ticktext) == ["kws_resnet", "tutorial_cnn"] and list(model.values) == [1, 0, 0, 0]
    assert list(lr.ticktext)[0] == "1e-4" and abs(lr.values[0] + 3) < 1e-9
    assert n_mels.label == "n_mels" and accuracy.label == "Validation accuracy"
    assert not _ok(fig_parallel(TRIALS[4:])).data  # nothing to draw yet


def test_importance_bars_most_important_on_top():
    fig = _ok(fig_importance({"train.learning_rate": 0.7, "features.n_mels": 0.2, "train.model": 0.1}))
    assert list(fig.data[0].y) == ["model", "n_mels", "learning rate"]  # plotly draws the last bar at the top
    assert param_label("train.augment.freq_mask_param") == "freq mask param"


def test_pareto_front_of_accuracy_against_latency_and_size():
    assert pareto_front([(1, 0.5), (2, 0.4), (3, 0.9), (0.5, 0.1)]) == [3, 0, 2]
    fig = _ok(fig_pareto(TRIALS, "latency_ms", title="Accuracy against latency"))
    other, front = fig.data
    assert list(front.x) == [1.0, 3.0] and list(front.y) == [0.8, 0.9] and list(other.text) == ["trial 3"]
    size = _ok(fig_pareto(TRIALS, "n_parameters"))
    assert size.layout.xaxis.type == "log"


def test_the_pages_words_and_tables_of_a_sweep():
    assert log_steps(1e-4, 1e-2) == pytest.approx([1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    assert [power_of_ten(v) for v in (1e-4, 0.03)] == ["1e-4", "3e-2"]
    table = trials_table(TRIALS[:2], ["train.learning_rate"], ("val_accuracy",))
    assert list(table) == ["trial", "state", "val_accuracy", "epochs", "learning rate", "run id", "seconds", "note"]
    assert table["epochs"] == [3, 1] and table["learning rate"] == [1e-3, 1e-1]
    assert progress_text({"complete": 2, "pruned": 1, "running": 1}, 10, 5.0) == (
        0.3, "3 of 10 trials ended (2 complete, 1 pruned, 1 running) · budget 5 min")
    assert progress_text({}, None, None) == (0.0, "0 trials ended")
