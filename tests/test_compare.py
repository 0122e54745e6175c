"""lib.engine.compare: legend labels, the settings that differ, the runs table's rows and search."""

from __future__ import annotations

import pytest

from lib.engine.compare import matches, run_settings, setting_text, settings_table, settings_that_differ, short_labels


@pytest.mark.parametrize("ids, labels", [
    (["default", "eval-second"], ["default", "eval-second"]),
    (["lr-sweep-t000", "lr-sweep-t001"], ["t000", "t001"]),                      # the shared prefix goes
    (["20261121-071500-bcresnet-3fa2", "20261121-081500-tutorial_cnn-0b1c"], ["bcresnet-3fa2", "tutorial_cnn-0b1c"]),
    (["a-very-long-experiment-name-lr0.001", "b"], ["a-very-long-ex…0.001", "b"]),  # start and end kept
    (["20261121-071500-x-aaaa", "20261122-071500-x-aaaa"], ["20261121-07150…-aaaa", "20261122-07150…-aaaa"]),
    (["abcdefghijklmnop1qrstuvwxyz", "abcdefghijklmnop2qrstuvwxyz"],
     ["1: abcdefghijk…vwxyz", "2: abcdefghijk…vwxyz"]),                             # numbered when still equal
])
def test_short_labels_are_short_and_distinct(ids, labels):
    got = short_labels(ids)
    assert got == labels
    assert len(set(got)) == len(ids) and all(len(label) <= 20 for label in got)


def test_settings_that_differ_lists_only_differences_in_order():
    from lib.dsp.features import FeatureConfig
    from lib.engine.runs import DatasetRecord, RunRecord
    from lib.engine.train_config import TrainConfig

    record = RunRecord(model="kws_resnet", class_names=["yes", "no"], feature_config=FeatureConfig(),
                       train_config=TrainConfig(model="kws_resnet"), dataset=DatasetRecord("tiny", n_clips=72))
    flat = run_settings(record)
    assert flat["model"] == "kws_resnet" and flat["dataset"] == "tiny" and flat["classes"] == ["yes", "no"]
    assert "train.augment.time_shift_sec" in flat and "features.n_mels" in flat
    assert "train.model" not in flat  # the model once
    other = {**flat, "train.learning_rate": 0.5, "extra": 1}
    assert settings_that_differ([flat, other]) == ["train.learning_rate", "extra"]
    assert settings_that_differ([flat, dict(flat)]) == []
    faster = RunRecord(model="kws_resnet", class_names=["yes", "no"], feature_config=FeatureConfig(),
                       train_config=TrainConfig(model="kws_resnet", learning_rate=0.5),
                       dataset=DatasetRecord("tiny", n_clips=72))
    assert settings_table([record, faster], ["a", "b"]) == [
        {"Setting": "train.learning_rate", "a": setting_text(record.train_config.learning_rate), "b": "0.5"}]
    assert settings_table([record, record], ["a", "b"]) == []


def test_setting_text_and_search():
    assert [setting_text(v) for v in (None, 1e-5, ["yes", "no"], 3, True)] == ["—", "1e-05", "yes, no", "3", "True"]
    row = {"Run": "lr-t001", "Dataset": "Speech Commands", "Model": "kws_resnet", "Sweep": "lr #1"}
    assert matches(row, "") and matches(row, "SPEECH kws") and matches(row, "lr #1") and not matches(row, "crnn")
