"""Background training jobs: a process per job, one running job per device, the rest waiting in line.

A UI submits a job and gets a :class:`TrainingJob` back at once; it then polls the job (``snapshot()``) for
the events so far and can ``stop()`` it at any time. Jobs live in a process-wide :class:`JobQueue`, so a page
that is left and opened again (or another browser session) finds them still running.

Each job trains in a process of its own, started with multiprocessing's "spawn" method (:mod:`lib.processes`: a
fresh interpreter, with no OpenMP or CUDA state copied from the server) and running a fixed number of torch threads
(:func:`lib.device.train_threads`, ``AUDIOWB_TRAIN_THREADS``), so that the pages and other programs on the machine
cannot starve it and it cannot starve them. The training process reopens the dataset from its source (built-in
set, folder, CSV) or receives it pickled (a real dataset's disk cache pickles as its folder); its events come back
through a pipe, and a thread of this process records them on the job. A training process that dies (killed, out
of memory) ends its job as "failed" and frees its device for the next job in line.

A sweep is a job too (:meth:`JobQueue.submit_sweep`): its process runs :func:`lib.sweep.run_worker`, one trial
after another, in the same line as training jobs, so a class sharing one machine shares it fairly. Its trials'
events come wrapped in :class:`TrialProgress` (a trial's end does not end the job); the sweep's own end is the
plain :class:`~lib.engine.train.DoneEvent` that ends any job.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import pickle
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch

from lib.data.sources import AudioDataset, DatasetError, load_source
from lib.device import keep_freed_memory, resolve_device, train_threads
from lib.dsp.features import FeatureConfig
from lib.processes import PROCESS_PREFIX, SPAWN, when_orphaned
from lib.settings import settings
from lib.engine.train import DoneEvent, EpochEvent, StartEvent, StepEvent, TrainConfig, iter_training

__all__ = ["TrainingJob", "SweepJob", "TrialProgress", "JobSnapshot", "JobQueue", "JOB_QUEUE", "focus_job",
           "WorkerEvent", "StopFlag"]

_ids = itertools.count(1)
_PROCESS_PREFIX = f"{PROCESS_PREFIX}train-"  # training processes' names: job 3 trains in "audiowb-train-3"
_POLL_SEC = 0.25  # how often the parent looks whether a silent training process is still alive
_EXIT_GRACE_SEC = 30.0  # a training process that sent its last event gets this long to exit before it is killed
RELOADABLE_KINDS = ("builtin", "folder", "csv")  # sources a training process reopens itself (others are pickled)


@dataclass
class WorkerEvent:
    """Sent first by a job's training process: which process it is and how it is set up.

    Attributes:
        pid: the training process's id.
        num_threads: its torch intra-op threads (``torch.get_num_threads()`` there).
        dataset_from: ``"source"`` (reopened from ``dataset.source``) or ``"pickle"`` (sent whole; a disk cache
            is sent as its folder).
    """

    pid: int
    num_threads: int
    dataset_from: str
    kind: str = "worker"


class StopFlag:
    """A stop request shared with a training process: one byte of shared memory, set once, read at every step.

    It takes no lock (unlike ``multiprocessing.Event``), so a training process killed at any moment can never
    leave a lock held that would make :meth:`set` hang the page that calls it.
    """

    def __init__(self) -> None:
        self._flag = SPAWN.RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._flag.value = True

    def is_set(self) -> bool:
        return bool(self._flag.value)


@dataclass
class JobSnapshot:
    """A consistent copy of a job's state for drawing (lists are copies, safe to keep)."""

    state: str  # "queued", "running", "finished", "stopped", "failed"
    position: int  # 0 running or ended, k >= 1: k-th in line for its device
    start: StartEvent | None
    steps: list[StepEvent]
    epochs: list[EpochEvent]
    done: DoneEvent | None

    @property
    def progress(self) -> float:
        """Fraction of steps done, in [0, 1]."""
        if self.done is not None:
            return 1.0
        if self.start is None or not self.steps:
            return 0.0
        return min(1.0, self.steps[-1].step / max(1, self.start.total_steps))

    @property
    def eta_sec(self) -> float | None:
        """Seconds left, from the mean step time so far."""
        if self.start is None or len(self.steps) < 2 or self.done is not None:
            return None
        last = self.steps[-1]
        return last.elapsed_sec / last.step * (self.start.total_steps - last.step)

    @property
    def samples_per_sec(self) -> float | None:
        """Throughput over the last few steps."""
        recent = self.steps[-20:]
        if len(recent) < 2:
            return None
        elapsed = recent[-1].elapsed_sec - recent[0].elapsed_sec
        return sum(s.batch_size for s in recent[1:]) / elapsed if elapsed > 0 else None


@dataclass
class TrainingJob:
    """One training run in the background. Create it through :meth:`JobQueue.submit`.

    ``worker`` is the training process's :class:`WorkerEvent` once it has started (None before).
    """

    dataset: AudioDataset
    feature_config: FeatureConfig
    train_config: TrainConfig
    runs_root: Path
    run_id: str | None = None
    device_key: str = "cpu"
    job_id: int = field(default_factory=lambda: next(_ids))
    created: float = field(default_factory=time.time)
    state: str = "queued"
    worker: WorkerEvent | None = None
    _stop: StopFlag = field(default_factory=StopFlag, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _start: StartEvent | None = field(default=None, repr=False)
    _steps: list = field(default_factory=list, repr=False)
    _epochs: list = field(default_factory=list, repr=False)
    _done: DoneEvent | None = field(default=None, repr=False)
    _queue: "JobQueue | None" = field(default=None, repr=False)

    def stop(self) -> None:
        """Ask the job to end: a waiting job is cancelled, a running one stops at its next step and saves."""
        self._stop.set()

    @property
    def ended(self) -> bool:
        return self.state in ("finished", "stopped", "failed")

    def _record(self, event) -> None:
        with self._lock:
            if isinstance(event, WorkerEvent):
                self.worker = event
            elif isinstance(event, StartEvent):
                self._start = event
            elif isinstance(event, StepEvent):
                self._steps.append(event)
            elif isinstance(event, EpochEvent):
                self._epochs.append(event)
            elif isinstance(event, DoneEvent):
                self._done = event
                self.state = event.status

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            position = self._queue.position(self) if self._queue and self.state == "queued" else 0
            return JobSnapshot(self.state, position, self._start, list(self._steps), list(self._epochs), self._done)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (for scripts and tests); True if it did within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ended:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _process_args(self, events: Connection) -> tuple:
        """The job process's target and its arguments (``events``: the writing end of the pipe)."""
        return _train_in_process, (_DatasetParcel.of(self.dataset), self.feature_config, self.train_config,
                                   self.runs_root, self.run_id, train_threads(), events, self._stop, os.getpid())


@dataclass
class TrialProgress:
    """An event of one of a sweep's trials, as a sweep's process sends it: ``event`` is the trial's
    :class:`~lib.engine.train.StartEvent`, ``StepEvent``, ``EpochEvent`` or ``DoneEvent``, or a
    :class:`lib.sweep.TrialEvent` (a trial started or ended)."""

    event: object
    kind: str = "trial"


@dataclass
class SweepJob(TrainingJob):
    """A sweep's worker in the background: claims the sweep's trials one after another until its budget is spent
    or it is stopped. Create it through :meth:`JobQueue.submit_sweep`.

    Its :meth:`snapshot` follows the running trial (``start``, ``steps``, ``epochs`` are that trial's; ``done`` is
    the sweep's end); :meth:`trial_events` lists the :class:`lib.sweep.TrialEvent` of every trial started and ended.
    The trials themselves (curves, values, states) are in the sweep's storage: ``lib.sweep.open_sweep``.
    """

    sweep_name: str = ""
    storage: str = ""
    _trials: list = field(default_factory=list, repr=False)

    def _record(self, event) -> None:
        if not isinstance(event, TrialProgress):  # the WorkerEvent, or the DoneEvent that ends the sweep
            super()._record(event)
            return
        trial_event = event.event
        with self._lock:
            if isinstance(trial_event, StartEvent):  # a new trial: the live view follows it from its start
                self._start, self._steps, self._epochs = trial_event, [], []
            elif isinstance(trial_event, StepEvent):
                self._steps.append(trial_event)
            elif isinstance(trial_event, EpochEvent):
                self._epochs.append(trial_event)
            elif not isinstance(trial_event, DoneEvent):  # a trial's end never ends the sweep
                self._trials.append(trial_event)

    def trial_events(self) -> list:
        """The :class:`lib.sweep.TrialEvent` received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._trials)

    def _process_args(self, events: Connection) -> tuple:
        parcel = None if self.dataset is None else _DatasetParcel.of(self.dataset)
        return _sweep_in_process, (parcel, self.sweep_name, self.storage, self.runs_root, train_threads(), events,
                                   self._stop, os.getpid())


# ------------------------------------------------------------------------------------- the training process
@dataclass(frozen=True)
class _DatasetParcel:
    """How a training process gets its dataset: reopened from ``source``, or unpickled from ``pickled``.

    A reopened set is checked against the clips the app had (``paths``, ``labels``, ``class_names``): files added
    to a folder since are left out, files gone or classes changed fail the job with a message.
    """

    source: dict | None
    pickled: bytes | None
    class_names: list[str]
    paths: list[str]
    labels: np.ndarray

    @classmethod
    def of(cls, dataset) -> "_DatasetParcel":
        source = dataset.source if isinstance(dataset, AudioDataset) else None
        reloadable = (isinstance(source, dict) and source.get("kind") in RELOADABLE_KINDS
                      and (source["kind"] != "builtin" or bool(source.get("cache_dir"))))
        return cls(source if reloadable else None, None if reloadable else pickle.dumps(dataset, protocol=5),
                   list(dataset.class_names), list(dataset.paths), np.asarray(dataset.labels))

    @property
    def dataset_from(self) -> str:
        return "pickle" if self.source is None else "source"

    def open(self):
        """The dataset, as the app had it. Raises :class:`lib.data.sources.DatasetError` when its files changed."""
        if self.source is None:
            return pickle.loads(self.pickled)
        dataset = load_source(self.source, builtin_cache=self.source.get("cache_dir"))
        if dataset.paths != self.paths:  # files added since the app opened it, or the app trains on a subset
            row = {path: i for i, path in enumerate(dataset.paths)}
            gone = sum(path not in row for path in self.paths)
            if gone:
                raise DatasetError(f"{gone} of the {len(self.paths)} clips of {dataset.name!r} are gone from disk "
                                   "since the app opened it: open the dataset again and start again")
            dataset = dataset.subset(np.array([row[path] for path in self.paths], dtype=np.int64))
        if list(dataset.class_names) != self.class_names or not np.array_equal(dataset.labels, self.labels):
            raise DatasetError(f"the classes or labels of {dataset.name!r} changed on disk since the app opened it: "
                               "open the dataset again and start again")
        return dataset


def _failure_message(error: BaseException, what: str = "training") -> str:
    if isinstance(error, DatasetError):
        return f"could not open the dataset: {error}"
    return (f"{what} failed: {error}. Details: "
            f"{traceback.format_exc(limit=3).splitlines()[-1]}")


def _prepare_process(num_threads: int, stop: StopFlag, parent_pid: int, events: Connection,
                     dataset_from: str) -> None:
    """First thing in a job's process: its thread budget, memory kept for reuse
    (:func:`lib.device.keep_freed_memory`), the orphan watch, and the :class:`WorkerEvent`."""
    torch.set_num_threads(num_threads)
    keep_freed_memory()
    torch.set_num_interop_threads(1)  # allowed here: nothing has run in parallel in this fresh process yet
    when_orphaned(parent_pid, stop.set)  # the app has gone: stop training (and so end, saving the run)
    events.send(WorkerEvent(os.getpid(), torch.get_num_threads(), dataset_from))


def _train_in_process(parcel: _DatasetParcel, feature_config: FeatureConfig, train_config: TrainConfig,
                      runs_root: Path, run_id: str | None, num_threads: int, events: Connection, stop: StopFlag,
                      parent_pid: int) -> None:
    """A job's training process: set the thread budget, open the dataset, train, send every event to ``events``
    (a :class:`WorkerEvent` first, a :class:`~lib.engine.train.DoneEvent` last)."""
    try:
        _prepare_process(num_threads, stop, parent_pid, events, parcel.dataset_from)
        dataset = parcel.open()
        for event in iter_training(dataset, feature_config, train_config, runs_root=runs_root, run_id=run_id,
                                   stop=stop):
            events.send(event)
    except Exception as error:  # noqa: BLE001 - a job must end with a message, never die silently
        events.send(DoneEvent("failed", _failure_message(error)))
    finally:
        events.close()


def _sweep_in_process(parcel: _DatasetParcel | None, name: str, storage: str, runs_root: Path, num_threads: int,
                      events: Connection, stop: StopFlag, parent_pid: int) -> None:
    """A sweep job's process: run :func:`lib.sweep.run_worker` on sweep ``name`` until its budget is spent or
    ``stop`` is set, sending each trial's events wrapped in :class:`TrialProgress`, then a
    :class:`~lib.engine.train.DoneEvent` for the sweep. Without a parcel the worker opens the sweep's own source."""
    try:
        _prepare_process(num_threads, stop, parent_pid, events, "source" if parcel is None else parcel.dataset_from)
        from lib.sweep import run_worker  # Optuna is imported only where sweeps run

        dataset = None if parcel is None else parcel.open()
        result = run_worker(name, storage, dataset=dataset, runs_root=runs_root, stop=stop,
                            on_event=lambda event: events.send(TrialProgress(event)))
        summary = ", ".join(f"{n} {state}" for state, n in result.counts.items() if n) or "no trial"
        events.send(DoneEvent("stopped" if result.reason == "stopped" else "finished",
                              f"sweep {name!r} ended ({result.reason}): {summary}"))
    except Exception as error:  # noqa: BLE001 - a job must end with a message, never die silently
        events.send(DoneEvent("failed", _failure_message(error, f"sweep {name!r}")))
    finally:
        events.close()


def _death_message(exitcode: int | None) -> str:
    """Why a training process ended without a result, in words."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return ("the training process was killed (SIGKILL); unless someone killed it, the machine ran out of "
                    "memory: lower the batch size, or choose a smaller model or dataset")
        return f"the training process was ended by {name} before it finished"
    return f"the training process exited (code {exitcode}) before it finished"


def focus_job(jobs: list[TrainingJob]) -> TrainingJob | None:
    """The job to show of ``jobs`` (oldest first): the running one, else the next in line, else the latest that
    saved a run, else the latest (None without jobs)."""
    saved = [j for j in jobs if j.ended and j.snapshot().done.run_id]
    return (next((j for j in jobs if j.state == "running"), None) or next((j for j in jobs if not j.ended), None)
            or (saved[-1] if saved else None) or (jobs[-1] if jobs else None))


class JobQueue:
    """Runs submitted jobs one at a time per device, first come first served, each in its own process."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._waiting: dict[str, deque[TrainingJob]] = {}
        self._running: dict[str, TrainingJob | None] = {}
        self.jobs: list[TrainingJob] = []

    def submit(self, dataset: AudioDataset, feature_config: FeatureConfig, train_config: TrainConfig,
               runs_root: str | Path | None = None, run_id: str | None = None) -> TrainingJob:
        """Queue a training job and return it at once (it starts when its device is free).

        Raises:
            ValueError: the requested device is not available (the message lists what is).
        """
        device_key = str(resolve_device(train_config.device))
        job = TrainingJob(dataset, feature_config, train_config, Path(runs_root or settings().runs_dir), run_id,
                          device_key)
        return self._enqueue(job)

    def submit_sweep(self, dataset: AudioDataset | None, config, storage: str,
                     runs_root: str | Path | None = None) -> SweepJob:
        """Create (or resume) a sweep and queue a worker for it; returns the job at once. The worker waits in the
        same line as training jobs (its device is the base settings' ``config.train_config.device``) and then runs
        trials until the sweep's budget is spent or the job is stopped; each trial is saved under ``runs_root``.

        Args:
            dataset: The dataset the app has open (sent to the worker as a training job's is), or None to let the
                worker open ``config.source``.
            config: The sweep's :class:`lib.sweep.SweepConfig`.
            storage: Its Optuna storage URL (:func:`lib.sweep.default_storage`).

        Raises:
            ValueError: a bad sweep name, the name taken by a sweep with other settings, a storage that cannot be
                opened, or a device that is not available (the message says which).
        """
        from lib.sweep import create_sweep  # Optuna is imported only where sweeps are used

        device_key = str(resolve_device(config.train_config.device))
        create_sweep(config, storage)
        job = SweepJob(dataset, config.feature_config, config.train_config, Path(runs_root or settings().runs_dir),
                       device_key=device_key, sweep_name=config.name, storage=storage)
        return self._enqueue(job)

    def _enqueue(self, job: TrainingJob) -> TrainingJob:
        """Put ``job`` in line for its device and start the thread that runs it when its turn comes."""
        device_key = job.device_key
        job._queue = self
        with self._condition:
            self._waiting.setdefault(device_key, deque()).append(job)
            self.jobs.append(job)
        threading.Thread(target=self._run, args=(job,), name=f"train-job-{job.job_id}", daemon=True).start()
        return job

    def position(self, job: TrainingJob) -> int:
        """0 when running or ended; k >= 1 when k-th in line (behind the running job) for its device."""
        with self._condition:
            line = self._waiting.get(job.device_key, deque())
            return line.index(job) + 1 if job in line else 0

    def active(self) -> list[TrainingJob]:
        """Jobs not yet ended, oldest first."""
        return [job for job in self.jobs if not job.ended]

    def find(self, job_id: str | None) -> TrainingJob | None:
        """The job called ``job_id`` (None when there is none: the server restarted, or no id)."""
        return next((job for job in self.jobs if job.job_id == job_id), None)

    def will_save(self, run_id: str) -> bool:
        """Whether a job that is waiting or running will save a run called ``run_id``."""
        return any(job.run_id == run_id and not job.ended for job in self.jobs)

    def _run(self, job: TrainingJob) -> None:
        key = job.device_key
        with self._condition:
            while self._running.get(key) is not None or self._waiting[key][0] is not job:
                if job._stop.is_set():  # cancelled while waiting
                    self._waiting[key].remove(job)
                    job._record(DoneEvent("stopped", "cancelled before it started"))
                    self._condition.notify_all()
                    return
                self._condition.wait(timeout=0.2)
            self._waiting[key].popleft()
            self._running[key] = job
            job.state = "running"
        try:
            self._train_in_child(job)
        except Exception as error:  # noqa: BLE001 - a job must end with a message, never die silently
            job._record(DoneEvent("failed", f"the training process could not be started: {error}"))
        finally:
            if not job.ended:
                job._record(DoneEvent("failed", "training ended without a result"))
            with self._condition:
                self._running[key] = None
                self._condition.notify_all()

    @staticmethod
    def _train_in_child(job: TrainingJob) -> None:
        """Start the job's process, record its events until the last one, then wait for it to exit."""
        reader, writer = SPAWN.Pipe(duplex=False)
        try:
            target, args = job._process_args(writer)
        except BaseException:  # e.g. a dataset that cannot be pickled: the job fails with the message
            reader.close()
            writer.close()
            raise
        process = SPAWN.Process(target=target, name=f"{_PROCESS_PREFIX}{job.job_id}", daemon=True, args=args)
        try:
            process.start()
            writer.close()  # the child holds the only writing end now: its death reads as end-of-file here
            JobQueue._follow(job, process, reader)
        finally:
            writer.close()
            reader.close()
            if process.pid is not None:  # started: give it time to exit, then make sure it has
                process.join(_EXIT_GRACE_SEC)
                if process.is_alive():
                    process.kill()
                    process.join()
                process.close()

    @staticmethod
    def _follow(job: TrainingJob, process, reader: Connection) -> None:
        """Record the training process's events on ``job`` until its DoneEvent, or end the job as "failed" when
        the process dies without one (killed, out of memory)."""
        while not job.ended:
            if not reader.poll(_POLL_SEC):
                if process.is_alive():
                    continue
                if not reader.poll(0):
                    job._record(DoneEvent("failed", _death_message(process.exitcode)))
                    return
            try:
                event = reader.recv()
            except (EOFError, OSError, pickle.UnpicklingError):  # it died, maybe in the middle of an event
                process.join(5.0)
                job._record(DoneEvent("failed", _death_message(process.exitcode)))
                return
            job._record(event)


JOB_QUEUE = JobQueue()
