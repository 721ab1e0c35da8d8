"""Regions and seasons: what changes when a land-cover model meets tiles from elsewhere.

A classifier trained on one region's Sentinel-2 tiles is applied to another region or season:
the sun is lower (winter, higher latitude: darker tiles), vegetation is in another phase
(senescent grass and crops, leafless deciduous forest), soils and vegetation reflect
differently (bright calcareous or red iron-rich soils, sparser or lusher vegetation), fields,
houses and roads are larger or smaller (other texture statistics at the same 10 m pixels),
and the air is hazier (the dataset's own ``haze`` and ``cloud_rate``). :class:`Region` holds
the levers the generator did not have; its defaults are the built-in region, and
:func:`~sslcore_satellite.synthetic.generate_tiles` applies each where it acts: the scenes'
scale, the material spectra, the illumination of the acquisition.

Example::

    dry_winter = Region(illumination=0.8, season=0.3, texture_scale=1.5,
                        material_gain={"soil": 1.25, "dry": 1.15, "grass": 0.9})
    x, y = generate_tiles(500, size=64, seed=1, haze=2.0, region=dry_winter)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sslcore_satellite.spectra import MATERIAL_NAMES


class Region(BaseModel):
    """One region and season; every default gives the built-in tiles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    illumination: float = Field(1.0, gt=0.2, le=2.0, description="sun elevation: every "
                                "tile's illumination gain x this (0.8: a low winter sun)")
    season: float = Field(0.0, ge=-1.0, le=1.0, description="added to each tile's vegetation "
                          "dormancy (0..1): > 0 later in the season (senescent, leafless), "
                          "< 0 closer to its peak")
    material_gain: dict[str, float] = Field(default_factory=dict, description="material -> "
                                            "reflectance x this (soil, dry, grass, crop, "
                                            "forest, shrub, water, ...)")
    texture_scale: float = Field(1.0, ge=0.5, le=4.0, description="> 1: fields, buildings "
                                 "and roads this many times larger on the same 10 m pixels "
                                 "(scenes drawn on a smaller grid and resampled)")

    @field_validator("material_gain")
    @classmethod
    def _known_materials(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(MATERIAL_NAMES))
        if unknown or any(g <= 0 for g in v.values()):
            raise ValueError(f"material_gain needs positive gains of {list(MATERIAL_NAMES)}, "
                             f"got {v}")
        return v

    def is_default(self) -> bool:
        return self == Region()

    def describe(self) -> str:
        """The non-default levers, for the data source line."""
        return ", ".join(f"{k}={v}" for k, v in self.model_dump(exclude_defaults=True).items())
