"""Image augmentations: the functional ops (re-exported) and their registered, configurable forms.

The functional API (:mod:`sslcore.builtins.augmentations.image_ops`) is what multi-crop view
makers call directly; the classes below wrap each op with a pydantic params model so a config
can list them::

    augmentations:
      - {name: random_resized_crop, params: {scale: [0.3, 1.0], degrees: 10}}
      - {name: random_flip}
      - {name: intensity_jitter, params: {brightness: 0.3, contrast: 0.3, gamma: 0.2}}
      - {name: gaussian_blur, params: {p: 0.3}}

Each registered augmentation is ``(x, generator) -> x'`` on an ``N x C x H x W`` float batch,
any number of channels, on the training device. Geometry is relative to the image, so a recipe
tuned at 64 px means the same at 8 or 224 px: crop areas and translations are fractions of the
image, crop output sizes default to the input's, and blur sigmas are quoted for a
``reference_side`` (64 px) image and scale with the image's side.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sslcore.builtins.augmentations.image_ops import (
    band_dropout,
    gaussian_blur,
    gaussian_noise,
    random_flip,
    random_intensity,
    random_resized_crop,
    random_rot90,
)
from sslcore.registry import NoParams

__all__ = [
    "BandDropout", "BandDropoutParams", "GaussianBlur", "GaussianBlurParams", "ImageNoise",
    "ImageNoiseParams", "IntensityJitter", "IntensityJitterParams", "RandomFlip",
    "RandomFlipParams", "RandomResizedCrop", "RandomResizedCropParams", "RandomRot90",
    "band_dropout", "gaussian_blur", "gaussian_noise", "random_flip", "random_intensity",
    "random_resized_crop", "random_rot90",
]

def _ordered_pair(v: tuple[float, float], low: float, high: float,
                  what: str) -> tuple[float, float]:
    if not (low < v[0] <= v[1] <= high):
        raise ValueError(f"{what} must be an increasing pair within ({low}, {high}], got {v}")
    return v


class _Augmentation:
    """Shared plumbing: keep the validated params, rebuild nothing at call time."""

    params: BaseModel

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({fields})"


class RandomResizedCropParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int | None = Field(None, ge=1, description="output side in pixels; None keeps the "
                             "input's height and width")
    scale: tuple[float, float] = Field((0.2, 1.0), description="range of the crop's area "
                                       "as a fraction of the image")
    ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="range of the crop's "
                                       "aspect ratio (width / height), drawn log-uniformly")
    degrees: float = Field(0.0, ge=0.0, le=180.0, description="rotation uniform in "
                           "[-degrees, degrees]")
    translate: float = Field(0.0, ge=0.0, le=1.0, description="shift of up to this fraction "
                             "of the image size along each axis")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _ordered_pair(v, 0.0, 1.0, "scale")

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _ordered_pair(v, 0.0, float("inf"), "ratio")


class RandomResizedCrop(_Augmentation):
    """Random crop + resize (+ small rotation and translation), one resampling per batch."""

    def __init__(self, params: RandomResizedCropParams | None = None) -> None:
        self.params = params or RandomResizedCropParams()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.params
        size = p.size if p.size is not None else (int(x.shape[-2]), int(x.shape[-1]))
        return random_resized_crop(x, generator, size, scale=p.scale, ratio=p.ratio,
                                   degrees=p.degrees, translate=p.translate)


class RandomFlipParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    horizontal: bool = Field(True, description="flip left-right")
    vertical: bool = Field(False, description="flip up-down (overhead imagery, not X-rays)")
    p: float = Field(0.5, ge=0.0, le=1.0, description="probability per axis and sample")


class RandomFlip(_Augmentation):
    """Per-sample random horizontal and/or vertical flips."""

    def __init__(self, params: RandomFlipParams | None = None) -> None:
        self.params = params or RandomFlipParams()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.params
        return random_flip(x, generator, horizontal=p.horizontal, vertical=p.vertical, p=p.p)


class RandomRot90(_Augmentation):
    """Per-sample rotation by a random multiple of 90 degrees (of 180 on non-square images)."""

    def __init__(self, params: NoParams | None = None) -> None:
        self.params = params or NoParams()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_rot90(x, generator)


class IntensityJitterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brightness: float = Field(0.3, ge=0.0, lt=1.0, description="multiplicative gain in "
                              "[1-brightness, 1+brightness]")
    contrast: float = Field(0.3, ge=0.0, lt=1.0, description="contrast factor in "
                            "[1-contrast, 1+contrast]")
    gamma: float = Field(0.2, ge=0.0, description="gamma log-uniform in "
                         "[1/(1+gamma), 1+gamma], on min-max scaled values")
    per_channel: bool = Field(False, description="jitter each band independently "
                              "(per-band gains for multispectral sensors)")
    p: float = Field(0.8, ge=0.0, le=1.0, description="probability per sample")


class IntensityJitter(_Augmentation):
    """Brightness / contrast / gamma jitter (no colour or hue: bands are not RGB)."""

    def __init__(self, params: IntensityJitterParams | None = None) -> None:
        self.params = params or IntensityJitterParams()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.params
        return random_intensity(x, generator, brightness=p.brightness, contrast=p.contrast,
                                gamma=p.gamma, per_channel=p.per_channel, p=p.p)


class ImageNoiseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    std: float = Field(0.02, ge=0.0, description="noise std in raw intensity units "
                       "(images on a 0..1 scale)")
    p: float = Field(0.5, ge=0.0, le=1.0, description="probability per sample")


class ImageNoise(_Augmentation):
    """Additive Gaussian sensor noise on a random subset of the samples."""

    def __init__(self, params: ImageNoiseParams | None = None) -> None:
        self.params = params or ImageNoiseParams()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return gaussian_noise(x, generator, std=self.params.std, p=self.params.p)


class GaussianBlurParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sigma: tuple[float, float] = Field((0.1, 2.0), description="range of the per-sample "
                                       "sigma, in pixels of a reference_side px image")
    reference_side: int | None = Field(
        64, ge=1, description="image side the sigma range is quoted for: other sides scale "
        "it in proportion (sigma 1.2 px at 64 px is 0.6 px at 32 px), so a blur removes the "
        "same share of detail at any size; null: sigma in pixels at every size")
    p: float = Field(0.5, ge=0.0, le=1.0, description="probability per sample")

    @field_validator("sigma")
    @classmethod
    def _sigma(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _ordered_pair(v, 0.0, float("inf"), "sigma")


class GaussianBlur(_Augmentation):
    """Gaussian blur with a per-sample sigma (SimCLR's blur, for any number of bands)."""

    def __init__(self, params: GaussianBlurParams | None = None) -> None:
        self.params = params or GaussianBlurParams()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.params
        ratio = 1.0 if p.reference_side is None else min(x.shape[-2:]) / p.reference_side
        return gaussian_blur(x, generator, sigma=(p.sigma[0] * ratio, p.sigma[1] * ratio), p=p.p)


class BandDropoutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p: float = Field(0.1, ge=0.0, le=1.0, description="probability of zeroing each band "
                     "of each sample (at least one band is always kept)")


class BandDropout(_Augmentation):
    """Zero random whole bands per sample, so the encoder cannot lean on any single band."""

    def __init__(self, params: BandDropoutParams | None = None) -> None:
        self.params = params or BandDropoutParams()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return band_dropout(x, generator, p=self.params.p)
