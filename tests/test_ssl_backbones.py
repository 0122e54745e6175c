"""lib.models.ssl_backbones: wav2vec 2.0 / HuBERT / WavLM backbones, on TINY configurations of the same torchaudio
architectures whose random weights the test saves and serves on loopback (nothing downloads from the internet), and
the "waveform" feature kind they read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lib.engine.evaluate import evaluate
from lib.dsp.features import FeatureConfig, FeatureExtractor
from lib.serving.infer import Classifier
from lib.models import MODELS, build_model, model_features
from lib.engine.runs import load_run
from lib.models.ssl_backbones import LAST_LAYERS, SSL_BACKBONES, SSLClassifier
from lib.engine.train import TrainConfig, run_training
from lib.models.weights import MIRROR_ENV, WeightsUnavailable, weights_path
from tests.fixtures_datasets import closed_port_url, sha256_of

N_LAYERS, DIM = 3, 16
TINY = dict(extractor_mode="group_norm", extractor_conv_layer_config=[(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8, 2, 2)] * 2,
            extractor_conv_bias=False, encoder_embed_dim=DIM, encoder_projection_dropout=0.0,
            encoder_pos_conv_kernel=4, encoder_pos_conv_groups=2, encoder_num_layers=N_LAYERS, encoder_num_heads=2,
            encoder_attention_dropout=0.0, encoder_ff_interm_features=32, encoder_ff_interm_dropout=0.0,
            encoder_dropout=0.0, encoder_layer_norm_first=False, encoder_layer_drop=0.0, aux_num_out=None)
TINY_WAVLM = dict(TINY, encoder_max_distance=20, encoder_num_buckets=8)
WAVEFORM = FeatureConfig(kind="waveform")


@pytest.fixture
def served(server, operator_folders, tmp_path, monkeypatch):
    """Tiny backbones in SSL_BACKBONES, their random weights served at their torchaudio URLs' paths on loopback
    (AUDIOWB_WEIGHTS_MIRROR), an empty weights cache. Returns ``{name: state_dict}``."""
    operator_folders(data_dir=tmp_path / "data", runs_dir=tmp_path / "runs")
    monkeypatch.setenv(MIRROR_ENV, server.url("").rstrip("/"))
    states = {}
    for name, spec in list(SSL_BACKBONES.items()):
        tiny = dataclasses.replace(spec, params=TINY_WAVLM if spec.bundle.startswith("WAVLM") else TINY)
        monkeypatch.setitem(SSL_BACKBONES, name, tiny)
        torch.manual_seed(len(name))
        states[name] = tiny.build(pretrained=False).state_dict()
        target = server.directory / tiny.url.split("://", 1)[1].split("/", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(states[name], target)
    return states


def _clips(n: int = 2, seed: int = 0) -> torch.Tensor:
    """``(n, 1, 16000)`` one second of chirps and noise."""
    t = torch.arange(16000) / 16000
    noise = torch.randn(n, 1, 16000, generator=torch.Generator().manual_seed(seed))
    return 0.3 * torch.sin(2 * np.pi * 300 * t * (1 + t)) + 0.05 * noise


@pytest.mark.parametrize("name", sorted(SSL_BACKBONES))
def test_weights_download_once_through_the_mirror_and_load(served, server, name):
    assert MODELS[name].pretrained and MODELS[name].feature_kind == "waveform"
    assert SSL_BACKBONES[name].url.startswith("https://download.pytorch.org/torchaudio/models/")
    model = build_model(name, 3, 1, 16000)
    for key, value in served[name].items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    build_model(name, 3, 1, 16000)  # from the cache: no second request
    path = SSL_BACKBONES[name].url.split("://", 1)[1].split("/", 1)[1]
    assert len(server.gets(path)) == 1 and weights_path(SSL_BACKBONES[name].url).is_file()
    features = FeatureExtractor(WAVEFORM)(_clips(2))
    with torch.no_grad():
        embedding = model.embed(features)
        assert embedding.shape == (2, N_LAYERS * DIM) and model(features).shape == (2, 3)
        alone = model.eval()(features[1:])
        torch.testing.assert_close(model(features)[1:], alone, rtol=1e-4, atol=1e-5)  # batch equals item by item


def test_offline_says_where_to_put_the_weights(served, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, closed_port_url("").rstrip("/"))
    with pytest.raises(WeightsUnavailable) as error:
        build_model("hubert_base", 3, 1, 16000)
    message = str(error.value)
    assert str(weights_path(SSL_BACKBONES["hubert_base"].url)) in message and "scratch" in message


def test_waveform_kind_is_the_clip_and_16_khz_only():
    assert WAVEFORM.feature_shape == (1, 1, 16000) and model_features("wavlm_base", FeatureConfig()) == WAVEFORM
    assert FeatureConfig.from_dict(WAVEFORM.to_dict()) == WAVEFORM
    clips = _clips(2)
    torch.testing.assert_close(FeatureExtractor(WAVEFORM)(clips), clips[:, :, None, :])
    with pytest.raises(ValueError, match="16000"):
        FeatureConfig(kind="waveform", sample_rate=8000)
    with pytest.raises(ValueError, match="feature kind 'waveform'"):
        SSLClassifier("wav2vec2_base", 3, n_bins=40, n_frames=101, pretrained=False)


def test_layer_weighted_head_and_finetune_modes(served):
    model = SSLClassifier("wav2vec2_base", 3, 1, 16000, pretrained=False)
    head = model.head_module()
    with torch.no_grad():
        head.layer_weights.copy_(torch.tensor([0.0, 1.0, -1.0]))
        embedding = torch.randn(4, N_LAYERS * DIM)
        layers = torch.nn.functional.layer_norm(embedding.reshape(4, N_LAYERS, DIM), (DIM,))
        expected = head.linear((torch.tensor([0.0, 1.0, -1.0]).softmax(0)[None, :, None] * layers).sum(1))
        torch.testing.assert_close(model.classify(embedding), expected)
    model.set_finetune("frozen")
    assert model.backbone_parameters() == [] and {"layer_weights", "linear.weight"} <= {
        n for n, p in head.named_parameters() if p.requires_grad}
    model.set_finetune("last")
    last = {id(p) for layer in model.last_layers() for p in layer.parameters()}
    assert len(model.last_layers()) == LAST_LAYERS and {id(p) for p in model.backbone_parameters()} == last
    model.train()
    assert model.last_layers()[0].training and not model.backbone.feature_extractor.training
    model.set_finetune("all")
    assert len(model.backbone_parameters()) == len(list(model.backbone.parameters()))
    model(FeatureExtractor(WAVEFORM)(_clips(2))).sum().backward()
    assert model.backbone.feature_extractor.conv_layers[0].conv.weight.grad.abs().sum() > 0


def test_frozen_training_saves_and_reloads_the_same_predictions(served, tiny_dataset, tmp_path):
    config = TrainConfig(model="wavlm_base", finetune="frozen", epochs=1, batch_size=16, device="cpu",
                         validation_fraction=0.2, test_fraction=0.2)
    done = run_training(tiny_dataset, FeatureConfig(), config, runs_root=tmp_path / "saved", run_id="ssl")
    assert done.status == "finished", done.message
    run = load_run(done.run_path)
    assert run.record.feature_config == WAVEFORM and run.record.train_config.finetune == "frozen"
    assert run.record.weights == {"source": SSL_BACKBONES["wavlm_base"].url,
                                  "sha256": sha256_of(weights_path(SSL_BACKBONES["wavlm_base"].url))}
    saved = run.report("test").predictions
    again = evaluate(Classifier.from_run(done.run_path), tiny_dataset, [p.index for p in saved])
    assert [p.pred for p in again.predictions] == [p.pred for p in saved]
    np.testing.assert_allclose([p.confidence for p in again.predictions], [p.confidence for p in saved], atol=1e-4)
