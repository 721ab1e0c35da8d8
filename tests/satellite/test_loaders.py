"""Loaders on fixture files made here: 13-band GeoTIFFs (tifffile), EuroSAT RGB JPEG folders,
bad files (wrong band count, corrupt TIFF) with errors naming the file."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from sslcore.errors import DataError
from sslcore_satellite.geotiff import GeoTiffDecoder
from sslcore_satellite.loaders import (
    EuroSATParams,
    GeoTiffFoldersParams,
    eurosat_ms,
    eurosat_rgb,
    geotiff_folders,
)

CLASSES = ("Forest", "SeaLake", "Industrial")
PER_CLASS = 5


def _dn(rng: np.random.Generator, c: int, bands: int = 13) -> np.ndarray:
    """A (16, 16, bands) uint16 tile whose level depends on the class."""
    return (rng.integers(0, 200, size=(16, 16, bands)) + 1000 * (c + 1)).astype(np.uint16)


def write_ms_folders(root: Path, *, band_first: bool = False, per_class: int = PER_CLASS,
                     seed: int = 0) -> dict[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    written = {}
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = _dn(rng, c)
            path = root / name / f"{name}_{i}.tif"
            tifffile.imwrite(path, np.moveaxis(arr, -1, 0) if band_first else arr)
            written[path] = arr
    return written


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_geotiff_decoder_reads_band_last_and_band_first(tmp_path):
    arr = _dn(np.random.default_rng(0), 1)
    tifffile.imwrite(tmp_path / "hwc.tif", arr)
    tifffile.imwrite(tmp_path / "chw.tif", np.moveaxis(arr, -1, 0))
    tifffile.imwrite(tmp_path / "float.tif", np.moveaxis(arr, -1, 0).astype(np.float32) / 1e4)
    decode = GeoTiffDecoder(bands=13)
    expected = np.moveaxis(arr, -1, 0).astype(np.float32) / 10000
    for name in ("hwc.tif", "chw.tif", "float.tif"):
        out = decode(tmp_path / name)
        assert out.shape == (13, 16, 16) and out.dtype == np.float32
        assert np.allclose(out, expected, atol=1e-6), name


def test_eurosat_ms_loads_reflectance_with_a_stratified_test_split(tmp_path, cache):
    written = write_ms_folders(tmp_path / "ms")
    params = EuroSATParams(root=tmp_path / "ms", size=16, cache_dir=cache, test_fraction=0.4)
    data = eurosat_ms(params, seed=0)
    assert data.class_names == sorted(CLASSES)
    assert data.labeled_x.shape[1:] == (13, 16, 16) and data.test_x.shape[1:] == (13, 16, 16)
    assert np.bincount(data.test_y).tolist() == [2, 2, 2]
    assert len(data.labeled_y) + len(data.test_y) == len(CLASSES) * PER_CLASS
    assert data.unlabeled is data.labeled_x  # the pool is the labeled tiles, without labels
    # Values are DN / 10000; each class keeps its level.
    levels = {name: 0.1 * (CLASSES.index(name) + 1) for name in CLASSES}
    for x, y in ((data.labeled_x, data.labeled_y), (data.test_x, data.test_y)):
        for c, name in enumerate(data.class_names):
            assert abs(float(x[y == c].mean()) - levels[name] - 0.01) < 0.005
    first = next(iter(written.values()))
    assert first.max() / 10000 < 0.2 + 1e-3
    again = eurosat_ms(params, seed=0)  # from the cache, same split
    assert np.array_equal(again.test_x, data.test_x)
    other = eurosat_ms(params, seed=1)
    assert not np.array_equal(other.test_x, data.test_x)


def test_eurosat_rgb_jpeg_folders(tmp_path, cache):
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (tmp_path / "rgb" / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            img = np.full((16, 16, 3), 40 * (c + 1), dtype=np.uint8)
            img += rng.integers(0, 5, size=img.shape, dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / "rgb" / name / f"{name}_{i}.jpg", quality=95)
    data = eurosat_rgb(EuroSATParams(root=tmp_path / "rgb", size=16, cache_dir=cache),
                       seed=0)
    assert data.labeled_x.shape[1:] == (3, 16, 16)
    assert 0.0 <= data.labeled_x.min() and data.labeled_x.max() <= 1.0
    forest = data.class_names.index("Forest")
    assert abs(float(data.labeled_x[data.labeled_y == forest].mean()) - 42 / 255) < 0.03


def test_geotiff_folders_with_test_and_unlabeled_dirs(tmp_path, cache):
    write_ms_folders(tmp_path / "train", seed=0)
    write_ms_folders(tmp_path / "test", per_class=2, seed=1)
    (tmp_path / "unlabeled" / "a").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(4):
        tifffile.imwrite(tmp_path / "unlabeled" / "a" / f"u{i}.tif", _dn(rng, 0))
    params = GeoTiffFoldersParams(labeled_dir=tmp_path / "train", test_dir=tmp_path / "test",
                                  unlabeled_dir=tmp_path / "unlabeled", size=8,
                                  cache_dir=cache)
    data = geotiff_folders(params, seed=0)
    assert (len(data.unlabeled), len(data.labeled_y), len(data.test_y)) == (4, 15, 6)
    assert data.unlabeled.shape[1:] == (13, 8, 8)  # resized


def test_test_tile_in_unlabeled_dir_is_refused(tmp_path, cache):
    write_ms_folders(tmp_path / "train")
    write_ms_folders(tmp_path / "test", per_class=2, seed=1)
    params = GeoTiffFoldersParams(labeled_dir=tmp_path / "train", test_dir=tmp_path / "test",
                                  unlabeled_dir=tmp_path / "test", size=16, cache_dir=cache)
    with pytest.raises(DataError, match="test set never goes into pretraining"):
        geotiff_folders(params, seed=0)


def test_test_tile_copied_into_unlabeled_dir_is_dropped_and_reported(tmp_path, cache, caplog):
    write_ms_folders(tmp_path / "train")
    write_ms_folders(tmp_path / "test", per_class=2, seed=1)
    (tmp_path / "unlabeled").mkdir()
    rng = np.random.default_rng(2)
    for i in range(2):
        tifffile.imwrite(tmp_path / "unlabeled" / f"u{i}.tif", _dn(rng, 0))
    test_tile = tmp_path / "test" / "SeaLake" / "SeaLake_1.tif"
    copy = tmp_path / "unlabeled" / "renamed.tif"
    copy.write_bytes(test_tile.read_bytes())
    params = GeoTiffFoldersParams(labeled_dir=tmp_path / "train", test_dir=tmp_path / "test",
                                  unlabeled_dir=tmp_path / "unlabeled", size=16, cache_dir=cache)
    with caplog.at_level(logging.WARNING):
        data = geotiff_folders(params, seed=0)
    assert len(data.unlabeled) == 2
    assert data.notes["dropped.duplicates_of_test"] == 1
    assert data.dropped_files == [(str(copy), f"unlabeled: same bytes as test file {test_tile}")]
    assert "1 tile file(s) dropped as copies of test files" in caplog.text


def test_a_tile_filed_twice_never_sits_on_both_sides_of_the_split(tmp_path, cache):
    write_ms_folders(tmp_path / "ms")
    original = tmp_path / "ms" / "Forest" / "Forest_0.tif"
    twin = tmp_path / "ms" / "Industrial" / "Industrial_twin.tif"
    twin.write_bytes(original.read_bytes())
    outcomes = set()
    for seed in range(6):  # wherever the split puts the two copies, they are reported once
        data = eurosat_ms(EuroSATParams(root=tmp_path / "ms", size=16, cache_dir=cache,
                                        test_fraction=0.4), seed=seed)
        test_rows = {r.tobytes() for r in data.test_x}
        assert not any(r.tobytes() in test_rows for r in data.labeled_x)
        ((path, reason),) = data.dropped_files + data.duplicate_files
        assert path in (str(original), str(twin))
        outcomes.add(reason.split(" file ")[0])
    assert "labeled: same bytes as test" in outcomes  # the split did separate them once


@pytest.mark.parametrize("kind, reason", [
    ("wrong_bands", r"has 4 band\(s\).*expected 13"),
    ("corrupt", r"cannot be decoded"),
])
def test_bad_tiff_names_the_file_or_is_skipped(kind, reason, tmp_path, cache):
    write_ms_folders(tmp_path / "ms")
    bad = tmp_path / "ms" / "Forest" / "Forest_bad.tif"
    if kind == "wrong_bands":
        tifffile.imwrite(bad, _dn(np.random.default_rng(0), 0, bands=4))
    else:
        tifffile.imwrite(bad, _dn(np.random.default_rng(0), 0))
        bad.write_bytes(bad.read_bytes()[:300])  # truncated: header survives, data does not
    params = EuroSATParams(root=tmp_path / "ms", size=16, cache_dir=cache)
    with pytest.raises(DataError) as err:
        eurosat_ms(params, seed=0)
    assert str(bad) in str(err.value) and re.search(reason, str(err.value)), str(err.value)
    assert "skip_bad_files" in str(err.value)

    data = eurosat_ms(params.model_copy(update={"skip_bad_files": True}), seed=0)
    assert data.notes["skipped_files"] == 1
    assert [p for p, _ in data.skipped_files] == [str(bad)]
    assert len(data.labeled_y) + len(data.test_y) == len(CLASSES) * PER_CLASS


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nowhere"))):
        eurosat_ms(EuroSATParams(root=tmp_path / "nowhere"), seed=0)
