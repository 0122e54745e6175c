import numpy as np
import pytest
import soundfile as sf
import torch

from lib.data.sources import DatasetError, fold_split, load_csv, load_folder, split_dataset


def _tone(path, freq=440.0, seconds=0.5, sample_rate=16000, channels=1):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, sample_rate)


@pytest.fixture
def folder(tmp_path):
    for label, freq in (("low", 220.0), ("high", 880.0)):
        (tmp_path / label).mkdir()
        for i in range(3):
            _tone(tmp_path / label / f"{i}.wav", freq, seconds=0.3 + 0.1 * i, sample_rate=8000 * (1 + i % 2),
                  channels=1 + i % 2)
    (tmp_path / "high" / "broken.wav").write_text("not audio at all")
    (tmp_path / "notes.txt").write_text("ignored: not in a class folder")
    return tmp_path


def test_builtin_dataset(tiny_dataset):
    ds = tiny_dataset
    assert ds.class_names == ["yes", "no", "up"] and len(ds) == 72 and not ds.failed
    assert ds.class_counts() == {"yes": 24, "no": 24, "up": 24}
    assert ds.source["kind"] == "builtin"
    batch = ds.to_tensor(16000, 16000)
    assert batch.shape == (72, 1, 16000) and batch.dtype == torch.float32
    assert set(np.unique(ds.sample_rates)) == {16000} and np.allclose(ds.durations, 1.0)


def test_folder_dataset_lists_failures(folder):
    ds = load_folder(folder)
    assert ds.class_names == ["high", "low"] and len(ds) == 6
    assert [p.endswith("broken.wav") for p, _ in ds.failed] == [True]
    assert "Accepted formats" in ds.failed[0][1] or "WAV" in ds.failed[0][1]
    assert sorted(ds.channels.tolist()) == [1, 1, 1, 1, 2, 2]
    batch = ds.to_tensor(16000, 8000)  # resampled, mixed to mono, centre padded
    assert batch.shape == (6, 1, 8000)
    clip, rate = ds.clip(1, sample_rate=16000)
    assert rate == 16000 and abs(clip.shape[-1] - ds.durations[1] * 16000) <= 1


def test_to_tensor_fits_each_clip_with_fit_clip(folder):
    from lib.dsp.audio import fit_clip
    from lib.data.dataset import AudioDataset, ClipDataset

    ds = load_folder(folder)
    assert isinstance(ds, AudioDataset) and isinstance(ds, ClipDataset)
    for rate, n_samples in ((16000, 8000), (22050, 11025), (8000, 2400)):  # 2400: a clip already fitted
        expected = torch.stack([fit_clip(w, r, rate, n_samples) for w, r in zip(ds.waveforms, ds.sample_rates)])
        assert torch.equal(ds.to_tensor(rate, n_samples), expected)
    sub = ds.subset(np.array([4, 1]))
    assert torch.equal(sub.to_tensor(16000, 8000), ds.to_tensor(16000, 8000, np.array([4, 1])))
    assert sub.class_counts() == {"high": 1, "low": 1} and sub.n_classes == 2


def test_one_class_counts():
    from lib.data.dataset import class_counts

    assert class_counts(np.array([2, 0, 2]), ["a", "b", "c"]) == {"a": 1, "b": 0, "c": 2}

    from lib.data.dataset import AudioDataset

    dataset = AudioDataset("d", {}, ["a", "b", "c"], ["x", "y", "z"], np.array([2, 0, 2]), ["x", "y", "z"],
                           [torch.zeros(1, 4)] * 3, [8000] * 3)
    assert dataset.class_indices("c") == [0, 2] and dataset.class_indices("b") == [] == dataset.class_indices("?")


def test_what_the_dataset_page_shows_of_a_set():
    from lib.data.dataset import AudioDataset

    n = 10
    dataset = AudioDataset("d", {}, ["a", "b"], [f"{i}.wav" for i in range(n)], np.array([0] * 7 + [1] * 3),
                           [str(i) for i in range(n)], [torch.zeros(1 + (i == 4), 4) for i in range(n)], [8000] * n)
    assert dataset.class_examples("a", 3) == [0, 3, 6]          # first, middle, last of rows 0-6
    assert dataset.class_examples("b", 5) == [7, 8, 9]          # fewer clips than asked: all of them
    assert dataset.class_examples("a", 0) == [] == dataset.class_examples("?", 2)
    assert dataset.channel_counts() == {1: 9, 2: 1}
    assert dataset.view_subset(n) is dataset
    small = dataset.view_subset(4, seed=1)
    assert len(small) == 4 and small.paths == sorted(small.paths, key=lambda p: int(p.split(".")[0]))
    assert small.paths == dataset.view_subset(4, seed=1).paths  # the same subset each time


def test_dataset_modules_import_at_the_top_without_a_cycle():
    """lib's dataset modules import each other at module top only (no import hidden in a function), and the
    imports form no cycle: dataset <- catalog <- cache <- sources."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "lib"
    modules = ("dsp.audio", "data.dataset", "data.catalog", "data.cache", "data.synth.builtin",
               "data.download", "data.sources")
    graph = {}
    for name in modules:
        tree = ast.parse((root / f"{name.replace('.', '/')}.py").read_text())
        # Module level, or in a module-level ``if TYPE_CHECKING:`` (for annotations only: never run, no cycle).
        type_only = [n for node in tree.body if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                     and node.test.id == "TYPE_CHECKING" for n in node.body]
        top = {node for node in [*tree.body, *type_only] if isinstance(node, (ast.Import, ast.ImportFrom))}
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lib"):
                targets = [node.module] if node.module != "lib" else [f"lib.{a.name}" for a in node.names]
                assert node in top, f"lib.{name} imports {targets} inside a function"
                imported |= {t.split(".", 1)[1] for t in targets}
        graph[name] = imported & set(modules)
    assert graph["data.dataset"] == {"dsp.audio"}
    done: list[str] = []
    while len(done) < len(graph):  # topological order exists <=> no cycle
        ready = [m for m in graph if m not in done and graph[m] <= set(done)]
        assert ready, f"import cycle among {sorted(set(graph) - set(done))}"
        done += ready


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="folder not found"):
        load_folder(tmp_path / "missing")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DatasetError, match="no audio files"):
        load_folder(tmp_path)


def test_csv_manifest(folder, tmp_path):
    manifest = tmp_path / "meta.csv"
    manifest.write_text("path,label,fold,group\nlow/0.wav,low,1,a\nlow/1.wav,low,2,b\nhigh/0.wav,high,1,a\n"
                        "high/1.wav,high,2,c\nhigh/missing.wav,high,1,d\n")
    ds = load_csv(manifest)
    assert len(ds) == 4 and ds.folds == [1, 2, 1, 2] and ds.groups[0] == "a"
    assert [r for _, r in ds.failed] == ["file not found"]


def test_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\na.wav,x\n")
    with pytest.raises(DatasetError, match="lacks the column"):
        load_csv(bad)
    with pytest.raises(DatasetError, match="not found"):
        load_csv(tmp_path / "nope.csv")
    only_missing = tmp_path / "m.csv"
    only_missing.write_text("path,label\nnope.wav,x\n")
    with pytest.raises(DatasetError, match="no usable rows"):
        load_csv(only_missing)


def test_csv_with_one_file_under_two_labels_names_the_rows(folder, tmp_path):
    manifest = tmp_path / "conflict.csv"
    manifest.write_text("path,label\nlow/0.wav,low\nhigh/0.wav,high\n./low/0.wav,high\n")
    with pytest.raises(DatasetError, match=r"low/0.wav twice with different labels: 'low' on line 2 and 'high' on "
                                           r"line 4"):
        load_csv(manifest)
    same = tmp_path / "same.csv"  # the same file twice under one label is allowed (listed twice)
    same.write_text("path,label\nlow/0.wav,low\nlow/0.wav,low\nhigh/0.wav,high\n")
    assert len(load_csv(same)) == 3


def test_split_keeps_groups_apart_and_classes_balanced():
    rng = np.random.default_rng(0)
    n_groups, n_classes = 60, 4
    groups = np.repeat(np.arange(n_groups), 20).astype(str)
    labels = rng.integers(0, n_classes, size=len(groups))
    split = split_dataset(labels, groups, validation=0.15, test=0.15, seed=3)
    parts = [split.train, split.validation, split.test]
    assert sum(map(len, parts)) == len(labels) and len(np.unique(np.concatenate(parts))) == len(labels)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(groups[parts[a]]) & set(groups[parts[b]]), "a group crosses splits"
    for part, fraction in ((split.validation, 0.15), (split.test, 0.15)):
        assert abs(len(part) / len(labels) - fraction) < 0.05
        overall = np.bincount(labels, minlength=n_classes) / len(labels)
        within = np.bincount(labels[part], minlength=n_classes) / len(part)
        assert np.abs(overall - within).max() < 0.08  # class proportions kept
    again = split_dataset(labels, groups, validation=0.15, test=0.15, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(parts, [again.train, again.validation, again.test]))
    other = split_dataset(labels, groups, validation=0.15, test=0.15, seed=4)
    assert not np.array_equal(split.test, other.test)


def test_split_of_builtin_keeps_voices_apart(tiny_dataset):
    split = split_dataset(tiny_dataset.labels, tiny_dataset.groups, seed=0)
    groups = np.asarray(tiny_dataset.groups)
    assert not set(groups[split.train]) & set(groups[split.test])
    assert len(split.test) > 0 and len(split.validation) > 0


def test_split_without_groups_and_bad_fractions():
    labels = np.repeat([0, 1], 50)
    split = split_dataset(labels, None, validation=0.2, test=0.2, seed=0)
    assert split.sizes() == {"train": 60, "validation": 20, "test": 20}
    with pytest.raises(ValueError):
        split_dataset(labels, None, validation=0.6, test=0.5)


def test_fold_split():
    folds = [1, 1, 2, 2, 3, 3, 4]
    split = fold_split(folds, test_fold=2)
    assert split.test.tolist() == [2, 3] and split.validation.tolist() == [4, 5] and split.train.tolist() == [0, 1, 6]
    with pytest.raises(ValueError, match="fold 9"):
        fold_split(folds, 9)


def test_fold_split_with_an_official_validation_fold():
    # Speech Commands: folds 0/1/2 are its train / validation / test lists
    split = fold_split([0, 0, 1, 2, 0, 1], test_fold=2, validation_fold=1)
    assert split.train.tolist() == [0, 1, 4] and split.validation.tolist() == [2, 5] and split.test.tolist() == [3]
