"""Dataset factories of the satellite vertical; :data:`DATASETS` is registered by ``plugin.py``.

Features are float32 ``N x bands x size x size`` reflectance (see
:mod:`~sslcore_satellite.bands` for the scale); labels index the EuroSAT classes (or the class
folders' sorted names for file loaders).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from sslcore.sdk import SSLData
from sslcore_satellite import loaders
from sslcore_satellite.bands import BAND_NAMES, EUROSAT_CLASSES
from sslcore_satellite.regions import Region


class SyntheticParams(BaseModel):
    """Synthetic Sentinel-2 tiles (see :mod:`sslcore_satellite.synthetic`)."""

    model_config = ConfigDict(extra="forbid")

    n_unlabeled: int = Field(6000, ge=10, description="tiles in the unlabeled pool")
    n_labeled: int = Field(3000, ge=20, description="tiles in the labeled pool")
    n_test: int = Field(2000, ge=10, description="held-out test tiles")
    size: int = Field(64, ge=16, le=256, description="tile side in pixels (10 m each)")
    cloud_rate: float = Field(0.15, ge=0, le=1, description="share of tiles with clouds "
                              "(and, separately, with cirrus)")
    haze: float = Field(1.0, ge=0, le=5, description="scale of aerosol optical depth")
    region: Region = Field(default_factory=Region, description="another region or season "
                           "(illumination, vegetation season, material reflectance, texture "
                           "scale; see regions.py); the defaults are the built-in region")


def satellite_synthetic(params: SyntheticParams, *, seed: int) -> SSLData:
    """Unlabeled pool, labeled pool and test set drawn independently from one generator."""
    from sslcore_satellite.synthetic import generate_tiles

    def draw(n: int, stream: int) -> tuple:
        return generate_tiles(n, size=params.size, seed=seed, stream=stream,
                              cloud_rate=params.cloud_rate, haze=params.haze,
                              region=params.region)

    unlabeled, _ = draw(params.n_unlabeled, 0)  # its labels are never used
    x, y = draw(params.n_labeled, 1)
    xt, yt = draw(params.n_test, 2)
    source = (f"synthetic Sentinel-2 tiles (n={params.n_unlabeled}+{params.n_labeled}+"
              f"{params.n_test}, size={params.size}, cloud_rate={params.cloud_rate}, "
              f"haze={params.haze}, seed={seed}"
              + ("" if params.region.is_default() else f", region: {params.region.describe()}")
              + ")")
    return SSLData(unlabeled=unlabeled, labeled_x=x, labeled_y=y, test_x=xt, test_y=yt,
                   sources=[source], class_names=list(EUROSAT_CLASSES),
                   notes={"bands": ",".join(BAND_NAMES), "scale": "L1C reflectance (DN/10000)"}
                   ).validate()


DATASETS: dict[str, tuple[Callable[..., SSLData], type[BaseModel], str]] = {
    "satellite_synthetic": (satellite_synthetic, SyntheticParams,
                            "synthetic 13-band Sentinel-2 tiles of the ten EuroSAT classes "
                            "(spectra, textures, haze, clouds), deterministic by seed"),
    "eurosat_rgb": (loaders.eurosat_rgb, loaders.EuroSATParams,
                    "EuroSAT RGB JPEG class folders (3 bands, 0..1)"),
    "eurosat_ms": (loaders.eurosat_ms, loaders.EuroSATParams,
                   "EuroSAT MS 13-band GeoTIFF class folders (reflectance = DN / 10000)"),
    "geotiff_folders": (loaders.geotiff_folders, loaders.GeoTiffFoldersParams,
                        "multi-band GeoTIFF class folders, optional test and unlabeled folders"),
}
