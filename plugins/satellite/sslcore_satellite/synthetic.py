"""Synthetic 13-band Sentinel-2-like tiles of the ten EuroSAT classes, deterministic by seed.

A tile is rendered in three steps, all vectorized over a chunk of tiles: a land-cover scene
gives per-pixel material abundances (:mod:`~sslcore_satellite.scenes`), linear mixing with the
materials' per-tile spectra gives surface reflectance (:mod:`~sslcore_satellite.spectra`), and
the acquisition (illumination, haze, clouds, band resolutions, noise:
:mod:`~sslcore_satellite.atmosphere`) gives the Level-1C reflectance a sensor records. Classes
are drawn in EuroSAT's proportions (2000-3000 tiles per class there).

Example::

    x, y = generate_tiles(1000, size=64, seed=0)   # x: (1000, 13, 64, 64) float32, y: int64
"""

from __future__ import annotations

import numpy as np

from sslcore_satellite.atmosphere import observe
from sslcore_satellite.bands import EUROSAT_CLASSES, N_BANDS
from sslcore_satellite.regions import Region
from sslcore_satellite.scenes import SCENES
from sslcore_satellite.spectra import M, tile_spectra

# Tiles per class in EuroSAT (27,000 in all); synthetic data keeps the same class mix.
EUROSAT_COUNTS = np.array([3000, 3000, 3000, 2500, 2500, 2000, 2500, 3000, 2500, 3000])
_CHUNK = 128  # tiles rendered at once: bounds memory (abundances are n x 12 x H x W)


def class_counts(n: int) -> np.ndarray:
    """Tiles per class for ``n`` tiles in EuroSAT's proportions (largest remainders)."""
    share = EUROSAT_COUNTS / EUROSAT_COUNTS.sum() * n
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def render(rng: np.random.Generator, class_name: str, n: int, size: int, *,
           cloud_rate: float = 0.15, haze: float = 1.0, phenology: float = 1.0,
           region: Region | None = None) -> np.ndarray:
    """``n`` tiles of one class: ``(n, 13, size, size)`` float32 L1C reflectance."""
    region = region or Region()
    scene_size = max(8, round(size / region.texture_scale))
    out = np.empty((n, N_BANDS, size, size), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        k = min(_CHUNK, n - start)
        abundance, shade = SCENES[class_name](rng, k, scene_size)
        if scene_size != size:  # larger structures: the same scenes on fewer, larger pixels
            abundance, shade = _resample(abundance, size), _resample(shade[:, None], size)[:, 0]
        spectra = tile_spectra(rng, k, phenology=phenology, season=region.season)
        for material, gain in region.material_gain.items():
            spectra[:, M[material]] *= gain
        spectra = spectra.astype(np.float32)
        surface = np.einsum("nmhw,nmb->nbhw", abundance.astype(np.float32), spectra)
        surface *= shade[:, None].astype(np.float32)
        out[start:start + k] = observe(rng, surface, cloud_rate=cloud_rate, haze=haze,
                                       illumination=region.illumination)
    return out


def _resample(maps: np.ndarray, size: int) -> np.ndarray:
    """``(n, c, s, s)`` maps -> ``(n, c, size, size)`` (bilinear); abundances stay summing to 1."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False).numpy()


def generate_tiles(n: int, *, size: int = 64, seed: int = 0, stream: int = 0,
                   cloud_rate: float = 0.15, haze: float = 1.0,
                   phenology: float = 1.0,
                   region: Region | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` shuffled tiles and their class indices (into ``EUROSAT_CLASSES``).

    The same arguments always give the same arrays; ``stream`` draws independent sets for one
    seed (the unlabeled, labeled and test splits). ``region`` (:class:`~sslcore_satellite.
    regions.Region`: illumination, season, materials, texture scale) moves the tiles to
    another region or season; None is the built-in one.
    """
    entropy = [int(seed) & 0xFFFFFFFF, 0x5A7, int(stream)]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    counts = class_counts(n)
    slots = rng.permutation(n)  # where each class's tiles go: shuffled without a copy
    x = np.empty((n, N_BANDS, size, size), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    start = 0
    for c, (name, count) in enumerate(zip(EUROSAT_CLASSES, counts, strict=True)):
        where = slots[start:start + count]
        x[where] = render(rng, name, int(count), size, cloud_rate=cloud_rate, haze=haze,
                          phenology=phenology, region=region)
        y[where] = c
        start += count
    return x, y
