"""Benchmark: the training engine (lib.engine.train) against a tutorial-style per-item DataLoader pipeline.

Data, not a test. Both pipelines train the same model with the same hyperparameters on the same split of the
built-in dataset (default :class:`~lib.data.synth.builtin.BuiltinSpec`, voices held out with
``split_dataset(labels, groups, 0.15, 0.15, seed=0)``). Every measurement runs in its own subprocess (this
script run again with ``--only ...``), so peak memory and timings of one pipeline are not mixed with the other's.

Usage::

    python bench/engine.py                       # full run, writes docs/benchmarks.md (several minutes)
    python bench/engine.py --quick               # smoke test (< 1 min once the dataset is cached)
    python bench/engine.py --model bcresnet --device cuda --models kws_resnet,crnn

The results replace the section between ``<!-- engine-benchmark:start -->`` and ``<!-- engine-benchmark:end -->``
of ``--out`` (the file is created with those markers if missing), so other benchmark sections survive.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import command_line, write_section  # noqa: E402

RESULT_PREFIX = "@@BENCH-RESULT "
SECTION = "engine-benchmark"  # docs/benchmarks.md markers: <!-- engine-benchmark:start --> ... :end -->
DEFAULT_OUT = "docs/benchmarks.md"
QUICK_OUT = "bench/out/engine-quick.md"  # bench/out/ is git-ignored: a smoke test never overwrites real results
TARGET_ACCURACY = 0.95


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ shared helpers
def data_dir(args: argparse.Namespace) -> Path:
    """The built-in set's cache: ``--data-dir``, else the operator's (:func:`lib.settings.settings`)."""
    from lib.settings import settings

    return Path(args.data_dir).resolve() if args.data_dir else settings().builtin_cache


def peak_rss_mb(who: int) -> float:
    """``ru_maxrss`` in MiB (kilobytes on Linux, bytes on macOS)."""
    value = resource.getrusage(who).ru_maxrss
    return value / (1024 * 1024) if sys.platform == "darwin" else value / 1024


def memory_report(device) -> dict:
    import torch

    report = {"peak_rss_mb": peak_rss_mb(resource.RUSAGE_SELF),
              "peak_rss_children_mb": peak_rss_mb(resource.RUSAGE_CHILDREN)}
    if device.type == "cuda":
        report["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return report


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def percentiles_ms(times: list[float]) -> dict:
    import numpy as np

    arr = np.asarray(times) * 1000.0
    return {"p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95)),
            "mean_ms": float(arr.mean()), "runs": len(times)}


def settings(args: argparse.Namespace) -> dict:
    """The sizes a run uses: ``--quick`` shrinks everything."""
    if args.quick:
        return {"epochs": min(args.epochs, 2), "max_batches": 4, "tutorial_cap": min(args.tutorial_cap, 20.0),
                "latency_runs": min(args.latency_runs, 30), "feature_clips": 200, "model_epochs": 2,
                "model_latency_runs": 20}
    return {"epochs": args.epochs, "max_batches": None, "tutorial_cap": args.tutorial_cap,
            "latency_runs": args.latency_runs, "feature_clips": 1000, "model_epochs": args.model_epochs,
            "model_latency_runs": 100}


def builtin_spec():
    from lib.data.synth.builtin import BuiltinSpec

    return BuiltinSpec()


def manifest_entries(args: argparse.Namespace):
    """Paths, labels (in the spec's class order, as :func:`lib.data.sources.load_builtin` gives them) and groups, read
    from the manifest without decoding any audio (the tutorial pipeline opens files itself)."""
    import csv

    import numpy as np

    from lib.data.synth.builtin import generate_builtin

    spec = builtin_spec()
    manifest = generate_builtin(spec, data_dir(args))
    order = {c: i for i, c in enumerate(spec.class_names)}
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    paths = [str(manifest.parent / r["path"]) for r in rows]
    labels = np.array([order[r["label"]] for r in rows], dtype=np.int64)
    groups = [r["group"] or p for r, p in zip(rows, paths)]
    return paths, labels, groups, spec.class_names


def load_dataset(args: argparse.Namespace):
    from lib.data.sources import load_builtin

    started = time.perf_counter()
    dataset = load_builtin(builtin_spec(), data_dir(args))
    return dataset, time.perf_counter() - started


def the_split(labels, groups):
    from lib.data.sources import split_dataset

    return split_dataset(labels, groups, 0.15, 0.15, seed=0)


def augment_settings(name: str) -> dict:
    """``AugmentConfig`` fields of ``--augment``: ``default`` (time shift and SpecAugment) or ``every`` (the
    augmentation benchmark's "every augmentation": the default model's warp, stretch, noise and reverb, plus gain, EQ
    and mixup)."""
    if name == "default":
        return {}
    from bench.augment_speed import RECIPES

    return dict(RECIPES["every augmentation (+ gain, EQ, mixup)"])


def augment_words(name: str) -> str:
    """``--augment`` in the report's words."""
    if name == "default":
        return ("default `AugmentConfig` (time shift ±0.1 s, SpecAugment 2 frequency masks ≤ 8 bins + 2 time masks ≤ "
                "10 frames)")
    return (f"every augmentation (`AugmentConfig(**{augment_settings(name)})`: the engine on cached power "
            "spectrograms, the tutorial on each clip's waveform in its `__getitem__`, then warp, stretch and "
            "SpecAugment on its features, and mixup on each batch)")


def train_config(args: argparse.Namespace, model: str, epochs: int, max_batches: int | None):
    from lib.augment import AugmentConfig
    from lib.engine.train import TrainConfig

    return TrainConfig(model=model, epochs=epochs, device=args.device, max_batches=max_batches,
                       augment=AugmentConfig(**augment_settings(args.augment)))


def summarize_epochs(epochs: list[dict], n_samples_per_epoch: int) -> dict:
    """First epoch and steady (second epoch on) training throughput from per-epoch wall times."""
    out: dict = {"epochs_run": len(epochs), "samples_per_epoch": n_samples_per_epoch}
    if not epochs:
        return out
    out["first_epoch_sec"] = epochs[0]["first_epoch_sec"]
    out["first_samples_per_sec"] = n_samples_per_epoch / epochs[0]["first_epoch_sec"]
    steady = epochs[1:] or epochs[:1]
    mean = sum(e["train_sec"] for e in steady) / len(steady)
    out["steady_epochs"] = len(steady) if len(epochs) > 1 else 0
    out["steady_epoch_sec"] = mean
    out["steady_samples_per_sec"] = n_samples_per_epoch / mean
    out["validation_sec_mean"] = sum(e["val_sec"] for e in epochs) / len(epochs)
    return out


def first_reaching(epochs: list[dict], target: float) -> dict:
    best = max((e["val_accuracy"] for e in epochs), default=float("nan"))
    for e in epochs:
        if e["val_accuracy"] >= target:
            return {"reached": True, "epoch": e["epoch"], "wall_sec": e["wall_sec"],
                    "engine_elapsed_sec": e.get("engine_elapsed_sec"), "best_val_accuracy": best}
    return {"reached": False, "best_val_accuracy": best}


# ------------------------------------------------------------------------------------------------ latency
def measure_latency(model, feature_config, class_names, waveform, device_name: str, runs: int) -> dict:
    """End-to-end one-clip latency: waveform -> features -> model -> softmax, batch 1, eval, inference mode.

    Uses :class:`lib.serving.infer.Classifier` (the app's inference path) when it is there and works; else does the same
    steps directly. ``model`` is copied (the Classifier moves its model).
    """
    import torch

    from lib.device import resolve_device

    device = resolve_device(device_name)
    model = copy.deepcopy(model).to(device).eval()
    how, predict = None, None
    try:
        from lib.serving.infer import Classifier

        classifier = Classifier(model, feature_config, list(class_names), device=device)
        probabilities = classifier.predict(waveform, feature_config.sample_rate).probabilities
        if len(probabilities) != len(class_names):
            raise ValueError(f"got {len(probabilities)} probabilities for {len(class_names)} classes")
        predict = lambda: classifier.predict(waveform, feature_config.sample_rate).probabilities  # noqa: E731
        how = "lib.serving.infer.Classifier.predict"
    except Exception as error:  # noqa: BLE001 - any failure: measure the same steps directly
        from lib.dsp.audio import fit_clip
        from lib.dsp.features import FeatureExtractor

        extractor = FeatureExtractor(feature_config).to(device).eval()

        def predict():
            with torch.inference_mode():
                clip = fit_clip(waveform.to(device), feature_config.sample_rate, feature_config.sample_rate,
                                feature_config.n_samples)
                return model(extractor(clip)).float().softmax(-1).cpu()  # .cpu() waits for the device

        how = f"direct (lib.serving.infer.Classifier unusable: {type(error).__name__}: {error})"[:200]
    for _ in range(max(5, runs // 10)):  # warm-up
        predict()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        predict()
        times.append(time.perf_counter() - started)
    return {"how": how, "device": str(device), **percentiles_ms(times)}


# ------------------------------------------------------------------------------------------------ workers
def capture_model():
    """Wrap ``lib.engine.train.build_model`` so the model the engine builds (and, at the end, loads with its best
    weights) can be used for the latency measurement with ``save=False``."""
    import lib.engine.train as engine

    captured: dict = {}
    original = engine.build_model

    def build_and_keep(*a, **k):
        captured["model"] = original(*a, **k)
        return captured["model"]

    engine.build_model = build_and_keep
    return captured


def run_engine(args: argparse.Namespace, model_name: str, epochs: int, max_batches: int | None,
               latency_runs: int, latency_devices: list[str]) -> dict:
    """Train with ``lib.engine.train.iter_training`` and time every epoch from the outside."""
    import torch

    from lib.device import keep_freed_memory, resolve_device
    from lib.dsp.features import FeatureConfig
    from lib.engine.train import DoneEvent, EpochEvent, StartEvent, StepEvent, iter_training

    keep_freed_memory()  # as a training job's process does (this measurement runs in a process of its own)
    device = resolve_device(args.device)
    log(f"engine: decoding the built-in dataset ({model_name}, {device})")
    dataset, decode_sec = load_dataset(args)
    feature_config = FeatureConfig()
    config = train_config(args, model_name, epochs, max_batches)
    captured = capture_model()
    result: dict = {"model": model_name, "n_clips": len(dataset), "decode_sec": decode_sec,
                    "torch_threads": torch.get_num_threads(), "epochs_planned": epochs, "max_batches": max_batches}
    epochs_out: list[dict] = []
    step_rates: list[float] = []
    last_step_at: dict[int, float] = {}
    previous_end = None
    started = time.perf_counter()
    for event in iter_training(dataset, feature_config, config, save=False):
        now = time.perf_counter() - started
        if isinstance(event, StartEvent):
            result.update(n_train=event.n_train, n_validation=event.n_validation, n_test=event.n_test,
                          n_parameters=event.n_parameters, device=event.device, cached_features=event.cached_features,
                          setup_sec=now)
            previous_end = now
            log(f"engine: {event.n_train} train clips, {event.n_parameters:,} parameters, setup {now:.1f} s "
                f"(features cached: {event.cached_features})")
        elif isinstance(event, StepEvent):
            last_step_at[event.epoch] = now
            if event.epoch > 1:
                step_rates.append(event.samples_per_sec)
        elif isinstance(event, EpochEvent):
            end_train = last_step_at[event.epoch]
            epochs_out.append({"epoch": event.epoch, "train_sec": end_train - previous_end,
                               "first_epoch_sec": end_train, "val_sec": now - end_train, "wall_sec": now,
                               "engine_elapsed_sec": event.elapsed_sec, "val_accuracy": event.val_accuracy,
                               "train_loss": event.train_loss})
            previous_end = now
            log(f"engine: epoch {event.epoch}/{event.epochs} train {epochs_out[-1]['train_sec']:.2f} s, "
                f"val acc {event.val_accuracy:.1%}, wall {now:.1f} s")
        elif isinstance(event, DoneEvent):
            result["status"], result["message"] = event.status, event.message
            if event.metrics:
                result["test_accuracy"] = (event.metrics.get("test") or {}).get("accuracy")
    if result.get("status") == "failed":
        raise RuntimeError(f"the engine failed: {result.get('message')}")
    per_epoch = min(result["n_train"], (max_batches or 10**9) * config.batch_size)
    result["training"] = summarize_epochs(epochs_out, per_epoch)
    result["epochs"] = epochs_out
    if step_rates:
        step_rates.sort()
        result["training"]["step_event_samples_per_sec_median"] = step_rates[len(step_rates) // 2]
    result["time_to_target"] = first_reaching(epochs_out, args.target)
    memory = memory_report(device)  # before latency, which builds more objects
    result["memory"] = memory
    model = captured.get("model")
    if model is not None and latency_runs:
        split = the_split(dataset.labels, dataset.groups)
        waveform = dataset.to_tensor(feature_config.sample_rate, feature_config.n_samples, split.validation[:1])[0]
        result["latency"] = [measure_latency(model, feature_config, dataset.class_names, waveform, d, latency_runs)
                             for d in latency_devices]
    return result


def run_tutorial(args: argparse.Namespace) -> dict:
    """The classic tutorial pipeline: per-item decode, rechannel, resample, pad, shift, mel, SpecAugment in
    DataLoader workers; then the same model, optimizer, scheduler and loss as the engine."""
    import torch
    import torch.nn.functional as F

    from lib.augment.spectrogram import apply_mixup, draw_mixup
    from lib.device import describe_device, resolve_device
    from lib.dsp.features import FeatureConfig
    from lib.models import build_model, count_parameters

    s = settings(args)
    device = resolve_device(args.device)
    feature_config = FeatureConfig()
    config = train_config(args, args.model, s["epochs"], s["max_batches"])
    paths, labels, groups, class_names = manifest_entries(args)
    n_classes = len(class_names)
    split = the_split(labels, groups)
    started = time.perf_counter()
    train_set = TutorialDataset([paths[i] for i in split.train], labels[split.train], feature_config, config.augment)
    val_set = TutorialDataset([paths[i] for i in split.validation], labels[split.validation], feature_config, None)
    loader_generator = torch.Generator().manual_seed(config.seed)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                                               num_workers=args.workers, generator=loader_generator)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=config.batch_size, shuffle=False,
                                             num_workers=args.workers)
    torch.manual_seed(config.seed)
    model = build_model(config.model, len(class_names), feature_config.n_bins, feature_config.n_frames).to(device)
    batches_per_epoch = math.ceil(len(train_set) / config.batch_size)
    if config.max_batches:
        batches_per_epoch = min(batches_per_epoch, config.max_batches)
    optimizer, scheduler = optimizer_and_scheduler(model, config, batches_per_epoch * config.epochs)
    autocast = device.type == "cuda" and config.mixed_precision
    result: dict = {"model": config.model, "n_train": len(split.train), "n_validation": len(split.validation),
                    "n_test": len(split.test), "n_parameters": count_parameters(model), "device": describe_device(device),
                    "torch_threads": torch.get_num_threads(), "workers": args.workers, "cap_sec": s["tutorial_cap"],
                    "epochs_planned": config.epochs, "max_batches": config.max_batches}
    log(f"tutorial: {len(train_set)} train clips, {args.workers} DataLoader workers, {device}, "
        f"cap {s['tutorial_cap']:.0f} s")
    epochs_out: list[dict] = []
    step_sec: list[float] = []
    setup_sec = time.perf_counter() - started
    previous_end = setup_sec
    stopped_by_cap = False
    for epoch in range(1, config.epochs + 1):
        model.train()
        epoch_wait = 0.0
        fetch_started = time.perf_counter()
        for n, (features, targets) in enumerate(train_loader):
            got = time.perf_counter()
            epoch_wait += got - fetch_started
            features, targets = features.to(device), targets.to(device)
            if config.augment.mixup_alpha > 0:                          # mixup on the batch, as tutorials do
                features, targets = apply_mixup(features, F.one_hot(targets, n_classes).float(),
                                                *draw_mixup(len(targets), config.augment.mixup_alpha))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = model(features)
                loss = F.cross_entropy(logits.float(), targets, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss.item()  # waits for the device, as the engine's loss.item() does
            fetch_started = time.perf_counter()
            if epoch > 1:
                step_sec.append(fetch_started - got)
            if n + 1 >= batches_per_epoch:
                break
        end_train = time.perf_counter() - started
        val_accuracy = tutorial_validate(model, val_loader, device, autocast)
        now = time.perf_counter() - started
        epochs_out.append({"epoch": epoch, "train_sec": end_train - previous_end, "first_epoch_sec": end_train,
                           "val_sec": now - end_train, "wall_sec": now, "val_accuracy": val_accuracy,
                           "data_wait_sec": epoch_wait})
        log(f"tutorial: epoch {epoch}/{config.epochs} train {end_train - previous_end:.2f} s "
            f"(waiting for data {epoch_wait:.2f} s), val acc {val_accuracy:.1%}, wall {now:.1f} s")
        previous_end = now
        if epochs_out and epochs_out[-1]["val_accuracy"] >= args.target and args.stop_at_target:
            break
        if now >= s["tutorial_cap"] and epoch >= 2:
            stopped_by_cap = epoch < config.epochs
            break
    per_epoch = min(len(train_set), batches_per_epoch * config.batch_size)
    result["setup_sec"] = setup_sec
    result["training"] = summarize_epochs(epochs_out, per_epoch)
    steady = epochs_out[1:]
    if steady:
        result["training"]["data_wait_fraction"] = (sum(e["data_wait_sec"] for e in steady)
                                                    / sum(e["train_sec"] for e in steady))
    if step_sec:
        step_sec.sort()
        result["training"]["step_compute_samples_per_sec_median"] = config.batch_size / step_sec[len(step_sec) // 2]
    result["epochs"] = epochs_out
    result["stopped_by_cap"] = stopped_by_cap
    result["time_to_target"] = first_reaching(epochs_out, args.target)
    del train_loader, val_loader  # workers are gone: RUSAGE_CHILDREN now covers them
    result["memory"] = memory_report(device)
    return result


class TutorialDataset:
    """A ``torch.utils.data.Dataset`` in the style of the classic sound-classification tutorial: every item opens
    its WAV file and does all the preprocessing and augmentation for that one clip."""

    def __init__(self, paths, labels, feature_config, augment) -> None:
        from lib.dsp.features import FeatureExtractor

        self.paths, self.labels = list(paths), [int(x) for x in labels]
        self.config, self.augment = feature_config, augment
        self.extractor = FeatureExtractor(feature_config)  # CPU, in each worker

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        import torch

        from lib.dsp.audio import fit_clip, load_audio, to_channels
        from lib.augment.spectrogram import apply_warp, draw_feature_warp, spec_augment, warp_axis
        from lib.augment.waveform import apply_waveform_augment, draw_waveform_augment, time_shift

        c, augment = self.config, self.augment
        waveform, rate = load_audio(self.paths[index])                 # open + decode, every epoch
        waveform = to_channels(waveform, 2)                            # the tutorial's "rechannel" step
        waveform = fit_clip(waveform, rate, c.sample_rate, c.n_samples)  # mono, "resample", "pad_trunc" to 1 s
        if augment is not None and augment.waveform_domain:            # noise, reverb, gain, EQ, shift: this clip
            draw = draw_waveform_augment(1, c.n_samples, c.sample_rate, augment)
            waveform = apply_waveform_augment(waveform[None], draw)[0]
        elif augment is not None and augment.time_shift_sec > 0:       # "time_shift", drawn per item
            max_shift = round(augment.time_shift_sec * c.sample_rate)
            waveform = time_shift(waveform, int(torch.randint(-max_shift, max_shift + 1, ()).item()), mode="roll")
        with torch.no_grad():
            features = self.extractor(waveform)                        # (1, 1, bins, frames): mel + dB + norm
        if augment is not None and (augment.freq_warp or augment.time_stretch):
            features = apply_warp(features, *draw_feature_warp(1, augment, c), warp_axis(c))
        if augment is not None:                                        # SpecAugment on this one example
            features = spec_augment(features, min(augment.freq_mask_param, c.n_bins), augment.n_freq_masks,
                                    min(augment.time_mask_param, c.n_frames), augment.n_time_masks)
        return features[0], self.labels[index]


def optimizer_and_scheduler(model, config, total_steps: int):
    """The engine's own optimizer and scheduler (AdamW + OneCycle by default), so both pipelines match; a plain
    AdamW + OneCycle (the TrainConfig defaults) if those helpers are ever renamed."""
    import torch

    try:
        from lib.engine.train import _optimizer, _scheduler
    except ImportError:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate,
                                                              total_steps=total_steps, pct_start=0.2)
    optimizer = _optimizer(model, config)
    return optimizer, _scheduler(optimizer, config, total_steps)


def tutorial_validate(model, loader, device, autocast: bool) -> float:
    import torch

    model.eval()
    correct = seen = 0
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        for features, targets in loader:
            logits = model(features.to(device))
            correct += int((logits.argmax(1).cpu() == targets).sum())
            seen += len(targets)
    model.train()
    return correct / max(seen, 1)


def run_features(args: argparse.Namespace) -> dict:
    """Feature extraction throughput: batched on the device vs item by item (and with per-item file decoding)."""
    import torch

    from lib.dsp.audio import fit_clip, load_audio, to_channels
    from lib.device import resolve_device
    from lib.dsp.features import FeatureConfig, FeatureExtractor
    from lib.engine.train import featurize

    s = settings(args)
    device = resolve_device(args.device)
    feature_config = FeatureConfig()
    log("features: decoding the built-in dataset")
    dataset, decode_sec = load_dataset(args)
    rows = [{"path": "Engine, one-time: decode every file into memory (`load_builtin`, 4 threads)",
             "device": "cpu", "clips": len(dataset), "sec": decode_sec}]
    started = time.perf_counter()
    waveforms = dataset.to_tensor(feature_config.sample_rate, feature_config.n_samples)
    rows.append({"path": "Engine, one-time: clips to one tensor (`AudioDataset.to_tensor`: mono, resample, pad)",
                 "device": "cpu", "clips": len(dataset), "sec": time.perf_counter() - started})

    def batched(on: str) -> dict:
        dev = torch.device(on)
        extractor = FeatureExtractor(feature_config).to(dev)
        x = waveforms.to(dev)
        featurize(extractor, x[:512])  # warm-up
        synchronize(dev)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            featurize(extractor, x)
            synchronize(dev)
            times.append(time.perf_counter() - t0)
        return {"path": "Engine: batched `featurize` of all clips (chunks of 128)", "device": str(dev),
                "clips": len(x), "sec": sorted(times)[1]}

    devices = [str(device)] + (["cpu"] if device.type != "cpu" else [])
    rows += [batched(d) for d in devices]

    n_items = min(len(dataset), s["feature_clips"] or len(dataset))
    extractor = FeatureExtractor(feature_config)
    with torch.no_grad():
        for i in range(10):
            extractor(waveforms[i])
        t0 = time.perf_counter()
        for i in range(n_items):
            extractor(waveforms[i])  # (1, time) -> (1, 1, bins, frames)
        rows.append({"path": "Item by item: `FeatureExtractor` on one in-memory clip at a time", "device": "cpu",
                     "clips": n_items, "sec": time.perf_counter() - t0})
        t0 = time.perf_counter()
        for i in range(n_items):
            w, rate = load_audio(dataset.paths[i])
            w = fit_clip(to_channels(w, 2), rate, feature_config.sample_rate, feature_config.n_samples)
            extractor(w)
        rows.append({"path": "Item by item, tutorial `__getitem__` without augmentation: decode file + rechannel "
                             "+ resample + pad + `FeatureExtractor`", "device": "cpu", "clips": n_items,
                     "sec": time.perf_counter() - t0})

    # The tutorial's whole data pipeline alone (no model): what the training loop can be fed at most.
    paths, labels, groups, _ = manifest_entries(args)
    split = the_split(labels, groups)
    from lib.augment import AugmentConfig

    train_set = TutorialDataset([paths[i] for i in split.train], labels[split.train], feature_config, AugmentConfig())
    loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True, num_workers=args.workers)
    limit = math.ceil(n_items / 64)
    t0, seen = time.perf_counter(), 0
    for n, (features, _targets) in enumerate(loader):
        seen += len(features)
        if n + 1 >= limit:
            break
    rows.append({"path": f"Tutorial `DataLoader` alone ({args.workers} workers, batch 64, with time shift + "
                         "SpecAugment per item, no model; includes worker start-up)", "device": "cpu",
                 "clips": seen, "sec": time.perf_counter() - t0})
    del loader
    for row in rows:
        row["clips_per_sec"] = row["clips"] / row["sec"] if row["sec"] > 0 else float("inf")
    return {"rows": rows, "torch_threads": torch.get_num_threads(), "memory": memory_report(device)}


def run_model_row(args: argparse.Namespace, model_name: str) -> dict:
    s = settings(args)
    result = run_engine(args, model_name, s["model_epochs"], s["max_batches"], s["model_latency_runs"], ["cpu"])
    result.pop("epochs", None)
    return result


def worker_main(args: argparse.Namespace) -> int:
    s = settings(args)
    if args.only == "engine":
        from lib.device import resolve_device

        device = resolve_device(args.device)
        latency_devices = ["cpu"] + ([str(device)] if device.type != "cpu" else [])
        result = run_engine(args, args.model, s["epochs"], s["max_batches"], s["latency_runs"], latency_devices)
    elif args.only == "tutorial":
        result = run_tutorial(args)
    elif args.only == "features":
        result = run_features(args)
    elif args.only == "model":
        result = run_model_row(args, args.model)
    else:
        raise SystemExit(f"unknown --only {args.only!r}")
    print(RESULT_PREFIX + json.dumps(result, default=float), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------ orchestration
def run_worker(args: argparse.Namespace, only: str, model: str | None = None) -> dict:
    """This script again, in a fresh process, for one measurement; returns its JSON result (or an error)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--only", only, "--model", model or args.model,
               "--device", args.device, "--epochs", str(args.epochs), "--tutorial-cap", str(args.tutorial_cap),
               "--latency-runs", str(args.latency_runs), "--model-epochs", str(args.model_epochs),
               "--workers", str(args.workers), "--target", str(args.target), "--data-dir", str(data_dir(args)),
               "--augment", args.augment]
    if args.quick:
        command.append("--quick")
    if args.stop_at_target:
        command.append("--stop-at-target")
    started = time.perf_counter()
    process = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    for line in reversed(process.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            result["process_wall_sec"] = wall
            return result
    return {"error": f"`--only {only}` exited with {process.returncode} and no result "
                     f"(last output: {process.stdout.strip()[-300:]!r})", "process_wall_sec": wall}


def machine() -> dict:
    import torch
    import torchaudio


    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "torchaudio": torchaudio.__version__, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}"}
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        memory = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["memory_gib"] = int(memory.split()[1]) / 2**20
    except (OSError, StopIteration, ValueError):
        pass
    return info


def fmt(value, spec: str = ".0f", missing: str = "—") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def pct(value) -> str:
    return fmt(None if value is None else 100 * value, ".1f") + ("%" if value is not None else "")


def error_line(name: str, result: dict) -> list[str]:
    return [f"*{name}: failed — {result['error']}*", ""] if "error" in result else []


def render(args: argparse.Namespace, command: str, info: dict, results: dict, generated_sec: float | None,
           total_sec: float) -> str:
    s = settings(args)
    engine, tutorial, features = results.get("engine", {}), results.get("tutorial", {}), results.get("features", {})
    lines = ["## Training engine vs. a tutorial-style pipeline", ""]
    lines.append(f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
                 + (" with `--quick` (tiny smoke-test settings: not representative)" if args.quick else "")
                 + f"; the whole benchmark took {total_sec / 60:.1f} min.")
    lines += ["", f"Command: `{command}`", ""]
    train_device = engine.get("device") or tutorial.get("device") or args.device
    lines.append(f"Machine: {info['cpu']}, {info['cores']} cores (`os.cpu_count()`), "
                 + (f"{info['memory_gib']:.0f} GiB RAM, " if "memory_gib" in info else "")
                 + f"{info['os']}; Python {info['python']}, torch {info['torch']}, torchaudio {info['torchaudio']}, "
                 f"{info['torch_threads']} torch threads; training device: {train_device}."
                 + (f" Load average at start: {', '.join(map(str, info['load_average']))}."
                    if "load_average" in info else ""))
    n_train = engine.get("n_train") or tutorial.get("n_train")
    lines += ["", f"Data: the built-in set (default `BuiltinSpec`: {engine.get('n_clips', '3000')} one-second 16 kHz "
                  f"clips, 10 words), split with `split_dataset(labels, groups, 0.15, 0.15, seed=0)` so voices are held "
                  f"out: {n_train} train / {engine.get('n_validation') or tutorial.get('n_validation')} validation / "
                  f"{engine.get('n_test') or tutorial.get('n_test')} test clips. Model `{args.model}` "
                  f"({fmt(engine.get('n_parameters') or tutorial.get('n_parameters'), ',')} parameters), default "
                  f"`TrainConfig` (batch 64, AdamW lr 1e-2, weight decay 1e-2, OneCycle, label smoothing 0.05, bf16 "
                  f"autocast on CUDA only) and {augment_words(args.augment)} for both pipelines, {s['epochs']} epochs "
                  f"planned"
                  + (f", at most {s['max_batches']} batches per epoch" if s["max_batches"] else "") + ".", ""]
    if engine.get("n_train") and tutorial.get("n_train") and engine["n_train"] != tutorial["n_train"]:
        lines += [f"**Warning: the two pipelines saw different splits ({engine['n_train']} vs {tutorial['n_train']} "
                  "training clips).**", ""]
    lines += ["Each pipeline ran in its own process. *Tutorial*: a `torch.utils.data.Dataset` whose `__getitem__` "
              "opens the WAV file (`lib.dsp.audio.load_audio`), converts to 2 channels and back to mono, resamples "
              "(`lib.dsp.audio.resample`, a no-op here), pads/trims to 1 s, applies a random time shift "
              "(`lib.augment.waveform.time_shift`), computes mel + dB + per-clip normalisation (`FeatureExtractor` on one clip) "
              f"and SpecAugment (`spec_augment` on one example), fed by `DataLoader(batch_size=64, shuffle=True, "
              f"num_workers={args.workers})`, then a plain training loop with the engine's optimizer, scheduler and loss. "
              "*Engine*: `lib.engine.train.iter_training(..., save=False)`.", ""]

    # 1. training throughput
    lines += ["### 1. Training throughput", ""]
    lines += error_line("tutorial", tutorial) + error_line("engine", engine)
    lines += ["Samples/s from wall time of whole epochs (training only; validation excluded). *First epoch* counts "
              "everything from the start of the pipeline to the end of epoch 1: for the engine the one-time "
              "clips-to-tensor and feature caching (not the decoding of the files, listed separately), for the "
              "tutorial the DataLoader worker start-up. *Steady* is the mean of epochs 2 and later.", ""]
    lines += ["| Pipeline | one-time setup | first epoch | first epoch samples/s | steady epoch | steady samples/s "
              "| per-step samples/s (median) | epochs measured |",
              "|---|---|---|---|---|---|---|---|"]

    def train_row(name: str, r: dict, setup: str, step: str) -> str:
        t = r.get("training", {})
        return (f"| {name} | {setup} | {fmt(t.get('first_epoch_sec'), '.2f')} s | "
                f"{fmt(t.get('first_samples_per_sec'))} | {fmt(t.get('steady_epoch_sec'), '.2f')} s | "
                f"**{fmt(t.get('steady_samples_per_sec'))}** | {step} | {t.get('epochs_run', '—')} |")

    if "training" in tutorial:
        wait = tutorial["training"].get("data_wait_fraction")
        lines.append(train_row("Tutorial (per-item `Dataset` + `DataLoader`)", tutorial,
                               "none (decodes and featurises every epoch)",
                               fmt(tutorial["training"].get("step_compute_samples_per_sec_median"))
                               + " (model step only; waiting for data: "
                               + (pct(wait) if wait is not None else "—") + " of a steady epoch)"))
    if "training" in engine:
        lines.append(train_row("Engine (`lib.engine.train.iter_training`)", engine,
                               f"decode files {fmt(engine.get('decode_sec'), '.1f')} s (once per session), in the "
                               f"first epoch: tensors + feature cache {fmt(engine.get('setup_sec'), '.2f')} s",
                               fmt(engine["training"].get("step_event_samples_per_sec_median"))
                               + " (`StepEvent.samples_per_sec`)"))
    if "training" in engine and "training" in tutorial:
        e, t = engine["training"], tutorial["training"]
        steady = e["steady_samples_per_sec"] / t["steady_samples_per_sec"]
        first = e["first_samples_per_sec"] / t["first_samples_per_sec"]
        lines += ["", f"**Engine / tutorial: {steady:.1f}x in steady epochs, {first:.1f}x in the first epoch** "
                      f"(target: at least 5x)."]
    lines.append("")

    # 2. features
    lines += ["### 2. Feature extraction", ""] + error_line("features", features)
    if "rows" in features:
        lines += [f"Mel spectrogram + dB + per-clip normalisation (`FeatureConfig()` defaults: 40 mels, 101 frames), "
                  f"{features.get('torch_threads')} torch threads; timings of batched `featurize` are the median of 3 "
                  "runs after a warm-up.", "",
                  "| Path | device | clips | time | clips/s |", "|---|---|---|---|---|"]
        for row in features["rows"]:
            lines.append(f"| {row['path']} | {row['device']} | {row['clips']} | {fmt(row['sec'], '.2f')} s | "
                         f"**{fmt(row['clips_per_sec'])}** |")
        lines.append("")

    # 3. time to target
    lines += [f"### 3. Time to {args.target:.0%} validation accuracy", ""]
    lines += [f"Validation after every epoch on the held-out voices. The engine's time is wall time from the call "
              f"to `iter_training` (feature caching included; decoding the files, "
              f"{fmt(engine.get('decode_sec'), '.1f')} s, not included); `EpochEvent.elapsed_sec` (the engine's own "
              f"clock, from the first step) in brackets. The tutorial run is capped at {s['tutorial_cap']:.0f} s of "
              f"training (checked at the end of each epoch), with the same {s['epochs']}-epoch OneCycle schedule.", "",
              "| Pipeline | reached at | epochs run | best val accuracy | final val accuracy |", "|---|---|---|---|---|"]
    for name, r in (("Tutorial", tutorial), ("Engine", engine)):
        if "time_to_target" not in r:
            continue
        t = r["time_to_target"]
        if t["reached"]:
            reached = f"**{t['wall_sec']:.1f} s** (epoch {t['epoch']}"
            reached += f"; elapsed_sec {t['engine_elapsed_sec']:.1f} s)" if t.get("engine_elapsed_sec") else ")"
        elif name == "Tutorial" and r.get("stopped_by_cap"):
            reached = f"not reached in {s['tutorial_cap']:.0f} s (best {pct(t['best_val_accuracy'])})"
        else:
            reached = f"not reached (best {pct(t['best_val_accuracy'])})"
        final = r["epochs"][-1]["val_accuracy"] if r.get("epochs") else None
        lines.append(f"| {name} | {reached} | {len(r.get('epochs', []))} of {r.get('epochs_planned')} | "
                     f"{pct(t['best_val_accuracy'])} | {pct(final)} |")
    if engine.get("test_accuracy") is not None:
        lines += ["", f"Engine test accuracy (best epoch's weights, held-out voices): {pct(engine['test_accuracy'])}."]
    lines.append("")

    # 4. latency
    lines += ["### 4. Inference latency of a one-second clip", ""] + error_line("engine", engine)
    if engine.get("latency"):
        lines += [f"End to end: waveform → mono/resample/pad → features → model → softmax, batch 1, eval mode, "
                  f"inference mode, the model trained in section 1 (engine). {engine['latency'][0]['runs']} runs "
                  "after a warm-up.", "", "| Path | device | p50 | p95 | mean |", "|---|---|---|---|---|"]
        for row in engine["latency"]:
            lines.append(f"| {row['how']} | {row['device']} | **{row['p50_ms']:.2f} ms** | {row['p95_ms']:.2f} ms | "
                         f"{row['mean_ms']:.2f} ms |")
        lines.append("")

    # 5. memory
    lines += ["### 5. Peak memory", "",
              "`resource.getrusage(...).ru_maxrss` of each benchmark process (each pipeline ran alone in its own "
              "process; the dataset and the model included).", "",
              "| Process | peak RSS | peak RSS of a child (DataLoader worker) | CUDA peak allocated |",
              "|---|---|---|---|"]
    for name, r in (("Tutorial training", tutorial), ("Engine training", engine), ("Feature benchmark", features)):
        m = r.get("memory")
        if not m:
            continue
        child = fmt(m.get("peak_rss_children_mb"), ".0f") + " MiB" if m.get("peak_rss_children_mb") else "—"
        cuda = fmt(m.get("cuda_peak_allocated_mb"), ".0f") + " MiB" if "cuda_peak_allocated_mb" in m else "—"
        lines.append(f"| {name} | **{m['peak_rss_mb']:.0f} MiB** | {child} | {cuda} |")
    lines += ["", "The engine keeps every decoded clip (and, with feature-domain augmentation only, every clip's "
                  "features) in memory; the tutorial keeps only file paths but decodes every epoch.", ""]

    # 6. models
    models = results.get("models")
    if models:
        lines += ["### 6. Every registered model on the engine", "",
                  f"`iter_training` with default `TrainConfig` and {s['model_epochs']} epochs (a short OneCycle "
                  "schedule: accuracy is indicative only); steady samples/s from epochs 2 and later; latency as in "
                  f"section 4 on the CPU ({s['model_latency_runs']} runs).", "",
                  "| Model | parameters | first epoch samples/s | steady samples/s | best val accuracy "
                  "| one-clip latency p50 (CPU) | peak RSS |", "|---|---|---|---|---|---|---|"]
        for name, r in models.items():
            if "error" in r:
                lines.append(f"| `{name}` | failed: {r['error'][:120]} | | | | | |")
                continue
            t, lat = r.get("training", {}), (r.get("latency") or [{}])[0]
            best = r.get("time_to_target", {}).get("best_val_accuracy")
            lines.append(f"| `{name}` | {fmt(r.get('n_parameters'), ',')} | {fmt(t.get('first_samples_per_sec'))} | "
                         f"**{fmt(t.get('steady_samples_per_sec'))}** | {pct(best)} | "
                         f"{fmt(lat.get('p50_ms'), '.2f')} ms | {fmt(r.get('memory', {}).get('peak_rss_mb'))} MiB |")
        lines.append("")

    # what the engine does
    cached = engine.get("cached_features")
    lines += ["### What the engine does", "",
              "The speed comes from where the work happens, not from a different model or schedule "
              "(see `lib/engine/train.py`, `lib/augment.py`):", "",
              "- **Decode once.** The dataset is decoded once per session into memory and turned into one "
              "`(n_clips, 1, 16000)` tensor on the training device (`AudioDataset.to_tensor`); no epoch opens a file.",
              "- **Features once per clip.** When only feature-domain augmentation is on (time shift and SpecAugment: "
              "the default `AugmentConfig`), the features of every training clip are computed once, in chunks of 128 "
              "(`featurize`), and cached on the device; an epoch then costs only the model"
              + (f" (this run: features cached = {cached})." if cached is not None else "."),
              "- **Time shift as a frame roll.** On cached features the random time shift is a per-example roll by a "
              "whole number of frames (`shift_frames`: ±0.1 s = ±10 frames at hop 160), the circular waveform shift "
              "rounded to the hop, done as one gather for the whole batch.",
              "- **Whole-batch SpecAugment.** Frequency and time masks are drawn for the whole batch at once "
              "(`draw_spec_masks`, vectorised) and applied with one `torch.where`.",
              "- **Waveform-domain work batched on the device, only when asked for.** Gain and background noise "
              "(off by default) need the waveform: then each batch is shifted, gained and noised on the device and "
              "featurised as a batch; nothing is cached.",
              "- **No per-item transforms, no DataLoader workers.** A batch is an index into device tensors; "
              "there is no `Dataset.__getitem__`, no collation and no inter-process copying.",
              "- bf16 autocast on CUDA (`mixed_precision`, both pipelines here); validation runs on cached "
              "validation features."]
    return "\n".join(lines)


def orchestrate(args: argparse.Namespace) -> int:
    overall = time.perf_counter()
    from lib.data.synth.builtin import builtin_folder, generate_builtin

    spec = builtin_spec()
    cache = data_dir(args)
    generated_sec = None
    if not (builtin_folder(spec, cache) / "manifest.csv").is_file():
        log(f"generating the built-in dataset into {cache} (once)")
        t0 = time.perf_counter()
        generate_builtin(spec, cache)
        generated_sec = time.perf_counter() - t0
        log(f"generated in {generated_sec:.1f} s")
    info = machine()
    if args.models is None:
        args.models = "none" if args.quick else "all"
    from lib.models import MODELS

    if args.models == "all":  # the models that train from scratch (pretrained backbones: bench/few_shot.py)
        model_names = [name for name, spec in MODELS.items() if not spec.pretrained]
    elif args.models in ("none", ""):
        model_names = []
    else:
        model_names = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in model_names if m not in MODELS]
        if unknown:
            raise SystemExit(f"unknown model(s) {unknown}; registered: {', '.join(MODELS)}")
    if args.model not in MODELS:
        raise SystemExit(f"unknown --model {args.model!r}; registered: {', '.join(MODELS)}")

    results: dict = {}
    for only in ("features", "tutorial", "engine"):
        log(f"--- {only} (subprocess)")
        results[only] = run_worker(args, only)
        if "error" in results[only]:
            log(results[only]["error"])
    if model_names:
        results["models"] = {}
        for name in model_names:
            log(f"--- model {name} (subprocess)")
            results["models"][name] = run_worker(args, "model", name)
    command = command_line("engine.py")
    section = render(args, command, info, results, generated_sec, time.perf_counter() - overall)
    out = Path(args.out) if args.out else Path(QUICK_OUT if args.quick else DEFAULT_OUT)
    out = out if out.is_absolute() else Path.cwd() / out
    write_section(out, SECTION, section)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=2, default=float))
    print(section)
    log(f"wrote {out}")
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark the training engine against a tutorial-style pipeline.")
    p.add_argument("--out", default=None, help=f"markdown file (default: {DEFAULT_OUT}; with --quick: {QUICK_OUT})")
    p.add_argument("--model", default="kws_resnet", help="model of the engine-vs-tutorial comparison")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--quick", action="store_true", help="tiny settings to smoke-test the script (< 1 min)")
    p.add_argument("--models", default=None,
                   help="models of the per-model table: all (every model that trains from scratch), none, or a "
                        "comma-separated list (default: all; none with --quick)")
    p.add_argument("--epochs", type=int, default=30, help="epochs of the comparison (OneCycle over this many)")
    p.add_argument("--tutorial-cap", type=float, default=120.0, help="seconds of tutorial training at most")
    p.add_argument("--latency-runs", type=int, default=200)
    p.add_argument("--model-epochs", type=int, default=3, help="epochs per model in the per-model table")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the tutorial pipeline")
    p.add_argument("--target", type=float, default=TARGET_ACCURACY, help="validation accuracy to reach")
    p.add_argument("--stop-at-target", action="store_true",
                   help="stop the tutorial run once it reaches the target (default: run to the cap or the epochs)")
    p.add_argument("--data-dir", default=None, help="cache folder of the built-in set (default: data/builtin)")
    p.add_argument("--augment", choices=("default", "every"), default="default",
                   help="augmentation of both pipelines: default (time shift, SpecAugment) or every (+ warp, stretch, "
                        "noise, reverb, gain, EQ, mixup; the tutorial applies them item by item)")
    p.add_argument("--json", default=None, help="also write the raw results to this JSON file")
    p.add_argument("--only", choices=("engine", "tutorial", "features", "model"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only:
        return worker_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
