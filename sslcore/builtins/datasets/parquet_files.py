"""Numeric Parquet tables at scale: a large unlabeled pool streamed by row group, small labeled
and test files loaded whole.

The unlabeled pool becomes a :class:`~sslcore.data.parquet_pool.ParquetPool`: nothing is read
up front but metadata, and under torchrun every rank reads only its own row groups.

Example config::

    vertical: tabular
    dataset:
      name: parquet_files
      params:
        unlabeled: ["/data/events/*.parquet"]
        labeled: /data/labeled.parquet
        test: /data/test.parquet
        label: is_fraud
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sslcore.data.parquet_pool import ParquetPool
from sslcore.data.ssl_data import SSLData
from sslcore.errors import DataError


class ParquetFilesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unlabeled: list[str] = Field(description="Parquet files or glob patterns of the pool")
    labeled: str = Field(description="Parquet file of labeled rows")
    test: str = Field(description="Parquet file of held-out test rows")
    label: str = Field(description="integer class column of the labeled and test files")
    features: list[str] | None = Field(None, description="feature columns; default: every "
                                       "numeric column of the labeled file except the label")
    window: int = Field(4, ge=1, description="row groups shuffled together while streaming")


def _expand(patterns: list[str]) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise DataError(f"dataset.params.unlabeled: {pattern!r} matches no file")
        paths += [Path(p) for p in found]
    return paths


def _load(path: str, columns: list[str] | None, label: str) -> tuple[np.ndarray, np.ndarray,
                                                                     list[str]]:
    import polars as pl

    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - polars raises several types for bad files
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if label not in frame.columns:
        raise DataError(f"{path}: no label column {label!r}; columns are {frame.columns[:20]}")
    if columns is None:
        columns = [c for c, t in frame.schema.items() if t.is_numeric() and c != label]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing feature column(s) {missing}")
    for c in columns:
        if not frame.schema[c].is_numeric():
            raise DataError(f"{path}: column {c!r} is {frame.schema[c]}, not numeric")
    if not frame.schema[label].is_integer() or frame[label].null_count():
        raise DataError(f"{path}: label column {label!r} must hold integer classes, no nulls")
    return (frame.select(columns).to_numpy().astype(np.float32),
            frame[label].to_numpy().astype(np.int64), columns)


def parquet_files(params: ParquetFilesParams, *, seed: int) -> SSLData:
    labeled_x, labeled_y, columns = _load(params.labeled, params.features, params.label)
    test_x, test_y, _ = _load(params.test, columns, params.label)
    pool = ParquetPool(_expand(params.unlabeled), columns, window=params.window)
    return SSLData(unlabeled=pool, labeled_x=labeled_x, labeled_y=labeled_y, test_x=test_x,
                   test_y=test_y, feature_names=columns,
                   sources=[*(str(p) for p in pool.paths), params.labeled, params.test],
                   notes={"unlabeled_rows": pool.n_rows, "unlabeled_row_groups":
                          len(pool.groups)})
