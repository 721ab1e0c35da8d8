"""Contract tests over every built-in component, plus focused tests of their behaviour."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from sslcore.builtins.augmentations.tabular import (
    GaussianNoise,
    GaussianNoiseParams,
    MarginalCorruption,
    MarginalCorruptionParams,
)
from sslcore.builtins.backbones.mlp import MLPBackbone, MLPParams
from sslcore.builtins.baselines.hist_gbm import HistGBM, HistGBMParams
from sslcore.builtins.baselines.pyod_detectors import (
    ECODDetector,
    ECODParams,
    IForestDetector,
    IForestParams,
)
from sslcore.builtins.pretext.scarf import Scarf, ScarfParams, info_nce
from sslcore.errors import ConfigError, DataError
from sslcore.plugins import load_registries
from sslcore.builtins.plugin import IMAGE_COMPONENTS
from sslcore.testing import contract_cases, run_case, tiny_context

REGISTRIES = load_registries()


pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py


# Image components get their own contract tests on image shapes (test_image_contracts.py);
# parquet_files needs the user's files (test_parquet_files_dataset.py).
@pytest.mark.parametrize("case", contract_cases("sslcore", REGISTRIES,
                                                skip=IMAGE_COMPONENTS | {"parquet_files"}),
                         ids=str)
def test_builtin_contract(case):
    run_case(case)


# ----------------------------------------------------------------------------- augmentations

def test_marginal_corruption_replaces_p_of_each_row_from_the_same_column() -> None:
    x = torch.randn(64, 20)
    out = MarginalCorruption(MarginalCorruptionParams(p=0.3))(x, torch.Generator().manual_seed(0))
    changed = out != x
    assert (changed.sum(dim=1) == 6).all()  # exactly round(0.3 * 20) per row
    for i, j in changed.nonzero().tolist():
        donors = (x[:, j] == out[i, j]).nonzero().flatten().tolist()
        assert donors and i not in donors  # taken from another row, same column
    again = MarginalCorruption(MarginalCorruptionParams(p=0.3))(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_marginal_corruption_edges() -> None:
    x = torch.randn(16, 5)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(MarginalCorruption(MarginalCorruptionParams(p=0.0))(x, gen), x)
    assert (MarginalCorruption(MarginalCorruptionParams(p=1.0))(x, gen) != x).all()
    assert torch.equal(MarginalCorruption()(x[:1], gen), x[:1])  # no other row to draw from


def test_gaussian_noise_is_relative_to_each_feature() -> None:
    x = torch.randn(4096, 2) * torch.tensor([1.0, 1000.0])
    noise = GaussianNoise(GaussianNoiseParams(std=0.1))(x, torch.Generator().manual_seed(0)) - x
    assert noise[:, 0].std().item() == pytest.approx(0.1, rel=0.1)
    assert noise[:, 1].std().item() == pytest.approx(100.0, rel=0.1)


# ----------------------------------------------------------------------------- backbone, SSL

def test_mlp_normalizer_is_robust_and_travels_in_the_state_dict() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3)).astype(np.float32)
    x[:, 0] = rng.lognormal(3, 2.5, size=2000)  # heavy-tailed amounts
    x[:, 2] = 7.0  # constant column
    enc = MLPBackbone(MLPParams(clip=10.0), input_shape=(3,))
    enc.fit_normalizer(x)
    z = enc.normalize(torch.as_tensor(x))
    assert z.abs().max() <= 10.0 and torch.isfinite(z).all()
    assert z[:, 2].abs().max() == 0  # constant column: std 1, no division by zero
    assert z[:, 0].median().abs() < 1.0  # the bulk is not squashed by the tail
    fresh = MLPBackbone(MLPParams(clip=10.0), input_shape=(3,))
    fresh.load_state_dict(enc.state_dict())
    assert bool(fresh.normalizer_fitted)
    assert torch.equal(fresh.normalize(torch.as_tensor(x)), z)
    with pytest.raises(DataError, match="tables"):
        MLPBackbone(MLPParams(), input_shape=(1, 8, 8))
    assert fresh.train()(torch.as_tensor(x[:1])).shape == (1, 128)  # a lone row under BatchNorm


def test_info_nce_rewards_aligned_views() -> None:
    z = torch.randn(32, 16)
    aligned = info_nce(z, z + 0.01 * torch.randn(32, 16), temperature=0.1)
    shuffled = info_nce(z, z[torch.randperm(32)], temperature=0.1)
    assert aligned < 0.1 < shuffled


def test_scarf_pretraining_lowers_its_loss() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 10) @ torch.randn(10, 10)
    enc = MLPBackbone(MLPParams(hidden_dims=[64], embed_dim=32, dropout=0.0), input_shape=(10,))
    enc.fit_normalizer(x.numpy())
    task = Scarf(ScarfParams(temperature=0.5), backbone=enc, input_shape=(10,))
    opt = torch.optim.Adam(task.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    first = last = None
    for step in range(60):
        loss = task.loss(x[(step % 4) * 64:(step % 4 + 1) * 64], gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        last = loss.item()
    assert last < first - 0.1


# ----------------------------------------------------------------------------- baselines, heads

def _fraud_like(n: int, n_pos: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = np.zeros(n, dtype=np.int64)
    y[:n_pos] = 1
    x[:n_pos, :2] = rng.normal(4.0, 0.3, size=(n_pos, 2))  # a compact fraud pattern
    order = rng.permutation(n)
    return x[order], y[order]


def test_hist_gbm_learns_from_three_positives() -> None:
    from sklearn.metrics import roc_auc_score

    ctx = tiny_context((6,))
    ctx.x_train, ctx.y_train = _fraud_like(500, 3, seed=0)
    ctx.x_val, ctx.y_val = _fraud_like(100, 1, seed=1)  # too few positives to stop on
    x_test, y_test = _fraud_like(1000, 20, seed=2)
    gbm = HistGBM(HistGBMParams(max_iter_no_val=100))
    gbm.fit(ctx)
    assert gbm.model.n_iter_ == 100  # fixed rounds, no early stopping on 1 positive
    assert roc_auc_score(y_test, gbm.predict_scores(x_test)) > 0.95
    ctx.x_val, ctx.y_val = _fraud_like(400, 12, seed=3)  # enough to early-stop on AUPRC
    gbm.fit(ctx)
    assert gbm.model.do_early_stopping_ and gbm.model.n_iter_ < gbm.params.max_iter
    ctx.y_train = np.zeros_like(ctx.y_train)
    with pytest.raises(DataError, match="single class"):
        gbm.fit(ctx)


@pytest.mark.parametrize("detector", [IForestDetector(IForestParams(n_estimators=50)),
                                      ECODDetector(ECODParams())], ids=["iforest", "ecod"])
def test_pyod_detectors_flag_outliers_without_labels(detector) -> None:
    from sklearn.metrics import roc_auc_score

    ctx = tiny_context((6,))
    ctx.unlabeled, _ = _fraud_like(600, 6, seed=0)  # label-free pool, 1% anomalies
    x_test, y_test = _fraud_like(300, 15, seed=1)
    detector.fit(ctx)
    scores = detector.predict_scores(x_test)
    assert roc_auc_score(y_test, scores) > 0.9
    detector.fit(ctx)
    np.testing.assert_array_equal(detector.predict_scores(x_test), scores)
    ctx.num_classes = 3
    with pytest.raises(DataError, match="binary"):
        detector.fit(ctx)


def test_embedding_anomaly_is_cached_and_needs_an_encoder() -> None:
    entry = REGISTRIES.heads.get("embedding_anomaly")
    ctx = tiny_context((6,))
    with pytest.raises(ConfigError, match="heads, not baselines"):
        entry.build(None).fit(ctx)
    ctx.encoder = MLPBackbone(MLPParams(), input_shape=(6,))
    first = entry.build({"k": 3})
    first.fit(ctx)
    second = entry.build({"k": 3})
    second.fit(ctx)
    assert first.scorer is second.scorer and len(ctx.cache) == 1
    gbm = REGISTRIES.heads.get("gbm_on_embeddings").build({"k": 3})
    gbm.fit(ctx)
    assert gbm.scorer is first.scorer  # the head reuses the label-free score


def test_embedding_anomaly_ranks_planted_outliers_first() -> None:
    """Regression: a per-row norm (LayerNorm) in the encoder inverted this score."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)

    def rows(n: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 20)).astype(np.float32)
        x[:n_out, :3] += 5.0
        return x, (np.arange(n) < n_out).astype(np.int64)

    ctx = tiny_context((20,))
    ctx.unlabeled, _ = rows(3000, 30)
    torch.manual_seed(0)
    ctx.encoder = MLPBackbone(MLPParams(), input_shape=(20,))
    ctx.encoder.fit_normalizer(ctx.unlabeled)
    ctx.encoder.eval()
    head = REGISTRIES.heads.get("embedding_anomaly").build(None)
    head.fit(ctx)
    x_test, y_test = rows(600, 20)
    assert roc_auc_score(y_test, head.predict_scores(x_test)) > 0.9
