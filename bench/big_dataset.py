"""Benchmark: training on a Speech Commands v2-sized set from the on-disk cache, in bounded memory.

Data, not a test. Writes a stand-in of Speech Commands v0.02's cache (:mod:`lib.data.cache`'s format: 105,829
one-second 16 kHz clips of 35 classes, its official split as folds: 84,843 train / 9,981 validation / 11,005 test)
with synthetic words (two class-specific tones at a random offset, in noise), so the training side can be measured
without the 2.3 GB download. Then, each in its own subprocess (so each peak resident memory is its own), trains
``kws_resnet`` from the cache for a fixed number of steps with the default augmentation (features cached), with
noise and reverb on cached power spectrograms, and with noise and reverb on waveforms, and reports the setup time
(streaming every clip from the int16 cache into features), the training samples/s and the peak resident memory.
The same steps on the in-memory built-in set give the in-memory samples/s to compare with.

Usage::

    python bench/big_dataset.py                 # writes the big-dataset section of docs/benchmarks.md
    python bench/big_dataset.py --clips 20000   # a smaller stand-in (quick look)
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.report import command_line, write_section  # noqa: E402

SECTION = "big-dataset"
RESULT_PREFIX = "@@BIG-RESULT "
SC_V2_SPLIT = (84_843, 9_981, 11_005)   # train, validation, test clips of Speech Commands v0.02
CASES = {
    "default augmentation (features cached)": {},
    "noise 80% + reverb 30% on power spectrograms": dict(noise_probability=0.8, reverb_probability=0.3),
    "noise 80% + reverb 30% on waveforms": dict(noise_probability=0.8, reverb_probability=0.3, domain="waveform"),
}


def log(message: str) -> None:
    print(f"[big-dataset] {message}", file=sys.stderr, flush=True)


def write_standin(folder: Path, n_clips: int, n_classes: int = 35, sample_rate: int = 16000, seed: int = 0) -> None:
    """A cache folder in :mod:`lib.data.cache`'s format (format 1) with ``n_clips`` synthetic one-second words."""
    import torch

    from lib.dsp.audio import to_int16
    from lib.data.cache import FORMAT_VERSION

    if (folder / "meta.json").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    split = np.array(SC_V2_SPLIT, dtype=float)
    counts = np.floor(split / split.sum() * n_clips).astype(int)
    counts[0] += n_clips - counts.sum()
    folds = np.repeat([0, 1, 2], counts)          # 0 train, 1 validation, 2 test (test_fold=2, validation_fold=1)
    labels = rng.integers(0, n_classes, n_clips)
    speakers = rng.integers(0, 2_600, n_clips)
    low = 200 * 1.06 ** np.arange(n_classes)      # two tones per class
    high = 900 * 1.045 ** np.arange(n_classes)[::-1]
    t = np.arange(sample_rate) / sample_rate
    with open(folder / "waveforms.int16", "wb") as out:
        for first in range(0, n_clips, 2048):
            rows = slice(first, min(first + 2048, n_clips))
            n = rows.stop - rows.start
            onset = rng.uniform(0.05, 0.45, (n, 1))
            length = rng.uniform(0.3, 0.5, (n, 1))
            envelope = np.clip(np.minimum(t - onset, onset + length - t) * 20, 0, 1)
            pitch = rng.uniform(0.9, 1.1, (n, 1))
            word = (np.sin(2 * np.pi * low[labels[rows], None] * pitch * t)
                    + 0.6 * np.sin(2 * np.pi * high[labels[rows], None] * pitch * t)) * envelope
            audio = 0.25 * word + rng.normal(0, 0.02, (n, sample_rate))
            out.write(to_int16(torch.from_numpy(audio)).numpy().tobytes())
    with open(folder / "index.csv", "w", newline="", encoding="utf-8") as f:
        table = csv.writer(f)
        table.writerow(("row", "offset", "length", "path", "label", "group", "fold", "start", "duration",
                        "source_rate", "source_channels"))
        for row in range(n_clips):
            table.writerow((row, row * sample_rate, sample_rate, f"word{labels[row]}/{speakers[row]:04x}_{row}.wav",
                            f"word{labels[row]}", f"{speakers[row]:04x}", folds[row], 0.0, 1.0, sample_rate, 1))
    meta = {"format": FORMAT_VERSION, "key": "speech_commands_v2_standin", "name": "Speech Commands v2 stand-in",
            "source": {"kind": "standin"}, "class_names": [f"word{i}" for i in range(n_classes)],
            "sample_rate": sample_rate, "n_samples": sample_rate, "clip_seconds": 1.0, "crops": "center",
            "fingerprint": f"standin-{n_clips}-{seed}", "n_rows": n_clips, "has_folds": True, "failed": []}
    (folder / "meta.json").write_text(json.dumps(meta))


def measure(args: argparse.Namespace) -> dict:
    """One case in this process: train from the cache (or the built-in set) and report speed and memory."""
    import torch

    from lib.augment import AugmentConfig
    from lib.device import keep_freed_memory
    from lib.dsp.features import FeatureConfig
    from lib.engine.train import StartEvent, StepEvent, TrainConfig, iter_training

    keep_freed_memory()  # as a training job's process does: its peak memory includes what the heap keeps
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.in_memory:
        from lib.data.sources import load_builtin

        dataset, folds = load_builtin(None, ROOT / "data" / "builtin"), {}
    else:
        from lib.data.cache import open_cache

        dataset, folds = open_cache(args.folder), dict(test_fold=2, validation_fold=1)
    config = TrainConfig(model="kws_resnet", epochs=1, max_batches=args.steps, device="cpu",
                         augment=AugmentConfig(**CASES[args.only]), **folds)
    started, setup, rates = time.perf_counter(), None, []
    for event in iter_training(dataset, FeatureConfig(), config, save=False):
        if isinstance(event, StartEvent):
            setup = time.perf_counter() - started
        elif isinstance(event, StepEvent) and event.step > 5:
            rates.append(event.samples_per_sec)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n_clips": len(dataset), "setup_sec": setup, "samples_per_sec": float(np.median(rates)),
            "peak_rss_mb": peak_mb}


def run_case(args: argparse.Namespace, case: str, in_memory: bool = False) -> dict:
    command = [sys.executable, __file__, "--only", case, "--folder", str(args.folder), "--steps", str(args.steps)]
    command += ["--in-memory"] if in_memory else []
    command += ["--threads", str(args.threads)] if args.threads else []
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        return {"error": (completed.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def render(results: dict, args: argparse.Namespace, command: str) -> str:
    lines = ["## A Speech Commands v2-sized set in bounded memory (`bench/big_dataset.py`)", "",
             f"{args.clips:,} one-second clips read from the on-disk int16 cache ({args.clips * 32_000 / 1e9:.1f} GB), "
             f"`kws_resnet`, batch 64, {args.steps} training steps, CPU"
             f"{f', {args.threads} torch thread(s)' if args.threads else ''}; each row in its own process. "
             f"Generated {time.strftime('%Y-%m-%d')} by `{command}`.", "",
             "| data | augmentation | setup (stream into the cache) | training samples/s | peak resident memory |",
             "|---|---|---|---|---|"]
    for (case, where), r in results.items():
        if "error" in r:
            lines.append(f"| {where} | {case} | error: {r['error']} | | |")
            continue
        lines.append(f"| {where} ({r['n_clips']:,} clips) | {case} | {r['setup_sec']:.0f} s | "
                     f"{r['samples_per_sec']:,.0f} | {r['peak_rss_mb'] / 1024:.2f} GiB |")
    lines += ["", "Setup decodes nothing: it streams the cached int16 rows chunk by chunk (read with `pread`, so no "
              "file pages stay in the process) into features or power spectrograms, which then stay in memory "
              "(16 KB a clip). Augmenting on waveforms keeps the training clips as int16 instead (32 KB a clip)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/big_dataset.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/benchmarks.md")
    p.add_argument("--clips", type=int, default=sum(SC_V2_SPLIT))
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--folder", default=None, help="the stand-in cache (default: data/cache/standin-<clips>)")
    p.add_argument("--only", choices=list(CASES), help="(internal) measure one case in this process")
    p.add_argument("--in-memory", action="store_true", help="(internal) the in-memory built-in set instead")
    args = p.parse_args(argv)
    args.folder = Path(args.folder or ROOT / "data" / "cache" / f"standin-{args.clips}")
    if args.only:
        print(RESULT_PREFIX + json.dumps(measure(args)), flush=True)
        return 0
    started = time.perf_counter()
    write_standin(args.folder, args.clips)
    log(f"stand-in ready in {time.perf_counter() - started:.0f} s: {args.folder}")
    results = {}
    for case in CASES:
        results[(case, "on-disk cache")] = run_case(args, case)
        log(f"{case}: {results[(case, 'on-disk cache')]}")
    first = next(iter(CASES))
    results[(first, "in memory, the built-in set")] = run_case(args, first, in_memory=True)
    command = command_line("big_dataset.py", argv)
    body = render(results, args, command)
    write_section(args.out, SECTION, body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
