"""The backbone protocol: what the training engine (:mod:`lib.engine.train`) asks of a model with a pretrained backbone.

A backbone model is ``classify(embed(features))``: :meth:`BackboneClassifier.embed` turns features into one vector
per clip, :meth:`BackboneClassifier.classify` (the head, :meth:`BackboneClassifier.head_module`) turns it into
logits. With ``finetune="frozen"`` the engine computes every clip's embedding once and trains the head alone; with
``"last"`` the backbone's :meth:`BackboneClassifier.last_layers` train too; with ``"all"`` everything does, the
backbone's parameters (:meth:`BackboneClassifier.backbone_parameters`) at a lower learning rate.

Subclasses: :class:`lib.models.speech_embedding.SpeechEmbeddingClassifier`, :class:`lib.models.ssl_backbones.SSLClassifier`,
:class:`lib.models.imagenet.ImageNetClassifier`,
:class:`lib.models.run_embedding.RunEmbeddingClassifier`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FINETUNE_MODES", "BackboneClassifier"]

FINETUNE_MODES = ("all", "last", "frozen")


class BackboneClassifier(nn.Module):
    """A pretrained ``backbone`` and a head. Subclasses set ``self.backbone`` and define :meth:`embed` and
    :meth:`last_layers`; the default head is ``self.head(self.norm(embedding))``."""

    FINETUNE_MODES = FINETUNE_MODES
    finetune = "all"

    def set_finetune(self, mode: str) -> None:
        """What trains: ``"all"`` (everything), ``"last"`` (the head and :meth:`last_layers`) or ``"frozen"`` (the
        head only). Frozen layers stay in eval mode (batch norm keeps its statistics, no dropout)."""
        if mode not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {mode!r}")
        self.finetune = mode
        trainable = {"all": set(self.backbone.parameters()), "frozen": set(),
                     "last": {p for layer in self.last_layers() for p in layer.parameters()}}[mode]
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(parameter in trainable)
        self.train(self.training)

    def last_layers(self) -> list[nn.Module]:
        """The backbone's layers ``"last"`` fine-tunes."""
        raise NotImplementedError

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The backbone's parameters that train (the engine gives them a lower learning rate)."""
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> "BackboneClassifier":
        super().train(mode)
        if mode and self.finetune != "all":
            self.backbone.eval()
            if self.finetune == "last":
                for layer in self.last_layers():
                    layer.train()
        return self

    def head_module(self) -> nn.Module:
        """The part after :meth:`embed`, as one module sharing this model's layers (a frozen backbone's head)."""
        return nn.Sequential(self.norm, self.head)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, dim)`` from :meth:`embed` → logits ``(B, n_classes)``."""
        return self.head(self.norm(embedding))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 1, bins, frames)`` → embeddings ``(B, dim)``."""
        raise NotImplementedError

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(features))  # (B, n_classes)
