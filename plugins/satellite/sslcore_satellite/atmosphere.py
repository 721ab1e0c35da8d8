"""From surface reflectance to what a Sentinel-2 Level-1C tile records, for n tiles at once.

The acquisition effects that make real tiles of one class differ, applied per tile:

- illumination: a gain for sun elevation and season;
- atmosphere: Rayleigh and aerosol path reflectance added (strongest in the blue, falling with
  wavelength, so haze brightens B01/B02 and flattens contrast) and the matching transmission
  loss; water-vapour absorption in B09 and near-total absorption of surface signal in B10 (the
  cirrus band), which therefore mostly shows cirrus;
- clouds: opaque patches (with their shadows, offset by the sun angle) and thin cirrus veils;
- sensor: every band is blurred by the optics, the 20 m and 60 m bands further to their
  coarser resolution (they are resampled onto the 10 m grid), noise grows with signal, and
  values are quantized to L1C digital numbers (1e-4 reflectance).
"""

from __future__ import annotations

import numpy as np

from sslcore_satellite.bands import BAND, RESOLUTION_M, WAVELENGTHS
from sslcore_satellite.spectra import CIRRUS, CLOUD
from sslcore_satellite.textures import blobs, per_tile, smooth_field

_RAYLEIGH = (443.0 / WAVELENGTHS) ** 4
_AEROSOL = (443.0 / WAVELENGTHS) ** 1.3
# Gaussian blur (pixels on the 10 m grid): the optics' point spread (0.45 px) combined with each
# band's coarser sampling for the 20 m and 60 m bands.
_BLUR_PX = np.sqrt(0.45 ** 2 + np.where(RESOLUTION_M == 60, 2.2, np.where(RESOLUTION_M == 20,
                                                                          0.8, 0.0)) ** 2)


def _blur_bands(x: np.ndarray) -> np.ndarray:
    """Blur each band by its resolution (FFT Gaussian, periodic edges; tiles are tiny)."""
    import scipy.fft

    size = x.shape[-1]
    f2 = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2
    out = np.empty_like(x)
    for sigma in np.unique(_BLUR_PX):
        bands = np.flatnonzero(_BLUR_PX == sigma)
        kernel = np.exp(-2.0 * np.pi ** 2 * sigma ** 2 * f2).astype(np.float32)
        out[:, bands] = scipy.fft.irfft2(scipy.fft.rfft2(x[:, bands]) * kernel, s=(size, size))
    return out


def observe(rng: np.random.Generator, surface: np.ndarray, *, cloud_rate: float = 0.15,
            haze: float = 1.0, illumination: float = 1.0) -> np.ndarray:
    """Top-of-atmosphere reflectance ``(n, 13, H, W)`` of surface reflectance ``surface``.

    Args:
        cloud_rate: share of tiles with opaque cloud patches (a similar share get cirrus).
        haze: scales aerosol optical depth (0 removes aerosol haze).
        illumination: scales the sun-elevation gain (another season or latitude).
    """
    n, _, size, _ = surface.shape
    gain = rng.uniform(0.8, 1.15, n)[:, None]
    if illumination != 1.0:
        gain = gain * illumination
    tau = haze * rng.gamma(2.0, 0.06, n)[:, None]  # aerosol optical depth at 443 nm
    transmission = np.exp(-(0.12 * _RAYLEIGH[None] + 0.6 * tau * _AEROSOL[None]))
    path = 0.075 * _RAYLEIGH[None] + 0.25 * tau * _AEROSOL[None]
    scale, offset = (v.astype(np.float32)[..., None, None] for v in (gain * transmission,
                                                                       gain * path))
    toa = surface.astype(np.float32, copy=False) * scale + offset
    gain = gain[..., None, None].astype(np.float32)
    toa[:, BAND["B09"]] *= rng.uniform(0.2, 0.5, n)[:, None, None]  # water vapour
    toa[:, BAND["B10"]] = 0.03 * toa[:, BAND["B10"]] + 0.002  # cirrus band: surface absorbed

    cloudy = rng.uniform(size=n) < cloud_rate
    if cloudy.any():
        k = int(cloudy.sum())
        cover = blobs(rng, k, size, rng.uniform(3, 10, k), rng.uniform(0.05, 0.6, k), 0.4)
        cover *= per_tile(rng.uniform(0.5, 1.0, k))
        dx, dy = rng.integers(-6, 7, size=2)
        shadow = np.roll(cover, (int(dy), int(dx)), axis=(1, 2)) * (1 - cover)
        sub = toa[cloudy] * (1 - 0.55 * shadow[:, None])
        toa[cloudy] = sub * (1 - cover[:, None]) + cover[:, None] * CLOUD[None, :, None, None] \
            * gain[cloudy]
    cirrus = rng.uniform(size=n) < cloud_rate
    if cirrus.any():
        k = int(cirrus.sum())
        veil = per_tile(rng.uniform(0.1, 0.8, k)) * (0.5 + 0.5 * np.tanh(
            smooth_field(rng, k, size, 12.0)))
        toa[cirrus] += (veil[:, None] * CIRRUS[None, :, None, None]).astype(np.float32)

    toa = _blur_bands(toa)
    import torch  # its Gaussian sampler is ~3x numpy's; seeded from rng, so still deterministic

    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    noise = torch.randn(toa.shape, generator=gen, dtype=torch.float32).numpy()
    toa += noise * (0.0015 + np.clip(toa, 0, None) / 200)
    return np.clip(np.round(toa * 1e4) / 1e4, 0.0, 1.6, out=toa)
