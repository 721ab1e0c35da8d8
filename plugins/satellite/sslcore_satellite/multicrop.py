"""DINO's multi-crop views as batched tensor ops on the training device, safe for any band count.

Caron et al., DINO (ICCV 2021), and SwAV (Caron et al., NeurIPS 2020) for multi-crop: two
large "global" crops (the teacher sees only these) and several small "local" crops (the student
sees all), so the student learns to match local detail to global context.

DINO's image pipeline is colour jitter, greyscale, blur and solarization on RGB photographs.
Bands of a multispectral tile are not RGB, so the photometric part is replaced by what varies
between acquisitions of the same ground: illumination and haze (brightness and contrast of the
whole tile), per-band gain differences (calibration, atmosphere), the sensor's resolution
(blur) and missing or saturated bands (band dropout). Geometry uses what is valid for overhead
imagery: resized crops, flips and 90-degree rotations.

A view costs three passes over the crop, whatever the number of bands: one resampling
(``affine_grid`` + ``grid_sample``: crop, resize, flip and rotation are one affine map, so they
are fused; a flip or a 90-degree rotation of the sampling grid is exact), one reduction (the
per-sample mean for contrast) and one multiply-add (brightness, contrast, band gain and band
dropout fold into a per-(sample, band) scale and offset); blur (sslcore's
``gaussian_blur``) runs only on the samples drawn for it. Every random number comes from the
generator, drawn for the whole batch at once.

Sizes follow the tile, never absolute pixels tuned at 64 px: the global crops are the tile's
side, the local ones ``local_crop_fraction`` of it (half; DINO's 96 of 224 px is 0.43), both
rounded to a multiple of the ViT's patch (``multiple``) and at least two patches wide; the blur
sigma is quoted for a 64 px tile and scales with the tile's side. A 64 px tile with 16 px
patches gets 64 and 32 px crops, a 32 px tile with 8 px patches 32 and 16, a 25 px tile with
4 px patches 24 and 12, an 8 px tile with 2 px patches 8 and 4.

Example::

    views = MultiCrop(MultiCropParams(n_local_crops=6), input_size=64, multiple=16)
    globals_, locals_ = views(batch, generator)   # (2B, C, 64, 64), (6B, C, 32, 32)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sslcore.sdk import gaussian_blur

# The tile side blur_sigma is quoted for (the size the recipe was tuned at).
BLUR_REFERENCE_SIDE = 64
# Rotation by k * 90 degrees: (cos, sin) for k = 0, 1, 2, 3.
_COS_SIN = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


def _rand(n: int, k: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand((n, k), generator=generator, device=generator.device).to(like.device)


def crop_flip_rotate(x: torch.Tensor, generator: torch.Generator, size: int,
                     scale: tuple[float, float],
                     ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Random resized crop, flip and 90-degree rotation in one resampling, to square views.

    Per sample: area fraction uniform in ``scale``, aspect ratio (in pixels) log-uniform in
    ``ratio``, uniform position, one of the 8 flips/rotations of the square. Bilinear, border
    padding. A non-square tile turns by 0 or 180 degrees only (a quarter turn of a full crop
    would leave the tile), and is sampled in pixel space, so never sheared.
    """
    n, c, h, w = x.shape
    u = _rand(n, 6, generator, x)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    aspect = torch.exp(math.log(ratio[0]) + math.log(ratio[1] / ratio[0]) * u[:, 1])
    # Crop width and height as fractions of the tile's width and height.
    fw = torch.sqrt(area * aspect * (h / w)).clamp(max=1.0)
    fh = torch.sqrt(area / aspect * (w / h)).clamp(max=1.0)
    cx, cy = (1.0 - fw) * (2.0 * u[:, 2] - 1.0), (1.0 - fh) * (2.0 * u[:, 3] - 1.0)
    k = (u[:, 4] * 4).long().clamp(max=3)
    if h != w:
        k = (k % 2) * 2
    cos, sin = _COS_SIN.to(x.device)[k].unbind(1)
    sx = torch.where(u[:, 5] < 0.5, -1.0, 1.0)  # mirror before rotating: all 8 symmetries
    # Output grid -> input grid: crop scale diag(fw, fh) times rotation times mirror.
    theta = torch.stack([torch.stack([fw * cos * sx, -fh * sin * (h / w), cx], 1),
                         torch.stack([fw * sin * sx * (w / h), fh * cos, cy], 1)], 1)
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def photometric(x: torch.Tensor, generator: torch.Generator, *, brightness: float,
                contrast: float, band_gain: float, band_dropout_p: float,
                p: float = 0.8) -> torch.Tensor:
    """Contrast about the sample mean and brightness (with probability ``p``), per-band gain
    and band dropout (never every band), as one multiply-add per pixel."""
    n, c = x.shape[:2]
    u = _rand(n, 3 + 2 * c, generator, x)
    on = (u[:, 0] < p).float()
    f = 1.0 + on * contrast * (2.0 * u[:, 1] - 1.0)
    b = 1.0 + on * brightness * (2.0 * u[:, 2] - 1.0)
    gain = 1.0 + band_gain * (2.0 * u[:, 3:3 + c] - 1.0)
    drop_u = u[:, 3 + c:]
    drop = drop_u < band_dropout_p
    drop &= ~(F.one_hot(drop_u.argmax(dim=1), c).bool() & drop.all(dim=1, keepdim=True))
    scale = (f * b)[:, None] * gain * (~drop)
    mean = x.mean(dim=(1, 2, 3))
    offset = (mean * (1.0 - f) * b)[:, None] * gain * (~drop)
    return torch.addcmul(offset[..., None, None], x, scale[..., None, None])


def blur_some(x: torch.Tensor, generator: torch.Generator, sigma: tuple[float, float],
              p: float) -> torch.Tensor:
    """Gaussian blur on the samples drawn with probability ``p`` only (the others untouched)."""
    if p <= 0:
        return x
    chosen = (_rand(x.shape[0], 1, generator, x)[:, 0] < p).nonzero().flatten()
    if len(chosen) == 0:
        return x
    out = x.clone()
    out[chosen] = gaussian_blur(x[chosen], generator, sigma=sigma, p=1.0)
    return out


class MultiCropParams(BaseModel):
    """Views of DINO; sizes relative to the tile (or in pixels when set), scales as fractions
    of the tile's area."""

    model_config = ConfigDict(extra="forbid")

    n_local_crops: int = Field(6, ge=0, description="small crops per image (student only)")
    global_crop_size: int | None = Field(None, ge=2, description="pixels; None: the tile's "
                                         "side (rounded down to a multiple of the patch)")
    local_crop_size: int | None = Field(None, ge=2, description="pixels; None: "
                                        "local_crop_fraction of the tile's side")
    local_crop_fraction: float = Field(0.5, gt=0, le=1, description="side of a local crop "
                                       "as a fraction of the tile's, rounded to a multiple of "
                                       "the patch, at least two patches (DINO: 96/224 = 0.43)")
    global_crop_scale: tuple[float, float] = (0.4, 1.0)
    local_crop_scale: tuple[float, float] = (0.05, 0.4)
    brightness: float = Field(0.3, ge=0, lt=1, description="whole-tile gain range (+-)")
    contrast: float = Field(0.3, ge=0, lt=1)
    band_gain: float = Field(0.1, ge=0, lt=1, description="per-band gain range (+-)")
    blur_sigma: tuple[float, float] = Field(
        (0.1, 1.5), description="blur sigma range in pixels of a 64 px tile; scaled with the "
        "tile's side (0.05-0.75 px at 32 px)")
    blur_p_global: float = Field(0.5, ge=0, le=1)
    blur_p_local: float = Field(0.3, ge=0, le=1)
    band_dropout_p: float = Field(0.05, ge=0, lt=1, description="chance to zero each band")

    @field_validator("global_crop_scale", "local_crop_scale", "blur_sigma")
    @classmethod
    def _increasing(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"must be an increasing pair of positive numbers, got {v}")
        return v


class MultiCrop:
    """``(x, generator) -> (global crops (2B, C, G, G), local crops (n_local*B, C, L, L))``,
    crop-major: rows ``[i*B:(i+1)*B]`` are crop ``i`` of every image.

    Args:
        params: a :class:`MultiCropParams`.
        input_size: side of the tiles, or their ``(height, width)``; sizes follow the shorter.
        multiple: crop sides are multiples of this (the ViT's patch side; 1 for a CNN).
    """

    def __init__(self, params: MultiCropParams, input_size: int | tuple[int, int],
                 multiple: int = 1) -> None:
        self.params = params
        side = min(input_size) if isinstance(input_size, tuple) else int(input_size)
        self.global_size = params.global_crop_size or max(2 * multiple,
                                                          side // multiple * multiple)
        self.local_size = params.local_crop_size or max(
            2 * multiple, round(side * params.local_crop_fraction / multiple) * multiple)
        ratio = side / BLUR_REFERENCE_SIDE
        self.blur_sigma = (params.blur_sigma[0] * ratio, params.blur_sigma[1] * ratio)

    def _view(self, x: torch.Tensor, g: torch.Generator, size: int,
              scale: tuple[float, float], blur_p: float) -> torch.Tensor:
        p = self.params
        with torch.autocast(device_type=x.device.type, enabled=False):  # float32 views
            v = crop_flip_rotate(x.float(), g, size, scale)
            v = photometric(v, g, brightness=p.brightness, contrast=p.contrast,
                            band_gain=p.band_gain, band_dropout_p=p.band_dropout_p)
            return blur_some(v, g, self.blur_sigma, blur_p).to(x.dtype)

    def __call__(self, x: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        glob = self._view(x.repeat(2, 1, 1, 1), generator, self.global_size,
                          p.global_crop_scale, p.blur_p_global)
        if p.n_local_crops == 0:
            return glob, x.new_empty((0, x.shape[1], self.local_size, self.local_size))
        loc = self._view(x.repeat(p.n_local_crops, 1, 1, 1), generator, self.local_size,
                         p.local_crop_scale, p.blur_p_local)
        return glob, loc
