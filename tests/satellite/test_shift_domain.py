"""Another region or season: the defaults leave the tiles bit-identical, each lever moves the band
statistics it is about, and the recipe's other_region domain validates."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pydantic import ValidationError

from sslcore.plugins import load_registries
from sslcore_satellite.bands import BAND, EUROSAT_CLASSES
from sslcore_satellite.datasets import SyntheticParams, satellite_synthetic
from sslcore_satellite.recipe import DEFAULT_CONFIG, OTHER_REGION
from sslcore_satellite.regions import Region
from sslcore_satellite.synthetic import generate_tiles


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def _tiles(**region: object) -> tuple[np.ndarray, np.ndarray]:
    return generate_tiles(60, size=16, seed=2, region=Region(**region))


def _ndvi(x: np.ndarray) -> np.ndarray:
    nir, red = x[:, BAND["B08"]], x[:, BAND["B04"]]
    return ((nir - red) / (nir + red + 1e-6)).mean((1, 2))


def test_default_region_reproduces_the_built_in_tiles():
    x, y = generate_tiles(150, size=32, seed=3, stream=1)
    # digest of generate_tiles(150, size=32, seed=3, stream=1) before regions existed
    assert _digest(x, y) == "8228c22d469fd40d"
    x2, y2 = generate_tiles(150, size=32, seed=3, stream=1, region=Region())
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_each_lever_moves_its_band_statistics():
    x, y = _tiles()
    dark, _ = _tiles(illumination=0.8)
    ratio = dark[:, BAND["B04"]].mean() / x[:, BAND["B04"]].mean()
    assert 0.75 < ratio < 0.85  # the same tiles under a lower sun
    late, _ = _tiles(season=0.6)
    vegetated = np.isin(y, [EUROSAT_CLASSES.index(c) for c in ("Pasture", "AnnualCrop",
                                                               "HerbaceousVegetation")])
    assert _ndvi(late)[vegetated].mean() < _ndvi(x)[vegetated].mean() - 0.1  # senescent
    soils, _ = _tiles(material_gain={"soil": 1.5})
    assert soils[:, BAND["B11"]].mean() > x[:, BAND["B11"]].mean()


def test_larger_structures_are_smoother_at_the_same_pixels():
    def edges(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x[:, BAND["B08"]], axis=-1)).mean())

    x, _ = generate_tiles(60, size=32, seed=2)
    big, _ = generate_tiles(60, size=32, seed=2, region=Region(texture_scale=2.0))
    assert big.shape == x.shape and edges(big) < 0.8 * edges(x)


def test_other_region_keeps_the_bands_and_classes():
    params = {"n_unlabeled": 10, "n_labeled": 20, "n_test": 60, "size": 16}
    home = satellite_synthetic(SyntheticParams(**params), seed=0)
    other = satellite_synthetic(SyntheticParams(**(OTHER_REGION | params)), seed=1)
    assert other.test_x.shape[1:] == home.test_x.shape[1:]
    assert other.class_names == home.class_names and "region:" in other.sources[0]
    with pytest.raises(ValidationError, match="material_gain"):
        Region(material_gain={"lava": 2.0})


def test_recipe_names_other_region_and_it_validates():
    from sslcore.experiment import resolve_config

    assert DEFAULT_CONFIG["dataset"]["shifted"] == {"other_region": OTHER_REGION}
    cfg = resolve_config("satellite", load_registries(), quick=True)
    assert set(cfg.dataset.shifted) == {"other_region"}
