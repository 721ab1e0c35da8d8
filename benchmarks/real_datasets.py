"""The real-data regression suite: small public datasets that ship inside pip packages.

sslcore's recipes were tuned on its own synthetic generators; these entries run them on real
data instead. Every dataset is read from files inside an installed wheel (scikit-learn,
scikit-image, sktime: the ``test`` extra), so nothing is downloaded at run time.

Splits (the same for every entry, deterministic):

- the rows of the package's own train and test files are pooled, exact duplicate rows are
  dropped (ArrowHead ships one pair; a copy on each side would leak a test row into the
  pool), then a stratified split (``SPLIT_SEED``) holds out ``TEST_FRACTION`` of them as
  the test set;
- ``labeled`` = the other rows with their labels (the pool the label-fraction sweep draws
  its 5 / 10 / 25% from);
- ``unlabeled`` = the same non-test rows' features with the labels dropped: the usual SSL
  setting, where the encoder is pretrained on every training row and a few of them are
  labeled. Test rows are never in ``unlabeled``.

Arrays: images float32 N x 1 x H x W in [0, 1]; series float32 N x C x T (as stored); tables
float32 N x D (raw: the backbones standardize on the unlabeled pool); labels int64 0..C-1.

    from real_datasets import SUITE
    data = SUITE["gunpoint"].load()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPLIT_SEED = 0
TEST_FRACTION = 0.3

Data = dict[str, Any]  # {"unlabeled": X, "labeled": (X, y), "test": (X, y)}


@dataclass(frozen=True)
class RealDataset:
    """One suite entry: where the data comes from and how sslcore is run on it.

    ``metrics`` replace the vertical's (the first is the primary one): a vertical's own
    metrics can be meaningless here, e.g. the sensor vertical's "failures caught 72 h ahead"
    on GunPoint. ``overrides`` are any other config changes the entry needs (none today).
    """

    name: str
    package: str  # the pip package whose wheel holds the files
    vertical: str
    metrics: tuple[str, ...]
    description: str
    loader: Callable[[], tuple[np.ndarray, np.ndarray]]  # -> (features, int labels), all rows
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every distinct row the package ships: (features, int64 labels 0..C-1)."""
        x, y = self.loader()
        _, first = np.unique(x.reshape(len(x), -1), axis=0, return_index=True)
        keep = np.sort(first)
        return x[keep], y[keep]

    def load(self) -> Data:
        """The ``data`` mapping for ``sslcore.compare`` (see the module docstring)."""
        x, y = self.rows()
        pool, test = split_rows(y)
        return {"unlabeled": x[pool], "labeled": (x[pool], y[pool]), "test": (x[test], y[test])}


def split_rows(y: np.ndarray, *, test_fraction: float = TEST_FRACTION,
               seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of row indices: (pool, test), each sorted."""
    from sklearn.model_selection import train_test_split

    pool, test = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y,
                                  random_state=seed)
    return np.sort(pool), np.sort(test)


def _codes(labels: np.ndarray) -> np.ndarray:
    """Any label values -> int64 codes 0..C-1 in sorted order of the values."""
    return np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1)


# ---- loaders: (features, labels) over every row the package ships ----------------------------

def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 handwritten digits (UCI), 0..16 grey levels -> [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return x, d.target.astype(np.int64)


def digits_one_vs_rest(digit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digits as a binary task: ``digit`` (about 10% of the rows) vs every other digit."""
    x, y = digits_images()
    return x, (y == digit).astype(np.int64)


def lfw_faces() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's LFW subset: 200 grey 25x25 crops, the first 100 faces, then 100 non-faces."""
    from skimage.data import lfw_subset
    from skimage.util import img_as_float32

    x = img_as_float32(lfw_subset())[:, None]
    y = np.r_[np.ones(100), np.zeros(100)].astype(np.int64)  # 1 = face
    return x, y


def ucr(name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """A UCR/UEA archive set bundled in sktime's wheel, train and test files pooled."""

    def load() -> tuple[np.ndarray, np.ndarray]:
        from sktime.datasets import load_UCR_UEA_dataset

        # Bundled sets are read from sktime/datasets/data; only others would be downloaded.
        x, y = load_UCR_UEA_dataset(name, return_type="numpy3D")
        return np.ascontiguousarray(x, dtype=np.float32), _codes(y)

    load.__name__ = f"ucr_{name}"
    return load


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's Wisconsin diagnostic breast cancer table: 569 rows, 30 columns;
    1 = malignant (37%), so that the positive class is the finding."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return d.data.astype(np.float32), (d.target == 0).astype(np.int64)


# ---- the suite ---------------------------------------------------------------------------------

_BINARY = ("auroc", "auprc", "accuracy")
_RARE = ("auprc", "auroc", "accuracy")
_MULTI = ("accuracy", "macro_f1")

_ENTRIES = [
    RealDataset("digits_0_vs_rest", "scikit-learn", "medical_imaging", _RARE,
                "8x8 handwritten digits, 0 vs the rest (10% positive), 1,797 images",
                lambda: digits_one_vs_rest(0)),
    RealDataset("digits", "scikit-learn", "satellite", _MULTI,
                "8x8 handwritten digits, 10 classes, 1,797 images", digits_images),
    RealDataset("lfw_faces", "scikit-image", "medical_imaging", _BINARY,
                "LFW subset: 25x25 grey faces vs non-faces, 200 images", lfw_faces),
    RealDataset("gunpoint", "sktime", "sensor_maintenance", _BINARY,
                "UCR GunPoint: hand motion, gun draw vs point, 200 x 1 x 150", ucr("GunPoint")),
    RealDataset("italy_power_demand", "sktime", "sensor_maintenance", _BINARY,
                "UCR ItalyPowerDemand: daily load curves, winter vs summer, 1,096 x 1 x 24",
                ucr("ItalyPowerDemand")),
    RealDataset("arrowhead", "sktime", "sensor_maintenance", _MULTI,
                "UCR ArrowHead: projectile point outlines, 3 classes, 211 (210 distinct) x 1 x 251",
                ucr("ArrowHead")),
    RealDataset("basic_motions", "sktime", "sensor_maintenance", _MULTI,
                "UEA BasicMotions: watch accelerometer + gyroscope, 4 activities, 80 x 6 x 100",
                ucr("BasicMotions")),
    RealDataset("breast_cancer", "scikit-learn", "tabular", _RARE,
                "Wisconsin diagnostic breast cancer, malignant vs benign, 569 x 30",
                breast_cancer),
    RealDataset("breast_cancer_fraud", "scikit-learn", "fraud_transactions", _RARE,
                "the breast cancer table through the fraud vertical (a generic numeric table)",
                breast_cancer),
]

SUITE: dict[str, RealDataset] = {e.name: e for e in _ENTRIES}
