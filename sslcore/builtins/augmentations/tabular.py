"""Batched view makers for tables: marginal corruption (SCARF) and Gaussian noise.

Both are ``(x, generator) -> x'`` ops on a whole batch, on the batch's device, drawing every
random number from ``generator`` (so a seeded generator reproduces the views). They treat every
position of the per-sample shape as a feature, so they also run on ``N x C x T`` or
``N x C x H x W`` batches, although they were designed for rows x columns.

References:
    Bahri, Jiang, Tay, Metzler. "SCARF: Self-Supervised Contrastive Learning using Random
    Feature Corruption." ICLR 2022. https://arxiv.org/abs/2106.15147
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field


def uniform_like(shape: tuple[int, ...], generator: torch.Generator,
                 like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, moved to ``like``'s device."""
    out = torch.rand(shape, generator=generator, device=generator.device)
    return out.to(device=like.device)


def marginal_values(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For every position, the value of the same position in a random *other* row of the batch.

    This samples each feature from the batch's empirical marginal, as SCARF does. With a single
    row there is no other row and ``x`` is returned (as a copy).
    """
    n = x.shape[0]
    flat = x.reshape(n, -1)
    if n < 2:
        return flat.clone().reshape(x.shape)
    # offset in [1, n-1] guarantees a different row; uniform over the other rows.
    draws = uniform_like(tuple(flat.shape), generator, x)
    offset = 1 + (draws * (n - 1)).long().clamp_(max=n - 2)
    rows = (torch.arange(n, device=x.device).unsqueeze(1) + offset) % n
    return flat.gather(0, rows).reshape(x.shape)


def fixed_rate_mask(shape: tuple[int, ...], rate: float, generator: torch.Generator,
                    like: torch.Tensor) -> torch.Tensor:
    """Boolean mask with exactly ``round(rate * n_positions)`` True positions per row."""
    n = shape[0]
    n_pos = 1
    for d in shape[1:]:
        n_pos *= int(d)
    k = int(round(rate * n_pos))
    ranks = uniform_like((n, n_pos), generator, like).argsort(dim=1).argsort(dim=1)
    return (ranks < k).reshape(shape)


class MarginalCorruptionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p: float = Field(0.6, ge=0.0, le=1.0,
                     description="fraction of each row's features replaced (SCARF default 0.6)")


class MarginalCorruption:
    """SCARF's random feature corruption.

    For each row, a random subset of exactly ``round(p * n_features)`` features is replaced by
    the value of the same feature in a random other row of the batch.

    Args:
        params: a :class:`MarginalCorruptionParams`.
    """

    def __init__(self, params: MarginalCorruptionParams | None = None) -> None:
        self.p = float((params or MarginalCorruptionParams()).p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mask = fixed_rate_mask(tuple(x.shape), self.p, generator, x)
        return torch.where(mask, marginal_values(x, generator), x)

    def __repr__(self) -> str:
        return f"MarginalCorruption(p={self.p})"


class GaussianNoiseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    std: float = Field(0.1, ge=0.0, description="noise standard deviation")
    relative: bool = Field(True, description="scale the noise by each feature's batch std, so "
                           "raw heavy-tailed columns get proportionate noise")


class GaussianNoise:
    """Additive Gaussian noise, optionally relative to each feature's spread in the batch.

    Args:
        params: a :class:`GaussianNoiseParams`.
    """

    def __init__(self, params: GaussianNoiseParams | None = None) -> None:
        params = params or GaussianNoiseParams()
        self.std = float(params.std)
        self.relative = bool(params.relative)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(tuple(x.shape), generator=generator, device=generator.device)
        noise = noise.to(device=x.device, dtype=x.dtype) * self.std
        if self.relative:
            scale = x.std(dim=0, unbiased=False, keepdim=True) if x.shape[0] > 1 else 1.0
            noise = noise * scale
        return x + noise

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std}, relative={self.relative})"
