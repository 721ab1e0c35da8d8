"""SSLData: what every dataset loader returns, whatever the modality.

Features are float32 numpy arrays whose first axis is the sample: rows x columns for tables,
N x C x H x W for images, N x C x T for time series. Labels are int64 class indices. The
unlabeled pool may also be a memory-mapped array or a :class:`ParquetPool` (read by row group
during pretraining, never whole).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sslcore.data.parquet_pool import ParquetPool
from sslcore.errors import DataError

if TYPE_CHECKING:
    from sslcore.data.shift import ShiftedDomain

# Rows of a lazily read pool loaded for label-free statistics (normalizers, detectors).
IN_MEMORY_SAMPLE = 200_000


@dataclass
class DataCard:
    """Provenance of a dataset, logged as params of the parent MLflow run."""

    sources: list[str]
    rows: dict[str, int]
    class_balance: dict[str, dict[str, int]]
    content_hash: str
    notes: dict[str, Any] = field(default_factory=dict)

    def as_params(self) -> dict[str, str]:
        out = {"data.sources": ";".join(self.sources), "data.content_hash": self.content_hash}
        out |= {f"data.rows.{k}": str(v) for k, v in self.rows.items()}
        for split, counts in self.class_balance.items():
            out |= {f"data.class_balance.{split}.{c}": str(n) for c, n in counts.items()}
        out |= {f"data.{k}": str(v) for k, v in self.notes.items()}
        return out


@dataclass
class SSLData:
    """Unlabeled pool, labeled pool and held-out test set of one experiment.

    ``test_*`` never reaches pretraining, model selection or thresholds; ``labeled_*`` is the
    pool the label-fraction sampler draws from.
    """

    unlabeled: np.ndarray
    labeled_x: np.ndarray
    labeled_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    sources: list[str] = field(default_factory=lambda: ["in-memory arrays"])
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    # One group id per labeled row (e.g. a machine's failure history): label fractions then
    # sample whole groups, and the train/val split never cuts a group in two.
    labeled_groups: np.ndarray | None = None
    # Per-row side information (machine id, timestamps, remaining useful life, ...): heads may
    # read labeled_meta; event metrics read test_meta. Never features.
    labeled_meta: dict[str, np.ndarray] = field(default_factory=dict)
    test_meta: dict[str, np.ndarray] = field(default_factory=dict)
    # Named shifted domains (sslcore.data.shift): every model is also scored on each test set;
    # an unlabeled pool joins pretraining only when pretrain.target_unlabeled names it.
    shifted: dict[str, ShiftedDomain] = field(default_factory=dict)
    _sample: np.ndarray | None = field(default=None, repr=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.unlabeled.shape[1:])

    def unlabeled_array(self, max_rows: int = IN_MEMORY_SAMPLE) -> np.ndarray:
        """The unlabeled pool as an array; for a pool too big to load (a ParquetPool), a
        seeded sample of ``max_rows`` rows, for label-free statistics and detectors."""
        if isinstance(self.unlabeled, ParquetPool):
            if self._sample is None:
                self._sample = self.unlabeled.sample(max_rows)
            return self._sample
        return self.unlabeled

    @property
    def num_classes(self) -> int:
        if self.class_names:
            return len(self.class_names)
        return int(max(self.labeled_y.max(), self.test_y.max())) + 1

    def validate(self) -> SSLData:
        """Check shapes, dtypes, finiteness and labels; raise DataError naming the array.

        Returns self with features cast to float32 and labels to int64.
        """
        arrays = {"unlabeled": self.unlabeled, "labeled": self.labeled_x, "test": self.test_x}
        if isinstance(self.unlabeled, ParquetPool):  # read lazily: checked as it is read
            arrays.pop("unlabeled")
        for name, x in arrays.items():
            if not isinstance(x, np.ndarray) or x.ndim < 2:
                raise DataError(f"{name} features must be an array of shape (n_samples, ...), "
                                f"got {type(x).__name__} {getattr(x, 'shape', '')}")
            if len(x) == 0:
                raise DataError(f"{name} features are empty: provide at least one sample")
            if x.ndim == 4:
                _check_channels_first(name, tuple(x.shape[1:]))
            if x.shape[1:] != self.unlabeled.shape[1:]:
                raise DataError(_mismatch(name, tuple(x.shape[1:]),
                                          tuple(self.unlabeled.shape[1:])))
            if not np.issubdtype(x.dtype, np.number):
                raise DataError(f"{name} features have dtype {x.dtype}; numeric expected")
            _check_finite(name, x, self.feature_names)
        for name, x, y in (("labeled", self.labeled_x, self.labeled_y),
                           ("test", self.test_x, self.test_y)):
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{name} labels have shape {y.shape}; expected ({len(x)},), "
                                "one label per row")
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"{name} labels have dtype {y.dtype}; integer classes expected")
            if len(np.unique(y)) < 2:
                raise DataError(f"{name} labels have a single class ({np.unique(y).tolist()}); "
                                "a comparison needs at least two classes in each split")
        if self.labeled_groups is not None and len(self.labeled_groups) != len(self.labeled_x):
            raise DataError(f"labeled_groups has {len(self.labeled_groups)} entries for "
                            f"{len(self.labeled_x)} labeled rows; give one group id per row")
        for split, meta, n in (("labeled_meta", self.labeled_meta, len(self.labeled_x)),
                               ("test_meta", self.test_meta, len(self.test_x))):
            for key, values in meta.items():
                if len(values) != n:
                    raise DataError(f"{split}[{key!r}] has {len(values)} entries for {n} rows; "
                                    "give one value per row")
        if not isinstance(self.unlabeled, ParquetPool):
            self.unlabeled = self.unlabeled.astype(np.float32, copy=False)
        self.labeled_x = self.labeled_x.astype(np.float32, copy=False)
        self.test_x = self.test_x.astype(np.float32, copy=False)
        self.labeled_y = self.labeled_y.astype(np.int64, copy=False)
        self.test_y = self.test_y.astype(np.int64, copy=False)
        if self.shifted:
            from sslcore.data.shift import check_domains

            check_domains(self)
        return self

    def card(self) -> DataCard:
        digest = hashlib.sha256()
        for arr in (self.unlabeled, self.labeled_x, self.labeled_y, self.test_x, self.test_y):
            if isinstance(arr, ParquetPool):
                digest.update(arr.fingerprint().encode())  # files' identity, not a full read
            else:
                digest.update(np.ascontiguousarray(arr).tobytes())
        rows = {"unlabeled": len(self.unlabeled), "labeled": len(self.labeled_x),
                "test": len(self.test_x)}
        for name, dom in sorted(self.shifted.items()):  # none: the hash is as before
            digest.update(f"shifted:{name}".encode())
            for arr in (dom.test_x, dom.test_y, dom.unlabeled):
                if isinstance(arr, ParquetPool):
                    digest.update(arr.fingerprint().encode())
                elif arr is not None:
                    digest.update(np.ascontiguousarray(arr).tobytes())
            rows[f"shift.{name}.test"] = len(dom.test_x)
            if dom.unlabeled is not None:
                rows[f"shift.{name}.unlabeled"] = len(dom.unlabeled)
        names = self.class_names or [str(i) for i in range(self.num_classes)]

        def balance(y: np.ndarray) -> dict[str, int]:
            counts = np.bincount(y, minlength=len(names))
            return {names[i]: int(c) for i, c in enumerate(counts)}

        class_balance = {"labeled": balance(self.labeled_y), "test": balance(self.test_y)}
        class_balance |= {f"shift.{n}.test": balance(d.test_y) for n, d in self.shifted.items()}
        return DataCard(
            sources=self.sources + [f"shifted {n}: {'; '.join(d.sources) or 'arrays'}"
                                    for n, d in self.shifted.items()],
            rows=rows, class_balance=class_balance,
            content_hash=digest.hexdigest()[:16],
            notes=self.notes,
        )


def _check_channels_first(name: str, shape: tuple[int, ...]) -> None:
    """Images are N x C x H x W; N x H x W x C (PIL, OpenCV, tifffile) would silently become
    32-channel images 3 px wide, so a square H x W with few channels last is refused."""
    a, b, c = shape
    if a == b > 4 * c:
        raise DataError(f"{name} images have shape {shape} per sample, which looks like "
                        f"height x width x channels (channels last); sslcore's images are "
                        f"N x C x H x W: pass x.transpose(0, 3, 1, 2) (shape (N, {c}, {a}, "
                        f"{b}))")


def _mismatch(name: str, shape: tuple[int, ...], reference: tuple[int, ...]) -> str:
    """Why split ``name``'s per-sample shape differs from the unlabeled pool's, and the fix."""
    if len(shape) == len(reference) == 3:  # images: channels, or height and width
        if shape[0] != reference[0]:
            return (f"{name} images have {shape[0]} channel(s) but unlabeled has "
                    f"{reference[0]}: every split needs the same bands in the same order (for "
                    "colour next to greyscale, convert with x.mean(axis=1, keepdims=True))")
        return (f"{name} images are {shape[1]} x {shape[2]} px but unlabeled are {reference[1]} "
                f"x {reference[2]}: resize every split to one size, e.g. "
                f"torch.nn.functional.interpolate(torch.as_tensor(x), size=({reference[1]}, "
                f"{reference[2]}), mode='bilinear')")
    return (f"{name} features have shape {shape} per sample but unlabeled has {reference}: "
            "all splits must match")


def _check_finite(name: str, x: np.ndarray, feature_names: list[str] | None) -> None:
    if np.issubdtype(x.dtype, np.integer):
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    row = int(np.argwhere(bad)[0][0])
    where = np.argwhere(bad)[0][1:]
    col = ""
    if x.ndim == 2:
        c = int(where[0])
        col = f", column {feature_names[c] if feature_names else c}"
    elif len(where):
        col = f", position {tuple(int(i) for i in where)}"
    raise DataError(f"{name} features contain {int(bad.sum())} NaN/inf values (first at row "
                    f"{row}{col}); impute or drop them before running")
