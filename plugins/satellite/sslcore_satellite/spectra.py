"""Surface reflectance of the materials synthetic tiles are made of, at the 13 Sentinel-2 bands.

Values are typical surface reflectances read off published library curves (USGS Spectral
Library v7 and ECOSTRESS/ASTER: green vegetation, dry grass, loam soil, asphalt, concrete, roof
materials, clear and turbid water), in :data:`~sslcore_satellite.bands.BAND_NAMES` order
(B01..B12, B8A). What matters is the physics the classes rest on:

- green vegetation: chlorophyll absorbs red and blue, the red edge (B05-B07) rises steeply and
  leaf structure makes the near infrared (B08, B8A) bright; liquid water in leaves darkens the
  short-wave infrared (B11, B12). Forest canopies are darker than grass in every band (shadowing
  between crowns);
- dry vegetation and bare soil: no red edge, reflectance climbs steadily into the SWIR;
- water: dark everywhere, darkest in the infrared (it absorbs NIR and SWIR almost fully);
  sediment lifts green and red;
- built-up materials: flat, fairly bright spectra, brighter in SWIR than in NIR (NDBI > 0).

Each tile perturbs these curves (:func:`tile_spectra`): the season (senescent grass and crops,
leafless deciduous forest), a gain per tile and material (site, soil, sun angle) and a small
smooth tilt across wavelength, so no class has a fixed spectrum.
"""

from __future__ import annotations

import numpy as np

from sslcore_satellite.bands import WAVELENGTHS

# Surface reflectance x 1000 in band order B01, B02, B03, B04, B05, B06, B07, B08, B09, B10,
# B11, B12, B8A.
_MATERIALS_X1000: dict[str, tuple[int, ...]] = {
    "water":     ( 50,  48,  42,  22,  18,  11,   9,   7,   5,   2,   4,   3,   7),
    "turbid":    ( 60,  68,  88,  72,  60,  38,  30,  24,  10,   3,   8,   5,  20),
    "forest":    ( 20,  24,  45,  24,  68, 180, 235, 265, 260,  80, 140,  60, 275),
    "grass":     ( 30,  38,  80,  45, 120, 280, 355, 380, 370, 100, 225, 110, 395),
    "crop":      ( 25,  32,  75,  34, 110, 305, 400, 440, 430, 110, 210,  98, 455),
    "dry":       ( 60,  70, 100, 128, 158, 188, 208, 228, 245, 200, 330, 250, 238),
    "shrub":     ( 30,  34,  60,  50,  92, 180, 220, 240, 238, 100, 220, 130, 248),
    "soil":      ( 68,  80, 110, 150, 172, 190, 205, 220, 240, 250, 318, 280, 228),
    "asphalt":   ( 60,  64,  70,  76,  80,  84,  88,  94, 100, 100, 110, 100,  96),
    "concrete":  (180, 210, 250, 275, 288, 296, 300, 306, 310, 300, 335, 292, 308),
    "roof":      (280, 318, 355, 375, 378, 380, 380, 382, 372, 360, 405, 360, 382),
    "tile":      ( 58,  68,  98, 220, 258, 278, 290, 300, 310, 330, 382, 330, 305),
}
MATERIALS = {name: tuple(v / 1000 for v in values) for name, values in _MATERIALS_X1000.items()}
MATERIAL_NAMES = tuple(MATERIALS)
M = {name: i for i, name in enumerate(MATERIAL_NAMES)}
SPECTRA = np.array([MATERIALS[m] for m in MATERIAL_NAMES], dtype=np.float64)  # (materials, 13)

# Spectrum of an opaque cloud top (bright and flat in the visible, lower in the SWIR) and of
# thin cirrus, which only the 1375 nm band (B10) sees clearly.
CLOUD = np.array([0.52, 0.53, 0.53, 0.52, 0.52, 0.51, 0.51, 0.50, 0.46, 0.30, 0.36, 0.26, 0.50])
CIRRUS = np.array([0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.12, 0.05, 0.04, 0.05])

# A leafless deciduous canopy: branches, litter and understory seen through them.
LEAF_OFF = np.array([0.040, 0.045, 0.060, 0.070, 0.085, 0.100, 0.110, 0.120, 0.125, 0.100,
                     0.170, 0.130, 0.125])
_LOG_WL = np.log(WAVELENGTHS / 800.0)


def tile_spectra(rng: np.random.Generator, n: int, gain_sd: float = 0.08,
                 tilt_sd: float = 0.06, phenology: float = 1.0, season: float = 0.0) -> np.ndarray:
    """Per-tile material spectra ``(n, materials, 13)``.

    The season of acquisition first: EuroSAT's tiles span the whole year, so each tile draws a
    canopy greenness (1 at the peak of the season) that moves grass, crops and shrubs towards
    dry, senescent vegetation, and deciduous forest (a random share of each tile's forest)
    towards a leafless canopy; ``phenology`` scales the effect (0: always peak season) and
    ``season`` shifts it (another region's or month's acquisitions, clipped to 0..1). Then a
    random gain per (tile, material) and a smooth log-wavelength tilt (moisture, soil type,
    illumination geometry).
    """
    spectra = np.repeat(SPECTRA[None], n, axis=0)
    dormancy = phenology * (1.0 - rng.beta(4.0, 1.6, n))[:, None]  # 0 = peak season
    if season:
        dormancy = np.clip(dormancy + season, 0.0, 1.0)
    deciduous = rng.uniform(0.0, 1.0, n)[:, None]
    dry = SPECTRA[M["dry"]][None]
    for name, share in (("grass", 1.0), ("crop", 1.0), ("shrub", 0.5)):
        w = share * dormancy
        spectra[:, M[name]] = (1 - w) * SPECTRA[M[name]] + w * dry
    w = deciduous * dormancy
    spectra[:, M["forest"]] = (1 - w) * SPECTRA[M["forest"]] + w * LEAF_OFF[None]
    gain = np.exp(rng.normal(0.0, gain_sd, size=(n, len(MATERIAL_NAMES), 1)))
    tilt = rng.normal(0.0, tilt_sd, size=(n, len(MATERIAL_NAMES), 1)) * _LOG_WL
    return spectra * gain * np.exp(tilt)
