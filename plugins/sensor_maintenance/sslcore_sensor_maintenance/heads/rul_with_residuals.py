"""RUL regression plus the normal-behaviour residual: what the labels taught, and what they can't.

With a handful of labeled failures, a supervised score learns the degradation patterns of those
failures; a failure mode it never saw, or an early drift it has not learnt to read, can still
show as a departure from normal behaviour, which the masked-pretrained encoder measures without
labels (:func:`~sslcore_sensor_maintenance.heads.normal_behavior.sensor_residuals`). Condition
monitoring practice combines the two kinds of evidence; this head adds them as standardized
scores:

    score = z(rul_regression score) + residual_weight * z(log reconstruction anomaly)

each standardized by its mean and standard deviation over the labeled training windows, so
neither dominates by scale. The weight is fixed in advance (default 1: equal say), not chosen on
the validation split, which at a few labeled failures holds too few positives to choose it. The
residual comes from the pretrained encoder as it is; the regression fine-tunes a copy (the
one ``rul_regression`` fitted on the same rows, when it ran first in the sweep).

Example::

    head = RULWithResiduals(RULWithResidualsParams())
    head.fit(ctx)                      # ctx.encoder: masked-pretrained; ctx.meta_train["rul"]
    scores = head.predict_scores(x_test)
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from sslcore.contracts import FitContext
from sslcore_sensor_maintenance.backbones.base import SequenceBackbone
from sslcore_sensor_maintenance.heads.normal_behavior import (
    anomaly_from_residuals,
    sensor_residuals,
    sequence_encoder,
)
from sslcore_sensor_maintenance.heads.rul_regression import RULRegression, RULRegressionParams


class RULWithResidualsParams(RULRegressionParams):
    residual_weight: float = Field(1.0, ge=0, description="weight of the standardized log "
                                   "reconstruction anomaly next to the standardized RUL score")


class RULWithResiduals(RULRegression):
    """``rul_regression`` whose score also counts the encoder's normal-behaviour residual."""

    name = "rul_with_residuals"

    def __init__(self, params: RULWithResidualsParams | None = None) -> None:
        params = params or RULWithResidualsParams()
        super().__init__(params)
        self.params: RULWithResidualsParams = params
        self.residual_encoder: SequenceBackbone | None = None
        self.stats = np.zeros(4)

    def fit(self, ctx: FitContext) -> None:
        self.residual_encoder = sequence_encoder(self.name, ctx)
        super().fit(ctx)
        rul, anomaly = self._parts(ctx.x_train)
        self.stats = np.array([rul.mean(), rul.std() + 1e-12,
                               anomaly.mean(), anomaly.std() + 1e-12])

    def _parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.model is not None and self.residual_encoder is not None
        rul = self._scores(self.model, x)
        residuals = sensor_residuals(self.residual_encoder, x, self.device)
        return rul, np.log(anomaly_from_residuals(residuals) + 1e-12)

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit() before predict_scores()")
        rul, anomaly = self._parts(x)
        m_r, s_r, m_a, s_a = self.stats
        return (rul - m_r) / s_r + self.params.residual_weight * (anomaly - m_a) / s_a
