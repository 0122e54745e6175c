"""Decode a dataset once into an on-disk cache, then train from a memory map instead of decoded files.

A cache holds every clip mono, at one sample rate and one fixed length (a :class:`lib.dsp.features.FeatureConfig`'s
``sample_rate`` and ``clip_seconds``), as int16. A clip longer than the clip length is stored as its centre crop
(``crops="center"``) or as every non-overlapping crop (``crops="all"``, GTZAN's default: each crop keeps the
track as its group, so a track never spans two splits); a shorter clip is zero-padded on both sides.

A cache folder ``<cache_root>/<key>-<rate>hz-<n_samples>-<crops>-<fingerprint>/`` holds:

* ``waveforms.int16``: ``(n_rows, n_samples)`` int16, C order; row ``r`` starts at sample ``offset = r * n_samples``.
* ``index.csv``: one line per row: ``row, offset, length`` (valid samples), ``path, label, group, fold, start,
  duration`` (the clip in its source file, seconds), ``source_rate, source_channels``.
* ``meta.json``: name, source, class names, sample rate, clip length, crop mode, the index fingerprint and the
  files that failed to decode.

It is written in a temporary folder renamed when complete, decoded in threads a few files at a time (memory stays
bounded whatever the dataset size), and reused whenever the same clips are asked for with the same settings (the
folder name hashes the clip list). :class:`CachedDataset`, the on-disk :class:`lib.data.dataset.ClipDataset`, reads it
through ``numpy.memmap``. Samples are int16 ``k`` for the float ``k / 32768`` (:func:`lib.dsp.audio.to_int16`).

Example:
    >>> from lib.data.cache import cached_dataset
    >>> dataset = cached_dataset("speech_commands_v2", "data/speech_commands_v2", "data/cache",
    ...                          sample_rate=16000, clip_seconds=1.0)
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from lib.dsp.audio import center_pad_or_trim, fit_clip, from_int16, resample, to_int16
from lib.data.catalog import ClipRef, DatasetIndex, get_card, load_dataset
from lib.data.dataset import ClipDataset, DatasetError, ProgressCallback

__all__ = ["CROP_MODES", "CachedDataset", "build_cache", "open_cache", "cache_folder", "cached_dataset"]

CROP_MODES = ("center", "all")
FORMAT_VERSION = 1
_WAVEFORMS, _INDEX, _META = "waveforms.int16", "index.csv", "meta.json"
_COLUMNS = ("row", "offset", "length", "path", "label", "group", "fold", "start", "duration", "source_rate",
            "source_channels")
_READ_CHUNK = 2048  # rows converted to float at a time in to_tensor


# ------------------------------------------------------------------------------------------------ the dataset
class CachedDataset(ClipDataset):
    """A :class:`lib.data.dataset.ClipDataset` read from a disk cache (the in-memory one is
    :class:`lib.data.dataset.AudioDataset`).

    Attributes:
        name: a human name.
        source: how it was made (``{"kind": "catalog", "key", "root", "options", "cache": {...}}``).
        class_names: class names; ``labels`` index into them.
        paths: each clip's file (with ``#t=start,end`` for a segment of a file).
        labels: ``(n_clips,)`` int64 class indices.
        groups: each clip's group (speaker, recording, track).
        folds: each clip's official fold, or None.
        failed: ``(path, reason)`` for every file left out.
        sample_rate: the cached audio's sample rate (``clip`` returns it at this rate).
        n_samples: the cached clip length in samples.
        sample_rates: each clip's source sample rate (what the files hold; the cache is at ``sample_rate``).
        folder: the cache folder.
    """

    def __init__(self, folder: Path, meta: dict, table: dict[str, np.ndarray | list], waveforms: np.memmap,
                 rows: np.ndarray | None = None) -> None:
        self.folder = folder
        self._meta = meta
        self._table = table
        self._waveforms = waveforms
        self._rows = np.arange(len(table["row"]), dtype=np.int64) if rows is None else rows
        self.name: str = meta["name"]
        self.source: dict = meta["source"]
        self.class_names: list[str] = list(meta["class_names"])
        self.sample_rate: int = int(meta["sample_rate"])
        self.n_samples: int = int(meta["n_samples"])
        self.failed: list[tuple[str, str]] = [tuple(f) for f in meta["failed"]]
        self.paths: list[str] = [table["path"][r] for r in self._rows]
        self.labels: np.ndarray = table["label"][self._rows]
        self.groups: list[str] = [table["group"][r] for r in self._rows]
        folds = table["fold"][self._rows]
        self.folds: list[int] | None = folds.tolist() if meta["has_folds"] else None
        self.sample_rates: list[int] = table["source_rate"][self._rows].tolist()

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return (f"CachedDataset({self.name!r}, {len(self)} clips, {self.n_classes} classes, {self.sample_rate} Hz x "
                f"{self.n_samples} samples, {self.folder})")

    @property
    def durations(self) -> np.ndarray:
        """``(n_clips,)`` each clip's duration in its source, seconds (before cropping or padding)."""
        return self._table["duration"][self._rows].astype(np.float64)

    @property
    def channels(self) -> np.ndarray:
        """``(n_clips,)`` each clip's channel count in its source (the cache is mono)."""
        return self._table["source_channels"][self._rows].astype(np.int64)

    @property
    def lengths(self) -> np.ndarray:
        """``(n_clips,)`` valid (not padding) samples of each cached row."""
        return self._table["length"][self._rows].astype(np.int64)

    def clip(self, index: int, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
        """One clip ``(1, time)`` float32 without its padding, and its rate (resampled when ``sample_rate`` is
        given and differs from the cache's)."""
        row = int(self._rows[index])
        length = int(self._table["length"][row])
        start = (self.n_samples - length) // 2 if length < self.n_samples else 0
        waveform = from_int16(torch.from_numpy(np.array(self._waveforms[row, start:start + length])))[None]
        if sample_rate is not None and sample_rate != self.sample_rate:
            return resample(waveform, self.sample_rate, sample_rate), sample_rate
        return waveform, self.sample_rate

    def to_tensor(self, sample_rate: int, n_samples: int, indices: np.ndarray | None = None) -> torch.Tensor:
        """Clips as one batch, each fitted by :func:`lib.dsp.audio.fit_clip` (mono, ``sample_rate``, ``n_samples``);
        read from the cache a chunk at a time.

        A cache built for the same sample rate and clip length is returned as stored (int16 / 32768); another
        rate is resampled on the fly (slow: build a cache for the features' rate instead). Arguments and shape as
        :meth:`lib.data.dataset.ClipDataset.to_tensor`: ``(n_selected, 1, n_samples)`` float32.
        """
        rows = self._rows if indices is None else self._rows[np.asarray(indices, dtype=np.int64)]
        out = torch.empty(len(rows), 1, n_samples)
        for first in range(0, len(rows), _READ_CHUNK):
            block = from_int16(torch.from_numpy(self._read_rows(rows[first:first + _READ_CHUNK]))).unsqueeze(1)
            out[first:first + len(block)] = fit_clip(block, self.sample_rate, sample_rate, n_samples)
        return out

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``(n,)`` of the cache as ``(n, n_samples)`` int16, read with ``pread`` front to back. Unlike the
        memory map, reading leaves no file pages in this process's memory: streaming a 3.4 GB cache into features
        costs only the chunk at hand."""
        row_bytes = self.n_samples * 2
        stored = np.empty((len(rows), self.n_samples), dtype=np.int16)
        order = np.argsort(rows, kind="stable")
        fd = os.open(self.folder / _WAVEFORMS, os.O_RDONLY)
        try:
            for i in order:
                view = memoryview(stored[i]).cast("B")
                if os.preadv(fd, [view], int(rows[i]) * row_bytes) != row_bytes:
                    raise DatasetError(f"{self.folder / _WAVEFORMS} is shorter than its index; delete the folder "
                                       "to rebuild the cache")
        finally:
            os.close(fd)
        return stored

    def subset(self, indices: np.ndarray) -> "CachedDataset":
        """The clips at ``indices`` (same classes), sharing this cache's memory map."""
        subset = CachedDataset(self.folder, self._meta, self._table, self._waveforms,
                               self._rows[np.asarray(indices, dtype=np.int64)])
        subset.name, subset.source = self.name, self.source
        return subset

    def __reduce__(self):
        """Pickled by reference: the cache folder and the selected rows, never the clips (a training process
        reopens the memory map instead of receiving gigabytes through a pipe)."""
        return _reopen_cache, (str(self.folder), self._rows, self.name, self.source)


def _reopen_cache(folder: str, rows: np.ndarray, name: str, source: dict) -> CachedDataset:
    """The other side of :meth:`CachedDataset.__reduce__`: the cache at ``folder``, limited to ``rows``."""
    whole = open_cache(folder)
    dataset = CachedDataset(whole.folder, whole._meta, whole._table, whole._waveforms, rows)
    dataset.name, dataset.source = name, source
    return dataset


# ------------------------------------------------------------------------------------------------ reading
def open_cache(folder: str | Path) -> CachedDataset:
    """Open a complete cache folder. Raises :class:`lib.data.dataset.DatasetError` when it is missing or damaged."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / _META).read_text())
        with open(folder / _INDEX, newline="", encoding="utf-8") as f:
            lines = list(csv.DictReader(f))
    except (OSError, ValueError) as error:
        raise DatasetError(f"{folder} is not a usable dataset cache ({error}); delete it to rebuild") from error
    if meta.get("format") != FORMAT_VERSION:
        raise DatasetError(f"{folder} was written by another version of the cache format; delete it to rebuild")
    label_index = {c: i for i, c in enumerate(meta["class_names"])}
    table = {
        "row": np.array([int(x["row"]) for x in lines], dtype=np.int64),
        "length": np.array([int(x["length"]) for x in lines], dtype=np.int64),
        "path": [x["path"] for x in lines],
        "label": np.array([label_index[x["label"]] for x in lines], dtype=np.int64),
        "group": [x["group"] for x in lines],
        "fold": np.array([int(x["fold"]) if x["fold"] != "" else -1 for x in lines], dtype=np.int64),
        "duration": np.array([float(x["duration"]) for x in lines], dtype=np.float64),
        "source_rate": np.array([int(x["source_rate"]) for x in lines], dtype=np.int64),
        "source_channels": np.array([int(x["source_channels"]) for x in lines], dtype=np.int64),
    }
    n_rows, n_samples = len(lines), int(meta["n_samples"])
    expected = n_rows * n_samples * 2
    size = (folder / _WAVEFORMS).stat().st_size if (folder / _WAVEFORMS).is_file() else -1
    if size != expected or n_rows == 0:
        raise DatasetError(f"{folder / _WAVEFORMS} holds {size} bytes, expected {expected}; delete the folder to "
                           "rebuild the cache")
    waveforms = np.memmap(folder / _WAVEFORMS, dtype=np.int16, mode="r", shape=(n_rows, n_samples))
    return CachedDataset(folder, meta, table, waveforms)


def cache_folder(index: DatasetIndex, cache_root: str | Path, sample_rate: int, clip_seconds: float,
                 crops: str = "center") -> Path:
    """Where the cache of ``index`` at these settings lives (it may not exist yet)."""
    n_samples = round(sample_rate * clip_seconds)
    return Path(cache_root) / f"{index.key}-{sample_rate}hz-{n_samples}-{crops}-{index.fingerprint()[:12]}"


# ------------------------------------------------------------------------------------------------ building
def _decode_file(path: str, clips: list[ClipRef], sample_rate: int, n_samples: int, crops: str):
    """Decode one file into rows for each of its clips.

    Returns:
        ``(rows, error)``: rows holds ``(clip, int16 (k, n_samples), lengths, starts, duration, rate, channels)``
        per clip (``k`` crops starting at ``starts`` seconds in the file); error is a reason when the file could
        not be read.
    """
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, EOFError) as error:
        detail = str(error).split(": ", 1)[-1].strip().rstrip(".") or type(error).__name__
        return [], f"not a readable audio file ({detail})"
    if data.size == 0:
        return [], "the audio has no samples"
    channels = data.shape[1]
    waveform = torch.from_numpy(data.T)  # (channels, time)
    rows = []
    for clip in clips:
        first, last = clip.frames(rate, waveform.shape[-1])
        if last <= first:
            rows.append((clip, None, None, None, 0.0, rate, channels))
            continue
        duration = (last - first) / rate
        segment = fit_clip(waveform[:, first:last], rate, sample_rate)[0]  # (time,) mono at sample_rate
        if crops == "all" and segment.shape[-1] > n_samples:
            k = segment.shape[-1] // n_samples
            offset = (segment.shape[-1] - k * n_samples) // 2
            block = segment[offset:offset + k * n_samples].reshape(k, n_samples)
            starts = [clip.start + (offset + j * n_samples) / sample_rate for j in range(k)]
            rows.append((clip, to_int16(block).numpy(), [n_samples] * k, starts, n_samples / sample_rate, rate,
                         channels))
        else:
            rows.append((clip, to_int16(center_pad_or_trim(segment, n_samples)).numpy()[None],
                         [min(segment.shape[-1], n_samples)], [clip.start], duration, rate, channels))
    return rows, None


def _write_cache(index: DatasetIndex, staging: Path, sample_rate: int, n_samples: int, crops: str,
                 progress: ProgressCallback | None, workers: int) -> tuple[int, list[tuple[str, str]], bool]:
    """Decode every file of ``index`` into ``staging``; returns the row count, failures and whether any fold."""
    by_path: dict[str, list[ClipRef]] = {}
    for clip in index.clips:
        by_path.setdefault(clip.path, []).append(clip)
    tasks = iter(by_path.items())
    failed, n_rows, done, has_folds = list(index.failed), 0, 0, False
    total, last_report = len(index.clips), 0.0
    with (ThreadPoolExecutor(max_workers=workers) as pool, open(staging / _WAVEFORMS, "wb") as out,
          open(staging / _INDEX, "w", newline="", encoding="utf-8") as table_file):
        table = csv.writer(table_file)
        table.writerow(_COLUMNS)
        pending: deque = deque()

        def submit() -> None:
            task = next(tasks, None)
            if task is not None:
                pending.append((task, pool.submit(_decode_file, task[0], task[1], sample_rate, n_samples, crops)))

        for _ in range(workers * 4):  # a bounded window of files in flight: memory stays flat
            submit()
        while pending:
            (path, clips), future = pending.popleft()
            rows, error = future.result()
            submit()
            done += len(clips)
            if error is not None:
                failed.append((path, error))
            for clip, block, lengths, starts, duration, rate, channels in rows:
                if block is None:
                    failed.append((clip.name, "the segment lies outside the recording"))
                    continue
                out.write(block.tobytes())
                for length, start in zip(lengths, starts):
                    name = clip.name if len(lengths) == 1 else ClipRef(clip.path, clip.label, clip.group, None,
                                                                        round(start, 6), duration).name
                    table.writerow((n_rows, n_rows * n_samples, length, name, clip.label, clip.group,
                                    "" if clip.fold is None else clip.fold, round(start, 6), round(duration, 6),
                                    rate, channels))
                    n_rows += 1
                has_folds |= clip.fold is not None
            now = time.monotonic()
            if progress and (now - last_report > 0.2 or done == total):
                progress(done, total)
                last_report = now
    return n_rows, failed, has_folds


def build_cache(index: DatasetIndex, cache_root: str | Path, sample_rate: int = 16000, clip_seconds: float = 1.0,
                crops: str = "center", progress: ProgressCallback | None = None, workers: int | None = None,
                force: bool = False) -> CachedDataset:
    """Decode ``index`` once into a cache under ``cache_root`` (or reuse the one already there) and open it.

    Args:
        index: the clips (a loader's ``decode=False`` result).
        cache_root: parent folder of the caches.
        sample_rate: cached sample rate (a FeatureConfig's ``sample_rate``).
        clip_seconds: cached clip length (a FeatureConfig's ``clip_seconds``).
        crops: ``"center"`` (a longer clip keeps its centre) or ``"all"`` (every non-overlapping crop, one row
            each, in the clip's group).
        progress: called as ``progress(clips_done, n_clips)`` while decoding (and once when reused).
        workers: decoding threads (default: the CPU count, at most 8).
        force: rebuild even when the cache exists.

    Returns:
        The :class:`CachedDataset`.

    Raises:
        DatasetError: no clip could be decoded, or the disk is too small.
    """
    if crops not in CROP_MODES:
        raise ValueError(f"crops must be one of {CROP_MODES}, got {crops!r}")
    if sample_rate <= 0 or clip_seconds <= 0:
        raise ValueError(f"sample_rate and clip_seconds must be positive, got {sample_rate} and {clip_seconds}")
    n_samples = round(sample_rate * clip_seconds)
    folder = cache_folder(index, cache_root, sample_rate, clip_seconds, crops)
    if (folder / _META).is_file() and not force:
        dataset = open_cache(folder)
        if progress:
            progress(len(index.clips), len(index.clips))
        return dataset
    if not index.clips:
        raise DatasetError(f"{index.name!r} has no clips to cache")
    folder.parent.mkdir(parents=True, exist_ok=True)
    needed = len(index.clips) * n_samples * 2
    free = shutil.disk_usage(folder.parent).free
    if needed > free:
        raise DatasetError(f"the cache of {index.name} needs at least {needed / 1e9:.1f} GB and {folder.parent} has "
                           f"{free / 1e9:.1f} GB free: free some space or choose another cache folder")
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        n_rows, failed, has_folds = _write_cache(index, staging, sample_rate, n_samples, crops, progress,
                                                 workers or min(8, os.cpu_count() or 1))
        if n_rows == 0:
            reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in failed[:3])
            raise DatasetError(f"none of the {len(index.clips)} clips of {index.name!r} could be decoded ({reasons})")
        source = {**index.source, "cache": {"sample_rate": sample_rate, "clip_seconds": clip_seconds,
                                            "crops": crops}}
        meta = {"format": FORMAT_VERSION, "key": index.key, "name": index.name, "source": source,
                "class_names": list(index.class_names), "sample_rate": sample_rate, "n_samples": n_samples,
                "clip_seconds": clip_seconds, "crops": crops, "fingerprint": index.fingerprint(), "n_rows": n_rows,
                "has_folds": has_folds, "failed": failed}
        (staging / _META).write_text(json.dumps(meta, indent=1))
        if folder.exists():  # force: move the old one out of the way first
            old = folder.with_name(f".{folder.name}-old-{os.getpid()}")
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(staging, folder)
        except OSError:  # another process finished the same cache first: keep theirs
            if not (folder / _META).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return open_cache(folder)


def cached_dataset(key: str, root: str | Path, cache_root: str | Path, sample_rate: int = 16000,
                   clip_seconds: float = 1.0, crops: str | None = None, progress: ProgressCallback | None = None,
                   workers: int | None = None, **options) -> CachedDataset:
    """Index catalog dataset ``key`` at ``root`` and open its cache (built on first use).

    Args:
        key: a :data:`lib.data.catalog.CATALOG` key.
        root: the extracted dataset (what :func:`lib.data.download.fetch_dataset` returns).
        cache_root: parent folder of the caches (e.g. ``data/cache``).
        sample_rate: cached sample rate.
        clip_seconds: cached clip length.
        crops: ``"center"`` or ``"all"`` (default: the card's ``long_clips``).
        progress: ``progress(done, total)`` while building.
        workers: decoding threads.
        **options: loader options (``esc10=True``, ``task="12"``, ``label="count"``...).
    """
    index = load_dataset(key, root, decode=False, **options)
    return build_cache(index, cache_root, sample_rate, clip_seconds, crops or get_card(key).long_clips, progress,
                       workers)
