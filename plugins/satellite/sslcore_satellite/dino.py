"""DINO: self-distillation with no labels, as an sslcore pretext task.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021. https://arxiv.org/abs/2104.14294

A student (backbone + :class:`~sslcore_satellite.dino_head.DINOHead`) sees every multi-crop
view (:mod:`~sslcore_satellite.multicrop`); a teacher with the same architecture sees the two
global views; the student learns to predict the teacher's centered, sharpened distribution over
prototypes (:mod:`~sslcore_satellite.dino_loss`). The teacher receives no gradient: after every
optimizer step it moves towards the student by an exponential moving average whose momentum
follows a cosine schedule from ``momentum`` to 1 over ``total_steps``
(``m_k = 1 - (1 - m_0) (cos(pi k / K) + 1) / 2``).

State that must survive a checkpoint (so a resumed run continues exactly): the teacher's
weights, the loss's center and the optimizer-step counter ``step`` (a buffer), which drives the
momentum and teacher-temperature schedules. The pretraining loop calls :meth:`DINO.on_step_end`
once per optimizer step: it applies the center update (synchronized over ranks), the EMA and
increments ``step``.

Example::

    task = DINO(DINOParams(total_steps=1000), backbone=vit, augment=None,
                input_shape=(13, 64, 64))
    loss = task.loss(batch, generator); loss.backward(); opt.step(); task.on_step_end()
"""

from __future__ import annotations

import copy

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from sslcore.sdk import (
    Augmentation,
    Backbone,
    ConfigError,
    cosine_momentum,
    PretextTask,
    vit_patch_size,
)
from sslcore_satellite.dino_head import DINOHead
from sslcore_satellite.dino_loss import DINOLoss
from sslcore_satellite.multicrop import BLUR_REFERENCE_SIDE, MultiCrop, MultiCropParams


class DINOParams(MultiCropParams):
    """DINO's params: the multi-crop views (inherited) plus head, temperatures and schedules."""

    model_config = ConfigDict(extra="forbid")

    out_dim: int = Field(4096, ge=2, description="prototypes K (DINO: 65536 on ImageNet)")
    hidden_dim: int = Field(512, ge=1)
    bottleneck_dim: int = Field(128, ge=1)
    head_layers: int = Field(3, ge=1)
    norm_last_layer: bool = Field(True, description="fix prototype norms to 1 (DINO, ViTs)")
    freeze_last_layer_steps: int = Field(0, ge=0, description="no gradient into the prototypes "
                                         "for this many steps (DINO: one epoch)")
    student_temp: float = Field(0.1, gt=0)
    teacher_temp: float = Field(0.04, gt=0, description="teacher temperature after warm-up")
    warmup_teacher_temp: float = Field(0.04, gt=0)
    warmup_teacher_temp_steps: int = Field(0, ge=0)
    center_momentum: float = Field(0.9, ge=0, lt=1)
    momentum: float = Field(0.996, ge=0, le=1, description="teacher EMA momentum at step 0")
    total_steps: int | None = Field(None, ge=1, description="optimizer steps of the cosine "
                                    "momentum schedule; None: the run's, which the pretraining "
                                    "loop passes to on_train_begin()")

    @model_validator(mode="after")
    def _warmup_fits(self) -> DINOParams:
        if self.total_steps is not None and self.warmup_teacher_temp_steps > self.total_steps:
            raise ValueError(f"warmup_teacher_temp_steps ({self.warmup_teacher_temp_steps}) "
                             f"exceeds total_steps ({self.total_steps})")
        return self


class DINO(PretextTask):
    """Student and EMA teacher on multi-crop views, with DINO's loss.

    Args:
        params: a :class:`DINOParams`.
        backbone: the encoder being pretrained (an image backbone; ViTs must accept both crop
            sizes, e.g. timm with ``dynamic_img_size``).
        augment: extra batched augmentation applied to every view after the built-in ones.
        input_shape: per-sample ``(C, H, W)``.

    Raises:
        ConfigError: ``input_shape`` is not an image shape, or crop sizes set in pixels do not
            split into the ViT's patches.
    """

    def __init__(self, params: DINOParams, *, backbone: Backbone,
                 augment: Augmentation | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        shape = tuple(int(d) for d in (input_shape or ()))
        if len(shape) != 3:
            raise ConfigError(f"pretext 'dino' is for images: input_shape must be (C, H, W), "
                              f"got {shape or input_shape}")
        self.params = params
        self.backbone = backbone
        self.head = DINOHead(int(backbone.embed_dim), params.out_dim, params.hidden_dim,
                             params.bottleneck_dim, params.head_layers, params.norm_last_layer)
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = copy.deepcopy(self.head)
        for p in [*self.teacher_backbone.parameters(), *self.teacher_head.parameters()]:
            p.requires_grad_(False)
        self.criterion = DINOLoss(params.out_dim, params.student_temp, params.teacher_temp,
                                  params.warmup_teacher_temp, params.warmup_teacher_temp_steps,
                                  params.center_momentum)
        patch = _patch_side(backbone)
        # Crops follow the tile and split into whole patches (see multicrop's docstring).
        self.views = MultiCrop(params, input_size=(shape[1], shape[2]), multiple=patch or 1)
        _check_crops_fit_patches(backbone, self.views.global_size, self.views.local_size)
        self.augment = augment
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.total_steps = params.total_steps
        self.train()

    @classmethod
    def describe_input(cls, params: DINOParams, input_shape: tuple[int, ...]) -> str:
        """The multi-crop rule on tiles of ``input_shape``, for the data card
        (``data.input.pretext``, recorded by ``sslcore.data_fit`` before any work)."""
        side = min(int(d) for d in input_shape[-2:])
        glob = f"{params.global_crop_size} px" if params.global_crop_size else "the tile's side"
        loc = (f"{params.local_crop_size} px" if params.local_crop_size else
               f"{params.local_crop_fraction:g} of the tile's side")
        lo, hi = (s * side / BLUR_REFERENCE_SIDE for s in params.blur_sigma)
        return (f"dino multi-crop on {side} px tiles: 2 global crops of {glob} and "
                f"{params.n_local_crops} local crops of {loc}, multiples of the ViT's patch; "
                f"blur sigma {lo:.2g}-{hi:.2g} px")

    def on_train_begin(self, total_steps: int) -> None:
        if self.params.total_steps is None:
            self.total_steps = total_steps

    def train(self, mode: bool = True) -> DINO:
        super().train(mode)
        self.teacher_backbone.eval()  # the teacher never trains (no dropout, fixed stats)
        self.teacher_head.eval()
        return self

    def make_views(self, batch: torch.Tensor,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        glob, loc = self.views(batch, generator)
        if self.augment is not None:
            glob = self.augment(glob, generator)
            loc = self.augment(loc, generator) if len(loc) else loc
        return glob, loc

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        step = int(self.step)
        glob, loc = self.make_views(batch, generator)
        with torch.no_grad():
            teacher = self.teacher_head(self.teacher_backbone(glob))
        freeze = step < self.params.freeze_last_layer_steps
        student = [self.head(self.backbone(glob), freeze_last_layer=freeze)]
        if len(loc):  # another size: a second forward pass (ViTs interpolate positions)
            student.append(self.head(self.backbone(loc), freeze_last_layer=freeze))
        n_crops = 2 + len(loc) // batch.shape[0]
        return self.criterion(torch.cat(student), teacher, n_crops=n_crops, step=step)

    @torch.no_grad()
    def on_step_end(self) -> None:
        """Center update (over ranks), teacher EMA at this step's momentum, step + 1."""
        self.criterion.update_center()
        m = cosine_momentum(int(self.step), self.params.momentum, self.total_steps)
        for student, teacher in ((self.backbone, self.teacher_backbone),
                                 (self.head, self.teacher_head)):
            s = [p.detach() for p in student.parameters()]
            t = [p for p in teacher.parameters()]
            torch._foreach_mul_(t, m)
            torch._foreach_add_(t, s, alpha=1.0 - m)
        self.step += 1


def _patch_side(backbone: Backbone) -> int | None:
    """The patch side of the ViT inside a TimmBackbone; None for other encoders."""
    model = getattr(backbone, "model", None)
    patch = vit_patch_size(model) if isinstance(model, nn.Module) else None
    return None if patch is None else patch[0]  # square patches and crops


def _check_crops_fit_patches(backbone: Backbone, global_size: int, local_size: int) -> None:
    """A ViT cuts each crop into patches: a crop side that is not a multiple of the patch side
    would fail at the first step with a bare shape assertion; say what to change instead.
    A ViT that pads its inputs to a multiple of the patch (``patch_size: auto`` on an image
    it does not divide) takes any side."""
    side = _patch_side(backbone)
    embed = getattr(getattr(backbone, "model", None), "patch_embed", None)
    if side is None or getattr(embed, "dynamic_img_pad", False):
        return
    for name, size in (("global_crop_size", global_size), ("local_crop_size", local_size)):
        if size % side:
            raise ConfigError(f"pretext.params.{name}: {size} px crops do not split into the "
                              f"backbone's {side} px patches; set it to a multiple of {side} "
                              "(or leave it unset: crops follow the tile and the patch)")
