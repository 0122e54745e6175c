"""Background training jobs: a thread per job, one running job per device, the rest waiting in line.

A UI submits a job and gets a :class:`TrainingJob` back at once; it then polls the job (``snapshot()``) for
the events so far and can ``stop()`` it at any time. Jobs live in a process-wide :class:`JobQueue`, so a page
that is left and opened again (or another browser session) finds them still running.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from lib.data import AudioDataset
from lib.device import resolve_device
from lib.features import FeatureConfig
from lib.train import DoneEvent, EpochEvent, StartEvent, StepEvent, TrainConfig, iter_training

__all__ = ["TrainingJob", "JobSnapshot", "JobQueue", "JOB_QUEUE"]

_ids = itertools.count(1)


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
    """One training run in the background. Create it through :meth:`JobQueue.submit`."""

    dataset: AudioDataset
    feature_config: FeatureConfig
    train_config: TrainConfig
    runs_root: Path
    run_id: str | None = None
    device_key: str = "cpu"
    job_id: int = field(default_factory=lambda: next(_ids))
    created: float = field(default_factory=time.time)
    state: str = "queued"
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
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
            if isinstance(event, StartEvent):
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


class JobQueue:
    """Runs submitted jobs one at a time per device, first come first served."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._waiting: dict[str, deque[TrainingJob]] = {}
        self._running: dict[str, TrainingJob | None] = {}
        self.jobs: list[TrainingJob] = []

    def submit(self, dataset: AudioDataset, feature_config: FeatureConfig, train_config: TrainConfig,
               runs_root: str | Path = "models", run_id: str | None = None) -> TrainingJob:
        """Queue a training job and return it at once (it starts when its device is free).

        Raises:
            ValueError: the requested device is not available (the message lists what is).
        """
        device_key = str(resolve_device(train_config.device))
        job = TrainingJob(dataset, feature_config, train_config, Path(runs_root), run_id, device_key)
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
            for event in iter_training(job.dataset, job.feature_config, job.train_config, runs_root=job.runs_root,
                                       run_id=job.run_id, stop=job._stop):
                job._record(event)
        except Exception as error:  # noqa: BLE001 - a job must end with a message, never die silently
            job._record(DoneEvent("failed", f"training failed: {error}. Details: "
                                            f"{traceback.format_exc(limit=3).splitlines()[-1]}"))
        finally:
            if not job.ended:
                job._record(DoneEvent("failed", "training ended without a result"))
            with self._condition:
                self._running[key] = None
                self._condition.notify_all()


JOB_QUEUE = JobQueue()
