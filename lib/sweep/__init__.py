"""Hyperparameter sweeps on Optuna: a search space over the run's settings, trials that are saved runs, workers
that share one study through a database (``python -m lib.sweep --help``)."""

from lib.sweep.space import GRID_POINTS, Param, SearchSpace, searchable_params
from lib.sweep.study import (OBJECTIVES, PRUNERS, SAMPLERS, Sweep, SweepConfig, TrialEvent, TrialInfo, WorkerResult,
                             create_sweep, default_storage, list_sweeps, open_sweep, quiet_optuna, run_worker)

__all__ = ["Param", "SearchSpace", "searchable_params", "GRID_POINTS", "OBJECTIVES", "SAMPLERS", "PRUNERS",
           "SweepConfig", "Sweep", "TrialInfo", "TrialEvent", "WorkerResult", "create_sweep", "open_sweep",
           "list_sweeps", "default_storage", "run_worker", "quiet_optuna"]
