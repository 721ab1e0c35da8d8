"""The synthetic Sentinel-2 generator: deterministic, balanced like EuroSAT, physically sane."""

from __future__ import annotations

import numpy as np
import pytest

from sslcore_satellite.bands import BAND, EUROSAT_CLASSES, N_BANDS
from sslcore_satellite.synthetic import EUROSAT_COUNTS, class_counts, generate_tiles

N = 300


@pytest.fixture(scope="module")
def tiles() -> tuple[np.ndarray, np.ndarray]:
    return generate_tiles(N, size=32, seed=3)


def _index(x: np.ndarray, a: str, b: str) -> np.ndarray:
    """Per-tile mean normalized difference of bands a and b."""
    return ((x[:, BAND[a]] - x[:, BAND[b]]) / (x[:, BAND[a]] + x[:, BAND[b]] + 1e-6)).mean((1, 2))


def _class_mean(v: np.ndarray, y: np.ndarray, name: str) -> float:
    return float(v[y == EUROSAT_CLASSES.index(name)].mean())


def test_shape_dtype_and_reflectance_range(tiles):
    x, y = tiles
    assert x.shape == (N, N_BANDS, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.6
    assert 0.02 < float(np.median(x)) < 0.4  # reflectance, not digital numbers


def test_deterministic_by_seed_and_stream(tiles):
    x, y = tiles
    x2, y2 = generate_tiles(N, size=32, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x3, _ = generate_tiles(N, size=32, seed=4)
    x4, _ = generate_tiles(N, size=32, seed=3, stream=1)
    assert not np.array_equal(x, x3) and not np.array_equal(x, x4)


def test_class_balance_follows_eurosat(tiles):
    _, y = tiles
    counts = np.bincount(y, minlength=10)
    assert counts.tolist() == class_counts(N).tolist()
    assert counts.sum() == N and (counts > 0).all()
    share = EUROSAT_COUNTS / EUROSAT_COUNTS.sum()
    assert np.abs(counts / N - share).max() < 1.0 / N + 1e-9
    assert class_counts(27000).tolist() == EUROSAT_COUNTS.tolist()
    assert len(np.unique(y[:40])) > 5  # shuffled, not sorted by class


def test_spectral_signatures_are_physical(tiles):
    x, y = tiles
    ndvi, ndwi, ndbi = _index(x, "B08", "B04"), _index(x, "B03", "B08"), _index(x, "B11", "B08")
    nir = x[:, BAND["B08"]].mean((1, 2))
    # Vegetation is bright in NIR, water dark; built-up is bright in SWIR relative to NIR.
    assert _class_mean(ndvi, y, "Forest") > 0.4 > _class_mean(ndvi, y, "SeaLake")
    assert _class_mean(ndvi, y, "Pasture") > _class_mean(ndvi, y, "Industrial")
    assert _class_mean(ndwi, y, "SeaLake") > 0 > _class_mean(ndwi, y, "Forest")
    assert _class_mean(ndbi, y, "Industrial") > _class_mean(ndbi, y, "Forest")
    assert _class_mean(nir, y, "SeaLake") < 0.5 * _class_mean(nir, y, "Pasture")
    # Haze: the atmosphere adds most in the blue, so B01 over a dark sea exceeds its B04.
    sea = y == EUROSAT_CLASSES.index("SeaLake")
    assert x[sea, BAND["B01"]].mean() > x[sea, BAND["B04"]].mean()


def test_confusable_classes_overlap_in_mean_spectrum(tiles):
    """Pasture, herbaceous vegetation and annual crop share grass-like spectra: their mean NDVI
    distributions overlap (texture, not colour alone, tells them apart)."""
    x, y = tiles
    ndvi = _index(x, "B08", "B04")
    groups = [ndvi[y == EUROSAT_CLASSES.index(c)]
              for c in ("Pasture", "HerbaceousVegetation", "AnnualCrop")]
    lo = max(np.percentile(g, 10) for g in groups)
    hi = min(np.percentile(g, 90) for g in groups)
    assert lo < hi
