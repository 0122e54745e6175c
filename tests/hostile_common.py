"""What the hostile-input suite (tests/test_hostile_*.py) shares: tiny WAVs, a planted secret, tree snapshots, a
run saved without training, and an app whose allowed folders are a test's own."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

SECRET = "root:x:0:0:SECRET-LINE-never-shown"  # the first line of a file outside the allowed folders


def tone(path: Path, freq: float = 440.0, seconds: float = 0.25, sample_rate: int = 16000,
         channels: int = 1) -> Path:
    """A short sine WAV (16-bit) at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(path, np.repeat(x[:, None], channels, axis=1), sample_rate, subtype="PCM_16")
    return path


def class_folder(root: Path, classes=("low", "high"), per_class: int = 3) -> Path:
    """``root/<class>/<class><i>.wav``: a tiny folder dataset."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            tone(root / name / f"{name}{i}.wav", 300.0 * (c + 1) + 40 * i)
    return root


def plant_secret(folder: Path) -> Path:
    """A folder outside the allowed ones holding ``secret.txt`` (``SECRET`` as its first line) and an audio file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "secret.txt").write_text(SECRET + "\nsecond line\n")
    tone(folder / "private.wav", 523.0)
    return folder


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (links not followed): ``relative path -> (size, mtime_ns)`` of files
    and links, ``(0, 0)`` for folders (a write probe may touch a folder's time)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            out[str(path.relative_to(root))] = (0, 0) if path.is_dir() and not path.is_symlink() else (
                info.st_size, info.st_mtime_ns)
    return out


def save_untrained_run(root: Path, run_id: str, *, config: dict | None = None, metrics: dict | None = None,
                       model: str = "tutorial_cnn", class_names=("low", "high")) -> Path:
    """A run saved with fresh weights (no training): for tests of what pages do with its files."""
    from lib.dsp.features import FeatureConfig
    from lib.models import build_model
    from lib.engine.runs import RunRecord, save_run

    feature_config = FeatureConfig()
    net = build_model(model, len(class_names), feature_config.n_bins, feature_config.n_frames)
    record = RunRecord(model=model, class_names=list(class_names), feature_config=feature_config,
                       status="finished", created="2000-01-01T00:00:00")
    path = save_run(root, run_id, state_dict=net.state_dict(), record=record, metrics=metrics or {}, overwrite=True)
    if config:  # tampered by hand afterwards: config.json as a hostile user edits it
        written = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**written, **config}))
    return path


def report(class_names, predictions: list[dict]) -> dict:
    """A test report as metrics.json holds it, with ``predictions``."""
    from lib.engine.metrics import classification_metrics

    result = classification_metrics([p["true"] for p in predictions], [p["pred"] for p in predictions],
                                    list(class_names))
    return json.loads(json.dumps({**result, "predictions": predictions}, default=lambda o: o.tolist()))


def texts(at) -> str:
    """Everything an AppTest page shows as text (errors, warnings, infos, markdown, captions), one string."""
    parts = []
    for kind in ("error", "warning", "info", "success", "markdown", "caption", "exception"):
        parts += [str(getattr(element, "value", "")) for element in getattr(at, kind)]
    return "\n".join(parts)
