"""Image files on disk -> float32 ``N x C x size x size`` arrays, decoded once and cached.

Layouts: :func:`scan_class_folders` reads ``<root>/<class>/**/<image>`` (class names sorted),
:func:`scan_images` an unlabeled folder (recursive). :func:`load_images` decodes, resizes with
antialiasing to ``size x size`` (the aspect ratio is not kept: the whole image is used), checks
the channel count, and caches the result.

Decoders: ``decoder(path) -> (C, H, W) array``. A ``uint8`` result is an 8-bit image, scaled to
0..1; a float result is kept on the decoder's own scale (DICOM after windowing, reflectances of
a GeoTIFF). The default decoder is PIL (JPEG, PNG, BMP, 8/16-bit TIFF): grayscale for
``channels=1`` and RGB for ``channels=3``. A grayscale image stored as RGB (three equal
channels, common in public X-ray releases) counts as one channel; any other channel mismatch is
a bad file.

Bad files (corrupt or truncated images, non-images, decoder errors, wrong channel count): a
:class:`~sslcore.errors.DataError` naming the file and the reason, or, with
``skip_bad_files=True``, skipped and returned in ``LoadedImages.skipped``.

Cache: one ``.npz`` per (paths, file sizes, mtimes, size, channels, decoder) under
``cache_dir``, written atomically (temporary file + ``os.replace``), so a second load reads
the array without decoding anything. 8-bit sources are stored as ``uint8`` (the resized values
rounded to 1/255); float sources as ``float16`` when every value fits (relative error below
0.05 %, far under the noise of any detector), else ``float32``. A corrupt cache file is
ignored and rewritten. The default directory is ``$SSLCORE_CACHE_DIR``, else
``$XDG_CACHE_HOME/sslcore/images``, else ``~/.cache/sslcore/images``.

Whole datasets (labeled, test and unlabeled files, with copies of test files dropped) go
through :func:`sslcore.data.image_folders.load_image_folders`, which calls :func:`load_images`.

Example::

    paths, y, classes = scan_class_folders("data/chest_xray/train")
    loaded = load_images(paths, size=64, channels=1, cache_dir=default_cache_dir())
    x, y = loaded.x, y[loaded.kept]
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sslcore.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
CACHE_FORMAT = 1  # bump when the cached content changes meaning
_FLOAT16_MAX = 60_000.0

Decoder = Callable[[Path], np.ndarray]


@dataclass
class LoadedImages:
    """Decoded images: ``x`` holds ``kept`` (indices into the paths given) in order."""

    x: np.ndarray  # float32 N x C x size x size
    kept: np.ndarray  # int64 indices of the paths that were decoded
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, reason)
    from_cache: bool = False


def default_cache_dir() -> Path:
    """Where decoded images are cached unless a loader is given ``cache_dir``."""
    if os.environ.get("SSLCORE_CACHE_DIR"):
        return Path(os.environ["SSLCORE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sslcore" / "images"


# ----------------------------------------------------------------------------- scanning

def _has_ext(path: Path, extensions: Sequence[str]) -> bool:
    return path.suffix.lower() in {e.lower() for e in extensions}


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def scan_images(root: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files under ``root`` (recursive, hidden files and folders ignored), sorted.

    Raises:
        DataError: ``root`` is not a directory.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory")
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and _has_ext(p, extensions) and _visible(p, root))


def scan_class_folders(root: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                       ) -> tuple[list[Path], np.ndarray, list[str]]:
    """A class-per-folder layout ``<root>/<class>/**/<image>`` -> (paths, labels, class names).

    Class names are the sorted folder names; label ``i`` is ``class_names[i]``. Files with
    other extensions are ignored.

    Raises:
        DataError: ``root`` is missing, has no class folders, or a class folder has no images.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = len(scan_images(root, extensions))
        raise DataError(
            f"{root} has no class folders: expected <root>/<class name>/<image> (e.g. "
            f"{root}/NORMAL/img1.jpeg and {root}/PNEUMONIA/img2.jpeg)"
            + (f"; found {loose} image(s) directly in it, which have no label" if loose else ""))
    paths: list[Path] = []
    labels: list[int] = []
    for i, name in enumerate(classes):
        found = scan_images(root / name, extensions)
        if not found:
            raise DataError(f"class folder {root / name} holds no images with extensions "
                            f"{', '.join(extensions)}; add images or remove the folder")
        paths += found
        labels += [i] * len(found)
    return paths, np.asarray(labels, dtype=np.int64), classes


# ----------------------------------------------------------------------------- decoding

def decode_pil(path: Path, channels: int = 1, draft_size: int | None = None) -> np.ndarray:
    """Decode with PIL -> ``(C, H, W)``: uint8 for 8-bit images, float 0..1 for 16-bit.

    ``load()`` forces the full decode, so a truncated file fails here rather than later. With
    ``draft_size`` a JPEG is decoded at a reduced DCT scale that stays at least twice that size
    (PIL's ``draft``), several times faster for large radiographs.

    Raises:
        DataError: the channel count does not match ``channels``.
    """
    from PIL import Image

    with Image.open(path) as img:
        if draft_size and img.format == "JPEG":
            img.draft(img.mode, (2 * draft_size, 2 * draft_size))
        img.load()
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img, dtype=np.float32)
            scale = 65535.0 if mode != "I" or arr.max(initial=0) <= 65535 else float(arr.max())
            found = 1
            out = (arr / scale)[None]
        elif mode == "F":
            found, out = 1, np.asarray(img, dtype=np.float32)[None]
        else:
            rgb = img.convert("RGB") if mode not in ("L", "1", "LA") else None
            gray = img.convert("L") if rgb is None else None
            if rgb is not None:
                arr = np.asarray(rgb).transpose(2, 0, 1)
                same = bool((arr[0] == arr[1]).all() and (arr[1] == arr[2]).all())
                found, out = (1, arr[:1]) if same and channels == 1 else (3, arr)
            else:
                found, out = 1, np.asarray(gray)[None]
    if found != channels:
        raise DataError(f"has {found} channel(s) (PIL mode {mode}); expected {channels}")
    return np.ascontiguousarray(out)


def decoder_id(decoder: Callable[..., np.ndarray]) -> str:
    """A stable name of a decoder for the cache key (its ``cache_key`` attribute if it has one)."""
    key = getattr(decoder, "cache_key", None)
    if isinstance(key, str):
        return key
    if isinstance(decoder, functools.partial):
        return f"{decoder_id(decoder.func)}{decoder.args!r}{sorted(decoder.keywords.items())!r}"
    module = getattr(decoder, "__module__", "?")
    return f"{module}.{getattr(decoder, '__qualname__', repr(decoder))}"


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) -> (C, size, size) float32, antialiased bilinear (torch)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None]
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
    return t[0].numpy()


def _decode_one(path: Path, decoder: Decoder, channels: int,
                size: int) -> tuple[np.ndarray, bool]:
    """Decode + check + resize one file -> (array on the 0..1 or decoder scale, is_8bit)."""
    arr = decoder(path)
    if not isinstance(arr, np.ndarray) or arr.ndim != 3:
        raise DataError(f"decoder returned {type(arr).__name__} "
                        f"{getattr(arr, 'shape', '')}; expected a (C, H, W) array")
    if arr.shape[0] != channels:
        raise DataError(f"has {arr.shape[0]} channel(s); expected {channels}")
    if min(arr.shape[1:]) < 1:
        raise DataError(f"is empty (shape {arr.shape})")
    eight_bit = arr.dtype == np.uint8
    out = _resize(arr, size)
    if eight_bit:
        out = np.clip(out, 0.0, 255.0) / np.float32(255.0)
    if not np.isfinite(out).all():
        raise DataError("holds NaN/inf pixel values")
    return out, eight_bit


# ----------------------------------------------------------------------------- cache

def cache_key(paths: Sequence[Path], *, size: int, channels: int, decoder: Decoder) -> str:
    """Hash of what the decoded array depends on: files (path, size, mtime) and settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_FORMAT, size, channels, decoder_id(decoder)]).encode())
    for p in paths:
        st = p.stat()
        digest.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _write_cache(path: Path, stored: np.ndarray, kept: np.ndarray,
                 skipped: list[tuple[Path, str]], scale: float) -> None:
    """``x = stored / scale``; temp file + ``os.replace``, so a crash leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=stored, kept=kept, scale=np.float64(scale),
                     skipped=np.asarray([json.dumps([str(p), r]) for p, r in skipped], dtype=str))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(path: Path) -> LoadedImages | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            stored, kept, scale = z["x"], z["kept"], float(z["scale"])
            skipped = [tuple(json.loads(s)) for s in z["skipped"].tolist()]
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is a miss, not an error
        warnings.warn(f"image cache {path} is unreadable ({exc}); decoding again", stacklevel=3)
        return None
    x = stored.astype(np.float32)
    if scale != 1.0:
        x /= np.float32(scale)
    return LoadedImages(x, kept.astype(np.int64), [(Path(p), r) for p, r in skipped], True)


def _to_storage(x: np.ndarray, eight_bit: bool) -> tuple[np.ndarray, float]:
    """(stored array, scale) with ``x ~= stored / scale``: uint8 for 8-bit sources."""
    if eight_bit:
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8), 255.0
    if len(x) and float(np.abs(x).max()) < _FLOAT16_MAX:
        return x.astype(np.float16), 1.0
    return x.astype(np.float32), 1.0


# ----------------------------------------------------------------------------- loading

def load_images(paths: Sequence[str | Path], *, size: int, channels: int,
                cache_dir: str | Path | None = None, skip_bad_files: bool = False,
                decoder: Decoder | None = None, progress: bool = True) -> LoadedImages:
    """Decode, check and resize ``paths`` to ``(N, channels, size, size)`` float32.

    Args:
        paths: image files, in the order wanted.
        size: output height and width (images of any size are resized, antialiased).
        channels: expected channels; a file with another count is a bad file.
        cache_dir: where decoded arrays are cached; None disables the cache (pass
            :func:`default_cache_dir` for the shared one).
        skip_bad_files: skip bad files instead of raising; they are listed in ``skipped``.
        decoder: ``path -> (C, H, W)`` array; uint8 means 8-bit (scaled to 0..1). Default PIL.
        progress: show a tqdm bar while decoding.

    Raises:
        DataError: a bad file (named, with the reason) unless ``skip_bad_files``; ``size`` or
            ``channels`` below 1.
    """
    if size < 1 or channels < 1:
        raise DataError(f"load_images: size ({size}) and channels ({channels}) must be >= 1")
    paths = [Path(p) for p in paths]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"image file {missing[0]} does not exist"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    decode = decoder or functools.partial(decode_pil, channels=channels, draft_size=size)
    cache_file = None
    if cache_dir is not None:
        key = cache_key(paths, size=size, channels=channels, decoder=decode)
        cache_file = Path(cache_dir).expanduser() / f"images-{key}.npz"
        cached = _read_cache(cache_file)
        if cached is not None:
            if cached.skipped and not skip_bad_files:
                _raise_bad(*cached.skipped[0])
            return cached
    loaded = _decode_all(paths, decode, size=size, channels=channels,
                         skip_bad_files=skip_bad_files, progress=progress)
    x, kept, skipped, eight_bit = loaded
    # Quantize as the cache stores it, so a first load and a later cache hit are identical.
    stored, scale = _to_storage(x, eight_bit)
    if cache_file is not None:
        _write_cache(cache_file, stored, kept, skipped, scale)
    x = stored.astype(np.float32)
    if scale != 1.0:
        x /= np.float32(scale)
    return LoadedImages(x.astype(np.float32, copy=False), kept, skipped, False)


def _raise_bad(path: Path, reason: str) -> None:
    raise DataError(f"image file {path}: {reason}. Fix or remove the file, or set "
                    "skip_bad_files: true to skip bad files (they are listed in "
                    "skipped_files.txt)")


def _reason(exc: Exception, path: Path) -> str:
    if type(exc).__name__ == "UnidentifiedImageError":
        return "is not an image PIL can read (unknown format, or not an image at all)"
    detail = str(exc).replace(f"'{path}'", "").replace(str(path), "").strip(" :")
    return f"cannot be decoded ({type(exc).__name__}: {detail})"


def _decode_all(paths: list[Path], decode: Decoder, *, size: int, channels: int,
                skip_bad_files: bool, progress: bool,
                ) -> tuple[np.ndarray, np.ndarray, list[tuple[Path, str]], bool]:
    from tqdm.auto import tqdm

    out = np.empty((len(paths), channels, size, size), dtype=np.float32)
    kept: list[int] = []
    skipped: list[tuple[Path, str]] = []
    all_8bit = True
    for i, path in enumerate(tqdm(paths, desc="decoding images", unit="img",
                                  disable=not progress or len(paths) < 2)):
        try:
            arr, eight_bit = _decode_one(path, decode, channels, size)
        except DataError as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - every decoder failure is a bad file
            reason = _reason(exc, path)
        else:
            all_8bit &= eight_bit
            out[len(kept)] = arr
            kept.append(i)
            continue
        if not skip_bad_files:
            _raise_bad(path, reason)
        skipped.append((path, reason))
    x = out[:len(kept)]
    return x, np.asarray(kept, dtype=np.int64), skipped, all_8bit
