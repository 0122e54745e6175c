"""Processes that work beside the app's server: training jobs (:mod:`lib.engine.jobs`) and helper pools such as
the 2-D maps' (:mod:`lib.embedding`).

Every one is started with multiprocessing's "spawn" method (a fresh interpreter: no OpenMP or CUDA state copied
from the server) and is named ``audiowb-...``. Spawn re-runs the parent's main script in the child; under Streamlit
that is the page script last run (Streamlit installs each script run as ``__main__``), which must never run in a
helper: this module makes spawn skip it for processes with that name (their targets and arguments live in ``lib``).
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import multiprocessing.spawn
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import SpawnContext, SpawnProcess

__all__ = ["SPAWN", "PROCESS_PREFIX", "helper_pool", "when_orphaned"]

SPAWN = multiprocessing.get_context("spawn")
PROCESS_PREFIX = "audiowb-"  # the names of the app's own processes: "audiowb-train-3", "audiowb-maps-1"
HELPER_NICENESS = 10  # helper pools run this far below the server's priority (training jobs do not)
_numbers = itertools.count(1)


def _without_parent_main(get_preparation_data):
    """Wrap ``multiprocessing.spawn.get_preparation_data`` so that the app's processes (named
    :data:`PROCESS_PREFIX`...) do not run the parent's ``__main__`` again; other processes are prepared as before."""
    @functools.wraps(get_preparation_data)
    def prepare(name: str) -> dict:
        data = get_preparation_data(name)
        if name.startswith(PROCESS_PREFIX):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    prepare.skips_main_of_app_processes = True
    return prepare


if not getattr(multiprocessing.spawn.get_preparation_data, "skips_main_of_app_processes", False):
    multiprocessing.spawn.get_preparation_data = _without_parent_main(multiprocessing.spawn.get_preparation_data)


class _NamedSpawnContext(SpawnContext):
    """The spawn context, naming each process it makes ``audiowb-<name>-<n>`` (for a ``ProcessPoolExecutor``,
    which names its workers itself)."""

    def __init__(self, name: str) -> None:
        self._helper_name = name

    def Process(self, *args, **kwargs) -> SpawnProcess:  # noqa: N802 - multiprocessing's name
        process = SpawnProcess(*args, **kwargs)
        process.name = f"{PROCESS_PREFIX}{self._helper_name}-{next(_numbers)}"
        return process


def helper_pool(name: str, max_workers: int = 1, niceness: int = HELPER_NICENESS) -> ProcessPoolExecutor:
    """A pool of ``max_workers`` spawned helper processes named ``audiowb-<name>-<n>``, started on its first task.
    Each runs a top-level function of ``lib``, takes its arguments pickled, runs ``niceness`` steps below the
    server's priority (``os.nice``: work done ahead for a page takes the CPU time the pages and the browser leave),
    and exits when the server has gone (killed: nothing else would end it)."""
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=_NamedSpawnContext(name),
                               initializer=_prepare_helper, initargs=(niceness, os.getpid()))


def _prepare_helper(niceness: int, parent_pid: int) -> None:
    if niceness and hasattr(os, "nice"):
        os.nice(niceness)
    when_orphaned(parent_pid, lambda: os._exit(0))


def when_orphaned(parent_pid: int, action: Callable[[], object], poll_sec: float = 1.0) -> None:
    """Run ``action`` once, on a daemon thread, when this process's parent ``parent_pid`` has gone (the process
    was re-parented): a training process stops and saves its run, a helper exits."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_sec)
        action()

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()
