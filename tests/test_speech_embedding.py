"""lib.models.speech_embedding and the "speech_embedding" feature kind equal onnxruntime on openWakeWord's ONNX files."""

import numpy as np
import pytest
import torch

from lib.dsp.features import FeatureConfig, FeatureExtractor
from lib.models.speech_embedding import (EMBEDDING_DIM, SpeechEmbedding, SpeechEmbeddingClassifier,
                                         load_speech_embedding, model_files, weights_sha256)

ort = pytest.importorskip("onnxruntime")
CONFIG = FeatureConfig(kind="speech_embedding", clip_seconds=1.0)


@pytest.fixture(scope="module")
def classifier():
    return SpeechEmbeddingClassifier(n_classes=3, n_bins=32, n_frames=CONFIG.n_frames).eval()


def _clip(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _reference(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """openWakeWord's pipeline: the mel graph on int16-valued samples (with our 0.3 s of silence each side),
    ``x / 10 + 2``, windows of 76 frames every 8, the embedding graph."""
    mel_file, embedding_file = model_files()
    padded = np.pad(wave, 4800)[None] * 32768
    mel = ort.InferenceSession(str(mel_file)).run(None, {"input": padded})[0].squeeze() / 10 + 2  # (frames, 32)
    windows = np.stack([mel[i:i + 76] for i in range(0, mel.shape[0] - 75, 8)])[..., None]
    embeddings = ort.InferenceSession(str(embedding_file)).run(None, {"input_1": windows})[0]
    return mel, embeddings.reshape(len(windows), EMBEDDING_DIM)


def test_features_and_embeddings_match_onnxruntime(classifier):
    """Max abs difference: features 1.1e-5; embeddings 4e-5 on values up to ~50."""
    wave = _clip(1.0)
    mel_ref, embeddings_ref = _reference(wave)
    with torch.no_grad():
        features = FeatureExtractor(CONFIG)(torch.from_numpy(wave)[None, None])  # (1, 1, 32, 157)
        windows = features[0, 0].T.unfold(0, 76, 8).transpose(1, 2)  # (11, 76, 32)
        embeddings = classifier.backbone(windows).numpy()
    assert features.shape == (1, *CONFIG.feature_shape) == (1, 1, 32, 157)
    assert np.abs(features[0, 0].T.numpy() - mel_ref).max() < 1e-4
    assert embeddings.shape == embeddings_ref.shape == (11, EMBEDDING_DIM)
    assert np.abs(embeddings - embeddings_ref).max() < 1e-3 * max(1.0, np.abs(embeddings_ref).max())
    with torch.no_grad():
        pooled = classifier.embed(features)
    np.testing.assert_allclose(pooled[0, :96].numpy(), embeddings_ref.mean(0), atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(pooled[0, 96:].numpy(), embeddings_ref.max(0), atol=1e-3, rtol=1e-4)


def test_kind_fixes_its_frontend_fields():
    config = FeatureConfig(kind="speech_embedding", n_mels=64, sample_rate=8000, normalization="per_clip")
    assert (config.n_mels, config.sample_rate, config.normalization, config.n_fft) == (32, 16000, "none", 512)
    assert config.frames_for(16000) == 157 and FeatureConfig.from_dict(config.to_dict()) == config


def test_classifier_shapes_batch_independence_and_gradients(classifier):
    extractor = FeatureExtractor(CONFIG)
    one, quiet = torch.from_numpy(_clip(1.0, 1)), torch.from_numpy(_clip(1.0, 2)) * 0.01
    with torch.no_grad():
        batch = classifier(extractor(torch.stack([one, quiet])[:, None]))
        alone = classifier(extractor(one[None, None]))
    assert batch.shape == (2, 3)
    torch.testing.assert_close(batch[0], alone[0], rtol=1e-4, atol=1e-4)  # the dB floor is per clip
    model = SpeechEmbeddingClassifier(3, 32, CONFIG.n_frames).train()
    model(extractor(one[None, None])).sum().backward()
    assert model.backbone.stem.weight.grad.abs().sum() > 0 and model.head.weight.grad.abs().sum() > 0


def test_wrong_features_are_refused_and_weights_are_hashed():
    with pytest.raises(ValueError, match="feature kind 'speech_embedding'"):
        SpeechEmbeddingClassifier(3, n_bins=40, n_frames=101)
    assert weights_sha256(load_speech_embedding()) == weights_sha256(load_speech_embedding())
    assert weights_sha256(load_speech_embedding()) != weights_sha256(SpeechEmbedding())


def _window_by_window(model: SpeechEmbeddingClassifier, features: torch.Tensor) -> torch.Tensor:
    """The pooled embedding computed as the network was trained: once per 76-frame window, every 8 frames."""
    windows = features[:, 0].unfold(2, 76, 8)  # (B, 32, windows, 76)
    batch, _, n, _ = windows.shape
    embeddings = model.backbone(windows.permute(0, 2, 3, 1).reshape(batch * n, 76, 32)).reshape(batch, n, -1)
    return torch.cat([embeddings.mean(1), embeddings.amax(1)], dim=1)  # (B, 192)


def test_one_pass_over_the_clip_equals_window_by_window(classifier):
    """``embed`` runs the network once over the whole clip. Max abs difference from window by window: 7.6e-6 (on
    values up to ~30), for clip lengths of 76 to 99 frames and 1, 1.5 and 2 s; tested here on 76-91 and 157 frames."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for frames in [*range(76, 92), 157]:
            features = torch.randn(2, 1, 32, frames, generator=generator)
            torch.testing.assert_close(classifier.embed(features), _window_by_window(classifier, features),
                                       rtol=0, atol=5e-5)


def test_fine_tuning_everything_trains_batch_norm_too():
    torch.manual_seed(0)
    model = SpeechEmbeddingClassifier(3, 32, CONFIG.n_frames)
    model.set_finetune("all")
    model.train()
    features = FeatureExtractor(CONFIG)(torch.stack([torch.from_numpy(_clip(1.0, s)) for s in range(3)])[:, None])
    labels = torch.tensor([0, 1, 2])
    before = model.backbone.stem_norm.running_mean.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(features), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] and all(np.isfinite(losses))
    assert not torch.equal(model.backbone.stem_norm.running_mean, before)  # batch statistics over whole clips
