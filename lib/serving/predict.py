"""Command line: classify audio files with a saved run.

Usage::

    python -m lib.serving.predict RUN FILE... [--top 3] [--device auto] [--windows] [--hop SECONDS]

``RUN`` is a run folder, or the name of a run under ``models/``. Each file prints one line::

    yes.wav: yes 0.93, no 0.04, up 0.01 (12.3 ms)

the answer being its loudest sound's (:mod:`lib.serving.detect`); a recording longer than one clip then prints one line
per sound heard in it, with its times::

      0.52-0.93 s: yes 0.95
      2.10-2.55 s: stop 0.97

and, with ``--windows``, one line per window of the timeline (``  window 0.00-1.00 s: yes 0.91``).

A file that cannot be decoded prints ``file: error: <message>`` on stderr; the other files are still
classified and the exit code is 1. A run that cannot be loaded prints its error and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lib.dsp.audio import ACCEPTED_FORMATS
from lib.device import DEVICE_CHOICES
from lib.serving.infer import Classifier, Prediction
from lib.engine.runs import RunError
from lib.settings import settings

__all__ = ["main", "resolve_run_path", "format_prediction", "format_detections", "format_windows"]


def resolve_run_path(run: str, root: str | Path | None = None) -> Path:
    """The folder of ``run``: the path itself if it is a folder, else ``<root>/<run>`` if that is one.

    Args:
        run: A run folder path or a run name.
        root: Folder of saved runs (default: the operator's, :func:`lib.settings.settings`).

    Returns:
        The folder to load (``run`` itself when neither exists, so that loading reports it missing).
    """
    path = Path(run)
    if path.is_dir():
        return path
    candidate = Path(root or settings().runs_dir) / run
    if run and "/" not in run and "\\" not in run and run not in (".", "..") and candidate.is_dir():
        return candidate
    return path


def format_prediction(name: str, prediction: Prediction, top: int = 3) -> str:
    """``name: class1 0.93, class2 0.04, class3 0.01 (12.3 ms)``."""
    classes = ", ".join(f"{label} {probability:.2f}" for label, probability in prediction.top(top))
    return f"{name}: {classes} ({prediction.latency_ms:.1f} ms)"


def format_detections(prediction: Prediction) -> list[str]:
    """One line per sound heard, ``  0.52-0.93 s: yes 0.95``; none for a recording of one clip or less."""
    if prediction.n_windows < 2:
        return []
    if not prediction.detections:
        return ["  no sound heard (silence)"]
    return [f"  {d.start_sec:.2f}-{d.end_sec:.2f} s: {d.label} {d.probability:.2f}" for d in prediction.detections]


def format_windows(prediction: Prediction) -> list[str]:
    """One line per timeline window, ``  window 0.00-1.00 s: class 0.91``; none for a single-window recording."""
    if prediction.n_windows < 2:
        return []
    length = prediction.window_seconds or 0.0
    lines = []
    for start, probabilities in zip(prediction.window_starts, prediction.window_probabilities):
        best = int(probabilities.argmax())
        lines.append(f"  window {start:.2f}-{start + length:.2f} s: {prediction.class_names[best]} "
                     f"{float(probabilities[best]):.2f}")
    return lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib.serving.predict", description="Classify audio files with a saved run.")
    p.add_argument("run", help="a run folder, or the name of a run under models/")
    p.add_argument("files", nargs="+", help=f"audio files ({', '.join(ACCEPTED_FORMATS)})")
    p.add_argument("--top", type=int, default=3, help="classes to print per file (default 3)")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} (default auto)")
    p.add_argument("--windows", action="store_true", help="also print each timeline window of files longer than one clip")
    p.add_argument("--hop", type=float, default=None, help="seconds between windows (default: half a clip)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 when every file was classified, 1 when some file failed, 2 when the run or device is unusable.
    """
    args = _parser().parse_args(argv)
    if args.top < 1:
        print("error: --top must be at least 1", file=sys.stderr)
        return 2
    try:
        classifier = Classifier.from_run(resolve_run_path(args.run), device=args.device)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # unknown or unavailable device
        print(f"error: {error}", file=sys.stderr)
        return 2
    status = 0
    for file in args.files:
        try:
            prediction = classifier.predict_file(file, hop_seconds=args.hop)
        except (ValueError, OSError) as error:  # AudioDecodeError is a ValueError
            print(f"{file}: error: {error}", file=sys.stderr)
            status = 1
            continue
        print(format_prediction(file, prediction, args.top))
        for line in format_detections(prediction):
            print(line)
        if args.windows:
            for line in format_windows(prediction):
                print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
