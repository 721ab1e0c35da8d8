"""SCARF contrast plus VIME reconstruction on the same corrupted view, in one forward pass.

The corrupted view of each row serves both objectives: its projection is contrasted with the
clean row's (NT-Xent, as in SCARF) and its embedding must also reveal which features were
corrupted and what they were (as in VIME). The reconstruction term keeps per-feature
information in the embedding that pure contrast can discard, which matters for anomaly scores
built on the embedding. Costs one extra pair of linear decoders over SCARF.

References:
    Bahri et al. "SCARF: Self-Supervised Contrastive Learning using Random Feature
    Corruption." ICLR 2022.
    Yoon et al. "VIME: Extending the Success of Self- and Semi-supervised Learning to Tabular
    Domain." NeurIPS 2020.

Example::

    task = ContrastiveReconstruction(ContrastiveReconstructionParams(), backbone=enc,
                                     augment=None, input_shape=(40,))
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field

from sslcore.builtins.pretext.masked_features import (
    FeatureHeads,
    corrupt_with_mask,
    reconstruction_target,
)
from sslcore.builtins.pretext.scarf import ProjectionHead, info_nce
from sslcore.contracts import Augmentation, Backbone, PretextTask
from sslcore.errors import ConfigError


class ContrastiveReconstructionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, gt=0, description="NT-Xent temperature")
    corruption_rate: float = Field(0.4, gt=0.0, lt=1.0,
                                   description="probability a feature is corrupted")
    proj_dim: int = Field(128, ge=1, description="projection head output size")
    recon_weight: float = Field(1.0, ge=0.0, description="weight of the VIME term")
    alpha: float = Field(2.0, ge=0.0, description="feature vs mask weight inside the VIME term")


class ContrastiveReconstruction(PretextTask):
    """Contrastive (SCARF) + masked-feature reconstruction (VIME) objective.

    Args:
        params: a :class:`ContrastiveReconstructionParams`.
        backbone: the encoder being pretrained.
        augment: when given, applied on top of the corruption to both views (the mask labels
            remain those of the marginal corruption).
        input_shape: per-sample shape, sizes the decoders.

    Raises:
        ConfigError: ``input_shape`` is missing.
    """

    def __init__(self, params: ContrastiveReconstructionParams, *, backbone: Backbone,
                 augment: Augmentation | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not input_shape:
            raise ConfigError("pretext 'contrastive_reconstruction' needs input_shape")
        self.backbone = backbone
        self.projector = ProjectionHead(backbone.embed_dim, params.proj_dim)
        self.heads = FeatureHeads(backbone.embed_dim, math.prod(input_shape))
        self.augment = augment
        self.temperature = float(params.temperature)
        self.corruption_rate = float(params.corruption_rate)
        self.recon_weight = float(params.recon_weight)
        self.alpha = float(params.alpha)

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        corrupted, changed = corrupt_with_mask(batch, self.corruption_rate, generator)
        anchor = batch
        if self.augment is not None:
            anchor, corrupted = self.augment(batch, generator), self.augment(corrupted, generator)
        h_anchor, h_corrupted = self.backbone(torch.cat([anchor, corrupted])).chunk(2)
        contrast = info_nce(self.projector(h_anchor), self.projector(h_corrupted),
                            self.temperature)
        target = reconstruction_target(self.backbone, batch)
        recon = self.heads.loss(h_corrupted, changed, target, self.alpha)
        return contrast + self.recon_weight * recon
