"""lib.data.catalog: the cards, URL/checksum overrides, each loader on a fixture copy of the real layout (official
splits, folds and groups), and a short training run on each."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lib.data.catalog import (CATALOG, LOADERS, SILENCE_LABEL, SPEECH_COMMANDS_KEYWORDS, UNKNOWN_LABEL, DatasetIndex,
                         check_layout, find_root, load_speech_commands, resolve_source)
from lib.data.sources import AudioDataset, DatasetError
from lib.dsp.features import FeatureConfig
from lib.engine.train import TrainConfig, run_training
from tests.fixtures_datasets import (ESC_CLASSES, GTZAN_FIXTURE_GENRES, SC_SPEAKERS, SC_WORDS, US8K_CLASSES,
                                     YESNO_FILES, make_esc50, make_gtzan, make_speech_commands, make_urbansound8k,
                                     make_yesno)

OFFICIAL_URLS = {
    "speech_commands_v2": "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
    "speech_commands_v1": "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
    "esc50": "https://github.com/karoldvl/ESC-50/archive/master.zip",
    "urbansound8k": "https://zenodo.org/record/1203745/files/UrbanSound8K.tar.gz",
    "gtzan": "http://opihi.cs.uvic.ca/sound/genres.tar.gz",
    "yesno": "http://www.openslr.org/resources/1/waves_yesno.tar.gz",
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    """Every fixture set, extracted (built once for the module)."""
    base = tmp_path_factory.mktemp("datasets")
    return {"speech_commands": make_speech_commands(base / "speech_commands_v2"), "esc50": make_esc50(base / "esc50"),
            "urbansound8k": make_urbansound8k(base / "urbansound8k"), "gtzan": make_gtzan(base / "gtzan"),
            "yesno": make_yesno(base / "yesno")}


# ------------------------------------------------------------------------------------------------ cards
def test_every_card_has_a_loader_an_official_url_and_no_invented_checksum():
    assert set(LOADERS) == set(CATALOG)
    for key, card in CATALOG.items():
        assert card.key == key and card.name and card.license and card.citation and card.notes
        assert card.archive_format in ("tar.gz", "zip") and card.archive_name.endswith(card.archive_format)
        assert card.source_key in OFFICIAL_URLS and card.url == OFFICIAL_URLS[card.source_key]
        assert card.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", card.sha256)
        assert card.sha256 == CATALOG[card.source_key].sha256
        assert re.fullmatch(r"[\d.]+ [MG]B.*", card.size_on_disk)
        assert card.n_clips > 0 and (card.n_classes is None or card.n_classes >= 2)
    assert CATALOG["esc50"].folds == 5 and CATALOG["urbansound8k"].folds == 10 and CATALOG["gtzan"].folds is None
    assert CATALOG["speech_commands_v2"].n_classes == 35 and CATALOG["speech_commands_v1"].n_classes == 30
    assert CATALOG["speech_commands_v2_12"].classes[-2:] == (UNKNOWN_LABEL, SILENCE_LABEL)
    assert CATALOG["esc50"].sha256 is None and CATALOG["urbansound8k"].sha256 is None  # not stable / not known


def test_urls_and_checksums_can_be_overridden(monkeypatch):
    assert resolve_source("esc50") == (OFFICIAL_URLS["esc50"], None)
    monkeypatch.setenv("AUDIOWB_URL_ESC50", "http://127.0.0.1:1/esc.zip")
    monkeypatch.setenv("AUDIOWB_SHA256_ESC50", "AB" * 32)
    assert resolve_source("esc50") == ("http://127.0.0.1:1/esc.zip", "ab" * 32)
    assert resolve_source("esc10")[0] == "http://127.0.0.1:1/esc.zip"  # a preset falls back to its archive's key
    assert resolve_source("esc50", url="http://x/y.zip", sha256="")[1] is None  # arguments win; "" = no check
    monkeypatch.setenv("AUDIOWB_SHA256_ESC50", "none")
    assert resolve_source("esc50")[1] is None
    # A URL override alone keeps the pinned checksum (a mirror of the same file).
    assert resolve_source("yesno", url="http://mirror/y.tar.gz")[1] == CATALOG["yesno"].sha256
    with pytest.raises(DatasetError, match="64 hex"):
        resolve_source("yesno", sha256="1234")
    with pytest.raises(DatasetError, match="unknown dataset"):
        resolve_source("timit")


def test_layout_checks_find_nested_roots_and_explain_failures(roots, tmp_path):
    assert find_root("esc50", roots["esc50"].parent) == roots["esc50"]
    assert find_root("gtzan", roots["gtzan"].parent) == roots["gtzan"]
    assert check_layout("speech_commands_yes_no", roots["speech_commands"]) == roots["speech_commands"]
    assert find_root("urbansound8k", roots["esc50"]) is None
    with pytest.raises(DatasetError, match="UrbanSound8K.csv"):
        check_layout("urbansound8k", tmp_path)


# ------------------------------------------------------------------------------------------------ loaders
def test_speech_commands_official_split_and_speaker_groups(roots):
    dataset = LOADERS["speech_commands_v2"](roots["speech_commands"])
    assert isinstance(dataset, AudioDataset)
    assert dataset.class_names == sorted(SC_WORDS)
    assert len(dataset) == len(SC_WORDS) * len(SC_SPEAKERS) * 2 and not dataset.failed
    assert dataset.source["key"] == "speech_commands_v2" and dataset.name == "Speech Commands v0.02"
    for path, group, fold in zip(dataset.paths, dataset.groups, dataset.folds):
        speaker = Path(path).name.split("_nohash_")[0]
        assert group == speaker
        assert fold == {SC_SPEAKERS[0]: 1, SC_SPEAKERS[1]: 2}.get(speaker, 0)  # 0 train, 1 validation, 2 test
    assert {w.shape[-1] for w in dataset.waveforms} == {16000, 12800}


def test_speech_commands_12_class_task(roots):
    index = LOADERS["speech_commands_v2_12"](roots["speech_commands"], decode=False)
    assert isinstance(index, DatasetIndex)
    assert index.class_names == list(SPEECH_COMMANDS_KEYWORDS) + [UNKNOWN_LABEL, SILENCE_LABEL]
    labels = {Path(c.path).parent.name: c.label for c in index.clips if c.label != SILENCE_LABEL}
    assert labels == {"yes": "yes", "no": "no", "left": "left", "bed": UNKNOWN_LABEL, "cat": UNKNOWN_LABEL}
    silence = [c for c in index.clips if c.label == SILENCE_LABEL]
    # 10.5 s and 5 s of noise: 80/10/10 % regions cut into whole seconds: (8 + 1 + 1) + (4 + 0 + 0).
    assert len(silence) == 14 and all(c.duration == 1.0 for c in silence)
    assert sorted(c.fold for c in silence) == [0] * 12 + [1, 2]
    assert all(c.group.startswith("_background_noise_/") for c in silence)
    dataset = index.decode()
    rows = np.flatnonzero(dataset.labels == index.class_names.index(SILENCE_LABEL))
    assert len(rows) == 14 and all(dataset.waveforms[i].shape[-1] == 16000 for i in rows)
    assert "#t=" in dataset.paths[rows[0]]
    # A deterministic fraction of the other words.
    half = load_speech_commands(roots["speech_commands"], "12", unknown_fraction=0.5, decode=False)
    again = load_speech_commands(roots["speech_commands"], "12", unknown_fraction=0.5, decode=False)
    n_unknown = half.class_counts()[UNKNOWN_LABEL]
    assert 0 < n_unknown < index.class_counts()[UNKNOWN_LABEL] and half.fingerprint() == again.fingerprint()


def test_speech_commands_yes_no_preset(roots):
    dataset = LOADERS["speech_commands_yes_no"](roots["speech_commands"])
    assert dataset.class_names == ["yes", "no"] and dataset.class_counts() == {"yes": 8, "no": 8}
    assert set(dataset.folds) == {0, 1, 2}


def test_esc50_folds_groups_and_esc10(roots):
    dataset = LOADERS["esc50"](roots["esc50"])
    assert dataset.class_names == [name for _, (name, _) in sorted(ESC_CLASSES.items())]
    assert sorted(set(dataset.folds)) == [1, 2, 3, 4, 5] and len(dataset) == 5 * len(ESC_CLASSES) * 2
    for path, fold, group in zip(dataset.paths, dataset.folds, dataset.groups):
        assert Path(path).name.startswith(f"{fold}-{group}-")  # <fold>-<src_file>-<take>-<target>.wav
    assert set(dataset.sample_rates) == {44100}
    esc10 = LOADERS["esc10"](roots["esc50"], decode=False)
    assert esc10.class_names == ["dog", "rooster", "rain"] and esc10.name == "ESC-10"
    assert sorted(set(esc10.labels.tolist())) == [0, 1, 2] and len(esc10) == 5 * 3 * 2


def test_urbansound8k_folds_fsid_groups_and_missing_files(roots):
    dataset = LOADERS["urbansound8k"](roots["urbansound8k"])
    assert dataset.class_names == list(US8K_CLASSES.values())
    assert sorted(set(dataset.folds)) == list(range(1, 11))
    for path, fold, group in zip(dataset.paths, dataset.folds, dataset.groups):
        assert Path(path).parent.name == f"fold{fold}" and group == "fs" + Path(path).name.split("-")[0]
    assert [Path(p).name for p, _ in dataset.failed] == ["99999-3-0-0.wav"]
    assert set(dataset.sample_rates) == {44100, 48000, 22050, 16000} and set(dataset.channels.tolist()) == {1, 2}


def test_gtzan_track_groups_crops_and_the_corrupt_file(roots):
    dataset = LOADERS["gtzan"](roots["gtzan"])
    assert dataset.class_names == list(GTZAN_FIXTURE_GENRES) and len(dataset) == 9
    assert [Path(p).name for p, _ in dataset.failed] == ["jazz.00054.wav"]
    assert dataset.groups == [Path(p).name.rsplit(".", 1)[0] for p in dataset.paths] and dataset.folds is None
    crops = LOADERS["gtzan"](roots["gtzan"], crop_seconds=1.0)
    assert len(crops) == 27 and {w.shape[-1] for w in crops.waveforms} == {22050}  # 3 crops of 3.2 s tracks
    assert all(crops.groups.count(g) == 3 for g in set(crops.groups))
    assert [Path(p).name for p, _ in crops.failed] == ["jazz.00054.wav"]


def test_yesno_labels(roots):
    first = LOADERS["yesno"](roots["yesno"])
    assert first.class_names == ["no", "yes"] and len(first) == len(YESNO_FILES)
    for path, label in zip(first.paths, first.labels):
        assert first.class_names[label] == ("yes" if Path(path).name[0] == "1" else "no")
    count = LOADERS["yesno"](roots["yesno"], label="count", decode=False)
    assert count.class_names[8] == "8 yes"
    expected = {f"{k} yes": sum(stem.count("1") == k for stem in YESNO_FILES) for k in range(9)}
    assert count.class_counts() == expected and expected["8 yes"] == 1


def test_no_audio_means_a_clear_error(tmp_path):
    root = tmp_path / "waves_yesno"
    root.mkdir()
    (root / "0_0_0_0_0_0_0_0.wav").write_bytes(b"not audio")
    with pytest.raises(DatasetError, match="could be decoded"):
        LOADERS["yesno"](root)


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("key, options, test_fold", [
    ("speech_commands_v2_12", {}, None),
    ("esc50", {}, 1),
    ("urbansound8k", {}, 3),
    ("gtzan", {"crop_seconds": 1.0}, None),
    ("yesno", {}, None),
])
def test_a_short_training_run_works(roots, tmp_path, key, options, test_fold):
    root = roots[{"speech_commands_v2_12": "speech_commands"}.get(key, key)]
    dataset = LOADERS[key](root, **options)
    config = TrainConfig(model="tutorial_cnn", epochs=1, batch_size=8, max_batches=2, test_fold=test_fold,
                         device="cpu")
    done = run_training(dataset, FeatureConfig(), config, runs_root=tmp_path, run_id=key)
    assert done.status == "finished", done.message
    if test_fold is not None:  # the held-out fold is the test split, untouched by training
        assert done.metrics["test"]["n"] == sum(f == test_fold for f in dataset.folds)
