"""VIME-style masked feature modelling: find which features were corrupted, and restore them.

A random mask of each row's features is replaced by values from the features' marginals (the
same feature in other rows of the batch). From the backbone's embedding of the corrupted row,
one linear head predicts the mask (binary cross-entropy) and another the original values
(mean squared error). The reconstruction target is the row in the backbone's own normalized
space (``backbone.normalize`` when it has one, e.g. the MLP's clipped z-scores), so
heavy-tailed raw columns do not dominate the loss.

The mask label of a position is 1 only where the value actually changed (as in the reference
implementation): replacing a value by an equal one cannot be detected.

References:
    Yoon, Zhang, Jordon, van der Schaar. "VIME: Extending the Success of Self- and
    Semi-supervised Learning to Tabular Domain." NeurIPS 2020.

Example::

    task = MaskedFeatures(MaskedFeaturesParams(mask_rate=0.3), backbone=enc, augment=None,
                          input_shape=(40,))
    loss = task.loss(batch, generator)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.builtins.augmentations.tabular import marginal_values, uniform_like
from sslcore.contracts import Augmentation, Backbone, PretextTask
from sslcore.errors import ConfigError


def corrupt_with_mask(x: torch.Tensor, mask_rate: float,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each position with probability ``mask_rate`` by a marginal value.

    Returns:
        ``(corrupted, changed)`` where ``changed`` is a float mask of positions whose value
        differs from the original.
    """
    mask = uniform_like(tuple(x.shape), generator, x) < mask_rate
    corrupted = torch.where(mask, marginal_values(x, generator), x)
    return corrupted, (corrupted != x).to(x.dtype)


def reconstruction_target(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The row in the backbone's normalized space (flattened), or the raw row if it has none."""
    normalize = getattr(backbone, "normalize", None)
    target = normalize(x.flatten(1)) if callable(normalize) else x.flatten(1)
    return target.float()


class FeatureHeads(nn.Module):
    """Mask estimator and feature estimator on top of an embedding (VIME's two decoders)."""

    def __init__(self, embed_dim: int, n_positions: int) -> None:
        super().__init__()
        self.mask_head = nn.Linear(embed_dim, n_positions)
        self.feature_head = nn.Linear(embed_dim, n_positions)

    def loss(self, h: torch.Tensor, changed: torch.Tensor, target: torch.Tensor,
             alpha: float) -> torch.Tensor:
        """``BCE(mask) + alpha * MSE(features)`` for embeddings ``h`` of corrupted rows."""
        mask_loss = F.binary_cross_entropy_with_logits(self.mask_head(h).float(),
                                                       changed.flatten(1).float())
        feature_loss = F.mse_loss(self.feature_head(h).float(), target)
        return mask_loss + alpha * feature_loss


class MaskedFeaturesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mask_rate: float = Field(0.3, gt=0.0, lt=1.0, description="probability a feature is masked")
    alpha: float = Field(2.0, ge=0.0, description="weight of feature reconstruction vs mask "
                         "estimation (VIME's alpha)")


class MaskedFeatures(PretextTask):
    """VIME self-supervised objective.

    Args:
        params: a :class:`MaskedFeaturesParams`.
        backbone: the encoder being pretrained.
        augment: not used; VIME defines its own corruption (the mask must be known).
        input_shape: per-sample shape, sizes the two decoders.

    Raises:
        ConfigError: ``input_shape`` is missing.
    """

    def __init__(self, params: MaskedFeaturesParams, *, backbone: Backbone,
                 augment: Augmentation | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not input_shape:
            raise ConfigError("pretext 'masked_features' needs input_shape to size its decoders")
        self.backbone = backbone
        self.heads = FeatureHeads(backbone.embed_dim, math.prod(input_shape))
        self.mask_rate = float(params.mask_rate)
        self.alpha = float(params.alpha)

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        corrupted, changed = corrupt_with_mask(batch, self.mask_rate, generator)
        target = reconstruction_target(self.backbone, batch)
        return self.heads.loss(self.backbone(corrupted), changed, target, self.alpha)
