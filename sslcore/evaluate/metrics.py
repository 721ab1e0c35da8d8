"""Test-set metrics, computed with scikit-learn. Names are the same in every vertical.

Each metric takes ``(y_true, scores)`` where ``scores`` is the positive-class score (N,) for a
binary task or class probabilities (N, C) for a multi-class task, and returns a float. MLflow
logs them as ``test_<name>``.

Two families need more than that. Threshold metrics (``sensitivity``, ``specificity``) take the
decision threshold the sweep chose on the validation split of each labeled subset (never on
test). Event metrics (``event_metrics.EVENT_METRICS``) take the test rows' metadata, such as
the machine and the hours to its next failure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

from sslcore.errors import ConfigError
from sslcore.evaluate.event_metrics import (
    EVENT_LOWER_IS_BETTER,
    EVENT_METRICS,
    by_failure_mode,
    positive_scores,
)

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def _labels(scores: np.ndarray) -> np.ndarray:
    return scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(int)


def auprc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision) of the positive class."""
    if s.ndim == 2 and s.shape[1] > 2:
        return float(skm.average_precision_score(np.eye(s.shape[1])[y], s, average="macro"))
    return float(skm.average_precision_score(y, positive_scores(s)))


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    if s.ndim == 2 and s.shape[1] > 2:
        return float(skm.roc_auc_score(y, s, multi_class="ovr", average="macro"))
    return float(skm.roc_auc_score(y, positive_scores(s)))


def accuracy(y: np.ndarray, s: np.ndarray) -> float:
    return float(skm.accuracy_score(y, _labels(s)))


def macro_f1(y: np.ndarray, s: np.ndarray) -> float:
    return float(skm.f1_score(y, _labels(s), average="macro"))


def recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float = 0.01) -> float:
    """Recall (true positive rate) at the best threshold whose false-positive rate <= ``fpr``."""
    fprs, tprs, _ = skm.roc_curve(y, positive_scores(s))
    ok = fprs <= fpr
    return float(tprs[ok].max()) if ok.any() else 0.0


def false_positives_at_recall(y: np.ndarray, s: np.ndarray, recall: float = 0.8) -> float:
    """How many negatives are flagged at the first threshold reaching ``recall``: analyst load."""
    fprs, tprs, _ = skm.roc_curve(y, positive_scores(s))
    idx = int(np.argmax(tprs >= recall))
    return float(round(fprs[idx] * int((y == 0).sum())))


def youden_threshold(y: np.ndarray, s: np.ndarray) -> float:
    """The score threshold maximising sensitivity + specificity - 1 (Youden's J) on ``y``.

    Meant for a validation split; 0.5 when it holds a single class.
    """
    if len(np.unique(y)) < 2:
        return 0.5
    fprs, tprs, thresholds = skm.roc_curve(y, positive_scores(s))
    best = int(np.argmax(tprs - fprs))
    return float(min(thresholds[best], np.nextafter(np.inf, 0)))  # roc_curve's first is inf


def sensitivity(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> float:
    """True positive rate of ``score >= threshold`` (recall of the positive class)."""
    pos = y == 1
    return float((positive_scores(s)[pos] >= threshold).mean()) if pos.any() else float("nan")


def specificity(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> float:
    """True negative rate of ``score >= threshold``."""
    neg = y == 0
    return float((positive_scores(s)[neg] < threshold).mean()) if neg.any() else float("nan")


THRESHOLD_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "sensitivity": sensitivity,
    "specificity": specificity,
}

METRICS: dict[str, MetricFn] = {
    "auprc": auprc,
    "auroc": auroc,
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "recall_at_1pct_fpr": recall_at_fpr,
    "fp_at_80pct_recall": false_positives_at_recall,
}
# Metrics where lower is better; the report and model choice respect this.
LOWER_IS_BETTER = {"fp_at_80pct_recall"} | EVENT_LOWER_IS_BETTER
ALL_METRICS = [*METRICS, *THRESHOLD_METRICS, *EVENT_METRICS]


def compute(names: list[str], y: np.ndarray, scores: np.ndarray, *,
            threshold: float | None = None,
            meta: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """The named metrics of ``scores`` against ``y``.

    Args:
        threshold: decision threshold for threshold metrics (chosen on validation data).
        meta: per-row metadata for event metrics (the dataset's ``test_meta``).

    Raises:
        ConfigError: a threshold or event metric is asked for without what it needs.
    """
    out = {}
    for name in names:
        if name in THRESHOLD_METRICS:
            if threshold is None:
                raise ConfigError(f"metric {name!r} needs a decision threshold chosen on "
                                  "validation data; it applies to binary tasks only")
            out[name] = THRESHOLD_METRICS[name](y, scores, threshold)
        elif name in EVENT_METRICS:
            if not meta:
                raise ConfigError(f"metric {name!r} needs per-row test metadata (SSLData."
                                  "test_meta, e.g. machine and hours to failure); this dataset "
                                  "has none: drop it from evaluation.metrics")
            out[name] = EVENT_METRICS[name](y, scores, meta)
            for mode, value in by_failure_mode(EVENT_METRICS[name], y, scores, meta).items():
                out[f"{name}.{mode}"] = value
        else:
            out[name] = METRICS[name](y, scores)
    return out
