"""Google's speech embedding (Lin et al. 2020), ported to PyTorch from the ONNX files openWakeWord 0.4.0 ships.

A small convolutional network trained by Google on a very large amount of real speech to turn 775 ms of audio into
a 96-dimensional vector; openWakeWord builds its wake-word models on it. It is the workbench's pretrained speech
backbone: a head trained on its embeddings learns new words from a handful of clips.

    waveform (B, time) at 16 kHz
      │  lib.dsp.features     FeatureConfig(kind="speech_embedding"): 0.3 s of silence each side, 512-point STFT every
      │                   10 ms without centring, 32 Slaney mel bands (60-3800 Hz), dB with an 80 dB floor, x/10 + 2
      ▼
    features (B, 1, 32, frames), frames = (time + 9600 - 512) // 160 + 1: 157 for one second
      │  SpeechEmbedding  windows of 76 frames every 8 frames (one pass over the clip); 20 convolutions (3x3 stem,
      │                   then 1x3 / 3x1 pairs)
      ▼
    embeddings (B, windows, 96), windows = (frames - 76) // 8 + 1: 11 for one second
      │  SpeechEmbeddingClassifier: mean and max over windows, layer norm, linear head
      ▼
    logits (B, n_classes)

Weights: the package ``openwakeword==0.4.0`` (a runtime requirement) ships ``melspectrogram.onnx`` and
``embedding_model.onnx``; :func:`load_speech_embedding` reads the embedding's tensors with ``onnx`` (no onnxruntime
needed). The mel graph's STFT kernels are a periodic Hann window of 400 samples centred in 512 and its filters are
torchaudio's Slaney filters, so :mod:`lib.dsp.features` computes the same frames with ``torch.stft`` (tests compare
both with onnxruntime). A saved run holds the weights in its ``model.pt``, so it loads without the package.
Licence: the embedding is Google's ``speech_embedding`` TF-Hub module, released under Apache-2.0; openWakeWord's
code is Apache-2.0 (its own wake-word heads, which we do not use, are CC BY-NC-SA 4.0).

Citation: J. Lin, K. Kilgour, D. Roblek, M. Sharifi, "Training Keyword Spotters with Limited and Synthesized Speech
Data", ICASSP 2020, arXiv:2002.01322. D. Scripka, openWakeWord, https://github.com/dscripka/openWakeWord.

One difference from the ONNX graph, on purpose: its 80 dB floor is taken below the loudest value of the whole
batch; here it is per clip, so a clip's features do not depend on the clips batched with it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from lib.models.backbone import BackboneClassifier

__all__ = ["EMBEDDING_DIM", "WINDOW_FRAMES", "WINDOW_STEP", "SpeechEmbedding", "SpeechEmbeddingClassifier",
           "model_files", "load_speech_embedding", "weights_sha256", "pretrained_embeddings"]

EMBEDDING_DIM = 96
N_MELS = 32
WINDOW_FRAMES, WINDOW_STEP = 76, 8
LEAK, FLOOR = 0.2, -0.4  # every block: LeakyReLU(0.2), then max(x, -0.4)


def _conv(in_channels: int, out_channels: int, kernel: tuple[int, int], bias: bool = True) -> nn.Conv2d:
    padding = (0, 1) if kernel == (1, 3) else (0, 0)  # the 1x3 convolutions keep the mel axis; 3x1 shrink time
    return nn.Conv2d(in_channels, out_channels, kernel, padding=padding, bias=bias)


class SpeechEmbedding(nn.Module):
    """The embedding network: mel windows (N, 76, 32) → (N, 96).

    A 3x3 stem (no bias; ReLU, then batch norm) on the mel window padded by one band each side, then pairs of a 1x3
    and a 3x1 convolution (24, 48, 48, 72, 72, 96, 96, 96 channels) with max pooling between, each followed by
    LeakyReLU(0.2) and a floor at -0.4, and a last 3x1 convolution to one 96-d vector.
    """

    PLAN = (24, "pool", 48, 48, "pool_w", 72, 72, "pool", 96, 96, "pool_w", 96, 96, "pool")

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 24, 3, bias=False)
        self.stem_norm = nn.BatchNorm2d(24, eps=1e-3)
        layers: list[nn.Module] = []
        channels = 24
        for step in self.PLAN:
            if step == "pool":
                layers.append(nn.MaxPool2d(2))
            elif step == "pool_w":
                layers.append(nn.MaxPool2d((1, 2)))
            else:
                layers += [_conv(channels, step, (1, 3)), _conv(step, step, (3, 1))]
                channels = step
        self.blocks = nn.ModuleList(layers)
        self.head = nn.Conv2d(96, EMBEDDING_DIM, (3, 1), bias=False)

    def forward(self, mel_windows: torch.Tensor) -> torch.Tensor:
        x = F.pad(mel_windows.unsqueeze(1), (1, 1))  # (N, 1, 76, 34)
        x = self.stem_norm(F.relu(self.stem(x)))  # (N, 24, 74, 32)
        x = F.leaky_relu(x, LEAK).clamp_min(FLOOR)
        for layer in self.blocks:
            x = layer(x)
            if isinstance(layer, nn.Conv2d):
                x = F.leaky_relu(x, LEAK).clamp_min(FLOOR)
        return self.head(x).flatten(1)  # (N, 96, 1, 1) → (N, 96)


def model_files() -> tuple[Path, Path]:
    """The shipped ONNX files (mel frontend, embedding) inside the installed ``openwakeword`` package.

    Raises:
        FileNotFoundError: the package is not installed (``pip install openwakeword==0.4.0``; later versions download
            the files instead of shipping them).
    """
    spec = importlib.util.find_spec("openwakeword")  # located, not imported: its __init__ loads onnxruntime models
    folder = Path(spec.submodule_search_locations[0]) / "resources" / "models" if spec else None
    files = (folder / "melspectrogram.onnx", folder / "embedding_model.onnx") if folder else ()
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError("the speech embedding's weights come with the package openwakeword==0.4.0, which is "
                                "not installed: run `pip install openwakeword==0.4.0` (or `make run`, which installs "
                                "requirements.txt)")
    return files  # type: ignore[return-value]


def load_speech_embedding(embedding_file: Path | None = None) -> SpeechEmbedding:
    """The embedding network with Google's weights, in eval mode (frozen or fine-tuned is the caller's choice).

    Args:
        embedding_file: ``embedding_model.onnx``; default the one :func:`model_files` finds.
    """
    import onnx
    from onnx import numpy_helper

    path = embedding_file or model_files()[1]
    graph = onnx.load(str(path)).graph
    tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    convs = [list(node.input) for node in graph.node if node.op_type == "Conv"]
    norm = next(list(node.input) for node in graph.node if node.op_type == "BatchNormalization")
    net = SpeechEmbedding()
    targets = [net.stem] + [m for m in net.blocks if isinstance(m, nn.Conv2d)] + [net.head]
    if len(convs) != len(targets):
        raise ValueError(f"{path} has {len(convs)} convolutions; the port expects {len(targets)}")
    with torch.no_grad():
        for conv, inputs in zip(targets, convs):
            conv.weight.copy_(tensors[inputs[1]])
            if conv.bias is not None:
                conv.bias.copy_(tensors[inputs[2]])
        bn = net.stem_norm
        for target, name in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), norm[1:]):
            target.copy_(tensors[name])
    return net.eval()


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's tensors in state_dict order: which weights a run started from."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class SpeechEmbeddingClassifier(BackboneClassifier):
    """A head on the speech embedding: features (B, 1, 32, frames) → logits (B, n_classes).

    The features are the embedding's own mel frames (``FeatureConfig(kind="speech_embedding")``). Every 76-frame
    window (every 8 frames) is embedded; the clip's vector is the mean and the maximum of its windows' embeddings
    (192 values: the max finds the word wherever it sits in the clip), normalised (layer norm, no learned scale) and
    fed to one linear layer. Frozen, last layers or all: :class:`lib.models.backbone.BackboneClassifier`.

    Args:
        n_classes: number of output logits.
        n_bins: feature height; must be 32.
        n_frames: feature width; at least 76.
        pretrained: load Google's weights (:func:`load_speech_embedding`); False starts from random weights (tests).
    """

    def __init__(self, n_classes: int, n_bins: int, n_frames: int, pretrained: bool = True) -> None:
        super().__init__()
        if n_bins != N_MELS or n_frames < WINDOW_FRAMES:
            raise ValueError(f"the speech embedding reads its own features: 32 mel bands and at least "
                             f"{WINDOW_FRAMES} frames, got {n_bins} x {n_frames}; choose the feature kind "
                             f"'speech_embedding'")
        self.backbone = load_speech_embedding() if pretrained else SpeechEmbedding()
        self.norm = nn.LayerNorm(2 * EMBEDDING_DIM, elementwise_affine=False)
        self.head = nn.Linear(2 * EMBEDDING_DIM, n_classes)

    def last_layers(self) -> list[nn.Module]:
        """The backbone's layers ``"last"`` fine-tunes: its last four convolutions (after its last-but-one pooling)
        and its output convolution."""
        convs = [m for m in self.backbone.blocks if isinstance(m, nn.Conv2d)]
        return convs[-4:] + [self.backbone.head]

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, 1, 32, frames) → pooled embeddings (B, 192).

        The network is run once over the whole clip rather than once per 76-frame window: along time it is
        convolutional (three poolings by 2, then an output convolution whose receptive field is 76 frames), so its
        outputs are the embeddings of the windows every 8 frames; those past the last whole window are dropped. The
        same numbers as window by window (within 7.6e-6), about 10x faster (64 one-second clips, 2 CPU threads: 0.45 s
        against 4.4 s).
        """
        windows = (features.shape[-1] - WINDOW_FRAMES) // WINDOW_STEP + 1
        out = self.backbone(features[:, 0].transpose(1, 2))  # (B, 96 * steps), steps >= windows
        embeddings = out.reshape(len(features), EMBEDDING_DIM, -1)[:, :, :windows].transpose(1, 2)  # (B, windows, 96)
        return torch.cat([embeddings.mean(1), embeddings.amax(1)], dim=1)  # (B, 192)


@functools.lru_cache(maxsize=1)
def _pretrained() -> SpeechEmbeddingClassifier:
    return SpeechEmbeddingClassifier(n_classes=1, n_bins=N_MELS, n_frames=WINDOW_FRAMES).eval()


def pretrained_embeddings(features: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """What Google's speech embedding, never trained on these clips' words, makes of them: the pooled embedding
    (:meth:`SpeechEmbeddingClassifier.embed`, mean and max over its windows) of each clip, for a 2-D map.

    Args:
        features: ``(n, 1, 32, frames)`` of kind ``"speech_embedding"`` (:mod:`lib.dsp.features`), frames >= 76.
        batch_size: clips per forward pass.

    Returns:
        ``(n, 192)`` float32 on the CPU.
    """
    model = _pretrained()
    with torch.inference_mode():
        return torch.cat([model.embed(features[i:i + batch_size].cpu()) for i in range(0, len(features), batch_size)]
                         or [torch.zeros(0, 2 * EMBEDDING_DIM)])
