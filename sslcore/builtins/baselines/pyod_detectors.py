"""Label-free anomaly detectors from pyod, fitted on the unlabeled pool.

These are the "no labels at all" reference points of a comparison: Isolation Forest and ECOD
on the raw (flattened) features. They never see the labeled subset, so their score does not
change with the label fraction (``uses_labels = False``); they score binary tasks only
(higher = more anomalous = more likely positive).

References:
    Liu, Ting, Zhou. "Isolation Forest." ICDM 2008.
    Li, Zhao, Hu, Botta, Ionescu, Chen. "ECOD: Unsupervised Outlier Detection Using Empirical
    Cumulative Distribution Functions." IEEE TKDE 2022.
    Zhao, Nasrullah, Li. "PyOD: A Python Toolbox for Scalable Outlier Detection." JMLR 2019.

Example::

    det = IForestDetector(IForestParams(n_estimators=200))
    det.fit(ctx)                      # uses ctx.unlabeled only
    scores = det.predict_scores(x_test)
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sslcore.builtins.baselines.hist_gbm import flatten
from sslcore.contracts import FitContext
from sslcore.errors import DataError


def subsample(x: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` rows of ``x``, drawn without replacement, in their original order."""
    if len(x) <= max_rows:
        return x
    rows = np.random.default_rng(seed).choice(len(x), max_rows, replace=False)
    return x[np.sort(rows)]


def require_binary(name: str, num_classes: int) -> None:
    """Raise unless the task is binary: a single anomaly score cannot rank several classes."""
    if num_classes != 2:
        raise DataError(f"{name} is a label-free anomaly score and only fits binary tasks "
                        f"(this task has {num_classes} classes); remove it from the methods")


class IForestParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_estimators: int = Field(200, ge=1)
    max_samples: int = Field(256, ge=2, description="rows per tree (the paper's psi=256)")
    max_features: float = Field(1.0, gt=0, le=1)
    max_fit_samples: int = Field(100_000, ge=2, description="unlabeled rows used to fit")


class ECODParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_fit_samples: int = Field(20_000, ge=2, description="unlabeled rows used to fit")
    score_chunk: int = Field(1024, ge=1, description="rows scored together: pyod's ECOD "
                             "ranks new rows jointly with the fit rows, so small chunks keep a "
                             "row's score nearly independent of the other test rows")


class _PyODDetector(abc.ABC):
    """Shared fit/score of the pyod detectors on the rows of ``ctx.unlabeled``, flattened or
    turned into features by a subclass's ``_features`` (e.g. sensor window statistics)."""

    uses_labels = False
    binary_only = True  # an anomaly score ranks one positive class (sslcore.data_fit)
    name = "pyod"

    def __init__(self, params: BaseModel) -> None:
        self.params = params
        self.detector: Any = None

    @abc.abstractmethod
    def _make(self, seed: int, n_rows: int) -> Any:
        """Build this detector's (unfitted) pyod estimator."""

    def _features(self, x: np.ndarray) -> np.ndarray:
        """Rows -> the 2-D features the detector sees (here: flattened)."""
        return flatten(x)

    def fit(self, ctx: FitContext) -> None:
        require_binary(self.name, ctx.num_classes)
        x = self._features(subsample(ctx.unlabeled, self.params.max_fit_samples, ctx.seed))
        self.detector = self._make(ctx.seed, len(x)).fit(x)
        self._drop_buffers()

    def _drop_buffers(self) -> None:
        """Drop per-row matrices pyod keeps from its last scoring pass (keeps pickles small)."""
        for attr in ("U_l", "U_r", "U_skew", "O", "decision_scores_", "labels_"):
            if hasattr(self.detector, attr):
                setattr(self.detector, attr, None)

    def _fitted(self) -> Any:
        if self.detector is None:
            raise RuntimeError(f"{self.name}: call fit() before predict_scores()")
        return self.detector

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fitted().decision_function(self._features(x)),
                          dtype=np.float64)


class IForestDetector(_PyODDetector):
    """pyod Isolation Forest fitted on the unlabeled pool; deterministic by ``ctx.seed``."""

    name = "iforest"

    def _make(self, seed: int, n_rows: int) -> Any:
        from pyod.models.iforest import IForest

        p = self.params
        return IForest(n_estimators=p.n_estimators, max_samples=min(p.max_samples, n_rows),
                       max_features=p.max_features, random_state=seed, n_jobs=1)


class ECODDetector(_PyODDetector):
    """pyod ECOD (parameter-free, per-feature tail probabilities) on the unlabeled pool."""

    name = "ecod"

    def _make(self, seed: int, n_rows: int) -> Any:
        from pyod.models.ecod import ECOD

        return ECOD(n_jobs=1)

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        x = self._features(x)
        step = self.params.score_chunk
        det = self._fitted()
        parts = [det.decision_function(x[i:i + step]) for i in range(0, len(x), step)]
        self._drop_buffers()
        return np.concatenate(parts).astype(np.float64) if parts else np.empty(0)
