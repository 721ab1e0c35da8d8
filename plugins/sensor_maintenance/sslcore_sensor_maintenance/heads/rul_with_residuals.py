"""RUL regression plus the normal-behaviour residuals: what the labels taught, and what they can't.

With a handful of labeled failures, a supervised score learns the degradation patterns of those
failures; early drift it has not learnt to read can still show as a departure from normal
behaviour, which the masked-pretrained encoder measures without labels
(:func:`~sslcore_sensor_maintenance.heads.normal_behavior.sensor_residuals`: each sensor's
reading minus what the encoder expected from the others). Condition monitoring practice combines
the two kinds of evidence; this head adds them as standardized scores, with the window's own
recent levels, the baseline's second score, as a third:

    score = z(rul_regression score) + residual_weight * z(residual score)
            + level_weight * z(levels score)

each standardized by its mean and standard deviation over the labeled training windows, so
none dominates by scale. The residual score (``residual_score``):

- ``learned`` (default): a logistic regression (L2, ``residual_c``, balanced classes) on each
  sensor's last-quarter residual, signed mean and mean absolute value (2 features per sensor),
  fitted on the labeled training windows. Which sensor departs from normal, and in which
  direction, depends on the failure mode (vibration above expectation for a worn bearing,
  pressure below it for a leak); a few labeled failures are enough to weigh a handful of
  features, not to learn the encoder. On the development fleet (generator seed 1, 180 test
  machines, 3 seeds) this raised AUPRC from 0.313 / 0.331 to 0.349 / 0.354 at 5 / 10% of the
  failure histories, and the failures caught 72 h ahead from 0.303 / 0.306 to 0.320 / 0.311.
- ``mean_square``: label-free, the log mean squared last-quarter residual over sensors
  (``reconstruction_anomaly`` with ``sensor_scale: none``): every sensor counts alike, so a
  fault that shows in one sensor is diluted by the noise of the others.

The levels score is ``rul_with_levels_scratch``'s second score: the same logistic regression
(``level_c``) on each sensor's last-quarter mean and mean |value| of the window itself (its
readings relative to the machine's baseline). The baseline arm has it, so the SSL arm keeps
it; the two methods then differ exactly in what the pretrained encoder adds (the regression's
starting weights and the residual score), as ``band_stats_embedding_logreg`` keeps
``band_stats_logreg``'s features. Residuals catch the faults that show against normal
behaviour (seal leaks, cooling faults); levels, the ones that show as a plain rise (bearing
wear). On the development fleet (same fits) it kept AUPRC (0.350 / 0.356 vs 0.349 / 0.354)
and raised the failures caught 72 h ahead at 10% (0.319 / 0.326 vs 0.320 / 0.311);
``level_weight: 0`` leaves it out.

The weights are fixed in advance (default 1: equal say), not chosen on the validation split,
which at a few labeled failures holds too few positives to choose them. The residuals come from
the pretrained encoder as it is; the regression fine-tunes a copy (the one ``rul_regression``
fitted on the same rows, when it ran first in the sweep).

Example::

    head = RULWithResiduals(RULWithResidualsParams())
    head.fit(ctx)                      # ctx.encoder: masked-pretrained; ctx.meta_train["rul"]
    scores = head.predict_scores(x_test)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sslcore.sdk import FitContext
from sslcore_sensor_maintenance.backbones.base import SequenceBackbone
from sslcore_sensor_maintenance.heads.normal_behavior import (
    anomaly_from_residuals,
    residual_stats,
    sensor_residuals,
    sequence_encoder,
)
from sslcore_sensor_maintenance.heads.rul_regression import (
    FromScratch,
    RULRegression,
    RULRegressionParams,
    RULRegressionScratchParams,
)


class LevelScoreParams(BaseModel):
    """The recent-levels score, shared by ``rul_with_residuals`` and its baseline."""

    level_weight: float = Field(1.0, ge=0, description="weight of the standardized recent-"
                                "levels score next to the standardized RUL score; 0 leaves "
                                "it out")
    level_c: float = Field(0.1, gt=0, description="inverse L2 strength of the recent-levels "
                           "logistic regression")


class RULWithResidualsParams(RULRegressionParams, LevelScoreParams):
    residual_weight: float = Field(1.0, ge=0, description="weight of the standardized "
                                   "residual score next to the standardized RUL score")
    residual_score: Literal["learned", "mean_square"] = Field(
        "learned", description="learned: logistic regression on each sensor's last-quarter "
        "residuals, fitted on the labeled windows; mean_square: label-free, log mean squared "
        "last-quarter residual over sensors")
    residual_c: float = Field(0.1, gt=0, description="inverse L2 strength of the learned "
                              "residual score's logistic regression")


def last_quarter_features(residuals: np.ndarray) -> np.ndarray:
    """(N, C * 4) residual features -> (N, C * 2): each sensor's last-quarter signed mean
    (direction of the departure) and mean absolute value (its size)."""
    picked = residual_stats(residuals, ["last_quarter_mean", "last_quarter_mean_abs"])
    return picked.reshape(len(residuals), -1)


def last_quarter_levels(x: np.ndarray) -> np.ndarray:
    """(N, C, T) windows -> (N, C * 2): each sensor's last-quarter mean and mean |value| of the
    window itself, the baseline's counterpart of :func:`last_quarter_features`."""
    recent = np.asarray(x, dtype=np.float64)[:, :, -max(1, x.shape[2] // 4):]
    return np.concatenate([recent.mean(axis=2), np.abs(recent).mean(axis=2)], axis=1)


def fit_recent_logistic(features: np.ndarray, y: np.ndarray, c: float) -> Pipeline:
    model = make_pipeline(StandardScaler(),
                          LogisticRegression(C=c, class_weight="balanced", max_iter=1000))
    return model.fit(features, np.asarray(y))


class RULWithResiduals(RULRegression):
    """``rul_regression`` whose score also counts the encoder's normal-behaviour residuals
    (and, by default, the window's recent levels)."""

    name = "rul_with_residuals"
    min_channels = 2  # each sensor's residual is predicted from the others

    def __init__(self, params: BaseModel | None = None) -> None:
        super().__init__(params or RULWithResidualsParams())
        self.residual_encoder: SequenceBackbone | None = None
        self.score_models: dict[str, Pipeline] = {}
        self.stats: list[tuple[float, float]] = []  # (mean, std) of each part, train windows

    def _extra_scores(self) -> list[tuple[str, float, float | None]]:
        """(features, weight, C) of each score added to the RUL score; C None: label-free."""
        p = self.params
        extra = [("residuals", p.residual_weight,
                  p.residual_c if p.residual_score == "learned" else None)]
        return extra + ([("levels", p.level_weight, p.level_c)] if p.level_weight > 0 else [])

    def fit(self, ctx: FitContext) -> None:
        self.residual_encoder = sequence_encoder(self.name, ctx)
        super().fit(ctx)
        self._fit_extra_scores(ctx)

    def _fit_extra_scores(self, ctx: FitContext) -> None:
        self.score_models = {kind: fit_recent_logistic(self._features(kind, ctx.x_train),
                                                       ctx.y_train, c)
                             for kind, _, c in self._extra_scores() if c is not None}
        self.stats = [(float(part.mean()), float(part.std()) + 1e-12)
                      for part in self._parts(ctx.x_train)]

    def _features(self, kind: str, x: np.ndarray) -> np.ndarray:
        if kind == "levels":
            return last_quarter_levels(x)
        assert self.residual_encoder is not None
        return last_quarter_features(sensor_residuals(self.residual_encoder, x, self.device))

    def _parts(self, x: np.ndarray) -> list[np.ndarray]:
        """The RUL score, then each extra score, unstandardized."""
        assert self.model is not None
        parts = [self._scores(self.model, x)]
        for kind, _, c in self._extra_scores():
            if c is None:  # the label-free mean squared residual
                assert self.residual_encoder is not None
                residuals = sensor_residuals(self.residual_encoder, x, self.device)
                parts.append(np.log(anomaly_from_residuals(residuals) + 1e-12))
            else:
                parts.append(self.score_models[kind].decision_function(self._features(kind, x)))
        return parts

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit() before predict_scores()")
        weights = [1.0] + [w for _, w, _ in self._extra_scores()]
        return sum(w * (part - m) / s
                   for w, part, (m, s) in zip(weights, self._parts(x), self.stats, strict=True))


class RULWithLevelsScratchParams(RULRegressionScratchParams, LevelScoreParams):
    pass


class RULWithLevelsScratch(FromScratch, RULWithResiduals):
    """The baseline for ``rul_with_residuals``: ``rul_regression_scratch`` plus the same
    logistic regression on the same last-quarter levels of the window itself (its readings
    relative to the machine's baseline). The two differ only in what the pretrained encoder
    adds: its starting weights for the regression, and the residual score."""

    name = "rul_with_levels_scratch"
    min_channels = 1  # no residuals: the window's own levels

    def __init__(self, params: BaseModel | None = None) -> None:
        super().__init__(params or RULWithLevelsScratchParams())

    def _extra_scores(self) -> list[tuple[str, float, float | None]]:
        return [("levels", self.params.level_weight, self.params.level_c)]

    def fit(self, ctx: FitContext) -> None:
        RULRegression.fit(self, ctx)
        self._fit_extra_scores(ctx)
