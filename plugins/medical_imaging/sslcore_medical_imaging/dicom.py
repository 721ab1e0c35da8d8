"""DICOM radiographs -> ``(1, H, W)`` float32 in [0, 1], through pydicom.

The steps follow the DICOM grayscale pipeline (PS3.3 C.11):

1. Modality LUT: stored values -> physical values with RescaleSlope / RescaleIntercept (or a
   Modality LUT Sequence), ``pydicom.pixels.apply_modality_lut``.
2. VOI LUT: the window the acquisition chose (WindowCenter / WindowWidth with its
   VOILUTFunction, or a VOI LUT Sequence), ``pydicom.pixels.apply_voi_lut``, mapped to [0, 1].
   Files without a window get a robust min-max: the 0.5th and 99.5th percentiles -> 0 and 1.
3. MONOCHROME1 (bright = low value) is inverted, so bone is always bright, as in MONOCHROME2.

Multi-frame files are refused by default (``multi_frame="error"``: a chest radiograph is one
frame, several frames usually mean a wrong series); ``multi_frame="first"`` takes frame 0.
Colour DICOMs (RGB, YBR) return 3 channels, which the loader then reports as a channel
mismatch for grayscale data.

Errors are raised as :class:`~sslcore.errors.DataError` without the file name; the image
loader (:func:`sslcore.data.image_files.load_images`) adds it.

Example::

    decode = DicomDecoder()
    arr = decode(Path("study/IM0001.dcm"))      # (1, H, W) float32 in [0, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from sslcore.sdk import DataError

ROBUST_PERCENTILES = (0.5, 99.5)


class DicomDecoder:
    """A picklable ``path -> (C, H, W)`` decoder for :func:`load_images`.

    Args:
        multi_frame: ``"error"`` (default) or ``"first"`` (use the first frame).
    """

    def __init__(self, multi_frame: Literal["error", "first"] = "error") -> None:
        if multi_frame not in ("error", "first"):
            raise ValueError(f"multi_frame must be 'error' or 'first', got {multi_frame!r}")
        self.multi_frame = multi_frame

    @property
    def cache_key(self) -> str:
        """Identifies this decoder's output in the image cache."""
        return f"sslcore_medical_imaging.dicom.v1(multi_frame={self.multi_frame})"

    def __call__(self, path: Path) -> np.ndarray:
        import pydicom
        from pydicom.errors import InvalidDicomError
        from pydicom.pixels import apply_modality_lut, apply_voi_lut

        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError as exc:
            raise DataError(f"is not a DICOM file ({exc})") from exc
        if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise DataError("is a DICOM file without pixel data (no PixelData element): "
                            "probably a structured report or presentation state, not an image")
        arr = ds.pixel_array
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
        color = photometric not in ("MONOCHROME1", "MONOCHROME2")
        if frames > 1:
            if self.multi_frame == "error":
                raise DataError(f"has {frames} frames; a radiograph has one. Set "
                                "multi_frame: first to use the first frame")
            arr = arr[0]
        if color:  # (H, W, 3): no windowing for colour images, 8-bit scaled to 0..1
            out = np.moveaxis(np.asarray(arr, dtype=np.float32), -1, 0)
            bits = int(ds.get("BitsStored", 8) or 8)
            return out / np.float32(2 ** bits - 1)
        values = apply_modality_lut(np.asarray(arr), ds).astype(np.float64)
        out = _window(values, ds, apply_voi_lut)
        if photometric == "MONOCHROME1":
            out = 1.0 - out
        return out.astype(np.float32)[None]


def _window(values: np.ndarray, ds: object, apply_voi_lut: object) -> np.ndarray:
    """VOI LUT / window from the file, mapped to [0, 1]; robust min-max without one."""
    has_window = "WindowCenter" in ds and "WindowWidth" in ds  # type: ignore[operator]
    has_lut = "VOILUTSequence" in ds  # type: ignore[operator]
    if has_window or has_lut:
        # The output range of pydicom's VOI step depends on the bit depth and rescale; pushing
        # two extreme values through the same step gives its end points.
        ends = apply_voi_lut(np.array([-1e30, 1e30]), ds)  # type: ignore[operator]
        lo, hi = float(np.min(ends)), float(np.max(ends))
        windowed = apply_voi_lut(values, ds)  # type: ignore[operator]
        if hi > lo:
            return np.clip((windowed - lo) / (hi - lo), 0.0, 1.0)
    lo, hi = np.percentile(values, ROBUST_PERCENTILES)
    if hi <= lo:
        return np.zeros_like(values)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)
