"""BYOL: predict a slowly moving target network's projection of another view, no negatives.

The online network (backbone -> projector -> predictor) is trained to predict, for each image,
the target network's projection of a second augmented view; the target (a copy of backbone and
projector) is not trained by gradients but follows the online weights as an exponential moving
average (EMA), with a momentum that rises from ``base_momentum`` to 1 along a cosine over
``total_steps`` optimizer steps. The loss is symmetric (each view predicts the other).

The target's parameters have ``requires_grad=False``, so DDP neither waits for their gradients
nor syncs them; every rank applies the same EMA update to identical online weights. The EMA
step counter is a buffer: a checkpoint resumes the momentum schedule exactly.

References:
    Grill, Strub, Altché, Tallec, Richemond, Buchatskaya, Doersch, Pires, Guo, Azar, Piot,
    Kavukcuoglu, Munos, Valko. "Bootstrap Your Own Latent: A New Approach to Self-Supervised
    Learning." NeurIPS 2020. https://arxiv.org/abs/2006.07733

Example::

    task = BYOL(BYOLParams(total_steps=5000), backbone=enc, augment=views,
                input_shape=(1, 64, 64))
    loss = task.loss(batch, generator); loss.backward(); opt.step(); task.on_step_end()
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from sslcore.builtins.pretext.projection import MLPHead, require_augment, two_views
from sslcore.contracts import Augmentation, Backbone, PretextTask

__all__ = ["BYOL", "BYOLParams", "byol_loss", "cosine_momentum", "ema_update_"]


def cosine_momentum(step: int, base: float, total_steps: int | None) -> float:
    """BYOL's schedule: ``1 - (1 - base) * (cos(pi * step / total) + 1) / 2``.

    ``base`` at step 0, 1 from ``total_steps`` on; constant ``base`` when ``total_steps`` is None.
    """
    if total_steps is None:
        return base
    progress = min(step, total_steps) / total_steps
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


@torch.no_grad()
def ema_update_(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * online`` for parameters; buffers (BatchNorm
    statistics, normalizer) are copied from the online module."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o.detach(), 1.0 - momentum)
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        t.copy_(o)


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of ``2 - 2 cos(prediction, target)`` over rows (0 when aligned, at most 4);
    in float32 even under autocast."""
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        p = F.normalize(prediction.float(), dim=1)
        t = F.normalize(target.float(), dim=1)
        return (2.0 - 2.0 * (p * t).sum(dim=1)).mean()


class BYOLParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    proj_hidden_dim: int = Field(1024, ge=1, description="projector width (4096 in the paper)")
    proj_dim: int = Field(256, ge=1, description="projection size")
    pred_hidden_dim: int = Field(1024, ge=1, description="predictor width (4096 in the paper)")
    base_momentum: float = Field(0.99, ge=0.0, le=1.0, description="EMA momentum at step 0 "
                                 "(0.996 in the paper for long runs)")
    total_steps: int | None = Field(None, ge=1, description="optimizer steps over which the "
                                    "momentum rises to 1; None: the run's length, which the "
                                    "pretraining loop passes to on_train_begin()")


class BYOL(PretextTask):
    """BYOL pretext task.

    Args:
        params: a :class:`BYOLParams`.
        backbone: the encoder being pretrained (the online encoder; used downstream).
        augment: the configured view maker (required).
        input_shape: per-sample shape (unused; accepted for the factory contract).

    Raises:
        ConfigError: no augmentations are configured.
    """

    def __init__(self, params: BYOLParams, *, backbone: Backbone,
                 augment: Augmentation | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.augment = require_augment(augment, "byol")
        self.backbone = backbone
        self.projector = MLPHead(backbone.embed_dim, params.proj_hidden_dim, params.proj_dim)
        self.predictor = MLPHead(params.proj_dim, params.pred_hidden_dim, params.proj_dim)
        self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.base_momentum = float(params.base_momentum)
        self.total_steps = self.params_total_steps = params.total_steps
        self.register_buffer("ema_step", torch.zeros((), dtype=torch.long))

    def on_train_begin(self, total_steps: int) -> None:
        if self.params_total_steps is None:
            self.total_steps = total_steps

    @property
    def momentum(self) -> float:
        """The EMA momentum the next :meth:`on_step_end` applies."""
        return cosine_momentum(int(self.ema_step), self.base_momentum, self.total_steps)

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        v1, v2 = two_views(self.augment, batch, generator)
        views = torch.cat([v1, v2])
        p1, p2 = self.predictor(self.projector(self.backbone(views))).chunk(2)
        with torch.no_grad():
            t1, t2 = self.target_projector(self.target_backbone(views)).chunk(2)
        return 0.5 * (byol_loss(p1, t2) + byol_loss(p2, t1))

    @torch.no_grad()
    def on_step_end(self) -> None:
        """Move the target towards the online weights, then advance the schedule."""
        tau = self.momentum
        ema_update_(self.target_backbone, self.backbone, tau)
        ema_update_(self.target_projector, self.projector, tau)
        self.ema_step += 1
