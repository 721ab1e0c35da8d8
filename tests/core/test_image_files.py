"""Image folders -> arrays: scanning layouts, decoding, resizing, bad files, and the cache."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslcore.data import image_files
from sslcore.data.image_files import (
    decode_pil,
    load_images,
    scan_class_folders,
    scan_images,
)
from sslcore.errors import DataError


def write_image(path: Path, shape: tuple[int, ...] = (40, 50), seed: int = 0,
                fmt: str | None = None) -> Path:
    """A random 8-bit image (grayscale for 2-D shapes, RGB for (H, W, 3))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for c, cls in enumerate(["NORMAL", "PNEUMONIA"]):
        for i in range(3):
            write_image(root / cls / f"{i}.jpeg", (30 + 10 * i, 36), seed=10 * c + i)
    return root


class CountingDecoder:
    """Wraps the PIL decoder and counts calls (picklable, stable cache key)."""

    cache_key = "tests.counting_decoder"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path) -> np.ndarray:
        self.calls += 1
        return decode_pil(path, channels=1)


# ----------------------------------------------------------------------------- scanning

def test_scan_class_folders_sorted_classes_and_labels(folders: Path) -> None:
    (folders / "NORMAL" / "notes.txt").write_text("ignored: not an image extension")
    (folders / ".hidden").mkdir()
    paths, y, classes = scan_class_folders(folders)
    assert classes == ["NORMAL", "PNEUMONIA"]
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    assert [p.parent.name for p in paths] == ["NORMAL"] * 3 + ["PNEUMONIA"] * 3


def test_no_class_folders_names_the_root(tmp_path: Path) -> None:
    write_image(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match=r"flat has no class folders.*1 image\(s\) directly"):
        scan_class_folders(tmp_path / "flat")


def test_empty_class_folder_names_it(folders: Path) -> None:
    (folders / "OTHER").mkdir()
    with pytest.raises(DataError, match=r"class folder .*OTHER holds no images"):
        scan_class_folders(folders)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        scan_class_folders(tmp_path / "nope")
    with pytest.raises(DataError, match="does not exist"):
        scan_images(tmp_path / "nope")


def test_scan_images_recursive_sorted(tmp_path: Path) -> None:
    write_image(tmp_path / "u" / "b" / "2.PNG")
    write_image(tmp_path / "u" / "a.jpg")
    (tmp_path / "u" / "readme.md").write_text("x")
    assert [p.name for p in scan_images(tmp_path / "u")] == ["a.jpg", "2.PNG"]


# ----------------------------------------------------------------------------- decoding

def test_mixed_sizes_are_resized_to_size(folders: Path) -> None:
    paths, _, _ = scan_class_folders(folders)
    out = load_images(paths, size=16, channels=1, progress=False)
    assert out.x.shape == (6, 1, 16, 16) and out.x.dtype == np.float32
    assert out.kept.tolist() == list(range(6)) and out.skipped == []
    assert 0.0 <= out.x.min() and out.x.max() <= 1.0


def test_values_scaled_to_unit_range(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    Image.fromarray(np.full((8, 8), 51, dtype=np.uint8)).save(path)
    out = load_images([path], size=8, channels=1, progress=False)
    assert np.allclose(out.x, 51 / 255)


def test_rgb_images_load_with_three_channels(tmp_path: Path) -> None:
    path = write_image(tmp_path / "c.png", (12, 12, 3))
    out = load_images([path], size=8, channels=3, progress=False)
    assert out.x.shape == (1, 3, 8, 8)


def test_grayscale_stored_as_rgb_counts_as_one_channel(tmp_path: Path) -> None:
    gray = np.random.default_rng(0).integers(0, 256, (10, 10), dtype=np.uint8)
    path = tmp_path / "g.png"
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(path)
    out = load_images([path], size=10, channels=1, progress=False)
    assert np.allclose(out.x[0, 0], gray / 255, atol=1e-6)


def test_sixteen_bit_png_scaled_by_65535(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 6), 32768, dtype=np.uint16)).save(path)
    out = load_images([path], size=6, channels=1, progress=False)
    assert np.allclose(out.x, 32768 / 65535, atol=1e-3)


# ----------------------------------------------------------------------------- bad files

def _corrupt_jpeg(path: Path) -> Path:
    write_image(path, (64, 64), fmt="JPEG")
    data = bytearray(path.read_bytes())
    data[2:40] = b"\x00" * 38  # wreck the headers after the SOI marker
    path.write_bytes(bytes(data))
    return path


def _truncated_jpeg(path: Path) -> Path:
    write_image(path, (64, 64), fmt="JPEG")
    path.write_bytes(path.read_bytes()[:300])
    return path


def _not_an_image(path: Path) -> Path:
    path.write_text("patient notes, not pixels")
    return path


def _rgb_colour(path: Path) -> Path:
    return write_image(path, (20, 20, 3))


@pytest.mark.parametrize("make, name, reason", [
    (_corrupt_jpeg, "corrupt.jpeg", r"not an image PIL can read|cannot be decoded"),
    (_truncated_jpeg, "truncated.jpeg", r"cannot be decoded .*(?i:truncated)"),
    (_not_an_image, "text.jpeg", r"not an image PIL can read"),
    (_rgb_colour, "colour.png", r"has 3 channel\(s\).*expected 1"),
], ids=["corrupt_jpeg", "truncated_jpeg", "not_an_image", "mixed_channels"])
def test_bad_file_raises_naming_it_or_is_skipped(make, name, reason, folders: Path) -> None:
    bad = make(folders / "PNEUMONIA" / name)
    paths, _, _ = scan_class_folders(folders)
    message = rf"image file {re.escape(str(bad))}: (?:is )?(?:{reason}).*skip_bad_files"
    with pytest.raises(DataError, match=message):
        load_images(paths, size=16, channels=1, progress=False)
    out = load_images(paths, size=16, channels=1, skip_bad_files=True, progress=False)
    assert [p for p, _ in out.skipped] == [bad]
    assert len(out.x) == len(paths) - 1 and paths.index(bad) not in out.kept.tolist()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone\.png does not exist"):
        load_images([tmp_path / "gone.png"], size=8, channels=1, progress=False)


def test_decoder_returning_a_bad_shape_is_a_bad_file(folders: Path) -> None:
    paths, _, _ = scan_class_folders(folders)
    with pytest.raises(DataError, match=r"decoder returned ndarray \(4, 4\)"):
        load_images(paths[:1], size=8, channels=1, progress=False,
                    decoder=lambda p: np.zeros((4, 4), np.float32))


# ----------------------------------------------------------------------------- cache

def test_second_load_reads_the_cache_without_decoding(folders: Path, tmp_path: Path) -> None:
    paths, _, _ = scan_class_folders(folders)
    decoder = CountingDecoder()
    first = load_images(paths, size=16, channels=1, cache_dir=tmp_path / "c", decoder=decoder,
                        progress=False)
    assert decoder.calls == len(paths) and not first.from_cache
    second = load_images(paths, size=16, channels=1, cache_dir=tmp_path / "c",
                         decoder=decoder, progress=False)
    assert decoder.calls == len(paths) and second.from_cache
    np.testing.assert_array_equal(first.x, second.x)
    cached = list((tmp_path / "c").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".npz"  # no temp file left behind
    with np.load(cached[0]) as z:
        assert z["x"].dtype == np.uint8  # 8-bit sources are stored as uint8


def test_cache_key_changes_with_size_and_file_content(folders: Path, tmp_path: Path) -> None:
    paths, _, _ = scan_class_folders(folders)
    decoder = CountingDecoder()
    load_images(paths, size=16, channels=1, cache_dir=tmp_path, decoder=decoder, progress=False)
    load_images(paths, size=8, channels=1, cache_dir=tmp_path, decoder=decoder, progress=False)
    assert decoder.calls == 2 * len(paths)
    write_image(paths[0], (33, 33), seed=99)  # new content, size and mtime
    load_images(paths, size=8, channels=1, cache_dir=tmp_path, decoder=decoder, progress=False)
    assert decoder.calls == 3 * len(paths)


def test_cached_skips_still_fail_without_skip_bad_files(folders: Path, tmp_path: Path) -> None:
    bad = _not_an_image(folders / "NORMAL" / "bad.png")
    paths, _, _ = scan_class_folders(folders)
    out = load_images(paths, size=8, channels=1, cache_dir=tmp_path, skip_bad_files=True,
                      progress=False)
    assert [p for p, _ in out.skipped] == [bad]
    again = load_images(paths, size=8, channels=1, cache_dir=tmp_path, skip_bad_files=True,
                        progress=False)
    assert again.from_cache and [p for p, _ in again.skipped] == [bad]
    with pytest.raises(DataError, match=re.escape(str(bad))):
        load_images(paths, size=8, channels=1, cache_dir=tmp_path, progress=False)


def test_corrupt_cache_file_is_decoded_again(folders: Path, tmp_path: Path) -> None:
    paths, _, _ = scan_class_folders(folders)
    first = load_images(paths, size=8, channels=1, cache_dir=tmp_path, progress=False)
    (cache_file,) = tmp_path.glob("images-*.npz")
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        again = load_images(paths, size=8, channels=1, cache_dir=tmp_path, progress=False)
    assert not again.from_cache
    np.testing.assert_array_equal(first.x, again.x)


def test_float_decoder_cached_as_float16(folders: Path, tmp_path: Path) -> None:
    paths, _, _ = scan_class_folders(folders)

    def decode(path: Path) -> np.ndarray:
        return decode_pil(path, channels=1).astype(np.float32) * 40.0  # a float scale

    out = load_images(paths, size=8, channels=1, cache_dir=tmp_path, decoder=decode,
                      progress=False)
    assert out.x.max() > 1.0  # kept on the decoder's scale
    (cache_file,) = tmp_path.glob("images-*.npz")
    with np.load(cache_file) as z:
        assert z["x"].dtype == np.float16


def test_decoder_identity_includes_partial_arguments() -> None:
    a = functools.partial(decode_pil, channels=1, draft_size=64)
    b = functools.partial(decode_pil, channels=1, draft_size=128)
    assert image_files.decoder_id(a) != image_files.decoder_id(b)


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSLCORE_CACHE_DIR", str(tmp_path / "mine"))
    assert image_files.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("SSLCORE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert image_files.default_cache_dir() == tmp_path / "xdg" / "sslcore" / "images"
