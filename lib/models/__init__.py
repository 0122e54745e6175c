"""Audio classifiers over log-mel spectrograms, and a registry to build them by name.

Every model takes features shaped ``(batch, 1, n_bins, n_frames)`` (e.g. 40 log-mel bins x 101 frames
for one second at 16 kHz with hop 160) and returns logits shaped ``(batch, n_classes)``. Each is built
for a given ``(n_bins, n_frames)`` and works for any ``n_bins >= 16`` and ``n_frames >= 8``; all of
them also accept clips of another length than the one they were built for.

Models:
    tutorial_cnn: four strided Conv-ReLU-BN blocks, the network of the classic sound-classification
        tutorial (Ketan Doshi, "Audio Deep Learning Made Simple", AudioClassifier).
    bcresnet: BC-ResNet (Kim et al. 2021, "Broadcasted Residual Learning for Efficient Keyword
        Spotting"), with sub-spectral normalisation.
    crnn: three Conv-BN-ReLU-MaxPool blocks, then a bidirectional GRU over time, mean+max pooled.
    kws_transformer: a small Keyword Transformer (KWT, Berg et al. 2021) over 2-frame, full-height
        spectrogram patches.
    kws_resnet: a compact residual KWS network (the default).
    kws_resnet_x3, kws_resnet_x5: three or five kws_resnet trained side by side, each on its own shuffle and
        loss; they predict the mean of their probabilities (an :class:`Ensemble`).
    speech_embedding: Google's pretrained speech embedding (:mod:`lib.models.speech_embedding`) with a linear head; it
        reads its own features (``FeatureConfig(kind="speech_embedding")``), frozen or fine-tuned.
    wav2vec2_base, hubert_base, wavlm_base: self-supervised speech transformers (Baevski et al. 2020, Hsu et al.
        2021, Chen et al. 2022; :mod:`lib.models.ssl_backbones`) on the 16 kHz waveform (``FeatureConfig(kind="waveform")``),
        layer-weighted pooling and a linear head.
    run_embedding: a saved run's penultimate layer (:mod:`lib.models.run_embedding`; ``run=`` names it, default the shipped
        ``models/default``) with a new head, on that run's features.
    alexnet, vgg11, vgg16, resnet18, resnet34, densenet121, efficientnet_lite0: ImageNet CNNs with a new linear
        head, reading the log-mel map as a grey image (:mod:`lib.models.imagenet`), frozen or fine-tuned.

Example:
    >>> model = build_model("bcresnet", n_classes=12, n_bins=40, n_frames=101)
    >>> model(torch.randn(8, 1, 40, 101)).shape
    torch.Size([8, 12])

Run ``python -m lib.models`` to print parameter counts and CPU timings for every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lib.dsp.features import FeatureConfig

__all__ = [
    "ModelSpec",
    "MODELS",
    "register",
    "build_model",
    "count_parameters",
    "finetune_parameter_counts",
    "model_features",
    "model_summaries",
    "TutorialCNN",
    "BCResNet",
    "CRNN",
    "KWSTransformer",
    "KWSResNet",
    "Ensemble",
]

# -----------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class ModelSpec:
    """A model the workbench can build.

    Attributes:
        name: Registry key, e.g. ``"bcresnet"``.
        description: One line for the UI.
        builder: Called as ``builder(n_classes=..., n_bins=..., n_frames=..., **kwargs)``.
        channels_last: trains faster with its weights and inputs in ``torch.channels_last`` memory format (the
            engine uses it unless told otherwise; measured in docs/benchmarks.md).
        feature_kind: the :attr:`lib.dsp.features.FeatureConfig.kind` the model reads (a pretrained backbone reads the
            features it was trained on; :func:`model_features` sets it); None: any features.
        pretrained: its builder loads pretrained weights unless given ``pretrained=False``.
        own_features: for a model whose features depend on its options (``run_embedding``: the source run's),
            ``own_features(feature_config, **model_kwargs) -> FeatureConfig``; :func:`model_features` calls it.
    """

    name: str
    description: str
    builder: Callable[..., nn.Module]
    channels_last: bool = False
    feature_kind: str | None = None
    pretrained: bool = False
    own_features: Callable[..., FeatureConfig] | None = None


MODELS: dict[str, ModelSpec] = {}


def register(name: str, description: str, channels_last: bool = False, feature_kind: str | None = None,
             pretrained: bool = False, own_features: Callable[..., FeatureConfig] | None = None) -> Callable:
    """Class (or function) decorator that adds a model builder to ``MODELS``.

    Args:
        name: Registry key; must be new.
        description: One-line description shown in the UI.
        channels_last: see :attr:`ModelSpec.channels_last`.
        feature_kind: see :attr:`ModelSpec.feature_kind`.
        pretrained: see :attr:`ModelSpec.pretrained`.
        own_features: see :attr:`ModelSpec.own_features`.

    Returns:
        A decorator that registers its argument and returns it unchanged.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = ModelSpec(name=name, description=description, builder=builder, channels_last=channels_last,
                                 feature_kind=feature_kind, pretrained=pretrained, own_features=own_features)
        return builder

    return decorator


def build_model(name: str, n_classes: int, n_bins: int, n_frames: int, weights: bool = True, **kwargs) -> nn.Module:
    """Builds a registered model for inputs of shape ``(batch, 1, n_bins, n_frames)``.

    Args:
        name: A key of ``MODELS``.
        n_classes: Number of output logits.
        n_bins: Feature height (mel bins).
        n_frames: Feature width (frames) the model is built for; other lengths are accepted too.
        weights: False when a saved ``state_dict`` will be loaded into it: a pretrained model then skips reading
            its pretrained weights.
        **kwargs: Model-specific options (e.g. ``tau`` for ``bcresnet``; the engine passes
            :attr:`lib.engine.train_config.TrainConfig.model_kwargs`).

    Returns:
        The model, in training mode.

    Raises:
        ValueError: If ``name`` is not registered.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(sorted(MODELS))}")
    if MODELS[name].pretrained and not weights:
        kwargs["pretrained"] = False
    return MODELS[name].builder(n_classes=n_classes, n_bins=n_bins, n_frames=n_frames, **kwargs)


def model_features(name: str, feature_config: FeatureConfig, **model_kwargs) -> FeatureConfig:
    """The features model ``name`` trains on: ``feature_config``, or, for a model that reads its own kind of
    features (a pretrained backbone), that kind with ``feature_config``'s clip length (``run_embedding``: its run's
    features, given ``model_kwargs``)."""
    if name in MODELS and MODELS[name].own_features is not None:
        return MODELS[name].own_features(feature_config, **model_kwargs)
    kind = MODELS[name].feature_kind if name in MODELS else None
    if kind is None or kind == feature_config.kind:
        return feature_config
    return FeatureConfig(kind=kind, clip_seconds=feature_config.clip_seconds)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Returns the number of parameters of ``model`` that train (all of them, frozen ones too, when not
    ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def finetune_parameter_counts(name: str, n_classes: int, finetune: str, feature_config: FeatureConfig | None = None,
                              **model_kwargs) -> tuple[int, int]:
    """``(trainable, all)`` parameters of model ``name`` (one with a pretrained backbone) in fine-tuning mode
    ``finetune``, on the features it reads from ``feature_config`` (default :class:`FeatureConfig`). Counted on the
    meta device: shapes only, no weights loaded or allocated."""
    own = model_features(name, feature_config or FeatureConfig(), **model_kwargs)
    with torch.device("meta"):
        network = build_model(name, n_classes, own.n_bins, own.n_frames, weights=False, **model_kwargs)
    network.set_finetune(finetune)
    return count_parameters(network), count_parameters(network, trainable_only=False)


def model_summaries(n_classes: int = 10, n_bins: int = 40, n_frames: int = 101) -> list[dict]:
    """Describes every registered model, for the UI.

    Args:
        n_classes: Classes to build each model with (parameter counts depend on it slightly).
        n_bins: Feature height to build with.
        n_frames: Feature width to build with.

    Returns:
        One ``{"name", "description", "parameters"}`` dict per model, in registration order (``parameters`` None
        for ``run_embedding`` when its default run is missing).
    """
    def parameters(spec: ModelSpec) -> int | None:
        try:
            own = (FeatureConfig(kind=spec.feature_kind) if spec.feature_kind is not None
                   else model_features(spec.name, FeatureConfig()) if spec.own_features is not None else None)
            shape = (own.n_bins, own.n_frames) if own is not None else (n_bins, n_frames)
            with torch.device("meta"):  # counted without allocating (the speech backbones have 95 M weights)
                return count_parameters(build_model(spec.name, n_classes, *shape, weights=False))
        except ValueError:  # run_embedding without its run
            return None

    return [{"name": spec.name, "description": spec.description, "parameters": parameters(spec)}
            for spec in MODELS.values()]


# -----------------------------------------------------------------------------
# tutorial_cnn


@register("tutorial_cnn", "Classic tutorial CNN: 4 strided Conv-ReLU-BN blocks (8-64 ch), global average pool, linear",
          channels_last=True)
class TutorialCNN(nn.Module):
    """The AudioClassifier of Ketan Doshi's "Audio Deep Learning Made Simple" tutorial.

    Four blocks of Conv2d -> ReLU -> BatchNorm2d with 8, 16, 32 and 64 channels, each halving both axes
    (first 5x5, then 3x3), then global average pooling and one linear layer. The tutorial feeds a
    2-channel spectrogram; here the input has one channel.

    Args:
        n_classes: Number of output logits.
        n_bins: Feature height (unused: the global pool makes the model shape-agnostic).
        n_frames: Feature width (unused).
    """

    def __init__(self, n_classes: int, n_bins: int = 40, n_frames: int = 101):
        super().__init__()
        self.n_classes, self.n_bins, self.n_frames = n_classes, n_bins, n_frames
        layers = []
        channels = [1, 8, 16, 32, 64]
        for i in range(4):
            kernel, padding = (5, 2) if i == 0 else (3, 1)
            conv = nn.Conv2d(channels[i], channels[i + 1], kernel, stride=2, padding=padding)
            nn.init.kaiming_normal_(conv.weight, a=0.1)
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(), nn.BatchNorm2d(channels[i + 1])]
        self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, 64, F/16, T/16)
        x = self.pool(x).flatten(1)  # (B, 64)
        return self.head(x)  # (B, n_classes)


# -----------------------------------------------------------------------------
# bcresnet


class SubSpectralNorm(nn.Module):
    """Sub-spectral normalisation: BatchNorm with separate statistics for each of ``S`` frequency bands.

    Args:
        channels: Number of channels C.
        sub_bands: Number of equal frequency bands S; the frequency size must be divisible by it.
            ``S = 1`` is plain ``BatchNorm2d``.
    """

    def __init__(self, channels: int, sub_bands: int):
        super().__init__()
        self.sub_bands = sub_bands
        self.bn = nn.BatchNorm2d(channels * sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, Fq, T = x.shape  # (B, C, F, T)
        S = self.sub_bands
        if Fq % S:
            raise ValueError(f"SubSpectralNorm with {S} sub-bands got {Fq} frequency rows; build the model for this n_bins")
        x = self.bn(x.reshape(B, C * S, Fq // S, T))  # (B, C*S, F/S, T)
        return x.reshape(B, C, Fq, T)  # (B, C, F, T)


class BCResBlock(nn.Module):
    """A broadcasted residual block (normal block, or transition block when channels change).

    The 2-D part f2 is a frequency-wise depthwise conv and sub-spectral norm. Its output is averaged
    over frequency, and the 1-D part f1 (temporal depthwise conv, BN, SiLU, pointwise conv, channel
    dropout) runs on that single row; the result is broadcast back over frequency and added.
    A normal block also adds its input (identity shortcut); a transition block first changes the
    channel count with a pointwise conv (and may stride over frequency), so it has no identity shortcut.

    Args:
        in_ch: Input channels.
        out_ch: Output channels; a transition block when different from ``in_ch`` or strided.
        sub_bands: Sub-bands of the sub-spectral norm (divides the frequency size of the output).
        freq_stride: Stride of the frequency depthwise conv (1 or 2).
        dilation: Dilation of the temporal depthwise conv.
        dropout: Channel dropout on the f1 branch.
    """

    def __init__(self, in_ch: int, out_ch: int, sub_bands: int, freq_stride: int = 1, dilation: int = 1, dropout: float = 0.1):
        super().__init__()
        self.transition = in_ch != out_ch or freq_stride != 1
        if self.transition:
            self.expand = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())
        # f2: frequency-wise depthwise conv + sub-spectral norm
        self.freq_conv = nn.Conv2d(out_ch, out_ch, (3, 1), stride=(freq_stride, 1), padding=(1, 0), groups=out_ch, bias=False)
        self.ssn = SubSpectralNorm(out_ch, sub_bands)
        # f1: temporal depthwise conv on the frequency-averaged map
        self.temp_conv = nn.Conv2d(out_ch, out_ch, (1, 3), padding=(0, dilation), dilation=(1, dilation), groups=out_ch, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.pointwise = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.drop = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x  # (B, C, F, T)
        if self.transition:
            x = self.expand(x)  # (B, C', F, T)
        x = self.ssn(self.freq_conv(x))  # (B, C', F', T)   F' = F / freq_stride
        y = x.mean(dim=2, keepdim=True)  # (B, C', 1, T)
        y = F.silu(self.bn(self.temp_conv(y)))  # (B, C', 1, T)
        y = self.drop(self.pointwise(y))  # (B, C', 1, T)
        out = x + y  # (B, C', F', T) broadcast over frequency
        if not self.transition:
            out = out + identity
        return F.relu(out)


@register("bcresnet", "BC-ResNet (Kim et al. 2021): broadcasted residual blocks; tiny and accurate, slow to train on a CPU")
class BCResNet(nn.Module):
    """BC-ResNet-tau (Kim et al. 2021, "Broadcasted Residual Learning for Efficient Keyword Spotting").

    Layout (channels for width ``tau``; F = frequency rows, T = frames, T is never strided):

        conv 5x5 stride (2, 1), 16*tau -> BN -> ReLU                     F/2
        stage 1: 2 blocks,  8*tau, dilation 1                            F/2
        stage 2: 2 blocks, 12*tau, freq stride 2, dilation 2             F/4
        stage 3: 4 blocks, 16*tau, freq stride 2, dilation 4             F/8
        stage 4: 4 blocks, 20*tau, dilation 8                            F/8
        depthwise conv 5x5 -> pointwise 32*tau -> BN -> ReLU -> mean over F and T -> 1x1 to classes

    Departures from the paper, so that any ``n_bins`` works: the last depthwise conv is padded over
    frequency and followed by a mean over frequency (the paper's unpadded 5x5 conv reduces exactly 5 rows
    to 1), and each stage's sub-spectral norm uses the largest number of sub-bands <= 5 that divides its
    frequency size (5 for 40 bins, as in the paper; 4 for 64 or 128 bins; 1 = plain BatchNorm). The
    model therefore expects the ``n_bins`` it was built for; any number of frames works.

    Parameters (10 classes): tau=1 ~9k, tau=2 ~27k, tau=3 ~55k, tau=6 ~190k.

    Args:
        n_classes: Number of output logits.
        n_bins: Feature height the model is built for.
        n_frames: Feature width (unused: the model is length-agnostic).
        tau: Width multiplier (the paper's BC-ResNet-1 ... -8).
        sub_bands: Sub-spectral norm bands (an upper bound; see above). 1 means plain BatchNorm.
        dropout: Channel dropout inside the blocks.
    """

    def __init__(self, n_classes: int, n_bins: int = 40, n_frames: int = 101, tau: float = 2, sub_bands: int = 5, dropout: float = 0.1):
        super().__init__()
        self.n_classes, self.n_bins, self.n_frames, self.tau = n_classes, n_bins, n_frames, tau
        c = [round(k * tau) for k in (16, 8, 12, 16, 20, 32)]
        blocks, freq_strides, dilations = (2, 2, 4, 4), (1, 2, 2, 1), (1, 2, 4, 8)

        self.head = nn.Sequential(nn.Conv2d(1, c[0], 5, stride=(2, 1), padding=2, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU())
        rows = (n_bins + 1) // 2  # frequency rows after the head
        stages = []
        for i in range(4):
            rows = (rows - 1) // freq_strides[i] + 1
            S = max(s for s in range(1, sub_bands + 1) if rows % s == 0)
            for j in range(blocks[i]):
                in_ch = c[i] if j == 0 else c[i + 1]
                stride = freq_strides[i] if j == 0 else 1
                stages.append(BCResBlock(in_ch, c[i + 1], S, stride, dilations[i], dropout))
        self.blocks = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.Conv2d(c[4], c[4], 5, padding=2, groups=c[4], bias=False),
            nn.Conv2d(c[4], c[5], 1, bias=False),
            nn.BatchNorm2d(c[5]),
            nn.ReLU(),
        )
        self.out = nn.Conv2d(c[5], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)  # (B, 16t, F/2, T)
        x = self.blocks(x)  # (B, 20t, F/8, T)
        x = self.classifier(x)  # (B, 32t, F/8, T)
        x = x.mean(dim=(2, 3), keepdim=True)  # (B, 32t, 1, 1)
        return self.out(x).flatten(1)  # (B, n_classes)


# -----------------------------------------------------------------------------
# crnn


@register("crnn", "CRNN: 3 Conv-BN-ReLU-MaxPool blocks, bidirectional GRU (64) over time, mean+max pooling")
class CRNN(nn.Module):
    """Convolutional recurrent network.

    Three Conv3x3-BN-ReLU-MaxPool blocks (16, 32, 64 channels) pool frequency by 8 and time by 2; the
    frequency axis is then average-pooled to ``freq_rows`` rows and flattened into the features of each
    frame, a bidirectional GRU runs over the frames, and its outputs are mean- and max-pooled over time
    and classified by one linear layer.

    Args:
        n_classes: Number of output logits.
        n_bins: Feature height (unused: the adaptive frequency pool makes the model height-agnostic).
        n_frames: Feature width (unused).
        hidden: GRU hidden size per direction.
        freq_rows: Frequency rows kept per frame before the GRU.
        dropout: Dropout before the final linear layer.
    """

    def __init__(self, n_classes: int, n_bins: int = 40, n_frames: int = 101, hidden: int = 64, freq_rows: int = 4, dropout: float = 0.2):
        super().__init__()
        self.n_classes, self.n_bins, self.n_frames = n_classes, n_bins, n_frames
        channels, pools = [1, 16, 32, 64], [(2, 2), (2, 1), (2, 1)]
        layers = []
        for i, pool in enumerate(pools):
            layers += [
                nn.Conv2d(channels[i], channels[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(channels[i + 1]),
                nn.ReLU(),
                nn.MaxPool2d(pool, ceil_mode=True),
            ]
        self.conv = nn.Sequential(*layers)
        self.freq_pool = nn.AdaptiveAvgPool2d((freq_rows, None))
        self.gru = nn.GRU(channels[-1] * freq_rows, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(4 * hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, 64, F/8, T/2)
        x = self.freq_pool(x)  # (B, 64, R, T')
        B, C, R, T = x.shape
        x = x.permute(0, 3, 1, 2).reshape(B, T, C * R)  # (B, T', 64*R)
        x, _ = self.gru(x)  # (B, T', 2H)
        x = torch.cat([x.mean(dim=1), x.amax(dim=1)], dim=1)  # (B, 4H)
        return self.head(self.drop(x))  # (B, n_classes)


# -----------------------------------------------------------------------------
# kws_transformer


@register("kws_transformer", "Keyword Transformer: 4-layer pre-norm encoder (d=64, 4 heads) over 2-frame spectrogram patches")
class KWSTransformer(nn.Module):
    """A small Keyword Transformer (KWT, Berg et al. 2021) without class token.

    The spectrogram is cut into full-height patches of ``patch_frames`` frames (padded at the end to a
    whole number of patches), each projected to ``d_model`` and layer-normalised, plus a learned
    position embedding that is linearly interpolated when the number of patches differs from the one
    the model was built for. A pre-norm ``nn.TransformerEncoder`` follows; the tokens are mean-pooled,
    normalised and classified by one linear layer.

    Args:
        n_classes: Number of output logits.
        n_bins: Feature height the model is built for (patches span all bins).
        n_frames: Feature width the model is built for (sets the size of the position table).
        d_model: Token width.
        n_heads: Attention heads.
        n_layers: Encoder layers.
        ff_mult: Feed-forward width as a multiple of ``d_model``.
        patch_frames: Frames per patch.
        dropout: Dropout inside the encoder.
    """

    def __init__(
        self,
        n_classes: int,
        n_bins: int = 40,
        n_frames: int = 101,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 4,
        ff_mult: int = 4,
        patch_frames: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.n_classes, self.n_bins, self.n_frames, self.patch_frames = n_classes, n_bins, n_frames, patch_frames
        self.patch_embed = nn.Conv2d(1, d_model, (n_bins, patch_frames), stride=(n_bins, patch_frames))
        self.embed_norm = nn.LayerNorm(d_model)
        n_patches = -(-n_frames // patch_frames)
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches, d_model))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=ff_mult * d_model, dropout=dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != self.n_bins:
            raise ValueError(f"kws_transformer was built for {self.n_bins} bins, got {x.shape[2]}")
        x = F.pad(x, (0, -x.shape[-1] % self.patch_frames))  # (B, 1, F, T) T padded to a multiple of the patch
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D)
        pos = self.pos_embed  # (1, N0, D)
        if pos.shape[1] != x.shape[1]:
            pos = F.interpolate(pos.transpose(1, 2), size=x.shape[1], mode="linear", align_corners=False).transpose(1, 2)
        x = self.embed_norm(x) + pos  # (B, N, D)
        x = self.encoder(x)  # (B, N, D)
        return self.head(x.mean(dim=1))  # (B, n_classes)


# -----------------------------------------------------------------------------
# kws_resnet


class ResBlock(nn.Module):
    """Basic residual block: Conv3x3 (stride) -> BN -> ReLU -> Conv3x3 -> BN, plus a (projected) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels else
                         nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                       nn.BatchNorm2d(out_channels)))

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))  # (B, C_out, F', T')
        y = self.bn2(self.conv2(y))  # (B, C_out, F', T')
        return F.relu(y + self.shortcut(x))


@register("kws_resnet", "Compact residual KWS CNN: strided stem, 3 residual blocks on small maps; fast on a CPU",
          channels_last=True)
class KWSResNet(nn.Module):
    """A compact ResNet for keyword spotting (in the spirit of Tang & Lin 2018, "res8").

    Plain 3x3 convolutions (fast on CPUs and GPUs alike, unlike depthwise ones whose backward pass is slow
    on a CPU) on maps that a strided stem and two strided blocks make small: 40x101 -> 20x51 -> 10x26 -> 5x13.

    Args:
        n_classes: Number of output logits.
        n_bins: Feature height (any >= 8).
        n_frames: Feature width (any; kept for the registry's signature).
        width: Channels of the first stage; the last stage has twice as many.
        dropout: Dropout before the classifier.
    """

    def __init__(self, n_classes: int, n_bins: int, n_frames: int, width: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        self.n_classes, self.n_bins, self.n_frames = n_classes, n_bins, n_frames
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        self.blocks = nn.Sequential(ResBlock(width, width, stride=2), ResBlock(width, 2 * width, stride=2),
                                    ResBlock(2 * width, 2 * width))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * width, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # (B, w, F/2, T/2)
        x = self.blocks(x)  # (B, 2w, F/8, T/8)
        x = x.mean(dim=(2, 3))  # (B, 2w)
        return self.classifier(self.dropout(x))  # (B, n_classes)


# -----------------------------------------------------------------------------
# ensembles


class Ensemble(nn.Module):
    """Independently initialised members of one architecture whose probabilities are averaged.

    The training engine fits every member to the labels with its own loss (:meth:`member_logits`), so they
    are trained as separate models on the same batches; they differ by their initialisation (and dropout).

    Args:
        members: the member networks, each ``(batch, 1, bins, frames) -> (batch, n_classes)``.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def member_logits(self, x: Tensor) -> Tensor:
        """Every member's logits: ``(batch, 1, bins, frames)`` -> ``(members, batch, n_classes)``."""
        return torch.stack([member(x) for member in self.members])

    @staticmethod
    def combine(member_logits: Tensor) -> Tensor:
        """``(members, batch, n_classes)`` logits -> ``(batch, n_classes)``: the log of the mean probability,
        so ``softmax`` of it is the members' averaged probabilities."""
        log_probabilities = F.log_softmax(member_logits.float(), dim=-1)
        return torch.logsumexp(log_probabilities, dim=0) - torch.log(torch.tensor(float(len(member_logits))))

    def forward(self, x: Tensor) -> Tensor:
        return self.combine(self.member_logits(x))  # (B, n_classes)


def _register_ensemble(n_members: int) -> None:
    @register(f"kws_resnet_x{n_members}", f"{n_members} kws_resnet trained side by side on their own shuffles, "
                                          f"probabilities averaged: steadier on unheard voices, {n_members}x the compute",
              channels_last=True)
    def build(n_classes: int, n_bins: int, n_frames: int, members: int = n_members, **kwargs) -> Ensemble:
        return Ensemble([KWSResNet(n_classes, n_bins, n_frames, **kwargs) for _ in range(members)])


for _n in (3, 5):
    _register_ensemble(_n)


# -----------------------------------------------------------------------------
# pretrained backbones


@register("speech_embedding", "Google's pretrained speech embedding (96-d every 80 ms) with a linear head: learns new "
                              "words from a few clips; reads its own mel features", feature_kind="speech_embedding",
          pretrained=True)
def _speech_embedding(n_classes: int, n_bins: int, n_frames: int, pretrained: bool = True) -> nn.Module:
    from lib.models.speech_embedding import SpeechEmbeddingClassifier  # reads the weights from the openwakeword package

    return SpeechEmbeddingClassifier(n_classes, n_bins, n_frames, pretrained=pretrained)


def _register_ssl(name: str, description: str) -> None:
    @register(name, description, feature_kind="waveform", pretrained=True)
    def build(n_classes: int, n_bins: int, n_frames: int, pretrained: bool = True) -> nn.Module:
        from lib.models.ssl_backbones import SSLClassifier  # downloads the weights once (lib.models.weights)

        return SSLClassifier(name, n_classes, n_bins, n_frames, pretrained=pretrained)


for _name, _description in (
        ("wav2vec2_base", "wav2vec 2.0 base (Baevski et al. 2020), self-supervised on LibriSpeech; reads the 16 kHz "
                          "waveform; layer-weighted pooling and a linear head; 95 M parameters, weights downloaded"),
        ("hubert_base", "HuBERT base (Hsu et al. 2021), self-supervised on LibriSpeech; reads the 16 kHz waveform; "
                        "layer-weighted pooling and a linear head; 95 M parameters, weights downloaded"),
        ("wavlm_base", "WavLM base (Chen et al. 2022), self-supervised on LibriSpeech; reads the 16 kHz waveform; "
                       "layer-weighted pooling and a linear head; 95 M parameters, weights downloaded")):
    _register_ssl(_name, _description)


def _run_features(feature_config: FeatureConfig, run: str = "default", architecture: dict | None = None
                  ) -> FeatureConfig:
    from lib.models.run_embedding import run_features

    return run_features(run, feature_config, architecture)


@register("run_embedding", "A saved run's penultimate layer as a backbone (default: the shipped model), a new linear "
                           "head; reads that run's features", pretrained=True, own_features=_run_features)
def _run_embedding(n_classes: int, n_bins: int, n_frames: int, run: str = "default",
                   pretrained: bool = True, architecture: dict | None = None) -> nn.Module:
    from lib.models.run_embedding import RunEmbeddingClassifier

    return RunEmbeddingClassifier(n_classes, n_bins, n_frames, run=run, pretrained=pretrained,
                                  architecture=architecture)


def _register_imagenet() -> None:
    from lib.models.imagenet import ARCHITECTURES, build_imagenet  # torchvision is imported when one is built

    for arch in ARCHITECTURES.values():
        register(arch.name, arch.description, pretrained=True)(build_imagenet(arch.name))


_register_imagenet()
