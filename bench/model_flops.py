"""The model step against the machine's limit: FLOP/s of each model's training step, next to what the machine does.

Data, not a test. Three measurements, interleaved in rounds (median over ``--rounds``) so that a noisy shared machine
moves them together:

1. **the machine's ceiling**: a large float32 matrix product (``--matmul`` square, default 2048) at the training
   threads;
2. **the model's own layer shapes**: every ``Conv2d`` and ``Linear`` of the model alone at the input shape it sees in
   the model, forward and backward (input and weight gradients); their FLOPs over the sum of their times is the most
   the step could reach if nothing but those layers cost time (batch norm, activations, pooling and the optimizer
   are left out, so the real step is slower);
3. **the whole training step**: forward + backward + AdamW on random features of the default shape
   (:func:`model_step`, also used by ``bench/gpu_check.py``), per model, in the contiguous and ``channels_last``
   layouts and at batches 64, 128 and 256; ``torch.compile`` for ``kws_resnet`` (with its compile time);
4. **the memory allocator**: ``kws_resnet``'s step in two fresh processes, one with glibc's defaults and one with
   freed memory kept for reuse (:func:`lib.device.keep_freed_memory`, what training processes do), with the page
   faults and kernel time of a step. This process keeps freed memory too, as a training job's does.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2 FLOPs; convolutions and
matrix products only). Writes the ``model-flops`` section of ``docs/benchmarks.md``.

Usage::

    python bench/model_flops.py                       # every model, 3 rounds
    python bench/model_flops.py --models kws_resnet --rounds 1 --out bench/out/flops.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bench.report import command_line, write_section  # noqa: E402

SECTION = "model-flops"
MODELS = ("tutorial_cnn", "kws_resnet", "bcresnet", "crnn", "kws_transformer")
BATCHES = (64, 128, 256)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Seconds per call of ``fn`` (after two warm-up calls)."""
    for _ in range(2):
        fn()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - t0) / repeats


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def build(model_name: str, device: torch.device, channels_last: bool) -> tuple[nn.Module, tuple[int, int]]:
    """The model on ``device`` in the layout asked for, and its input's ``(n_bins, n_frames)``."""
    from lib.dsp.features import FeatureConfig
    from lib.models import build_model

    fc = FeatureConfig()
    torch.manual_seed(0)
    model = build_model(model_name, 10, fc.n_bins, fc.n_frames).to(device)
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format), (fc.n_bins,
                                                                                                       fc.n_frames)


def training_step(model_name: str, device: torch.device, batch: int, dtype: str, channels_last: bool):
    """The model and one training step of it (forward + backward + AdamW) on fixed random features
    ``(batch, 1, n_bins, n_frames)`` in the layout asked for: ``step(net)`` runs it through ``net`` (the model, or a
    compiled one)."""
    model, (n_bins, n_frames) = build(model_name, device, channels_last)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, n_bins, n_frames, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,), device=device)
    autocast = dtype == "bf16"

    def step(net: nn.Module) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return model, step


def model_step(model_name: str, device: torch.device, batch: int, dtype: str, channels_last: bool,
               steps: int, compile: bool = False) -> dict:
    """Samples/s and FLOP/s of forward + backward + AdamW on random features ``(batch, 1, n_bins, n_frames)``.

    Returns:
        ``{"samples_per_sec", "gflops_per_sec", "mflop_per_sample"}`` (and ``"compile_sec"``, the first compiled
        step, when ``compile``).
    """
    model, step = training_step(model_name, device, batch, dtype, channels_last)
    forward = torch.compile(model) if compile else model

    flops = counted_flops(lambda: step(model))  # the eager model's FLOPs (a compiled one does the same arithmetic)
    t0 = time.perf_counter()
    step(forward)
    synchronize(device)
    compile_sec = time.perf_counter() - t0
    seconds = timed(lambda: step(forward), device, steps)
    result = {"samples_per_sec": batch / seconds, "gflops_per_sec": flops / seconds / 1e9,
              "mflop_per_sample": flops / batch / 1e6}
    if compile:
        result["compile_sec"] = compile_sec
    return result


def layer_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """``(name, layer, input shape)`` of every ``Conv2d`` and ``Linear`` the model runs on ``x`` (in order)."""
    seen: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    hooks = [module.register_forward_hook(lambda m, args, out, name=name: seen.append((name, m, tuple(args[0].shape))))
             for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def layer_cap(model_name: str, device: torch.device, batch: int, channels_last: bool, repeats: int) -> dict:
    """Each Conv2d/Linear alone at its shape in the model, forward + backward: FLOP/s per layer and the model's cap.
    Their FLOPs add up to the step's (the first layer computes no input gradient, as in the model).

    Returns:
        ``{"layers": [{"name", "shape", "gflops_per_sec", "share"}], "cap_samples_per_sec", "cap_gflops_per_sec"}``
        where ``share`` is the layer's fraction of the model's layer FLOPs.
    """
    model, (n_bins, n_frames) = build(model_name, device, channels_last)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, 1, n_bins, n_frames, device=device).contiguous(memory_format=memory_format)
    rows, total_flops, total_sec = [], 0, 0.0
    for index, (name, layer, shape) in enumerate(layer_shapes(model, x)):
        layer = copy.deepcopy(layer).train()
        inputs = torch.randn(shape, device=device)
        if inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=memory_format)
        inputs.requires_grad_(index > 0)  # as in the model: no gradient for the features themselves
        grad = torch.ones_like(layer(inputs))

        def fwd_bwd() -> None:
            layer(inputs).backward(grad)

        flops = counted_flops(fwd_bwd)
        seconds = timed(fwd_bwd, device, repeats)
        rows.append({"name": name, "shape": shape, "flops": flops, "gflops_per_sec": flops / seconds / 1e9})
        total_flops += flops
        total_sec += seconds
    for row in rows:
        row["share"] = row["flops"] / total_flops
    return {"layers": rows, "cap_samples_per_sec": batch / total_sec, "cap_gflops_per_sec": total_flops / total_sec / 1e9}


def allocator_step(kept: bool, steps: int, batch: int = 64) -> dict:
    """``kws_resnet``'s training step (channels_last, as the engine trains it) in this process, with freed memory kept
    for reuse or glibc's defaults (run it in a fresh process: the choice is the process's): samples/s, and the
    page faults and kernel time of a step."""
    from lib.device import keep_freed_memory

    applied = keep_freed_memory() if kept else False
    model, step = training_step("kws_resnet", torch.device("cpu"), batch, "fp32", True)

    for _ in range(5):
        step(model)
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step(model)
    after, seconds = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    return {"applied": applied, "samples_per_sec": batch * steps / seconds,
            "faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
            "kernel_ms_per_step": (after.ru_stime - before.ru_stime) / steps * 1e3}


def allocator_in_process(kept: bool, steps: int, threads: int) -> dict:
    """:func:`allocator_step` in a fresh process of this script at ``threads`` torch threads."""
    command = [sys.executable, str(Path(__file__).resolve()), "--allocator-child", "kept" if kept else "default",
               "--steps", str(steps), "--threads", str(threads)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def matmul_gflops(device: torch.device, n: int, repeats: int) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n ** 3 / timed(lambda: a @ b, device, repeats) / 1e9


def measure(args: argparse.Namespace, device: torch.device) -> dict:
    """Every measurement, ``args.rounds`` times interleaved; each figure's median."""
    runs: dict[str, list] = {}

    def keep(key: str, value) -> None:
        runs.setdefault(key, []).append(value)

    for round_ in range(args.rounds):
        print(f"[model-flops] round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        keep("matmul", matmul_gflops(device, args.matmul, 10))
        for name in args.models:
            for channels_last in (False, True):
                keep(f"cap {name} {channels_last}", layer_cap(name, device, 64, channels_last, args.steps))
                for batch in BATCHES:
                    keep(f"step {name} {channels_last} {batch}",
                         model_step(name, device, batch, "fp32", channels_last, args.steps))
        if args.compile and "kws_resnet" in args.models:
            keep("compiled", model_step("kws_resnet", device, 64, "fp32", True, args.steps, compile=True))
        if device.type == "cpu":
            for kept in (round_ % 2 == 0, round_ % 2 == 1):  # the order alternates round by round
                keep(f"allocator {kept}", allocator_in_process(kept, 4 * args.steps, torch.get_num_threads()))
    return {key: median_of(values) for key, values in runs.items()}


def median_of(values: list):
    """The median of numbers, or of dicts key by key (lists of layer rows: the layer GFLOP/s' median)."""
    first = values[0]
    if isinstance(first, (int, float)):
        return statistics.median(values)
    out = {}
    for key, value in first.items():
        if key == "layers":
            out[key] = [dict(row, gflops_per_sec=statistics.median(v[key][i]["gflops_per_sec"] for v in values))
                        for i, row in enumerate(value)]
        elif key == "compile_sec":  # the first round's: later ones reuse the process's compiled code
            out[key] = max(v[key] for v in values)
        elif isinstance(value, (int, float)):
            out[key] = statistics.median(v[key] for v in values)
        else:
            out[key] = value
    return out


def render(figures: dict, args: argparse.Namespace, device: torch.device, command: str, seconds: float,
           load: tuple) -> str:
    peak = figures["matmul"]
    lines = ["## The model step against the machine (`bench/model_flops.py`)", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {seconds / 60:.1f} min on "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} torch threads, device {device}; load average at start "
             f"{', '.join(f'{x:.2f}' for x in load)}. Median of {args.rounds} interleaved round(s).", "",
             f"Command: `{command}`", "",
             f"**Ceiling:** a {args.matmul}x{args.matmul} float32 matrix product runs at **{peak:.0f} GFLOP/s**.", "",
             "### The training step (forward + backward + AdamW, float32, random features of the default shape)", "",
             "| model | MFLOP per sample | layout | " + " | ".join(f"batch {b}: samples/s (GFLOP/s)" for b in BATCHES)
             + " | layer cap at batch 64: samples/s (GFLOP/s) | best step / matmul |",
             "|---|---|---|" + "---|" * len(BATCHES) + "---|---|"]
    for name in args.models:
        for channels_last in (False, True):
            steps = [figures[f"step {name} {channels_last} {b}"] for b in BATCHES]
            cap = figures[f"cap {name} {channels_last}"]
            best = max(s["gflops_per_sec"] for s in steps)
            lines.append(f"| {name} | {steps[0]['mflop_per_sample']:.1f} | "
                         f"{'channels_last' if channels_last else 'contiguous'} | "
                         + " | ".join(f"{s['samples_per_sec']:,.0f} ({s['gflops_per_sec']:.0f})" for s in steps)
                         + f" | {cap['cap_samples_per_sec']:,.0f} ({cap['cap_gflops_per_sec']:.0f}) | "
                           f"{best / peak:.0%} |")
    if "compiled" in figures:
        c = figures["compiled"]
        lines += ["", f"`torch.compile` of `kws_resnet` (channels_last, batch 64): {c['samples_per_sec']:,.0f} "
                      f"samples/s ({c['gflops_per_sec']:.0f} GFLOP/s) after a first step of {c['compile_sec']:.0f} s."]
    if "allocator True" in figures:
        lines += ["", "### Freed memory kept for reuse (`lib.device.keep_freed_memory`), `kws_resnet`'s step "
                      "(channels_last, batch 64), each in a fresh process", "",
                  "| glibc's malloc | samples/s | page faults a step | kernel time a step |", "|---|---|---|---|"]
        for kept, label in ((False, "defaults"), (True, "freed memory kept (training processes)")):
            a = figures[f"allocator {kept}"]
            lines.append(f"| {label} | {a['samples_per_sec']:,.0f} | {a['faults_per_step']:,.0f} | "
                         f"{a['kernel_ms_per_step']:.1f} ms |")
    lines += ["", "### `kws_resnet`'s layers alone (forward + backward, batch 64, the layout the engine uses: "
                  "channels_last)", "", "| layer | input shape | share of the FLOPs | GFLOP/s |", "|---|---|---|---|"]
    for row in figures.get("cap kws_resnet True", {}).get("layers", []):
        lines.append(f"| {row['name']} | {'x'.join(map(str, row['shape']))} | {row['share']:.0%} | "
                     f"{row['gflops_per_sec']:.0f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/model_flops.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=lambda s: tuple(s.split(",")), default=MODELS, help="comma-separated models")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--matmul", type=int, default=2048, help="the ceiling's matrix size")
    p.add_argument("--threads", type=int, help="torch threads (default: the training jobs' budget)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    p.add_argument("--out", default="docs/benchmarks.md", help="markdown file; its model-flops section is replaced")
    p.add_argument("--allocator-child", choices=("kept", "default"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from lib.device import keep_freed_memory, resolve_device, train_threads

    torch.set_num_threads(args.threads or train_threads())
    if args.allocator_child:
        print(json.dumps(allocator_step(args.allocator_child == "kept", args.steps)))
        return 0
    keep_freed_memory()  # as a training job's process does
    device = resolve_device(args.device)
    load, started = os.getloadavg(), time.perf_counter()
    figures = measure(args, device)
    text = render(figures, args, device, command_line("model_flops.py", argv), time.perf_counter() - started, load)
    write_section(args.out, SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
