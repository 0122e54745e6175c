"""lib.speech_embedding: the PyTorch port equals onnxruntime on the shipped ONNX files."""

import numpy as np
import pytest
import torch

from lib.speech_embedding import (EMBEDDING_DIM, SpeechEmbeddingBackbone, load_speech_embedding, model_files)

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def backbone():
    return load_speech_embedding()


def _clip(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_matches_onnxruntime(backbone):
    """Mel frames and embeddings agree with the ONNX graphs run by onnxruntime (max abs difference 4e-5 of ~50)."""
    mel_file, embedding_file = model_files()
    wave = _clip(1.3)
    mel_ref = ort.InferenceSession(str(mel_file)).run(None, {"input": wave[None] * 32768})[0].squeeze() / 10 + 2
    windows = np.stack([mel_ref[i:i + 76] for i in range(0, mel_ref.shape[0] - 75, 8)])[..., None]
    emb_ref = ort.InferenceSession(str(embedding_file)).run(None, {"input_1": windows})[0].reshape(len(windows), -1)
    with torch.no_grad():
        mel = backbone.frontend(torch.from_numpy(wave)[None])[0].numpy()
        emb = backbone(torch.from_numpy(wave)[None])[0].numpy()
    assert mel.shape == mel_ref.shape == (127, 32)
    assert np.abs(mel - mel_ref).max() < 1e-4
    assert emb.shape == emb_ref.shape == (7, EMBEDDING_DIM)
    assert np.abs(emb - emb_ref).max() < 1e-3 * max(1.0, np.abs(emb_ref).max())


def test_shapes_and_batch_independence(backbone):
    one, two = torch.from_numpy(_clip(1.0, 1)), torch.from_numpy(_clip(1.0, 2)) * 0.01
    assert SpeechEmbeddingBackbone.n_windows(16000) == 3 and SpeechEmbeddingBackbone.n_windows(12399) == 0
    with torch.no_grad():
        batch = backbone(torch.stack([one, two]))
        alone = backbone(one[None])
    assert batch.shape == (2, 3, EMBEDDING_DIM)
    torch.testing.assert_close(batch[0], alone[0], rtol=1e-4, atol=1e-4)  # the dB floor is per clip


def test_gradients_flow_for_fine_tuning(backbone):
    wave = torch.from_numpy(_clip(0.8)).requires_grad_(False)[None]
    model = load_speech_embedding().train()
    model(wave).sum().backward()
    assert model.embedding.stem.weight.grad is not None and model.embedding.stem.weight.grad.abs().sum() > 0


def test_short_clip_is_refused(backbone):
    with pytest.raises(ValueError, match="at least 0.775 s"):
        backbone(torch.zeros(1, 12000))
