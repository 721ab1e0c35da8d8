"""The plain reference baseline: logistic regression on raw (pooled) inputs, C by CV."""

from __future__ import annotations

import numpy as np
import pytest

from sslcore.builtins.baselines.logreg_raw import (
    LogRegRaw,
    LogRegRawParams,
    pool_size,
    pooled_features,
)
from sslcore.errors import DataError
from sslcore.plugins import load_registries
from sslcore.testing import check_method, synthetic_classification, tiny_context

REGISTRIES = load_registries()
TABLE, SERIES, IMAGE = (6,), (3, 40), (2, 20, 20)

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py


# test_builtins.py runs the contract on table rows; here on series and images too.
@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("shape", [TABLE, SERIES, IMAGE], ids=["table", "series", "image"])
def test_contract_on_every_input_rank(shape, num_classes) -> None:
    check_method(REGISTRIES.baselines.get("logreg_raw"), backbone_entry=None,
                 input_shape=shape, num_classes=num_classes, as_head=False)


@pytest.mark.parametrize("shape, cap, window, n_features", [
    ((30,), 10, 1, 30),            # tables are never pooled
    ((3, 100), 64, 5, 3 * 20),     # a window of 4 leaves 3 x 25 = 75 > 64
    ((3, 32, 32), 300, 4, 3 * 64),  # 3 leaves 3 x 11 x 11 = 363 > 300
    ((2, 20, 20), 4096, 1, 800),   # under the cap: raw pixels
    ((5000, 4, 4), 100, 4, 5000),  # more channels than the cap: one mean per channel
])
def test_pooling_keeps_the_feature_count_under_the_cap(shape, cap, window, n_features) -> None:
    assert pool_size(shape, cap) == window
    ctx = tiny_context(shape)
    ref = LogRegRaw(LogRegRawParams(max_features=cap))
    ref.fit(ctx)
    assert ref.window == window and ref.model.coef_.shape[1] == n_features
    assert ref.fit_info["n_features"] == n_features


def test_pooling_averages_blocks_and_keeps_ragged_edges() -> None:
    x = np.random.default_rng(0).normal(size=(3, 2, 8, 8)).astype(np.float32)
    blocks = x.reshape(3, 2, 4, 2, 4, 2).mean(axis=(3, 5)).reshape(3, -1)
    np.testing.assert_allclose(pooled_features(x, 2), blocks, rtol=1e-5, atol=1e-6)
    assert pooled_features(x[:, :, :7, :7], 2).shape == (3, 2 * 4 * 4)  # ceil(7 / 2) = 4
    assert pooled_features(np.zeros((3, 2, 9)), 4).shape == (3, 2 * 3)
    with pytest.raises(DataError, match="not supported"):
        pooled_features(np.zeros((2, 1, 2, 2, 2, 2)), 2)


def test_an_explicit_pool_overrides_the_cap() -> None:
    ctx = tiny_context(SERIES)
    ref = LogRegRaw(LogRegRawParams(pool=10, max_features=1))
    ref.fit(ctx)
    assert ref.window == 10 and ref.model.coef_.shape[1] == 3 * 4


def test_multiclass_scores_are_probabilities_with_a_column_per_class() -> None:
    ctx = tiny_context(IMAGE, num_classes=4)
    keep = ctx.y_train != 2  # a class absent from the training rows gets a zero column
    ctx.x_train, ctx.y_train = ctx.x_train[keep], ctx.y_train[keep]
    ref = LogRegRaw()
    ref.fit(ctx)
    scores = ref.predict_scores(synthetic_classification(IMAGE, 10, 4, seed=9)[0])
    assert scores.shape == (10, 4) and np.allclose(scores.sum(axis=1), 1.0)
    assert (scores[:, 2] == 0).all()


def test_it_never_reads_the_validation_split() -> None:
    x_test, _ = synthetic_classification(TABLE, 30, seed=7)
    ctx = tiny_context(TABLE)
    ref = LogRegRaw()
    ref.fit(ctx)
    ctx.x_val = np.full((3, 99), np.nan, dtype=np.float32)  # garbage of another shape
    ctx.y_val = np.array([7, 7, 7])
    blind = LogRegRaw()
    blind.fit(ctx)
    np.testing.assert_array_equal(blind.predict_scores(x_test), ref.predict_scores(x_test))


def test_deterministic_for_a_seed() -> None:
    x, y = synthetic_classification(TABLE, 200, seed=3)
    x_test, _ = synthetic_classification(TABLE, 50, seed=4)

    def scores(seed: int) -> np.ndarray:
        ctx = tiny_context(TABLE, seed=seed)
        ctx.x_train, ctx.y_train = x, y
        ref = LogRegRaw()
        ref.fit(ctx)
        assert ref.cross_validated
        return ref.predict_scores(x_test)

    np.testing.assert_array_equal(scores(0), scores(0))


def test_it_separates_a_learnable_task_and_standardizes_on_the_unlabeled_pool() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)

    def rows(n: int, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 1, 16, 16)).astype(np.float32)
        x[:n_pos, :, 4:8, 4:8] += 1.5  # a bright patch
        return x, (np.arange(n) < n_pos).astype(np.int64)

    ctx = tiny_context((1, 16, 16))
    ctx.x_train, ctx.y_train = rows(300, 30)
    ctx.unlabeled = rows(500, 0)[0] * 3.0 + 5.0  # label-free statistics of its own
    ref = LogRegRaw()
    ref.fit(ctx)
    assert ref.cross_validated and ref.C in ref.params.Cs
    assert abs(float(ref.scaler.mean_.mean()) - 5.0) < 0.2  # the pool's, not the training rows'
    x_test, y_test = rows(400, 40)
    assert roc_auc_score(y_test, ref.predict_scores(x_test * 3.0 + 5.0)) > 0.9
    again = LogRegRaw()
    again.fit(ctx)
    assert again.scaler is ref.scaler  # label-free: fitted once per sweep (ctx.cache)
    ctx.unlabeled = np.zeros((0, 1, 16, 16), dtype=np.float32)  # no pool: the training rows
    ref.fit(ctx)
    assert abs(float(ref.scaler.mean_.mean())) < 0.2


def test_few_rows_of_a_class_use_the_fixed_C() -> None:
    ctx = tiny_context(TABLE)
    ctx.y_train = np.zeros_like(ctx.y_train)
    ctx.y_train[:2] = 1  # 2 positives < 3 folds
    ref = LogRegRaw(LogRegRawParams(fallback_C=0.5))
    ref.fit(ctx)
    assert not ref.cross_validated and ref.C == 0.5 and ref.fit_info["cv_folds"] == 0


def test_constant_columns_and_heavy_tails_give_finite_scores() -> None:
    ctx = tiny_context(TABLE)
    ctx.unlabeled[:, 0] = 3.0  # constant in the pool...
    ctx.x_train[:, 0] = 3.0
    ctx.x_train[0, 1] = 1e9  # ...and one enormous value, clipped after standardizing
    ref = LogRegRaw()
    ref.fit(ctx)
    x_test, _ = synthetic_classification(TABLE, 20, seed=5)
    x_test[:, 0] = 1e6  # a value the constant column never had
    assert np.isfinite(ref.predict_scores(x_test)).all()


def test_clear_errors() -> None:
    ctx = tiny_context(TABLE)
    ref = LogRegRaw()
    ctx.y_train = np.zeros_like(ctx.y_train)
    with pytest.raises(DataError, match="single class"):
        ref.fit(ctx)
    ctx = tiny_context(TABLE)
    ctx.x_train[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ref.fit(ctx)
    ref.fit(tiny_context(TABLE))
    with pytest.raises(DataError, match=r"rows of shape \(7,\)"):
        ref.predict_scores(np.zeros((2, 7), dtype=np.float32))
