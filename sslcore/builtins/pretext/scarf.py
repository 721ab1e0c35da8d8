"""SCARF: contrastive learning between a row and a randomly corrupted copy of it.

Each row's anchor view and its corrupted view (a fraction of the features replaced by values
drawn from the features' marginals) go through the backbone and a projection head; the
NT-Xent / InfoNCE loss pulls the two views of a row together and pushes the other rows of the
batch away.

References:
    Bahri, Jiang, Tay, Metzler. "SCARF: Self-Supervised Contrastive Learning using Random
    Feature Corruption." ICLR 2022. https://arxiv.org/abs/2106.15147
    Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of Visual
    Representations" (SimCLR, NT-Xent). ICML 2020.

Example::

    task = Scarf(ScarfParams(corruption_rate=0.6), backbone=enc, augment=None,
                 input_shape=(40,))
    loss = task.loss(batch, generator)
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.builtins.augmentations.tabular import MarginalCorruption, MarginalCorruptionParams
from sslcore.builtins.pretext.simclr import nt_xent
from sslcore.contracts import Augmentation, Backbone, PretextTask


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric NT-Xent: row i of ``z1`` and ``z2`` are positives, all other rows negatives.

    The same loss as SimCLR's, so under torchrun the negatives come from every rank.

    Args:
        z1, z2: ``(N, D)`` projections of two views of the same N samples.
        temperature: softmax temperature on cosine similarities.
    """
    return nt_xent(z1, z2, temperature)


class ProjectionHead(nn.Sequential):
    """Two-layer MLP projection head used only by the contrastive loss (discarded after)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim))


class ScarfParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, gt=0, description="NT-Xent temperature (SCARF uses 1.0)")
    corruption_rate: float = Field(0.6, ge=0.0, le=1.0,
                                   description="fraction of features corrupted when no "
                                   "augmentation is configured")
    proj_dim: int = Field(128, ge=1, description="projection head output size")
    symmetric: bool = Field(False, description="corrupt both views (SimCLR-style) instead of "
                            "contrasting the clean row with one corrupted view (SCARF)")


class Scarf(PretextTask):
    """SCARF pretext task.

    Args:
        params: a :class:`ScarfParams`.
        backbone: the encoder being pretrained.
        augment: the configured view maker; when None, :class:`MarginalCorruption` with
            ``corruption_rate`` is used.
        input_shape: per-sample shape (unused; accepted for the factory contract).
    """

    def __init__(self, params: ScarfParams, *, backbone: Backbone,
                 augment: Augmentation | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = ProjectionHead(backbone.embed_dim, params.proj_dim)
        self.temperature = float(params.temperature)
        self.symmetric = bool(params.symmetric)
        self.augment = augment or MarginalCorruption(
            MarginalCorruptionParams(p=params.corruption_rate))

    def views(self, batch: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        anchor = self.augment(batch, generator) if self.symmetric else batch
        return anchor, self.augment(batch, generator)

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        v1, v2 = self.views(batch, generator)
        z = self.projector(self.backbone(torch.cat([v1, v2])))
        z1, z2 = z.chunk(2)
        return info_nce(z1, z2, self.temperature)
