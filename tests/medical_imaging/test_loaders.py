"""The radiograph loaders on tiny fixture folders: Kermany JPEGs, class folders, DICOM."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslcore.errors import DataError
from sslcore_medical_imaging.datasets import (
    DicomFoldersParams,
    ImageFoldersParams,
    KermanyParams,
    dicom_folders,
    image_folders,
    kermany,
)
from sslcore_medical_imaging.dicom import DicomDecoder

SIZE = 16


def jpeg(path: Path, seed: int, shape: tuple[int, int] = (40, 36)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr).save(path, format="JPEG")
    return path


def kermany_tree(root: Path, counts: dict[str, tuple[int, int]] | None = None) -> Path:
    """``root/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg`` with (normal, pneumonia) counts."""
    counts = counts or {"train": (3, 5), "val": (1, 1), "test": (2, 3)}
    seed = 0
    for split, (n_norm, n_pneu) in counts.items():
        for cls, n in (("NORMAL", n_norm), ("PNEUMONIA", n_pneu)):
            for i in range(n):
                seed += 1
                jpeg(root / split / cls / f"{cls.lower()}_{i}.jpeg", seed, (30 + seed % 7, 36))
    return root


def params(cls, tmp_path: Path, **kw):  # type: ignore[no-untyped-def]
    return cls(size=SIZE, cache_dir=tmp_path / "cache", **kw)


# ----------------------------------------------------------------------------- kermany

def test_kermany_train_and_val_form_the_labeled_pool(tmp_path: Path) -> None:
    root = kermany_tree(tmp_path / "chest_xray")
    data = kermany(params(KermanyParams, tmp_path, root=root), seed=0)
    assert data.class_names == ["NORMAL", "PNEUMONIA"]
    assert data.labeled_x.shape == (10, 1, SIZE, SIZE) and data.labeled_x.dtype == np.float32
    assert np.bincount(data.labeled_y).tolist() == [4, 6]
    assert np.bincount(data.test_y).tolist() == [2, 3]
    # no unlabeled_dir: the labeled images (never the test images) are the unlabeled pool
    np.testing.assert_array_equal(data.unlabeled, data.labeled_x)
    assert "without labels" in data.notes["unlabeled_source"]
    assert data.notes["skipped_files"] == 0


def test_kermany_with_unlabeled_folder_and_cache(tmp_path: Path) -> None:
    root = kermany_tree(tmp_path / "chest_xray")
    for i in range(4):
        jpeg(tmp_path / "unlabeled" / "batch1" / f"u{i}.jpeg", 100 + i)
    p = params(KermanyParams, tmp_path, root=root, unlabeled_dir=tmp_path / "unlabeled")
    data = kermany(p, seed=0)
    assert data.unlabeled.shape == (4, 1, SIZE, SIZE)
    cached = sorted((tmp_path / "cache").glob("images-*.npz"))
    assert len(cached) == 3  # labeled, test, unlabeled
    again = kermany(p, seed=0)
    np.testing.assert_array_equal(again.unlabeled, data.unlabeled)
    assert sorted((tmp_path / "cache").glob("images-*.npz")) == cached


def test_kermany_missing_test_split(tmp_path: Path) -> None:
    root = kermany_tree(tmp_path / "cx", {"train": (2, 2)})
    with pytest.raises(DataError, match=r"cx/test is missing"):
        kermany(params(KermanyParams, tmp_path, root=root), seed=0)


def test_kermany_wrong_class_folders(tmp_path: Path) -> None:
    root = kermany_tree(tmp_path / "cx")
    jpeg(root / "test" / "COVID" / "c.jpeg", 1)
    with pytest.raises(DataError, match=r"cx/test has class folders .*COVID.*expected"):
        kermany(params(KermanyParams, tmp_path, root=root), seed=0)


def test_unlabeled_dir_holding_the_test_set_is_refused(tmp_path: Path) -> None:
    root = kermany_tree(tmp_path / "cx")
    p = params(KermanyParams, tmp_path, root=root, unlabeled_dir=root)
    with pytest.raises(DataError, match=r"contains test images .*never goes into pretraining"):
        kermany(p, seed=0)


def test_test_image_copied_into_unlabeled_dir_is_dropped_and_reported(tmp_path: Path,
                                                                      caplog) -> None:
    root = kermany_tree(tmp_path / "cx")
    test_file = sorted((root / "test" / "NORMAL").iterdir())[0]
    copy = tmp_path / "u" / "copy.jpeg"
    copy.parent.mkdir()
    copy.write_bytes(test_file.read_bytes())
    jpeg(tmp_path / "u" / "other.jpeg", 999)
    with caplog.at_level(logging.WARNING):
        data = kermany(params(KermanyParams, tmp_path, root=root, unlabeled_dir=tmp_path / "u"),
                       seed=0)
    assert len(data.unlabeled) == 1
    assert data.notes["dropped.duplicates_of_test"] == 1
    assert data.dropped_files == [(str(copy), f"unlabeled: same bytes as test file {test_file}")]
    assert "dropped as copies of test files" in caplog.text and str(copy) in caplog.text


def test_test_dicom_exported_again_into_unlabeled_dir_is_dropped(tmp_path: Path,
                                                                  dicom_file) -> None:
    root = dicom_tree(tmp_path / "dcm", dicom_file)
    # The same pixels under new UIDs (a re-export): other bytes, so caught after decoding.
    pixels = np.random.default_rng(7).integers(0, 4000, (20, 20)).astype(np.uint16)
    test_file = dicom_file(root / "test" / "normal" / "extra.dcm", pixels)
    again = dicom_file(tmp_path / "archive" / "reexport.dcm", pixels)
    dicom_file(tmp_path / "archive" / "other.dcm", pixels[::-1])
    assert again.read_bytes() != test_file.read_bytes()
    p = params(DicomFoldersParams, tmp_path, labeled_dir=root / "lab", test_dir=root / "test",
               unlabeled_dir=tmp_path / "archive")
    data = dicom_folders(p, seed=0)
    assert len(data.unlabeled) == 1 and data.notes["dropped.duplicates_of_test"] == 1
    assert data.dropped_files == [(str(again), f"unlabeled: same pixels as test file "
                                               f"{test_file} after decoding")]


# ----------------------------------------------------------------------------- bad files

def test_bad_jpeg_names_the_file_or_is_skipped_and_listed(tmp_path: Path) -> None:
    root = kermany_tree(tmp_path / "cx")
    bad = root / "train" / "PNEUMONIA" / "broken.jpeg"
    bad.write_bytes(jpeg(tmp_path / "ok.jpeg", 5).read_bytes()[:200])  # truncated
    with pytest.raises(DataError, match=re.escape(str(bad))):
        kermany(params(KermanyParams, tmp_path, root=root), seed=0)
    data = kermany(params(KermanyParams, tmp_path, root=root, skip_bad_files=True), seed=0)
    assert data.notes["skipped_files"] == 1
    assert [p for p, _ in data.skipped_files] == [str(bad)]
    assert np.bincount(data.labeled_y).tolist() == [4, 6]  # labels follow the kept files


def test_mixed_channels_error_then_skip(tmp_path: Path) -> None:
    root = kermany_tree(tmp_path / "cx")
    colour = root / "test" / "NORMAL" / "colour.png"
    rgb = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(colour)
    with pytest.raises(DataError, match=rf"{re.escape(str(colour))}: has 3 channel"):
        kermany(params(KermanyParams, tmp_path, root=root), seed=0)
    data = kermany(params(KermanyParams, tmp_path, root=root, skip_bad_files=True), seed=0)
    assert [p for p, _ in data.skipped_files] == [str(colour)]


# ----------------------------------------------------------------------------- image_folders

def test_image_folders_with_class_order_and_rgb(tmp_path: Path) -> None:
    for s, (split, n) in enumerate((("lab", 4), ("test", 3))):
        for c, cls in enumerate(("sick", "healthy")):
            for i in range(n):
                rng = np.random.default_rng(100 * s + 10 * c + i)  # distinct images
                arr = rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)
                (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(tmp_path / split / cls / f"{i}.png")
    p = params(ImageFoldersParams, tmp_path, labeled_dir=tmp_path / "lab",
               test_dir=tmp_path / "test", channels=3)
    data = image_folders(p, seed=0)
    assert data.labeled_x.shape == (8, 3, SIZE, SIZE)
    assert data.class_names == ["healthy", "sick"]  # sorted folder names by default
    assert data.labeled_y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    reordered = image_folders(p.model_copy(update={"class_names": ["sick", "healthy"]}), seed=0)
    assert reordered.class_names == ["sick", "healthy"]
    assert reordered.labeled_y.tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    np.testing.assert_array_equal(reordered.labeled_x, data.labeled_x)


def test_image_folders_without_class_folders(tmp_path: Path) -> None:
    jpeg(tmp_path / "lab" / "a.jpeg", 1)
    jpeg(tmp_path / "test" / "x" / "b.jpeg", 2)
    p = params(ImageFoldersParams, tmp_path, labeled_dir=tmp_path / "lab",
               test_dir=tmp_path / "test")
    with pytest.raises(DataError, match=r"lab has no class folders"):
        image_folders(p, seed=0)


# ----------------------------------------------------------------------------- DICOM

GRADIENT = (np.arange(16 * 16).reshape(16, 16) * 10).astype(np.uint16)  # 0 .. 2550


def test_dicom_decoder_rescale_window_and_inversion(tmp_path: Path, dicom_file) -> None:
    decode = DicomDecoder()
    plain = decode(dicom_file(tmp_path / "a.dcm", GRADIENT))
    assert plain.shape == (1, 16, 16) and plain.dtype == np.float32
    assert plain[0, 0, 0] == 0.0 and plain[0, -1, -1] == 1.0  # robust min-max
    inverted = decode(dicom_file(tmp_path / "b.dcm", GRADIENT, photometric="MONOCHROME1"))
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-6)
    # stored 500 -> 2 * 500 - 100 = 900 HU-like units; window 1000 / 1000 (DICOM LINEAR)
    windowed = decode(dicom_file(tmp_path / "c.dcm", GRADIENT, slope=2.0, intercept=-100.0,
                                  window=(1000.0, 1000.0)))
    expected = (900 - 999.5) / 999 + 0.5
    assert windowed[0, 3, 2] == pytest.approx(expected, abs=1e-5)  # pixel 50 holds 500
    assert windowed[0, 0, 0] == 0.0 and windowed[0, -1, -1] == 1.0


def test_dicom_without_pixel_data_and_not_dicom(tmp_path: Path, dicom_file) -> None:
    decode = DicomDecoder()
    with pytest.raises(DataError, match="without pixel data"):
        decode(dicom_file(tmp_path / "sr.dcm", GRADIENT, pixel_data=False))
    (tmp_path / "x.dcm").write_text("not a dicom")
    with pytest.raises(DataError, match="is not a DICOM file"):
        decode(tmp_path / "x.dcm")


def test_dicom_multi_frame_policy(tmp_path: Path, dicom_file) -> None:
    path = dicom_file(tmp_path / "mf.dcm", np.stack([GRADIENT, GRADIENT[::-1]]))
    with pytest.raises(DataError, match=r"has 2 frames.*multi_frame: first"):
        DicomDecoder()(path)
    np.testing.assert_allclose(DicomDecoder("first")(path), DicomDecoder()(
        dicom_file(tmp_path / "one.dcm", GRADIENT)))


def dicom_tree(root: Path, write_dicom) -> Path:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    for split, n in (("lab", 3), ("test", 2)):
        for c, cls in enumerate(("normal", "pneumonia")):
            for i in range(n):
                px = rng.integers(0, 4000, (20 + i, 20)).astype(np.uint16)
                mono = "MONOCHROME1" if i == 1 else "MONOCHROME2"
                write_dicom(root / split / cls / f"{c}_{i}.dcm", px, photometric=mono,
                            slope=1.0, intercept=-1024.0)
    return root


def test_dicom_folders_load_and_name_a_file_without_pixels(tmp_path: Path, dicom_file) -> None:
    root = dicom_tree(tmp_path / "dcm", dicom_file)
    p = params(DicomFoldersParams, tmp_path, labeled_dir=root / "lab", test_dir=root / "test")
    data = dicom_folders(p, seed=0)
    assert data.labeled_x.shape == (6, 1, SIZE, SIZE)
    assert data.class_names == ["normal", "pneumonia"]
    assert 0.0 <= data.labeled_x.min() and data.labeled_x.max() <= 1.0
    empty = dicom_file(root / "lab" / "normal" / "report.dcm", GRADIENT, pixel_data=False)
    with pytest.raises(DataError, match=rf"{re.escape(str(empty))}: is a DICOM file without "
                                        "pixel data"):
        dicom_folders(p, seed=0)
    skipped = dicom_folders(p.model_copy(update={"skip_bad_files": True}), seed=0)
    assert skipped.notes["skipped_files"] == 1 and len(skipped.labeled_x) == 6
