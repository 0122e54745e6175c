"""Sweeps: Optuna studies whose trials are normal saved runs, shared by any number of workers through a database.

A sweep is an Optuna study in an :class:`optuna.storages.RDBStorage` (an SQLite file under the runs folder by
default, any SQLAlchemy URL such as PostgreSQL when workers run on several machines). Its :class:`SweepConfig` is
kept in the study (user attribute ``"config"``), so a worker needs only the storage URL and the name.

The budget (``n_trials``) is exact however many workers start at once: Optuna numbers trials atomically, and a
trial whose number finds the budget already taken (by trials numbered before it) is told FAIL with the user
attribute ``"surplus"`` before it trains; :meth:`Sweep.trials` hides it. A worker that dies loses only its running
trial: workers send heartbeats, a trial without one for ``3 * heartbeat_sec`` is failed by the next worker that
looks, and its parameters are queued again as a new trial (user attribute ``"retry_of"``), which takes its place
in the budget. A worker waits while other workers' trials run, so the last of them is never lost either.

Trial user attributes: ``run_id``, ``curve`` (validation accuracy per epoch, live), ``message``, ``surplus``,
``retry_of``, ``n_parameters``, ``latency_ms``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from lib.dsp.features import FeatureConfig
from lib.settings import settings
from lib.sweep.space import SearchSpace
from lib.engine.train_config import TrainConfig

__all__ = ["OBJECTIVES", "SAMPLERS", "PRUNERS", "SweepConfig", "Sweep", "TrialInfo", "TrialEvent", "WorkerResult",
           "default_storage", "create_sweep", "open_sweep", "list_sweeps", "run_worker", "quiet_optuna"]

#: Objective -> direction. ``val_accuracy`` (the validation accuracy of the run's best epoch) comes first.
OBJECTIVES: dict[str, str] = {"val_accuracy": "maximize", "latency_ms": "minimize", "n_parameters": "minimize"}
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")
_STATES = {"RUNNING": "running", "COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "WAITING": "waiting"}
_log = logging.getLogger("lib.sweep")


def quiet_optuna() -> None:
    """Optuna's own log lines and experimental-feature warnings off (a sweep reports one line per trial itself)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class SweepConfig:
    """One sweep, read top to bottom.

    Attributes:
        name: the study's name, like a run id (its trials are saved as runs ``<name>-t000``, ...).
        space: what varies.
        source: the dataset, as :attr:`lib.data.sources.AudioDataset.source` (``{"kind": "builtin", ...}``, ...).
        feature_config: the features every trial starts from.
        train_config: the training settings every trial starts from.
        sampler: ``"tpe"``, ``"random"`` or ``"grid"`` (every combination of the space's grid values, in order).
        pruner: ``"median"``, ``"halving"`` (successive halving) or ``"none"``; used with one objective only.
        objectives: from :data:`OBJECTIVES`, starting with ``"val_accuracy"``.
        n_trials: trials in all (complete, pruned or failed); None: as many as ``minutes`` allow (a grid: all).
        minutes: no trial starts once this many minutes have passed since the sweep's first trial started.
        seed: seeds the sampler (each trial's draw from the seed and the trial number).
        heartbeat_sec: how often a worker says its trial is alive; a trial silent for 3x this is lost and re-run.
    """

    name: str
    space: SearchSpace
    source: dict
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    train_config: TrainConfig = field(default_factory=TrainConfig)
    sampler: str = "tpe"
    pruner: str = "median"
    objectives: tuple[str, ...] = ("val_accuracy",)
    n_trials: int | None = 20
    minutes: float | None = None
    seed: int = 0
    heartbeat_sec: int = 20

    def __post_init__(self) -> None:
        from lib.engine.runs import is_valid_run_id

        object.__setattr__(self, "objectives", tuple(self.objectives))
        for name, cls in (("space", SearchSpace), ("feature_config", FeatureConfig), ("train_config", TrainConfig)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, cls.from_dict(value))
        if not is_valid_run_id(self.name) or len(self.name) > 100:
            raise ValueError(f"sweep name {self.name!r}: use letters, digits, '-', '_' and '.' (like a run name)")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner must be one of {PRUNERS}, got {self.pruner!r}")
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives or self.objectives[0] != "val_accuracy" \
                or len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives must start with 'val_accuracy' and be among {tuple(OBJECTIVES)}, got "
                             f"{self.objectives}")
        if self.n_trials is None and self.minutes is None and self.sampler != "grid":
            raise ValueError("give a budget: a number of trials, minutes, or both")
        if self.n_trials is not None and self.n_trials < 1:
            raise ValueError(f"n_trials must be at least 1, got {self.n_trials}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.heartbeat_sec < 1:
            raise ValueError(f"heartbeat_sec must be at least 1, got {self.heartbeat_sec}")
        self.space.apply({}, self.feature_config, self.train_config)

    @property
    def directions(self) -> list[str]:
        """Optuna's direction of each objective."""
        return [OBJECTIVES[o] for o in self.objectives]

    @property
    def prunes(self) -> bool:
        """Trials are pruned (a pruner is chosen and there is one objective)."""
        return self.pruner != "none" and len(self.objectives) == 1

    @property
    def budget(self) -> int | None:
        """Trials in all: ``n_trials``, at most the grid's size for a grid search; None: only minutes count."""
        if self.sampler == "grid":
            return min(len(self.space.grid()), self.n_trials or len(self.space.grid()))
        return self.n_trials

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return {"name": self.name, "space": self.space.to_dict(), "source": dict(self.source),
                "feature_config": self.feature_config.to_dict(), "train_config": self.train_config.to_dict(),
                "sampler": self.sampler, "pruner": self.pruner, "objectives": list(self.objectives),
                "n_trials": self.n_trials, "minutes": self.minutes, "seed": self.seed,
                "heartbeat_sec": self.heartbeat_sec}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepConfig:
        """The config :meth:`to_dict` wrote (ValueError on unknown keys or invalid values)."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"SweepConfig.from_dict: unknown keys {unknown}")
        return cls(**d)


@dataclass(frozen=True)
class TrialInfo:
    """One trial as the pages and the command line show it.

    Attributes:
        number: Optuna's trial number (its run is ``<sweep>-t<number:03d>``).
        state: ``"running"``, ``"complete"``, ``"pruned"`` or ``"failed"``.
        params: ``{parameter name: value}``.
        values: ``{objective: value}`` of a complete trial; a pruned one: ``val_accuracy`` of its last epoch.
        curve: validation accuracy per epoch so far.
        run_id: the saved run (None before the trial starts training).
        duration_sec: wall time (so far, while running).
        message: why it failed or was pruned, or the training's last message.
    """

    number: int
    state: str
    params: dict[str, Any]
    values: dict[str, float]
    curve: list[float]
    run_id: str | None
    duration_sec: float | None
    message: str | None


@dataclass
class TrialEvent:
    """Sent by :func:`run_worker` when a trial starts (``state="running"``) and when it ends."""

    number: int
    state: str
    params: dict[str, Any]
    values: dict[str, float]
    run_id: str | None
    message: str | None = None
    kind: str = "trial"


@dataclass
class WorkerResult:
    """What one :func:`run_worker` call did.

    Attributes:
        trials: the numbers of the trials this worker ran (surplus ones not included).
        reason: why it ended: ``"budget"`` (every trial taken and finished), ``"minutes"`` or ``"stopped"``.
        counts: the sweep's :meth:`Sweep.counts` at the end.
    """

    trials: list[int]
    reason: str
    counts: dict[str, int]


# --------------------------------------------------------------------------------------------- storage
def default_storage(runs_root: str | Path | None = None) -> str:
    """``"sqlite:///<runs folder>/sweeps.db"`` (the operator's runs folder unless ``runs_root`` is given)."""
    return f"sqlite:///{Path(runs_root or settings().runs_dir).resolve() / 'sweeps.db'}"


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: say it as given
        return url


def _storage(url: str, heartbeat_sec: int | None = None):
    """An :class:`optuna.storages.RDBStorage` on ``url`` (heartbeats on when ``heartbeat_sec`` is given).

    Raises:
        ValueError: the URL is not one SQLAlchemy knows, or the database cannot be reached.
    """
    import optuna

    quiet_optuna()
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}  # workers wait for each other's writes
    heartbeat = {} if heartbeat_sec is None else dict(
        heartbeat_interval=heartbeat_sec, grace_period=3 * heartbeat_sec, heartbeat_stale_trial_callback=_rerun_lost)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
    except Exception as error:  # noqa: BLE001 - SQLAlchemy's many errors (driver, network, URL) become one message
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot open the sweep storage {_shown(url)}: {reason}") from None


def _rerun_lost(study, trial) -> None:
    """Heartbeat-stale callback: queue the lost trial's parameters again (``retry_of`` its number)."""
    if trial.user_attrs.get("surplus"):
        return
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    _log.info("trial %d was lost (its worker stopped answering): its parameters are queued again", trial.number)


# --------------------------------------------------------------------------------------------- samplers, pruners
def _sampler(config: SweepConfig):
    """The Optuna sampler of ``config`` (a grid is queued as trials at creation; its sampler draws nothing)."""
    import optuna

    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=5)
    return optuna.samplers.RandomSampler(seed=config.seed)


def _pruner(config: SweepConfig):
    """The Optuna pruner of ``config`` (never prunes with several objectives)."""
    import optuna

    if not config.prunes:
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)


def _seed_draws(sampler, seed: int, number: int) -> None:
    """Seed the sampler's random draws from the sweep's seed and the trial number, so that workers starting at the
    same instant draw differently and one worker draws the same as last time."""
    for owner in (sampler, getattr(sampler, "_random_sampler", None)):
        rng = getattr(owner, "_rng", None)
        if rng is not None and hasattr(rng, "rng"):
            rng.rng.seed(int(np.random.SeedSequence([seed, number]).generate_state(1)[0]))


# --------------------------------------------------------------------------------------------- the sweep
class Sweep:
    """A sweep in its storage: the Optuna study and the config it was created with."""

    def __init__(self, name: str, storage: str, config: SweepConfig, study) -> None:
        self.name, self.storage, self.config, self.study = name, storage, config, study

    def _frozen(self) -> list:
        return self.study.get_trials(deepcopy=False)

    def trials(self) -> list[TrialInfo]:
        """Every trial that started, by number (surplus and queued ones hidden)."""
        now, frozen = datetime.now(), self._frozen()
        rerun = {t.user_attrs["retry_of"]: t.number for t in frozen if "retry_of" in t.user_attrs}
        infos = []
        for t in frozen:
            if t.user_attrs.get("surplus") or t.state.name == "WAITING":
                continue
            curve = [float(v) for v in t.user_attrs.get("curve", [])]
            if t.state.name == "COMPLETE":
                values = dict(zip(self.config.objectives, map(float, t.values)))
            elif t.state.name == "PRUNED" and curve:
                values = {"val_accuracy": curve[-1]}
            else:
                values = {}
            end = t.datetime_complete or (now if t.state.name == "RUNNING" else None)
            infos.append(TrialInfo(t.number, _STATES[t.state.name], dict(t.params), values, curve,
                                   t.user_attrs.get("run_id"),
                                   (end - t.datetime_start).total_seconds() if end and t.datetime_start else None,
                                   _message(t, rerun)))
        return infos

    def best(self) -> list[TrialInfo]:
        """The best complete trial (one objective), or the Pareto front (several); [] before any completes."""
        numbers = {t.number for t in self.study.best_trials} if any(
            t.state.name == "COMPLETE" for t in self._frozen()) else set()
        return [t for t in self.trials() if t.number in numbers]

    def importance(self, objective: str = "val_accuracy") -> dict[str, float]:
        """``{parameter: importance}`` for ``objective`` (fANOVA over complete trials; {} when it cannot be
        computed yet: fewer than two complete trials, or nothing varied)."""
        import optuna

        index = self.config.objectives.index(objective)
        complete = [t for t in self._frozen() if t.state.name == "COMPLETE"]
        if len(complete) < 2:
            return {}
        sign = -1.0 if self.config.directions[index] == "maximize" else 1.0  # the evaluator ranks low values best
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return dict(optuna.importance.get_param_importances(self.study,
                                                                    target=lambda t: sign * t.values[index]))
        except (ValueError, RuntimeError, ZeroDivisionError):
            return {}

    def counts(self) -> dict[str, int]:
        """``{state: trials}`` over :meth:`trials`, with ``"waiting"``: queued trials not started yet."""
        counts = {"running": 0, "complete": 0, "pruned": 0, "failed": 0, "waiting": 0}
        for t in self.trials():
            counts[t.state] += 1
        counts["waiting"] = sum(t.state.name == "WAITING" for t in self._frozen())
        return counts


def _message(trial, rerun: dict[int, int]) -> str | None:
    """A trial's message; a lost one's says which trial runs it again."""
    if trial.state.name == "FAIL" and trial.number in rerun and "message" not in trial.user_attrs:
        return f"lost (its worker stopped answering); run again as trial {rerun[trial.number]}"
    return trial.user_attrs.get("message")


def _load(name: str, storage: str, heartbeat: bool = False) -> Sweep:
    """Open the study ``name`` with its config's sampler and pruner (ValueError when there is none)."""
    import optuna

    rdb = _storage(storage)
    found = {s.study_name: s for s in rdb.get_all_studies()}
    if name not in found or "config" not in found[name].user_attrs:
        known = ", ".join(sorted(found)) or "none yet"
        raise ValueError(f"no sweep named {name!r} in {_shown(storage)} (sweeps there: {known})")
    config = SweepConfig.from_dict(found[name].user_attrs["config"])
    if heartbeat:
        rdb = _storage(storage, config.heartbeat_sec)
    study = optuna.load_study(study_name=name, storage=rdb, sampler=_sampler(config), pruner=_pruner(config))
    return Sweep(name, storage, config, study)


def create_sweep(config: SweepConfig, storage: str) -> Sweep:
    """Create the sweep in ``storage`` (an SQLAlchemy URL), or resume it when one of that name has the same config.

    Raises:
        ValueError: a sweep of that name exists with another config, or the storage cannot be opened.
    """
    import optuna

    rdb = _storage(storage)
    study = optuna.create_study(study_name=config.name, storage=rdb, directions=config.directions,
                                load_if_exists=True)
    stored = study.user_attrs.get("config")
    if stored is not None and stored != json.loads(json.dumps(config.to_dict())):  # as stored: tuples are lists
        raise ValueError(f"a sweep named {config.name!r} already exists with other settings: choose another name, "
                         f"or resume it as it is (python -m lib.sweep run {config.name})")
    if stored is None:
        study.set_user_attr("config", config.to_dict())
        if config.sampler == "grid":  # every combination queued once, in order; workers take them one by one
            for params in config.space.grid()[:config.budget]:
                study.enqueue_trial(params, skip_if_exists=True)
    return _load(config.name, storage)


def open_sweep(name: str, storage: str) -> Sweep:
    """The sweep ``name`` in ``storage`` (ValueError when there is none, or the storage cannot be opened)."""
    return _load(name, storage)


def list_sweeps(storage: str) -> list[str]:
    """The names of the sweeps in ``storage``, sorted."""
    return sorted(s.study_name for s in _storage(storage).get_all_studies() if "config" in s.user_attrs)


# --------------------------------------------------------------------------------------------- the workers
class _Surplus(Exception):
    """The trial found the budget taken by trials numbered before it: it ends unrun (FAIL, ``surplus``)."""


class _TrialFailed(Exception):
    """The trial could not train (its ``message`` attribute says why)."""


def _taken(trials: list) -> list:
    """The trials that use up the budget: all but surplus ones and lost ones queued again (their re-run counts)."""
    rerun = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    return [t for t in trials if not t.user_attrs.get("surplus")
            and not (t.state.name == "FAIL" and t.number in rerun)]


def _suggest(trial, param) -> Any:
    """Draw ``param`` (a :class:`lib.sweep.space.Param`) for an Optuna trial."""
    if param.kind == "categorical":
        return trial.suggest_categorical(param.name, param.choices)
    if param.kind == "int":
        return trial.suggest_int(param.name, int(param.low), int(param.high), step=int(param.step or 1),
                                 log=param.log)
    return trial.suggest_float(param.name, float(param.low), float(param.high), step=param.step, log=param.log)


def _open_dataset(source: dict):
    """The dataset of a sweep's ``source`` (a built-in set from the cache it was made in, when that is here)."""
    from lib.data.sources import load_source

    cache = source.get("cache_dir")
    return load_source(source, builtin_cache=cache if cache and Path(cache).is_dir() else None)


@dataclass
class _Objective:
    """One trial: draw its parameters, train and save its run, report epochs to the pruner, return its values."""

    sweep: Sweep
    dataset: Any
    runs_root: Path
    stop: Any
    emit: Callable[[Any], None]
    number: int | None = None
    surplus: bool = False

    def __call__(self, trial) -> float | tuple[float, ...]:
        config, study = self.sweep.config, self.sweep.study
        self.number = trial.number
        if config.budget is not None:
            below = [t for t in _taken(study._storage.get_all_trials(study._study_id, deepcopy=False))
                     if t.number < trial.number]
            if len(below) >= config.budget:
                self.surplus = True
                trial.set_user_attr("surplus", True)
                raise _Surplus()
        _seed_draws(study.sampler, config.seed, trial.number)
        params = {p.name: _suggest(trial, p) for p in config.space.params}
        run_id = f"{config.name}-t{trial.number:03d}"
        trial.set_user_attr("run_id", run_id)
        try:
            feature_config, train_config = config.space.apply(params, config.feature_config, config.train_config)
        except ValueError as error:
            self._fail(trial, params, None, str(error))
        self.emit(TrialEvent(trial.number, "running", params, {}, run_id))
        done, pruned, n_parameters = self._train(trial, feature_config, train_config, run_id)
        if done.status == "failed":
            self._fail(trial, params, run_id, done.message)
        if done.status == "stopped" and not pruned:  # the worker was stopped: the trial runs again later
            study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            self._fail(trial, params, run_id, "stopped with its worker; queued to run again")
        if pruned:
            message = f"pruned after epoch {len(trial.user_attrs.get('curve', []))}"
            trial.set_user_attr("message", message)
            curve = trial.user_attrs.get("curve") or [0.0]
            self.emit(TrialEvent(trial.number, "pruned", params, {"val_accuracy": curve[-1]}, run_id, message))
            import optuna

            raise optuna.TrialPruned(message)
        return self._complete(trial, params, run_id, done, n_parameters)

    def _train(self, trial, feature_config: FeatureConfig, train_config: TrainConfig, run_id: str):
        """Train the trial's run; returns ``(DoneEvent, pruned, n_parameters)``."""
        from lib.engine.train import DoneEvent, EpochEvent, StartEvent, iter_training

        config, curve, pruned, n_parameters = self.sweep.config, [], False, None
        trial_stop = threading.Event()
        for event in iter_training(self.dataset, feature_config, train_config, runs_root=self.runs_root,
                                   run_id=run_id, overwrite=True, stop=trial_stop,
                                   sweep={"name": config.name, "trial": trial.number}):
            self.emit(event)
            if self.stop.is_set():
                trial_stop.set()
            if isinstance(event, StartEvent):
                n_parameters = event.n_parameters
            elif isinstance(event, EpochEvent):
                curve.append(float(event.val_accuracy))
                trial.set_user_attr("curve", curve)
                if config.prunes and not pruned:
                    trial.report(float(event.val_accuracy), event.epoch)
                    if trial.should_prune():
                        pruned = True
                        trial_stop.set()
            elif isinstance(event, DoneEvent):
                return event, pruned, n_parameters
        raise RuntimeError("the training ended without a DoneEvent")

    def _complete(self, trial, params: dict, run_id: str, done, n_parameters: int | None) -> float | tuple:
        """The objectives' values of a finished run (its message and measures kept as user attributes)."""
        metrics, curve = done.metrics or {}, trial.user_attrs.get("curve") or []
        accuracy = (metrics.get("validation") or {}).get("accuracy")
        if accuracy is None and not curve:
            self._fail(trial, params, run_id, "no validation clips to measure the trial by: add clips or raise "
                                              "the validation fraction")
        measured = {"val_accuracy": float(accuracy if accuracy is not None else max(curve)),
                    "latency_ms": float((metrics.get("latency") or {}).get("p50_ms", float("nan"))),
                    "n_parameters": float(n_parameters or 0)}
        trial.set_user_attr("latency_ms", measured["latency_ms"])
        trial.set_user_attr("n_parameters", n_parameters)
        trial.set_user_attr("message", done.message)
        values = {o: measured[o] for o in self.sweep.config.objectives}
        self.emit(TrialEvent(trial.number, "complete", params, values, run_id, done.message))
        return tuple(values.values()) if len(values) > 1 else values["val_accuracy"]

    def _fail(self, trial, params: dict, run_id: str | None, message: str) -> None:
        trial.set_user_attr("message", message)
        self.emit(TrialEvent(trial.number, "failed", params, {}, run_id, message))
        raise _TrialFailed(message)


def _minutes_up(config: SweepConfig, trials: list) -> bool:
    """The sweep's minutes have passed since its first trial started."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None and not t.user_attrs.get("surplus")]
    return config.minutes is not None and bool(starts) and \
        (datetime.now() - min(starts)).total_seconds() >= 60 * config.minutes


def run_worker(name: str, storage: str, *, dataset=None, runs_root: str | Path | None = None, stop=None,
               on_event: Callable[[Any], None] | None = None, poll_sec: float = 1.0) -> WorkerResult:
    """Work on sweep ``name``: run trials until its budget is taken and finished, its minutes are up, or ``stop``.

    Args:
        name: the sweep.
        storage: its SQLAlchemy URL (:func:`default_storage` for the local one).
        dataset: the sweep's dataset when the caller has it open (default: opened from the config's source).
        runs_root: where trials' runs are saved (default: the operator's runs folder).
        stop: anything with ``is_set()``; when set, the running trial stops (it is queued to run again) and the
            worker returns.
        on_event: gets the engine's events of each trial and a :class:`TrialEvent` when a trial starts and ends.
        poll_sec: how often a worker with nothing to start looks again while other workers' trials run.

    Raises:
        ValueError: no such sweep, or the storage cannot be opened.
    """
    import optuna

    sweep = _load(name, storage, heartbeat=True)
    config, stop = sweep.config, stop or threading.Event()
    dataset = dataset if dataset is not None else _open_dataset(config.source)
    ran, reason = [], "budget"
    while True:
        if stop.is_set():
            reason = "stopped"
            break
        optuna.storages.fail_stale_trials(sweep.study)
        trials = sweep.study._storage.get_all_trials(sweep.study._study_id, deepcopy=False)
        if _minutes_up(config, trials):
            reason = "minutes"
            break
        taken = _taken(trials)
        waiting = sum(t.state.name == "WAITING" for t in taken)
        if config.budget is not None and len(taken) >= config.budget and not waiting:
            if not any(t.state.name == "RUNNING" for t in taken):
                break
            time.sleep(poll_sec)  # another worker's trial may yet be lost and queued again
            continue
        objective = _Objective(sweep, dataset, Path(runs_root or settings().runs_dir), stop, on_event or _ignore)
        sweep.study.optimize(objective, n_trials=1, catch=(_Surplus, _TrialFailed), gc_after_trial=False)
        if objective.number is not None and not objective.surplus:
            ran.append(objective.number)
    return WorkerResult(ran, reason, sweep.counts())


def _ignore(event: Any) -> None:
    """The default ``on_event``."""
