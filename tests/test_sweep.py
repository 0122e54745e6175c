"""lib.sweep: the search space, a tiny sweep through lib and the command line, workers sharing one study (SQLite and
PostgreSQL), and a worker killed mid-trial whose trial runs again."""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import time
from pathlib import Path

import pytest

from lib.dsp.features import FeatureConfig
from lib.engine.runs import list_runs
from lib.sweep import (Param, SearchSpace, SweepConfig, TrialEvent, create_sweep, default_storage, list_sweeps,
                       open_sweep, run_worker, searchable_params)
from lib.sweep.__main__ import main
from lib.engine.train import TrainConfig
from tests.postgres import postgres_url  # noqa: F401 - the fixture

BASE = TrainConfig(model="tutorial_cnn", epochs=2, batch_size=16, device="cpu")
LR = Param("train.learning_rate", "float", 1e-3, 1e-1, log=True)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Trials in this process on one torch thread, as the worker processes (``--threads 1``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(dataset, name: str, **changes) -> SweepConfig:
    fields = dict(space=SearchSpace((LR,)), source=dataset.source, feature_config=FeatureConfig(), train_config=BASE,
                  sampler="random", pruner="none", n_trials=3)
    return SweepConfig(name, **{**fields, **changes})


# --------------------------------------------------------------------------------------------- the space
@pytest.mark.parametrize("text, expected", [
    ("train.learning_rate=1e-4:1e-1:log", Param("train.learning_rate", "float", 1e-4, 1e-1, log=True)),
    ("features.n_mels=32:64:8", Param("features.n_mels", "int", 32, 64, step=8)),
    ("train.model=kws_resnet,tutorial_cnn",
     Param("train.model", "categorical", choices=("kws_resnet", "tutorial_cnn"))),
    ("train.augment.freq_mask_param=0:20", Param("train.augment.freq_mask_param", "int", 0, 20)),
    ("train.batch_size=16,32", Param("train.batch_size", "categorical", choices=(16, 32))),
    ("train.test_fold=none,1", Param("train.test_fold", "categorical", choices=(None, 1))),
])
def test_a_parameter_parses_and_writes_back(text, expected):
    assert Param.parse(text) == expected
    assert Param.parse(expected.to_text()) == expected
    assert Param.from_dict(expected.to_dict()) == expected


@pytest.mark.parametrize("text, message", [
    ("train.lr=1:2", "unknown sweep parameter 'train.lr'"),
    ("train.learning_rate", "write name=low:high"),
    ("train.learning_rate=0.1:0.01", "needs low < high"),
    ("train.learning_rate=0:0.1:log", "log scale needs low > 0"),
    ("features.n_mels=32:64:x", "features.n_mels=32:64:x"),
    ("train.model=kws_resnet:tutorial_cnn", "takes choices"),
    ("train.augment.noise_kinds=white,pink", "list setting"),
    ("train.mixed_precision=yes", "not true or false"),
])
def test_bad_parameters_are_refused_with_the_parameter_named(text, message):
    with pytest.raises(ValueError, match=message):
        Param.parse(text)


def test_apply_puts_values_into_the_base_settings_and_names_a_bad_one():
    space = SearchSpace((LR, Param.parse("features.n_mels=32:64:8"), Param.parse("train.augment.n_freq_masks=0:4")))
    features, train = space.apply({"train.learning_rate": 0.02, "features.n_mels": 48,
                                   "train.augment.n_freq_masks": 3}, FeatureConfig(), BASE)
    assert (train.learning_rate, features.n_mels, train.augment.n_freq_masks) == (0.02, 48, 3)
    assert train.model == "tutorial_cnn" and train.augment.time_mask_param == BASE.augment.time_mask_param
    with pytest.raises(ValueError, match="train.learning_rate.*learning_rate must be a positive"):
        space.apply({"train.learning_rate": -1.0}, FeatureConfig(), BASE)
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert len(space.grid()) == 3 * 5 * 5 and space.grid()[0] == {"train.learning_rate": 1e-3, "features.n_mels": 32,
                                                                  "train.augment.n_freq_masks": 0}
    with pytest.raises(ValueError, match="named twice"):
        SearchSpace((LR, LR))


def test_every_searchable_parameter_applies_at_both_ends_of_its_range():
    params = searchable_params()
    assert params["train.learning_rate"].log and "tutorial_cnn" in params["train.model"].choices
    assert "speech_embedding" not in params["train.model"].choices
    for param in params.values():
        for value in (param.grid_values()[0], param.grid_values()[-1]):
            SearchSpace((param,)).apply({param.name: value}, FeatureConfig(), TrainConfig())


def test_a_sweep_config_round_trips_and_refuses_bad_settings(tiny_dataset):
    config = _config(tiny_dataset, "rt", objectives=("val_accuracy", "latency_ms"), minutes=2.5)
    assert SweepConfig.from_dict(config.to_dict()) == config
    for changes, message in [({"sampler": "bayes"}, "sampler"), ({"objectives": ("latency_ms",)}, "val_accuracy"),
                             ({"n_trials": None}, "budget"), ({"name": "a b"}, "sweep name")]:
        with pytest.raises(ValueError, match=message):
            _config(tiny_dataset, changes.pop("name", "rt"), **changes)


# --------------------------------------------------------------------------------------------- through lib
class _PruneTrialOne:
    """A pruner that prunes trial 1 at its first report (deterministic, to test the wiring)."""

    def prune(self, study, trial) -> bool:
        return trial.number == 1


def test_a_tiny_sweep_runs_three_trials_with_one_pruned(tiny_dataset, tmp_path, monkeypatch):
    import lib.sweep.study as study_module

    monkeypatch.setattr(study_module, "_pruner", lambda config: _PruneTrialOne())
    storage = default_storage(tmp_path)
    config = _config(tiny_dataset, "tiny", pruner="median", train_config=BASE.replace(epochs=3))
    sweep = create_sweep(config, storage)
    assert create_sweep(config, storage).name == "tiny"  # the same config again: resumed
    with pytest.raises(ValueError, match="already exists with other settings"):
        create_sweep(config.__class__(**{**config.__dict__, "n_trials": 5}), storage)
    events = []
    result = run_worker("tiny", storage, dataset=tiny_dataset, runs_root=tmp_path, on_event=events.append)
    assert result.reason == "budget" and result.trials == [0, 1, 2]
    trials = sweep.trials()
    assert [t.state for t in trials] == ["complete", "pruned", "complete"]
    assert [len(t.curve) for t in trials] == [3, 1, 3] and trials[1].values == {"val_accuracy": trials[1].curve[-1]}
    ends = [e for e in events if isinstance(e, TrialEvent) and e.state != "running"]
    assert [(e.number, e.state) for e in ends] == [(0, "complete"), (1, "pruned"), (2, "complete")]
    runs = {run.run_id: run for run in list_runs(tmp_path)}
    assert sorted(runs) == ["tiny-t000", "tiny-t001", "tiny-t002"]
    assert runs["tiny-t001"].status == "stopped" and runs["tiny-t000"].status == "finished"
    assert runs["tiny-t001"].sweep == {"name": "tiny", "trial": 1}
    assert sweep.best()[0].values["val_accuracy"] == max(t.values["val_accuracy"] for t in trials)
    assert sweep.counts()["complete"] == 2 and list_sweeps(storage) == ["tiny"]
    assert set(sweep.importance()) <= {"train.learning_rate"}


def test_a_multi_objective_sweep_has_a_pareto_front(tiny_dataset, tmp_path):
    storage = default_storage(tmp_path)
    space = SearchSpace((Param.parse("features.n_mels=16,40"),))
    create_sweep(_config(tiny_dataset, "pareto", space=space, sampler="grid", n_trials=None, pruner="median",
                         objectives=("val_accuracy", "latency_ms", "n_parameters"),
                         train_config=BASE.replace(epochs=1)), storage)
    result = run_worker("pareto", storage, dataset=tiny_dataset, runs_root=tmp_path)
    sweep = open_sweep("pareto", storage)
    trials = sweep.trials()
    assert result.trials == [0, 1] and [t.params["features.n_mels"] for t in trials] == [16, 40]  # the grid, in order
    assert all(t.state == "complete" and set(t.values) == {"val_accuracy", "latency_ms", "n_parameters"}
               for t in trials)
    assert all(t.values["n_parameters"] > 1000 and t.values["latency_ms"] > 0 for t in trials)
    assert 1 <= len(sweep.best()) <= 2


def test_a_trial_that_finds_the_budget_taken_ends_unrun_and_hidden(tiny_dataset, tmp_path):
    import threading

    from lib.sweep.study import _Objective, _Surplus, _TrialFailed

    sweep = create_sweep(_config(tiny_dataset, "race", n_trials=1), default_storage(tmp_path))
    racing = sweep.study.ask()  # another worker's trial, numbered first: it takes the whole budget
    events = []
    objective = _Objective(sweep, tiny_dataset, tmp_path, threading.Event(), events.append)
    sweep.study.optimize(objective, n_trials=1, catch=(_Surplus, _TrialFailed))
    assert objective.number == 1 and objective.surplus and events == [] and list_runs(tmp_path) == []
    sweep.study.tell(racing, 0.5)
    assert [(t.number, t.state) for t in sweep.trials()] == [(0, "complete")]
    assert run_worker("race", sweep.storage, dataset=tiny_dataset, runs_root=tmp_path).trials == []


def test_a_stopped_worker_queues_its_trial_again_and_a_new_one_finishes_it(tiny_dataset, tmp_path):
    import threading

    from lib.engine.train import EpochEvent

    storage, stop = default_storage(tmp_path), threading.Event()
    sweep = create_sweep(_config(tiny_dataset, "stopped", n_trials=1), storage)
    first = run_worker("stopped", storage, dataset=tiny_dataset, runs_root=tmp_path, stop=stop,
                       on_event=lambda event: isinstance(event, EpochEvent) and stop.set())
    assert first.reason == "stopped" and first.counts["waiting"] == 1
    second = run_worker("stopped", storage, dataset=tiny_dataset, runs_root=tmp_path)
    trials = sweep.trials()
    assert second.trials == [1] and [t.state for t in trials] == ["failed", "complete"]
    assert "queued to run again" in trials[0].message and trials[1].params == trials[0].params


# --------------------------------------------------------------------------------------------- the command line
def test_the_command_line_runs_a_sweep_and_shows_it(tiny_dataset, tmp_path, capsys):
    manifest = tmp_path / "tiny.csv"
    manifest.write_text("path,label\n" + "\n".join(f"{p},{tiny_dataset.class_names[y]}"
                                                   for p, y in zip(tiny_dataset.paths, tiny_dataset.labels)) + "\n")
    out = str(tmp_path / "runs")
    code = main(["run", "cli", "--param", "train.learning_rate=1e-3:1e-1:log", "--param", "train.model=tutorial_cnn",
                 "--trials", "2", "--pruner", "none", "--dataset", str(manifest), "--model", "tutorial_cnn",
                 "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--out", out])
    printed = capsys.readouterr().out
    assert code == 0 and "trial 0 complete: val_accuracy" in printed and "trial 1 complete" in printed
    assert main(["status", "cli", "--out", out]) == 0
    table = capsys.readouterr().out
    assert "train.learning_rate" in table and "cli-t001" in table and "best: trial" in table
    assert main(["run", "cli", "--out", out]) == 0  # resumed: the budget is already done
    assert "ran trials none" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["create", "x", "--param", "train.lr=1:2"], "unknown sweep parameter 'train.lr'"),
    (["status", "nope"], "no sweep named 'nope'"),
    (["worker", "--study", "x", "--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/db"],
     "cannot open the sweep storage postgresql\\+psycopg://u:\\*\\*\\*@127.0.0.1:1/db"),
])
def test_the_command_line_says_what_is_wrong_in_one_line(argv, message, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "secret" not in err
    assert __import__("re").search(message, err)


# --------------------------------------------------------------------------------------------- workers
def _cli_worker(argv: list[str], log: str) -> None:
    """A worker process's work: ``python -m lib.sweep worker ...`` with its output in ``log``."""
    with open(log, "w") as out, contextlib.redirect_stdout(out):
        code = main(argv)
    sys.exit(code)


@pytest.fixture(scope="module")
def processes():
    """Processes forked from a server that has imported lib.sweep and torch once (a fresh interpreter per worker
    would spend seconds importing them); the server runs no torch code, so its children fork safely."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "torch._dynamo", "lib.sweep.__main__", _cli_worker.__module__])
    return context


def _worker(processes, storage: str, name: str, runs: Path, log: Path):
    argv = ["worker", "--study", name, "--storage", storage, "--out", str(runs), "--threads", "1"]
    worker = processes.Process(target=_cli_worker, args=(argv, str(log)))
    worker.start()
    return worker


def _two_workers_share_one_study(processes, tiny_dataset, tmp_path, storage: str) -> None:
    runs = tmp_path / "runs"
    create_sweep(_config(tiny_dataset, "shared", n_trials=4, train_config=BASE.replace(epochs=1)), storage)
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [_worker(processes, storage, "shared", runs, log) for log in logs]
    for worker in workers:
        worker.join(timeout=120)
    outputs = [log.read_text() for log in logs]
    assert [w.exitcode for w in workers] == [0, 0], outputs
    sweep = open_sweep("shared", storage)
    numbers = sorted(t.number for t in sweep.trials())
    assert [t.state for t in sweep.trials()] == ["complete"] * 4, outputs
    saved = sorted((run.sweep["trial"], run.run_id) for run in list_runs(runs))
    assert saved == [(n, f"shared-t{n:03d}") for n in numbers]  # every trial saved once, none lost, none twice
    ran = sorted(n for out in outputs for n in _ran(out))
    assert ran == numbers, outputs


def _ran(output: str) -> list[int]:
    """The trial numbers a worker printed as finished."""
    return [int(line.split()[1]) for line in output.splitlines() if line.startswith("trial ")]


def test_two_worker_processes_share_one_sqlite_study(processes, tiny_dataset, tmp_path):
    _two_workers_share_one_study(processes, tiny_dataset, tmp_path, default_storage(tmp_path))


def test_two_worker_processes_share_one_postgresql_study(processes, tiny_dataset, tmp_path,
                                                         postgres_url):  # noqa: F811
    _two_workers_share_one_study(processes, tiny_dataset, tmp_path, postgres_url)


def test_a_killed_worker_loses_only_its_trial_and_the_study_resumes(processes, tiny_dataset, tmp_path):
    storage, runs = default_storage(tmp_path), tmp_path / "runs"
    config = _config(tiny_dataset, "killed", n_trials=2, heartbeat_sec=1, train_config=BASE.replace(epochs=12))
    sweep = create_sweep(config, storage)
    worker = _worker(processes, storage, "killed", runs, tmp_path / "worker.log")
    deadline = time.monotonic() + 60
    while not any(t.state == "running" and t.curve for t in sweep.trials()):
        assert worker.is_alive() and time.monotonic() < deadline, "the worker never got a trial going"
        time.sleep(0.05)
    worker.kill()  # SIGKILL
    worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL
    lost = sweep.trials()[0]
    result = run_worker("killed", storage, dataset=tiny_dataset, runs_root=runs, poll_sec=0.2)
    trials = {t.number: t for t in sweep.trials()}
    assert result.reason == "budget" and trials[0].state == "failed" and "run again as trial" in trials[0].message
    complete = [t for t in trials.values() if t.state == "complete"]
    assert len(complete) == 2 and any(t.params == lost.params for t in complete)
    assert sorted(run.sweep["trial"] for run in list_runs(runs)) == sorted(t.number for t in complete)
