"""Dataset factories of the medical_imaging vertical; each returns a validated SSLData.

Images are float32 ``N x 1 x size x size`` on a 0..1 scale (8-bit files / 255, DICOM after
its window); normalization is the backbone's job. File loaders decode once and cache the
resized array (see :mod:`sslcore.data.image_files`; default cache directory
``~/.cache/sslcore/images``, or ``$SSLCORE_CACHE_DIR``).

The test set never reaches the unlabeled pool: when no ``unlabeled_dir`` is given, the
labeled pool's own images (without their labels) are the unlabeled pool. The core's
``load_image_folders`` (``sslcore.sdk``) decodes the splits and drops labeled and unlabeled
files that copy a test file (same bytes, or same pixels after decoding), counted in the data
card (``dropped.duplicates_of_test``) and listed in ``ImageSSLData.dropped_files``; repeats
within a split are reported, bad files fail or are skipped (``skip_bad_files``).

:data:`DATASETS` is registered in a loop by ``plugin.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sslcore.sdk import DataError, ImageFolderData, SSLData
from sslcore_medical_imaging.sites import AcquisitionSite

KERMANY_CLASSES = ["NORMAL", "PNEUMONIA"]

# SSLData plus the files a loader skipped or dropped (``(path, reason)``), for the artifacts.
ImageSSLData = ImageFolderData


# ----------------------------------------------------------------------------- params

class SyntheticParams(BaseModel):
    """Synthetic chest radiographs (see :mod:`sslcore_medical_imaging.synthetic`)."""

    model_config = ConfigDict(extra="forbid")

    n_unlabeled: int = Field(8000, ge=8, description="images in the unlabeled pool")
    n_labeled: int = Field(2000, ge=8, description="images in the labeled pool")
    n_test: int = Field(2000, ge=8, description="held-out test images")
    size: int = Field(64, ge=16, le=512, description="image side in pixels (64 or 128)")
    prevalence: float = Field(0.3, gt=0.0, lt=1.0, description="share of images with "
                              "pneumonia (Kermany's training set: 0.74; clinical populations "
                              "are lower)")
    site: AcquisitionSite = Field(default_factory=AcquisitionSite, description="the "
                                  "acquisition site (dose, blur, LUT, native matrix, "
                                  "collimation, scanner mix); the defaults are the built-in "
                                  "site, a shifted domain overrides some (see sites.py)")


class _FileParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(64, ge=16, le=1024, description="images are resized to size x size")
    cache_dir: Path | None = Field(None, description="decoded-array cache; None: "
                                   "$SSLCORE_CACHE_DIR or ~/.cache/sslcore/images")
    cache: bool = Field(True, description="cache decoded images (decode once)")
    skip_bad_files: bool = Field(False, description="skip unreadable files instead of failing; "
                                 "they are counted in the data card and listed in "
                                 "skipped_files.txt")
    unlabeled_dir: Path | None = Field(None, description="folder of unlabeled images "
                                       "(recursive); None: the labeled pool's images, "
                                       "without labels")


class KermanyParams(_FileParams):
    """The public Kermany et al. layout: ``<root>/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``."""

    root: Path


class ImageFoldersParams(_FileParams):
    """Class-per-folder images: ``<labeled_dir>/<class>/...`` and ``<test_dir>/<class>/...``."""

    labeled_dir: Path
    test_dir: Path
    channels: Literal[1, 3] = Field(1, description="1 for radiographs, 3 for RGB images")
    class_names: list[str] | None = Field(None, description="class order (label 0, 1, ...); "
                                          "None: sorted folder names. The last class of a "
                                          "binary task is the positive one")


class DicomFoldersParams(_FileParams):
    """Class-per-folder DICOM files (``*.dcm``), like ``image_folders``."""

    labeled_dir: Path
    test_dir: Path
    class_names: list[str] | None = None
    multi_frame: Literal["error", "first"] = Field("error", description="multi-frame files: "
                                                   "refuse, or use the first frame")


# ----------------------------------------------------------------------------- factories

def medical_synthetic(params: SyntheticParams, *, seed: int) -> SSLData:
    """Synthetic radiographs: one i.i.d. population split into unlabeled / labeled / test."""
    from sslcore_medical_imaging.synthetic import PATTERNS, generate_radiographs

    n_u, n_l, n_t = params.n_unlabeled, params.n_labeled, params.n_test
    x, y, meta = generate_radiographs(n_u + n_l + n_t, size=params.size,
                                      prevalence=params.prevalence, seed=seed, site=params.site)
    lab, test = slice(n_u, n_u + n_l), slice(n_u + n_l, None)
    source = (f"synthetic radiographs(n={n_u + n_l + n_t}, size={params.size}, "
              f"prevalence={params.prevalence}, seed={seed}"
              + ("" if params.site.is_default() else f", site: {params.site.describe()}") + ")")
    notes = {"patterns_test": {PATTERNS[i]: int(c) for i, c in
                               enumerate(np.bincount(meta["pattern"][test], minlength=4))},
             "prevalence_unlabeled_hidden": round(float(y[:n_u].mean()), 4)}
    return SSLData(unlabeled=x[:n_u], labeled_x=x[lab], labeled_y=y[lab], test_x=x[test],
                   test_y=y[test], sources=[source], class_names=list(KERMANY_CLASSES),
                   notes=notes, test_meta={k: v[test] for k, v in meta.items()}).validate()


def kermany(params: KermanyParams, *, seed: int) -> SSLData:
    """train (+ val when present) -> labeled pool; test -> test set."""
    root = params.root.expanduser()
    if not root.is_dir():
        raise DataError(f"kermany root {root} does not exist; expected "
                        f"{root}/train/NORMAL/*.jpeg, {root}/train/PNEUMONIA/*.jpeg, "
                        f"{root}/test/... (dataset.params.root)")
    splits = [root / "train"] + ([root / "val"] if (root / "val").is_dir() else [])
    for needed in (root / "train", root / "test"):
        if not needed.is_dir():
            raise DataError(f"{needed} is missing: the Kermany layout is "
                            f"<root>/{{train,val,test}}/{{NORMAL,PNEUMONIA}}/*.jpeg")
    return _from_folders(params, splits, root / "test", channels=1, decoder=None,
                         class_names=KERMANY_CLASSES, source=f"kermany:{root}")


def image_folders(params: ImageFoldersParams, *, seed: int) -> SSLData:
    """Class-per-folder labeled and test images (JPEG/PNG/BMP/TIFF), optional unlabeled folder."""
    return _from_folders(params, [params.labeled_dir], params.test_dir,
                         channels=params.channels, decoder=None,
                         class_names=params.class_names, source=f"image_folders:"
                         f"{params.labeled_dir}")


def dicom_folders(params: DicomFoldersParams, *, seed: int) -> SSLData:
    """Class-per-folder DICOM radiographs (rescale, window, MONOCHROME1 inversion)."""
    from sslcore_medical_imaging.dicom import DicomDecoder

    return _from_folders(params, [params.labeled_dir], params.test_dir, channels=1,
                         decoder=DicomDecoder(params.multi_frame), class_names=params.class_names,
                         source=f"dicom_folders:{params.labeled_dir}", extensions=(".dcm",))


# ----------------------------------------------------------------------------- assembly

def _scan_labeled(dirs: list[Path], class_names: list[str] | None,
                  extensions: tuple[str, ...]) -> tuple[list[Path], np.ndarray, list[str]]:
    from sslcore.sdk import scan_class_folders

    paths: list[Path] = []
    labels: list[np.ndarray] = []
    names: list[str] | None = None
    for d in dirs:
        p, y, found = scan_class_folders(d, extensions)
        wanted = class_names or found
        if sorted(found) != sorted(wanted):
            raise DataError(f"{d} has class folders {found}, expected {list(wanted)}; "
                            "every split needs the same class folders")
        if names is not None and names != list(wanted):
            raise DataError(f"{d} has class folders {found}, but {dirs[0]} has {names}")
        names = list(wanted)
        remap = np.array([names.index(c) for c in found])  # sorted folders -> wanted order
        paths += p
        labels.append(remap[y])
    assert names is not None
    return paths, np.concatenate(labels), names


def _from_folders(params: Any, labeled_dirs: list[Path], test_dir: Path, *, channels: int,
                  decoder: Callable[[Path], np.ndarray] | None, class_names: list[str] | None,
                  source: str, extensions: tuple[str, ...] | None = None) -> SSLData:
    from sslcore.sdk import IMAGE_EXTENSIONS, LabeledFiles, default_cache_dir, load_image_folders

    ext = extensions or IMAGE_EXTENSIONS
    lab_paths, lab_y, names = _scan_labeled(labeled_dirs, class_names, ext)
    test_paths, test_y, _ = _scan_labeled([test_dir], names, ext)
    return load_image_folders(
        LabeledFiles(lab_paths, lab_y), LabeledFiles(test_paths, test_y), params.unlabeled_dir,
        size=params.size, channels=channels, class_names=names, source=source, decoder=decoder,
        cache_dir=(params.cache_dir or default_cache_dir()) if params.cache else None,
        skip_bad_files=params.skip_bad_files, extensions=ext, noun="image",
        notes={"image_size": params.size})


DATASETS: dict[str, tuple[Callable[..., SSLData], type[BaseModel], str]] = {
    "medical_synthetic": (medical_synthetic, SyntheticParams,
                          "synthetic chest radiographs (anatomy, scanners, lobar / patchy / "
                          "interstitial pneumonia), deterministic by seed"),
    "kermany": (kermany, KermanyParams,
                "Kermany chest X-ray layout <root>/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg"),
    "image_folders": (image_folders, ImageFoldersParams,
                      "class-per-folder images (JPEG/PNG/BMP/TIFF) for labeled and test, "
                      "optional unlabeled folder"),
    "dicom_folders": (dicom_folders, DicomFoldersParams,
                      "class-per-folder DICOM radiographs via pydicom (rescale, window, "
                      "MONOCHROME1), optional unlabeled folder"),
}
