"""Dataset factories of the sensor_maintenance vertical: each returns a validated SSLData.

Every source goes through the same steps: readings -> one regular grid per machine
(:mod:`grid`: sort, dedupe, resample, forward fill with a limit) -> sliding windows labelled
"failure within the horizon" (:mod:`windowing`) -> split by machine. Features are raw sensor
values, N x C x T float32 (normalization is the backbone's, fitted on the unlabeled pool);
the unlabeled pool and the labeled pool are the training machines' windows, the test set the
other machines'. ``labeled_groups`` are failure histories (and healthy machine-periods), so
label fractions sample whole histories; ``labeled_meta``/``test_meta`` carry machine, time,
rul (time to failure), event_id, horizon and time_to_record_end per window.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from sslcore.sdk import DataError, SSLData
from sslcore_sensor_maintenance.grid import MACHINE, MODE, TIME, Duplicates, regularize
from sslcore_sensor_maintenance.loaders import (
    CMAPSS_SENSORS,
    CMAPSS_SETTINGS,
    FailureColumns,
    ReadingsColumns,
    cmapss_failures,
    hours_to_label,
    load_cmapss,
    load_failures,
    load_readings,
    prepare_failures,
    prepare_readings,
)
from sslcore_sensor_maintenance.operating import Plant
from sslcore_sensor_maintenance.synthetic import generate_fleet
from sslcore_sensor_maintenance.windowing import (
    Windows,
    check_horizon,
    make_windows,
    split_machines,
)

CLASS_NAMES = ["healthy", "failure_within_horizon"]
UNLABELED_SEED_OFFSET = 10_000  # generator seed of the machines without a failure log


class WindowingParams(BaseModel):
    """How readings become labelled windows; times are in the data's unit (hours, cycles)."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(64, ge=4, description="grid steps per window")
    stride: int = Field(8, ge=1, description="grid steps between window starts")
    horizon: float = Field(72.0, gt=0, description="label = a failure within this time")
    fill_limit: int = Field(3, ge=0, description="grid steps a reading is carried forward "
                            "over gaps and nulls; windows with longer gaps are dropped")
    duplicates: Duplicates = Field("mean", description="rows with the same machine and "
                                   "timestamp: mean | first | last | error")
    healthy_group: float = Field(720.0, gt=0, description="length of a healthy machine-period "
                                 "(a label-fraction unit) when no failure follows")
    exclude_after_failure: float = Field(0.0, ge=0, description="drop windows starting within "
                                         "this time after a failure (machine broken, not "
                                         "repaired yet)")
    test_fraction: float = Field(0.3, gt=0, lt=1, description="share of machines held out")
    machine_baseline: float | None = Field(
        None, gt=0, description="express each window relative to its machine's own preceding "
        "period of this length (per-sensor mean and std; causal); windows with less history "
        "are dropped. None: raw values")


class SyntheticParams(WindowingParams):
    """The built-in synthetic fleet (:mod:`synthetic`)."""

    n_machines: int = Field(100, ge=4, description="machines with a failure log")
    n_unlabeled_machines: int = Field(0, ge=0, description="more machines whose failures "
                                      "were never logged: their windows join the unlabeled "
                                      "pool only")
    hours: int = Field(4000, ge=200)
    mtbf_hours: float = Field(1800.0, gt=48)
    data_seed: int | None = Field(None, description="generator seed; default: the run's seed")
    plant: Plant = Field(default_factory=Plant, description="another plant (duty, climate, "
                         "sensor gains / offsets / noise, failure-mode mix; see operating.py); "
                         "the defaults are the built-in fleet")


class TableParams(WindowingParams):
    """A user's long-format readings (Parquet/CSV) and failure table."""

    readings: Path
    failures: Path
    columns: ReadingsColumns = Field(default_factory=ReadingsColumns)
    failure_columns: FailureColumns = Field(default_factory=FailureColumns)
    freq_hours: float = Field(1.0, gt=0, description="grid step in hours")
    unlabeled_machines: list[str] = Field(default_factory=list, description="machines whose "
                                          "failures are not logged: their windows join the "
                                          "unlabeled pool only, never a label or the test set")


class CMAPSSParams(WindowingParams):
    """A NASA C-MAPSS run-to-failure text file (e.g. train_FD001.txt); times in cycles."""

    path: Path
    window: int = Field(30, ge=4)
    stride: int = Field(1, ge=1)
    horizon: float = Field(30.0, gt=0, description="label = failure within this many cycles")
    fill_limit: int = Field(0, ge=0)
    healthy_group: float = Field(1e9, gt=0)


def assemble(frame: pl.DataFrame, sensors: list[str], failures: pl.DataFrame,
             params: WindowingParams, *, step: float, seed: int, source: str,
             time_label: Callable[[float], str] | None = None,
             notes: dict[str, Any] | None = None,
             unlabeled_only: frozenset[str] = frozenset()) -> SSLData:
    """Canonical readings + failures -> grid -> windows -> split by machine -> SSLData.

    Machines in ``unlabeled_only`` (failures never logged) add windows to the unlabeled pool
    and nothing else.
    """
    series, report = regularize(frame, sensors, step=step, fill_limit=params.fill_limit,
                                duplicates=params.duplicates, source=source,
                                time_label=time_label)
    check_horizon(series, params.horizon, time_label)
    by_machine = {m: np.asarray(t, dtype=np.float64) for m, t in _failure_lists(failures)}
    windows, stats = make_windows(series, by_machine, window=params.window,
                                  stride=params.stride, horizon=params.horizon,
                                  healthy_group=params.healthy_group,
                                  exclude_after=params.exclude_after_failure,
                                  baseline_steps=(int(round(params.machine_baseline / step))
                                                  if params.machine_baseline else None))
    extra = np.isin(windows.machine, sorted(unlabeled_only))
    pool_only = windows.take(np.flatnonzero(extra))
    windows = windows.take(np.flatnonzero(~extra))
    train_m, test_m = split_machines(windows.machine, params.test_fraction, seed)
    is_test = np.isin(windows.machine, test_m)
    train, test = windows.take(np.flatnonzero(~is_test)), windows.take(np.flatnonzero(is_test))
    unlabeled = np.concatenate([train.x, pool_only.x]) if len(pool_only.y) else train.x
    for name, part, machines in (("training", train, train_m), ("test", test, test_m)):
        if part.y.min() == part.y.max():
            raise DataError(f"{source}: the {name} machines ({len(machines)}: "
                            f"{', '.join(machines[:5])}{', ...' if len(machines) > 5 else ''}) "
                            f"have {'no' if part.y.max() == 0 else 'only'} windows with a "
                            f"failure within the horizon {params.horizon:g}; add machines with "
                            "failures, change test_fraction or the horizon")
    card = {"split": "by machine", "machines_train": len(train_m), "machines_test": len(test_m),
            "failures_train": _n_events(train), "failures_test": _n_events(test),
            "horizon": params.horizon, "window": params.window, "stride": params.stride,
            "positive_rate_train": round(float(train.y.mean()), 4),
            "positive_rate_test": round(float(test.y.mean()), 4),
            "machines_unlabeled_only": len(np.unique(pool_only.machine))}
    card |= report.as_notes() | stats | (notes or {})
    test_meta = test.meta(params.horizon)
    if MODE in failures.columns:  # for the per-mode event metrics; no method reads it
        test_meta["failure_mode"] = failure_mode_ahead(test_meta, failures)
    return SSLData(
        unlabeled=unlabeled, labeled_x=train.x, labeled_y=train.y, test_x=test.x, test_y=test.y,
        sources=[source], feature_names=list(sensors), class_names=list(CLASS_NAMES),
        notes=card, labeled_groups=train.group, labeled_meta=train.meta(params.horizon),
        test_meta=test_meta,
    ).validate()


def failure_mode_ahead(meta: dict[str, np.ndarray], failures: pl.DataFrame) -> np.ndarray:
    """Per window, the mode of the failure ahead of it ("" when none), from the canonical
    failure table (``__machine``, ``__time``, ``__mode``)."""
    mode_of = {(str(m), round(float(t), 3)): str(mode) for m, t, mode in
               failures.select(MACHINE, TIME, MODE).iter_rows()}
    failure_time = np.asarray(meta["time"], np.float64) + np.asarray(meta["rul"], np.float64)
    ahead = np.asarray(meta["event_id"]) >= 0
    return np.array([mode_of.get((str(m), round(float(t), 3)), "") if a else ""
                     for m, t, a in zip(meta["machine"], failure_time, ahead, strict=True)])


def _failure_lists(failures: pl.DataFrame) -> list[tuple[str, list[float]]]:
    grouped = failures.group_by(MACHINE, maintain_order=True).agg(pl.col(TIME).sort())
    return [(str(m), list(t)) for m, t in grouped.iter_rows()]


def _n_events(w: Windows) -> int:
    return int(len(np.unique(w.event_id[w.event_id >= 0])))


def sensor_synthetic(params: SyntheticParams, *, seed: int) -> SSLData:
    """The built-in synthetic fleet, hourly, through the same pipeline as a user's files."""
    data_seed = seed if params.data_seed is None else params.data_seed
    fleet = generate_fleet(params.n_machines, params.hours, data_seed,
                           mtbf_hours=params.mtbf_hours, plant=params.plant)
    readings, failures_frame = fleet.readings, fleet.failures
    unlabeled_only: frozenset[str] = frozenset()
    if params.n_unlabeled_machines:  # their own stream: the logged fleet stays the same
        extra = generate_fleet(params.n_unlabeled_machines, params.hours,
                               data_seed + UNLABELED_SEED_OFFSET, mtbf_hours=params.mtbf_hours,
                               plant=params.plant)
        extra_readings = extra.readings.with_columns(pl.col("machine_id").str.replace("M", "U"))
        unlabeled_only = frozenset(extra_readings["machine_id"].unique().to_list())
        readings = pl.concat([readings, extra_readings])
    source = (f"synthetic(n_machines={params.n_machines}, n_unlabeled_machines="
              f"{params.n_unlabeled_machines}, hours={params.hours}, "
              f"mtbf_hours={params.mtbf_hours:g}, seed={data_seed}"
              + ("" if params.plant.is_default() else f", plant: {params.plant.describe()}")
              + ")")
    frame, sensors = prepare_readings(readings.lazy(), ReadingsColumns(), source)
    machines = set(frame[MACHINE].unique().to_list())
    failures = prepare_failures(failures_frame.lazy(), FailureColumns(mode="failure_mode"),
                                machines, source)
    modes = failures_frame["failure_mode"].value_counts().sort("failure_mode")
    notes = {f"failure_modes.{m}": int(c) for m, c in modes.iter_rows()}
    return assemble(frame, sensors, failures, params, step=1.0, seed=seed, source=source,
                    time_label=hours_to_label, notes=notes, unlabeled_only=unlabeled_only)


def sensor_table(params: TableParams, *, seed: int) -> SSLData:
    """A user's long-format readings and failure table (Parquet or CSV)."""
    frame, sensors = load_readings(params.readings, params.columns)
    machines = set(frame[MACHINE].unique().to_list())
    failures = load_failures(params.failures, params.failure_columns, machines)
    unknown = sorted(set(params.unlabeled_machines) - machines)
    if unknown:
        raise DataError(f"{params.readings}: unlabeled_machines {unknown[:5]} have no readings; "
                        "check the machine ids")
    return assemble(frame, sensors, failures, params, step=params.freq_hours, seed=seed,
                    source=str(params.readings), time_label=hours_to_label,
                    notes={"failure_table": str(params.failures)},
                    unlabeled_only=frozenset(params.unlabeled_machines))


def cmapss(params: CMAPSSParams, *, seed: int) -> SSLData:
    """NASA C-MAPSS run-to-failure units; the label horizon and times are in cycles."""
    frame = load_cmapss(params.path)
    sensors = [*CMAPSS_SETTINGS, *CMAPSS_SENSORS]
    return assemble(frame, sensors, cmapss_failures(frame), params, step=1.0, seed=seed,
                    source=str(params.path), notes={"time_unit": "cycles"})


DATASETS: dict[str, tuple[Callable[..., SSLData], type[BaseModel], str]] = {
    "sensor_synthetic": (sensor_synthetic, SyntheticParams,
                         "synthetic fleet: regimes, per-machine habits, drift, dropouts, four "
                         "failure modes, maintenance; windows split by machine"),
    "sensor_table": (sensor_table, TableParams,
                     "your long-format readings (Parquet/CSV) + failure table; resampled to a "
                     "regular grid; windows split by machine"),
    "cmapss": (cmapss, CMAPSSParams,
               "NASA C-MAPSS run-to-failure text file (unit, cycle, 3 settings, 21 sensors); "
               "horizon in cycles; split by unit"),
}
