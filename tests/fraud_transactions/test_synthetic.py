"""The synthetic transaction generator: deterministic, realistic habits, every fraud pattern."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from sslcore_fraud_transactions.synthetic import CATEGORY_NAMES, CHANNELS, generate_transactions

FRAUD_DEVICE = 10**12


@pytest.fixture(scope="module")
def tx() -> pl.DataFrame:
    return generate_transactions(200_000, n_users=2_000, seed=11)


def test_same_seed_same_frame_other_seed_differs():
    a = generate_transactions(20_000, n_users=200, seed=3)
    assert a.equals(generate_transactions(20_000, n_users=200, seed=3))
    assert not a.equals(generate_transactions(20_000, n_users=200, seed=4))


def test_schema_order_and_ids(tx):
    assert tx.schema == pl.Schema({
        "transaction_id": pl.Int64, "user_id": pl.Int64, "timestamp": pl.Datetime("us"),
        "amount": pl.Float64, "merchant_id": pl.Int64, "merchant_category": pl.String,
        "region": pl.Int64, "device_id": pl.Int64, "channel": pl.String, "is_fraud": pl.Int8,
    })
    assert tx.height == 200_000
    assert tx["timestamp"].is_sorted()
    assert tx["transaction_id"].to_list() == list(range(tx.height))
    assert set(tx["merchant_category"].unique()) == set(CATEGORY_NAMES)
    assert len(CATEGORY_NAMES) == 15
    assert set(tx["channel"].unique()) == set(CHANNELS)
    assert tx["region"].n_unique() == 30
    assert tx["amount"].min() >= 0.5 and tx.null_count().sum_horizontal().item() == 0
    span = tx["timestamp"].max() - tx["timestamp"].min()
    assert 85 <= span.days <= 90


@pytest.mark.parametrize("rate", [0.0, 0.002, 0.005, 0.02])
def test_fraud_rate(rate):
    df = generate_transactions(50_000, n_users=500, fraud_rate=rate, seed=1)
    assert df.height == 50_000
    assert df["is_fraud"].mean() == pytest.approx(rate, abs=1e-4)


def test_default_fraud_rate_is_half_a_percent(tx):
    assert 0.004 <= tx["is_fraud"].mean() <= 0.006


@pytest.mark.parametrize("kwargs", [dict(n_rows=0), dict(n_rows=10, days=0),
                                    dict(n_rows=10, fraud_rate=0.9), dict(n_rows=10, n_users=0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        generate_transactions(**kwargs)


def _legit(tx: pl.DataFrame) -> pl.DataFrame:
    return tx.filter(pl.col("is_fraud") == 0)


def test_users_have_stable_personal_habits(tx):
    legit = _legit(tx).with_columns(
        late=pl.col("timestamp") >= pl.col("timestamp").median(),
        log_amount=pl.col("amount").log(),
        hour=pl.col("timestamp").dt.hour(),
    )
    per_user = legit.group_by("user_id", "late").agg(
        pl.col("log_amount").median(), pl.len()
    ).filter(pl.col("len") >= 30).pivot("late", index="user_id", values="log_amount").drop_nulls()
    early, later = per_user["false"].to_numpy(), per_user["true"].to_numpy()
    assert early.std() > 0.4  # users spend at different levels ...
    assert np.corrcoef(early, later)[0, 1] > 0.7  # ... and keep them over time

    habits = legit.group_by("user_id").agg(
        pl.len(),
        home_share=pl.col("region").value_counts(sort=True).first()
        .struct.field("count") / pl.len(),
        top_merchant_share=pl.col("merchant_id").value_counts(sort=True).first()
        .struct.field("count") / pl.len(),
        n_devices=pl.col("device_id").n_unique(),
        mean_hour=pl.col("hour").mean(),
    ).filter(pl.col("len") >= 50)
    assert habits["home_share"].median() > 0.85  # a home region ...
    assert habits["home_share"].min() < 0.95  # ... but people travel
    assert habits["top_merchant_share"].median() > 0.1  # habitual merchants
    assert habits["n_devices"].max() <= 3 and habits["n_devices"].min() == 1
    assert habits["mean_hour"].std() > 1.0  # different active hours


def test_legitimate_oddities_exist(tx):
    legit = _legit(tx)
    home = legit.group_by("user_id").agg(home=pl.col("region").mode().first())
    legit = legit.join(home, on="user_id").with_columns(
        med=pl.col("amount").median().over("user_id"), hour=pl.col("timestamp").dt.hour())
    away = (legit["region"] != legit["home"]).mean()
    assert 0.01 < away < 0.15  # travel
    assert ((legit["amount"] > 5 * legit["med"]).mean()) > 0.002  # big legit purchases
    assert legit.filter(pl.col("hour") < 5).height / legit.height > 0.01  # late nights
    assert (legit["device_id"] % 4 == 2).any()  # new phones
    assert legit.filter(pl.col("amount") <= 5, pl.col("channel") == "online").height > 100


def _fraud_with_context(tx: pl.DataFrame) -> pl.DataFrame:
    legit = _legit(tx)
    known = legit.group_by("user_id").agg(
        home=pl.col("region").mode().first(), med=pl.col("amount").median(),
        devices=pl.col("device_id").unique())
    return (tx.filter(pl.col("is_fraud") == 1).join(known, on="user_id", how="left")
            .with_columns(known_device=pl.col("devices").list.contains(pl.col("device_id"))))


def test_account_takeover_pattern(tx):
    ato = _fraud_with_context(tx).filter(pl.col("device_id") >= FRAUD_DEVICE,
                                         pl.col("amount") > 5)
    assert ato.height > 0.3 * tx["is_fraud"].sum()
    assert (ato["region"] != ato["home"]).mean() > 0.6  # usually a new region too
    assert (ato["channel"] == "online").mean() > 0.6
    assert (ato["amount"] > ato["med"]).mean() < 0.95  # not all of it is high value
    # the same fraud device shows up for several victims
    assert ato.group_by("device_id").agg(pl.col("user_id").n_unique())["user_id"].max() > 1


def test_card_testing_pattern(tx):
    tests = _fraud_with_context(tx).filter(pl.col("amount") <= 5).sort("user_id", "timestamp")
    assert tests.height > 0.2 * tx["is_fraud"].sum()
    assert (tests["channel"] == "online").mean() > 0.95  # a few ATO coffees are small too
    bursts = tests.group_by("user_id").agg(
        pl.len(), span=(pl.col("timestamp").max() - pl.col("timestamp").min()).dt.total_minutes())
    assert (bursts.filter(pl.col("len") >= 3)["span"] < 60).mean() > 0.8


def test_out_of_pattern_purchase_pattern(tx):
    oop = _fraud_with_context(tx).filter(pl.col("known_device"), pl.col("amount") > 5)
    assert oop.height > 0.15 * tx["is_fraud"].sum()
    assert (oop["region"] == oop["home"]).mean() > 0.95
    assert (oop["amount"] > 3 * oop["med"]).mean() > 0.8


def test_a_million_rows_in_seconds():
    start = time.perf_counter()
    df = generate_transactions(1_000_000, seed=0)
    assert df.height == 1_000_000
    assert time.perf_counter() - start < 10.0
