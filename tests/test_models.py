"""Tests for lib.models: shapes, sizes, registry, trainability, determinism.

Timings are not tested; ``python -m lib.models`` prints them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lib.dsp.features import FeatureConfig
from lib.models import MODELS, ModelSpec, build_model, count_parameters, model_features, model_summaries, register

# models for any features, from scratch (the pretrained ImageNet CNNs: tests/test_imagenet.py)
NAMES = sorted(name for name, spec in MODELS.items() if spec.feature_kind is None and not spec.pretrained)
SHAPES = [(40, 101), (64, 51), (40, 201)]


def test_expected_models_registered():
    assert {"tutorial_cnn", "bcresnet", "kws_resnet", "crnn", "kws_transformer"} <= set(MODELS)
    assert count_parameters(build_model("kws_resnet", 10, 40, 101)) < 100_000
    for name, spec in MODELS.items():
        assert isinstance(spec, ModelSpec) and spec.name == name and callable(spec.builder)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_bins,n_frames", SHAPES)
def test_output_shape(name, n_bins, n_frames):
    torch.manual_seed(0)
    model = build_model(name, n_classes=7, n_bins=n_bins, n_frames=n_frames)
    out = model(torch.randn(3, 1, n_bins, n_frames))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, n_bins, n_frames)).shape == (1, 7)


@pytest.mark.parametrize("name", NAMES)
def test_small_and_other_length_inputs(name):
    model = build_model(name, n_classes=4, n_bins=16, n_frames=8).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 16, 8)).shape == (2, 4)
        assert model(torch.randn(2, 1, 16, 37)).shape == (2, 4)  # a length it was not built for


def test_parameter_counts():
    bc = count_parameters(build_model("bcresnet", 10, 40, 101))
    assert 20_000 <= bc < 100_000
    assert 20_000 <= count_parameters(build_model("tutorial_cnn", 10, 40, 101)) <= 30_000  # 25,402
    assert count_parameters(build_model("kws_transformer", 10, 40, 101)) < 250_000
    assert count_parameters(build_model("kws_transformer", 35, 128, 201)) < 250_000
    # The width multiplier reproduces the paper's sizes (BC-ResNet-1 ~9.2k, -3 ~54k, -8 ~321k, 12 classes).
    assert abs(count_parameters(build_model("bcresnet", 12, 40, 101, tau=1)) - 9_200) < 300
    assert abs(count_parameters(build_model("bcresnet", 12, 40, 101, tau=3)) - 54_200) < 1_000
    assert abs(count_parameters(build_model("bcresnet", 12, 40, 101, tau=8)) - 321_000) < 3_000


@pytest.mark.parametrize("name", NAMES)
def test_count_parameters_matches_manual_sum(name):
    model = build_model(name, 10, 40, 101)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    first = next(model.parameters())
    first.requires_grad_(False)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters()) - first.numel()
    assert count_parameters(model, trainable_only=False) == sum(p.numel() for p in model.parameters())


def test_a_model_that_reads_its_own_features():
    from lib.dsp.features import FeatureConfig
    from lib.models import model_features

    assert MODELS["speech_embedding"].feature_kind == "speech_embedding"
    mine = FeatureConfig(n_mels=64, clip_seconds=1.5)
    assert model_features("kws_resnet", mine) is mine
    own = model_features("speech_embedding", mine)
    assert own.kind == "speech_embedding" and own.n_mels == 32 and own.clip_seconds == 1.5
    assert {row["name"] for row in model_summaries()} == set(MODELS)


def test_unknown_model_raises_listing_names():
    with pytest.raises(ValueError) as info:
        build_model("resnet9000", 10, 40, 101)
    message = str(info.value)
    assert "resnet9000" in message
    for name in MODELS:
        assert name in message


def test_register_rejects_duplicates():
    with pytest.raises(ValueError):
        register("tutorial_cnn", "again")(lambda **kw: torch.nn.Identity())


@pytest.mark.parametrize("name", NAMES)
def test_overfits_tiny_batch(name):
    torch.manual_seed(0)
    model = build_model(name, n_classes=5, n_bins=40, n_frames=101)
    x, y = torch.randn(8, 1, 40, 101), torch.arange(8) % 5
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name):
    x = torch.randn(4, 1, 40, 101)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(name, 6, 40, 101).eval()
        with torch.no_grad():
            outs.append(model(x))
            assert torch.equal(model(x), outs[-1])  # eval output does not change between calls
    assert torch.equal(outs[0], outs[1])  # same seed, same model, same output


def test_model_summaries():
    rows = model_summaries()
    assert [r["name"] for r in rows] == list(MODELS)
    for row in rows:
        assert set(row) == {"name", "description", "parameters"}
        assert row["description"] and "\n" not in row["description"]
        if row["parameters"] is None:  # run_embedding while the tests' runs folder has no "default" run
            assert row["name"] == "run_embedding"
            continue
        own = model_features(row["name"], FeatureConfig())  # built for its own features (a pretrained backbone)
        with torch.device("meta"):
            assert row["parameters"] == count_parameters(build_model(row["name"], 10, own.n_bins, own.n_frames,
                                                                     weights=False))


def test_no_streamlit_import():
    import lib.models

    source = Path(lib.models.__file__).read_text()
    assert "streamlit" not in source


def test_ensemble_averages_its_members_probabilities():
    from lib.models import Ensemble

    torch.manual_seed(0)
    model = build_model("kws_resnet_x3", n_classes=6, n_bins=40, n_frames=101).eval()
    assert isinstance(model, Ensemble) and len(model.members) == 3
    assert count_parameters(model) == 3 * count_parameters(build_model("kws_resnet", 6, 40, 101))
    x = torch.randn(4, 1, 40, 101)
    with torch.no_grad():
        member_logits = model.member_logits(x)                                   # (3, 4, 6)
        expected = F.softmax(member_logits, dim=-1).mean(dim=0)
        assert not torch.allclose(member_logits[0], member_logits[1])            # initialised independently
        assert torch.allclose(F.softmax(model(x), dim=-1), expected, atol=1e-6)
        assert torch.allclose(model(x).exp().sum(dim=-1), torch.ones(4), atol=1e-5)  # log-probabilities


def test_engine_trains_each_ensemble_member_on_its_own_batch_and_loss():
    from lib.engine.train import _forward_loss

    torch.manual_seed(0)
    model = build_model("kws_resnet_x3", n_classes=5, n_bins=40, n_frames=101).eval()  # eval: no dropout draws
    batches = [torch.randn(8, 1, 40, 101) for _ in range(3)]
    targets = [F.one_hot(torch.randint(0, 5, (8,)), 5).float() for _ in range(3)]
    logits, loss = _forward_loss(model, batches, targets, label_smoothing=0.0)
    separate = torch.stack([F.cross_entropy(m(x), t) for m, x, t in zip(model.members, batches, targets)]).mean()
    assert torch.allclose(loss, separate, atol=1e-5)
    assert logits.shape == (24, 5) and torch.allclose(logits[8:16], model.members[1](batches[1]), atol=1e-5)
    with pytest.raises(ValueError, match="3 model"):
        _forward_loss(model, batches[:1], targets[:1], label_smoothing=0.0)


def test_finetune_parameter_counts_on_the_meta_device():
    from lib.models import finetune_parameter_counts
    from lib.engine.train_config import TrainConfig

    kwargs = TrainConfig(model="speech_embedding").model_kwargs
    frozen = finetune_parameter_counts("speech_embedding", 3, "frozen", **kwargs)
    every = finetune_parameter_counts("speech_embedding", 3, "all", **kwargs)
    assert 0 < frozen[0] < frozen[1] == every[1] == every[0]
