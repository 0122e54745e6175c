"""Opening datasets: the built-in set, a folder of class sub-folders, a CSV manifest, or any source dict a run
records (:func:`load_source`, which also opens the catalog's large sets through :mod:`lib.data.cache`).

Every file is decoded once (with ``soundfile``) into memory, as an :class:`lib.data.dataset.AudioDataset`; files that
fail to decode are skipped and listed in its ``failed``. :meth:`~lib.data.dataset.AudioDataset.to_tensor` turns the
clips into one fixed-size batch ``(n_clips, 1, n_samples)`` at the feature sample rate, so an epoch never decodes
again.

Splits are stratified by class, deterministic by seed and keep every group (voice, speaker, recording) inside
one split; a dataset with its own folds can be split by holding one out.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lib.dsp.audio import AUDIO_EXTENSIONS, AudioDecodeError, load_audio
from lib.data.synth.builtin import BuiltinSpec, builtin_name, generate_builtin
from lib.data.dataset import AudioDataset, ClipDataset, DatasetError, ProgressCallback
from lib.data.cache import cached_dataset
from lib.settings import settings
from lib.paths import confine, is_inside

__all__ = ["DatasetError", "AudioDataset", "ClipDataset", "Split", "load_folder", "load_csv", "load_builtin",
           "load_source", "catalog_cache_args", "split_dataset", "fold_split"]

OUTSIDE = "outside the allowed folders (not read)"


def _decode_all(entries: list[tuple[str, str, str, int | None]], progress: ProgressCallback | None):
    """Decode ``(path, label, group, fold)`` entries in threads; returns the decoded ones and the failures."""
    def decode(path: str):
        try:
            waveform, rate = load_audio(path)
            return waveform, rate, None
        except AudioDecodeError as error:
            return None, None, str(error)

    decoded, failed = [], []
    with ThreadPoolExecutor(max_workers=4) as pool:
        for n, (entry, (waveform, rate, error)) in enumerate(zip(entries, pool.map(decode, [e[0] for e in entries]))):
            if error is None:
                decoded.append((*entry, waveform, rate))
            else:
                failed.append((entry[0], error))
            if progress and ((n + 1) % 100 == 0 or n + 1 == len(entries)):
                progress(n + 1, len(entries))
    return decoded, failed


def _build(name: str, source: dict, entries, progress, class_names: list[str] | None = None) -> AudioDataset:
    decoded, failed = _decode_all(entries, progress)
    if not decoded:
        reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in failed[:3])
        raise DatasetError(f"none of the {len(entries)} audio files in {name!r} could be decoded ({reasons})")
    class_names = class_names or sorted({e[1] for e in decoded})
    index = {c: i for i, c in enumerate(class_names)}
    has_folds = any(e[3] is not None for e in decoded)
    return AudioDataset(
        name=name, source=source, class_names=class_names, paths=[e[0] for e in decoded],
        labels=np.array([index[e[1]] for e in decoded], dtype=np.int64), groups=[e[2] for e in decoded],
        waveforms=[e[4] for e in decoded], sample_rates=[e[5] for e in decoded],
        folds=[e[3] for e in decoded] if has_folds else None, failed=failed)


def load_folder(root: str | Path, progress: ProgressCallback | None = None,
                roots: tuple[Path, ...] | None = None) -> AudioDataset:
    """A folder with one sub-folder per class (``root/<label>/*.wav``); labels come from folder names.

    Each file is its own group. Raises :class:`DatasetError` when the folder is missing or holds no audio, and
    :class:`lib.paths.PathNotAllowed` when ``roots`` is given and the folder lies outside them (files linked in
    from outside them are then listed in ``failed``, never read).
    """
    root = confine(root, roots) if roots is not None else Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"folder not found: {root}. Give a folder with one sub-folder per class.")
    entries = [(str(p), sub.name, str(p), None)
               for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
               for p in sorted(sub.rglob("*")) if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()]
    if not entries:
        raise DatasetError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in the class sub-folders of {root}. "
                           "Put each class's clips in a sub-folder named after the class.")
    outside = [(e[0], OUTSIDE) for e in entries if roots is not None and not is_inside(e[0], roots)]
    entries = [e for e in entries if roots is None or is_inside(e[0], roots)]
    dataset = _build(root.name, {"kind": "folder", "path": str(root)}, entries, progress)
    dataset.failed = outside + dataset.failed
    return dataset


def load_csv(csv_path: str | Path, root: str | Path | None = None,
             progress: ProgressCallback | None = None, roots: tuple[Path, ...] | None = None) -> AudioDataset:
    """A CSV manifest with columns ``path`` and ``label`` and optional ``group`` and ``fold``.

    Relative paths are resolved against ``root`` (default: the CSV's folder). Missing files are listed in
    ``failed``. Raises :class:`DatasetError` for a missing file, missing columns or no usable rows; messages
    never quote the file's text. With ``roots`` the manifest and its root must lie inside them
    (:class:`lib.paths.PathNotAllowed`) and rows naming files outside them are listed in ``failed``, never read.
    """
    csv_path = confine(csv_path, roots) if roots is not None else Path(csv_path).expanduser()
    if not csv_path.is_file():
        raise DatasetError(f"CSV manifest not found: {csv_path}")
    base = (confine(root, roots) if roots is not None else Path(root).expanduser()) if root else csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{csv_path.name} is not a readable CSV file (a text file in UTF-8 with a header "
                           "line 'path,label')") from error
    columns = set(rows[0].keys()) if rows else set()
    missing = {"path", "label"} - columns
    if missing:  # the header is not quoted back: the file may be anything readable
        raise DatasetError(f"{csv_path.name} lacks the column(s) {', '.join(sorted(missing))} in its first line. "
                           "A manifest needs 'path' and 'label' (and may have 'group' and 'fold').")
    entries, failed, first_seen = [], [], {}
    for n, row in enumerate(rows, start=2):
        path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not path or not label:
            failed.append((f"{csv_path.name} line {n}", "empty path or label"))
            continue
        full = Path(path) if Path(path).is_absolute() else base / path
        seen = first_seen.setdefault(os.path.normpath(full), (n, label))
        if seen[1] != label:  # one clip under two labels would train on both answers
            raise DatasetError(f"{csv_path.name} lists {path} twice with different labels: {seen[1]!r} on line "
                               f"{seen[0]} and {label!r} on line {n}. Keep one label per file.")
        if roots is not None and not is_inside(full, roots):
            failed.append((str(full), OUTSIDE))
            continue
        if not full.is_file():
            failed.append((str(full), "file not found"))
            continue
        fold = (row.get("fold") or "").strip()
        try:
            fold_value = int(fold) if fold else None
        except ValueError:
            raise DatasetError(f"{csv_path.name} line {n}: fold must be a whole number") from None
        entries.append((str(full), label, (row.get("group") or "").strip() or str(full), fold_value))
    if not entries:
        raise DatasetError(f"no usable rows in {csv_path.name}: {len(failed)} row(s) point to missing files "
                           f"(paths are relative to {base}).")
    dataset = _build(csv_path.stem, {"kind": "csv", "path": str(csv_path), "root": str(base)}, entries, progress)
    dataset.failed = failed + dataset.failed
    return dataset


def load_builtin(spec: BuiltinSpec | None = None, cache_dir: str | Path | None = None,
                 progress: ProgressCallback | None = None) -> AudioDataset:
    """The built-in Synthetic Speech Commands set: generated on first use (see :mod:`lib.data.synth.builtin`), then decoded.

    ``progress(done, total)`` reports generation, then decoding.
    """
    spec, cache_dir = spec or BuiltinSpec(), cache_dir or settings().builtin_cache
    manifest = generate_builtin(spec, cache_dir, progress)
    dataset = load_csv(manifest, progress=progress)
    dataset.name = builtin_name(spec)
    dataset.source = {"kind": "builtin", "spec": asdict(spec), "cache_dir": str(cache_dir)}
    # Keep the spec's class order (words as given), not alphabetical.
    order = {c: i for i, c in enumerate(spec.class_names)}
    remap = np.array([order[c] for c in dataset.class_names])
    dataset.labels = remap[dataset.labels]
    dataset.class_names = spec.class_names
    return dataset


def catalog_cache_args(source: dict, data_dir: str | Path | None = None) -> dict:
    """``lib.data.cache.cached_dataset`` arguments of a real dataset's source (``{"kind": "catalog", "key", "root",
    ...}``); a run's recorded source keeps the sample rate and clip length under ``"cache"``. ``data_dir``
    defaults to the operator's (:func:`lib.settings.settings`)."""
    cache = source.get("cache") or {}
    return dict(key=source["key"], root=source["root"], cache_root=Path(data_dir or settings().data_dir) / "cache",
                sample_rate=int(source.get("sample_rate", cache.get("sample_rate", 16000))),
                clip_seconds=float(source.get("clip_seconds", cache.get("clip_seconds", 1.0))),
                **source.get("options", {}))


def load_source(source: dict, data_dir: str | Path | None = None, progress: ProgressCallback | None = None,
                builtin_cache: str | Path | None = None, roots: tuple[Path, ...] | None = None) -> ClipDataset:
    """Open the dataset a source describes: the dict :attr:`AudioDataset.source` and saved runs record.

    Args:
        source: ``{"kind": "builtin", "spec": {...}}``, ``{"kind": "folder", "path": ...}``,
            ``{"kind": "csv", "path": ..., "root": ...}`` or ``{"kind": "catalog", "key": ..., "root": ...}``.
        data_dir: the data folder (default: the operator's, :func:`lib.settings.settings`): built-in sets are
            cached in ``<data_dir>/builtin``, real datasets' decoded clips in ``<data_dir>/cache``.
        progress: ``progress(done, total)`` while generating, decoding or building a cache.
        builtin_cache: where built-in sets are cached instead of ``<data_dir>/builtin`` (a training process
            reopens a set where the app found it: ``source["cache_dir"]``).
        roots: the folders a folder, CSV or real dataset may be read from (:mod:`lib.paths`; the pages pass
            the allowed folders); None reads anywhere (the command line).

    Raises:
        DatasetError: the kind is unknown, or the dataset cannot be opened (the message says why).
        lib.paths.PathNotAllowed: a path lies outside ``roots``.
    """
    kind = source.get("kind")
    data_dir = Path(data_dir or settings().data_dir)
    if kind == "builtin":
        return load_builtin(BuiltinSpec(**source["spec"]), builtin_cache or Path(data_dir) / "builtin", progress)
    if kind == "folder":
        return load_folder(source["path"], progress, roots)
    if kind == "csv":
        return load_csv(source["path"], source.get("root"), progress, roots)
    if kind == "catalog":
        if roots is not None:
            confine(source["root"], roots)
        return cached_dataset(**catalog_cache_args(source, data_dir), progress=progress)
    raise DatasetError(f"unknown dataset kind {kind!r}: expected builtin, folder, csv or catalog")


@dataclass(frozen=True)
class Split:
    """Index arrays into a dataset: ``train``, ``validation`` and ``test`` (each ``(n,)`` int64, sorted)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def _group_holdout(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask selecting about ``fraction`` of the clips, whole groups only, classes balanced.

    Groups are visited in a seeded random order and taken while they bring the held-out class counts closer
    to ``fraction`` of each class's total (a greedy stratified group split).
    """
    n_classes = int(labels.max()) + 1
    unique, inverse = np.unique(groups, return_inverse=True)
    per_group = np.zeros((len(unique), n_classes))
    np.add.at(per_group, (inverse, labels), 1)
    target = fraction * per_group.sum(axis=0)
    taken = np.zeros(n_classes)
    chosen = np.zeros(len(unique), dtype=bool)
    for g in np.random.default_rng(seed).permutation(len(unique)):
        after = taken + per_group[g]
        # Take the group if it lowers the total shortfall and overshoots no class by more than one group's share.
        if np.abs(target - after).sum() < np.abs(target - taken).sum():
            chosen[g] = True
            taken = after
    return chosen[inverse]


def split_dataset(labels: np.ndarray, groups: list[str] | np.ndarray | None = None, validation: float = 0.15,
                  test: float = 0.15, seed: int = 0) -> Split:
    """Stratified, grouped, seeded train/validation/test split.

    Args:
        labels: ``(n_clips,)`` class indices.
        groups: ``(n_clips,)`` group names; clips of one group always land in the same split (None: every clip
            is its own group).
        validation: fraction for validation.
        test: fraction for test.
        seed: the same seed gives the same split.

    Returns:
        A :class:`Split`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0 <= validation < 1 or not 0 <= test < 1 or validation + test >= 1:
        raise ValueError(f"validation ({validation}) and test ({test}) fractions must be in [0, 1) and sum below 1")
    groups = np.arange(len(labels)).astype(str) if groups is None else np.asarray(groups, dtype=str)
    remaining = np.arange(len(labels))
    held = {}
    for name, fraction, offset in (("test", test, 1), ("validation", validation / (1 - test), 2)):
        mask = (_group_holdout(labels[remaining], groups[remaining], fraction, seed * 1000 + offset)
                if fraction > 0 else np.zeros(len(remaining), dtype=bool))
        held[name] = remaining[mask]
        remaining = remaining[~mask]
    return Split(train=np.sort(remaining), validation=np.sort(held["validation"]), test=np.sort(held["test"]))


def fold_split(folds: list[int], test_fold: int, validation_fold: int | None = None) -> Split:
    """Split by a dataset's own folds: ``test_fold`` held out for test, ``validation_fold`` (default: the next
    fold, cyclically) for validation, the rest for training. Folds are never mixed."""
    folds_arr = np.asarray(folds)
    ordered = sorted(set(folds_arr.tolist()))
    if test_fold not in ordered:
        raise ValueError(f"fold {test_fold} is not in this dataset; its folds are {ordered}")
    if validation_fold is None:
        validation_fold = ordered[(ordered.index(test_fold) + 1) % len(ordered)]
    idx = np.arange(len(folds_arr))
    return Split(train=idx[(folds_arr != test_fold) & (folds_arr != validation_fold)],
                 validation=idx[folds_arr == validation_fold], test=idx[folds_arr == test_fold])
