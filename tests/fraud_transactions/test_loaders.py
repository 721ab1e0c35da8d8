"""Loaders (every layout, every bad input) and the dataset factories built on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from sslcore.errors import DataError
from sslcore.registry import Registry
from sslcore_fraud_transactions.datasets import (DATASETS, NumericTableParams, SplitFractions,
                                                 SyntheticParams, TableParams, UlbParams,
                                                 fraud_synthetic, fraud_table, numeric_table,
                                                 ulb_creditcard)
from sslcore_fraud_transactions.loaders import (ColumnMapping, load_numeric_table,
                                                load_transactions, load_ulb, scan_table)
from sslcore_fraud_transactions.synthetic import generate_transactions

ULB = Path(__file__).parent / "fixtures" / "ulb_creditcard_40.csv"
MAPPING = ColumnMapping(user="user_id", timestamp="timestamp", amount="amount",
                        categorical=["merchant_id", "merchant_category", "device_id"],
                        numeric=["fee"], label="is_fraud")


@pytest.fixture(scope="module")
def tx() -> pl.DataFrame:
    return generate_transactions(4_000, n_users=40, fraud_rate=0.03, seed=9).with_columns(
        fee=pl.col("amount") * 0.01)


def _write(df: pl.DataFrame, path: Path) -> Path:
    df.write_csv(path) if path.suffix == ".csv" else df.write_parquet(path)
    return path


# ---- scan_table ---------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scan_table_reads_csv_and_parquet(tmp_path, tx, suffix):
    lf = scan_table(_write(tx, tmp_path / f"tx{suffix}"))
    assert isinstance(lf, pl.LazyFrame)
    assert lf.select(pl.len()).collect().item() == tx.height


def test_scan_table_bad_files(tmp_path):
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'.*\.parquet"):
        scan_table(tmp_path / "tx.xlsx")
    with pytest.raises(DataError, match="missing.csv: file not found"):
        scan_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty.csv: file is empty"):
        scan_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("user_id,amount\n")
    with pytest.raises(DataError, match="header.csv: file has a header but no rows"):
        scan_table(tmp_path / "header.csv")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="broken.parquet: could not read"):
        scan_table(tmp_path / "broken.parquet")


# ---- transactions with a column mapping ----------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_transactions(tmp_path, tx, suffix):
    lf = load_transactions(_write(tx, tmp_path / f"tx{suffix}"), MAPPING)
    df = lf.collect()
    assert df.schema["timestamp"] == pl.Datetime("us")  # parsed from the CSV strings too
    assert df.schema["is_fraud"] == pl.Int8
    assert df["timestamp"].to_list() == tx["timestamp"].to_list()


def test_load_transactions_numeric_seconds_timestamp(tmp_path, tx):
    df = tx.with_columns(pl.col("timestamp").dt.epoch("s").cast(pl.Float64))
    out = load_transactions(_write(df, tmp_path / "tx.parquet"), MAPPING).collect()
    assert out["timestamp"].dt.year().min() == 2024


def test_mapping_forbids_unknown_keys():
    with pytest.raises(ValidationError, match="extra"):
        ColumnMapping(user="u", timestamp="t", amount="a", lable="y")


def test_misspelled_column_names_file_column_and_close_match(tmp_path, tx):
    path = _write(tx, tmp_path / "tx.parquet")
    mapping = MAPPING.model_copy(update={"amount": "ammount", "categorical": ["merchant"]})
    with pytest.raises(DataError) as err:
        load_transactions(path, mapping)
    msg = str(err.value)
    assert str(path) in msg and "Available columns" in msg and "'user_id'" in msg
    assert "amount column 'ammount' not found (did you mean 'amount'?)" in msg
    assert "categorical column 'merchant' not found (did you mean 'merchant_id'" in msg


def test_wrong_dtypes(tmp_path, tx):
    path = _write(tx.with_columns(pl.col("amount").cast(pl.String) + " EUR"), tmp_path / "a.csv")
    with pytest.raises(DataError, match=r"a.csv: amount/numeric columns must be numeric.*'amount'"):
        load_transactions(path, MAPPING)
    bad_time = tx.with_columns(
        pl.when(pl.col("transaction_id") == 17).then(pl.lit("yesterday"))
        .otherwise(pl.col("timestamp").cast(pl.String)).alias("timestamp"))
    path = _write(bad_time, tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"t.csv: timestamp column 'timestamp'.*row 17.*yesterday"):
        load_transactions(path, MAPPING)
    path = _write(tx.with_columns(pl.lit(True).alias("timestamp")), tmp_path / "b.parquet")
    with pytest.raises(DataError, match="timestamp column 'timestamp' has dtype Boolean"):
        load_transactions(path, MAPPING)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_nan_inf_null_name_column_and_row(tmp_path, tx, bad, suffix):
    df = tx.with_columns(pl.when(pl.col("transaction_id") == 123).then(pl.lit(bad, pl.Float64))
                         .otherwise(pl.col("fee")).alias("fee"))
    path = _write(df, tmp_path / f"tx{suffix}")
    with pytest.raises(DataError, match=rf"tx{suffix}: column 'fee' has 1 null/NaN/inf.*row 123"):
        load_transactions(path, MAPPING)


def test_labels_must_be_binary_with_both_classes(tmp_path, tx):
    path = _write(tx.with_columns(pl.col("is_fraud") * 2), tmp_path / "two.csv")
    with pytest.raises(DataError, match=r"two.csv: label column 'is_fraud'.*or 1.*\[2\]"):
        load_transactions(path, MAPPING)
    path = _write(tx.with_columns(pl.lit(0).alias("is_fraud")), tmp_path / "one.parquet")
    with pytest.raises(DataError, match="one.parquet: label column 'is_fraud' has a single class"):
        load_transactions(path, MAPPING)
    strings = tx.with_columns(pl.col("merchant_category").alias("is_fraud"))
    path = _write(strings, tmp_path / "s.csv")
    with pytest.raises(DataError, match="label column 'is_fraud' has dtype String"):
        load_transactions(path, MAPPING)


# ---- ULB credit-card layout and numeric tables ---------------------------------------------

def test_load_ulb_fixture():
    table = load_ulb(ULB)
    assert table.x.shape == (40, 31) and table.x.dtype == np.float32
    assert table.feature_names[-3:] == ["log_amount", "hour_sin", "hour_cos"]
    assert table.y.sum() == 6 and np.isfinite(table.x).all()
    assert np.all(np.diff(table.time) >= 0)


def test_ulb_missing_column(tmp_path):
    path = _write(pl.read_csv(ULB).drop("V7"), tmp_path / "ulb.csv")
    with pytest.raises(DataError, match=r"ulb.csv: ULB credit-card column 'V7' not found"):
        load_ulb(path)


def test_numeric_table(tmp_path):
    df = pl.read_csv(ULB).rename({"Class": "label"})
    table = load_numeric_table(_write(df, tmp_path / "num.parquet"), "label")
    assert table.x.shape == (40, 30) and table.feature_names[0] == "Time"
    path = _write(df.with_columns(shop=pl.lit("x"), mcc=pl.lit("y")), tmp_path / "str.csv")
    with pytest.raises(DataError, match=r"str.csv: .*\{'shop': 'String', 'mcc': 'String'\}"):
        load_numeric_table(path, "label")
    with pytest.raises(DataError, match=r"label column 'lable' not found \(did you mean 'label'"):
        load_numeric_table(tmp_path / "num.parquet", "lable")


# ---- dataset factories -----------------------------------------------------------------------

def test_datasets_dict_registers_cleanly():
    registry = Registry("datasets")
    for name, (factory, params, description) in DATASETS.items():
        registry.add(name, factory, params, description)
        assert params.model_config["extra"] == "forbid" and description
    assert registry.names() == ["fraud_synthetic", "fraud_table", "numeric_table",
                                "ulb_creditcard"]
    with pytest.raises(ValidationError):
        SyntheticParams(n_rowz=10)
    with pytest.raises(ValidationError, match="must be 1"):
        SplitFractions(unlabeled=0.5, labeled=0.2, test=0.2)
    with pytest.raises(ValidationError, match="columns.label is required"):
        TableParams(path="x.csv", columns=MAPPING.model_copy(update={"label": None}))


def test_fraud_synthetic_split_by_time_and_deterministic():
    params = SyntheticParams(n_rows=20_000, n_users=200, fraud_rate=0.01)
    data = fraud_synthetic(params, seed=1)
    assert (len(data.unlabeled), len(data.labeled_x), len(data.test_x)) == (12_000, 4_000, 4_000)
    assert data.class_names == ["legit", "fraud"] and len(data.feature_names) == 24
    assert data.sources[0].startswith("synthetic(n_rows=20000")
    assert {"fraud_rate_unlabeled", "fraud_rate_labeled", "fraud_rate_test"} <= set(data.notes)
    assert data.notes["fraud_rate_test"] == pytest.approx(data.test_y.mean())
    again = fraud_synthetic(params, seed=1)
    assert data.card().content_hash == again.card().content_hash
    assert data.card().content_hash != fraud_synthetic(params, seed=2).card().content_hash
    # the last rows of the timeline are the test set: same features as the tail of the timeline
    df = generate_transactions(20_000, 200, 0.01, seed=1)
    assert np.array_equal(data.test_y, df["is_fraud"].to_numpy()[-4_000:])


def test_fraud_table_null_labels_go_to_unlabeled(tmp_path, tx):
    df = tx.with_columns(pl.when(pl.col("transaction_id") % 5 == 0).then(None)
                         .otherwise(pl.col("is_fraud")).alias("is_fraud"))
    path = _write(df.sample(fraction=1.0, shuffle=True, seed=0), tmp_path / "tx.csv")
    data = fraud_table(TableParams(path=path, columns=MAPPING), seed=0)
    known = df["is_fraud"].is_not_null().sum()
    n_lab, n_test = round(0.2 * known), known - round(0.6 * known) - round(0.2 * known)
    assert (len(data.labeled_x), len(data.test_x)) == (n_lab, n_test)
    assert len(data.unlabeled) == df.height - n_lab - n_test
    assert data.notes["unlabeled_rows_without_label"] == df.height - known
    assert data.sources == [str(path)]
    assert data.feature_names[-1] == "f_num_fee"
    # test rows are the latest labeled ones
    test_y = (df.drop_nulls("is_fraud").sort("timestamp", "transaction_id")["is_fraud"]
              .to_numpy()[-n_test:])
    assert np.array_equal(data.test_y, test_y)


def test_ulb_creditcard_dataset():
    data = ulb_creditcard(UlbParams(path=ULB), seed=0)
    assert (len(data.unlabeled), len(data.labeled_x), len(data.test_x)) == (24, 8, 8)
    assert data.input_shape == (31,) and data.sources == [str(ULB)]
    raw = pl.read_csv(ULB).sort("Time", maintain_order=True)
    assert np.array_equal(data.test_y, raw["Class"].to_numpy()[-8:])


def test_numeric_table_dataset_stratified(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random(1_000) < 0.1).astype(int)
    df = pl.DataFrame({"a": rng.standard_normal(1_000) + y, "b": rng.random(1_000), "label": y})
    params = NumericTableParams(path=_write(df, tmp_path / "num.csv"))
    data = numeric_table(params, seed=3)
    assert (len(data.unlabeled), len(data.labeled_x), len(data.test_x)) == (600, 200, 200)
    assert data.labeled_y.mean() == pytest.approx(y.mean(), abs=0.01)
    assert data.test_y.mean() == pytest.approx(y.mean(), abs=0.01)
    assert data.card().content_hash == numeric_table(params, seed=3).card().content_hash
    assert data.card().content_hash != numeric_table(params, seed=4).card().content_hash


def test_split_without_both_classes_is_refused(tmp_path):
    df = pl.read_csv(ULB).with_columns(
        pl.when(pl.int_range(pl.len()) < 32).then(pl.col("Class")).otherwise(0).alias("Class"))
    path = _write(df, tmp_path / "late_legit.csv")
    with pytest.raises(DataError, match="late_legit.csv: the test split .* has only class legit"):
        ulb_creditcard(UlbParams(path=path), seed=0)
