"""Gradient boosting on raw features + SSL embeddings + the embedding anomaly score.

Trees are strong on raw tabular features but cannot learn what "normal" looks like from a
few labels; the SSL encoder, pretrained on the whole unlabeled pool, can. This head gives a
gradient-boosted model both: the raw (flattened) features, the frozen encoder's embedding and
the label-free k-NN anomaly score of :mod:`embedding_anomaly` as extra columns. It uses the
same few-label rules as the ``hist_gbm`` baseline (:func:`fit_hist_gbm`), so the difference
between the two is exactly what the SSL features add.

References:
    Bahri et al. "SCARF." ICLR 2022 (embeddings as features for downstream models).
    ADBench (Han et al., NeurIPS 2022): with a few labeled anomalies, semi-supervised models
    that use unlabeled data beat both unsupervised and fully supervised ones.

Example::

    head = GBMOnEmbeddings(GBMOnEmbeddingsParams())
    head.fit(ctx)                          # ctx.encoder: the pretrained backbone
    scores = head.predict_scores(x_test)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from sslcore.builtins.baselines.hist_gbm import HistGBMParams, fit_hist_gbm, flatten
from sslcore.builtins.heads.embedding_anomaly import (
    EmbeddingAnomalyParams,
    EmbeddingKNNScorer,
    fit_embedding_anomaly,
    require_encoder,
)
from sslcore.contracts import FitContext
from sslcore.train.supervised import embed, proba_to_scores


class GBMOnEmbeddingsParams(HistGBMParams):
    """The ``hist_gbm`` params plus which SSL features to add."""

    include_raw: bool = Field(True, description="keep the raw (flattened) features")
    include_anomaly: bool = Field(True, description="add the embedding k-NN anomaly score")
    k: int = Field(10, ge=1, description="neighbours of the anomaly score")
    max_fit_samples: int = Field(20_000, ge=2, description="unlabeled rows behind the score")
    normalize: Literal["standard", "l2", "none"] = "standard"


class GBMOnEmbeddings:
    """HistGradientBoosting on [raw features, SSL embedding, embedding anomaly score].

    Args:
        params: a :class:`GBMOnEmbeddingsParams`.

    Raises:
        ConfigError: fitted without a pretrained encoder.
        DataError: the training split holds a single class.
    """

    uses_labels = True

    def __init__(self, params: GBMOnEmbeddingsParams | None = None) -> None:
        self.params = params or GBMOnEmbeddingsParams()
        self.scorer: EmbeddingKNNScorer | None = None
        self.encoder: Any = None
        self.device: Any = None
        self.model: Any = None
        self.num_classes = 2

    def fit(self, ctx: FitContext) -> None:
        self.encoder, self.device = require_encoder("gbm_on_embeddings", ctx), ctx.device
        self.num_classes = ctx.num_classes
        if self.params.include_anomaly:
            p = self.params
            self.scorer = fit_embedding_anomaly(
                ctx, EmbeddingAnomalyParams(k=p.k, max_fit_samples=p.max_fit_samples,
                                            normalize=p.normalize))
        base = HistGBMParams.model_validate(
            self.params.model_dump(include=set(HistGBMParams.model_fields)))
        self.model = fit_hist_gbm(self._features(ctx.x_train), ctx.y_train,
                                  self._features(ctx.x_val), ctx.y_val, base, seed=ctx.seed)

    def _features(self, x: np.ndarray) -> np.ndarray:
        e = embed(self.encoder, x, self.device)
        cols = [flatten(x)] if self.params.include_raw else []
        cols.append(e)
        if self.scorer is not None:
            cols.append(self.scorer.score_embeddings(e)[:, None].astype(np.float32))
        return np.concatenate(cols, axis=1)

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("gbm_on_embeddings: call fit() before predict_scores()")
        proba = self.model.predict_proba(self._features(x))
        return proba_to_scores(proba, self.model.classes_, self.num_classes)
