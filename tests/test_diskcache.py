"""lib.data.cache: building, reusing and reading the int16 memmap cache, and training from it."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import lib.data.cache as diskcache
from lib.data.catalog import LOADERS, SILENCE_LABEL
from lib.data.dataset import ClipDataset, DatasetError
from lib.data.cache import CachedDataset, build_cache, cache_folder, cached_dataset, open_cache
from lib.dsp.features import FeatureConfig
from lib.engine.train import TrainConfig, run_training
from tests.fixtures_datasets import make_esc50, make_gtzan, make_speech_commands, make_urbansound8k

TOLERANCE = 1 / 32768 + 1e-6


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("datasets")
    return {"speech_commands": make_speech_commands(base / "speech_commands_v2"), "esc50": make_esc50(base / "esc50"),
            "urbansound8k": make_urbansound8k(base / "urbansound8k"), "gtzan": make_gtzan(base / "gtzan")}


def test_build_matches_the_in_memory_dataset_within_one_int16_step(roots, tmp_path):
    index = LOADERS["urbansound8k"](roots["urbansound8k"], decode=False)
    calls = []
    cached = build_cache(index, tmp_path, 16000, 1.0, progress=lambda *a: calls.append(a))
    assert isinstance(cached, CachedDataset) and calls[-1] == (len(index), len(index))
    decoded = index.decode()
    assert cached.paths == decoded.paths and np.array_equal(cached.labels, decoded.labels)
    assert cached.groups == decoded.groups and cached.folds == decoded.folds
    assert [p for p, _ in cached.failed] == [p for p, _ in decoded.failed]
    # Mixed rates (16-48 kHz) and stereo: the cache (mono, 16 kHz) matches AudioDataset.to_tensor.
    expected, actual = decoded.to_tensor(16000, 16000), cached.to_tensor(16000, 16000)
    assert actual.shape == expected.shape == (len(decoded), 1, 16000) and actual.dtype == torch.float32
    assert (actual - expected).abs().max() <= TOLERANCE
    # The source's properties are kept for the Dataset page.
    assert cached.sample_rates == decoded.sample_rates
    assert np.array_equal(cached.channels, decoded.channels)
    assert np.allclose(cached.durations, decoded.durations, atol=1e-4)
    # The files on disk.
    folder = cached.folder
    assert (folder / "waveforms.int16").stat().st_size == len(cached) * 16000 * 2
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["sample_rate"] == 16000 and meta["n_samples"] == 16000 and meta["source"]["key"] == "urbansound8k"
    header = (folder / "index.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["row", "offset", "length"] and {"path", "label", "group", "fold"} <= set(header)


def test_reused_when_present_and_rebuilt_on_demand(roots, tmp_path):
    index = LOADERS["esc50"](roots["esc50"], decode=False)
    first = build_cache(index, tmp_path, 16000, 1.0)
    stamp = (first.folder / "waveforms.int16").stat().st_mtime_ns
    calls = []
    again = build_cache(LOADERS["esc50"](roots["esc50"], decode=False), tmp_path, 16000, 1.0,
                        progress=lambda *a: calls.append(a))
    assert again.folder == first.folder and calls == [(len(index), len(index))]
    assert (again.folder / "waveforms.int16").stat().st_mtime_ns == stamp
    assert open_cache(first.folder).paths == first.paths
    # Other settings or other clips: another cache.
    assert cache_folder(index, tmp_path, 8000, 1.0) != first.folder
    assert cache_folder(LOADERS["esc10"](roots["esc50"], decode=False), tmp_path, 16000, 1.0) != first.folder
    rebuilt = build_cache(index, tmp_path, 16000, 1.0, force=True)
    assert rebuilt.folder == first.folder and len(rebuilt) == len(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.folder.name]  # no staging left


def test_rows_are_the_fitted_clips_as_int16(tmp_path):
    """A cache row is exactly lib.dsp.audio.fit_clip of the clip, stored as lib.dsp.audio.to_int16 (one rule, one scale)."""
    import soundfile as sf

    from lib.dsp.audio import fit_clip, from_int16, load_audio, to_int16
    from lib.data.catalog import ClipRef, DatasetIndex

    generator = torch.Generator().manual_seed(3)
    clips = []
    for i, (rate, seconds) in enumerate(((16000, 0.7), (22050, 1.3), (44100, 0.9))):
        path = tmp_path / "files" / f"{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, (torch.rand(int(rate * seconds), 2, generator=generator) - 0.5).numpy(), rate)
        clips.append(ClipRef(str(path), "a" if i % 2 else "b", str(path)))
    clips.append(ClipRef(clips[2].path, "a", "segment", None, 0.2, 0.5))  # a segment of a file
    index = DatasetIndex("files", "files", {"kind": "catalog", "key": "files", "root": str(tmp_path)}, ["a", "b"],
                         clips)
    cached = build_cache(index, tmp_path / "cache", 16000, 1.0, workers=2)
    rows = torch.from_numpy(np.fromfile(cached.folder / "waveforms.int16", dtype=np.int16).reshape(len(clips), -1))
    for row, clip in enumerate(clips):
        waveform, rate = load_audio(clip.path)
        first, last = clip.frames(rate, waveform.shape[-1])
        assert torch.equal(rows[row], to_int16(fit_clip(waveform[:, first:last], rate, 16000, 16000))[0])
    assert torch.equal(cached.to_tensor(16000, 16000)[:, 0], from_int16(rows))


def test_to_tensor_clip_and_subset(roots, tmp_path):
    cached = cached_dataset("speech_commands_v2_12", roots["speech_commands"], tmp_path, 16000, 1.0)
    assert cached.class_names[-1] == SILENCE_LABEL and len(cached) == 40 + 14
    assert cached.to_tensor(16000, 16000).shape == (54, 1, 16000)
    assert cached.to_tensor(16000, 8000, np.array([3, 1])).shape == (2, 1, 8000)
    assert cached.to_tensor(8000, 8000, np.arange(4)).shape == (4, 1, 8000)  # resampled on the fly
    short = int(np.flatnonzero(cached.lengths == 12800)[0])  # a 0.8 s clip, stored centred in 1 s
    waveform, rate = cached.clip(short)
    assert waveform.shape == (1, 12800) and rate == 16000
    assert cached.clip(short, 8000)[0].shape == (1, 6400)
    row = cached.to_tensor(16000, 16000, np.array([short]))[0, 0]
    assert torch.equal(row[1600:1600 + 12800], waveform[0]) and row[:1600].abs().max() == 0
    assert isinstance(cached, ClipDataset) and not hasattr(cached, "waveforms")  # clips come through clip()
    sub = cached.subset(np.array([short, 0]))
    assert len(sub) == 2 and sub.paths == [cached.paths[short], cached.paths[0]]
    assert sub.labels.tolist() == [cached.labels[short], cached.labels[0]] and sub.folds[0] == cached.folds[short]
    assert torch.equal(sub.to_tensor(16000, 16000)[0], cached.to_tensor(16000, 16000, np.array([short]))[0])
    assert sum(cached.class_counts().values()) == 54 and cached.n_classes == 12
    # Pickled by reference (a training process reopens the memory map): the folder and rows, not the clips.
    data = pickle.dumps(sub)
    assert len(data) < 2000
    again = pickle.loads(data)
    assert again.paths == sub.paths and again.name == sub.name and again.source == sub.source
    assert torch.equal(again.to_tensor(16000, 16000), sub.to_tensor(16000, 16000))


def test_gtzan_stores_every_crop_grouped_by_track(roots, tmp_path):
    cached = cached_dataset("gtzan", roots["gtzan"], tmp_path, 22050, 1.0)  # the card's default: all crops
    assert len(cached) == 9 * 3 and all(cached.groups.count(g) == 3 for g in set(cached.groups))
    assert [Path(p).name for p, _ in cached.failed] == ["jazz.00054.wav"]
    assert all("#t=" in p for p in cached.paths) and set(cached.lengths.tolist()) == {22050}
    centre = cached_dataset("gtzan", roots["gtzan"], tmp_path, 22050, 1.0, crops="center")
    assert len(centre) == 9 and centre.folder != cached.folder
    # The centre crop of a track is its middle crop.
    middle = [i for i, p in enumerate(cached.paths) if p.startswith(centre.paths[0] + "#")][1]
    assert torch.equal(cached.to_tensor(22050, 22050, np.array([middle])),
                       centre.to_tensor(22050, 22050, np.array([0])))


def test_a_failed_build_leaves_nothing(roots, tmp_path, monkeypatch):
    index = LOADERS["esc50"](roots["esc50"], decode=False)
    calls = {"n": 0}
    real = diskcache._decode_file

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(diskcache, "_decode_file", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_cache(index, tmp_path, 16000, 1.0, workers=2)
    assert list(tmp_path.iterdir()) == []


def test_damaged_cache_is_reported(roots, tmp_path):
    cached = cached_dataset("esc10", roots["esc50"], tmp_path, 16000, 0.5)
    with open(cached.folder / "waveforms.int16", "r+b") as f:
        f.truncate(100)
    with pytest.raises(DatasetError, match="rebuild"):
        open_cache(cached.folder)


@pytest.mark.parametrize("key, test_fold", [("esc50", 2), ("urbansound8k", 10), ("speech_commands_v2_12", None)])
def test_training_runs_from_the_cache(roots, tmp_path, key, test_fold):
    root = roots[{"speech_commands_v2_12": "speech_commands"}.get(key, key)]
    cached = cached_dataset(key, root, tmp_path / "cache", 16000, 1.0)
    config = TrainConfig(model="tutorial_cnn", epochs=1, batch_size=8, max_batches=2, test_fold=test_fold,
                         device="cpu")
    done = run_training(cached, FeatureConfig(), config, runs_root=tmp_path / "runs", run_id=key)
    assert done.status == "finished", done.message
    if test_fold is not None:
        assert done.metrics["test"]["n"] == sum(f == test_fold for f in cached.folds)
