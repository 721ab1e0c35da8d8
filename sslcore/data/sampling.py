"""Label-fraction sampling: stratified, nested across fractions, aware of rare positives.

For one seed, each class's rows of the labeled pool are shuffled once; the subset for fraction
f takes the first ``ceil(f * n_c)`` rows of every class c (at least ``min_per_class``). The
subsets are therefore nested (1% within 5% within 10%) and keep the class balance, and a class
as rare as 0.5% still has positives at 1% labels. Inside each subset a validation split (for
early stopping and thresholds, never the test set) takes every k-th row of each class, which
keeps it nested too.

With ``groups`` (one id per row, e.g. a machine's failure history), whole groups are sampled
instead of rows: a group's class is the largest label among its rows (for binary tasks: "has a
positive"), groups are stratified by it, and the validation split takes whole groups. So "5% of
failures labeled" means 5% of the failure histories with all their rows, as plants label them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
    groups: np.ndarray | None = None,
) -> list[LabeledSubset]:
    """Return one LabeledSubset per fraction (ascending), nested for this seed.

    Raises:
        DataError: a class has fewer than ``min_per_class`` rows (groups, when ``groups`` is
            given) in the labeled pool, so some fraction would leave it out entirely.
    """
    if groups is not None:
        return _group_subsets(y, np.asarray(groups), fractions, seed,
                              min_per_class=min_per_class, val_fraction=val_fraction)
    classes, counts = np.unique(y, return_counts=True)
    for c, n in zip(classes, counts, strict=True):
        if n < min_per_class:
            raise DataError(
                f"labeled pool has only {n} row(s) of class {c}; every label fraction needs at "
                f"least {min_per_class} (evaluation.min_labeled_per_class). Label more rows of "
                "this class or lower evaluation.min_labeled_per_class.")
    rng = np.random.default_rng(seed)
    orders = {int(c): rng.permutation(np.flatnonzero(y == c)) for c in classes}
    return _take(orders, fractions, seed, min_per_class, val_fraction, lambda idx: idx)


def labeled_subsets(data: Any, evaluation: Any, fractions: list[float],
                    seed: int) -> list[LabeledSubset]:
    """:func:`nested_subsets` of an SSLData's labeled pool under an ``EvaluationConfig``'s
    rules, by group where the data has ``labeled_groups``. The sweep, the check before
    pretraining and ``sslcore.finetune`` all draw through here, so they pick the same rows."""
    return nested_subsets(data.labeled_y, fractions, seed,
                          min_per_class=evaluation.min_labeled_per_class,
                          val_fraction=evaluation.val_fraction, groups=data.labeled_groups)


def _group_subsets(y: np.ndarray, groups: np.ndarray, fractions: list[float], seed: int, *,
                   min_per_class: int, val_fraction: float) -> list[LabeledSubset]:
    ids, inverse = np.unique(groups, return_inverse=True)
    group_class = np.zeros(len(ids), dtype=np.int64)
    np.maximum.at(group_class, inverse, y)
    # A group (a failure history) counts for every class among its rows: on run-to-failure
    # data every group holds healthy rows too, so no group's *top* class is 0.
    for c in np.unique(y):
        n = len(np.unique(inverse[y == c]))
        if n < min_per_class:
            raise DataError(
                f"labeled pool has only {n} group(s) whose rows include class {c} (e.g. failure "
                f"histories); every label fraction needs at least {min_per_class} "
                "(evaluation.min_labeled_per_class). Label more of them or lower "
                "evaluation.min_labeled_per_class.")
    rows_of = np.split(np.argsort(inverse, kind="stable"),
                       np.cumsum(np.bincount(inverse, minlength=len(ids)))[:-1])
    rng = np.random.default_rng(seed)
    orders = {int(c): rng.permutation(np.flatnonzero(group_class == c))
              for c in np.unique(group_class)}

    def rows(chosen_groups: np.ndarray) -> np.ndarray:
        if len(chosen_groups) == 0:
            return np.empty(0, dtype=np.int64)
        return np.concatenate([rows_of[g] for g in chosen_groups])

    return _take(orders, fractions, seed, min_per_class, val_fraction, rows)


def _take(orders: dict[int, np.ndarray], fractions: list[float], seed: int, min_per_class: int,
          val_fraction: float, rows: Any) -> list[LabeledSubset]:
    """Nested prefixes of each class's shuffled units (rows or groups), with a val split."""
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
            train.append(rows(chosen[~is_val]))
            val.append(rows(chosen[is_val]))
        out.append(LabeledSubset(f, seed, np.sort(np.concatenate(train)),
                                 np.sort(np.concatenate(val))))
    return out
