"""Benchmark: training speed beside other CPU work, the old way (a thread in the server process, torch's default
threads) against the new one (a process per job with a thread budget, :mod:`lib.engine.jobs`).

Data, not a test. Each measurement trains ``kws_resnet`` for a fixed number of steps on the built-in set, with the
default augmentation (features cached, an epoch costs only the model) or with background noise and room reverb
(waveform augmentation every step), either quiet or beside one competing CPU-bound process (a loop of float32
matrix products, its own torch threads set by ``--competitor-threads``, by default in a session of its own like
another user's program). The conditions are interleaved round by
round (the order reversed every other round) so that the machine's own drift falls on all of them alike; each
figure is the median over rounds of samples per second over the steps after the first few (warm-up), timed step by
step (the validation at the end is not counted).

Usage::

    python bench/contention.py                  # writes the section into docs/benchmarks.md (about 10 min)
    python bench/contention.py --quick          # smoke test into bench/out/contention-quick.md
    python bench/contention.py --rounds 3 --steps 40 --competitor-threads 2

The results replace the section between ``<!-- contention-benchmark:start -->`` and ``<!-- contention-benchmark:end
-->`` of ``--out``; other sections survive.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.engine import machine  # noqa: E402
from bench.report import command_line, write_section  # noqa: E402

SECTION = "contention-benchmark"
DEFAULT_OUT = "docs/benchmarks.md"
QUICK_OUT = "bench/out/contention-quick.md"  # git-ignored: a smoke test never overwrites real results
WARMUP_STEPS = 3
RECIPES = {"default": {}, "noise+reverb": {"noise_probability": 0.5, "reverb_probability": 0.3}}
RUNNERS = {"old": "thread in this process, torch default threads", "new": "own process (lib.engine.jobs), thread budget"}
TARGET_KEPT = 0.5  # the target: beside one busy process, training keeps half its quiet speed


def log(message: str) -> None:
    print(f"[contention] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- the competitor
def _busy(threads: int, own_session: bool, ready, stop) -> None:
    """A CPU-bound process: float32 matrix products in a loop until ``stop`` is set. In a session of its own it is
    scheduled like another user's program (Linux's autogroup shares the CPU between sessions first)."""
    import torch

    if own_session:
        os.setsid()
    torch.set_num_threads(threads)
    a = torch.randn(384, 384)
    ready.set()
    while not stop.is_set():
        for _ in range(20):
            a = torch.tanh(a @ a)


class Competitor:
    """One competing CPU-bound process, started and stopped around the loaded measurements."""

    def __init__(self, threads: int, own_session: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._process = context.Process(target=_busy, args=(threads, own_session, self._ready, self._stop),
                                        daemon=True, name="contention-competitor")

    def __enter__(self) -> "Competitor":
        self._process.start()
        if not self._ready.wait(120):
            raise RuntimeError("the competing process did not start within 120 s")
        time.sleep(1.0)  # let it reach full speed
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


# ----------------------------------------------------------------------------------------------- measurements
def throughput(steps: list) -> float:
    """Samples per second over the steps after the warm-up, each step timed on its own (so the validation pass at
    an epoch's end is not counted): total samples / total step time."""
    timed = steps[WARMUP_STEPS:] or steps
    seconds = sum(s.batch_size / s.samples_per_sec for s in timed)
    return sum(s.batch_size for s in timed) / seconds


def run_old(dataset, feature_config, train_config, runs_root: Path) -> tuple[list, str]:
    """The old way: ``iter_training`` in a thread of this process, at torch's default threads."""
    import torch

    from lib.engine.train import DoneEvent, StepEvent, iter_training

    steps, done = [], []

    def train() -> None:
        for event in iter_training(dataset, feature_config, train_config, runs_root=runs_root):
            if isinstance(event, StepEvent):
                steps.append(event)
            elif isinstance(event, DoneEvent):
                done.append(event)

    thread = threading.Thread(target=train, name="old-way-training")
    thread.start()
    thread.join()
    if not done or done[0].status != "finished":
        raise RuntimeError(f"old-way training did not finish: {done[0].message if done else 'no result'}")
    return steps, f"{torch.get_num_threads()}"


def run_new(dataset, feature_config, train_config, runs_root: Path) -> tuple[list, str]:
    """The new way: a job of :class:`lib.engine.jobs.JobQueue` (its own process, :func:`lib.device.train_threads`)."""
    from lib.engine.jobs import JobQueue

    job = JobQueue().submit(dataset, feature_config, train_config, runs_root=runs_root)
    job.wait()
    snapshot = job.snapshot()
    if job.state != "finished":
        raise RuntimeError(f"new-way training did not finish: {snapshot.done.message}")
    return snapshot.steps, f"{job.worker.num_threads}"


def measure(runner: str, recipe: str, dataset, args: argparse.Namespace, runs_root: Path) -> dict:
    from lib.augment import AugmentConfig
    from lib.dsp.features import FeatureConfig
    from lib.engine.train import TrainConfig

    config = TrainConfig(model=args.model, epochs=1, batch_size=args.batch_size, max_batches=args.steps,
                         scheduler="none", device="cpu", augment=AugmentConfig(**RECIPES[recipe]))
    started = time.perf_counter()
    steps, threads = (run_old if runner == "old" else run_new)(dataset, FeatureConfig(), config, runs_root)
    return {"samples_per_sec": throughput(steps), "steps": len(steps), "threads": threads,
            "wall_sec": time.perf_counter() - started, "load_average": os.getloadavg()[0]}


# ----------------------------------------------------------------------------------------------------- report
def render(args: argparse.Namespace, command: str, info: dict, results: dict, n_train: int, total_sec: float) -> str:
    """The markdown section: one row per recipe and runner, quiet vs. loaded, medians over rounds."""
    def median(recipe: str, runner: str, load: str) -> float:
        return statistics.median(r["samples_per_sec"] for r in results[recipe][runner][load])

    def spread(recipe: str, runner: str, load: str) -> str:
        values = sorted(r["samples_per_sec"] for r in results[recipe][runner][load])
        return f"{values[0]:,.0f}–{values[-1]:,.0f}" if len(values) > 1 else ""

    where = ("in a session of its own, like another user's program" if args.competitor_session == "own"
             else "in the benchmark's own session")
    lines = ["## Training beside other work", "",
             f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
             + (" with `--quick` (smoke-test settings: not representative)" if args.quick else "")
             + f"; the whole benchmark took {total_sec / 60:.1f} min.", "",
             f"Command: `{command}`", "",
             f"Machine: {info['cpu']}, {info['cores']} cores (`os.cpu_count()`; usable: {info['usable_cores']}), "
             f"{info['os']}; Python {info['python']}, torch {info['torch']}. Load average at start: "
             f"{', '.join(map(str, info.get('load_average', [])))} (other users' work is part of every condition).",
             "",
             f"Each run trains `{args.model}` for {args.steps} steps of {args.batch_size} clips on the built-in set "
             f"({n_train} training clips), CPU. \"Loaded\": beside one competing CPU-bound process (float32 matrix "
             f"products, {args.competitor_threads} torch thread(s), {where}). Old: training in a thread of the "
             "app's process at torch's default threads (before lib.engine.jobs ran jobs in processes). New: a `lib.engine.jobs` "
             "job, its own spawned process at `lib.device.train_threads()` threads (the pages keep the rest). "
             "Samples/s over "
             f"steps {WARMUP_STEPS + 1}–{args.steps}, each step timed alone; median over {args.rounds} interleaved "
             "rounds (range in brackets).", "",
             "| augmentation | runner | threads | quiet samples/s | loaded samples/s | loaded / quiet |",
             "|---|---|---:|---:|---:|---:|"]
    for recipe in results:
        for runner in results[recipe]:
            quiet, loaded = median(recipe, runner, "quiet"), median(recipe, runner, "loaded")
            threads = results[recipe][runner]["quiet"][0]["threads"]
            lines.append(f"| {recipe} | {runner}: {RUNNERS[runner]} | {threads} | {quiet:,.0f} "
                         f"({spread(recipe, runner, 'quiet')}) | {loaded:,.0f} ({spread(recipe, runner, 'loaded')}) "
                         f"| {loaded / quiet:.0%} |")
    load, cores = info.get("load_average", [0.0])[0], info["usable_cores"]
    loads = [r["load_average"] for recipe in results.values() for runner in recipe.values()
             for load_kind in runner.values() for r in load_kind]
    if load > cores / 2:
        lines += ["", f"**Caveat:** the machine was busy with other work before the benchmark started (load average "
                      f"{load:.1f} on {cores} usable cores) and stayed so (load average {min(loads):.1f}–"
                      f"{max(loads):.1f} over the measurements), so \"quiet\" is not idle: the speeds are several "
                      "times below an idle machine's, and the runners' ranges may overlap. Read the ratios rather "
                      "than the absolute figures, and rerun on an idle machine for a clean comparison."]
    lines += ["", "What it means:", ""]
    for recipe in results:
        if {"old", "new"} <= set(results[recipe]):
            kept = median(recipe, "new", "loaded") / median(recipe, "new", "quiet")
            lines.append(f"- {recipe}: beside a busy process the new way trains at "
                         f"{median(recipe, 'new', 'loaded'):,.0f} samples/s, {kept:.0%} of its quiet speed "
                         f"({'meets' if kept >= TARGET_KEPT else 'misses'} the {TARGET_KEPT:.0%} target), the old way "
                         f"at {median(recipe, 'old', 'loaded'):,.0f} "
                         f"({median(recipe, 'old', 'loaded') / median(recipe, 'old', 'quiet'):.0%} of its quiet "
                         f"speed): {median(recipe, 'new', 'loaded') / median(recipe, 'old', 'loaded'):.1f}× faster "
                         f"under load; quiet, new / old = "
                         f"{median(recipe, 'new', 'quiet') / median(recipe, 'old', 'quiet'):.2f}.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    overall = time.perf_counter()
    from lib.data.synth.builtin import BuiltinSpec
    from lib.data.sources import load_builtin, split_dataset
    from lib.device import usable_cores

    cache = Path(args.data_dir) if args.data_dir else ROOT / "data" / "builtin"
    log(f"opening the built-in set ({args.clips_per_word} clips per word) in {cache}")
    dataset = load_builtin(BuiltinSpec(clips_per_word=args.clips_per_word), cache)
    n_train = len(split_dataset(dataset.labels, dataset.groups, 0.15, 0.15, 0).train)
    info = {**machine(), "usable_cores": usable_cores()}
    results = {recipe: {runner: {"quiet": [], "loaded": []} for runner in args.runners} for recipe in args.recipes}
    with tempfile.TemporaryDirectory(prefix="contention-runs-") as runs_root:
        for round_ in range(args.rounds):
            order = [(recipe, runner) for recipe in args.recipes for runner in args.runners]
            loads = ("quiet", "loaded") if round_ % 2 == 0 else ("loaded", "quiet")
            if round_ % 2:
                order.reverse()
            for load in loads:
                competitor = (Competitor(args.competitor_threads, args.competitor_session == "own")
                              if load == "loaded" else None)
                if competitor:
                    competitor.__enter__()
                try:
                    for recipe, runner in order:
                        result = measure(runner, recipe, dataset, args, Path(runs_root))
                        results[recipe][runner][load].append(result)
                        log(f"round {round_ + 1}/{args.rounds} {load:6s} {recipe:12s} {runner}: "
                            f"{result['samples_per_sec']:,.0f} samples/s ({result['threads']} threads, "
                            f"{result['wall_sec']:.1f} s, load {result['load_average']:.1f})")
                finally:
                    if competitor:
                        competitor.__exit__(None, None, None)
    command = command_line("contention.py")
    section = render(args, command, info, results, n_train, time.perf_counter() - overall)
    out = Path(args.out) if args.out else ROOT / (QUICK_OUT if args.quick else DEFAULT_OUT)
    write_section(out, SECTION, section)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "machine": info, "results": results}, indent=2))
    print(section)
    log(f"wrote {out}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Training speed beside a competing CPU-bound process: old in-process "
                                            "threads vs. a process per job with a thread budget.")
    p.add_argument("--out", default=None, help=f"markdown file (default: {DEFAULT_OUT}; with --quick: {QUICK_OUT})")
    p.add_argument("--model", default="kws_resnet")
    p.add_argument("--steps", type=int, default=30, help="training steps per measurement")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds over all conditions")
    p.add_argument("--competitor-threads", type=int, default=1, help="torch threads of the competing process")
    p.add_argument("--competitor-session", choices=("own", "same"), default="own",
                   help="own: the competitor runs in a session of its own, like another user's program or a second "
                        "app; same: in this benchmark's session (Linux's autogroup then shares one group's CPU "
                        "between them)")
    p.add_argument("--clips-per-word", type=int, default=300, help="size of the built-in set (default: the app's)")
    p.add_argument("--recipes", default="default,noise+reverb", help=f"comma-separated: {', '.join(RECIPES)}")
    p.add_argument("--runners", default="old,new", help=f"comma-separated: {', '.join(RUNNERS)}")
    p.add_argument("--data-dir", default=None, help="cache folder of the built-in set (default: data/builtin)")
    p.add_argument("--json", default=None, help="also write the raw results to this JSON file")
    p.add_argument("--quick", action="store_true", help="smoke-test settings (8 steps, one round)")
    args = p.parse_args(argv)
    args.recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    args.runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    unknown = [r for r in args.recipes if r not in RECIPES] + [r for r in args.runners if r not in RUNNERS]
    if unknown:
        p.error(f"unknown recipe(s) or runner(s): {unknown}; recipes: {list(RECIPES)}, runners: {list(RUNNERS)}")
    if args.quick:
        args.steps, args.rounds = min(args.steps, 8), 1
    if args.steps <= WARMUP_STEPS:
        p.error(f"--steps must be more than the {WARMUP_STEPS} warm-up steps")
    return args


if __name__ == "__main__":
    sys.exit(run(parse_args()))
