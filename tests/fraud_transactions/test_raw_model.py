"""The fraud model served on raw transactions: it computes the training features itself, so a
caller sends user, time, amount and the categorical columns, over HTTP, with no sslcore code."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest

from tests.tiny_runs import compare_from
from sslcore.sdk import DataError
from sslcore_fraud_transactions.datasets import SYNTHETIC_COLUMNS, SyntheticParams, fraud_synthetic
from sslcore_fraud_transactions.features import ROW_INDEX, behavioral_features, feature_columns
from sslcore_fraud_transactions.raw_model import TransactionFeatures, raw_input
from sslcore_fraud_transactions.synthetic import generate_transactions
from tests.core.test_serve import post, scoring_server

RAW = ["user_id", "timestamp", "amount", "merchant_id", "merchant_category", "region",
       "device_id", "channel"]


@pytest.fixture(scope="module")
def transactions() -> pl.DataFrame:
    return generate_transactions(1500, n_users=30, fraud_rate=0.03, seed=2)


def _training_features(df: pl.DataFrame, m=SYNTHETIC_COLUMNS) -> np.ndarray:
    """The features as the dataset loaders compute them (polars, the whole frame)."""
    feats = behavioral_features(df.lazy(), user=m.user, timestamp=m.timestamp, amount=m.amount,
                                categorical=m.categorical, numeric=m.numeric)
    feats = feats.collect().sort(ROW_INDEX)
    return feats.select(feature_columns(feats.schema)).to_numpy()


def test_raw_rows_give_the_training_features(transactions):
    raw = transactions.select(RAW).to_pandas()  # what a caller holds: no label, no f_*
    got = TransactionFeatures(SYNTHETIC_COLUMNS)(raw)
    np.testing.assert_allclose(got, _training_features(transactions), rtol=1e-6, atol=1e-6)


def test_the_raw_input_matches_the_dataset_features():
    spec = raw_input("fraud_synthetic", {})
    data = fraud_synthetic(SyntheticParams(n_rows=2000, n_users=20, fraud_rate=0.05), seed=0)
    assert spec.feature_names == data.feature_names and len(spec.feature_names) == 24
    assert list(spec.example.columns) == RAW
    assert spec.example["user_id"].nunique() == 2  # history within the request, shown
    assert raw_input("ulb_creditcard", {"path": "x.csv"}) is None


def test_a_table_with_string_times_is_served_on_its_own_columns(transactions, tmp_path):
    csv = tmp_path / "tx.csv"
    transactions.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S%.6f")) \
        .write_csv(csv)
    columns = {"user": "user_id", "timestamp": "timestamp", "amount": "amount",
               "categorical": ["merchant_id", "channel"], "label": "is_fraud"}
    spec = raw_input("fraud_table", {"path": str(csv), "columns": columns})
    assert list(spec.example.columns) == ["user_id", "timestamp", "amount", "merchant_id",
                                          "channel"]
    assert spec.example["timestamp"].map(type).eq(str).all()  # the file's own strings
    raw = pl.read_csv(csv).to_pandas()
    expected = _training_features(transactions, spec.features.mapping)
    np.testing.assert_allclose(spec.features(raw), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("column, value, message", [
    ("amount", float("nan"), "column 'amount' has 1 null/NaN/inf values, first at row 3"),
    ("user_id", None, "user column 'user_id' has 1 missing values, first at row 3"),
    ("timestamp", "yesterday", "timestamp column 'timestamp' has 1 missing or unparseable"),
])
def test_bad_values_name_the_column_and_row(transactions, column, value, message):
    raw = transactions.head(6).select(RAW).to_pandas()
    if column == "timestamp":
        raw["timestamp"] = raw["timestamp"].astype(str)
    raw[column] = raw[column].astype(object)
    raw.loc[3, column] = value
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        TransactionFeatures(SYNTHETIC_COLUMNS)(raw)


# --------------------------------------------------------------- logged, registered, served

TINY = {
    "vertical": "fraud_transactions",
    "dataset": {"name": "fraud_synthetic",
                "params": {"n_rows": 5000, "n_users": 50, "fraud_rate": 0.02}},
    "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}],
    "baselines": [{"name": "logreg_raw"}],
    "pretrain": {"epochs": 1, "max_steps": 2, "min_steps": 0, "batch_size": 256},
    "evaluation": {"label_fractions": [0.5, 1.0], "seeds": [0]},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory, make_store):
    tmp = tmp_path_factory.mktemp("fraud_serve")
    uri = make_store(tmp)
    report = compare_from(tmp, TINY, uri, tmp / "runs")
    with scoring_server("models:/sslcore-fraud_transactions@candidate", uri, tmp) as url:
        yield report, url


def test_logged_model_takes_raw_columns_and_names_the_plugin(served):
    report, _ = served
    mlflow.set_tracking_uri(report.tracking_uri)
    info = mlflow.models.get_model_info(report.model_uri)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == RAW
    local = Path(mlflow.artifacts.download_artifacts(report.model_uri))
    requirements = (local / "requirements.txt").read_text()
    assert "sslcore-fraud-transactions==" in requirements and "sslcore==" in requirements
    version = mlflow.MlflowClient().get_model_version_by_alias(
        "sslcore-fraud_transactions", "candidate")
    assert "a user's history before the request is not seen" in version.description


def test_the_documented_example_over_http(served):
    report, url = served
    local = Path(mlflow.artifacts.download_artifacts(report.model_uri,
                                                     tracking_uri=report.tracking_uri))
    example = json.loads((local / "serving_input_example.json").read_text())
    assert example["dataframe_split"]["columns"] == RAW
    status, body = post(url, example)
    assert status == 200, body
    mlflow.set_tracking_uri(report.tracking_uri)
    expected = mlflow.pyfunc.load_model(report.model_uri).predict(raw_input(
        "fraud_synthetic", {}).example)
    np.testing.assert_allclose(body["predictions"], np.asarray(expected, dtype=np.float64),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("column, value, names", [
    ("amount", None, ["'amount'", "NaN", "row 2"]),
    ("amount", "lots", ["amount"]),
    ("user_id", None, ["user_id"]),
    (None, None, ["channel"]),  # the column left out
])
def test_bad_transactions_get_400_naming_the_column(served, column, value, names):
    report, url = served
    example = raw_input("fraud_synthetic", {}).example
    split = json.loads(example.to_json(orient="split", index=False, date_format="iso"))
    rows = split["data"]
    cols = split["columns"]
    if column is None:
        i = cols.index("channel")
        cols = cols[:i] + cols[i + 1:]
        rows = [r[:i] + r[i + 1:] for r in rows]
    else:
        rows[2][cols.index(column)] = value
    status, body = post(url, {"dataframe_split": {"columns": cols, "data": rows}})
    assert status == 400, body
    assert all(n in body["message"] for n in names), body["message"]
