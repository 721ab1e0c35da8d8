"""Dataset factories of the fraud_transactions vertical: each returns a validated SSLData.

Transaction data is split by TIME (earliest share -> unlabeled pool, then labeled pool, then
test), as a deployed model would meet it; behavioural features are computed once over the whole
timeline from past rows only, so the split leaks neither future rows nor labels. Standardization
is left to the backbone / runner.

The lead's plugin.py registers :data:`DATASETS` in a loop::

    for name, (factory, params, description) in DATASETS.items():
        registry.add(name, factory, params, description)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sslcore.sdk import DataError, SSLData
from sslcore_fraud_transactions.features import ROW_INDEX, behavioral_features, feature_columns
from sslcore_fraud_transactions.loaders import (ColumnMapping, load_numeric_table,
                                                load_transactions, load_ulb)
from sslcore_fraud_transactions.markets import Market
from sslcore_fraud_transactions.synthetic import generate_transactions

CLASS_NAMES = ["legit", "fraud"]
SYNTHETIC_COLUMNS = ColumnMapping(
    user="user_id", timestamp="timestamp", amount="amount",
    categorical=["merchant_id", "merchant_category", "region", "device_id", "channel"],
    label="is_fraud",
)


class SplitFractions(BaseModel):
    """Shares of the rows for the unlabeled pool, the labeled pool and the test set."""

    model_config = ConfigDict(extra="forbid")

    unlabeled: float = Field(0.6, ge=0.0, lt=1.0)
    labeled: float = Field(0.2, gt=0.0, lt=1.0)
    test: float = Field(0.2, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.unlabeled + self.labeled + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"unlabeled + labeled + test must be 1, got {total:g}")
        return self


class TimeRange(BaseModel):
    """Keep the rows with ``start <= time < end`` (either open). Features still read the
    rows before ``start`` as history, as a model deployed at ``start`` would."""

    model_config = ConfigDict(extra="forbid")

    start: datetime | float | None = Field(None, description="ISO date-time, or seconds "
                                           "(for numeric time columns)")
    end: datetime | float | None = None

    def mask(self, times: np.ndarray, *, where: str) -> np.ndarray:
        """Rows of ``times`` (datetime64 or float seconds) inside the range."""
        keep = np.ones(len(times), dtype=bool)
        for bound, inside in ((self.start, np.greater_equal), (self.end, np.less)):
            if bound is None:
                continue
            if np.issubdtype(times.dtype, np.datetime64):
                if not isinstance(bound, datetime):
                    bound = datetime.fromtimestamp(bound, tz=timezone.utc)
                if bound.tzinfo is not None:  # the loader keeps naive UTC times
                    bound = bound.astimezone(timezone.utc).replace(tzinfo=None)
                keep &= inside(times, np.datetime64(bound, "us"))
            elif isinstance(bound, datetime):
                raise DataError(f"{where}: time_range bounds must be seconds here (the time "
                                f"column is numeric), got {bound.isoformat()}")
            else:
                keep &= inside(times, bound)
        if not keep.any():
            raise DataError(f"{where}: no rows in time_range [{self.start}, {self.end}) "
                            f"(the data spans {times.min()} .. {times.max()}); "
                            "fix dataset.params.time_range")
        return keep


class SyntheticParams(BaseModel):
    """Synthetic card transactions (see :mod:`sslcore_fraud_transactions.synthetic`)."""

    model_config = ConfigDict(extra="forbid")

    n_rows: int = Field(200_000, ge=1_000)
    n_users: int = Field(2_000, ge=10)
    fraud_rate: float = Field(0.005, gt=0.0, le=0.5)
    days: int = Field(90, ge=1)
    split: SplitFractions = Field(default_factory=SplitFractions)
    market: Market = Field(default_factory=Market, description="another market or period "
                           "(amounts, ids, phone switches, travel, fraud mix; see markets.py); "
                           "the defaults are the built-in market")


class TableParams(BaseModel):
    """A user's transaction table; rows with a null label always go to the unlabeled pool."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    columns: ColumnMapping
    split: SplitFractions = Field(default_factory=SplitFractions)
    time_range: TimeRange | None = Field(None, description="use only the rows in this period "
                                         "(e.g. train on the first half and name the second "
                                         "as a dataset.shifted domain); None: all rows")

    @model_validator(mode="after")
    def _needs_label(self) -> TableParams:
        if self.columns.label is None:
            raise ValueError("columns.label is required: the labeled pool and test set need labels")
        return self


class UlbParams(BaseModel):
    """The public ULB credit-card CSV (Time, V1..V28, Amount, Class)."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    split: SplitFractions = Field(default_factory=SplitFractions)
    time_range: TimeRange | None = Field(None, description="use only the rows with Time "
                                         "(seconds) in this range, e.g. {end: 86400} for the "
                                         "first of the two days")


class NumericTableParams(BaseModel):
    """A numeric feature table with a 0/1 label column and no user or time columns."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    label: str = "label"
    split: SplitFractions = Field(default_factory=SplitFractions)


def fraud_synthetic(params: SyntheticParams, *, seed: int) -> SSLData:
    """Generate transactions, compute behavioural features, split by time."""
    m = SYNTHETIC_COLUMNS
    df = generate_transactions(params.n_rows, params.n_users, params.fraud_rate, seed=seed,
                               days=params.days, market=params.market)
    # the frame is sorted by timestamp, so row order is time order once sorted back by row index
    feats = behavioral_features(df.lazy(), user=m.user, timestamp=m.timestamp, amount=m.amount,
                                categorical=m.categorical, numeric=m.numeric)
    feats = feats.collect(engine="streaming").sort(ROW_INDEX)
    names = feature_columns(feats.schema)
    x = feats.select(names).to_numpy()
    y = df[m.label].to_numpy().astype(np.int64)
    source = (f"synthetic(n_rows={params.n_rows}, n_users={params.n_users}, "
              f"fraud_rate={params.fraud_rate}, days={params.days}, seed={seed}"
              + ("" if params.market.is_default() else f", market: {params.market.describe()}")
              + ")")
    unl, lab, test = _cut(np.arange(len(y)), params.split)
    return _build(x, y, unl, lab, test, names, source, split="time")


def fraud_table(params: TableParams, *, seed: int) -> SSLData:
    """A user's Parquet/CSV transactions with a column mapping; split by time."""
    m = params.columns
    lf = load_transactions(params.path, m)
    feats = behavioral_features(lf, user=m.user, timestamp=m.timestamp, amount=m.amount,
                                categorical=m.categorical, numeric=m.numeric)
    feats = feats.collect(engine="streaming")
    labels = lf.select(m.label).collect(engine="streaming").to_series()
    feats = feats.with_columns(labels.gather(feats[ROW_INDEX]).alias("__label"))
    feats = feats.sort([m.timestamp, ROW_INDEX])  # global time order, ties in file order
    names = feature_columns(feats.schema)
    x = feats.select(names).to_numpy()
    y = feats["__label"]
    in_range = (params.time_range.mask(feats[m.timestamp].to_numpy(), where=str(params.path))
                if params.time_range else np.ones(len(y), dtype=bool))
    known = np.flatnonzero(y.is_not_null().to_numpy() & in_range)
    unknown = np.flatnonzero(y.is_null().to_numpy() & in_range)
    y = y.fill_null(0).to_numpy().astype(np.int64)
    unl, lab, test = _cut(known, params.split)
    unl = np.sort(np.concatenate([unknown, unl]))
    data = _build(x, y, unl, lab, test, names, str(params.path), split="time", hidden=unknown)
    data.notes["unlabeled_rows_without_label"] = len(unknown)
    return data


def ulb_creditcard(params: UlbParams, *, seed: int) -> SSLData:
    """The ULB credit-card layout, split by Time."""
    table = load_ulb(params.path)
    order = np.argsort(table.time, kind="stable")
    if params.time_range:
        order = order[params.time_range.mask(table.time[order], where=str(params.path))]
    unl, lab, test = _cut(order, params.split)
    return _build(table.x, table.y, unl, lab, test, table.feature_names, str(params.path),
                  split="time")


def numeric_table(params: NumericTableParams, *, seed: int) -> SSLData:
    """A numeric feature table; stratified random split with ``seed``."""
    from sklearn.model_selection import train_test_split

    table = load_numeric_table(params.path, params.label)
    idx = np.arange(len(table.y))
    f = params.split
    try:
        rest, test = train_test_split(idx, test_size=f.test, stratify=table.y, random_state=seed)
        if f.unlabeled > 0:
            unl, lab = train_test_split(rest, test_size=f.labeled / (f.labeled + f.unlabeled),
                                        stratify=table.y[rest], random_state=seed)
        else:
            unl, lab = rest[:0], rest
    except ValueError as err:
        raise DataError(f"{params.path}: cannot split {len(idx)} rows into unlabeled/labeled/test "
                        f"= {f.unlabeled}/{f.labeled}/{f.test} with both classes in each: {err}. "
                        "Add rows or change split fractions") from err
    return _build(table.x, table.y, np.sort(unl), np.sort(lab), np.sort(test),
                  table.feature_names, str(params.path), split="stratified random")


def _cut(order: np.ndarray, split: SplitFractions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive shares of ``order`` (row indices, earliest first)."""
    n = len(order)
    n_unl = int(round(split.unlabeled * n))
    n_lab = int(round(split.labeled * n))
    return order[:n_unl], order[n_unl:n_unl + n_lab], order[n_unl + n_lab:]


def _build(x: np.ndarray, y: np.ndarray, unl: np.ndarray, lab: np.ndarray, test: np.ndarray,
           names: list[str], source: str, *, split: str,
           hidden: np.ndarray | None = None) -> SSLData:
    """Assemble, check that every labeled split has both classes, note fraud rates, validate."""
    for name, idx in (("labeled", lab), ("test", test)):
        classes = np.unique(y[idx])
        if len(classes) < 2:
            raise DataError(
                f"{source}: the {name} split ({len(idx)} rows, {split} split) has only class "
                f"{CLASS_NAMES[classes[0]] if len(classes) else 'none'}; fraud is rare, so use "
                "more rows or larger labeled/test fractions")
    notes: dict[str, Any] = {"split": split}
    known_unl = np.setdiff1d(unl, hidden) if hidden is not None and len(hidden) else unl
    for name, idx in (("unlabeled", known_unl), ("labeled", lab), ("test", test)):
        notes[f"fraud_rate_{name}"] = round(float(y[idx].mean()), 6) if len(idx) else float("nan")
    return SSLData(
        unlabeled=x[unl], labeled_x=x[lab], labeled_y=y[lab], test_x=x[test], test_y=y[test],
        sources=[source], feature_names=list(names), class_names=list(CLASS_NAMES), notes=notes,
    ).validate()


DATASETS: dict[str, tuple[Callable[..., SSLData], type[BaseModel], str]] = {
    "fraud_synthetic": (fraud_synthetic, SyntheticParams,
                        "synthetic card transactions (per-user habits, ATO, card testing, "
                        "out-of-pattern fraud); behavioural features; split by time"),
    "fraud_table": (fraud_table, TableParams,
                    "your Parquet/CSV transactions with a column mapping; behavioural features; "
                    "null labels go to the unlabeled pool; split by time"),
    "ulb_creditcard": (ulb_creditcard, UlbParams,
                       "public ULB credit-card CSV (Time, V1..V28, Amount, Class); split by Time"),
    "numeric_table": (numeric_table, NumericTableParams,
                      "any numeric feature table with a 0/1 label column; stratified random split"),
}
