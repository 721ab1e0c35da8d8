"""The weighted kNN vote and the band-statistics features on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sslcore.errors import DataError
from sslcore_satellite.band_stats import band_features
from sslcore_satellite.bands import BAND, N_BANDS
from sslcore_satellite.knn import weighted_knn_proba


def test_weighted_knn_matches_hand_computed_votes():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    proba = weighted_knn_proba(query, bank, labels, num_classes=2, k=2, temperature=0.5)
    # Nearest two: bank[0] (cos 1.0, class 0) and bank[2] (cos 0.6, class 1).
    w0, w1 = math.exp(1.0 / 0.5), math.exp(0.6 / 0.5)
    assert proba[0].tolist() == pytest.approx([w0 / (w0 + w1), w1 / (w0 + w1)])
    everyone = weighted_knn_proba(query, bank, labels, num_classes=3, k=50, temperature=0.5)
    assert everyone.shape == (1, 3) and everyone[0, 2] == 0 and float(everyone.sum()) == 1.0


def test_band_features_spectral_indices_and_layout():
    x = np.full((2, N_BANDS, 8, 8), 0.1, dtype=np.float32)
    x[:, BAND["B08"]] = 0.4  # NDVI = (0.4 - 0.1) / 0.5 = 0.6 everywhere
    x[1, BAND["B04"], :, ::2] = 0.3  # stripes in red: edges and a lower NDVI
    f = band_features(x)
    per_band = 5 * N_BANDS  # mean, std, p10, p50, p90
    assert f.shape == (2, per_band + 4 + 5 * 4)
    ndvi_mean = f[:, per_band + 4]  # first index block starts after the 4 edge features
    assert ndvi_mean[0] == pytest.approx(0.6, abs=1e-5)
    assert ndvi_mean[1] < 0.6
    red_edges = f[:, per_band:per_band + 2]
    assert red_edges[0].tolist() == [0.0, 0.0] and red_edges[1, 1] == pytest.approx(0.2)


def test_band_features_refuse_a_band_order_that_does_not_fit():
    with pytest.raises(DataError, match="needs 13 bands but the tiles have 3"):
        band_features(np.zeros((1, 3, 4, 4), np.float32), "sentinel2")
    assert band_features(np.zeros((1, 3, 4, 4), np.float32), "rgb").shape == (1, 15 + 2 + 5)


class _Mean(torch.nn.Module):
    """A stand-in encoder whose 2-d embedding is each tile's mean of bands 0 and 1."""

    embed_dim = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :2].mean(dim=(2, 3))


def test_band_stats_embedding_logreg_appends_the_embedding_and_needs_an_encoder():
    from sslcore.errors import ConfigError
    from sslcore.testing import tiny_context
    from sslcore_satellite.band_stats_embedding import (
        BandStatsEmbeddingLogReg,
        BandStatsEmbeddingLogRegParams,
    )
    from sslcore_satellite.band_stats_logreg import BandStatsLogReg, BandStatsLogRegParams

    ctx = tiny_context((N_BANDS, 8, 8), num_classes=3, encoder=_Mean())
    head = BandStatsEmbeddingLogReg(BandStatsEmbeddingLogRegParams(Cs=[1.0],
                                                                   embedding_weight=0.5))
    head.fit(ctx)
    base = BandStatsLogReg(BandStatsLogRegParams(Cs=[1.0]))
    base.fit(ctx)
    assert head.model.coef_.shape[1] == base.model.coef_.shape[1] + 2
    expected = ctx.x_val[:, :2].mean(axis=(2, 3))
    np.testing.assert_allclose(head._features(ctx.x_val)[:, -2:], expected, rtol=1e-5)
    assert head.predict_scores(ctx.x_val).shape == (len(ctx.x_val), 3)
    # The embedding block enters standardized, then scaled by embedding_weight.
    raw = head._features(ctx.x_train)
    standardized = (raw - raw.mean(0)) / raw.std(0)
    np.testing.assert_allclose(head._standardize(raw)[:, -2:], 0.5 * standardized[:, -2:],
                               atol=1e-4)
    np.testing.assert_allclose(head._standardize(raw)[:, :-2], standardized[:, :-2], atol=1e-4)
    ctx.encoder = None
    with pytest.raises(ConfigError, match="band_stats_embedding_logreg"):
        BandStatsEmbeddingLogReg().fit(ctx)
