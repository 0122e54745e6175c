"""Self-supervised speech models as backbones: wav2vec 2.0, HuBERT and WavLM base, with layer-weighted pooling.

Each is a 12-layer transformer over a convolutional encoder of the raw waveform, trained without labels on 960 hours
of LibriSpeech; their layers hold different things (acoustics low, phones and words higher), so the classifier
learns which layers to listen to:

    waveform (B, 1, 1, time) at 16 kHz        FeatureConfig(kind="waveform"): the clip itself, mono, unnormalised
      │  backbone.extract_features          7 convolutions (one frame every 20 ms), then 12 transformer layers
      ▼
    hidden states: 12 x (B, frames, 768)     frames = 49 for one second
      │  embed: mean over time, every layer kept
      ▼
    embedding (B, 12 * 768)                  what a frozen backbone's run caches: the layer weights still train
      │  LayerWeightedHead (classify): layer norm of each layer, softmax-weighted sum of the layers, linear
      ▼
    logits (B, n_classes)

Weights: torchaudio's pipelines (``torchaudio.pipelines.WAV2VEC2_BASE``, ``HUBERT_BASE``, ``WAVLM_BASE``): the same
architecture parameters (the bundle's ``_params``) and file (``https://download.pytorch.org/torchaudio/models/`` +
the bundle's ``_path``, 360 MB each), fetched with :func:`lib.models.weights.fetch_weights` (cached in the data folder,
resumed, ``AUDIOWB_WEIGHTS_MIRROR``); offline, :class:`lib.models.weights.WeightsUnavailable` says where to put the file.
A saved run holds every weight in its ``model.pt``, so it loads without the download. 16 kHz only.

Citations:
    wav2vec 2.0: A. Baevski, H. Zhou, A. Mohamed, M. Auli, "wav2vec 2.0: A Framework for Self-Supervised Learning
    of Speech Representations", NeurIPS 2020, arXiv:2006.11477.
    HuBERT: W.-N. Hsu, B. Bolte, Y.-H. H. Tsai, K. Lakhotia, R. Salakhutdinov, A. Mohamed, "HuBERT: Self-Supervised
    Speech Representation Learning by Masked Prediction of Hidden Units", IEEE/ACM TASLP 2021, arXiv:2106.07447.
    WavLM: S. Chen et al., "WavLM: Large-Scale Self-Supervised Pre-Training for Full Stack Speech Processing",
    IEEE JSTSP 2022, arXiv:2110.13900.
    Layer-weighted pooling as in SUPERB: S. Yang et al., "SUPERB: Speech processing Universal PERformance
    Benchmark", Interspeech 2021, arXiv:2105.01051.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lib.models.backbone import BackboneClassifier
from lib.data.download import DownloadProgress

__all__ = ["SSL_BACKBONES", "SSLBackbone", "SAMPLE_RATE", "LAST_LAYERS", "LayerWeightedHead", "SSLClassifier",
           "build_ssl_backbone"]

SAMPLE_RATE = 16000
LAST_LAYERS = 2  # finetune="last": the last two transformer layers train
_CHUNK = 16  # clips per pass when no gradient is needed (the first convolution's output is 512 x 3199 per second)
_TORCHAUDIO_MODELS = "https://download.pytorch.org/torchaudio/models/"


@dataclass(frozen=True)
class SSLBackbone:
    """One self-supervised backbone: which torchaudio bundle describes it.

    Attributes:
        name: the registry name (``"wav2vec2_base"``).
        bundle: the ``torchaudio.pipelines`` bundle whose architecture and weights file it uses.
        citation: the paper.
        sha256: the weights file's SHA-256 when known (torchaudio publishes none for these files).
        params: architecture parameters overriding the bundle's ``_params`` (tests use a tiny configuration).
    """

    name: str
    bundle: str
    citation: str
    sha256: str | None = None
    params: dict[str, Any] | None = None

    def _bundle(self):
        import torchaudio.pipelines

        return getattr(torchaudio.pipelines, self.bundle)

    @property
    def url(self) -> str:
        """The weights file torchaudio downloads for the bundle."""
        path = self._bundle()._path
        return path if path.startswith("https") else _TORCHAUDIO_MODELS + path

    def architecture(self) -> dict[str, Any]:
        """Keyword arguments of ``torchaudio.models.wav2vec2_model`` (or ``wavlm_model``)."""
        return dict(self.params if self.params is not None else self._bundle()._params)

    def build(self, pretrained: bool, progress: DownloadProgress | None = None) -> nn.Module:
        """The torchaudio model (``Wav2Vec2Model``), with the bundle's weights when ``pretrained``, in eval mode.

        Raises:
            lib.models.weights.WeightsUnavailable: offline (or a wrong file), with what to do.
        """
        from torchaudio.models import wav2vec2_model, wavlm_model

        factory = wavlm_model if self._bundle()._model_type == "WavLM" else wav2vec2_model
        model = factory(**self.architecture())
        if pretrained:
            from lib.models.weights import fetch_weights, load_state_file

            model.load_state_dict(load_state_file(fetch_weights(self.url, self.sha256, progress)))
        return model.eval()


    def weights_record(self) -> dict[str, str]:
        """``{"source", "sha256"}`` of the cached weights file (what a run started from, saved with it)."""
        from lib.data.download import sha256_file
        from lib.models.weights import weights_path

        return {"source": self.url, "sha256": self.sha256 or sha256_file(weights_path(self.url))}


SSL_BACKBONES: dict[str, SSLBackbone] = {spec.name: spec for spec in (
    SSLBackbone("wav2vec2_base", "WAV2VEC2_BASE", "Baevski et al. 2020, wav2vec 2.0 (arXiv:2006.11477)"),
    SSLBackbone("hubert_base", "HUBERT_BASE", "Hsu et al. 2021, HuBERT (arXiv:2106.07447)"),
    SSLBackbone("wavlm_base", "WAVLM_BASE", "Chen et al. 2022, WavLM (arXiv:2110.13900)"),
)}


def build_ssl_backbone(name: str, pretrained: bool = True) -> nn.Module:
    """The backbone ``name`` of :data:`SSL_BACKBONES` (a torchaudio ``Wav2Vec2Model``) in eval mode."""
    if name not in SSL_BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(SSL_BACKBONES)}")
    return SSL_BACKBONES[name].build(pretrained)


class LayerWeightedHead(nn.Module):
    """Pooled hidden states of every layer ``(B, n_layers * dim)`` → logits ``(B, n_classes)``.

    Each layer's vector is layer-normalised (no learned scale: the layers' scales differ widely), the layers are
    summed with learned softmax weights (``layer_weights``, one per layer, equal at the start), and one linear layer
    gives the logits.
    """

    def __init__(self, n_layers: int, dim: int, n_classes: int) -> None:
        super().__init__()
        self.n_layers, self.dim = n_layers, dim
        self.layer_weights = nn.Parameter(torch.zeros(n_layers))
        self.linear = nn.Linear(dim, n_classes)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        layers = embedding.reshape(len(embedding), self.n_layers, self.dim)  # (B, L, D)
        layers = F.layer_norm(layers, (self.dim,))
        weights = self.layer_weights.softmax(0)  # (L,)
        return self.linear(torch.einsum("l,bld->bd", weights, layers))  # (B, n_classes)


class SSLClassifier(BackboneClassifier):
    """A self-supervised speech model with layer-weighted pooling and a linear head:
    waveform features ``(B, 1, 1, time)`` (``FeatureConfig(kind="waveform")``, 16 kHz) → logits ``(B, n_classes)``.

    The backbone protocol (:class:`lib.models.backbone.BackboneClassifier`): ``"last"`` fine-tunes the last
    :data:`LAST_LAYERS` transformer layers, frozen layers stay in eval mode (no dropout). With ``finetune="frozen"``
    the engine caches :meth:`embed` (every layer's time-mean, ``(B, n_layers * dim)``), so the layer weights train
    with the head.

    Args:
        backbone: a name of :data:`SSL_BACKBONES`.
        n_classes: number of output logits.
        n_bins: feature height; must be 1 (the waveform).
        n_frames: clip length in samples (at least 400: one convolutional frame).
        pretrained: load the bundle's weights (downloaded once); False: random weights (a saved run's are loaded).

    Attributes:
        weights_record: ``{"source", "sha256"}`` of the weights file, or None (random); the engine saves it.
    """

    def __init__(self, backbone: str, n_classes: int, n_bins: int, n_frames: int, pretrained: bool = True) -> None:
        super().__init__()
        if n_bins != 1 or n_frames < 400:
            raise ValueError(f"{backbone} reads the 16 kHz waveform itself, at least 400 samples: got features of "
                             f"{n_bins} x {n_frames}; choose the feature kind 'waveform'")
        self.backbone = build_ssl_backbone(backbone, pretrained)
        self.weights_record = SSL_BACKBONES[backbone].weights_record() if pretrained else None
        layers = self.backbone.encoder.transformer.layers
        dim = self.backbone.encoder.feature_projection.projection.out_features
        self.pool_head = LayerWeightedHead(len(layers), dim, n_classes)

    def last_layers(self) -> list[nn.Module]:
        """The transformer layers ``"last"`` fine-tunes."""
        return list(self.backbone.encoder.transformer.layers)[-LAST_LAYERS:]

    def head_module(self) -> nn.Module:
        """The part after :meth:`embed` (this model's own :class:`LayerWeightedHead`)."""
        return self.pool_head

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Every layer's pooled vector ``(B, n_layers * dim)`` from :meth:`embed` → logits ``(B, n_classes)``."""
        return self.pool_head(embedding)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Waveform features ``(B, 1, 1, time)`` → every layer's mean over time, side by side ``(B, n_layers * dim)``
        (in chunks of 16 clips when no gradient is needed)."""
        waveforms = features.flatten(1)  # (B, time)
        if torch.is_grad_enabled() or len(waveforms) <= _CHUNK:
            hidden, _ = self.backbone.extract_features(waveforms)  # n_layers x (B, frames, dim)
            return torch.cat([h.mean(1) for h in hidden], dim=1)  # (B, n_layers * dim)
        return torch.cat([self.embed(features[i:i + _CHUNK]) for i in range(0, len(features), _CHUNK)])
