"""The label-free per-channel normalizer of the image backbones (timm, hf_vision).

Images arrive as raw intensities on a fixed scale; the normalizer (per-channel mean and std,
fitted on the unlabeled pool, no labels) is applied inside ``forward``. Its statistics are
buffers, so they travel in the ``state_dict`` and pickles with the model.

A backbone mixes it in, calls ``self.init_normalizer(channels)`` in ``__init__`` and keeps
``input_shape`` ``(C, H, W)`` and ``model_name`` (named in errors).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sslcore.errors import DataError

# Images used to estimate the channel statistics; more adds time, not precision.
_MAX_NORMALIZER_IMAGES = 4096
_NORMALIZER_CHUNK = 256


class ChannelNormalizer(nn.Module):
    """``fit_normalizer`` (once, on the unlabeled pool) and ``normalize`` for images."""

    input_shape: tuple[int, int, int]
    model_name: str

    def init_normalizer(self, channels: int) -> None:
        """Register the buffers: ``channel_mean`` 0, ``channel_std`` 1, ``normalizer_fitted``."""
        self.register_buffer("channel_mean", torch.zeros(channels))
        self.register_buffer("channel_std", torch.ones(channels))
        self.register_buffer("normalizer_fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit_normalizer(self, unlabeled: np.ndarray | torch.Tensor) -> None:
        """Per-channel mean and std of the unlabeled pool (label-free preprocessing).

        At most 4096 images (a seed-0 subsample) are read, accumulated in float64; a
        constant channel gets std 1.

        Raises:
            DataError: the pool is not ``(N, C, H, W)`` with this backbone's C, or holds
                non-finite values.
        """
        x = unlabeled if isinstance(unlabeled, torch.Tensor) else np.asarray(unlabeled)
        c = self.input_shape[0]
        if x.ndim != 4 or x.shape[1] != c or x.shape[0] == 0:
            raise DataError(f"fit_normalizer expects images of shape (n, {c}, H, W), got "
                            f"{tuple(x.shape)}")
        if x.shape[0] > _MAX_NORMALIZER_IMAGES:  # subsample before reading (memmaps stay lazy)
            rows = np.sort(np.random.default_rng(0).choice(x.shape[0], _MAX_NORMALIZER_IMAGES,
                                                           replace=False))
            x = x[torch.from_numpy(rows)] if isinstance(x, torch.Tensor) else x[rows]
        total = torch.zeros(c, dtype=torch.float64)
        total_sq = torch.zeros(c, dtype=torch.float64)
        for start in range(0, x.shape[0], _NORMALIZER_CHUNK):
            part = x[start:start + _NORMALIZER_CHUNK]
            chunk = (part.detach().cpu().to(torch.float64) if isinstance(part, torch.Tensor)
                     else torch.from_numpy(np.array(part, dtype=np.float64)))
            if not torch.isfinite(chunk).all():
                raise DataError("fit_normalizer: the unlabeled images contain NaN/inf pixels; "
                                "fix or drop those images")
            total += chunk.sum(dim=(0, 2, 3))
            total_sq += chunk.square().sum(dim=(0, 2, 3))
        count = x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / count
        std = (total_sq / count - mean.square()).clamp_min(0.0).sqrt()
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.channel_mean.copy_(mean.to(self.channel_mean))
        self.channel_std.copy_(std.to(self.channel_std))
        self.normalizer_fitted.fill_(True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images -> per-channel standardized images (what the model sees)."""
        if x.ndim != 4 or x.shape[1] != self.input_shape[0]:
            raise DataError(f"backbone {self.model_name!r} expects (N, {self.input_shape[0]}, "
                            f"H, W) images, got {tuple(x.shape)}")
        mean = self.channel_mean.view(1, -1, 1, 1)
        std = self.channel_std.view(1, -1, 1, 1)
        return (x.to(mean.dtype) - mean) / std
