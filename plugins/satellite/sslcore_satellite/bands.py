"""Sentinel-2 MSI bands in the order EuroSAT's 13-band GeoTIFFs store them, and the scale.

EuroSAT MS tiles (Helber et al., "EuroSAT: A Novel Dataset and Deep Learning Benchmark for Land
Use and Land Cover Classification", IEEE JSTARS 2019) hold the Level-1C digital numbers of the
13 bands as uint16 in the order B01..B12 then B8A. Level-1C digital numbers are top-of-atmosphere
reflectance times :data:`REFLECTANCE_SCALE` (10000), so every loader here divides by it and the
features are reflectance, roughly 0..1 (clouds and bright roofs reach 0.5-0.9). The synthetic
tiles are generated directly on that scale.
"""

from __future__ import annotations

import numpy as np

REFLECTANCE_SCALE = 10000.0  # Sentinel-2 L1C digital number = reflectance * 10000

BAND_NAMES = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11",
              "B12", "B8A")
# Central wavelengths (nm) and ground sampling distances (m), Sentinel-2A MSI.
WAVELENGTHS = np.array([443, 490, 560, 665, 705, 740, 783, 842, 945, 1375, 1610, 2190, 865],
                       dtype=np.float64)
RESOLUTION_M = np.array([60, 10, 10, 10, 20, 20, 20, 10, 60, 60, 20, 20, 20])
N_BANDS = len(BAND_NAMES)

BAND = {name: i for i, name in enumerate(BAND_NAMES)}
RGB = (BAND["B04"], BAND["B03"], BAND["B02"])  # red, green, blue
NIR, RED, GREEN = BAND["B08"], BAND["B04"], BAND["B03"]
SWIR1, SWIR2 = BAND["B11"], BAND["B12"]

EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                   "Pasture", "PermanentCrop", "Residential", "River", "SeaLake")
