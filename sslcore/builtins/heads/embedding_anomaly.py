"""Label-free "learn normal" anomaly score: k-NN distance in the SSL embedding space.

The pretrained encoder maps the unlabeled pool (overwhelmingly normal) to embeddings; a row's
anomaly score is its mean distance to its ``k`` nearest pool embeddings, so rows unlike
anything normal score high. No labels are used (``uses_labels = False``); the score only fits
binary tasks (higher = more anomalous = more likely positive).

The fitted scorer is cached in ``ctx.cache`` (it depends on the encoder, the params and the
seed, never on the labeled subset), so the runner and the ``gbm_on_embeddings`` head reuse it
instead of re-embedding the pool. Other heads get it with :func:`fit_embedding_anomaly`.

References:
    Ramaswamy, Rastogi, Shim. "Efficient Algorithms for Mining Outliers from Large Data
    Sets." SIGMOD 2000 (k-NN distance outlier score).
    Sehwag, Chiang, Mittal. "SSD: A Unified Framework for Self-Supervised Outlier
    Detection." ICLR 2021 (outlier scores on self-supervised embeddings).

Example::

    head = EmbeddingAnomaly(EmbeddingAnomalyParams(k=10))
    head.fit(ctx)                          # ctx.encoder: the pretrained backbone
    scores = head.predict_scores(x_test)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.builtins.baselines.pyod_detectors import require_binary, subsample
from sslcore.contracts import FitContext
from sslcore.errors import ConfigError
from sslcore.train.supervised import embed


class EmbeddingAnomalyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, description="neighbours averaged in the distance")
    max_fit_samples: int = Field(20_000, ge=2, description="unlabeled rows embedded as the "
                                 "reference set of normal behaviour")
    normalize: Literal["standard", "l2", "none"] = Field(
        "standard", description="embedding scaling before distances: per-dimension z-score "
        "(fitted on the pool), unit length, or none")


def require_encoder(name: str, ctx: FitContext) -> nn.Module:
    """The pretrained encoder of an SSL-arm head, or a ConfigError saying where it belongs."""
    if ctx.encoder is None:
        raise ConfigError(f"head {name!r} needs the pretrained encoder (ctx.encoder is None): "
                          "list it under heads, not baselines")
    return ctx.encoder


@dataclass
class EmbeddingKNNScorer:
    """A fitted k-NN distance scorer on one encoder's embeddings of the unlabeled pool."""

    encoder: nn.Module
    device: torch.device
    k: int
    normalize: str
    center: np.ndarray
    scale: np.ndarray
    index: Any  # sklearn NearestNeighbors fitted on the pool embeddings

    def transform(self, e: np.ndarray) -> np.ndarray:
        if self.normalize == "l2":
            return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return (e - self.center) / self.scale

    def score_embeddings(self, e: np.ndarray) -> np.ndarray:
        dist, _ = self.index.kneighbors(self.transform(e), n_neighbors=self.k)
        return dist.mean(axis=1).astype(np.float64)

    def score(self, x: np.ndarray) -> np.ndarray:
        """Anomaly score (N,) of raw rows: higher = less like the unlabeled pool."""
        return self.score_embeddings(embed(self.encoder, x, self.device))


def fit_embedding_anomaly(ctx: FitContext, params: EmbeddingAnomalyParams) -> EmbeddingKNNScorer:
    """Return the k-NN scorer for ``ctx.encoder``, from ``ctx.cache`` when already fitted.

    Raises:
        ConfigError: ``ctx.encoder`` is None.
    """
    from sklearn.neighbors import NearestNeighbors

    encoder = require_encoder("embedding_anomaly", ctx)
    key = f"embedding_anomaly:{params.model_dump_json()}:seed={ctx.seed}"
    cached = ctx.cache.get(key)
    if isinstance(cached, EmbeddingKNNScorer) and cached.encoder is encoder:
        return cached
    pool = embed(encoder, subsample(ctx.unlabeled, params.max_fit_samples, ctx.seed), ctx.device)
    k = min(params.k, len(pool))
    if params.normalize == "standard":
        center, scale = pool.mean(axis=0), np.maximum(pool.std(axis=0), 1e-6)
    else:
        center, scale = np.zeros(pool.shape[1], np.float32), np.ones(pool.shape[1], np.float32)
    scorer = EmbeddingKNNScorer(encoder, ctx.device, k, params.normalize, center, scale, None)
    scorer.index = NearestNeighbors(n_neighbors=k).fit(scorer.transform(pool))
    ctx.cache[key] = scorer
    return scorer


class EmbeddingAnomaly:
    """k-NN anomaly score on the frozen SSL encoder's embeddings (label-free).

    Args:
        params: an :class:`EmbeddingAnomalyParams`.

    Raises:
        ConfigError: fitted without a pretrained encoder (in the baseline arm).
        DataError: the task is not binary.
    """

    uses_labels = False
    binary_only = True  # an anomaly score ranks one positive class (sslcore.data_fit)

    def __init__(self, params: EmbeddingAnomalyParams | None = None) -> None:
        self.params = params or EmbeddingAnomalyParams()
        self.scorer: EmbeddingKNNScorer | None = None

    def fit(self, ctx: FitContext) -> None:
        require_binary("embedding_anomaly", ctx.num_classes)
        self.scorer = fit_embedding_anomaly(ctx, self.params)

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.scorer is None:
            raise RuntimeError("embedding_anomaly: call fit() before predict_scores()")
        return self.scorer.score(x)
