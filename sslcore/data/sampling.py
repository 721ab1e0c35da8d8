"""Label-fraction sampling: stratified, nested across fractions, aware of rare positives.

For one seed, each class's rows of the labeled pool are shuffled once; the subset for fraction
f takes the first ``ceil(f * n_c)`` rows of every class c (at least ``min_per_class``). The
subsets are therefore nested (1% within 5% within 10%) and keep the class balance, and a class
as rare as 0.5% still has positives at 1% labels. Inside each subset a validation split (for
early stopping and thresholds, never the test set) takes every k-th row of each class, which
keeps it nested too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sslcore.errors import DataError


@dataclass(frozen=True)
class LabeledSubset:
    """Indices into the labeled pool for one (fraction, seed)."""

    fraction: float
    seed: int
    train: np.ndarray
    val: np.ndarray

    @property
    def all(self) -> np.ndarray:
        return np.concatenate([self.train, self.val])

    def class_counts(self, y: np.ndarray, num_classes: int) -> list[int]:
        return np.bincount(y[self.all], minlength=num_classes).tolist()


def nested_subsets(
    y: np.ndarray,
    fractions: list[float],
    seed: int,
    *,
    min_per_class: int = 2,
    val_fraction: float = 0.2,
) -> list[LabeledSubset]:
    """Return one LabeledSubset per fraction (ascending), nested for this seed.

    Raises:
        DataError: a class has fewer than ``min_per_class`` rows in the labeled pool, so some
            fraction would leave it (e.g. the positives) out entirely.
    """
    classes, counts = np.unique(y, return_counts=True)
    for c, n in zip(classes, counts, strict=True):
        if n < min_per_class:
            raise DataError(
                f"labeled pool has only {n} row(s) of class {c}; every label fraction needs at "
                f"least {min_per_class} (evaluation.min_labeled_per_class). Label more rows of "
                "this class or lower evaluation.min_labeled_per_class.")
    rng = np.random.default_rng(seed)
    orders = {int(c): rng.permutation(np.flatnonzero(y == c)) for c in classes}
    step = max(2, round(1 / val_fraction))
    out = []
    for f in sorted(fractions):
        train, val = [], []
        for order in orders.values():
            k = min(len(order), max(min_per_class, math.ceil(f * len(order))))
            chosen = order[:k]
            is_val = (np.arange(k) % step) == step - 1
            if k >= 2 and not is_val.any():
                is_val[-1] = True  # at least one validation row of every class
            train.append(chosen[~is_val])
            val.append(chosen[is_val])
        out.append(LabeledSubset(f, seed, np.sort(np.concatenate(train)),
                                 np.sort(np.concatenate(val))))
    return out
