"""A folder of recorded takes: one sub-folder per class, one WAV file per take (the layout
:func:`lib.data.sources.load_folder` opens), as the Record page collects them and the Evaluate page tests on them.

Naming (:func:`is_valid_name`), listing (:func:`class_takes`, :func:`take_counts`, :func:`recording_sets`),
checking a take (:func:`take_problem`), splitting a long take into one clip per sound (:func:`split_take`) and
writing generated background takes (:func:`write_background_takes`).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from torch import Tensor

from lib.dsp.audio import AUDIO_EXTENSIONS, save_wav
from lib.serving.background import background_clips
from lib.serving.detect import is_silent, sound_windows

__all__ = ["NAME_RULE", "is_valid_name", "class_takes", "take_counts", "recording_sets", "take_problem",
           "take_stem", "split_take", "write_background_takes"]

#: A dataset or class name: it becomes a folder name.
NAME_RULE = re.compile(r"[A-Za-z0-9 _-]{1,64}")


def is_valid_name(name: str) -> bool:
    """Whether ``name`` can name a dataset or class folder: letters, digits, spaces, '-' and '_', 1 to 64."""
    return NAME_RULE.fullmatch(name) is not None


def class_takes(folder: Path) -> dict[str, list[Path]]:
    """The audio files of each class sub-folder of ``folder``, oldest first (by name: takes are named by time),
    classes sorted without case; hidden files and folders left out. ``{}`` when there is no such folder."""
    if not folder.is_dir():
        return {}
    return {sub.name: sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                             and not p.name.startswith("."))
            for sub in sorted(folder.iterdir(), key=lambda d: d.name.lower())
            if sub.is_dir() and not sub.name.startswith(".")}


def take_counts(folder: Path) -> dict[str, int]:
    """Audio files per class sub-folder of ``folder`` (:func:`class_takes`)."""
    return {name: len(takes) for name, takes in class_takes(folder).items()}


def recording_sets(recordings_dir: Path) -> list[str]:
    """The datasets (sub-folders) of the recordings folder, sorted; ``[]`` when it does not exist."""
    return sorted(p.name for p in recordings_dir.iterdir() if p.is_dir()) if recordings_dir.is_dir() else []


def take_problem(waveform: Tensor, quiet_ok: bool = False) -> str | None:
    """What is wrong with a decoded take ``(channels, time)``: ``"nonfinite"`` (NaN or infinite samples),
    ``"silent"`` (:func:`lib.serving.detect.is_silent`, unless ``quiet_ok``: a background take), or None."""
    if not bool(waveform.isfinite().all()):
        return "nonfinite"
    if is_silent(waveform.numpy()) and not quiet_ok:
        return "silent"
    return None


def take_stem(folder: Path, label: str, when: datetime) -> Path:
    """``<folder>/<label>/<time to the microsecond>``: a take's path without its suffix."""
    return folder / label / f"{when:%Y%m%d-%H%M%S-%f}"


def split_take(waveform: Tensor, sample_rate: int, stem: Path, clip_seconds: float, whole: bool = False,
               max_takes: int = 60) -> list[tuple[Path, Tensor]]:
    """A take as the clips to save: one clip centred on each sound heard in it (:func:`lib.serving.detect.sound_windows`,
    at most ``max_takes``), or, when ``whole`` (a background take), the whole take.

    Args:
        waveform: ``(channels, time)`` float samples.
        sample_rate: Hz.
        stem: The take's path without suffix (:func:`take_stem`).
        clip_seconds: The clip length the windows have.
        whole: Keep the take whole.
        max_takes: Most clips made from one take.

    Returns:
        ``[(path, clip), ...]``: ``stem.wav`` for one clip, ``stem-1.wav``, ``stem-2.wav``, ... for several; each
        clip ``(channels, window)``.
    """
    windows = [(0, waveform.shape[-1])] if whole else \
        [(start, end) for start, end, _ in sound_windows(waveform.mean(0).numpy(), sample_rate,
                                                          clip_seconds)][:max_takes]
    paths = [stem.with_name(f"{stem.name}-{i + 1}.wav") if len(windows) > 1 else stem.with_suffix(".wav")
             for i in range(len(windows))]
    return [(path, waveform[:, start:end]) for path, (start, end) in zip(paths, windows)]


def write_background_takes(target: Path, n_takes: int, sample_rate: int, seed: int) -> list[Path]:
    """Write ``n_takes`` takes of silence and quiet noise (:func:`lib.serving.background.background_clips`) into the class
    folder ``target``; returns their paths. Raises OSError when the folder cannot be written."""
    paths = []
    for i, clip in enumerate(background_clips(n_takes, sample_rate, seed=seed)):
        paths.append(target / f"generated-{datetime.now():%Y%m%d-%H%M%S}-{i}.wav")
        save_wav(paths[-1], clip[None], sample_rate)
    return paths
