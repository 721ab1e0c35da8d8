"""The synthetic radiographs: deterministic, well-formed, the prevalence asked for, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sslcore_medical_imaging.datasets import SyntheticParams, medical_synthetic
from sslcore_medical_imaging.synthetic import PATTERNS, SCANNERS, generate_radiographs


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    return generate_radiographs(600, size=32, prevalence=0.3, seed=3)


def test_shapes_range_and_8bit_steps(images) -> None:  # type: ignore[no-untyped-def]
    x, y, meta = images
    assert x.shape == (600, 1, 32, 32) and x.dtype == np.float32
    assert y.shape == (600,) and y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-3)  # 8-bit levels
    assert x.std(axis=(1, 2, 3)).min() > 0.05  # every image has content
    assert set(meta) == {"scanner", "pattern", "severity"}
    assert set(np.unique(meta["scanner"])) == set(range(len(SCANNERS)))


def test_prevalence_and_patterns_follow_labels(images) -> None:  # type: ignore[no-untyped-def]
    x, y, meta = images
    assert 0.25 < y.mean() < 0.35
    assert (meta["pattern"][y == 0] == 0).all() and (meta["severity"][y == 0] == 0).all()
    assert set(np.unique(meta["pattern"][y == 1])) == set(range(1, len(PATTERNS)))
    assert (meta["severity"][y == 1] > 0.1).all()


def test_deterministic_by_seed() -> None:
    a = generate_radiographs(150, size=32, seed=7)
    b = generate_radiographs(150, size=32, seed=7)
    c = generate_radiographs(150, size=32, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_disease_makes_the_lungs_denser() -> None:
    """The label is in the pixels: pneumonia raises the mean intensity of the lung zones,
    and more so with severity (a learnable, not trivially separable, signal)."""
    x, y, meta = generate_radiographs(500, size=32, seed=1)
    lungs = x[:, 0, 8:22, 4:28].mean(axis=(1, 2))
    sev = meta["severity"]
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(y, lungs)
    assert 0.5 < auc < 0.9  # some signal in a crude statistic, far from separable
    severe, mild = lungs[sev > 0.5], lungs[(sev > 0) & (sev < 0.25)]
    assert severe.mean() > mild.mean()


def test_thousand_images_take_seconds() -> None:
    start = time.perf_counter()
    x, _, _ = generate_radiographs(1000, size=64, seed=0)
    assert x.shape == (1000, 1, 64, 64)
    assert time.perf_counter() - start < 20.0  # ~2.5 s on one idle core


def test_dataset_splits_and_card() -> None:
    data = medical_synthetic(SyntheticParams(n_unlabeled=40, n_labeled=30, n_test=30, size=32),
                             seed=0)
    assert (len(data.unlabeled), len(data.labeled_x), len(data.test_x)) == (40, 30, 30)
    assert data.input_shape == (1, 32, 32)
    assert data.class_names == ["NORMAL", "PNEUMONIA"]
    assert set(data.test_meta) == {"scanner", "pattern", "severity"}
    card = data.card()
    assert card.rows == {"unlabeled": 40, "labeled": 30, "test": 30}
    again = medical_synthetic(SyntheticParams(n_unlabeled=40, n_labeled=30, n_test=30, size=32),
                              seed=0)
    assert again.card().content_hash == card.content_hash
