"""Masked time-series modeling: hide patches of the window, reconstruct them from the rest.

After PatchTST's self-supervised pretraining (Nie, Nguyen, Sinthong, Kalagnanam, "A Time
Series is Worth 64 Words: Long-term Forecasting with Transformers", ICLR 2023, section 3.2):
the standardized window is cut into non-overlapping patches of ``patch_len`` steps, a random
``mask_ratio`` of them is set to zero, the encoder reads the masked window, and the backbone's
linear read-out (``reconstruct``) predicts the hidden values (mean squared error on the masked
values only). With ``mask_unit="channel_patch"`` (the default) each sensor's patches are masked
independently, and with probability ``sensor_mask_prob`` a sensor is hidden for the whole
window, so the encoder learns to predict one sensor from the others (what vibration *should*
be at this speed and load): the normal cross-sensor relations a degrading machine breaks.
``"patch"`` hides all sensors of a patch together, as PatchTST does per channel.

Works with any :class:`~sslcore_sensor_maintenance.backbones.base.SequenceBackbone` whose token
length divides ``patch_len`` (the TCN: its stem stride; the patch transformer: its own patch
length). Series of any length: one that is not a multiple of ``patch_len`` has its start
replicate-padded to the next multiple (as the backbones do); padded steps are hidden with the
patch they fall in but never scored. The minimum is 2 patches, else a DataError names
``pretext.params.patch_len``; ``length_rule`` says what was chosen.

Example::

    task = MaskedPatches(MaskedPatchesParams(), backbone=tcn, augment=None, input_shape=(5, 64))
    loss = task.loss(batch, torch.Generator().manual_seed(0))
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from sslcore.sdk import Augmentation, ConfigError, PretextTask
from sslcore_sensor_maintenance.backbones.base import SequenceBackbone, pad_start, plan_length


class MaskedPatchesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patch_len: int = Field(8, ge=1, description="time steps per masked patch")
    mask_ratio: float = Field(0.4, gt=0, lt=1, description="share of patches hidden")
    mask_unit: Literal["channel_patch", "patch"] = Field(
        "channel_patch", description="mask each sensor's patches independently, or all "
        "sensors of a patch together")
    sensor_mask_prob: float = Field(0.2, ge=0, lt=1, description="chance that a sensor is "
                                    "hidden for the whole window (channel_patch only)")


def require_sequence_backbone(name: str, backbone: torch.nn.Module,
                              input_shape: tuple[int, ...],
                              multiple_of: int = 1) -> tuple[int, int]:
    """``(channels, length)`` after checking the backbone exposes tokens and ``multiple_of``
    (the patch length) is a multiple of its token length."""
    if not isinstance(backbone, SequenceBackbone):
        raise ConfigError(f"pretext {name!r} needs a sequence backbone with per-position tokens "
                          f"(tcn, patch_transformer), got {type(backbone).__name__}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 2:
        raise ConfigError(f"pretext {name!r} is for time series (channels, length), got {shape}")
    unit = backbone.token_len
    if multiple_of % unit:
        raise ConfigError(f"pretext {name!r}: patch length {multiple_of} must be a multiple of "
                          f"the backbone's token length {unit}; set pretext.params.patch_len "
                          f"to {unit * max(1, round(multiple_of / unit))}")
    return shape[0], shape[1]


class MaskedPatches(PretextTask):
    """Masked patch reconstruction around a sequence backbone (see the module docstring).

    Raises:
        ConfigError: the backbone has no tokens, or the patch length is not a multiple of
            its token length.
        DataError: the series are shorter than 2 patches.
    """

    @classmethod
    def describe_input(cls, params: MaskedPatchesParams, input_shape: tuple[int, ...]) -> str:
        """How series of this shape are cut into patches; DataError if too short."""
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 2:
            raise ConfigError(f"pretext 'masked_patches' is for time series (channels, "
                              f"length), got {shape}")
        return plan_length("masked_patches", shape[1], params.patch_len,
                           "pretext.params.patch_len", what="patches")[1]

    def __init__(self, params: MaskedPatchesParams, *, backbone: SequenceBackbone,
                 augment: Augmentation | None = None,
                 input_shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.params = params
        self.backbone = backbone
        self.augment = augment
        self.n_channels, self.length = require_sequence_backbone(
            "masked_patches", backbone, input_shape, params.patch_len)
        _, self.length_rule = plan_length("masked_patches", self.length, params.patch_len,
                                          "pretext.params.patch_len", backbone.token_len,
                                          what="patches")

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.augment(batch, generator) if self.augment is not None else batch
        p = self.params.patch_len
        z = pad_start(self.backbone.normalize(x), p)
        pad = z.shape[-1] - x.shape[-1]
        n, c, t = z.shape
        n_patches = t // p
        per_sensor = self.params.mask_unit == "channel_patch"
        dev = generator.device
        mask = torch.rand((n, c if per_sensor else 1, n_patches), generator=generator,
                          device=dev) < self.params.mask_ratio
        if per_sensor and self.params.sensor_mask_prob > 0:
            whole = torch.rand((n, c, 1), generator=generator,
                               device=dev) < self.params.sensor_mask_prob
            mask = mask | whole
        mask = mask.to(z.device).expand(n, c, n_patches).repeat_interleave(p, dim=2)
        recon = self.backbone.reconstruct(self.backbone.tokens(z.masked_fill(mask, 0.0)))
        err = (recon - z).square()
        maskf = mask.float()
        if pad:  # hidden with their patch (they copy its first step), never scored
            maskf[..., :pad] = 0.0
        return (err * maskf).sum() / maskf.sum().clamp(min=1.0)
