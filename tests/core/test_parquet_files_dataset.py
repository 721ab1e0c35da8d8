"""The `parquet_files` dataset: a streamed unlabeled pool plus labeled/test files, end to end."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import sslcore
from sslcore.data.parquet_pool import ParquetPool
from sslcore.errors import DataError


def _tables(tmp_path):
    rng = np.random.default_rng(0)

    def frame(n):
        x = rng.standard_normal((n, 4))
        y = (x[:, 0] + 0.5 * rng.standard_normal(n) > 1.0).astype(np.int64)
        return pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "y": y,
                             "name": ["row"] * n})

    for i in range(2):
        frame(300).drop("y").write_parquet(tmp_path / f"pool{i}.parquet", row_group_size=50)
    frame(300).write_parquet(tmp_path / "labeled.parquet")
    frame(300).write_parquet(tmp_path / "test.parquet")
    return {"name": "parquet_files", "params": {
        "unlabeled": [str(tmp_path / "pool*.parquet")], "labeled": str(tmp_path / "labeled.parquet"),
        "test": str(tmp_path / "test.parquet"), "label": "y"}}


def test_compare_on_parquet_files(tmp_path, tracking_uri):
    dataset = _tables(tmp_path)
    cfg = {"vertical": "tabular", "dataset": dataset, "output_dir": str(tmp_path / "runs"),
           "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}],
           "baselines": [{"name": "hist_gbm", "params": {"max_iter": 20, "max_iter_no_val": 20}}],
           "pretrain": {"epochs": 1, "batch_size": 64, "min_steps": 0},
           "evaluation": {"label_fractions": [1.0], "seeds": [0]}}
    report = sslcore.compare(cfg, progress=False)
    assert set(report.table["method"]) == {"linear_probe", "hist_gbm"}
    from sslcore.plugins import load_registries

    data = load_registries().datasets.get("parquet_files").build(dataset["params"], seed=0)
    assert isinstance(data.unlabeled, ParquetPool) and data.unlabeled.n_rows == 600
    assert data.feature_names == ["a", "b", "c", "d"]  # numeric columns except the label


def test_bad_parquet_inputs_are_named(tmp_path):
    from sslcore.plugins import load_registries

    params = _tables(tmp_path)["params"]
    entry = load_registries().datasets.get("parquet_files")
    with pytest.raises(DataError, match=r"matches no file"):
        entry.build(params | {"unlabeled": [str(tmp_path / "none*.parquet")]}, seed=0)
    with pytest.raises(DataError, match=r"labeled.parquet: no label column 'label'"):
        entry.build(params | {"label": "label"}, seed=0)
    with pytest.raises(DataError, match=r"column 'name' is String, not numeric"):
        entry.build(params | {"features": ["a", "name"]}, seed=0)
