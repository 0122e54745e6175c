"""A saved run as a backbone: its network up to the penultimate layer, and a new head.

What a trained model has learned to see in a clip (the input of its output layer, :func:`lib.serving.infer.penultimate`) is a
representation in which its classes separate; a new linear head on it learns new words from few clips when they
sound like the old ones. The shipped default model (``models/default``, five ``kws_resnet`` trained on the built-in
ten words) is the usual source:

    features (B, 1, bins, frames)        the source run's own FeatureConfig (model_features gives it)
      │  the run's network, its output layer(s) replaced by identities
      ▼
    embedding (B, dim)                   dim e.g. 5 x 32 for kws_resnet_x5 (the members' side by side)
      │  layer norm (no learned scale), linear
      ▼
    logits (B, n_classes)

The run is named by :attr:`lib.engine.train_config.TrainConfig.backbone_run` (saved in config.json). A run trained on it
saves the source's architecture with its weights record (``RunRecord.weights["architecture"]``: model, classes,
options, features) and its own ``model.pt`` holds every weight, so it loads, zipped or moved, without the source
(runs saved before read the source's config.json).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lib.models.backbone import BackboneClassifier
from lib.dsp.features import FeatureConfig

__all__ = ["run_folder", "source_architecture", "run_features", "RunEmbeddingClassifier"]


def run_folder(run: str) -> Path:
    """The saved run ``run`` in the runs folder (:func:`lib.settings.settings`).

    Raises:
        ValueError: the name is not a run name, or no run of that name is there (the message lists what to do).
    """
    from lib.engine.runs import CONFIG_FILE, is_valid_run_id
    from lib.settings import settings

    root = settings().runs_dir
    if not is_valid_run_id(run) or not (root / run / CONFIG_FILE).is_file():
        raise ValueError(f"run_embedding's backbone is the saved run {run!r}, which is not in {root}: train it, copy "
                         f"its folder there, or choose another run (backbone_run / --backbone-run; 'default' is the "
                         f"shipped model)")
    return root / run


def _source_record(run: str):
    """Run ``run``'s :class:`lib.engine.runs.RunRecord` (read on the CPU even while a model is sized on the meta device:
    its FeatureConfig checks its mel filters)."""
    from lib.engine.runs import read_record

    with torch.device("cpu"):
        return read_record(run_folder(run))


def source_architecture(run: str) -> dict:
    """What rebuilding run ``run``'s network needs, JSON-ready: ``{"model", "n_classes", "model_kwargs",
    "features"}`` (``features``: its FeatureConfig as a dict)."""
    record = _source_record(run)
    return {"model": record.model, "n_classes": len(record.class_names), "model_kwargs": record.model_kwargs,
            "features": record.feature_config.to_dict()}


def run_features(run: str, feature_config: FeatureConfig, architecture: dict | None = None) -> FeatureConfig:
    """The features run ``run`` was trained with (``architecture``'s when given: :func:`source_architecture`), at
    ``feature_config``'s clip length."""
    if architecture is not None:
        with torch.device("cpu"):  # the mel filters are checked on the CPU even while a model is sized on meta
            own = FeatureConfig.from_dict(architecture["features"])
    else:
        own = _source_record(run).feature_config
    return own if own.clip_seconds == feature_config.clip_seconds else own.replace(
        clip_seconds=feature_config.clip_seconds)


def _strip_output_layers(network: nn.Module) -> list[nn.Module]:
    """Replaces the output layer of ``network`` (or of each ensemble member) by an identity, in place, so the
    network returns what that layer read. Returns the networks whose outputs make the embedding."""
    from lib.serving.infer import _output_layers
    from lib.models import Ensemble

    members = list(network.members) if isinstance(network, Ensemble) else [network]
    for member, layer in zip(members, _output_layers(network)):
        name = next(n for n, m in member.named_modules() if m is layer)
        parent, _, attribute = name.rpartition(".")
        setattr(member.get_submodule(parent) if parent else member, attribute, nn.Identity())
    return members


def _last_with_weights(module: nn.Module) -> nn.Module | None:
    """The last child of ``module`` that has parameters (None when none has)."""
    return next((m for m in reversed(list(module.children())) if any(True for _ in m.parameters())), None)


def _input_width(layer: nn.Module) -> int:
    """Values an output layer reads (a ``Linear``'s ``in_features``, a 1x1 convolution's ``in_channels``)."""
    width = getattr(layer, "in_features", None) or getattr(layer, "in_channels", None)
    if not width:
        raise ValueError(f"cannot tell the input width of the output layer {type(layer).__name__}")
    return int(width)


class RunEmbeddingClassifier(BackboneClassifier):
    """A saved run's penultimate layer with a new head: features ``(B, 1, bins, frames)`` → logits
    ``(B, n_classes)``; frozen, last layers or all (:class:`lib.models.backbone.BackboneClassifier`).

    Args:
        n_classes: number of output logits.
        n_bins, n_frames: feature shape (the source run's features, :func:`run_features`).
        run: the source run's name in the runs folder.
        pretrained: load the source run's weights; False: its architecture only (a saved run's weights follow).
        architecture: the source's :func:`source_architecture`, saved with a run trained on it: with
            ``pretrained=False`` the network is built from it, without reading the source run.

    Attributes:
        weights_record: ``{"source": "run <name>", "sha256": <its model.pt's>, "architecture": ...}``, or None; the
            engine saves it.
    """

    def __init__(self, n_classes: int, n_bins: int, n_frames: int, run: str = "default",
                 pretrained: bool = True, architecture: dict | None = None) -> None:
        super().__init__()
        from lib.data.download import sha256_file
        from lib.serving.infer import Classifier, _output_layers
        from lib.models import build_model
        from lib.engine.runs import MODEL_FILE

        self.weights_record: dict | None = None
        if pretrained:
            self.backbone = Classifier.from_run(run_folder(run)).model.cpu()
            self.weights_record = {"source": f"run {run}", "sha256": sha256_file(run_folder(run) / MODEL_FILE),
                                   "architecture": source_architecture(run)}
        else:
            architecture = architecture if architecture is not None else source_architecture(run)
            if not isinstance(architecture, dict) or not {"model", "n_classes", "model_kwargs"} <= set(architecture):
                raise ValueError(f"run_embedding's saved architecture of run {run!r} is not readable: retrain the run")
            self.backbone = build_model(architecture["model"], architecture["n_classes"], n_bins, n_frames,
                                        weights=False, **architecture["model_kwargs"])
        self.run = run
        dim = sum(_input_width(layer) for layer in _output_layers(self.backbone))
        self.members = _strip_output_layers(self.backbone)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.head = nn.Linear(dim, n_classes)

    def last_layers(self) -> list[nn.Module]:
        """The top block of each network: its last child with weights, or the last one inside that child when it is
        a ``Sequential`` (kws_resnet: its last residual block)."""
        layers = []
        for member in self.members:
            layer = _last_with_weights(member)
            while isinstance(layer, (nn.Sequential, nn.ModuleList)) and _last_with_weights(layer) is not None:
                layer = _last_with_weights(layer)
            layers.append(layer)
        return layers

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 1, bins, frames)`` → the source network's penultimate layer ``(B, dim)`` (an ensemble's
        members side by side)."""
        return torch.cat([member(features).flatten(1) for member in self.members], dim=1)
