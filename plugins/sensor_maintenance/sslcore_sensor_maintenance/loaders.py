"""Readers for sensor data through polars: long-format readings, failure tables, NASA C-MAPSS.

Long format: one row per (machine, timestamp) with one column per sensor, in Parquet or CSV;
the column names are configurable (:class:`ReadingsColumns`). The failure table has a machine
column and a failure-time column (:class:`FailureColumns`). C-MAPSS text files hold 26
whitespace-separated numbers per line: unit, cycle, 3 operational settings, 21 sensors; in the
train files every unit runs to failure, so its last cycle is its failure.

Each reader returns a frame with the canonical columns ``__machine`` (str) and ``__time``
(float: hours since the Unix epoch for timestamps, cycles for C-MAPSS) plus the sensors, and
raises a :class:`~sslcore.errors.DataError` naming the file, column, row, machine or timestamp.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sslcore.sdk import DataError
from sslcore_sensor_maintenance.grid import MACHINE, MODE, TIME

US_PER_HOUR = 3_600_000_000
CMAPSS_SETTINGS = [f"setting_{i}" for i in range(1, 4)]
CMAPSS_SENSORS = [f"s{i}" for i in range(1, 22)]
CMAPSS_COLUMNS = ["unit", "cycle", *CMAPSS_SETTINGS, *CMAPSS_SENSORS]


class ReadingsColumns(BaseModel):
    """Column names of the readings table."""

    model_config = ConfigDict(extra="forbid")

    machine: str = "machine_id"
    timestamp: str = "timestamp"
    sensors: list[str] | None = Field(None, description="sensor columns; default: every "
                                      "numeric column except machine and timestamp")


class FailureColumns(BaseModel):
    """Column names of the failure-event table."""

    model_config = ConfigDict(extra="forbid")

    machine: str = "machine_id"
    time: str = "failure_time"
    mode: str | None = Field(None, description="optional failure-mode column (e.g. 'bearing', "
                             "'seal'): the event metrics are then also reported per mode")


def hours_to_label(hours: float) -> str:
    """Hours since the Unix epoch as an ISO timestamp, for messages."""
    if not np.isfinite(hours):
        return str(hours)
    return (datetime(1970, 1, 1) + timedelta(hours=float(hours))).isoformat(sep=" ")


def scan_table(path: Path) -> pl.LazyFrame:
    """A lazy scan of a Parquet or CSV file; DataError if missing or of another type."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pl.scan_parquet(path)
    if suffix in (".csv", ".txt"):
        return pl.scan_csv(path, try_parse_dates=True, infer_schema_length=10_000)
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .parquet or .csv")


def _require_columns(path: Path | str, schema: pl.Schema, needed: list[str],
                     what: str) -> None:
    for col in needed:
        if col not in schema:
            raise DataError(f"{path}: {what} column {col!r} not found; the file has "
                            f"{', '.join(schema.names())}. Fix the column mapping "
                            "(dataset.params.columns / failure_columns)")


def _as_hours(path: Path | str, column: str, dtype: pl.DataType) -> pl.Expr:
    """An expression turning ``column`` into float hours since the Unix epoch."""
    col = pl.col(column)
    if dtype == pl.Utf8:
        col = col.str.to_datetime(strict=False)
    elif dtype == pl.Date:
        col = col.cast(pl.Datetime("us"))
    elif not isinstance(dtype, pl.Datetime):
        raise DataError(f"{path}: timestamp column {column!r} has type {dtype}; expected "
                        "datetimes (or ISO-8601 text)")
    return col.dt.epoch("us").cast(pl.Float64) / US_PER_HOUR


def _first_null_row(path: Path | str, frame: pl.DataFrame, column: str, raw: str,
                    what: str) -> None:
    nulls = frame[column].is_null()
    if nulls.any():
        row = int(nulls.arg_true()[0])
        raise DataError(f"{path}: {what} column {raw!r} is empty or unparseable in "
                        f"{int(nulls.sum())} row(s), first at data row {row}; fix or drop them")


def load_readings(path: Path, columns: ReadingsColumns) -> tuple[pl.DataFrame, list[str]]:
    """Readings as ``__machine``, ``__time`` (hours), sensors; returns (frame, sensor names).

    Raises:
        DataError: missing file or column, non-numeric sensor, unparseable timestamp, empty
            machine id.
    """
    return prepare_readings(scan_table(Path(path)), columns, Path(path))


def prepare_readings(lf: pl.LazyFrame, columns: ReadingsColumns,
                     path: Path | str) -> tuple[pl.DataFrame, list[str]]:
    """:func:`load_readings` on a (lazy) frame; ``path`` names it in errors."""
    schema = lf.collect_schema()
    _require_columns(path, schema, [columns.machine, columns.timestamp], "the")
    sensors = columns.sensors
    if sensors is None:
        sensors = [c for c, t in schema.items()
                   if c not in (columns.machine, columns.timestamp) and t.is_numeric()]
        if not sensors:
            raise DataError(f"{path}: no numeric sensor columns besides {columns.machine!r} and "
                            f"{columns.timestamp!r}; list them in columns.sensors")
    _require_columns(path, schema, sensors, "sensor")
    for s in sensors:
        if not (schema[s].is_numeric() or schema[s] == pl.Null):
            raise DataError(f"{path}: sensor column {s!r} has type {schema[s]}; sensor values "
                            "must be numbers (empty cells are fine: they count as dropouts)")
    frame = lf.select(
        pl.col(columns.machine).cast(pl.Utf8).alias(MACHINE),
        _as_hours(path, columns.timestamp, schema[columns.timestamp]).alias(TIME),
        *[pl.col(s).cast(pl.Float64).fill_nan(None) for s in sensors],
    ).collect()
    if frame.height == 0:
        raise DataError(f"{path}: no rows")
    _first_null_row(path, frame, MACHINE, columns.machine, "machine")
    _first_null_row(path, frame, TIME, columns.timestamp, "timestamp")
    return frame, list(sensors)


def load_failures(path: Path, columns: FailureColumns, machines: set[str]) -> pl.DataFrame:
    """Failure events as ``__machine``, ``__time`` (hours), sorted, deduplicated.

    Raises:
        DataError: missing file or column, unparseable time, or a failure of a machine that
            has no readings (named with its failure time).
    """
    return prepare_failures(scan_table(Path(path)), columns, machines, Path(path))


def prepare_failures(lf: pl.LazyFrame, columns: FailureColumns, machines: set[str],
                     path: Path | str) -> pl.DataFrame:
    """:func:`load_failures` on a (lazy) frame; ``path`` names it in errors. With
    ``columns.mode``, a ``__mode`` column too (a missing mode reads "unknown")."""
    schema = lf.collect_schema()
    _require_columns(path, schema, [columns.machine, columns.time]
                     + ([columns.mode] if columns.mode else []), "failure")
    frame = lf.select(
        pl.col(columns.machine).cast(pl.Utf8).alias(MACHINE),
        _as_hours(path, columns.time, schema[columns.time]).alias(TIME),
        *([pl.col(columns.mode).cast(pl.Utf8).fill_null("unknown").alias(MODE)]
          if columns.mode else []),
    ).collect()
    _first_null_row(path, frame, MACHINE, columns.machine, "machine")
    _first_null_row(path, frame, TIME, columns.time, "failure time")
    unknown = frame.filter(~pl.col(MACHINE).is_in(sorted(machines)))
    if unknown.height:
        row = unknown.row(0, named=True)
        raise DataError(f"{path}: failure of unknown machine {row[MACHINE]!r} at "
                        f"{hours_to_label(row[TIME])}: it has no readings "
                        f"({unknown.height} such failure(s)). Check the machine ids match the "
                        "readings table, or drop those rows")
    return frame.unique([MACHINE, TIME], keep="first", maintain_order=True).sort([MACHINE, TIME])


def load_cmapss(path: Path) -> pl.DataFrame:
    """A C-MAPSS text file as ``__machine`` (unit), ``__time`` (cycle), settings, sensors.

    Raises:
        DataError: missing file, a line without 26 numbers (named by line number).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    lines = pl.read_csv(path, has_header=False, new_columns=["line"], separator="\x1f",
                        quote_char=None, schema_overrides={"line": pl.Utf8})
    fields = (lines.with_columns(pl.col("line").str.strip_chars()
                                 .str.replace_all(r"\s+", " ").str.split(" ").alias("f"))
              .with_row_index("lineno", offset=1)
              .filter(pl.col("line").str.strip_chars() != ""))
    n = fields["f"].list.len()
    bad = fields.filter(n != len(CMAPSS_COLUMNS))
    if bad.height:
        row = bad.row(0, named=True)
        raise DataError(f"{path}: line {row['lineno']} has {len(row['f'])} fields; the C-MAPSS "
                        f"layout has {len(CMAPSS_COLUMNS)} (unit, cycle, 3 settings, 21 sensors)")
    table = fields.select(pl.col("lineno"), pl.col("f").list.to_struct(
        fields=CMAPSS_COLUMNS)).unnest("f")
    casted = table.with_columns(pl.col(CMAPSS_COLUMNS).cast(pl.Float64, strict=False))
    for col in CMAPSS_COLUMNS:
        nulls = casted[col].is_null()
        if nulls.any():
            line = int(casted["lineno"][int(nulls.arg_true()[0])])
            raise DataError(f"{path}: line {line}: {col} is not a number")
    return casted.select(
        pl.col("unit").cast(pl.Int64).cast(pl.Utf8).alias(MACHINE),
        pl.col("cycle").alias(TIME), *CMAPSS_SETTINGS, *CMAPSS_SENSORS)


def cmapss_failures(frame: pl.DataFrame) -> pl.DataFrame:
    """Run-to-failure files: each unit fails at its last cycle."""
    return frame.group_by(MACHINE).agg(pl.col(TIME).max()).sort(MACHINE)
