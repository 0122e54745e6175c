"""Benchmark: training speed with each augmentation, applied to waveforms and to cached power spectrograms.

Data, not a test. Trains ``kws_resnet`` on the default built-in set with each recipe below, once with the
waveform steps (shift, gain, noise, reverb, EQ) on waveforms (``AugmentConfig.domain="waveform"``: every batch
featurised again) and once on cached power spectrograms (``"spectrogram"``, :mod:`lib.augment.power`), and reports
the median samples/s of the training steps after the first epoch, against the default augmentation (time shift
and SpecAugment on cached features). Rounds are interleaved (every recipe once per round) so that a noisy
machine slows all of them alike; the table gives the median over rounds.

Usage::

    python bench/augment_speed.py                      # writes the augment-speed section of docs/benchmarks.md
    python bench/augment_speed.py --rounds 1 --steps 10 --out bench/out/augment.md   # quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.report import command_line, write_section  # noqa: E402

SECTION = "augment-speed"
DEFAULT_MODEL_RECIPE = dict(freq_warp=0.15, time_stretch=0.2, noise_probability=0.5, reverb_probability=0.3)
RECIPES: dict[str, dict] = {
    "default augmentation (shift, SpecAugment)": {},
    "noise 80%": dict(noise_probability=0.8),
    "random EQ 50%": dict(eq_probability=0.5),
    "reverb 30%": dict(reverb_probability=0.3),
    "noise 80% + reverb 30%": dict(noise_probability=0.8, reverb_probability=0.3),
    "the default model's recipe (warp, stretch, noise, reverb)": DEFAULT_MODEL_RECIPE,
    "every augmentation (+ gain, EQ, mixup)": dict(DEFAULT_MODEL_RECIPE, gain_db=6.0, eq_probability=0.5,
                                                   mixup_alpha=0.2),
}


def log(message: str) -> None:
    print(f"[augment-speed] {message}", file=sys.stderr, flush=True)


def measure(dataset, model: str, augment: dict, domain: str, steps: int, device: str) -> dict:
    """Median samples/s of the steps after the first epoch, and the setup time (caching) before the first step."""
    from lib.augment import AugmentConfig
    from lib.dsp.features import FeatureConfig
    from lib.engine.train import StartEvent, StepEvent, TrainConfig, iter_training

    config = TrainConfig(model=model, epochs=2, max_batches=steps, device=device,
                         augment=AugmentConfig(**augment, domain=domain))
    rates, setup, started, batches_from = [], None, time.perf_counter(), None
    for event in iter_training(dataset, FeatureConfig(), config, save=False):
        if isinstance(event, StartEvent):
            setup, batches_from = time.perf_counter() - started, event.batches_from
        elif isinstance(event, StepEvent) and event.epoch > 1:
            rates.append(event.samples_per_sec)
    return {"samples_per_sec": statistics.median(rates), "setup_sec": setup, "batches_from": batches_from}


def render(results: dict, args: argparse.Namespace, command: str) -> str:
    baseline = statistics.median(results[(next(iter(RECIPES)), "spectrogram")])
    lines = ["## Augmentation speed (`bench/augment_speed.py`)", "",
             f"`{args.model}` on the default built-in set, batch 64, {torch.get_num_threads()} torch thread(s) on "
             f"{args.device_name}; median samples/s of the training steps after the first epoch ({args.steps} steps "
             f"an epoch), median of {args.rounds} interleaved round(s). Generated {time.strftime('%Y-%m-%d')} by "
             f"`{command}`.", "",
             "| augmentation | on waveforms (exact) | on cached power spectrograms | speed-up | vs. the default "
             "augmentation |", "|---|---|---|---|---|"]
    for name in RECIPES:
        wave = statistics.median(results[(name, "waveform")])
        power = statistics.median(results[(name, "spectrogram")])
        lines.append(f"| {name} | {wave:,.0f} | {power:,.0f} | {power / wave:.2f}x | {power / baseline:.2f}x |")
    lines += ["", "The default augmentation caches features either way (no waveform step). \"vs. the default "
              "augmentation\" is the spectrogram column over the first row: the target is at least 0.8x for the "
              "default model's recipe."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/augment_speed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/benchmarks.md")
    p.add_argument("--model", default="kws_resnet")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=30, help="training steps an epoch (two epochs, the second timed)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--data-dir", default=str(ROOT / "data" / "builtin"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from lib.data.sources import load_builtin
    from lib.device import describe_device, keep_freed_memory, resolve_device

    keep_freed_memory()  # as a training job's process does

    args.device_name = describe_device(resolve_device(args.device))
    dataset = load_builtin(None, args.data_dir)
    results: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for name, augment in RECIPES.items():
            for domain in ("waveform", "spectrogram"):
                result = measure(dataset, args.model, augment, domain, args.steps, args.device)
                results.setdefault((name, domain), []).append(result["samples_per_sec"])
                log(f"round {round_ + 1}: {name}, {domain} ({result['batches_from']}): "
                    f"{result['samples_per_sec']:,.0f} samples/s, setup {result['setup_sec']:.1f} s")
    command = command_line("augment_speed.py", argv)
    body = render(results, args, command)
    write_section(args.out, SECTION, body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
