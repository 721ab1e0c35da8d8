"""Readings -> one regular grid per machine: sort, dedupe, resample, forward-fill with a limit.

Plant historians deliver what the network let through: rows out of order, the same reading
twice, sub-step jitter (10:59 instead of 11:00), missing hours and dead sensors. What happens
to each, as documented in the README:

- **unsorted rows**: sorted by machine and time (counted in the data card).
- **duplicate timestamps** (same machine, same time): ``duplicates="mean"`` (default) averages
  them, ``"first"``/``"last"`` keep one, ``"error"`` raises a DataError naming the machine and
  the timestamp.
- **irregular sampling**: each reading is snapped to the nearest grid point (``step``); several
  readings on one grid point are averaged (resampling to the grid).
- **gaps and null readings**: each sensor is forward-filled for at most ``fill_limit`` grid
  steps; longer gaps stay missing, and windows that touch them are dropped later.
- **sampling far coarser than the grid**: a machine whose median spacing between readings is
  more than ``fill_limit + 1`` steps cannot be resampled without inventing data; a DataError
  names the machine and its first such gap and says how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from sslcore.sdk import DataError

Duplicates = Literal["mean", "first", "last", "error"]
MACHINE, TIME = "__machine", "__time"  # canonical column names inside the pipeline
MODE = "__mode"  # a failure's mode, when the failure table has one


@dataclass
class MachineSeries:
    """One machine's readings on a regular grid: ``values[i]`` is the reading at ``times[i]``
    (NaN where missing after the forward fill)."""

    machine: str
    times: np.ndarray  # float64, in the data's time unit (hours, cycles)
    values: np.ndarray  # float32 (n_steps, n_sensors)


@dataclass
class GridReport:
    """What regularization changed, for the data card."""

    rows_in: int = 0
    unsorted_rows: int = 0
    duplicate_rows: int = 0
    resampled_rows: int = 0
    filled_values: int = 0
    missing_values: int = 0

    def as_notes(self) -> dict[str, int]:
        return {"rows_in": self.rows_in, "rows_out_of_order": self.unsorted_rows,
                "duplicate_timestamp_rows": self.duplicate_rows,
                "rows_merged_onto_grid": self.resampled_rows,
                "values_forward_filled": self.filled_values,
                "values_missing_after_fill": self.missing_values}


def ffill_limited(values: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """Forward-fill NaN down axis 0 for at most ``limit`` steps; returns (filled, n_filled)."""
    n = len(values)
    valid = ~np.isnan(values)
    idx = np.where(valid, np.arange(n)[:, None], -1)
    np.maximum.accumulate(idx, axis=0, out=idx)
    age = np.arange(n)[:, None] - idx
    fill = ~valid & (idx >= 0) & (age <= limit)
    out = values.copy()
    rows, cols = np.nonzero(fill)
    out[rows, cols] = values[idx[rows, cols], cols]
    return out, int(fill.sum())


def regularize(frame: pl.DataFrame, sensors: list[str], *, step: float, fill_limit: int,
               duplicates: Duplicates = "mean", source: str = "readings",
               time_label: object = None) -> tuple[list[MachineSeries], GridReport]:
    """Resample ``frame`` (columns ``__machine``, ``__time`` (float), sensors) to the grid.

    Args:
        step: grid spacing in the time unit (1.0 = hourly for times in hours).
        fill_limit: grid steps a reading is carried forward over a gap or a null.
        duplicates: what to do with rows sharing a machine and a timestamp (see module doc).
        source: the file, for error messages.
        time_label: ``f(float) -> str`` to print a time (e.g. as a timestamp); default ``str``.

    Raises:
        DataError: duplicates with ``duplicates="error"``, or sampling too coarse for the grid.
    """
    label = time_label or (lambda t: f"{t:g}")
    report = GridReport(rows_in=frame.height)
    order_ok = frame.select(((pl.col(MACHINE) == pl.col(MACHINE).shift(1))
                             & (pl.col(TIME) < pl.col(TIME).shift(1))).sum()).item()
    report.unsorted_rows = int(order_ok or 0)
    frame = frame.sort([MACHINE, TIME], maintain_order=True)
    dup = frame.filter(pl.struct(MACHINE, TIME).is_duplicated())
    report.duplicate_rows = dup.height
    if dup.height:
        if duplicates == "error":
            first = dup.row(0, named=True)
            raise DataError(f"{source}: machine {first[MACHINE]!r} has {dup.height} rows sharing "
                            f"a timestamp (first at {label(first[TIME])}); remove the duplicates "
                            "or set duplicates: mean | first | last")
        if duplicates in ("first", "last"):
            frame = frame.unique([MACHINE, TIME], keep=duplicates, maintain_order=True)
    frame = frame.with_columns((pl.col(TIME) / step).round().cast(pl.Int64).alias("__slot"))
    before = frame.height
    frame = (frame.group_by([MACHINE, "__slot"], maintain_order=True)
             .agg(pl.col(TIME).min(), *[pl.col(s).mean() for s in sensors]))
    report.resampled_rows = before - frame.height  # incl. averaged duplicates
    out = []
    for part in frame.partition_by(MACHINE, maintain_order=True):
        machine = str(part[MACHINE][0])
        slots = part["__slot"].to_numpy()
        _check_spacing(machine, slots, part[TIME].to_numpy(), fill_limit, step, source, label)
        grid = np.full((int(slots[-1] - slots[0]) + 1, len(sensors)), np.nan, dtype=np.float32)
        grid[slots - slots[0]] = part.select(sensors).to_numpy().astype(np.float32)
        grid, filled = ffill_limited(grid, fill_limit)
        report.filled_values += filled
        report.missing_values += int(np.isnan(grid).sum())
        times = (slots[0] + np.arange(len(grid))) * step
        out.append(MachineSeries(machine, times.astype(np.float64), grid))
    return out, report


def _check_spacing(machine: str, slots: np.ndarray, times: np.ndarray, fill_limit: int,
                   step: float, source: str, label: object) -> None:
    if len(slots) < 3:
        return
    gaps = np.diff(slots)
    median = float(np.median(gaps))
    if median > fill_limit + 1:
        first = int(np.argmax(gaps > fill_limit + 1))
        raise DataError(
            f"{source}: machine {machine!r} is sampled every ~{median * step:g} time units "
            f"(median), much coarser than the grid step {step:g} with fill_limit {fill_limit} "
            f"(first such gap after {label(times[first])}); set the grid step (freq_hours) to "
            "the machine's sampling interval or raise fill_limit")
