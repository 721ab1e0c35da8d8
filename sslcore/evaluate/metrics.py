"""Test-set metrics, computed with scikit-learn. Names are the same in every vertical.

Each metric takes ``(y_true, scores)`` where ``scores`` is the positive-class score (N,) for a
binary task or class probabilities (N, C) for a multi-class task, and returns a float. MLflow
logs them as ``test_<name>``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def _binary(scores: np.ndarray) -> np.ndarray:
    return scores[:, 1] if scores.ndim == 2 else scores


def _labels(scores: np.ndarray) -> np.ndarray:
    return scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(int)


def auprc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision) of the positive class."""
    if s.ndim == 2 and s.shape[1] > 2:
        return float(skm.average_precision_score(np.eye(s.shape[1])[y], s, average="macro"))
    return float(skm.average_precision_score(y, _binary(s)))


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    if s.ndim == 2 and s.shape[1] > 2:
        return float(skm.roc_auc_score(y, s, multi_class="ovr", average="macro"))
    return float(skm.roc_auc_score(y, _binary(s)))


def accuracy(y: np.ndarray, s: np.ndarray) -> float:
    return float(skm.accuracy_score(y, _labels(s)))


def macro_f1(y: np.ndarray, s: np.ndarray) -> float:
    return float(skm.f1_score(y, _labels(s), average="macro"))


def recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float = 0.01) -> float:
    """Recall (true positive rate) at the best threshold whose false-positive rate <= ``fpr``."""
    fprs, tprs, _ = skm.roc_curve(y, _binary(s))
    ok = fprs <= fpr
    return float(tprs[ok].max()) if ok.any() else 0.0


def false_positives_at_recall(y: np.ndarray, s: np.ndarray, recall: float = 0.8) -> float:
    """How many negatives are flagged at the first threshold reaching ``recall``: analyst load."""
    fprs, tprs, _ = skm.roc_curve(y, _binary(s))
    idx = int(np.argmax(tprs >= recall))
    return float(round(fprs[idx] * int((y == 0).sum())))


METRICS: dict[str, MetricFn] = {
    "auprc": auprc,
    "auroc": auroc,
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "recall_at_1pct_fpr": recall_at_fpr,
    "fp_at_80pct_recall": false_positives_at_recall,
}
# Metrics where lower is better; the report and model choice respect this.
LOWER_IS_BETTER = {"fp_at_80pct_recall"}


def compute(names: list[str], y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {name: METRICS[name](y, scores) for name in names}
