"""Behavioural features: exact values, past-only (no future rows, no labels), dtypes, engines."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from sslcore.errors import DataError
from sslcore_fraud_transactions.features import (FEATURE_PREFIX, ROW_INDEX, behavioral_features,
                                                 feature_columns)
from sslcore_fraud_transactions.synthetic import generate_transactions

KEYS = dict(user="user_id", timestamp="timestamp", amount="amount",
            categorical=["merchant_id", "merchant_category", "region", "device_id", "channel"],
            numeric=[])


@pytest.fixture(scope="module")
def tx() -> pl.DataFrame:
    return generate_transactions(30_000, n_users=300, seed=5)


def _features(df: pl.DataFrame | pl.LazyFrame, **kw) -> pl.DataFrame:
    lf = df.lazy() if isinstance(df, pl.DataFrame) else df
    return behavioral_features(lf, **(KEYS | kw)).collect().sort(ROW_INDEX)


def test_hand_computed_values():
    t0 = datetime(2024, 3, 1, 12, 0)
    df = pl.DataFrame({
        "user_id": [1, 1, 2, 1],
        "timestamp": [t0, t0 + timedelta(minutes=30), t0, t0 + timedelta(hours=2)],
        "amount": [10.0, 20.0, 5.0, 30.0],
        "merchant_id": [7, 7, 7, 8],
        "merchant_category": ["grocery", "grocery", "fuel", "travel"],
        "region": [1, 1, 1, 1], "device_id": [3, 3, 9, 3], "channel": ["pos"] * 4,
        "fee": [0.5, 1.0, 1.5, 2.0],
    })
    out = _features(df, numeric=["fee"])
    col = lambda name: out[FEATURE_PREFIX + name].to_list()  # noqa: E731
    assert out["user_id"].to_list() == [1, 1, 2, 1]
    assert col("log_amount") == pytest.approx([math.log1p(a) for a in (10, 20, 5, 30)])
    assert col("new_merchant_id") == [1.0, 0.0, 1.0, 1.0]
    assert col("share_merchant_id") == pytest.approx([0.0, 1.0, 0.0, 0.0])
    assert col("share_merchant_category") == pytest.approx([0.0, 1.0, 0.0, 0.0])
    assert col("share_region") == pytest.approx([0.0, 1.0, 0.0, 1.0])
    assert col("log_history") == pytest.approx([0.0, math.log(2), 0.0, math.log(3)])
    # windows exclude the current row: the 30-minute-old row counts, the 2-hour-old does not
    assert col("log_count_1h") == pytest.approx([0.0, math.log(2), 0.0, 0.0])
    assert col("log_amount_1h") == pytest.approx([0.0, math.log1p(10), 0.0, 0.0])
    assert col("log_count_24h") == pytest.approx([0.0, math.log(2), 0.0, math.log(3)])
    assert col("log_amount_24h") == pytest.approx([0.0, math.log1p(10), 0.0, math.log1p(30)])
    assert col("log_seconds_since_prev")[1] == pytest.approx(math.log1p(1800))
    assert col("log_seconds_since_prev")[3] == pytest.approx(math.log1p(5400))
    assert col("log_amount_to_past_mean")[1] == pytest.approx(math.log(21 / 11))
    assert col("log_amount_to_past_mean")[3] == pytest.approx(math.log(31 / 16))
    assert col("log_amount_to_past_max")[3] == pytest.approx(math.log(31 / 21))
    assert col("amount_z")[:3] == [0.0, 0.0, 0.0]  # fewer than two earlier rows: neutral
    x = np.log1p([10.0, 20.0])
    assert col("amount_z")[3] == pytest.approx((math.log1p(30) - x.mean()) / (x.std() + 0.25),
                                               rel=1e-5)
    assert col("hour_sin")[0] == pytest.approx(0.0, abs=1e-6)  # noon
    assert col("hour_cos")[0] == pytest.approx(-1.0)
    assert col("num_fee") == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_dtypes_names_and_finite(tx):
    out = _features(tx)
    names = feature_columns(out.schema)
    assert names == feature_columns(out.columns)
    assert out.columns[:3] == [ROW_INDEX, "user_id", "timestamp"]
    assert len(names) == out.width - 3 == 24
    assert all(out.schema[c] == pl.Float32 for c in names)
    x = out.select(names).to_numpy()
    assert np.isfinite(x).all()
    assert out.height == tx.height and out[ROW_INDEX].n_unique() == tx.height


def test_appending_later_rows_changes_no_earlier_feature(tx):
    base = _features(tx)
    later = tx.sample(500, seed=0).with_columns(
        pl.col("timestamp") + pl.duration(days=120), pl.col("amount") * 50)
    grown = _features(pl.concat([tx, later])).filter(pl.col(ROW_INDEX) < tx.height)
    assert grown.equals(base)


def test_features_of_a_prefix_equal_features_on_the_full_timeline(tx):
    cut = tx["timestamp"].quantile(0.5)
    full = _features(tx)
    prefix = _features(tx.filter(pl.col("timestamp") <= cut))
    assert prefix.equals(full.head(prefix.height))  # tx is time-sorted, row_index is time order


def test_labels_are_never_read(tx):
    def boom(s: pl.Series) -> pl.Series:
        raise AssertionError("the label column was evaluated")

    poisoned = tx.lazy().with_columns(pl.col("is_fraud").map_batches(boom, return_dtype=pl.Int8))
    out = behavioral_features(poisoned, **KEYS)
    assert "is_fraud" not in out.collect_schema()
    assert "is_fraud" not in out.explain()
    flipped = tx.with_columns(1 - pl.col("is_fraud"))
    assert out.collect().sort(ROW_INDEX).equals(_features(flipped))


def test_streaming_engine_matches_in_memory(tx):
    lf = behavioral_features(tx.lazy(), **KEYS)
    streaming = lf.collect(engine="streaming").sort(ROW_INDEX)
    assert streaming.equals(lf.collect(engine="in-memory").sort(ROW_INDEX))


def test_numeric_seconds_timestamp_and_string_user():
    df = pl.DataFrame({"card": ["a", "a", "b"], "t": [0.0, 60.0, 30.0], "amt": [1.0, 2.0, 3.0],
                       "mcc": ["x", "y", "x"]})
    out = behavioral_features(df.lazy(), user="card", timestamp="t", amount="amt",
                              categorical=["mcc"], numeric=[]).collect().sort(ROW_INDEX)
    assert out.schema["t"] == pl.Datetime("us")
    assert out["f_new_mcc"].to_list() == [1.0, 1.0, 1.0]
    assert out["f_log_count_1h"].to_list() == pytest.approx([0.0, math.log(2), 0.0])


def test_missing_column_and_bad_timestamp_dtype():
    df = pl.DataFrame({"u": [1], "t": ["2024-01-01"], "a": [1.0]})
    with pytest.raises(DataError, match="'merchant'.*available"):
        behavioral_features(df.lazy(), user="u", timestamp="t", amount="a",
                            categorical=["merchant"], numeric=[])
    with pytest.raises(DataError, match="timestamp column 't' has dtype String"):
        behavioral_features(df.lazy(), user="u", timestamp="t", amount="a", categorical=[],
                            numeric=[])
    with pytest.raises(DataError, match="reserved"):
        behavioral_features(df.rename({"u": ROW_INDEX}).lazy(), user=ROW_INDEX, timestamp="t",
                            amount="a", categorical=[], numeric=[])


def test_synthetic_fraud_is_learnable_but_no_single_feature_separates_it():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    tx = generate_transactions(150_000, n_users=1_500, seed=2)
    out = _features(tx)
    names = feature_columns(out.schema)
    x, y = out.select(names).to_numpy(), tx["is_fraud"].to_numpy()
    for i, name in enumerate(names):
        auc = roc_auc_score(y, x[:, i])
        assert max(auc, 1 - auc) < 0.9, name
        assert max(average_precision_score(y, x[:, i]), average_precision_score(y, -x[:, i])) < 0.3
    half = len(y) // 2
    scaler = StandardScaler().fit(x[:half])
    model = LogisticRegression(max_iter=1000).fit(scaler.transform(x[:half]), y[:half])
    score = model.predict_proba(scaler.transform(x[half:]))[:, 1]
    assert roc_auc_score(y[half:], score) > 0.9
    # fraud departs from the user's own normal: new devices and regions, bursts
    fraud, legit = x[y == 1], x[y == 0]
    for name in ("new_device_id", "new_region", "log_count_1h"):
        i = names.index(FEATURE_PREFIX + name)
        assert fraud[:, i].mean() > 2 * legit[:, i].mean(), name
