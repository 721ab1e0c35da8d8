"""Histogram gradient boosting on raw features, with defaults that hold up from 2 positives.

Gradient-boosted trees are the model to beat on tables (Grinsztajn, Oyallon, Varoquaux, "Why
do tree-based models still outperform deep learning on typical tabular data?", NeurIPS 2022
Datasets and Benchmarks), so this baseline must be strong, not a straw man. scikit-learn's
defaults assume plenty of labels: a 0.1 learning rate over 100 rounds is unstable with 20
positives, and its automatic early stopping (on above 10k rows) holds out 10% of the training
rows and stops on noise. The defaults here were chosen on synthetic 0.5%-positive tables
(dispersed and clustered frauds, 500 to 40k labeled rows, 3 seeds, test AUPRC):

- a slower learning rate with more, smaller trees (15 leaves), L2 leaf regularisation and
  feature subsampling: never worse than the defaults, up to +0.25 AUPRC at 20 positives;
- no class weights and ``min_samples_leaf=20``: up-weighting the 3-20 positives (or letting
  leaves shrink to fit them) made the trees memorise single positives and *lowered* AUPRC at
  every size tried (AUPRC only needs a ranking, which the unweighted log-loss gives). Both
  are params (``class_weight``, ``min_samples_leaf``) for data where that differs;
- early stopping on the caller's validation split, by average precision, only when that split
  holds at least ``min_val_per_class`` examples of every class; with fewer, a stop on 1-4
  positives was noisier than a fixed number of rounds, so ``max_iter_no_val`` rounds are run.

:func:`fit_hist_gbm` is shared with the ``gbm_on_embeddings`` head so both use the same rules.

Example::

    model = fit_hist_gbm(x_tr, y_tr, x_va, y_va, HistGBMParams(), seed=0)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sslcore.contracts import FitContext
from sslcore.errors import DataError
from sslcore.train.supervised import class_weights, proba_to_scores


class HistGBMParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(0.05, gt=0, le=1)
    max_iter: int = Field(1000, ge=1, description="boosting rounds, upper bound when early "
                          "stopping on the validation split")
    max_iter_no_val: int = Field(300, ge=1, description="rounds when the validation split is "
                                 "too small to stop on")
    min_val_per_class: int = Field(10, ge=1, description="validation examples of every class "
                                   "needed to early-stop on it")
    n_iter_no_change: int = Field(50, ge=1, description="early-stopping patience in rounds")
    max_leaf_nodes: int = Field(15, ge=2)
    min_samples_leaf: int = Field(20, ge=1)
    l2_regularization: float = Field(1.0, ge=0)
    max_features: float = Field(0.8, gt=0, le=1, description="feature subsampling per split")
    class_weight: Literal["balanced"] | None = Field(
        None, description="'balanced' up-weights rare classes (hurt AUPRC in our few-label "
        "tests, and makes binning slow)")


def flatten(x: np.ndarray) -> np.ndarray:
    """Rows as flat float32 feature vectors (images and series become long rows)."""
    x = np.asarray(x)
    return x.reshape(len(x), -1).astype(np.float32, copy=False)


def fit_hist_gbm(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                 y_val: np.ndarray, params: HistGBMParams, *, seed: int) -> Any:
    """Fit a HistGradientBoostingClassifier with the few-label rules above.

    Raises:
        DataError: the training split holds a single class.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    y_train, y_val = np.asarray(y_train, dtype=np.int64), np.asarray(y_val, dtype=np.int64)
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise DataError(f"hist_gbm: the training split holds a single class "
                        f"{classes.tolist()}; it needs examples of at least two")
    val_counts = np.bincount(y_val, minlength=int(classes.max()) + 1)[classes]
    use_val = (len(y_val) > 0 and set(np.unique(y_val)) <= set(classes)
               and int(val_counts.min()) >= params.min_val_per_class)
    model = HistGradientBoostingClassifier(
        learning_rate=params.learning_rate,
        max_iter=params.max_iter if use_val else params.max_iter_no_val,
        max_leaf_nodes=params.max_leaf_nodes, min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization, max_features=params.max_features,
        class_weight=params.class_weight, early_stopping=use_val,
        scoring="average_precision" if len(classes) == 2 else "loss",
        n_iter_no_change=params.n_iter_no_change, random_state=seed)
    if not use_val:
        return model.fit(flatten(x_train), y_train)
    w_val = class_weights(y_val, int(classes.max()) + 1)[y_val] if params.class_weight else None
    return model.fit(flatten(x_train), y_train, X_val=flatten(x_val), y_val=y_val,
                     sample_weight_val=w_val)


class HistGBM:
    """Labeled-only gradient boosting on the raw (flattened) features.

    Args:
        params: a :class:`HistGBMParams`.
    """

    uses_labels = True

    def __init__(self, params: HistGBMParams | None = None) -> None:
        self.params = params or HistGBMParams()
        self.model: Any = None
        self.num_classes = 2

    def fit(self, ctx: FitContext) -> None:
        self.num_classes = ctx.num_classes
        self.model = fit_hist_gbm(ctx.x_train, ctx.y_train, ctx.x_val, ctx.y_val, self.params,
                                  seed=ctx.seed)

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        proba = self.model.predict_proba(flatten(x))
        return proba_to_scores(proba, self.model.classes_, self.num_classes)
