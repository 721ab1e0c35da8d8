"""File loaders: EuroSAT RGB (JPEG), EuroSAT MS (13-band GeoTIFF) and generic GeoTIFF folders.

All use the core's image-folder loader (scan, decode, resize, cache, bad files, test copies) with
PIL for JPEG and :class:`~sslcore_satellite.geotiff.GeoTiffDecoder` for GeoTIFF. Scales: RGB
JPEGs are 8-bit, so 0..1 after /255; GeoTIFF digital numbers are reflectance x 10000, so
/10000 (``scale``) gives reflectance, the synthetic tiles' scale. Per-band normalization is
the backbone's (fitted on the unlabeled pool).

Splits. EuroSAT ships one folder per class and no test split: a stratified ``test_fraction``
is held out (deterministic by the experiment's seed); the remaining tiles are the labeled pool,
and, without their labels, the unlabeled pool (the standard SSL protocol: pretrain on the
training images, label a fraction of them). ``unlabeled_dir`` adds a folder of unlabeled tiles
instead. The test tiles never enter the unlabeled pool or the labeled pool: the core's
``load_image_folders`` (``sslcore.sdk``) drops a file that copies a test tile (same bytes, or
same pixels after decoding), counts it in the data card (``dropped.duplicates_of_test``) and
lists it in ``dropped_files``; repeats within a split are reported.

Layouts::

    EuroSAT RGB:  <root>/<Class>/<Class>_<n>.jpg          (64 x 64, 3 bands)
    EuroSAT MS:   <root>/<Class>/<Class>_<n>.tif          (64 x 64 x 13, uint16)
    geotiff_folders: <labeled_dir>/<class>/*.tif [+ <test_dir>/<class>/*.tif]
                     [+ <unlabeled_dir>/**/*.tif]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sslcore.sdk import DataError, ImageFolderData, SSLData
from sslcore_satellite.bands import N_BANDS, REFLECTANCE_SCALE
from sslcore_satellite.geotiff import GEOTIFF_EXTENSIONS, GeoTiffDecoder

JPEG_EXTENSIONS = (".jpg", ".jpeg", ".png")


class _FolderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(64, ge=8, le=1024, description="tiles are resized to size x size")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="stratified held-out share "
                                 "when there is no test folder")
    unlabeled_dir: Path | None = Field(None, description="folder of unlabeled tiles "
                                       "(recursive); None: the labeled pool's tiles")
    cache_dir: Path | None = Field(None, description="decoded-array cache; None: "
                                   "$SSLCORE_CACHE_DIR or ~/.cache/sslcore/images")
    cache: bool = Field(True, description="cache decoded tiles (decode once)")
    skip_bad_files: bool = Field(False, description="skip unreadable files or files with a "
                                 "wrong band count instead of failing")
    max_per_class: int | None = Field(None, ge=2, description="use at most this many tiles "
                                      "per class (a seeded subsample), for quick runs")


class EuroSATParams(_FolderParams):
    root: Path = Field(description="folder with one subfolder per class (e.g. EuroSAT/2750 "
                       "or EuroSAT_MS)")


class GeoTiffFoldersParams(_FolderParams):
    labeled_dir: Path = Field(description="<labeled_dir>/<class>/*.tif")
    test_dir: Path | None = Field(None, description="<test_dir>/<class>/*.tif; None: "
                                  "test_fraction of labeled_dir is held out")
    bands: int = Field(N_BANDS, ge=1, description="bands every file must have")
    scale: float = Field(REFLECTANCE_SCALE, gt=0, description="integer values are divided "
                         "by this (10000: Sentinel-2 digital numbers -> reflectance)")


def _subsample(paths: list[Path], y: np.ndarray, cap: int | None,
               rng: np.random.Generator) -> tuple[list[Path], np.ndarray]:
    if cap is None:
        return paths, y
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:cap]
                                   for c in np.unique(y)]))
    return [paths[i] for i in keep], y[keep]


def _split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, test) indices; every class keeps at least one tile on each side."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x7E57]))
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) < 2:
            raise DataError(f"class {c} has {len(idx)} tile(s); holding out a test set needs "
                            "at least 2 per class (or give a test_dir)")
        k = min(max(1, round(test_fraction * len(idx))), len(idx) - 1)
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_folders(params: _FolderParams, *, labeled_dir: Path, test_dir: Path | None,
                 channels: int, decoder: Any, extensions: tuple[str, ...], seed: int,
                 source: str) -> ImageFolderData:
    """Class folders (+ optional test and unlabeled folders) -> validated ``ImageFolderData``.

    Raises:
        DataError: missing folders, class folders that differ between labeled and test, a bad
            file (unless ``skip_bad_files``), or a test tile inside ``unlabeled_dir``.
    """
    from sslcore.sdk import LabeledFiles, default_cache_dir, load_image_folders, scan_class_folders

    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0xCA9]))
    paths, y, names = scan_class_folders(labeled_dir, extensions)
    paths, y = _subsample(paths, y, params.max_per_class, rng)
    if test_dir is None:
        tr, te = _split(y, params.test_fraction, seed)
        test_paths, test_y = [paths[i] for i in te], y[te]
        paths, y = [paths[i] for i in tr], y[tr]
    else:
        test_paths, test_y, test_names = scan_class_folders(test_dir, extensions)
        if test_names != names:
            raise DataError(f"{test_dir} has class folders {test_names} but {labeled_dir} has "
                            f"{names}; both need the same classes")
        test_paths, test_y = _subsample(test_paths, test_y, params.max_per_class, rng)
    scale = ("8-bit / 255" if channels == 3 and decoder is None else
             f"DN / {getattr(decoder, 'scale', REFLECTANCE_SCALE):g}")
    return load_image_folders(
        LabeledFiles(paths, y), LabeledFiles(test_paths, test_y), params.unlabeled_dir,
        size=params.size, channels=channels, class_names=names, source=source, decoder=decoder,
        cache_dir=(params.cache_dir or default_cache_dir()) if params.cache else None,
        skip_bad_files=params.skip_bad_files, extensions=extensions, noun="tile",
        notes={"tile_size": params.size, "reflectance_scale": scale})


def eurosat_rgb(params: EuroSATParams, *, seed: int) -> SSLData:
    """EuroSAT RGB: ``<root>/<Class>/*.jpg``, 3 bands on a 0..1 scale."""
    return load_folders(params, labeled_dir=params.root, test_dir=None, channels=3,
                        decoder=None, extensions=JPEG_EXTENSIONS, seed=seed,
                        source=f"eurosat_rgb:{params.root}")


def eurosat_ms(params: EuroSATParams, *, seed: int) -> SSLData:
    """EuroSAT MS: ``<root>/<Class>/*.tif``, 13 bands, reflectance (DN / 10000)."""
    return load_folders(params, labeled_dir=params.root, test_dir=None, channels=N_BANDS,
                        decoder=GeoTiffDecoder(N_BANDS, REFLECTANCE_SCALE),
                        extensions=GEOTIFF_EXTENSIONS, seed=seed,
                        source=f"eurosat_ms:{params.root}")


def geotiff_folders(params: GeoTiffFoldersParams, *, seed: int) -> SSLData:
    """Any multi-band GeoTIFF tiles in class folders, with optional test and unlabeled folders."""
    return load_folders(params, labeled_dir=params.labeled_dir, test_dir=params.test_dir,
                        channels=params.bands, decoder=GeoTiffDecoder(params.bands, params.scale),
                        extensions=GEOTIFF_EXTENSIONS, seed=seed,
                        source=f"geotiff_folders:{params.labeled_dir}")
