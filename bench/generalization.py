"""Cross-synthesizer ablation: train recipes on the built-in eSpeak set, score them on other synthesizers.

Each recipe is trained with several seeds (model-to-model spread on this set is several points, so one seed
says little) and evaluated with :func:`bench.cross_synth.evaluate_run` on the set that
``python bench/cross_synth.py build`` makes (flite and festival voices, never used for training).

Usage:
    python bench/generalization.py [--recipes baseline,wnr] [--seeds 0,1,2] [--epochs 20] [--out FILE.md]

Output: a markdown table (mean ± std over seeds of eSpeak validation accuracy and cross-synthesizer accuracy,
per engine), printed and optionally written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cross_synth import evaluate_run, validation_by_voice_kind  # noqa: E402
from lib.augment import AugmentConfig  # noqa: E402
from lib.data.synth.builtin import BuiltinSpec  # noqa: E402
from lib.data.sources import load_builtin  # noqa: E402
from lib.dsp.features import FeatureConfig  # noqa: E402
from lib.engine.train import TrainConfig, run_training  # noqa: E402

WARP = dict(freq_warp=0.15, time_stretch=0.2)
NOISE_REVERB = dict(noise_probability=0.5, reverb_probability=0.3)
EQ = dict(eq_probability=0.8, eq_db=10.0)
BIG_DATA = dict(clips_per_word=600, n_speakers=400)
PIPER = dict(piper_clips_per_word=100)
NEURAL = dict(piper_clips_per_word=100, kokoro_clips_per_word=150)
MORE_KOKORO = dict(piper_clips_per_word=100, kokoro_clips_per_word=250)

# name -> what it changes from the defaults: augmentation, feature settings, built-in set settings, training.
RECIPES: dict[str, dict[str, dict]] = {
    "baseline": {},
    "warp": {"augment": WARP},
    "noise_reverb": {"augment": NOISE_REVERB},
    "wnr": {"augment": {**WARP, **NOISE_REVERB}},
    "wnr_mixup": {"augment": {**WARP, **NOISE_REVERB, "mixup_alpha": 0.2}},
    "wnr_cmvn": {"augment": {**WARP, **NOISE_REVERB}, "features": {"normalization": "per_bin"}},
    "wnr_mfcc": {"augment": {**WARP, **NOISE_REVERB}, "features": {"kind": "mfcc", "n_mfcc": 20}},
    "wnr_bigdata": {"augment": {**WARP, **NOISE_REVERB}, "data": BIG_DATA},
    "eq": {"augment": EQ},
    "wnr_eq": {"augment": {**WARP, **NOISE_REVERB, **EQ}},
    "wnr_warp25": {"augment": {**WARP, **NOISE_REVERB, "freq_warp": 0.25}},
    "wnr_strongspec": {"augment": {**WARP, **NOISE_REVERB, "freq_mask_param": 12, "n_freq_masks": 3,
                                   "time_mask_param": 20, "n_time_masks": 3}},
    "wnr_lifter16": {"augment": {**WARP, **NOISE_REVERB}, "features": {"lifter": 16}},
    "wnr_lifter12": {"augment": {**WARP, **NOISE_REVERB}, "features": {"lifter": 12}},
    "wnr_x3": {"augment": {**WARP, **NOISE_REVERB}, "train": {"model": "kws_resnet_x3"}},
    "wnr_x3_bigdata": {"augment": {**WARP, **NOISE_REVERB}, "train": {"model": "kws_resnet_x3"}, "data": BIG_DATA},
    "wnr_x3_piper": {"augment": {**WARP, **NOISE_REVERB}, "train": {"model": "kws_resnet_x3"}, "data": PIPER},
    "wnr_x3_neural": {"augment": {**WARP, **NOISE_REVERB}, "train": {"model": "kws_resnet_x3"}, "data": NEURAL},
    "wnr_x5_neural": {"augment": {**WARP, **NOISE_REVERB}, "train": {"model": "kws_resnet_x5"}, "data": NEURAL},
    "wnr_x5_kokoro250": {"augment": {**WARP, **NOISE_REVERB}, "train": {"model": "kws_resnet_x5"},
                         "data": MORE_KOKORO},
}


def run_recipe(name: str, seed: int, epochs: int, runs_root: Path, set_dir: Path) -> dict:
    recipe = RECIPES[name]
    dataset = load_builtin(BuiltinSpec(**recipe.get("data", {})), ROOT / "data" / "builtin")
    started = time.perf_counter()
    config = TrainConfig(augment=AugmentConfig(**recipe.get("augment", {})), epochs=epochs, seed=seed,
                         **recipe.get("train", {}))
    done = run_training(dataset, FeatureConfig(**recipe.get("features", {})), config,
                        runs_root=runs_root, run_id=f"{name}-seed{seed}", overwrite=True)
    if done.status != "finished":
        raise RuntimeError(f"{name} seed {seed}: {done.message}")
    report = evaluate_run(done.run_path, set_dir)
    by_kind = validation_by_voice_kind(done.metrics)  # eSpeak clips only: neural-voice clips validate apart
    return {"recipe": name, "seed": seed, "train_sec": time.perf_counter() - started,
            "val": by_kind["eSpeak"][0] if "eSpeak" in by_kind else done.metrics["validation"]["accuracy"], "cross": report["accuracy"],
            **{f"cross_{engine}": v["accuracy"] for engine, v in report["per_engine"].items()},
            "voices": {voice: v["accuracy"] for voice, v in report["per_voice"].items()},
            "probabilities": report["probabilities"], "labels": [p["label"] for p in report["predictions"]],
            "engines": [p["group"].split("-")[0] for p in report["predictions"]],
            "class_names": report["class_names"]}


def ensemble_accuracy(rows: list[dict]) -> dict[str, float]:
    """Accuracy of the mean of the seeds' class probabilities, overall and per engine (one model per seed)."""
    names = rows[0]["class_names"]
    mean = np.mean([r["probabilities"] for r in rows], axis=0)
    correct = np.array([names[k] == label for k, label in zip(mean.argmax(axis=1), rows[0]["labels"])])
    engines = np.array(rows[0]["engines"])
    return {"cross": float(correct.mean()),
            **{f"cross_{e}": float(correct[engines == e].mean()) for e in sorted(set(engines))}}


def table(results: list[dict]) -> str:
    engines = sorted({k for r in results for k in r if k.startswith("cross_")})
    header = ["recipe", "seeds", "eSpeak val", "cross-synth overall", *[e.removeprefix("cross_") for e in engines],
              "train s", "ensemble of the seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in dict.fromkeys(r["recipe"] for r in results):
        rows = [r for r in results if r["recipe"] == name]

        def cell(key: str, percent: bool = True) -> str:
            values = np.array([r[key] for r in rows if key in r])
            if percent:
                return f"{values.mean():.1%} ± {values.std():.1%}"
            return f"{values.mean():.0f}"

        together = ensemble_accuracy(rows)
        lines.append("| " + " | ".join([name, str(len(rows)), cell("val"), cell("cross"),
                                         *[cell(e) for e in engines], cell("train_sec", False),
                                         f"{together['cross']:.1%}"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--set", default=str(ROOT / "data" / "cross_synth"))
    parser.add_argument("--runs", default=str(ROOT / "bench" / "out" / "generalization-runs"))
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args()
    results = []
    for name in args.recipes.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(run_recipe(name, seed, args.epochs, Path(args.runs), Path(args.set)))
            print(json.dumps({k: v for k, v in results[-1].items()
                              if k not in ("probabilities", "labels", "engines", "class_names")}), flush=True)
    text = table(results)
    print(text)
    if args.out:
        Path(args.out).write_text(f"python bench/generalization.py --recipes {args.recipes} --seeds {args.seeds} "
                                  f"--epochs {args.epochs}\n\n{text}\n")


if __name__ == "__main__":
    main()
