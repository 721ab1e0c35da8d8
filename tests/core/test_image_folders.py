"""The shared image-folder loader: copies of test files dropped and reported, repeats within a
split reported, bad files named or skipped, digests cached."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslcore import sdk
from sslcore.data import image_folders
from sslcore.data.image_folders import LabeledFiles, file_digests, load_image_folders
from sslcore.errors import DataError

SIZE = 8


def png(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def split(root: Path, n: int, seed: int) -> LabeledFiles:
    """``n`` images per class (a, b) under ``root``; labels 0 and 1."""
    paths = [png(root / cls / f"{i}.png", seed + 10 * c + i)
             for c, cls in enumerate("ab") for i in range(n)]
    return LabeledFiles(paths, [0] * n + [1] * n)


def load(labeled: LabeledFiles, test: LabeledFiles, unlabeled=None,  # type: ignore[no-untyped-def]
         **kw):
    return load_image_folders(labeled, test, unlabeled, size=SIZE, channels=1,
                              class_names=["a", "b"], source="fixture", progress=False, **kw)


@pytest.fixture
def splits(tmp_path: Path) -> tuple[LabeledFiles, LabeledFiles]:
    return split(tmp_path / "lab", 3, seed=0), split(tmp_path / "test", 2, seed=100)


def test_copies_of_test_files_leave_labeled_and_unlabeled_and_are_reported(
        tmp_path: Path, splits, caplog) -> None:
    lab, test = splits
    copy_lab = tmp_path / "lab" / "b" / "copy.png"
    shutil.copy(test.paths[0], copy_lab)  # a test image of class a, filed under b
    lab = LabeledFiles([*lab.paths, copy_lab], [*lab.labels, 1])
    unl = [png(tmp_path / "unl" / f"u{i}.png", 200 + i) for i in range(3)]
    copy_unl = tmp_path / "unl" / "deep" / "copy.png"
    copy_unl.parent.mkdir()
    shutil.copy(test.paths[3], copy_unl)
    with caplog.at_level(logging.WARNING, logger="sslcore.data.image_folders"):
        data = load(lab, test, tmp_path / "unl", cache_dir=tmp_path / "cache")
    assert (len(data.labeled_x), len(data.unlabeled), len(data.test_x)) == (6, 3, 4)
    assert data.labeled_y.tolist() == [0, 0, 0, 1, 1, 1]  # labels follow the kept files
    assert data.notes["dropped.duplicates_of_test"] == 2
    assert data.dropped_files == [
        (str(copy_lab), f"labeled: same bytes as test file {test.paths[0]}"),
        (str(copy_unl), f"unlabeled: same bytes as test file {test.paths[3]}")]
    assert "2 image file(s) dropped as copies of test files" in caplog.text
    assert str(copy_lab) in caplog.text
    # No row of the pools equals a test row.
    test_rows = {r.tobytes() for r in data.test_x}
    assert not any(r.tobytes() in test_rows for r in np.concatenate([data.labeled_x,
                                                                     data.unlabeled]))
    # Unchanged files, unchanged result: the second load reads the digest and image caches.
    again = load(lab, test, tmp_path / "unl", cache_dir=tmp_path / "cache")
    assert again.dropped_files == data.dropped_files
    np.testing.assert_array_equal(again.unlabeled, data.unlabeled)


def test_without_unlabeled_folder_the_pool_is_the_cleaned_labeled_pool(tmp_path: Path,
                                                                       splits) -> None:
    lab, test = splits
    copy = shutil.copy(test.paths[1], tmp_path / "lab" / "a" / "copy.png")
    data = load(LabeledFiles([*lab.paths, copy], [*lab.labels, 0]), test)
    assert data.unlabeled is data.labeled_x and len(data.labeled_x) == 6
    assert data.notes["dropped.duplicates_of_test"] == 1
    assert "without labels" in data.notes["unlabeled_source"]


def test_same_pixels_as_a_test_image_is_dropped_after_decoding(tmp_path: Path, splits) -> None:
    lab, test = splits
    recoded = tmp_path / "unl" / "recoded.png"
    recoded.parent.mkdir()
    with Image.open(test.paths[2]) as img:
        img.save(recoded, optimize=True, compress_level=1)  # other bytes, same pixels
    assert recoded.read_bytes() != test.paths[2].read_bytes()
    png(tmp_path / "unl" / "other.png", 300)
    data = load(lab, test, tmp_path / "unl")
    assert len(data.unlabeled) == 1
    assert data.dropped_files == [
        (str(recoded), f"unlabeled: same pixels as test file {test.paths[2]} after decoding")]


def test_repeats_within_a_split_are_reported_and_kept(tmp_path: Path, splits, caplog) -> None:
    lab, test = splits
    twins = [shutil.copy(lab.paths[0], tmp_path / "lab" / "a" / f"twin{i}.png")
             for i in range(2)]
    lab = LabeledFiles([*lab.paths, *map(Path, twins)], [*lab.labels, 0, 0])
    test_twin = Path(shutil.copy(test.paths[0], tmp_path / "test" / "a" / "twin.png"))
    test = LabeledFiles([*test.paths, test_twin], [*test.labels, 0])
    with caplog.at_level(logging.WARNING, logger="sslcore.data.image_folders"):
        data = load(lab, test)
    assert len(data.labeled_x) == 8 and len(data.test_x) == 5  # kept
    assert data.notes["duplicates.labeled"] == 2 and data.notes["duplicates.test"] == 1
    assert data.notes["duplicates.labeled.examples"] == (
        f"{twins[0]} = {lab.paths[0]}; {twins[1]} = {lab.paths[0]}")
    assert (str(test_twin), f"test: same bytes as test file {test.paths[0]}") in (
        data.duplicate_files)
    assert data.notes["dropped.duplicates_of_test"] == 0
    assert "2 labeled image file(s) repeat" in caplog.text


def test_corrupt_file_is_named_by_default_or_skipped_and_counted(tmp_path: Path, splits) -> None:
    lab, test = splits
    bad = tmp_path / "lab" / "b" / "broken.png"
    bad.write_bytes(lab.paths[0].read_bytes()[:40])  # truncated
    lab = LabeledFiles([*lab.paths, bad], [*lab.labels, 1])
    with pytest.raises(DataError, match=rf"image file {re.escape(str(bad))}: .*skip_bad_files"):
        load(lab, test)
    data = load(lab, test, skip_bad_files=True)
    assert data.notes["skipped_files"] == 1 and [p for p, _ in data.skipped_files] == [str(bad)]
    assert data.labeled_y.tolist() == [0, 0, 0, 1, 1, 1]


def test_folders_that_share_test_files_are_refused(tmp_path: Path, splits) -> None:
    lab, test = splits
    with pytest.raises(DataError, match=r"unlabeled_dir .*test contains test images .*never "
                                        "goes into pretraining"):
        load(lab, test, tmp_path / "test")
    with pytest.raises(DataError, match=r"is both a labeled and a test image"):
        load(LabeledFiles([*lab.paths, test.paths[0]], [*lab.labels, 0]), test)
    copies = [shutil.copy(p, tmp_path / f"c{i}.png") for i, p in enumerate(test.paths)]
    with pytest.raises(DataError, match=r"every labeled image is a copy of a test image"):
        load(LabeledFiles(copies, test.labels), test)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"unlabeled_dir .*empty holds no images"):
        load(lab, test, tmp_path / "empty")


def test_file_digests_are_cached(tmp_path: Path, splits, monkeypatch) -> None:
    lab, _ = splits
    first = file_digests(lab.paths, tmp_path / "cache")
    assert len(set(first)) == len(lab.paths)
    monkeypatch.setattr(image_folders, "_digest", lambda p: pytest.fail("read again"))
    assert file_digests(lab.paths, tmp_path / "cache") == first


def test_exported_through_the_sdk() -> None:
    for name in ("load_image_folders", "LabeledFiles", "ImageFolderData"):
        assert getattr(sdk, name) is getattr(image_folders, name)
        assert sdk.STABILITY[name] == "provisional"


def test_the_run_lists_what_the_loader_skipped_dropped_and_found_twice(tmp_path):
    from sslcore.data.ssl_data import SSLData
    from sslcore.run_artifacts import _write_file_lists

    x = np.zeros((4, 1, 8, 8), dtype=np.float32)
    data = SSLData(unlabeled=x, labeled_x=x, labeled_y=np.array([0, 1, 0, 1]), test_x=x,
                   test_y=np.array([0, 1, 0, 1]))
    data.skipped_files = [("/d/a.jpeg", "is not an image PIL can read")]
    data.dropped_files = [("/d/u/b.png", "a copy of test file /d/t/b.png")]
    _write_file_lists(data, tmp_path)
    assert "/d/a.jpeg\tis not an image PIL can read" in (tmp_path / "skipped_files.txt").read_text()
    assert "copy of test" in (tmp_path / "dropped_files.txt").read_text()
    assert not (tmp_path / "duplicate_files.txt").exists()
