"""What a saved run keeps so that it can show its own test results on any machine, without its dataset.

A run's ``metrics.json`` names its test clips by path; on another machine (the shipped default model on a
fresh install) those files do not exist. So a run also keeps, next to ``config.json``:

``mistakes/<index>.flac``
    its misclassified test clips (16-bit FLAC at the clip's own rate), the most confident mistakes first,
    at most :data:`MAX_KEPT_MISTAKES` (a few hundred kB);
``test_embedding.npz``
    ``index`` ``(n,)`` int64 (dataset index of each test clip, as in the predictions) and ``embedding``
    ``(n, dim)`` float16: what the model learned to see in every test clip (its penultimate layer,
    :func:`lib.serving.infer.penultimate`), enough to draw the map of its test clips.

Runs saved before these files existed still load: every reader returns None when a file is missing.
``python -m lib.engine.run_extras RUN CLIP_FOLDER`` writes them for an old run from a folder holding its test clips
(paths as in its ``metrics.json``, relative to the dataset folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from lib.engine.evaluate import ClipPrediction, EvaluationReport

__all__ = ["MAX_KEPT_MISTAKES", "kept_mistakes", "save_run_extras", "mistake_clip", "test_embedding"]

MAX_KEPT_MISTAKES = 48
MISTAKES_DIR = "mistakes"
EMBEDDING_FILE = "test_embedding.npz"


def kept_mistakes(report: EvaluationReport) -> list[ClipPrediction]:
    """The test predictions a run keeps the clips of: the wrong ones, most confident first, at most
    :data:`MAX_KEPT_MISTAKES` (the order the Evaluate page shows them in)."""
    return report.mistakes()[:MAX_KEPT_MISTAKES]


def save_run_extras(run_path: str | Path, report: EvaluationReport | None,
                    clip: Callable[[int], tuple[torch.Tensor, int]],
                    embedding: np.ndarray | torch.Tensor | None) -> None:
    """Writes a run's misclassified test clips and its test embedding into its folder.

    Args:
        run_path: The run folder.
        report: The run's test report with its ``predictions``; None (an empty test split) writes nothing.
        clip: ``clip(index) -> (waveform (channels, time), sample_rate)`` of a dataset index (a clip id).
        embedding: ``(n_test, dim)``, row ``i`` for ``report.predictions[i]``; None: no embedding file.
    """
    predictions = report.predictions if report is not None else []
    if not predictions:
        return
    folder = Path(run_path) / MISTAKES_DIR
    folder.mkdir(exist_ok=True)
    for prediction in kept_mistakes(report):
        waveform, rate = clip(prediction.index)
        samples = torch.as_tensor(waveform).reshape(-1, torch.as_tensor(waveform).shape[-1]).T.numpy()
        sf.write(folder / f"{prediction.index}.flac", np.clip(samples, -1, 1), int(rate),
                 subtype="PCM_16", format="FLAC")
    if embedding is not None:
        embedding = np.asarray(embedding, dtype=np.float32)
        if len(embedding) != len(predictions):
            raise ValueError(f"{len(embedding)} embedding rows for {len(predictions)} test predictions")
        np.savez_compressed(Path(run_path) / EMBEDDING_FILE,
                            index=np.array([p.index for p in predictions], dtype=np.int64),
                            embedding=embedding.astype(np.float16))


def mistake_clip(run_path: str | Path, index: int) -> Path | None:
    """The kept copy of test clip ``index`` (a dataset index), or None when the run has none."""
    path = Path(run_path) / MISTAKES_DIR / f"{int(index)}.flac"
    return path if path.is_file() else None


def test_embedding(run_path: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(index (n,), embedding (n, dim) float32)`` of a run's test clips, or None when it kept none (or the
    file is unreadable)."""
    path = Path(run_path) / EMBEDDING_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            index, embedding = data["index"].astype(np.int64), data["embedding"].astype(np.float32)
    except (OSError, ValueError, KeyError):
        return None
    if embedding.ndim != 2 or len(index) != len(embedding):
        return None
    return index, embedding


def _main(argv: list[str] | None = None) -> int:
    """Backfill an old run from a folder of its test clips (see the module docstring)."""
    from lib.dsp.audio import fit_clip, load_audio
    from lib.serving.infer import Classifier
    from lib.engine.runs import load_run

    parser = argparse.ArgumentParser(prog="python -m lib.engine.run_extras",
                                     description="Keep a run's misclassified test clips and test embedding.")
    parser.add_argument("run", help="the run folder")
    parser.add_argument("clips", help="folder holding the run's test clips, at their paths in the dataset folder")
    args = parser.parse_args(argv)
    run = load_run(args.run)
    report = run.report("test")
    if report is None or not report.predictions:
        parser.error(f"run {args.run} saved no test predictions: nothing to keep")
    classifier = Classifier.from_run(args.run)
    dataset_dir = Path(str((run.record.dataset.source or {}).get("cache_dir") or ""))
    paths = {p.index: p.path for p in report.predictions}

    def clip(index: int) -> tuple[torch.Tensor, int]:
        parts = Path(paths[index]).parts
        relative = Path(*parts[-2:])  # <class>/<file>, the layout of every folder dataset
        return load_audio(Path(args.clips) / relative)

    rate, n_samples = classifier.feature_config.sample_rate, classifier.feature_config.n_samples

    clips = [fit_clip(*clip(p.index), rate, n_samples) for p in report.predictions]
    waveforms = torch.stack(clips)  # (n, 1, n_samples)
    probabilities = classifier.predict_batch(waveforms)
    agree = float((probabilities.argmax(1).numpy() == np.array([p.pred for p in report.predictions])).mean())
    print(f"{len(clips)} test clips; the model's answers match the saved ones on {agree:.1%} of them "
          f"({dataset_dir or 'dataset'})")
    save_run_extras(args.run, report, clip, classifier.embed_batch(waveforms).numpy())
    return 0


if __name__ == "__main__":
    sys.exit(_main())
