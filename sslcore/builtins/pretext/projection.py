"""MLP heads shared by the image SSL objectives (projectors and predictors).

SimCLR's projector (Chen et al., ICML 2020) and BYOL's projector and predictor (Grill et al.,
NeurIPS 2020) are the same shape: ``Linear -> BatchNorm -> ReLU`` blocks and a final
``Linear``; they are used only by the loss and discarded after pretraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslcore.contracts import Augmentation
from sslcore.errors import ConfigError

__all__ = ["MLPHead", "require_augment", "two_views"]


class BatchNorm1dAnyBatch(nn.BatchNorm1d):
    """BatchNorm that normalizes a lone training row with its running statistics.

    Under DDP with a tiny global batch a rank may hold one row, where batch statistics do not
    exist; the running estimates are the sensible stand-in.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)


class MLPHead(nn.Sequential):
    """``[Linear, BatchNorm1d, ReLU] x (num_layers - 1) -> Linear(out_dim)``.

    Args:
        in_dim: input features (the backbone's ``embed_dim``).
        hidden_dim: width of the hidden blocks.
        out_dim: output features.
        num_layers: number of Linear layers (>= 1).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2) -> None:
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(width, hidden_dim, bias=False), BatchNorm1dAnyBatch(hidden_dim),
                       nn.ReLU(inplace=True)]
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        super().__init__(*layers)


def require_augment(augment: Augmentation | None, method: str) -> Augmentation:
    """The configured view maker, or a ConfigError saying why image SSL needs one."""
    if augment is None:
        raise ConfigError(
            f"pretext {method!r} learns by matching two augmented views of each image, and no "
            "augmentations are configured; list some under `augmentations`, e.g. "
            "random_resized_crop, random_flip, intensity_jitter, gaussian_blur")
    return augment


def two_views(augment: Augmentation, batch: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented views of ``batch`` (each call draws fresh parameters)."""
    return augment(batch, generator), augment(batch, generator)
