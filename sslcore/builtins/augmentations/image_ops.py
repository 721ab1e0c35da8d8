"""Batched image augmentations on the training device: functional ops on ``N x C x H x W``.

Every op takes a float batch with any number of channels (1 for X-rays, 13 for Sentinel-2)
and a ``torch.Generator``; each sample gets its own random parameters, all drawn from the
generator in one call per op (no Python loop over samples), so a seeded generator reproduces
the views exactly. Random numbers are drawn on the generator's device and moved to the batch's.
None of the ops changes its input in place, and none is a colour/hue op: bands of a
multispectral image are not RGB.

The ops run with autocast disabled and in float32 (the result has the input's dtype): the
pretraining loop calls augmentations inside its bf16 autocast region, and geometric resampling
in bf16 would quantize intensities for no speed gain.

``random_resized_crop`` does crop, resize, rotation and translation with one ``affine_grid`` +
``grid_sample`` (the approach of Kornia's ``RandomResizedCrop``/``RandomAffine``, fused): one
resampling instead of several, so augmentation stays a small fraction of a training step.

Example::

    g = torch.Generator(device=x.device).manual_seed(0)
    v = random_resized_crop(x, g, size=64, scale=(0.3, 1.0), degrees=10.0)
    v = random_intensity(random_flip(v, g), g, brightness=0.3, contrast=0.3, gamma=0.2)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F

from sslcore.errors import DataError

__all__ = ["band_dropout", "gaussian_blur", "gaussian_noise", "random_flip",
           "random_intensity", "random_resized_crop", "random_rot90"]

_F = TypeVar("_F", bound=Callable[..., torch.Tensor])


def _float32_no_autocast(fn: _F) -> _F:
    """Run ``fn`` on a float32 copy of ``x`` with autocast off; return in ``x``'s dtype."""

    @functools.wraps(fn)
    def wrapper(x: torch.Tensor, generator: torch.Generator, *args, **kwargs) -> torch.Tensor:
        if x.ndim != 4:
            raise DataError(f"{fn.__name__} expects an image batch N x C x H x W, got shape "
                            f"{tuple(x.shape)}; image augmentations do not apply to this data")
        if not x.is_floating_point():
            raise DataError(f"{fn.__name__} expects float images, got {x.dtype}; convert the "
                            "pool to float32 on a fixed intensity scale (e.g. 0..1)")
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = fn(x.float(), generator, *args, **kwargs)
        return out.to(x.dtype)

    return wrapper  # type: ignore[return-value]


def _uniform(shape: tuple[int, ...], generator: torch.Generator,
             like: torch.Tensor) -> torch.Tensor:
    """Uniform ``[0, 1)`` float32 numbers from ``generator``, on ``like``'s device."""
    return torch.rand(shape, generator=generator, device=generator.device).to(like.device)


def _per_sample(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, 1, 1, 1)


@_float32_no_autocast
def random_resized_crop(x: torch.Tensor, generator: torch.Generator, size: int | tuple[int, int],
                        scale: tuple[float, float] = (0.2, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), degrees: float = 0.0,
                        translate: float = 0.0) -> torch.Tensor:
    """Crop a random region of each sample and resize it to ``size``, in one resampling.

    Per sample: the crop covers a fraction of the image area drawn uniformly from ``scale``
    with an aspect ratio (in pixels) drawn log-uniformly from ``ratio`` (clamped to the image),
    at a uniform position; it is then rotated by an angle uniform in ``[-degrees, degrees]``
    and shifted by up to ``translate`` times the image size along each axis. Bilinear
    sampling; pixels from outside the image repeat the border.

    Args:
        x: ``(N, C, H, W)`` float batch.
        generator: source of every random number.
        size: output side (square) or ``(height, width)``.

    Returns:
        ``(N, C, size, size)``. With ``scale=(1, 1)``, ``ratio=(1, 1)`` (square input),
        ``degrees=0``, ``translate=0`` and ``size=H`` it is the identity.
    """
    n, c, h, w = x.shape
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    u = _uniform((n, 7), generator, x)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])  # crop width / height in pixels
    # Crop width and height as fractions of the input's width and height.
    fw = torch.sqrt(area * aspect * (h / w)).clamp(max=1.0)
    fh = torch.sqrt(area / aspect * (w / h)).clamp(max=1.0)
    cx = (1.0 - fw) * (2.0 * u[:, 2] - 1.0) + 2.0 * translate * (2.0 * u[:, 5] - 1.0)
    cy = (1.0 - fh) * (2.0 * u[:, 3] - 1.0) + 2.0 * translate * (2.0 * u[:, 6] - 1.0)
    angle = math.radians(degrees) * (2.0 * u[:, 4] - 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output grid [-1, 1]^2 -> input grid: scale to the crop, rotate in pixel space (so a
    # non-square image is not sheared), translate to the crop centre.
    theta = torch.stack([
        torch.stack([cos * fw, -sin * fh * (h / w), cx], dim=1),
        torch.stack([sin * fw * (w / h), cos * fh, cy], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, [n, c, out_h, out_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@_float32_no_autocast
def random_flip(x: torch.Tensor, generator: torch.Generator, horizontal: bool = True,
                vertical: bool = False, p: float = 0.5) -> torch.Tensor:
    """Flip each sample left-right (and/or up-down), each axis independently with prob ``p``."""
    n = x.shape[0]
    u = _uniform((n, 2), generator, x)
    out = x
    if horizontal:
        out = torch.where(_per_sample(u[:, 0] < p), out.flip(-1), out)
    if vertical:
        out = torch.where(_per_sample(u[:, 1] < p), out.flip(-2), out)
    return out


@_float32_no_autocast
def random_rot90(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotate each sample by ``k * 90`` degrees, ``k`` uniform in {0, 1, 2, 3} per sample.

    Exact (no resampling); for overhead imagery, where every orientation is equally valid.
    Non-square images turn by 0 or 180 degrees only (a quarter turn would change their shape).
    """
    n, _, h, w = x.shape
    k = (_uniform((n,), generator, x) * 4).long().clamp_(max=3).view(-1, 1, 1, 1)
    if h != w:
        return torch.where(k % 2 == 1, x.flip(-2, -1), x)
    # Selecting among the four rotations avoids a device sync and a loop over samples.
    out = torch.where(k == 1, x.rot90(1, dims=(-2, -1)), x)
    out = torch.where(k == 2, x.flip(-2, -1), out)
    return torch.where(k == 3, x.rot90(3, dims=(-2, -1)), out)


@_float32_no_autocast
def random_intensity(x: torch.Tensor, generator: torch.Generator, brightness: float = 0.0,
                     contrast: float = 0.0, gamma: float = 0.0, per_channel: bool = False,
                     p: float = 0.8) -> torch.Tensor:
    """Gamma, contrast and brightness jitter, applied to each sample with probability ``p``.

    In this order, each with a factor drawn per sample (per sample and band with
    ``per_channel``, e.g. per-band gains for multispectral sensors):

    - gamma: ``g`` log-uniform in ``[1/(1+gamma), 1+gamma]``. Values are min-max scaled to
      [0, 1] over the sample (or band), raised to ``g`` and scaled back, so the op is defined
      for any value range (negative or above 1) and keeps each sample's min and max.
    - contrast: ``(x - mean) * f + mean``, ``f`` uniform in ``[1-contrast, 1+contrast]``, with
      the mean over the sample (or band).
    - brightness: multiplicative gain ``b`` uniform in ``[1-brightness, 1+brightness]``.
    """
    n, c = x.shape[:2]
    bands = c if per_channel else 1
    dims = (-2, -1) if per_channel else (1, 2, 3)
    u = _uniform((n, 3 * bands + 1), generator, x)
    out = x
    if gamma > 0:
        log_g = math.log1p(gamma) * (2.0 * u[:, :bands] - 1.0)
        lo, hi = out.amin(dim=dims, keepdim=True), out.amax(dim=dims, keepdim=True)
        span = (hi - lo).clamp_min(1e-6)
        unit = ((out - lo) / span).clamp_(0.0, 1.0)
        out = unit.pow(torch.exp(log_g).view(n, bands, 1, 1)) * span + lo
    if contrast > 0:
        f = 1.0 + contrast * (2.0 * u[:, bands:2 * bands] - 1.0)
        mean = out.mean(dim=dims, keepdim=True)
        out = (out - mean) * f.view(n, bands, 1, 1) + mean
    if brightness > 0:
        b = 1.0 + brightness * (2.0 * u[:, 2 * bands:3 * bands] - 1.0)
        out = out * b.view(n, bands, 1, 1)
    if out is x:
        return x
    return torch.where(_per_sample(u[:, -1] < p), out, x)


@_float32_no_autocast
def gaussian_noise(x: torch.Tensor, generator: torch.Generator, std: float = 0.02,
                   p: float = 0.5) -> torch.Tensor:
    """Add N(0, std^2) noise (in raw intensity units) to each sample with probability ``p``."""
    n = x.shape[0]
    apply = _per_sample(_uniform((n,), generator, x) < p)
    noise = torch.randn(tuple(x.shape), generator=generator, device=generator.device)
    return x + noise.to(x.device) * (std * apply)


@_float32_no_autocast
def gaussian_blur(x: torch.Tensor, generator: torch.Generator,
                  sigma: tuple[float, float] = (0.1, 2.0), p: float = 0.5) -> torch.Tensor:
    """Blur each sample with probability ``p``, with a per-sample sigma (pixels) in ``sigma``.

    A separable Gaussian (two depthwise convolutions over all samples at once) with radius
    ``ceil(3 * sigma_max)`` and reflect padding (the radius is capped below the image size).
    """
    n, c, h, w = x.shape
    radius = min(math.ceil(3.0 * sigma[1]), h - 1, w - 1)
    u = _uniform((n, 2), generator, x)
    if radius < 1:
        return x
    s = (sigma[0] + (sigma[1] - sigma[0]) * u[:, 0]).clamp_min(1e-3)
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-taps.square() / (2.0 * s.square().unsqueeze(1)))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)
    k = 2 * radius + 1
    # (1, N*C, H, W) with one group per (sample, band): every sample gets its own kernel.
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"),
                 kernel.view(n * c, 1, 1, k), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"),
                 kernel.view(n * c, 1, k, 1), groups=n * c)
    return torch.where(_per_sample(u[:, 1] < p), y.view(n, c, h, w), x)


@_float32_no_autocast
def band_dropout(x: torch.Tensor, generator: torch.Generator, p: float = 0.1) -> torch.Tensor:
    """Zero whole bands: each band of each sample independently with probability ``p``.

    Never all bands of a sample: when every band is drawn, the one with the highest draw is
    kept. A no-op for single-channel images. The zeros are in raw units (the sensor's "no
    signal"), before the backbone's normalizer.
    """
    n, c = x.shape[:2]
    if c == 1 or p <= 0:
        return x
    u = _uniform((n, c), generator, x)
    drop = u < p
    keep_one = F.one_hot(u.argmax(dim=1), c).bool() & drop.all(dim=1, keepdim=True)
    return x.masked_fill((drop & ~keep_one).view(n, c, 1, 1), 0.0)
