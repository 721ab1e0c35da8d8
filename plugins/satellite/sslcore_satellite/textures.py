"""Vectorized texture primitives for synthetic tiles: every function works on ``n`` tiles at once.

Shapes: maps are ``(n, size, size)`` float arrays; per-tile parameters are ``(n, 1, 1)`` so they
broadcast over pixels. Nothing loops over tiles or pixels in Python.
"""

from __future__ import annotations

import numpy as np


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each ``(1, size, size)``, in pixels."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return x[None], y[None]


def per_tile(values: np.ndarray) -> np.ndarray:
    """``(n,)`` -> ``(n, 1, 1)``, to broadcast a per-tile parameter over pixels."""
    return np.asarray(values, dtype=np.float64).reshape(-1, 1, 1)


def smooth_field(rng: np.random.Generator, n: int, size: int,
                 scale: float | np.ndarray) -> np.ndarray:
    """Gaussian random fields with correlation length ``scale`` pixels (scalar or per tile),
    standardized to zero mean and unit std per tile (spectral filtering of white noise)."""
    import scipy.fft

    noise = rng.standard_normal((n, size, size), dtype=np.float32)
    f2 = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2
    sigma = per_tile(np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,)))
    kernel = np.exp(-2.0 * np.pi ** 2 * sigma ** 2 * f2).astype(np.float32)
    field = scipy.fft.irfft2(scipy.fft.rfft2(noise) * kernel, s=(size, size)).astype(np.float64)
    field -= field.mean(axis=(1, 2), keepdims=True)
    return field / (field.std(axis=(1, 2), keepdims=True) + 1e-9)


def rotate(x: np.ndarray, y: np.ndarray, theta: np.ndarray, cx: float | np.ndarray = 0.0,
           cy: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (``u``) and across (``v``) direction ``theta`` about ``(cx, cy)``."""
    dx, dy = x - cx, y - cy
    c, s = np.cos(theta), np.sin(theta)
    return dx * c + dy * s, -dx * s + dy * c


def soft_band(distance: np.ndarray, half_width: float | np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of a band of ``half_width`` pixels around ``distance == 0``,
    anti-aliased over one pixel (a road or river of sub-pixel width still shows, dimmer)."""
    return np.clip(half_width + 0.5 - np.abs(distance), 0.0, 1.0)


def stripes(u: np.ndarray, period: np.ndarray, phase: np.ndarray, duty: np.ndarray) -> np.ndarray:
    """Periodic rows (crop rows, vine rows): coverage in [0, 1], ``duty`` of each period covered,
    with soft edges so periods near the pixel size blur as real sensors blur them."""
    t = np.mod(u / period + phase, 1.0)
    edge = 0.5 / np.maximum(period, 1.0)
    return np.clip((duty / 2 + edge - np.abs(t - 0.5)) / (2 * edge), 0.0, 1.0)


def parcels(rng: np.random.Generator, n: int, size: int, k_min: int, k_max: int,
            boundary_px: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi parcels (fields are roughly convex polygons): ``(label, boundary)``.

    ``label`` ``(n, size, size)`` int in ``[0, k_max)``; each tile uses ``k_min..k_max`` seeds.
    ``boundary`` is a soft mask of the lines between parcels (hedges, tracks, ditches).
    """
    x, y = grid(size)
    pts = rng.uniform(-0.15 * size, 1.15 * size, size=(n, k_max, 2))
    k = rng.integers(k_min, k_max + 1, size=n)
    active = np.arange(k_max)[None, :] < k[:, None]
    d2 = (x[:, None] - pts[..., 0, None, None]) ** 2 + (y[:, None] - pts[..., 1, None, None]) ** 2
    d2 = np.where(active[..., None, None], d2, np.inf)
    order = np.argsort(d2, axis=1)[:, :2]
    label = order[:, 0]
    d_first = np.sqrt(np.take_along_axis(d2, order[:, :1], axis=1)[:, 0])
    d_second = np.sqrt(np.take_along_axis(d2, order[:, 1:2], axis=1)[:, 0])
    boundary = soft_band((d_second - d_first) / 2.0, boundary_px / 2.0) * (k[:, None, None] > 1)
    return label, boundary


def by_label(values: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per-parcel values ``(n, k)`` as a map ``(n, size, size)`` through a label map."""
    return np.take_along_axis(values, label.reshape(len(label), -1), axis=1).reshape(label.shape)


def cell_values(rng: np.random.Generator, n: int, ix: np.ndarray, iy: np.ndarray,
                k: int = 32) -> np.ndarray:
    """One uniform random value per grid cell ``(ix, iy)`` (integer maps), per tile."""
    table = rng.uniform(size=(n, k, k))
    tiles = np.arange(n).reshape(-1, 1, 1)
    return table[tiles, np.mod(ix, k).astype(np.int64), np.mod(iy, k).astype(np.int64)]


def blobs(rng: np.random.Generator, n: int, size: int, scale: float | np.ndarray,
          cover: float | np.ndarray, softness: float = 0.15) -> np.ndarray:
    """Irregular patches covering about ``cover`` of the tile (thresholded random field)."""
    field = smooth_field(rng, n, size, scale)
    from scipy.special import ndtri

    threshold = per_tile(ndtri(1.0 - np.clip(np.broadcast_to(cover, (n,)), 1e-4, 1 - 1e-4)))
    return np.clip((field - threshold) / softness + 0.5, 0.0, 1.0)


def meander(v: np.ndarray, rng: np.random.Generator, n: int, amplitude: np.ndarray,
            size: int) -> np.ndarray:
    """A smooth random offset along ``v`` (two sines): the lateral wander of rivers and roads."""
    offset = np.zeros_like(v)
    for _ in range(2):
        wavelength = per_tile(rng.uniform(0.6 * size, 2.5 * size, n))
        phase = per_tile(rng.uniform(0, 2 * np.pi, n))
        offset = offset + amplitude * np.sin(2 * np.pi * v / wavelength + phase) / 2
    return offset
