"""The online linear probe: how well the encoder's embeddings separate the labels, during SSL.

Every ``pretrain.probe_every`` steps the pretraining loop hands the current backbone to an
:class:`OnlineProbe` (rank 0 only). It embeds a fixed labeled slice with the backbone in eval
mode (its train/eval mode is restored after), fits scikit-learn's LogisticRegression on one
half, the probe-fit rows, and scores the other half, the probe-val rows, with the run's
primary metric (:func:`sslcore.evaluate.metrics.compute`). The curve shows whether continued
pretraining helps or hurts the features long before the few-label sweep would (a linear probe
as the SSL literature's standard readout: Chen et al., SimCLR, 2020; He et al., MAE, 2022).

It is monitoring only: it never chooses a checkpoint or a step, and pretraining always ends
with its last weights. The slice comes from the LABELED pool only, never the test set, and is
a pure function of the seed: up to ``pretrain.probe_rows`` rows, each class split half and
half, with rare classes raised to at least an eighth of the slice each (when they have that
many rows) so both halves hold some. That shifts the class mix, so compare probe scores
between steps of one run, not with test scores. With ``labeled_groups`` a group never spans
both halves.

Example::

    probe = OnlineProbe(data.labeled_x, data.labeled_y, metric="auprc",
                        metrics=registries.metrics, num_classes=2, rows=512, seed=0)
    probe(backbone, step=100)   # {"probe_auprc": 0.41}
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from sslcore.evaluate.metrics import compute, youden_threshold
from sslcore.train.supervised import embed, proba_to_scores


def probe_rows(y: np.ndarray, rows: int, seed: int,
               groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``y`` of the probe-fit and probe-val rows (disjoint, sorted).

    Per class, a seeded sample: its share of ``rows``, raised to ``rows // 8`` for rare
    classes when they have that many; the largest classes give back the excess. Each class's
    rows alternate between the halves (fit first); with ``groups``, whole groups do.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    n = min(int(rows), len(y))
    quota = np.maximum(np.round(n * counts / counts.sum()), np.minimum(counts, n // 8))
    quota = np.minimum(quota, counts).astype(int)
    while quota.sum() > n:
        quota[int(np.argmax(quota))] -= 1
    group_half = None
    if groups is not None:
        names = np.unique(np.asarray(groups))
        half_of = dict(zip(names[rng.permutation(len(names))], np.arange(len(names)) % 2))
        group_half = np.array([half_of[g] for g in np.asarray(groups)])
    fit, val = [], []
    for c, q in zip(classes, quota):
        chosen = rng.permutation(np.flatnonzero(y == c))[:q]
        half = group_half[chosen] if group_half is not None else np.arange(len(chosen)) % 2
        fit.append(chosen[half == 0])
        val.append(chosen[half == 1])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


class OnlineProbe:
    """``probe(backbone, step) -> {"probe_<metric>": value}`` on a fixed labeled slice.

    Args:
        x, y: the labeled pool (never the test set) and its int labels.
        metric: the metric to score with (the run's primary metric).
        metrics: the metric registry (``load_registries().metrics``).
        num_classes: number of classes of the task.
        rows: at most this many rows in the slice (both halves).
        seed: fixes the slice and the logistic regression.
        groups: one group id per labeled row (``SSLData.labeled_groups``), or None.
        meta: per-row metadata of the labeled pool, for metrics that read it.
        higher_is_better: the metric's direction, for :meth:`best`.

    Raises:
        ValueError: the slice does not hold two classes in each half (too few labeled rows);
            the caller runs without a probe.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, metric: str, metrics: Any,
                 num_classes: int, rows: int = 512, seed: int = 0,
                 groups: np.ndarray | None = None, meta: dict[str, np.ndarray] | None = None,
                 higher_is_better: bool = True) -> None:
        fit, val = probe_rows(y, rows, seed, groups)
        y = np.asarray(y, dtype=np.int64)
        if len(np.unique(y[fit])) < 2 or len(np.unique(y[val])) < 2:
            raise ValueError(f"the labeled pool gives no probe slice with two classes in each "
                             f"half ({len(fit)} + {len(val)} rows of up to {rows})")
        self.rows_fit, self.rows_val = fit, val  # indices into the labeled pool
        self.x_fit, self.y_fit = np.asarray(x[fit], dtype=np.float32), y[fit]
        self.x_val, self.y_val = np.asarray(x[val], dtype=np.float32), y[val]
        self.meta_val = {k: np.asarray(v)[val] for k, v in (meta or {}).items()}
        self.metric, self.metrics, self.num_classes = metric, metrics, num_classes
        self.name = f"probe_{metric}"
        self.seed, self.higher_is_better = seed, higher_is_better
        self.seconds = 0.0  # time spent probing, for the cost report

    def __call__(self, backbone: nn.Module, step: int) -> dict[str, float]:
        """Score ``backbone`` now; its train/eval mode and the global RNG are left as found."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        start = time.perf_counter()
        device = next(backbone.parameters()).device
        with torch.random.fork_rng(devices=[]):
            z_fit = embed(backbone, self.x_fit, device, batch_size=256).astype(np.float64)
            z_val = embed(backbone, self.x_val, device, batch_size=256).astype(np.float64)
        if not (np.isfinite(z_fit).all() and np.isfinite(z_val).all()):
            self.seconds += time.perf_counter() - start
            return {self.name: float("nan")}
        model = make_pipeline(StandardScaler(), LogisticRegression(
            max_iter=500, class_weight="balanced", random_state=self.seed))
        with warnings.catch_warnings():  # a probe that stops at max_iter is still a reading
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z_fit, self.y_fit)
        classes = model.classes_

        def scores(z: np.ndarray) -> np.ndarray:
            return proba_to_scores(model.predict_proba(z), classes, self.num_classes)

        metric = self.metrics.get(self.metric).build()
        threshold = youden_threshold(self.y_fit, scores(z_fit)) \
            if metric.needs_threshold else None
        value = compute([self.metric], self.y_val, scores(z_val), metrics=self.metrics,
                        threshold=threshold, meta=self.meta_val)[self.metric]
        self.seconds += time.perf_counter() - start
        return {self.name: float(value)}

    def best(self, history: list[dict[str, float]]) -> tuple[int, float] | None:
        """``(step, value)`` of the best finite probe score in ``history`` (entries with a
        ``step`` key, as in ``PretrainResult.probes``), the earliest on ties; None if none."""
        points = [(int(h["step"]), float(h[self.name])) for h in history
                  if self.name in h and np.isfinite(h[self.name])]
        if not points:
            return None
        sign = 1.0 if self.higher_is_better else -1.0
        return max(points, key=lambda p: (sign * p[1], -p[0]))
