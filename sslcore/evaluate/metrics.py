"""Test-set metrics, computed with scikit-learn, and the sweep's way of computing them.

Each metric takes ``(y_true, scores)`` where ``scores`` is the positive-class score (N,) for a
binary task or class probabilities (N, C) for a multi-class task, and returns a float. MLflow
logs them as ``test_<name>``.

Metrics register through the ``sslcore_register_metrics`` hook as a
:class:`~sslcore.contracts.Metric` (the function and what it needs); the core's domain-free
ones below are registered in ``sslcore/builtins/plugin.py``, a vertical's own (the sensor
plugin's event metrics) in its plugin. Threshold metrics (``sensitivity``, ``specificity``)
also take the decision threshold the sweep chose on the validation split of each labeled
subset (never on test); metrics that read the test rows' metadata also take it.

scikit-learn is imported inside the functions: the built-in plugin imports this module when
the registries load, on every process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from sslcore.errors import ConfigError

if TYPE_CHECKING:
    from sslcore.contracts import Metric
    from sslcore.registry import Registry


def positive_scores(scores: np.ndarray) -> np.ndarray:
    """The positive-class score per row: ``scores`` itself (N,), or column 1 of (N, 2)."""
    s = np.asarray(scores, dtype=np.float64)
    return s[:, 1] if s.ndim == 2 else s


def _labels(scores: np.ndarray) -> np.ndarray:
    return scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(int)


def auprc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision) of the positive class."""
    from sklearn import metrics as skm

    if s.ndim == 2 and s.shape[1] > 2:
        return float(skm.average_precision_score(np.eye(s.shape[1])[y], s, average="macro"))
    return float(skm.average_precision_score(y, positive_scores(s)))


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn import metrics as skm

    if s.ndim == 2 and s.shape[1] > 2:
        return float(skm.roc_auc_score(y, s, multi_class="ovr", average="macro"))
    return float(skm.roc_auc_score(y, positive_scores(s)))


def accuracy(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn import metrics as skm

    return float(skm.accuracy_score(y, _labels(s)))


def macro_f1(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn import metrics as skm

    return float(skm.f1_score(y, _labels(s), average="macro"))


def recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float = 0.01) -> float:
    """Recall (true positive rate) at the best threshold whose false-positive rate <= ``fpr``."""
    from sklearn import metrics as skm

    fprs, tprs, _ = skm.roc_curve(y, positive_scores(s))
    ok = fprs <= fpr
    return float(tprs[ok].max()) if ok.any() else 0.0


def false_positives_at_recall(y: np.ndarray, s: np.ndarray, recall: float = 0.8) -> float:
    """How many negatives are flagged at the first threshold reaching ``recall``: analyst load."""
    from sklearn import metrics as skm

    fprs, tprs, _ = skm.roc_curve(y, positive_scores(s))
    idx = int(np.argmax(tprs >= recall))
    return float(round(fprs[idx] * int((y == 0).sum())))


def youden_threshold(y: np.ndarray, s: np.ndarray) -> float:
    """The score threshold maximising sensitivity + specificity - 1 (Youden's J) on ``y``.

    Meant for a validation split; 0.5 when it holds a single class.
    """
    from sklearn import metrics as skm

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


def lower_is_better(metrics: Registry[Metric], names: Iterable[str] | None = None) -> set[str]:
    """The registered metrics (of ``names``, default all) where lower values are better: what
    the report, the plots and the choice of the model to log take as ``lower_is_better``."""
    wanted = metrics.names() if names is None else [n for n in names if n in metrics]
    return {n for n in wanted if not metrics.get(n).build().higher_is_better}


def compute_one(name: str, metric: Metric, y: np.ndarray, scores: np.ndarray, *,
             threshold: float | None = None,
             meta: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """``{name: value}`` of one metric, plus ``{name.group: value}`` from its breakdown.

    Raises:
        ConfigError: the metric needs a threshold or test metadata that is not given.
    """
    if metric.needs_threshold and threshold is None:
        raise ConfigError(f"metric {name!r} needs a decision threshold chosen on validation "
                          "data; it applies to binary tasks only")
    if metric.needs_meta and not meta:
        raise ConfigError(f"metric {name!r} needs per-row test metadata {list(metric.needs_meta)}"
                          " (SSLData.test_meta); this dataset has none: drop it from "
                          "evaluation.metrics")

    def call(y: np.ndarray, scores: np.ndarray, meta: dict[str, np.ndarray]) -> float:
        args = [y, scores] + ([threshold] if metric.needs_threshold else []) \
            + ([meta] if metric.needs_meta else [])
        return metric.fn(*args)

    out = {name: call(y, scores, meta or {})}
    if metric.by_group is not None:
        for group, value in metric.by_group(call, y, scores, meta or {}).items():
            out[f"{name}.{group}"] = value
    return out


def compute(names: list[str], y: np.ndarray, scores: np.ndarray, *, metrics: Registry[Metric],
            threshold: float | None = None,
            meta: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """The named metrics of ``scores`` against ``y``.

    Args:
        metrics: the metric registry (``load_registries().metrics``).
        threshold: decision threshold for threshold metrics (chosen on validation data).
        meta: per-row metadata for metrics that read it (the dataset's ``test_meta``).

    Raises:
        UnknownComponentError: a name is not registered (with close matches).
        ConfigError: a metric is asked for without the threshold or metadata it needs.
    """
    out: dict[str, float] = {}
    for name in names:
        out |= compute_one(name, metrics.get(name).build(), y, scores, threshold=threshold,
                        meta=meta)
    return out
