"""bench/model_flops.py: the layers it times alone are the model's, with the model's arithmetic."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import model_flops  # noqa: E402


@pytest.mark.parametrize("model", ["kws_resnet"])
def test_layers_alone_add_up_to_the_training_step(model):
    cpu = torch.device("cpu")
    cap = model_flops.layer_cap(model, cpu, batch=4, channels_last=True, repeats=1)
    step = model_flops.model_step(model, cpu, batch=4, dtype="fp32", channels_last=True, steps=1)
    layer_flops = sum(row["flops"] for row in cap["layers"])
    assert layer_flops == pytest.approx(step["mflop_per_sample"] * 1e6 * 4, rel=1e-9)
    assert sum(row["share"] for row in cap["layers"]) == pytest.approx(1.0)
    assert cap["cap_samples_per_sec"] > 0 and step["samples_per_sec"] > 0


def test_layer_shapes_are_what_each_layer_sees():
    model, (n_bins, n_frames) = model_flops.build("kws_resnet", torch.device("cpu"), channels_last=False)
    shapes = model_flops.layer_shapes(model, torch.randn(2, 1, n_bins, n_frames))
    assert shapes[0][0] == "stem.0" and shapes[0][2] == (2, 1, n_bins, n_frames)
    assert shapes[-1][0] == "classifier" and shapes[-1][2] == (2, model.classifier.in_features)
