"""The sweep command line: ``python -m lib.sweep {create,run,worker,status} --help``.

    python -m lib.sweep run lr-sweep --param train.learning_rate=1e-4:1e-1:log \\
        --param train.model=kws_resnet,tutorial_cnn --param features.n_mels=32:64:8 --trials 20 --epochs 10
    python -m lib.sweep worker --storage postgresql+psycopg://user@host/db --study lr-sweep   # on each machine
    python -m lib.sweep status lr-sweep

The base settings every trial starts from are the training command line's options (:mod:`lib.engine.cli`); the dataset
options are its too. Exit status: 0 done (failed trials are listed, not an error), 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lib.engine.cli import add_config_options, add_dataset_options, add_runs_option, configs_from_args, load_dataset_arg
from lib.sweep.space import Param, SearchSpace
from lib.sweep.study import (OBJECTIVES, PRUNERS, SAMPLERS, Sweep, SweepConfig, TrialEvent, create_sweep,
                             default_storage, list_sweeps, open_sweep, run_worker)

__all__ = ["main", "parser"]


def _add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="SQLAlchemy URL of the sweeps' database, e.g. "
                                     "postgresql+psycopg://user:pw@host/db (default: sqlite:///<--out>/sweeps.db)")
    add_runs_option(p)


def _add_create(p: argparse.ArgumentParser, params_required: bool) -> None:
    p.add_argument("name", help="the sweep's name (its trials are saved as runs <name>-t000, ...)")
    sweep = p.add_argument_group("the sweep")
    sweep.add_argument("--param", action="append", default=[], required=params_required, metavar="NAME=SPEC",
                       help="a setting to vary: train.learning_rate=1e-4:1e-1:log, features.n_mels=32:64:8 (a step), "
                            "train.model=kws_resnet,tutorial_cnn (choices); repeat for each")
    sweep.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="how trials are drawn (default: tpe)")
    sweep.add_argument("--pruner", choices=PRUNERS, default="median",
                       help="stop bad trials early from their epochs' validation accuracy (default: median)")
    sweep.add_argument("--objectives", default="val_accuracy",
                       help=f"comma-separated, val_accuracy first, among {','.join(OBJECTIVES)} (several: Pareto "
                            f"front, no pruning)")
    sweep.add_argument("--trials", type=int, default=None, help="trials in all (default: 20 unless --minutes)")
    sweep.add_argument("--minutes", type=float, default=None, help="start no trial after this many minutes")
    sweep.add_argument("--sampler-seed", type=int, default=0, help="the sampler's seed")
    sweep.add_argument("--heartbeat-sec", type=int, default=20,
                       help="how often workers say a trial is alive; one silent for 3x this is run again")
    _add_storage(sweep)
    add_dataset_options(p)
    add_config_options(p)


def parser() -> argparse.ArgumentParser:
    """The parser of ``python -m lib.sweep``."""
    p = argparse.ArgumentParser(prog="python -m lib.sweep", description="Hyperparameter sweeps (Optuna).")
    commands = p.add_subparsers(dest="command", required=True)
    _add_create(commands.add_parser("create", help="create a sweep (or check that it exists as given)"), True)
    run = commands.add_parser("run", help="create or resume a sweep, then work on it")
    _add_create(run, False)
    worker = commands.add_parser("worker", help="work on an existing sweep (one per machine or process)")
    worker.add_argument("--study", required=True, help="the sweep's name")
    _add_storage(worker)
    for command in (run, worker):
        command.add_argument("--threads", type=int, default=None, help="torch CPU threads of this worker")
    status = commands.add_parser("status", help="the trials of a sweep (no name: the sweeps in the storage)")
    status.add_argument("name", nargs="?", help="the sweep's name")
    _add_storage(status)
    return p


def _storage(args: argparse.Namespace) -> str:
    return args.storage or default_storage(args.out)


def _config(args: argparse.Namespace) -> SweepConfig:
    """The :class:`SweepConfig` the create/run options describe (opens the dataset for its source)."""
    feature_config, train_config = configs_from_args(args)
    space = SearchSpace(tuple(Param.parse(text) for text in args.param))
    dataset = load_dataset_arg(args.dataset, args, feature_config)
    n_trials = args.trials if args.trials is not None or args.minutes is not None else 20
    return SweepConfig(args.name, space, dataset.source, feature_config, train_config, args.sampler, args.pruner,
                       tuple(o.strip() for o in args.objectives.split(",") if o.strip()), n_trials, args.minutes,
                       args.sampler_seed, args.heartbeat_sec)


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_trial(event: Any) -> None:
    """One line per finished trial."""
    if not isinstance(event, TrialEvent) or event.state == "running":
        return
    values = ", ".join(f"{k} {_format(v)}" for k, v in event.values.items())
    params = " ".join(f"{k}={_format(v)}" for k, v in event.params.items())
    tail = f" ({event.message})" if event.state == "failed" else ""
    print(f"trial {event.number} {event.state}: {values or '-'} | {params} [run {event.run_id}]{tail}", flush=True)


def _print_status(sweep: Sweep) -> None:
    """A table of the trials, the counts and the best trial(s)."""
    config = sweep.config
    print(f"sweep {sweep.name}: {config.sampler} sampler, pruner {config.pruner}, objectives "
          f"{','.join(config.objectives)}, budget {config.budget or '-'} trials / {config.minutes or '-'} minutes")
    names = config.space.names
    header = ["#", "state", *config.objectives, *names, "epochs", "sec", "run"]
    rows = [[str(t.number), t.state, *(_format(t.values[o]) if o in t.values else "-" for o in config.objectives),
             *(_format(t.params.get(n, "-")) for n in names), str(len(t.curve)),
             f"{t.duration_sec:.0f}" if t.duration_sec is not None else "-", t.run_id or "-"]
            for t in sweep.trials()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(", ".join(f"{n} {state}" for state, n in sweep.counts().items() if n))
    for t in sweep.best():
        print(f"best: trial {t.number} " + ", ".join(f"{k} {_format(v)}" for k, v in t.values.items())
              + f" (run {t.run_id})")


def _work(name: str, storage: str, args: argparse.Namespace) -> int:
    """A worker process: trains trials until the sweep has them all."""
    from lib.device import keep_freed_memory

    keep_freed_memory()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = run_worker(name, storage, runs_root=args.out, on_event=_print_trial)
    print(f"worker done ({result.reason}): ran trials {result.trials or 'none'}; sweep: "
          + ", ".join(f"{n} {state}" for state, n in result.counts.items() if n))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 done, 2 bad input)."""
    args = parser().parse_args(argv)
    try:
        storage = _storage(args)
        if args.command == "status":
            if args.name is None:
                print("\n".join(list_sweeps(storage)) or f"no sweeps in {storage}")
                return 0
            _print_status(open_sweep(args.name, storage))
            return 0
        if args.command == "worker":
            return _work(args.study, storage, args)
        if args.command == "run" and not args.param:
            return _work(open_sweep(args.name, storage).name, storage, args)
        sweep = create_sweep(_config(args), storage)
        print(f"sweep {sweep.name} in {storage}: {len(sweep.trials())} trial(s) so far")
        return _work(sweep.name, storage, args) if args.command == "run" else 0
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
