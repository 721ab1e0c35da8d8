"""Read users' transaction tables through polars lazy scans, and refuse bad data early.

Three layouts are supported:

* transactions with a :class:`ColumnMapping` (user, timestamp, amount, categorical and numeric
  columns, optional label) for the behavioural features;
* the public ULB credit-card layout (Time, V1..V28, Amount, Class);
* a plain numeric feature table with a label column.

Every check raises :class:`~sslcore.errors.DataError` naming the file, the column and, where it
applies, the first bad row (0-based data row, header excluded), before any expensive step.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sslcore.sdk import DataError

SUFFIXES = (".parquet", ".pq", ".csv")
ULB_FEATURES = [f"V{i}" for i in range(1, 29)]
ULB_COLUMNS = ["Time", *ULB_FEATURES, "Amount", "Class"]


class ColumnMapping(BaseModel):
    """Which columns of a transaction table play which role.

    Examples:
        >>> mapping = ColumnMapping(user="card_id", timestamp="ts", amount="amt",
        ...                         categorical=["merchant", "mcc"], label="is_fraud")
        >>> mapping.columns()["mcc"]
        'categorical'
    """

    model_config = ConfigDict(extra="forbid")

    user: str = Field(description="card, account or customer id")
    timestamp: str = Field(description="datetime, date, ISO string or numeric seconds")
    amount: str = Field(description="numeric transaction amount")
    categorical: list[str] = Field(default_factory=list, description="compared with the history")
    numeric: list[str] = Field(default_factory=list, description="passed through as features")
    label: str | None = Field(default=None, description="0 = legit, 1 = fraud, null = unknown")

    def columns(self) -> dict[str, str]:
        """Column name -> mapping field, in a stable order."""
        out = {self.user: "user", self.timestamp: "timestamp", self.amount: "amount"}
        out |= {c: "categorical" for c in self.categorical if c not in out}
        out |= {c: "numeric" for c in self.numeric if c not in out}
        if self.label is not None:
            out.setdefault(self.label, "label")
        return out


@dataclass
class NumericTable:
    """Features, labels and (for time-ordered data) the time of each row, in file order."""

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    time: np.ndarray | None = None


def scan_table(path: str | Path) -> pl.LazyFrame:
    """Lazily scan a .parquet/.pq or .csv file.

    Raises:
        DataError: the file is missing, empty, unreadable or has another suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; use one "
                        f"of {', '.join(SUFFIXES)} (convert other formats with polars or pandas)")
    if not path.is_file():
        raise DataError(f"{path}: file not found (working directory {Path.cwd()})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")
    try:
        if suffix == ".csv":
            lf = pl.scan_csv(path, infer_schema_length=10_000)
        else:
            lf = pl.scan_parquet(path)
        schema = lf.collect_schema()
        n_rows = lf.select(pl.len()).collect().item()
    except pl.exceptions.PolarsError as err:
        raise DataError(f"{path}: could not read as {suffix[1:]}: {err}") from err
    if not schema:
        raise DataError(f"{path}: file has no columns")
    if n_rows == 0:
        raise DataError(f"{path}: file has a header but no rows")
    return lf


def require_columns(schema: pl.Schema, columns: dict[str, str], path: str | Path) -> None:
    """Raise one DataError listing every missing column with its role and close matches."""
    available = list(schema)
    problems = []
    for col, role in columns.items():
        if col not in schema:
            close = difflib.get_close_matches(col, available, n=3, cutoff=0.6)
            close += [c for c in available if c.lower() == col.lower() and c not in close]
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            problems.append(f"{role} column {col!r} not found{hint}")
    if problems:
        raise DataError(f"{path}: {'; '.join(problems)}. Available columns: {available}")


def check_numeric(schema: pl.Schema, columns: Sequence[str], path: str | Path, role: str) -> None:
    bad = {c: str(schema[c]) for c in columns
           if not (schema[c].is_numeric() or schema[c] == pl.Boolean)}
    if bad:
        raise DataError(f"{path}: {role} columns must be numeric, but {bad} are not; convert them "
                        "to numbers or map them as categorical")


def check_finite(lf: pl.LazyFrame, columns: Sequence[str], path: str | Path) -> None:
    """Raise on the first null, NaN or inf of each numeric column, naming column and row."""
    cols = [c for c in columns if lf.collect_schema()[c] != pl.Boolean]
    if not cols:
        return
    bad = {c: pl.col(c).is_null() | ~pl.col(c).cast(pl.Float64).is_finite().fill_null(False)
           for c in cols}
    stats = _collect(lf.select(
        *[e.sum().alias(f"n:{c}") for c, e in bad.items()],
        *[e.arg_max().alias(f"i:{c}") for c, e in bad.items()],
    ), path).row(0, named=True)
    for c in cols:
        if stats[f"n:{c}"]:
            row = stats[f"i:{c}"]
            value = _collect(lf.select(pl.col(c).gather(row)), path).item()
            raise DataError(f"{path}: column {c!r} has {stats[f'n:{c}']} null/NaN/inf values, "
                            f"first at row {row} (0-based, header excluded) = {value}; impute or "
                            "drop those rows")


def check_label(lf: pl.LazyFrame, label: str, path: str | Path, *, allow_null: bool) -> None:
    """Labels must be 0/1 (or booleans), with both classes present among the labeled rows."""
    dtype = lf.collect_schema()[label]
    if not (dtype.is_numeric() or dtype == pl.Boolean):
        raise DataError(f"{path}: label column {label!r} has dtype {dtype}; expected 0/1 "
                        "(0 = legit, 1 = fraud)")
    y = pl.col(label).cast(pl.Float64)
    stats = _collect(lf.select(
        n0=(y == 0).sum(), n1=(y == 1).sum(), nulls=(y.is_null() | y.is_nan()).sum(),
        other=(y.is_not_null() & ~y.is_nan() & ~y.is_in([0.0, 1.0])).sum(),
        first_other=(y.is_not_null() & ~y.is_nan() & ~y.is_in([0.0, 1.0])).arg_max(),
        first_null=(y.is_null() | y.is_nan()).arg_max(),
    ), path).row(0, named=True)
    if stats["other"]:
        values = _collect(lf.select(pl.col(label).filter(~y.is_in([0.0, 1.0]) & ~y.is_nan())
                                    .unique().sort().head(5)), path).to_series().to_list()
        raise DataError(f"{path}: label column {label!r} must hold 0 (legit) or 1 (fraud), but "
                        f"{stats['other']} rows hold other values such as {values}, first at row "
                        f"{stats['first_other']} (0-based, header excluded)")
    if stats["nulls"] and not allow_null:
        raise DataError(f"{path}: label column {label!r} has {stats['nulls']} missing values, "
                        f"first at row {stats['first_null']}; every row needs a 0/1 label here")
    present = [c for c in ("n0", "n1") if stats[c]]
    if len(present) < 2:
        only = "none" if not present else present[0][1]
        raise DataError(f"{path}: label column {label!r} has a single class (class {only}, "
                        f"{stats['n0'] + stats['n1']} labeled rows); both legit (0) and fraud (1) "
                        "examples are needed")


def load_transactions(path: str | Path, mapping: ColumnMapping) -> pl.LazyFrame:
    """Validated lazy frame of the mapped columns, with the timestamp as Datetime[us] and the
    label (if mapped) as Int8 with nulls for unlabeled rows."""
    lf = scan_table(path)
    schema = lf.collect_schema()
    require_columns(schema, mapping.columns(), path)
    check_numeric(schema, [mapping.amount, *mapping.numeric], path, "amount/numeric")
    check_finite(lf, [mapping.amount, *mapping.numeric], path)
    ts = _timestamp(lf, schema, mapping.timestamp, path)
    keys = _collect(lf.select(
        pl.col(mapping.user).null_count().alias("n"), pl.col(mapping.user).is_null().arg_max()
        .alias("i")), path).row(0)
    if keys[0]:
        raise DataError(f"{path}: user column {mapping.user!r} has {keys[0]} missing values, first "
                        f"at row {keys[1]} (0-based, header excluded); drop or fill those rows")
    if mapping.label is not None:
        check_label(lf, mapping.label, path, allow_null=True)
    out = [pl.col(c) for c in mapping.columns() if c not in (mapping.timestamp, mapping.label)]
    if mapping.label is not None:
        out.append(pl.col(mapping.label).cast(pl.Float64).fill_nan(None).cast(pl.Int8))
    return lf.select(ts.alias(mapping.timestamp), *out)


def _timestamp(lf: pl.LazyFrame, schema: pl.Schema, col: str, path: str | Path) -> pl.Expr:
    """Expression parsing the timestamp column to Datetime[us]; raises on unparseable values."""
    dtype = schema[col]
    if isinstance(dtype, pl.Datetime):
        expr = pl.col(col).dt.cast_time_unit("us")
    elif dtype == pl.Date:
        expr = pl.col(col).cast(pl.Datetime("us"))
    elif dtype.is_numeric():
        check_finite(lf, [col], path)
        expr = (pl.col(col).cast(pl.Float64) * 1e6).round().cast(pl.Int64).cast(pl.Datetime("us"))
    elif dtype == pl.String:
        expr = pl.col(col).str.to_datetime(strict=False, time_unit="us")
    else:
        raise DataError(f"{path}: timestamp column {col!r} has dtype {dtype}; expected a datetime, "
                        "an ISO date-time string or numeric seconds since an epoch")
    bad = expr.is_null()
    n_bad, first = _collect(lf.select(bad.sum().alias("n"), bad.arg_max().alias("i")), path).row(0)
    if n_bad:
        value = _collect(lf.select(pl.col(col).gather(first)), path).item()
        raise DataError(f"{path}: timestamp column {col!r} has {n_bad} missing or unparseable "
                        f"values, first at row {first} (0-based, header excluded) = {value!r}; "
                        "use ISO 8601 (2024-01-31 13:45:00) or numeric seconds")
    return expr


def load_ulb(path: str | Path) -> NumericTable:
    """The ULB credit-card layout: features V1..V28, log1p(Amount) and hour-of-day sin/cos from
    Time (seconds since the first transaction); ``time`` is Time, for splitting by time."""
    lf = scan_table(path)
    schema = lf.collect_schema()
    require_columns(schema, {c: "ULB credit-card" for c in ULB_COLUMNS}, path)
    check_numeric(schema, ULB_COLUMNS, path, "ULB credit-card")
    check_finite(lf, ULB_COLUMNS, path)
    check_label(lf, "Class", path, allow_null=False)
    neg = pl.col("Amount") < 0
    negative = _collect(lf.select(neg.sum().alias("n"), neg.arg_max().alias("i")), path).row(0)
    if negative[0]:
        raise DataError(f"{path}: column 'Amount' has {negative[0]} negative values, first at row "
                        f"{negative[1]}; the ULB layout has non-negative amounts")
    angle = (pl.col("Time").cast(pl.Float64) / 3600.0 % 24.0) * (2.0 * np.pi / 24.0)
    df = _collect(lf.select(
        *[pl.col(c).cast(pl.Float32) for c in ULB_FEATURES],
        pl.col("Amount").cast(pl.Float64).log1p().cast(pl.Float32).alias("log_amount"),
        angle.sin().cast(pl.Float32).alias("hour_sin"),
        angle.cos().cast(pl.Float32).alias("hour_cos"),
        pl.col("Class").cast(pl.Int64).alias("__y"),
        pl.col("Time").cast(pl.Float64).alias("__time"),
    ), path)
    names = [*ULB_FEATURES, "log_amount", "hour_sin", "hour_cos"]
    return NumericTable(df.select(names).to_numpy(), df["__y"].to_numpy(), names,
                        df["__time"].to_numpy())


def load_numeric_table(path: str | Path, label: str) -> NumericTable:
    """Every column but ``label`` is a numeric feature; non-numeric columns are refused."""
    lf = scan_table(path)
    schema = lf.collect_schema()
    require_columns(schema, {label: "label"}, path)
    features = [c for c in schema if c != label]
    bad = {c: str(schema[c]) for c in features
           if not (schema[c].is_numeric() or schema[c] == pl.Boolean)}
    if bad:
        raise DataError(f"{path}: a numeric feature table needs every column except the label "
                        f"{label!r} to be numeric, but {bad} are not; drop or encode them")
    if not features:
        raise DataError(f"{path}: no feature columns besides the label {label!r}")
    check_finite(lf, features, path)
    check_label(lf, label, path, allow_null=False)
    df = _collect(lf.select(*[pl.col(c).cast(pl.Float32) for c in features],
                            pl.col(label).cast(pl.Int64).alias("__y")), path)
    return NumericTable(df.select(features).to_numpy(), df["__y"].to_numpy(), features)


def _collect(lf: pl.LazyFrame, path: str | Path) -> pl.DataFrame:
    try:
        return lf.collect(engine="streaming")
    except pl.exceptions.PolarsError as err:
        raise DataError(f"{path}: could not read: {err}") from err
