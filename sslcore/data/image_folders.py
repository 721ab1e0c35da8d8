"""Labeled, test and unlabeled image files -> a validated SSLData, with one set of leakage checks.

Each image vertical scans its own layout (Kermany splits, EuroSAT class folders, DICOM or
GeoTIFF folders) into file lists, then calls :func:`load_image_folders`. It decodes every split
with :func:`~sslcore.data.image_files.load_images` (the plugin's decoder, the resize, the cache)
and applies the same protections to every vertical:

1. **No test image in pretraining or training.** A labeled or unlabeled file with the same
   bytes as a test file (BLAKE2b of the content: a copy under another name or folder) is
   dropped before decoding; one whose decoded, resized pixels equal a test image's (the image
   re-encoded losslessly, a DICOM re-exported with new UIDs) is dropped after decoding. Both
   are counted in the data card (``dropped.duplicates_of_test``), listed in
   :attr:`ImageFolderData.dropped_files` and logged as a warning. An unlabeled folder that
   holds a test file itself (the same path), or a file that is both labeled and test, is an
   error: the folders are wrong, not the files.
2. **Duplicates within a split** (the same bytes twice among the labeled, the test or the
   unlabeled files) are reported, not dropped: ``duplicates.<split>`` (count) and
   ``duplicates.<split>.examples`` in the data card, :attr:`ImageFolderData.duplicate_files`,
   a logged warning.
3. **Bad files** (corrupt, truncated, not an image, a wrong channel count) fail with a
   :class:`~sslcore.errors.DataError` naming the file, or, with ``skip_bad_files=True``, are
   skipped: ``skipped_files`` in the data card, :attr:`ImageFolderData.skipped_files`.

File digests are cached in ``cache_dir`` beside the decoded arrays (keyed by paths, sizes and
modification times), so a second run reads no image file.

Example::

    paths, y, names = scan_class_folders("data/train")
    test_paths, test_y, _ = scan_class_folders("data/test")
    data = load_image_folders(LabeledFiles(paths, y), LabeledFiles(test_paths, test_y),
                              unlabeled="data/archive", class_names=names, size=64,
                              channels=1, source="my_xrays", cache_dir=default_cache_dir())
    data.notes["dropped.duplicates_of_test"], data.dropped_files
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sslcore.data.image_files import IMAGE_EXTENSIONS, Decoder, load_images, scan_images
from sslcore.data.ssl_data import SSLData
from sslcore.errors import DataError

logger = logging.getLogger(__name__)

DIGEST_FORMAT = 1  # bump when the digest changes meaning
EXAMPLES = 3  # duplicate pairs quoted in the data card


@dataclass
class LabeledFiles:
    """Image files and their class indices, e.g. from :func:`scan_class_folders`.

    Raises:
        DataError: not one label per file.
    """

    paths: Sequence[str | Path]
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.paths = [Path(p) for p in self.paths]
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (len(self.paths),):
            raise DataError(f"{len(self.paths)} image files but labels of shape "
                            f"{self.labels.shape}; give one label per file")


@dataclass
class ImageFolderData(SSLData):
    """SSLData plus the files the loader left out, as ``(path, reason)`` pairs, for a plugin's
    artifacts (e.g. ``skipped_files.txt``)."""

    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # bad files
    dropped_files: list[tuple[str, str]] = field(default_factory=list)  # copies of test files
    duplicate_files: list[tuple[str, str]] = field(default_factory=list)  # repeats in a split


# ----------------------------------------------------------------------------- digests

def file_digests(paths: Sequence[str | Path], cache_dir: str | Path | None = None) -> list[str]:
    """BLAKE2b-128 hex digest of each file's bytes, cached under ``cache_dir`` if given.

    Raises:
        DataError: a file cannot be read (named).
    """
    paths = [Path(p) for p in paths]
    cache_file = None
    if cache_dir is not None and paths:
        key = hashlib.sha256(str(DIGEST_FORMAT).encode())
        for p in paths:
            st = p.stat()
            key.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        cache_file = Path(cache_dir).expanduser() / f"digests-{key.hexdigest()[:24]}.json"
        try:
            cached = json.loads(cache_file.read_text())
            if isinstance(cached, list) and len(cached) == len(paths):
                return [str(d) for d in cached]
        except (OSError, ValueError):
            pass  # missing or unreadable: hash again
    digests = [_digest(p) for p in paths]
    if cache_file is not None:
        _write_atomic(cache_file, json.dumps(digests))
    return digests


def _digest(path: Path) -> str:
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
    except OSError as exc:
        raise DataError(f"image file {path} cannot be read ({exc.strerror or exc})") from exc


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pixel_digests(x: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()
            for row in x]


# ----------------------------------------------------------------------------- the loader

def load_image_folders(labeled: LabeledFiles, test: LabeledFiles,
                       unlabeled: str | Path | Sequence[str | Path] | None = None, *,
                       size: int, channels: int, class_names: Sequence[str], source: str,
                       decoder: Decoder | None = None, cache_dir: str | Path | None = None,
                       skip_bad_files: bool = False,
                       extensions: Sequence[str] = IMAGE_EXTENSIONS, noun: str = "image",
                       notes: Mapping[str, Any] | None = None,
                       progress: bool = True) -> ImageFolderData:
    """Decode the three splits into a validated :class:`ImageFolderData`, leak-free.

    Args:
        labeled: the labeled pool's files and labels.
        test: the test set's files and labels.
        unlabeled: a folder (searched recursively for ``extensions``, named ``unlabeled_dir``
            in errors), a list of files, or None: the labeled pool's images, without labels.
        size, channels, decoder, cache_dir, skip_bad_files, progress: as in
            :func:`~sslcore.data.image_files.load_images`.
        class_names: label ``i`` is ``class_names[i]``.
        source: the data card's source line.
        noun: what the files are called in messages ("image", "tile").
        notes: the vertical's own data-card notes (image size, scale), kept first.

    Raises:
        DataError: a file both labeled and test, an unlabeled folder holding test files or
            no files, a bad file (unless ``skip_bad_files``), a split left empty.
    """
    unl_paths, unl_source = _unlabeled_files(unlabeled, test.paths, extensions, noun)
    test_set = {p.resolve() for p in test.paths}
    both = [p for p in labeled.paths if p.resolve() in test_set]
    if both:
        raise DataError(f"{both[0]} is both a labeled and a test {noun}; the test folder "
                        "must be separate from the labeled folders")
    if not test.paths or not labeled.paths:
        raise DataError(f"no {'test' if not test.paths else 'labeled'} {noun}s were found")
    report = _Report(noun)

    # 1. Copies of test files, by content, before decoding.
    test_digests = file_digests(test.paths, cache_dir)
    first_test: dict[str, Path] = {}
    for p, d in zip(test.paths, test_digests):
        first_test.setdefault(d, p)
    report.repeats("test", test.paths, test_digests)
    lab_keep = report.drop_copies("labeled", labeled.paths, file_digests(labeled.paths, cache_dir),
                                  first_test)
    lab_paths = [p for p, k in zip(labeled.paths, lab_keep) if k]
    if not lab_paths:
        raise DataError(f"every labeled {noun} is a copy of a test {noun} (e.g. "
                        f"{report.dropped[0][0]}: {report.dropped[0][1]}); the labeled and "
                        "test folders must hold different files")
    if unl_paths is not None:
        unl_keep = report.drop_copies("unlabeled", unl_paths, file_digests(unl_paths, cache_dir),
                                      first_test)
        unl_paths = [p for p, k in zip(unl_paths, unl_keep) if k]

    # 2. Decode (cached).
    def load(paths: list[Path]) -> Any:
        return load_images(paths, size=size, channels=channels, cache_dir=cache_dir,
                           skip_bad_files=skip_bad_files, decoder=decoder, progress=progress)

    lab, tst = load(lab_paths), load(list(test.paths))
    for what, got in (("labeled", lab), ("test", tst)):
        if len(got.kept) == 0:
            raise DataError(f"every {what} {noun} was skipped as unreadable; the first: "
                            f"{got.skipped[0][0]}: {got.skipped[0][1]}")
    skipped = lab.skipped + tst.skipped

    # 3. Copies of test images, by decoded pixels.
    test_rows: dict[bytes, Path] = {}
    for d, i in zip(_pixel_digests(tst.x), tst.kept):
        test_rows.setdefault(d, test.paths[i])
    keep = report.drop_pixel_copies("labeled", [lab_paths[i] for i in lab.kept], lab.x, test_rows)
    labeled_x = lab.x if keep.all() else lab.x[keep]
    labeled_y = labeled.labels[lab_keep][lab.kept][keep]
    if unl_paths is None:
        unlabeled_x = labeled_x  # the same array: no copy
    else:
        unlabeled_x = lab.x[:0]
        if unl_paths:
            unl = load(unl_paths)
            skipped += unl.skipped
            keep = report.drop_pixel_copies("unlabeled", [unl_paths[i] for i in unl.kept],
                                            unl.x, test_rows)
            unlabeled_x = unl.x if keep.all() else unl.x[keep]
        if len(unlabeled_x) == 0:
            raise DataError(f"the unlabeled pool is empty after skipping bad files and copies "
                            f"of test {noun}s")

    out = dict(notes or {})
    out["unlabeled_source"] = unl_source
    out["skipped_files"] = len(skipped)
    out |= report.notes()
    report.warn()
    return ImageFolderData(
        unlabeled=unlabeled_x, labeled_x=labeled_x, labeled_y=labeled_y, test_x=tst.x,
        test_y=test.labels[tst.kept], sources=[source], class_names=list(class_names),
        notes=out, skipped_files=[(str(p), r) for p, r in skipped],
        dropped_files=report.dropped, duplicate_files=report.duplicates).validate()


def _unlabeled_files(unlabeled: str | Path | Sequence[str | Path] | None,
                     test_paths: Sequence[Path], extensions: Sequence[str],
                     noun: str) -> tuple[list[Path] | None, str]:
    """(files, data-card source) of the unlabeled pool; None: the labeled pool's images."""
    if unlabeled is None:
        return None, (f"the labeled pool's {noun}s, without labels (no unlabeled_dir given); "
                      "pretraining never sees a label")
    test_set = {p.resolve() for p in test_paths}
    if isinstance(unlabeled, (str, Path)):
        folder = Path(unlabeled)
        paths = scan_images(folder, extensions)
        inside = [p for p in paths if p.resolve() in test_set]
        if inside:
            raise DataError(f"unlabeled_dir {folder} contains test {noun}s (e.g. {inside[0]}); "
                            "the test set never goes into pretraining: point unlabeled_dir at "
                            "a folder without the test split")
        if not paths:
            raise DataError(f"unlabeled_dir {folder} holds no {noun}s with extensions "
                            f"{', '.join(extensions)}")
        return paths, str(folder)
    paths = [Path(p) for p in unlabeled]
    inside = [p for p in paths if p.resolve() in test_set]
    if inside:
        raise DataError(f"unlabeled file {inside[0]} is a test {noun}; the test set never goes "
                        "into pretraining")
    if not paths:
        raise DataError(f"the list of unlabeled {noun}s is empty")
    return paths, f"{len(paths)} unlabeled files"


class _Report:
    """What the loader dropped (copies of test files) and found twice within a split."""

    def __init__(self, noun: str) -> None:
        self.noun = noun
        self.dropped: list[tuple[str, str]] = []
        self.repeated: dict[str, list[tuple[Path, Path]]] = {}  # split -> (file, first copy)

    @property
    def duplicates(self) -> list[tuple[str, str]]:
        return [(str(p), f"{split}: same bytes as {split} file {first}")
                for split, pairs in self.repeated.items() for p, first in pairs]

    def drop_copies(self, split: str, paths: Sequence[Path], digests: list[str],
                    test: dict[str, Path]) -> np.ndarray:
        """Keep-mask of ``paths``: False for a copy of a test file; also reports repeats."""
        keep = np.array([d not in test for d in digests], dtype=bool)
        self.dropped += [(str(p), f"{split}: same bytes as test file {test[d]}")
                         for p, d, k in zip(paths, digests, keep) if not k]
        self.repeats(split, [p for p, k in zip(paths, keep) if k],
                     [d for d, k in zip(digests, keep) if k])
        return keep

    def drop_pixel_copies(self, split: str, paths: Sequence[Path], x: np.ndarray,
                          test: dict[bytes, Path]) -> np.ndarray:
        """Keep-mask of the decoded rows ``x``: False for a row equal to a test image's."""
        digests = _pixel_digests(x)
        keep = np.array([d not in test for d in digests], dtype=bool)
        self.dropped += [(str(p), f"{split}: same pixels as test file {test[d]} after "
                          "decoding") for p, d, k in zip(paths, digests, keep) if not k]
        return keep

    def repeats(self, split: str, paths: Sequence[Path], digests: list[str]) -> None:
        first: dict[str, Path] = {}
        pairs = self.repeated.setdefault(split, [])
        for p, d in zip(paths, digests):
            if d in first:
                pairs.append((p, first[d]))
            else:
                first[d] = p

    def notes(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dropped.duplicates_of_test": len(self.dropped)}
        for split, pairs in self.repeated.items():
            if pairs:
                out[f"duplicates.{split}"] = len(pairs)
                out[f"duplicates.{split}.examples"] = "; ".join(
                    f"{p} = {first}" for p, first in pairs[:EXAMPLES])
        return out

    def warn(self) -> None:
        if self.dropped:
            logger.warning("%d %s file(s) dropped as copies of test files, so the test set "
                           "stays out of pretraining and training (e.g. %s: %s)",
                           len(self.dropped), self.noun, *self.dropped[0])
        for split, pairs in self.repeated.items():
            if pairs:
                logger.warning("%d %s %s file(s) repeat another file's bytes (e.g. %s = %s); "
                               "they are kept", len(pairs), split, self.noun, *pairs[0])
