"""Label-preserving views of sensor windows (N, C, T) for supervised training: jitter, scaling.

The two "weak" time-series augmentations of TS-TCC (Eldele et al., "Time-Series Representation
Learning via Temporal and Contextual Contrasting", IJCAI 2021), made scale-free so they suit
windows in any unit (raw C-MAPSS readings, or windows relative to the machine's own baseline):

- ``sensor_jitter``: adds Gaussian noise of ``sigma`` x each window's own per-sensor standard
  deviation: sensor noise the labeled failures happened not to show.
- ``sensor_scaling``: multiplies each sensor's deviations from its window mean by a per-window,
  per-sensor gain ~ N(1, sigma): a calibration or machine-to-machine difference in how strongly
  a sensor responds. The window's level is kept, since a level shift (a temperature that stays
  up, a pressure that stays down) is what degradation looks like.

Both are ``(x, generator) -> x'`` ops on a whole batch, on the batch's device, drawing every
random number from ``generator`` (a seeded generator reproduces the views), like the core's.

Example::

    augment = SensorJitter(SensorJitterParams(sigma=0.1))
    views = augment(windows, torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field


def _normal(shape: tuple[int, ...], generator: torch.Generator,
            like: torch.Tensor) -> torch.Tensor:
    out = torch.randn(shape, generator=generator, device=generator.device)
    return out.to(device=like.device, dtype=like.dtype)


class SensorJitterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sigma: float = Field(0.1, ge=0.0, le=2.0, description="noise std, in units of each "
                         "window's own per-sensor std")


class SensorJitter:
    """Additive Gaussian noise scaled by each window's per-sensor standard deviation."""

    def __init__(self, params: SensorJitterParams | None = None) -> None:
        self.sigma = float((params or SensorJitterParams()).sigma)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        std = x.std(dim=-1, keepdim=True, unbiased=False)
        return x + self.sigma * std * _normal(tuple(x.shape), generator, x)

    def __repr__(self) -> str:
        return f"SensorJitter(sigma={self.sigma})"


class SensorScalingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sigma: float = Field(0.1, ge=0.0, le=1.0, description="std of the per-window, per-sensor "
                         "gain around 1")


class SensorScaling:
    """Each sensor's deviations from its window mean times a gain ~ N(1, sigma), kept >= 0."""

    def __init__(self, params: SensorScalingParams | None = None) -> None:
        self.sigma = float((params or SensorScalingParams()).sigma)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        gain = (1.0 + self.sigma * _normal(tuple(x.shape[:-1]) + (1,), generator, x)).clamp_min(0)
        mean = x.mean(dim=-1, keepdim=True)
        return mean + gain * (x - mean)

    def __repr__(self) -> str:
        return f"SensorScaling(sigma={self.sigma})"
