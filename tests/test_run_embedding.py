"""lib.models.run_embedding: a saved run's penultimate layer as a backbone (model ``run_embedding``), trained on the tiny
set from a tiny run the tests train (conftest's ``tiny_run``), saved and reloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.engine.evaluate import evaluate
from lib.dsp.features import FeatureConfig
from lib.serving.infer import Classifier, penultimate
from lib.models import build_model, model_features
from lib.engine.runs import load_run
from lib.engine.train import TrainConfig, run_training
from tests.fixtures_datasets import sha256_of


@pytest.fixture
def source(tiny_run, operator_folders):
    """The runs folder holds ``tiny_run`` (a kws_resnet on mel features): returns its name."""
    operator_folders(runs_dir=Path(tiny_run).parent)
    return Path(tiny_run).name


def test_the_backbone_is_the_runs_penultimate_layer(source, tiny_run):
    mine = FeatureConfig(kind="mfcc", clip_seconds=1.0)
    own = model_features("run_embedding", mine, run=source)
    assert own == Classifier.from_run(tiny_run).feature_config
    model = build_model("run_embedding", 4, own.n_bins, own.n_frames, run=source).eval()
    features = torch.randn(3, *own.feature_shape)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(features), penultimate(Classifier.from_run(tiny_run).model, features))
        assert model(features).shape == (3, 4)
    model.set_finetune("frozen")
    assert model.backbone_parameters() == []
    model.set_finetune("last")
    trainable = {id(p) for p in model.backbone_parameters()}
    assert trainable and trainable == {id(p) for layer in model.last_layers() for p in layer.parameters()}
    assert len(trainable) < len(list(model.backbone.parameters()))


def test_frozen_run_saves_its_source_and_reloads_the_same_predictions(source, tiny_run, tiny_dataset, tmp_path):
    config = TrainConfig(model="run_embedding", backbone_run=source, finetune="frozen", epochs=2, batch_size=16,
                         device="cpu")
    done = run_training(tiny_dataset, FeatureConfig(n_mels=64), config, runs_root=tmp_path, run_id="on-tiny")
    assert done.status == "finished", done.message
    saved = json.loads((tmp_path / "on-tiny" / "config.json").read_text())
    assert saved["train_config"]["backbone_run"] == source and saved["feature_config"]["n_mels"] == 40
    run = load_run(done.run_path)
    source_record = load_run(tiny_run).record
    architecture = {"model": source_record.model, "n_classes": len(source_record.class_names),
                    "model_kwargs": source_record.model_kwargs, "features": source_record.feature_config.to_dict()}
    assert run.record.model_kwargs == {"run": source, "architecture": architecture}
    assert run.record.weights == {"source": f"run {source}", "sha256": sha256_of(Path(tiny_run) / "model.pt"),
                                  "architecture": architecture}
    predictions = run.report("test").predictions
    # The run carries its source's architecture: it loads with the source run gone (moved away here).
    moved = Path(tiny_run).with_name("moved-away")
    Path(tiny_run).rename(moved)
    try:
        classifier = Classifier.from_run(done.run_path)
    finally:
        moved.rename(tiny_run)
    again = evaluate(classifier, tiny_dataset, [p.index for p in predictions])
    assert [p.pred for p in again.predictions] == [p.pred for p in predictions]
    np.testing.assert_allclose([p.confidence for p in again.predictions], [p.confidence for p in predictions],
                               atol=1e-4)


def test_last_layers_fine_tune_through_the_engine(source, tiny_run, tiny_dataset, tmp_path):
    config = TrainConfig(model="run_embedding", backbone_run=source, finetune="last", epochs=3, batch_size=16,
                         device="cpu", validation_fraction=0.0, test_fraction=0.0)
    done = run_training(tiny_dataset, FeatureConfig(), config, runs_root=tmp_path, run_id="last")
    assert done.status == "finished", done.message
    trained, original = load_run(done.run_path).state_dict, Classifier.from_run(tiny_run).model.state_dict()
    assert torch.equal(trained["backbone.stem.0.weight"], original["stem.0.weight"])  # frozen below the last block
    assert not torch.equal(trained["backbone.blocks.2.conv1.weight"], original["blocks.2.conv1.weight"])


def test_a_missing_run_is_named_with_what_to_do(operator_folders, tmp_path):
    operator_folders(runs_dir=tmp_path)
    with pytest.raises(ValueError, match=r"'gone'.*not in .*train it"):
        model_features("run_embedding", FeatureConfig(), run="gone")
    with pytest.raises(ValueError, match="not in"):
        build_model("run_embedding", 3, 40, 101, run="gone")
    with pytest.raises(ValueError, match="backbone_run"):
        TrainConfig(model="run_embedding", backbone_run="")
