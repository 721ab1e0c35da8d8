"""The plain reference: class-balanced logistic regression on the raw inputs.

Every comparison carries it in the baseline arm, on the same labeled rows, so a reader sees at
once whether the deep arms earn their cost (the report names it when it beats them). It is the
simplest model that uses the labels, in the spirit of the "strong linear baseline" checks that
few-label benchmarks keep rediscovering (e.g. Oliver et al., "Realistic Evaluation of Deep
Semi-Supervised Learning Algorithms", NeurIPS 2018, who ask every SSL method to beat a fully
supervised baseline tuned as carefully).

Inputs of any rank become one feature vector per row:

- tables (N, F): the columns, as they are;
- series (N, C, T) and images (N, C, H, W): every time step or pixel, average-pooled along the
  time / spatial axes until ``C x pooled size <= max_features`` (4,096 by default), so a
  13-band 64 x 64 image becomes 13 x 16 x 16 = 3,328 features (``pool`` sets the window
  instead). A pool of 1 keeps the raw values.

The features are standardized with statistics of the unlabeled pool (label-free; up to
``scaler_rows`` evenly spaced rows; the training rows when there is no pool), never of test
rows, and clipped at ``clip`` standard deviations so one heavy-tailed column cannot dominate.
Constant columns get scale 1 (scikit-learn's rule): no division by zero.

The model is scikit-learn's ``LogisticRegressionCV`` (L2, lbfgs, ``class_weight="balanced"``):
C is chosen from ``Cs`` by stratified ``cv_folds``-fold cross-validation on the training rows
only (AUPRC for binary tasks, log-loss for multi-class), then refitted on all of them. When a
class has fewer training rows than folds, ``fallback_C`` is used without cross-validation. The
validation split is never read: the sweep scores every method on it to pick each arm's
representative, and a method fitted on it would be picked unfairly. Deterministic for a seed
(the folds are shuffled with ``ctx.seed``; lbfgs has no randomness). A fit on 2,000 rows x
4,096 features (or 13 x 64 x 64 images) takes about 1 s of CPU on one thread, 2-3 s the first
time, when the pool's standardizer is fitted (then cached in ``ctx.cache`` for the sweep).

Example::

    ref = LogRegRaw(LogRegRawParams(max_features=1024))
    ref.fit(ctx)                       # ctx.x_train: (N, 13, 64, 64) images
    scores = ref.predict_scores(x_test)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from sslcore.contracts import FitContext
from sslcore.errors import DataError
from sslcore.train.supervised import proba_to_scores

POOL_CHUNK = 2048  # rows pooled at a time, to bound the float32 copy of a large pool


class LogRegRawParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_features: int = Field(4096, ge=1, description="series and images: average-pool the "
                              "time / spatial axes until C x pooled size is at most this")
    pool: int | None = Field(None, ge=1, description="series and images: pooling window per "
                             "axis (1 = raw values); None picks the smallest within "
                             "max_features")
    Cs: list[PositiveFloat] = Field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0],
                                    min_length=1, description="inverse L2 strengths tried")
    cv_folds: int = Field(3, ge=2, description="stratified folds over the training rows")
    fallback_C: PositiveFloat = Field(0.01, description="C when a class has fewer training "
                                      "rows than cv_folds")
    clip: PositiveFloat | None = Field(10.0, description="clip standardized features to "
                                       "+-clip; None keeps them")
    scaler_rows: int = Field(10_000, ge=1, description="unlabeled rows the standardizer is "
                             "fitted on (evenly spaced)")
    max_iter: int = Field(1000, ge=10)


def pool_size(sample_shape: Sequence[int], max_features: int) -> int:
    """Smallest window that brings ``C x prod(ceil(axis / window))`` within ``max_features``.

    Tables (one axis) are never pooled (1). With more channels than ``max_features`` the
    answer is a global average per channel (the largest axis).
    """
    if len(sample_shape) < 2:
        return 1
    channels, axes = int(sample_shape[0]), [int(a) for a in sample_shape[1:]]
    window = 1
    while (channels * math.prod(math.ceil(a / window) for a in axes) > max_features
           and window < max(axes)):
        window += 1
    return window


def pooled_features(x: np.ndarray, window: int) -> np.ndarray:
    """(N, F) float32 rows: tables as they are, (N, C, *axes) average-pooled by ``window``.

    Each axis of length ``a`` becomes ``ceil(a / window)`` cells (adaptive pooling, so no edge
    is dropped when ``window`` does not divide it).
    """
    x = np.asarray(x)
    if x.ndim <= 2 or window == 1:
        return x.reshape(len(x), -1).astype(np.float32, copy=False)
    if x.ndim > 5:
        raise DataError(f"logreg_raw: inputs of per-sample shape {x.shape[1:]} are not "
                        f"supported; give tables (N, F), series (N, C, T), images "
                        f"(N, C, H, W) or volumes (N, C, D, H, W)")
    import torch
    import torch.nn.functional as F

    pool = {3: F.adaptive_avg_pool1d, 4: F.adaptive_avg_pool2d, 5: F.adaptive_avg_pool3d}[x.ndim]
    out_size = tuple(math.ceil(a / window) for a in x.shape[2:])
    chunks = [pool(torch.from_numpy(np.array(x[i:i + POOL_CHUNK], dtype=np.float32)),
                   out_size).reshape(min(POOL_CHUNK, len(x) - i), -1).numpy()
              for i in range(0, len(x), POOL_CHUNK)]
    return np.concatenate(chunks) if chunks else np.zeros((0, x.shape[1] * math.prod(out_size)),
                                                          dtype=np.float32)


class LogRegRaw:
    """Class-balanced logistic regression on standardized (pooled) raw inputs; C by CV.

    Args:
        params: a :class:`LogRegRawParams`.

    Raises:
        DataError: the training split holds a single class or non-finite values, or
            ``predict_scores`` gets rows of another shape than the training rows.
    """

    uses_labels = True

    def __init__(self, params: LogRegRawParams | None = None) -> None:
        self.params = params or LogRegRawParams()
        self.sample_shape: tuple[int, ...] = ()
        self.window = 1
        self.scaler: Any = None
        self.model: Any = None
        self.num_classes = 2
        self.C: float | None = None  # the chosen inverse strength
        self.cross_validated = False

    def fit(self, ctx: FitContext) -> None:
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.model_selection import StratifiedKFold

        p = self.params
        x_train, y = np.asarray(ctx.x_train), np.asarray(ctx.y_train, dtype=np.int64)
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise DataError(f"logreg_raw: the training split holds a single class "
                            f"{classes.tolist()}; it needs examples of at least two")
        if not np.isfinite(x_train).all():
            raise DataError("logreg_raw: the training rows hold NaN or infinite values; impute "
                            "them in the dataset (the other methods would fail on them too)")
        self.num_classes = ctx.num_classes
        self.sample_shape = tuple(x_train.shape[1:])
        self.window = p.pool or pool_size(self.sample_shape, p.max_features)
        self.scaler = self._scaler(ctx, x_train)
        features = self._features(x_train)
        folds = p.cv_folds if int(counts.min()) >= p.cv_folds else 0
        self.cross_validated = bool(folds)
        with warnings.catch_warnings():
            # scikit-learn >= 1.8 renames LogisticRegression(CV) arguments; the defaults used
            # here (L2, lbfgs) are the same in every version we support.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            if folds:
                cv = StratifiedKFold(folds, shuffle=True, random_state=ctx.seed)
                self.model = LogisticRegressionCV(
                    Cs=sorted(p.Cs), cv=cv, class_weight="balanced", max_iter=p.max_iter,
                    scoring="average_precision" if len(classes) == 2 else "neg_log_loss",
                ).fit(features, y)
                self.C = float(np.ravel(self.model.C_)[0])
            else:
                self.model = LogisticRegression(C=p.fallback_C, class_weight="balanced",
                                                max_iter=p.max_iter).fit(features, y)
                self.C = p.fallback_C

    def _scaler(self, ctx: FitContext, x_train: np.ndarray) -> Any:
        """The standardizer, label-free: fitted on the unlabeled pool when it has the training
        rows' shape (once per sweep, through ``ctx.cache``), else on the training rows. Never
        on validation or test rows."""
        from sklearn.preprocessing import StandardScaler

        def fit(rows: np.ndarray) -> Any:
            rows = rows[::math.ceil(len(rows) / self.params.scaler_rows)]
            return StandardScaler().fit(pooled_features(rows, self.window))

        pool = np.asarray(ctx.unlabeled)
        if not len(pool) or pool.shape[1:] != self.sample_shape:
            return fit(x_train)
        key = f"logreg_raw.scaler/{pool.shape}/{self.window}/{self.params.scaler_rows}"
        if key not in ctx.cache:
            ctx.cache[key] = fit(pool)
        return ctx.cache[key]

    @property
    def fit_info(self) -> dict[str, float]:
        """Logged with each fit's child run: the chosen C, the feature count and pooling."""
        if self.model is None:
            return {}
        return {"chosen_C": float(self.C or 0.0), "n_features": float(self.model.coef_.shape[1]),
                "pool_window": float(self.window),
                "cv_folds": float(self.params.cv_folds if self.cross_validated else 0)}

    def _features(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if tuple(x.shape[1:]) != self.sample_shape:
            raise DataError(f"logreg_raw: rows of shape {tuple(x.shape[1:])}, but it was "
                            f"fitted on rows of shape {self.sample_shape}")
        z = self.scaler.transform(pooled_features(x, self.window))
        return np.clip(z, -self.params.clip, self.params.clip) if self.params.clip else z

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        proba = self.model.predict_proba(self._features(x))
        return proba_to_scores(proba, self.model.classes_, self.num_classes)
