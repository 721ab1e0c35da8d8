"""Multi-band GeoTIFF decoding with tifffile, as a decoder for ``sslcore.data.image_files``.

:class:`GeoTiffDecoder` reads one file into ``(bands, H, W)`` float32 reflectance: band-last
(``H x W x bands``, the EuroSAT MS layout) and band-first (``bands x H x W``) files are both
accepted, told apart by which axis has the expected band count. Integer data are digital
numbers and are divided by ``scale`` (10000 for Sentinel-2 Level-1C/Level-2A, see
:mod:`~sslcore_satellite.bands`); float data are taken as reflectance already. Nodata values
(NaN) become 0. ``load_images`` adds resizing, caching and bad-file handling (a wrong band count
or a corrupt file is a ``DataError`` naming the file, or skipped with ``skip_bad_files``).

Example::

    from sslcore.sdk import load_images
    loaded = load_images(paths, size=64, channels=13, decoder=GeoTiffDecoder(bands=13))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslcore.sdk import DataError
from sslcore_satellite.bands import REFLECTANCE_SCALE

GEOTIFF_EXTENSIONS = (".tif", ".tiff")


class GeoTiffDecoder:
    """``path -> (bands, H, W)`` float32; picklable, with a stable ``cache_key``.

    Args:
        bands: expected band count (13 for Sentinel-2 in EuroSAT's layout).
        scale: divisor of integer digital numbers (reflectance = DN / scale).
    """

    def __init__(self, bands: int = 13, scale: float = REFLECTANCE_SCALE) -> None:
        self.bands = int(bands)
        self.scale = float(scale)
        self.cache_key = f"sslcore_satellite.GeoTiffDecoder(bands={self.bands},scale={self.scale})"

    def __call__(self, path: Path) -> np.ndarray:
        import tifffile

        arr = np.asarray(tifffile.imread(path))
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise DataError(f"has shape {arr.shape}; a multi-band GeoTIFF is (H, W, bands) or "
                            "(bands, H, W)")
        if arr.shape[-1] == self.bands and arr.shape[0] != self.bands:
            arr = np.moveaxis(arr, -1, 0)
        elif arr.shape[0] != self.bands:
            found = min(arr.shape[0], arr.shape[-1])
            raise DataError(f"has {found} band(s) (array shape {arr.shape}); expected "
                            f"{self.bands}. Check the dataset's bands setting, or remove the "
                            "file")
        if np.issubdtype(arr.dtype, np.integer):
            out = arr.astype(np.float32) / np.float32(self.scale)
        else:
            out = np.nan_to_num(arr.astype(np.float32), nan=0.0)
        return np.ascontiguousarray(out)
