"""Label-free pyod detectors on window statistics: "flag what looks unusual", no labels.

The core's Isolation Forest and ECOD (:mod:`sslcore.builtins.baselines.pyod_detectors`),
fitted on the statistics (:mod:`window_features`) of the unlabeled pool's windows (training
machines only) instead of the flattened raw windows; a test window's anomaly score is its
failure score. They never see a label (``uses_labels = False``), so their score is the same
at every label fraction; binary tasks only.

Example::

    det = WindowStatsIForest(WindowStatsIForestParams())
    det.fit(ctx)                       # ctx.unlabeled only
    scores = det.predict_scores(x_test)
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from sslcore.sdk import ECODDetector, ECODParams, IForestDetector, IForestParams
from sslcore_sensor_maintenance.baselines.window_features import window_stats


class WindowStatsIForestParams(IForestParams):
    n_estimators: int = Field(300, ge=1)
    max_fit_samples: int = Field(50_000, ge=2, description="unlabeled windows used to fit")


class WindowStatsECODParams(ECODParams):
    """The core ECOD's params (20,000 unlabeled windows fitted, scored 1,024 at a time)."""


class WindowStatsIForest(IForestDetector):
    """pyod Isolation Forest on window statistics of the unlabeled pool."""

    name = "window_stats_iforest"
    binary_only = True  # one anomaly score (sslcore.data_fit drops it for more classes)

    def _features(self, x: np.ndarray) -> np.ndarray:
        return window_stats(x)


class WindowStatsECOD(ECODDetector):
    """pyod ECOD on window statistics of the unlabeled pool (parameter-free)."""

    name = "window_stats_ecod"
    binary_only = True  # one anomaly score (sslcore.data_fit drops it for more classes)

    def _features(self, x: np.ndarray) -> np.ndarray:
        return window_stats(x)
