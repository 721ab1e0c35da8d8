"""Label-free pyod detectors on window statistics: "flag what looks unusual", no labels.

Isolation Forest and ECOD fitted on the statistics (:mod:`window_features`) of the unlabeled
pool's windows (training machines only); a test window's anomaly score is its failure score.
They never see a label (``uses_labels = False``), so their score is the same at every label
fraction; binary tasks only.

References:
    Liu, Ting, Zhou. "Isolation Forest." ICDM 2008.
    Li, Zhao, Hu, Botta, Ionescu, Chen. "ECOD: Unsupervised Outlier Detection Using Empirical
    Cumulative Distribution Functions." IEEE TKDE 2022.

Example::

    det = WindowStatsDetector(WindowStatsIForestParams(), kind="iforest")
    det.fit(ctx)                       # ctx.unlabeled only
    scores = det.predict_scores(x_test)
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sslcore.builtins.baselines.pyod_detectors import require_binary, subsample
from sslcore.contracts import FitContext
from sslcore_sensor_maintenance.baselines.window_features import window_stats


class WindowStatsIForestParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_estimators: int = Field(300, ge=1)
    max_samples: int = Field(256, ge=2, description="windows per tree (the paper's psi)")
    max_fit_samples: int = Field(50_000, ge=2, description="unlabeled windows used to fit")


class WindowStatsECODParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_fit_samples: int = Field(20_000, ge=2, description="unlabeled windows used to fit")
    score_chunk: int = Field(1024, ge=1, description="windows scored together (pyod's ECOD "
                             "ranks new rows jointly with the fit rows)")


class _WindowStatsDetector(abc.ABC):
    uses_labels = False
    name = "window_stats_detector"

    def __init__(self, params: BaseModel) -> None:
        self.params = params
        self.detector: Any = None

    @abc.abstractmethod
    def _make(self, seed: int, n_rows: int) -> Any:
        """This detector's (unfitted) pyod estimator."""

    def fit(self, ctx: FitContext) -> None:
        require_binary(self.name, ctx.num_classes)
        feats = window_stats(subsample(ctx.unlabeled, self.params.max_fit_samples, ctx.seed))
        self.detector = self._make(ctx.seed, len(feats)).fit(feats)
        for attr in ("decision_scores_", "labels_", "O", "U_l", "U_r", "U_skew"):
            if hasattr(self.detector, attr):  # per-row buffers: keep pickles small
                setattr(self.detector, attr, None)

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.detector is None:
            raise RuntimeError(f"{self.name}: call fit() before predict_scores()")
        return np.asarray(self.detector.decision_function(window_stats(x)), dtype=np.float64)


class WindowStatsIForest(_WindowStatsDetector):
    """pyod Isolation Forest on window statistics of the unlabeled pool."""

    name = "window_stats_iforest"

    def _make(self, seed: int, n_rows: int) -> Any:
        from pyod.models.iforest import IForest

        p = self.params
        return IForest(n_estimators=p.n_estimators, max_samples=min(p.max_samples, n_rows),
                       random_state=seed, n_jobs=1)


class WindowStatsECOD(_WindowStatsDetector):
    """pyod ECOD on window statistics of the unlabeled pool (parameter-free)."""

    name = "window_stats_ecod"

    def _make(self, seed: int, n_rows: int) -> Any:
        from pyod.models.ecod import ECOD

        return ECOD(n_jobs=1)

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.detector is None:
            raise RuntimeError(f"{self.name}: call fit() before predict_scores()")
        feats = window_stats(x)
        step = self.params.score_chunk
        parts = [self.detector.decision_function(feats[i:i + step])
                 for i in range(0, len(feats), step)]
        return np.concatenate(parts).astype(np.float64) if parts else np.empty(0)
