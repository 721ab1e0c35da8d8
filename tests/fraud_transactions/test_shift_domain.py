"""Another market or period: the defaults leave the transactions bit-identical, each lever moves
what it is about, the recipe's later_market domain validates, and user tables and the ULB file
can be cut by time for a later-period domain."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from sslcore.errors import DataError
from sslcore.plugins import load_registries
from sslcore_fraud_transactions.datasets import (TableParams, UlbParams, fraud_table,
                                                 ulb_creditcard)
from sslcore_fraud_transactions.markets import FraudMix, Market
from sslcore_fraud_transactions.recipe import DEFAULT_CONFIG, LATER_MARKET
from sslcore_fraud_transactions.synthetic import generate_transactions

ULB = Path(__file__).parent / "fixtures" / "ulb_creditcard_40.csv"
COLUMNS = {"user": "user_id", "timestamp": "timestamp", "amount": "amount",
           "categorical": ["merchant_id", "device_id", "region"], "label": "is_fraud"}


def _digest(df: pl.DataFrame) -> str:
    h = hashlib.sha256()
    for c in df.columns:
        a = df[c].to_numpy()
        a = np.ascontiguousarray(a.astype(str) if a.dtype == object else a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def _draw(market: Market | None = None) -> pl.DataFrame:
    return generate_transactions(20_000, 200, 0.01, seed=3, days=60, market=market)


def test_default_market_reproduces_the_built_in_transactions():
    # digest of generate_transactions(20_000, 200, 0.01, seed=3, days=60) before markets existed
    assert _digest(_draw()) == "ce9d640d18cdfcab"
    assert _draw(Market()).equals(_draw())


def test_each_lever_moves_what_it_is_about():
    base = _draw()
    pricier = _draw(Market(amount_scale=1.3))
    assert pricier["amount"].median() / base["amount"].median() == pytest.approx(1.3, rel=0.01)
    elsewhere = _draw(Market(id_offset=10**8))
    for col in ("user_id", "merchant_id", "device_id"):
        assert not elsewhere[col].is_in(base[col].implode()).any(), col  # none seen before
    later = _draw(Market(start="2024-07-01"))
    assert str(later["timestamp"].min()) >= "2024-07-01"
    switchers = _draw(Market(new_device_rate=0.6))
    per_user = {name: df.group_by("user_id").agg(pl.col("device_id").n_unique())["device_id"]
                .mean() for name, df in (("base", base), ("switchers", switchers))}
    assert per_user["switchers"] > per_user["base"] + 0.2


def test_scams_come_from_the_card_holders_own_device_at_home():
    base = _draw()
    scams = _draw(Market(fraud_mix=FraudMix(ato=0.0, testing=0.0, oop=0.0, scam=1.0)))

    def own_device_share(df: pl.DataFrame) -> float:
        fraud = df.filter(pl.col("is_fraud") == 1)
        return float((fraud["device_id"] // 4 == fraud["user_id"]).mean())

    assert own_device_share(scams) == 1.0 and own_device_share(base) < 0.6
    fraud = scams.filter(pl.col("is_fraud") == 1)
    assert (fraud["channel"] == "online").all()
    assert fraud["amount"].median() > 2 * base.filter(pl.col("is_fraud") == 0)["amount"].median()
    with pytest.raises(ValidationError, match="must be 1"):
        FraudMix(ato=0.5, testing=0.5, oop=0.5)


def test_recipe_names_later_market_and_it_validates():
    from sslcore.experiment import resolve_config

    assert DEFAULT_CONFIG["dataset"]["shifted"] == {"later_market": LATER_MARKET}
    cfg = resolve_config("fraud_transactions", load_registries(), quick=True)
    assert set(cfg.dataset.shifted) == {"later_market"}


def test_time_range_cuts_a_table_into_periods(tmp_path):
    path = tmp_path / "tx.parquet"
    df = generate_transactions(12_000, 120, 0.02, seed=1, days=60)
    df.write_parquet(path)
    early = fraud_table(TableParams(path=path, columns=COLUMNS,
                                    time_range={"end": "2024-01-31"}), seed=0)
    late = fraud_table(TableParams(path=path, columns=COLUMNS,
                                   time_range={"start": "2024-01-31"}), seed=0)
    n_early = len(early.unlabeled) + len(early.labeled_y) + len(early.test_y)
    n_late = len(late.unlabeled) + len(late.labeled_y) + len(late.test_y)
    cut = df.filter(pl.col("timestamp") < pl.datetime(2024, 1, 31)).height
    assert (n_early, n_late) == (cut, df.height - cut)
    # the later period's features still read the earlier rows as history: no first-ever rows
    everything = fraud_table(TableParams(path=path, columns=COLUMNS), seed=0)
    assert np.array_equal(late.test_x, everything.test_x[-len(late.test_x):])
    with pytest.raises(DataError, match="time_range"):
        fraud_table(TableParams(path=path, columns=COLUMNS,
                                time_range={"start": "2030-01-01"}), seed=0)


def test_time_range_on_the_ulb_file_takes_seconds():
    full = ulb_creditcard(UlbParams(path=ULB), seed=0)
    with pytest.raises(DataError, match="seconds"):
        ulb_creditcard(UlbParams(path=ULB, time_range={"end": "2024-01-01T00:00:00"}), seed=0)
    with pytest.raises(DataError, match="no rows in time_range"):
        ulb_creditcard(UlbParams(path=ULB, time_range={"start": 10**9}), seed=0)
    assert len(full.test_y) > 0


@pytest.mark.parametrize("name", ["ulb_second_day.yaml", "table_later_period.yaml"])
def test_later_period_configs_validate(name):
    from sslcore.experiment import resolve_config

    configs = Path(__file__).resolve().parents[2] / "plugins" / "fraud_transactions" / "configs"
    cfg = resolve_config(configs / name, load_registries())
    assert len(cfg.dataset.shifted) == 1
    domain = next(iter(cfg.dataset.shifted.values()))
    assert domain["time_range"]["start"] == cfg.dataset.params["time_range"]["end"]


def test_ulb_second_day_config_splits_the_file_in_two(tmp_path):
    rows = pl.concat([pl.read_csv(ULB)] * 4).sample(fraction=1.0, shuffle=True, seed=0)
    rows = rows.with_columns(pl.Series("Time", np.arange(rows.height) * 172_800.0 / rows.height))
    path = tmp_path / "creditcard.csv"
    rows.write_csv(path)
    split = {"unlabeled": 0.2, "labeled": 0.4, "test": 0.4}
    day_1 = ulb_creditcard(UlbParams(path=path, time_range={"end": 86_400}, split=split), seed=0)
    day_2 = ulb_creditcard(UlbParams(path=path, time_range={"start": 86_400}, split=split), seed=0)
    for data in (day_1, day_2):
        assert len(data.unlabeled) + len(data.labeled_y) + len(data.test_y) == len(rows) // 2
