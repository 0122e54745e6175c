"""Background jobs: each trains in a process of its own; start, poll, stop, a killed process, one job per device.

Every job here spawns a training process (a fresh interpreter: seconds to start), so the tests share jobs:
five training processes in all.
"""

import dataclasses
import os
import pickle
import signal
import sys
import time
import types

import numpy as np
import pytest

from lib.data.sources import DatasetError
from lib.device import TRAIN_THREADS_ENV, page_threads, train_threads, usable_cores
from lib.dsp.features import FeatureConfig
from lib.engine.jobs import JobQueue, _DatasetParcel, focus_job
from lib.engine.runs import load_run
from lib.engine.train import TrainConfig

CONFIG = TrainConfig(model="tutorial_cnn", epochs=30, batch_size=8, device="cpu")


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def test_second_job_waits_in_line_and_stop_saves(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv(TRAIN_THREADS_ENV, "3")  # not the default on any machine with fewer than 4 cores
    in_memory = dataclasses.replace(tiny_dataset, source={"kind": "recordings made in this session"})
    queue = JobQueue()
    first = queue.submit(tiny_dataset, FeatureConfig(), CONFIG, runs_root=tmp_path, run_id="first")
    second = queue.submit(in_memory, FeatureConfig(), CONFIG.replace(epochs=1), runs_root=tmp_path, run_id="second")
    _wait_for(lambda: len(first.snapshot().steps) >= 2, 120, "the first job's second step")
    # Events stream in from the training process while it runs.
    running = first.snapshot()
    assert running.state == "running" and running.done is None and running.start is not None
    _wait_for(lambda: len(first.snapshot().steps) > len(running.steps), 30, "a later step")
    assert first.worker.pid != os.getpid() and first.worker.dataset_from == "source"
    # The thread budget is applied in the training process.
    assert first.worker.num_threads == 3 and running.start.device == "CPU (3 threads)"
    # One job per device: the second waits in line.
    assert second.snapshot().state == "queued" and second.worker is None
    assert second.snapshot().position == 1 and queue.active() == [first, second]
    first.stop()
    assert first.wait(60) and second.wait(120)
    assert first.state == "stopped" and second.state == "finished", second.snapshot().done
    snap = first.snapshot()
    assert 0 < snap.progress <= 1 and snap.done.run_path
    assert load_run(snap.done.run_path).record.status == "stopped"
    # A dataset with no source to reopen travels pickled, and trains all the same.
    assert second.worker.dataset_from == "pickle" and second.worker.pid != first.worker.pid
    assert load_run(second.snapshot().done.run_path).record.status == "finished"


def test_cancel_a_waiting_job(tiny_dataset, tmp_path):
    queue = JobQueue()
    first = queue.submit(tiny_dataset, FeatureConfig(), CONFIG, runs_root=tmp_path)
    waiting = queue.submit(tiny_dataset, FeatureConfig(), CONFIG, runs_root=tmp_path, run_id="named")
    assert queue.find(waiting.job_id) is waiting and queue.find("no such job") is None
    assert queue.will_save("named") and not queue.will_save("other")
    assert focus_job([first, waiting]) is first  # running, or the next in line
    waiting.stop()
    assert waiting.wait(10) and waiting.state == "stopped" and "cancelled" in waiting.snapshot().done.message
    assert waiting.worker is None  # it never got a process
    assert not queue.will_save("named")
    first.stop()
    assert first.wait(60)


def test_killed_training_process_fails_the_job_and_the_next_one_runs(tiny_dataset, tmp_path, monkeypatch):
    # Under Streamlit, __main__ is the page script last run; a training process must not run it again.
    marker = tmp_path / "page-script-ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n"
                      "raise SystemExit('a page script ran in a training process')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)

    queue = JobQueue()
    doomed = queue.submit(tiny_dataset, FeatureConfig(), CONFIG.replace(epochs=500), runs_root=tmp_path)
    diverging = queue.submit(tiny_dataset, FeatureConfig(),
                             CONFIG.replace(optimizer="sgd", learning_rate=1e8, scheduler="none"), runs_root=tmp_path)
    _wait_for(lambda: doomed.snapshot().steps or doomed.ended, 120, "the first step")
    assert doomed.state == "running", doomed.snapshot().done
    os.kill(doomed.worker.pid, signal.SIGKILL)
    assert doomed.wait(30), "a killed training process left its job hanging"
    assert doomed.state == "failed" and "killed" in doomed.snapshot().done.message
    # The device is free again: the next job runs, and its own failure is reported, not raised.
    assert diverging.wait(120) and diverging.state == "failed"
    assert "learning rate" in diverging.snapshot().done.message
    assert not marker.exists()
    assert not list(tmp_path.glob("*/model.pt"))  # neither job saved a run


def test_thread_budget_leaves_the_pages_a_core(monkeypatch):
    monkeypatch.delenv(TRAIN_THREADS_ENV, raising=False)
    cores = usable_cores()
    assert 1 <= train_threads() <= max(1, cores - 1) and page_threads() >= 1
    assert train_threads() + page_threads() == max(cores, 2)  # never more threads than cores (one core: 1 + 1)
    monkeypatch.setenv(TRAIN_THREADS_ENV, "5")
    assert train_threads() == 5 and page_threads() == max(1, cores - 5)
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(TRAIN_THREADS_ENV, bad)
        with pytest.raises(ValueError, match=TRAIN_THREADS_ENV):
            train_threads()


def test_reopened_dataset_is_the_one_the_app_had(tiny_dataset):
    parcel = _DatasetParcel.of(tiny_dataset)
    assert parcel.dataset_from == "source" and parcel.pickled is None
    reopened = parcel.open()
    assert reopened.paths == tiny_dataset.paths and np.array_equal(reopened.labels, tiny_dataset.labels)
    # A subset (or a folder that gained files since) reopens as the clips the app had, in its order.
    rows = np.array([5, 0, 17, 3])
    subset = _DatasetParcel.of(tiny_dataset.subset(rows)).open()
    assert subset.paths == [tiny_dataset.paths[i] for i in rows]
    assert np.array_equal(subset.labels, tiny_dataset.labels[rows])
    assert (subset.waveforms[0] == tiny_dataset.waveforms[5]).all()
    # Clips gone from disk: a clear error, not a different dataset.
    gone = dataclasses.replace(tiny_dataset, paths=[*tiny_dataset.paths[:-1], "/nowhere/clip.wav"])
    with pytest.raises(DatasetError, match="1 of the 72 clips"):
        _DatasetParcel.of(gone).open()
    # No source to reopen: pickled whole.
    in_memory = _DatasetParcel.of(dataclasses.replace(tiny_dataset, source={"kind": "recordings"}))
    assert in_memory.dataset_from == "pickle" and pickle.loads(in_memory.pickled).paths == tiny_dataset.paths


def test_a_sweep_job_follows_its_trials_and_only_the_sweeps_end_ends_it(tiny_dataset):
    """A trial's DoneEvent (wrapped in TrialProgress) ends the trial, not the job; the live view follows the running
    trial from its StartEvent; the plain DoneEvent that ends any job ends the sweep. No process is started."""
    from lib.engine.jobs import SweepJob, TrialProgress
    from lib.sweep import TrialEvent
    from lib.engine.train import DoneEvent, EpochEvent, StartEvent, StepEvent

    job = SweepJob(tiny_dataset, FeatureConfig(), CONFIG, runs_root=".", sweep_name="s", storage="sqlite://")
    job.state = "running"
    for number in range(2):
        job._record(TrialProgress(TrialEvent(number, "running", {"train.learning_rate": 0.01}, {}, f"s-t00{number}")))
        job._record(TrialProgress(StartEvent(50, 10, 12, 1000, "cpu", 4, True)))
        job._record(TrialProgress(StepEvent(1, 1, 4, 1.0, 0.01, 100.0, 8, 0.1)))
        job._record(TrialProgress(EpochEvent(1, 2, 1.0, 0.5, 1.0, 0.5, 0.01, 0.2, 0.2)))
        job._record(TrialProgress(DoneEvent("finished", "done", run_id=f"s-t00{number}")))
        job._record(TrialProgress(TrialEvent(number, "complete", {}, {"val_accuracy": 0.5}, f"s-t00{number}")))
        snap = job.snapshot()
        assert not job.ended and snap.done is None and len(snap.steps) == 1 and len(snap.epochs) == 1
    assert [(e.number, e.state) for e in job.trial_events()] == [(0, "running"), (0, "complete"), (1, "running"),
                                                                  (1, "complete")]
    job._record(DoneEvent("finished", "sweep 's' ended (budget): 2 complete"))
    assert job.ended and job.state == "finished" and job.snapshot().done.message.startswith("sweep 's'")
