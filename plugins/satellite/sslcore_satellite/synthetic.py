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
from sslcore_satellite.scenes import SCENES
from sslcore_satellite.spectra import tile_spectra

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
           cloud_rate: float = 0.15, haze: float = 1.0, phenology: float = 1.0) -> np.ndarray:
    """``n`` tiles of one class: ``(n, 13, size, size)`` float32 L1C reflectance."""
    out = np.empty((n, N_BANDS, size, size), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        k = min(_CHUNK, n - start)
        abundance, shade = SCENES[class_name](rng, k, size)
        spectra = tile_spectra(rng, k, phenology=phenology).astype(np.float32)
        surface = np.einsum("nmhw,nmb->nbhw", abundance.astype(np.float32), spectra)
        surface *= shade[:, None].astype(np.float32)
        out[start:start + k] = observe(rng, surface, cloud_rate=cloud_rate, haze=haze)
    return out


def generate_tiles(n: int, *, size: int = 64, seed: int = 0, stream: int = 0,
                   cloud_rate: float = 0.15, haze: float = 1.0,
                   phenology: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` shuffled tiles and their class indices (into ``EUROSAT_CLASSES``).

    The same arguments always give the same arrays; ``stream`` draws independent sets for one
    seed (the unlabeled, labeled and test splits).
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
                          phenology=phenology)
        y[where] = c
        start += count
    return x, y
