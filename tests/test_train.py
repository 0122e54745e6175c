"""The training engine on the tiny built-in set: convergence, stop, divergence, determinism, saved runs."""

import math
import threading

import numpy as np
import pytest
import torch

from lib.augment import AugmentConfig
from lib.dsp.features import FeatureConfig
from lib.engine.runs import list_runs, load_run
from lib.engine.train import DoneEvent, EpochEvent, StartEvent, StepEvent, TrainConfig, iter_training, run_training

FAST = dict(model="tutorial_cnn", epochs=6, batch_size=16, learning_rate=1e-2)


def _events(dataset, config, feature_config=None, **kwargs):
    return list(iter_training(dataset, feature_config or FeatureConfig(), config, **kwargs))


def test_tiny_run_converges_and_is_saved(tiny_dataset, tmp_path):
    events = _events(tiny_dataset, TrainConfig(**FAST), runs_root=tmp_path, run_id="tiny",
                     sweep={"name": "lr-search", "trial": 3})
    start, done = events[0], events[-1]
    steps = [e for e in events if isinstance(e, StepEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert isinstance(start, StartEvent) and start.cached_features and start.total_steps == len(steps)
    assert isinstance(done, DoneEvent) and done.status == "finished", done.message
    assert len(epochs) == 6 and epochs[-1].eta_sec == 0
    assert np.mean([s.loss for s in steps[-4:]]) < np.mean([s.loss for s in steps[:4]])  # loss falls
    assert epochs[-1].train_accuracy > 0.6  # chance is 1/3
    run = load_run(tmp_path / "tiny")
    record = run.record
    assert record.class_names == ["yes", "no", "up"] and record.status == "finished"
    assert record.model == record.train_config.model == "tutorial_cnn"
    assert record.train_config == TrainConfig(**FAST) and record.feature_config == FeatureConfig()
    assert record.dataset.n_clips == len(tiny_dataset) and sum(record.dataset.split.values()) == len(tiny_dataset)
    assert len(run.history) == 6
    for split in ("validation", "test"):
        report = run.report(split)
        assert np.array(report.confusion_matrix).sum() == report.n == len(report.predictions)
        assert report.to_dict() == run.metrics[split]  # metrics.json holds the report as it is
        assert all(tiny_dataset.paths[p.index] == p.path for p in report.predictions)
    listed = list_runs(tmp_path)
    assert [r.run_id for r in listed] == ["tiny"] and listed[0].sweep == {"name": "lr-search", "trial": 3}
    latency = run.metrics["latency"]  # one clip on one CPU thread, measured after training
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] and latency["threads"] == 1
    assert listed[0].latency_ms == latency["p50_ms"]
    # the run keeps its misclassified test clips and its test embedding (lib.engine.run_extras)
    from lib.engine.run_extras import kept_mistakes, mistake_clip, test_embedding

    test = run.report("test")
    index, embedding = test_embedding(tmp_path / "tiny")
    assert index.tolist() == [p.index for p in test.predictions] and embedding.shape == (len(index), 64)
    assert all(mistake_clip(tmp_path / "tiny", p.index) for p in kept_mistakes(test))


def test_stop_mid_epoch_leaves_a_valid_run(tiny_dataset, tmp_path):
    stop = threading.Event()
    seen = []

    def on_event(event):
        seen.append(event)
        if isinstance(event, StepEvent) and event.step == 2:
            stop.set()  # from the callback here; the Train page sets it from another thread

    done = run_training(tiny_dataset, FeatureConfig(), TrainConfig(**FAST), callback=on_event,
                        runs_root=tmp_path, run_id="stopped", stop=stop)
    assert done.status == "stopped" and done.run_path
    assert max(e.step for e in seen if isinstance(e, StepEvent)) == 2
    run = load_run(done.run_path)
    assert run.record.status == "stopped" and len(run.history) == 1
    total = next(e for e in seen if isinstance(e, StartEvent)).total_steps
    assert done.message.startswith(f"stopped after 2 of {total} steps (0 full epoch(s) and 2 step(s) of epoch 1)")
    assert set(run.state_dict) and all(torch.isfinite(v.float()).all() for v in run.state_dict.values())


@pytest.mark.parametrize("steps", [1, 4, 5, 6])
def test_the_one_cycle_schedule_trains_any_number_of_steps(tiny_dataset, steps):
    """5 steps once made OneCycleLR's warm-up end at step 0 (a ZeroDivisionError)."""
    config = TrainConfig(model="tutorial_cnn", steps=steps, batch_size=16, validation_fraction=0.0,
                         test_fraction=0.0, scheduler="onecycle")
    done = run_training(tiny_dataset, FeatureConfig(), config, save=False)
    assert done.status == "finished", done.message


def test_nan_loss_is_caught_with_a_helpful_message(tiny_dataset, tmp_path):
    config = TrainConfig(model="tutorial_cnn", epochs=3, batch_size=16, optimizer="sgd", learning_rate=1e8,
                         scheduler="none")
    done = run_training(tiny_dataset, FeatureConfig(), config, runs_root=tmp_path)
    assert done.status == "failed" and "learning rate" in done.message and "too high" in done.message
    assert list_runs(tmp_path) == []  # nothing half-baked is saved


def test_same_seed_same_result_on_cpu(tiny_dataset):
    config = TrainConfig(**{**FAST, "epochs": 2}, device="cpu", seed=3)
    runs = [_events(tiny_dataset, config, save=False) for _ in range(2)]
    losses = [[e.loss for e in events if isinstance(e, StepEvent)] for events in runs]
    assert losses[0] == losses[1]
    assert runs[0][-1].metrics["test"]["predictions"] == runs[1][-1].metrics["test"]["predictions"]
    other = _events(tiny_dataset, config.replace(seed=4), save=False)
    assert [e.loss for e in other if isinstance(e, StepEvent)] != losses[0]


@pytest.mark.parametrize("domain, batches_from", [("waveform", "waveform"), ("spectrogram", "power")])
def test_waveform_step_augmentation_paths(tiny_dataset, domain, batches_from):
    augment = AugmentConfig(noise_probability=0.5, gain_db=6.0, reverb_probability=0.5, eq_probability=0.5,
                            domain=domain)
    events = _events(tiny_dataset, TrainConfig(**{**FAST, "epochs": 1}, augment=augment, max_batches=2), save=False)
    assert events[0].batches_from == batches_from and events[0].cached_features is (domain == "spectrogram")
    assert events[-1].status == "finished" and sum(isinstance(e, StepEvent) for e in events) == 2
    assert all(math.isfinite(e.loss) for e in events if isinstance(e, StepEvent))


def test_power_features_fall_back_to_waveforms(tiny_dataset):
    """Magnitude spectrograms (power=1) are not linear in the signal's power: the engine augments waveforms."""
    augment = AugmentConfig(noise_probability=0.5)
    events = _events(tiny_dataset, TrainConfig(**{**FAST, "epochs": 1}, augment=augment, max_batches=1), save=False,
                     feature_config=FeatureConfig(power=1.0))
    assert events[0].batches_from == "waveform" and events[-1].status == "finished"


@pytest.mark.parametrize("model", ["kws_resnet", "crnn"])
def test_other_models_train_one_epoch(tiny_dataset, model):
    done = run_training(tiny_dataset, FeatureConfig(), TrainConfig(model=model, epochs=1, batch_size=16), save=False)
    assert done.status == "finished", done.message


def test_one_class_fails_with_a_message(tiny_dataset):
    one = tiny_dataset.subset(np.flatnonzero(tiny_dataset.labels == 0))
    done = run_training(one, FeatureConfig(), TrainConfig(**FAST), save=False)
    assert done.status == "failed" and "two classes" in done.message


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="nope")
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="adam2")
    config = TrainConfig(augment={"time_shift_sec": 0.2})
    assert config.augment == AugmentConfig(time_shift_sec=0.2)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_stop_before_the_first_step_saves_nothing(tiny_dataset, tmp_path):
    stop = threading.Event()
    stop.set()
    done = run_training(tiny_dataset, FeatureConfig(), TrainConfig(**FAST), runs_root=tmp_path, stop=stop)
    assert done.status == "stopped" and done.run_id is None and "nothing was trained" in done.message
    assert list_runs(tmp_path) == []


@pytest.mark.parametrize("learning_rate", [float("inf"), float("nan"), -1.0])
def test_learning_rates_that_are_no_numbers_are_refused(learning_rate):
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=learning_rate)


def test_non_finite_weights_are_never_saved_as_a_run(tiny_dataset, tmp_path, monkeypatch):
    """A run whose weights went NaN without the loss noticing (it can with a huge learning rate) fails."""
    import lib.engine.train as engine

    real = engine._evaluate

    def poison(model, features, labels):  # the weights become NaN after the last step
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return real(model, features, labels)

    monkeypatch.setattr(engine, "_evaluate", poison)
    done = run_training(tiny_dataset, FeatureConfig(), TrainConfig(**{**FAST, "epochs": 1}), runs_root=tmp_path)
    assert done.status == "failed" and "learning rate" in done.message and "finite" in done.message
    assert list_runs(tmp_path) == []


def test_a_taken_run_id_or_unwritable_folder_fails_before_training(tiny_dataset, tmp_path):
    (tmp_path / "taken").mkdir()
    events = _events(tiny_dataset, TrainConfig(**FAST), runs_root=tmp_path, run_id="taken")
    assert len(events) == 1 and events[0].status == "failed" and "already exists" in events[0].message
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    events = _events(tiny_dataset, TrainConfig(**FAST), runs_root=blocker / "runs")
    assert len(events) == 1 and events[0].status == "failed" and "cannot save runs" in events[0].message
    events = _events(tiny_dataset, TrainConfig(**FAST), runs_root=tmp_path, run_id="../escape")
    assert len(events) == 1 and events[0].status == "failed"


def test_steps_sets_the_number_of_optimiser_steps(tiny_dataset):
    """``steps`` counts optimiser steps; epochs follow from it and the last one is cut short."""
    config = TrainConfig(**FAST, steps=7, device="cpu")
    events = _events(tiny_dataset, config, save=False)
    steps = [e for e in events if isinstance(e, StepEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    start = events[0]
    per_epoch = math.ceil(start.n_train / config.batch_size)
    assert per_epoch < 7 and start.total_steps == 7 and len(steps) == 7 and steps[-1].step == 7
    assert len(epochs) == math.ceil(7 / per_epoch) and all(e.epochs == len(epochs) for e in epochs)
    assert steps[-1].learning_rate < steps[2].learning_rate  # one cycle over exactly these steps: annealed at the end
    assert events[-1].status == "finished", events[-1].message


def test_steps_equal_to_whole_epochs_train_as_those_epochs(tiny_dataset):
    """Where ``steps`` is a whole number of epochs (and validation exists), the run is the epochs' run."""
    config = TrainConfig(**{**FAST, "epochs": 2}, device="cpu", seed=1)
    by_epochs = _events(tiny_dataset, config, save=False)
    per_epoch = by_epochs[0].total_steps // 2
    by_steps = _events(tiny_dataset, config.replace(epochs=15, steps=2 * per_epoch), save=False)
    assert ([e.loss for e in by_epochs if isinstance(e, StepEvent)]
            == [e.loss for e in by_steps if isinstance(e, StepEvent)])
    assert by_epochs[-1].metrics["test"]["predictions"] == by_steps[-1].metrics["test"]["predictions"]


def test_steps_without_validation_keeps_the_last_weights(tiny_dataset, tmp_path):
    """No validation clips: a steps run keeps its last weights (no best epoch chosen by training accuracy)."""
    config = TrainConfig(**FAST, steps=6, validation_fraction=0, test_fraction=0, device="cpu")
    done = run_training(tiny_dataset, FeatureConfig(), config, runs_root=tmp_path, run_id="last")
    run = load_run(tmp_path / "last")
    assert done.status == "finished" and run.record.best_epoch == len(run.history) == done.metrics["best_epoch"]
    assert run.record.train_config.steps == 6
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
