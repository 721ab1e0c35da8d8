"""SSL-arm head: logistic regression on the band statistics *and* the frozen encoder's embedding.

What tells land covers apart on multispectral tiles is partly spectral (vegetation bright in
near infrared, water dark in short-wave infrared), which per-band statistics capture with no
learning at all, and partly spatial (field rows, road lines, building blocks, river curves),
which statistics miss and a pretrained encoder sees. This head gives one class-balanced L2
logistic regression both: the ``band_stats_logreg`` baseline's standardized features next to
the standardized embedding, ``C`` chosen on the validation split the same way. The baseline arm
keeps ``band_stats_logreg`` on the statistics alone, so the difference between the two is what
pretraining adds on the same labeled tiles.

The standardized embedding is multiplied by ``embedding_weight`` (default 0.1): under one L2
penalty that is a 100x stronger penalty on the embedding block, so its 192 dimensions refine the
statistics instead of drowning them with a handful of labeled tiles. The default was chosen on
a development draw, scoring labeled tiles outside each subset (never the test set):
``benchmarks/satellite_feature_blocks.py``, BENCHMARKS.md.

Example::

    head = BandStatsEmbeddingLogReg(BandStatsEmbeddingLogRegParams())
    head.fit(ctx)                       # ctx.encoder: the pretrained backbone
    proba = head.predict_scores(x_test)
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from sslcore.sdk import embed, FitContext, require_encoder
from sslcore_satellite.band_stats import band_features
from sslcore_satellite.band_stats_logreg import BandStatsLogReg, BandStatsLogRegParams


class BandStatsEmbeddingLogRegParams(BandStatsLogRegParams):
    embedding_weight: float = Field(0.1, gt=0, description="scale of the standardized "
                                    "embedding next to the standardized statistics (1: equal "
                                    "per-feature say)")


class BandStatsEmbeddingLogReg(BandStatsLogReg):
    """``band_stats_logreg`` with the frozen pretrained embedding appended to its features."""

    name = "band_stats_embedding_logreg"

    def __init__(self, params: BandStatsEmbeddingLogRegParams | None = None) -> None:
        params = params or BandStatsEmbeddingLogRegParams()
        super().__init__(params)
        self.params: BandStatsEmbeddingLogRegParams = params

    def _prepare(self, ctx: FitContext) -> None:
        self.encoder = require_encoder(self.name, ctx)
        self.device = ctx.device

    def _features(self, x: np.ndarray) -> np.ndarray:
        stats = band_features(x, self.order)
        emb = embed(self.encoder, x, self.device)
        return np.concatenate([stats, emb.astype(stats.dtype, copy=False)], axis=1)

    def _standardize(self, raw: np.ndarray) -> np.ndarray:
        f = super()._standardize(raw)
        f[:, f.shape[1] - int(self.encoder.embed_dim):] *= self.params.embedding_weight
        return f
