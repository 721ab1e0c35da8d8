"""Land-cover scenes: per-pixel material abundances for the ten EuroSAT classes, n tiles at once.

Each scene returns ``(abundance, shade)``: ``abundance`` ``(n, materials, size, size)`` sums to 1
over materials at every pixel (linear spectral mixing), ``shade`` ``(n, size, size)`` multiplies
the rendered reflectance (crown shadows, relief). The classes differ the way they do on the
ground, which makes some of them hard to tell apart, as in EuroSAT:

- annual crop, pasture and herbaceous vegetation are all grass-like spectra; annual crop has
  parcels in different states (green, young rows, bare soil, stubble), pasture is mostly uniform
  grass with hedges and scattered trees, herbaceous vegetation is a patchy shrub/grass/dry mix;
- permanent crop (orchards, vineyards) is tree crowns or vine rows on grass or soil, which at
  10 m looks much like open forest;
- highway, residential and industrial all mix asphalt, concrete and roofs; a highway tile is a
  rural background crossed by a road, residential is small houses in gardens along streets,
  industrial is large bright roofs and paved yards;
- river is a rural background with a meandering water band; sea/lake is water, sometimes with
  a shore.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sslcore_satellite.spectra import MATERIAL_NAMES, M
from sslcore_satellite.textures import (
    blobs, by_label, cell_values, grid, meander, parcels, per_tile, rotate, smooth_field,
    soft_band, stripes,
)

Scene = tuple[np.ndarray, np.ndarray]
N_MAT = len(MATERIAL_NAMES)


def _fill(n: int, size: int, material: str) -> np.ndarray:
    a = np.zeros((n, N_MAT, size, size), dtype=np.float32)
    a[:, M[material]] = 1.0
    return a


def _paint(a: np.ndarray, cover: np.ndarray, material: str) -> np.ndarray:
    """Cover a fraction ``cover`` (``(n, H, W)`` in [0, 1]) of each pixel with ``material``."""
    cover = np.clip(cover, 0.0, 1.0).astype(np.float32)
    a *= 1.0 - cover[:, None]
    a[:, M[material]] += cover
    return a


def _u(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    return per_tile(rng.uniform(lo, hi, n))


def annual_crop(rng: np.random.Generator, n: int, size: int) -> Scene:
    label, boundary = parcels(rng, n, size, 3, 9)
    k = 9
    x, y = grid(size)
    # Parcel states: green crop, young crop in rows, bare soil, stubble/senescent.
    state = by_label(rng.choice(4, p=[0.4, 0.25, 0.2, 0.15], size=(n, k)), label)
    theta = by_label(rng.uniform(0, np.pi, (n, k)), label)
    period = by_label(rng.uniform(2.0, 4.5, (n, k)), label)
    duty = by_label(rng.uniform(0.3, 0.8, (n, k)), label)
    u, _ = rotate(x, y, theta)
    rows = stripes(u, period, by_label(rng.uniform(0, 1, (n, k)), label), duty)
    vigour = 0.08 * smooth_field(rng, n, size, 5.0)
    crop = np.select([state == 0, state == 1, state == 2, state == 3],
                     [0.9 + vigour + 0.1 * rows, rows * 0.85, 0.04 + 0 * rows, 0.1 * rows])
    a = _fill(n, size, "soil")
    a = _paint(a, np.where(state == 3, 0.75, 0.0), "dry")
    a = _paint(a, crop, "crop")
    a = _paint(a, boundary * 0.7, "grass")
    return a, np.ones((n, size, size))


def pasture(rng: np.random.Generator, n: int, size: int) -> Scene:
    a = _fill(n, size, "grass")
    dryness = 1 / (1 + np.exp(-(1.2 * smooth_field(rng, n, size, _u(rng, n, 6, 20)[:, 0, 0])
                                + _u(rng, n, -3.0, 0.5))))
    a = _paint(a, dryness, "dry")
    _, hedges = parcels(rng, n, size, 1, 4, boundary_px=1.5)
    a = _paint(a, hedges * per_tile(rng.uniform(size=n) < 0.6), "shrub")
    trees = blobs(rng, n, size, 1.2, per_tile(rng.uniform(0.0, 0.06, n))[:, 0, 0])
    a = _paint(a, trees, "forest")
    trails = blobs(rng, n, size, 1.0, 0.02)
    a = _paint(a, 0.5 * trails, "soil")
    return a, 1.0 - 0.25 * trees


def herbaceous(rng: np.random.Generator, n: int, size: int) -> Scene:
    a = _fill(n, size, "grass")
    a = _paint(a, blobs(rng, n, size, _u(rng, n, 2, 5)[:, 0, 0],
                        rng.uniform(0.15, 0.5, n)), "dry")
    a = _paint(a, blobs(rng, n, size, _u(rng, n, 1.5, 4)[:, 0, 0],
                        rng.uniform(0.15, 0.45, n)), "shrub")
    a = _paint(a, blobs(rng, n, size, 1.5, rng.uniform(0.0, 0.15, n)), "soil")
    a = _paint(a, blobs(rng, n, size, 1.2, rng.uniform(0.0, 0.08, n)), "forest")
    return a, 1.0 + 0.04 * smooth_field(rng, n, size, 8.0)


def forest(rng: np.random.Generator, n: int, size: int) -> Scene:
    a = _fill(n, size, "forest")
    a = _paint(a, per_tile(rng.uniform(0.0, 0.3, n)) + 0 * a[:, 0], "shrub")  # mixed stands
    crowns = smooth_field(rng, n, size, _u(rng, n, 0.8, 1.8)[:, 0, 0])
    clearings = blobs(rng, n, size, _u(rng, n, 4, 10)[:, 0, 0], rng.uniform(0.0, 0.15, n))
    a = _paint(a, clearings, "grass")
    a = _paint(a, clearings * blobs(rng, n, size, 1.5, 0.3), "soil")
    shade = 1.0 - _u(rng, n, 0.08, 0.25) * np.clip(-crowns, 0, 2) * (1 - clearings)
    return a, shade


def permanent_crop(rng: np.random.Generator, n: int, size: int) -> Scene:
    label, boundary = parcels(rng, n, size, 2, 6)
    k = 6
    x, y = grid(size)
    kind = by_label(rng.choice(3, p=[0.45, 0.35, 0.2], size=(n, k)), label)  # orchard/vine/olive
    theta = by_label(rng.uniform(0, np.pi, (n, k)), label)
    spacing = by_label(rng.uniform(2.5, 6.0, (n, k)), label)
    radius = by_label(rng.uniform(0.25, 0.45, (n, k)), label) * spacing
    u, v = rotate(x, y, theta)
    du = np.mod(u, spacing) - spacing / 2
    dv = np.mod(v, spacing) - spacing / 2
    trees = np.clip(radius + 0.5 - np.sqrt(du ** 2 + dv ** 2), 0, 1)
    vines = stripes(u, spacing * 0.7, 0.0, by_label(rng.uniform(0.3, 0.6, (n, k)), label))
    canopy = np.select([kind == 0, kind == 1, kind == 2], [trees, vines, 0.7 * trees])
    ground = by_label(rng.choice(3, p=[0.5, 0.3, 0.2], size=(n, k)), label)  # grass/soil/dry
    a = _fill(n, size, "grass")
    a = _paint(a, (ground == 1).astype(float), "soil")
    a = _paint(a, (ground == 2).astype(float), "dry")
    a = _paint(a, canopy * (kind != 1), "forest")
    a = _paint(a, canopy * (kind == 1), "shrub")
    a = _paint(a, boundary * 0.8, "soil")
    return a, 1.0 - 0.15 * canopy


def rural(rng: np.random.Generator, n: int, size: int) -> Scene:
    """Countryside behind roads and rivers: a random mix of the vegetated scenes."""
    a = np.empty((n, N_MAT, size, size), dtype=np.float32)
    shade = np.empty((n, size, size))
    pick = rng.choice(4, p=[0.35, 0.3, 0.2, 0.15], size=n)
    for i, scene in enumerate((annual_crop, pasture, herbaceous, forest)):
        idx = np.flatnonzero(pick == i)
        if len(idx):
            a[idx], shade[idx] = scene(rng, len(idx), size)
    return a, shade


def highway(rng: np.random.Generator, n: int, size: int) -> Scene:
    a, shade = rural(rng, n, size)
    x, y = grid(size)
    for extra in (False, True):
        on = per_tile(rng.uniform(size=n) < (0.3 if extra else 1.0))
        u, v = rotate(x, y, _u(rng, n, 0, np.pi), _u(rng, n, 0.25 * size, 0.75 * size),
                      _u(rng, n, 0.25 * size, 0.75 * size))
        d = v - meander(u, rng, n, _u(rng, n, 0.0, 6.0), size)
        lane, median = _u(rng, n, 0.6, 1.6), _u(rng, n, 0.2, 0.8)
        road = np.maximum(soft_band(d - median - lane, lane), soft_band(d + median + lane, lane))
        verge = soft_band(d, median + 2 * lane + 2.0) * (1 - road)
        a = _paint(a, on * verge * 0.8, "grass")
        a = _paint(a, on * soft_band(d, median), "concrete")
        a = _paint(a, on * road, "asphalt")
    near = per_tile(rng.uniform(size=n) < 0.2)
    a = _paint(a, near * blobs(rng, n, size, 1.5, 0.05), "roof")
    return a, shade


def residential(rng: np.random.Generator, n: int, size: int) -> Scene:
    a = _fill(n, size, "grass")
    a = _paint(a, blobs(rng, n, size, 1.2, rng.uniform(0.05, 0.3, n)), "forest")  # garden trees
    x, y = grid(size)
    theta = _u(rng, n, 0, np.pi / 2)
    u, v = rotate(x, y, theta, _u(rng, n, 0, size), _u(rng, n, 0, size))
    block = _u(rng, n, 9, 16)
    width = _u(rng, n, 0.3, 0.8)
    cross = per_tile(rng.uniform(size=n) < 0.7)  # else parallel streets only
    streets = np.maximum(soft_band(np.mod(u, block) - block / 2, width),
                         cross * soft_band(np.mod(v, block) - block / 2, width))
    lot = _u(rng, n, 3.5, 6.0)
    house = lot * _u(rng, n, 0.4, 0.7)
    lu, lv = np.mod(u, lot) - lot / 2, np.mod(v, lot) - lot / 2
    footprint = (np.clip(house / 2 + 0.5 - np.abs(lu), 0, 1)
                 * np.clip(house / 2 + 0.5 - np.abs(lv), 0, 1))
    cell = cell_values(rng, n, np.floor(u / lot), np.floor(v / lot))
    density = _u(rng, n, 0.45, 0.95)
    built = footprint * (cell < density) * (1 - streets)
    roof_kind = cell_values(rng, n, np.floor(u / lot), np.floor(v / lot))
    tile_share = _u(rng, n, 0.3, 0.9)
    a = _paint(a, built * (roof_kind < tile_share), "tile")
    a = _paint(a, built * (roof_kind >= tile_share), "concrete")
    a = _paint(a, streets, "asphalt")
    return a, 1.0 - 0.2 * np.roll(built, 1, axis=2) * (1 - built)


def industrial(rng: np.random.Generator, n: int, size: int) -> Scene:
    a = _fill(n, size, "concrete")
    a = _paint(a, blobs(rng, n, size, 4.0, rng.uniform(0.2, 0.5, n)), "asphalt")
    a = _paint(a, blobs(rng, n, size, 3.0, rng.uniform(0.0, 0.2, n)), "grass")
    x, y = grid(size)
    theta = _u(rng, n, 0, np.pi / 2)
    shadow = np.zeros((n, size, size))
    for _ in range(5):
        on = per_tile(rng.uniform(size=n) < 0.8)
        u, v = rotate(x, y, theta, _u(rng, n, 0, size), _u(rng, n, 0, size))
        hu, hv = _u(rng, n, 3, 12), _u(rng, n, 3, 10)
        box = on * np.clip(hu + 0.5 - np.abs(u), 0, 1) * np.clip(hv + 0.5 - np.abs(v), 0, 1)
        kind = per_tile(rng.choice(4, p=[0.55, 0.25, 0.1, 0.1], size=n))
        for i, material in enumerate(("roof", "concrete", "asphalt", "tile")):
            a = _paint(a, box * (kind == i), material)
        shadow = np.maximum(shadow, np.roll(box, 2, axis=2) * (1 - box))
    return a, 1.0 - 0.35 * shadow


def river(rng: np.random.Generator, n: int, size: int) -> Scene:
    a, shade = rural(rng, n, size)
    x, y = grid(size)
    u, v = rotate(x, y, _u(rng, n, 0, np.pi), _u(rng, n, 0.3 * size, 0.7 * size),
                  _u(rng, n, 0.3 * size, 0.7 * size))
    d = v - meander(u, rng, n, _u(rng, n, 2.0, 14.0), size)
    half = _u(rng, n, 1.0, 5.0)
    water = soft_band(d, half)
    bank = soft_band(d, half + _u(rng, n, 0.5, 3.0)) * (1 - water)
    a = _paint(a, bank * per_tile(rng.uniform(size=n) < 0.7), "forest")
    a = _paint(a, water, "water")
    a = _paint(a, water * _u(rng, n, 0.0, 0.9), "turbid")
    a = _paint(a, water * blobs(rng, n, size, 2.0, 0.05), "soil")  # sand bars
    return a, shade


def sea_lake(rng: np.random.Generator, n: int, size: int) -> Scene:
    a = _fill(n, size, "water")
    turbidity = _u(rng, n, 0.0, 0.7) * (0.5 + 0.5 * np.tanh(smooth_field(rng, n, size, 12.0)))
    a = _paint(a, turbidity, "turbid")
    x, y = grid(size)
    u, v = rotate(x, y, _u(rng, n, 0, 2 * np.pi), size / 2, size / 2)
    edge = v - _u(rng, n, 0.1 * size, 0.5 * size) - meander(u, rng, n, _u(rng, n, 1, 6), size)
    land = (np.clip(edge + 0.5, 0, 1) * per_tile(rng.uniform(size=n) < 0.35)).astype(np.float32)
    land_a, _ = rural(rng, n, size)
    a = a * (1 - land[:, None]) + land_a * land[:, None]
    a = _paint(a, soft_band(edge, 1.0) * land.max(axis=(1, 2), keepdims=True) * 0.6, "soil")
    glint = 1.0 + _u(rng, n, 0.0, 0.3) * np.clip(smooth_field(rng, n, size, 1.0), 0, None) * 0.3
    return a, glint


SCENES: dict[str, Callable[[np.random.Generator, int, int], Scene]] = {
    "AnnualCrop": annual_crop, "Forest": forest, "HerbaceousVegetation": herbaceous,
    "Highway": highway, "Industrial": industrial, "Pasture": pasture,
    "PermanentCrop": permanent_crop, "Residential": residential, "River": river,
    "SeaLake": sea_lake,
}
