"""Acquisition sites: what another hospital's scanners and image processing change.

A model trained on one hospital's radiographs meets another hospital's at deployment: other
detectors (fewer photons per pixel, so more quantum noise; more blur; a smaller native matrix
that is later resized), another vendor's display processing (gamma, window level and width),
tighter or looser collimation, another scanner mix and another disease prevalence (a pediatric
ward vs an adult emergency department). :class:`AcquisitionSite` holds these levers; its
defaults are the built-in site, and the synthetic generator applies each lever at the step of
the acquisition where it happens (:mod:`sslcore_medical_imaging.synthetic`). Prevalence is the
dataset's own ``prevalence``.

Example::

    site_b = AcquisitionSite(dose=0.35, extra_blur=0.5, gamma=1.3, contrast=0.85,
                             native_size=48, collimation=0.6)
    x, y, meta = generate_radiographs(500, size=64, prevalence=0.15, seed=1, site=site_b)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:  # torch is imported where images are made, not when params are validated
    import torch


class AcquisitionSite(BaseModel):
    """One site's acquisition; every default leaves the built-in radiographs unchanged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scanner_shares: list[float] | None = Field(
        None, description="shares of the four scanner profiles (synthetic.SCANNERS order); "
        "None: 0.35 / 0.3 / 0.2 / 0.15")
    dose: float = Field(1.0, gt=0.0, le=10.0, description="photons per pixel x this (tube "
                        "current x time, detector efficiency): quantum noise ~ 1/sqrt(dose)")
    extra_blur: float = Field(0.0, ge=0.0, le=3.0, description="detector blur added to each "
                              "profile's, in pixels at 64 px (scaled with the image)")
    gamma: float = Field(1.0, gt=0.0, le=4.0, description="the display LUT's gamma x this "
                         "(> 1: darker mid-tones, lungs darker)")
    brightness: float = Field(0.0, ge=-0.5, le=0.5, description="window level shift after "
                              "the LUT (0..1 scale)")
    contrast: float = Field(1.0, gt=0.0, le=3.0, description="window width: values are "
                            "stretched about mid-grey by this factor")
    native_size: int | None = Field(None, ge=16, le=512, description="detector matrix side: "
                                    "images are acquired at this size and resized to the "
                                    "dataset's size (antialiased); None: the dataset's size")
    collimation: float | None = Field(None, ge=0.0, le=1.0, description="share of images "
                                      "with shutter borders; None: each profile's own")
    collimation_width: tuple[float, float] = Field(
        (0.03, 0.12), description="shutter border width range, as a share of the image side")

    @field_validator("scanner_shares")
    @classmethod
    def _four_shares(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 4 or min(v) < 0 or sum(v) <= 0):
            raise ValueError(f"scanner_shares needs 4 non-negative shares, got {v}")
        return v

    @field_validator("collimation_width")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= v[0] <= v[1] <= 0.4:
            raise ValueError(f"collimation_width must satisfy 0 <= low <= high <= 0.4, got {v}")
        return v

    def is_default(self) -> bool:
        return self == AcquisitionSite()

    def describe(self) -> str:
        """The non-default levers, for the data source line."""
        changed = self.model_dump(exclude_defaults=True)
        return ", ".join(f"{k}={v}" for k, v in changed.items())


def display_window(img: torch.Tensor, site: AcquisitionSite) -> torch.Tensor:
    """The site's window level and width after the LUT (untouched at the defaults)."""
    if site.contrast == 1.0 and site.brightness == 0.0:
        return img
    return (img - 0.5) * site.contrast + 0.5 + site.brightness


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) images acquired on a native matrix -> ``size`` x ``size``, antialiased (as the
    file loaders resize a hospital's images)."""
    import torch.nn.functional as F

    if x.shape[-1] == size:
        return x
    return F.interpolate(x[:, None], size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[:, 0].clamp(0, 1)
