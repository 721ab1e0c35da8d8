"""SimCLR: contrast two augmented views of each image against every other image in the batch.

Both views go through the backbone and a projection MLP; the NT-Xent loss makes the two
projections of an image each other's nearest neighbour among all ``2N - 1`` other projections
(in cosine similarity, sharpened by a temperature). Under torchrun the negatives are global:
every rank contrasts its rows with the projections gathered from all ranks, with gradients,
so the loss matches the single-process loss of the whole global batch.

References:
    Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of Visual
    Representations." ICML 2020. https://arxiv.org/abs/2002.05709

Example::

    task = SimCLR(SimCLRParams(temperature=0.2), backbone=enc, augment=views,
                  input_shape=(1, 64, 64))
    loss = task.loss(batch, generator)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from sslcore.builtins.pretext.projection import MLPHead, require_augment, two_views
from sslcore.contracts import Augmentation, Backbone, PretextTask
from sslcore.distributed import gather_with_grad, rank

__all__ = ["SimCLR", "SimCLRParams", "nt_xent"]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over both views, with negatives from every rank; float32 even under autocast.

    Row ``i`` of ``z1`` and row ``i`` of ``z2`` are positives. Each of the ``2N`` local rows
    is an anchor whose candidates are all ``2 * world * N`` gathered rows except itself, so in
    one process this is SimCLR's loss over ``2N`` samples. The mean is over local anchors.

    Args:
        z1, z2: ``(N, D)`` projections of the two views of this rank's N images.
        temperature: softmax temperature on cosine similarities.
    """
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z1 = F.normalize(z1.float(), dim=1)
        z2 = F.normalize(z2.float(), dim=1)
        n = z1.shape[0]
        all1, all2 = gather_with_grad(z1), gather_with_grad(z2)
        m = all1.shape[0]  # world * N
        offset = rank() * n if m > n else 0  # this rank's rows in the gathered batch
        logits = torch.cat([z1, z2]) @ torch.cat([all1, all2]).T / temperature
        own = torch.arange(n, device=z1.device) + offset
        self_cols = torch.cat([own, own + m])
        positive_cols = torch.cat([own + m, own])
        rows = torch.arange(2 * n, device=z1.device)
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[rows, self_cols] = True
        return F.cross_entropy(logits.masked_fill(self_mask, float("-inf")), positive_cols)


class SimCLRParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.2, gt=0, description="NT-Xent temperature (0.1-0.5 in the "
                               "paper; 0.2 suits small batches)")
    proj_hidden_dim: int | None = Field(None, ge=1, description="projector width; None = the "
                                        "backbone's embed_dim, as in the paper")
    proj_dim: int = Field(128, ge=1, description="projection size the loss is computed on")
    proj_layers: int = Field(2, ge=1, le=4, description="Linear layers in the projector")


class SimCLR(PretextTask):
    """SimCLR pretext task.

    Args:
        params: a :class:`SimCLRParams`.
        backbone: the encoder being pretrained.
        augment: the configured view maker (required).
        input_shape: per-sample shape (unused; accepted for the factory contract).

    Raises:
        ConfigError: no augmentations are configured.
    """

    def __init__(self, params: SimCLRParams, *, backbone: Backbone,
                 augment: Augmentation | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.augment = require_augment(augment, "simclr")
        self.backbone = backbone
        hidden = params.proj_hidden_dim or backbone.embed_dim
        self.projector = MLPHead(backbone.embed_dim, hidden, params.proj_dim, params.proj_layers)
        self.temperature = float(params.temperature)

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        v1, v2 = two_views(self.augment, batch, generator)
        # One backbone call over both views: BatchNorm sees the 2N images together.
        z1, z2 = self.projector(self.backbone(torch.cat([v1, v2]))).chunk(2)
        return nt_xent(z1, z2, self.temperature)
