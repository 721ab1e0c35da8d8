"""Loaders on fixture files written here: long Parquet/CSV + failure table, and C-MAPSS text.

Every bad input of the issue is covered: unsorted and duplicate timestamps, gaps, a missing
sensor column, irregular sampling, a failure of an unknown machine, a horizon longer than the
histories; each is fixed up as documented (and the fix verified) or named in a DataError.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sslcore.errors import DataError
from sslcore_sensor_maintenance.datasets import CMAPSSParams, TableParams, cmapss, sensor_table
from sslcore_sensor_maintenance.synthetic import SENSORS

WINDOWING = {"window": 32, "stride": 4, "horizon": 24.0, "healthy_group": 200.0,
             "test_fraction": 0.3}


def write(tmp_path: Path, readings: pl.DataFrame, failures: pl.DataFrame,
          fmt: str = "parquet") -> TableParams:
    tmp_path.mkdir(parents=True, exist_ok=True)
    r, f = tmp_path / f"readings.{fmt}", tmp_path / f"failures.{fmt}"
    if fmt == "parquet":
        readings.write_parquet(r)
        failures.write_parquet(f)
    else:
        readings.write_csv(r)
        failures.write_csv(f)
    return TableParams(readings=r, failures=f, **WINDOWING)


def load(tmp_path: Path, readings: pl.DataFrame, failures: pl.DataFrame, fmt: str = "parquet",
         **params):
    p = write(tmp_path, readings, failures, fmt)
    return sensor_table(p.model_copy(update=params), seed=0)


@pytest.fixture
def fleet(small_fleet):
    return small_fleet.readings, small_fleet.failures.drop("failure_mode")


# ------------------------------------------------------------------------ good files

def test_parquet_and_csv_load_the_same_windows(fleet, tmp_path):
    readings, failures = fleet
    a = load(tmp_path / "pq", readings, failures, "parquet")
    b = load(tmp_path / "csv", readings, failures, "csv")
    assert a.unlabeled.shape[1:] == (len(SENSORS), 32)
    assert a.feature_names == SENSORS
    np.testing.assert_allclose(a.test_x, b.test_x, rtol=1e-6)
    np.testing.assert_array_equal(a.test_y, b.test_y)
    assert a.notes["failures_train"] + a.notes["failures_test"] > 10


def test_labels_and_meta_follow_the_failure_table(fleet, tmp_path):
    readings, failures = fleet
    data = load(tmp_path, readings, failures)
    meta = data.test_meta
    fail_hours = {m: np.sort(g["failure_time"].dt.epoch("us").to_numpy() / 3.6e9)
                  for (m,), g in failures.group_by("machine_id")}
    for i in range(0, len(data.test_y), 7):
        f = fail_hours.get(str(meta["machine"][i]), np.empty(0))
        ahead = f[f >= meta["time"][i]]
        expected = ahead[0] - meta["time"][i] if len(ahead) else np.inf
        assert meta["rul"][i] == expected
        assert data.test_y[i] == int(expected <= 24.0)
        assert (meta["event_id"][i] >= 0) == np.isfinite(expected)
    assert set(meta) >= {"machine", "time", "rul", "event_id", "horizon", "time_to_record_end"}


def test_column_mapping(fleet, tmp_path):
    readings, failures = fleet
    renamed = readings.rename({"machine_id": "asset", "timestamp": "ts", "vibration": "vib_rms"})
    p = write(tmp_path, renamed, failures.rename({"machine_id": "asset", "failure_time": "t"}))
    p = TableParams.model_validate(p.model_dump() | {
        "columns": {"machine": "asset", "timestamp": "ts", "sensors": ["vib_rms", "speed"]},
        "failure_columns": {"machine": "asset", "time": "t"}})
    data = sensor_table(p, seed=0)
    assert data.feature_names == ["vib_rms", "speed"] and data.test_x.shape[1] == 2


def with_mode_column(p: TableParams, column: str) -> TableParams:
    return TableParams.model_validate(p.model_dump() | {"failure_columns": {"mode": column}})


def test_failure_mode_column_names_each_test_window_s_failure(small_fleet, tmp_path):
    """With failure_columns.mode, each test window with a failure ahead carries that failure's
    mode (a missing mode reads "unknown"); without it, no window does."""
    failures = small_fleet.failures.rename({"failure_mode": "cause"}).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("cause")).alias("cause"))
    p = write(tmp_path, small_fleet.readings, failures)
    data = sensor_table(with_mode_column(p, "cause"), seed=0)
    meta = data.test_meta
    event, mode = np.asarray(meta["event_id"]), meta["failure_mode"]
    assert (mode[event < 0] == "").all() and (mode[event >= 0] != "").all()
    hours = failures["failure_time"].dt.epoch("us").to_numpy() / 3.6e9
    cause = {(m, h): c or "unknown" for m, h, c in
             zip(failures["machine_id"], hours, failures["cause"], strict=True)}
    for i in np.flatnonzero(event >= 0)[::5]:
        assert mode[i] == cause[(str(meta["machine"][i]), meta["time"][i] + meta["rul"][i])]
    assert "failure_mode" not in sensor_table(p, seed=0).test_meta
    with pytest.raises(DataError, match=r"failures\.parquet: failure column 'kind' not found"):
        sensor_table(with_mode_column(p, "kind"), seed=0)


# ------------------------------------------------------------------ documented fix-ups

def test_unsorted_rows_are_sorted(fleet, tmp_path):
    readings, failures = fleet
    ref = load(tmp_path / "a", readings, failures)
    shuffled = readings.sample(fraction=1.0, shuffle=True, seed=1)
    out = load(tmp_path / "b", shuffled, failures)
    np.testing.assert_array_equal(out.test_x, ref.test_x)
    assert out.notes["rows_out_of_order"] > 0 and ref.notes["rows_out_of_order"] == 0


def test_duplicate_timestamps_are_averaged_or_refused(fleet, tmp_path):
    readings, failures = fleet
    ref = load(tmp_path / "a", readings, failures)
    dup = pl.concat([readings, readings.slice(100, 50)])
    out = load(tmp_path / "b", dup, failures)
    np.testing.assert_allclose(out.test_x, ref.test_x, rtol=1e-6)
    assert out.notes["duplicate_timestamp_rows"] == 100
    row = readings.row(100, named=True)
    with pytest.raises(DataError, match=rf"machine '{row['machine_id']}' .*first at "
                                        rf"{row['timestamp']}.*duplicates: mean"):
        load(tmp_path / "c", dup, failures, duplicates="error")


def test_short_gaps_are_filled_long_gaps_drop_windows(fleet, tmp_path):
    readings, failures = fleet
    ref = load(tmp_path / "a", readings, failures)
    machine = readings["machine_id"][0]
    rows = readings.with_row_index().filter(pl.col("machine_id") == machine)["index"]
    short = readings.with_row_index().filter(~pl.col("index").is_in(rows[200:202])).drop("index")
    out = load(tmp_path / "b", short, failures)
    assert len(out.labeled_y) + len(out.test_y) == len(ref.labeled_y) + len(ref.test_y)
    assert out.notes["values_forward_filled"] > ref.notes["values_forward_filled"]
    long = readings.with_row_index().filter(~pl.col("index").is_in(rows[200:230])).drop("index")
    out = load(tmp_path / "c", long, failures)
    assert len(out.labeled_y) + len(out.test_y) < len(ref.labeled_y) + len(ref.test_y)
    assert out.notes["windows_dropped_missing_values"] > ref.notes["windows_dropped_missing_values"]
    assert np.isfinite(out.test_x).all() and np.isfinite(out.unlabeled).all()


def test_null_sensor_readings_are_forward_filled(fleet, tmp_path):
    readings, failures = fleet
    holes = readings.with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 0).then(None).otherwise(pl.col("pressure"))
        .alias("pressure"))
    out = load(tmp_path, holes, failures)
    assert np.isfinite(out.test_x).all()


def test_irregular_timestamps_are_snapped_to_the_grid(fleet, tmp_path):
    readings, failures = fleet
    ref = load(tmp_path / "a", readings, failures)
    minutes = np.random.default_rng(0).integers(-20, 21, readings.height)
    jitter = pl.Series(minutes * 60_000_000).cast(pl.Duration("us"))
    jittered = readings.with_columns(pl.col("timestamp") + jitter)
    out = load(tmp_path / "b", jittered, failures)
    np.testing.assert_allclose(out.test_x, ref.test_x, rtol=1e-6)


# --------------------------------------------------------------------- refused inputs

def test_missing_sensor_column_names_the_column_and_file(fleet, tmp_path):
    readings, failures = fleet
    p = write(tmp_path, readings.drop("pressure"), failures)
    p = TableParams.model_validate(p.model_dump() | {"columns": {"sensors": SENSORS}})
    with pytest.raises(DataError, match=r"readings\.parquet: sensor column 'pressure' not found"):
        sensor_table(p, seed=0)


def test_sampling_far_coarser_than_the_grid_names_machine_and_time(fleet, tmp_path):
    readings, failures = fleet
    coarse = readings.filter(pl.col("timestamp").dt.hour() % 6 == 0)
    first = coarse.sort("machine_id", "timestamp").row(0, named=True)
    with pytest.raises(DataError, match=rf"machine '{first['machine_id']}' is sampled every "
                                        r"~6 time units.*first such gap after .*freq_hours"):
        load(tmp_path, coarse, failures)


def test_failure_of_unknown_machine_names_machine_and_time(fleet, tmp_path):
    readings, failures = fleet
    ghost = pl.DataFrame({"machine_id": ["GHOST"], "failure_time": [failures["failure_time"][0]]})
    with pytest.raises(DataError, match=rf"failure of unknown machine 'GHOST' at "
                                        rf"{re.escape(str(failures['failure_time'][0]))}"):
        load(tmp_path, readings, pl.concat([failures, ghost]))


def test_horizon_longer_than_the_histories_names_machine_and_times(fleet, tmp_path):
    readings, failures = fleet
    with pytest.raises(DataError, match=r"horizon 5000 is longer than every machine's history "
                                        r"\(longest: machine 'M\d+', \d+ time units from 2024"):
        load(tmp_path, readings, failures, horizon=5000.0)


def test_unparseable_timestamp_and_missing_column(fleet, tmp_path):
    readings, failures = fleet
    text = readings.with_columns(pl.col("timestamp").cast(pl.Utf8))
    text = text.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("not a time"))
                             .otherwise(pl.col("timestamp")).alias("timestamp"))
    with pytest.raises(DataError, match=r"timestamp column 'timestamp' is empty or unparseable "
                                        r"in 1 row\(s\), first at data row 5"):
        load(tmp_path / "a", text, failures, "csv")
    with pytest.raises(DataError, match=r"failures\.parquet: failure column 'failure_time' not "
                                        r"found"):
        load(tmp_path / "b", readings, failures.rename({"failure_time": "when"}))


# --------------------------------------------------------------------------- C-MAPSS

def write_cmapss(path: Path, units: int = 6, seed: int = 0) -> dict[int, int]:
    """A tiny run-to-failure file in the C-MAPSS layout, ragged whitespace like NASA's."""
    rng = np.random.default_rng(seed)
    lines, lengths = [], {}
    for unit in range(1, units + 1):
        n = int(rng.integers(60, 90))
        lengths[unit] = n
        for cycle in range(1, n + 1):
            wear = (cycle / n) ** 3
            settings = rng.normal(0, 0.002, 3)
            sensors = 500 + rng.normal(0, 0.5, 21) + 5 * wear * np.arange(21) / 21
            vals = [f"{v:.4f}" for v in [*settings, *sensors]]
            lines.append(f"{unit} {cycle}  " + " ".join(vals) + "  ")
    path.write_text("\n".join(lines) + "\n")
    return lengths


def test_cmapss_loads_run_to_failure_units(tmp_path):
    path = tmp_path / "train_FD001.txt"
    lengths = write_cmapss(path)
    data = cmapss(CMAPSSParams(path=path, window=16, horizon=10, test_fraction=0.34), seed=0)
    assert data.unlabeled.shape[1:] == (24, 16)
    assert data.feature_names[:4] == ["setting_1", "setting_2", "setting_3", "s1"]
    meta = data.test_meta
    for i in range(len(data.test_y)):
        unit = int(meta["machine"][i])
        assert meta["rul"][i] == lengths[unit] - meta["time"][i]
        assert data.test_y[i] == int(meta["rul"][i] <= 10)
    # every unit's windows: one failure history each
    assert len(np.unique(data.labeled_groups)) == data.notes["failures_train"]
    assert data.notes["time_unit"] == "cycles"


def test_cmapss_bad_line_and_bad_number(tmp_path):
    path = tmp_path / "train.txt"
    write_cmapss(path, units=2)
    lines = path.read_text().splitlines()
    lines[6] = " ".join(lines[6].split()[:-1])
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"train\.txt: line 7 has 25 fields"):
        cmapss(CMAPSSParams(path=path), seed=0)
    lines[6] = lines[7].replace(lines[7].split()[5], "abc", 1)
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"line 7: s\d+ is not a number"):
        cmapss(CMAPSSParams(path=path), seed=0)


def test_machines_without_failure_log_join_the_unlabeled_pool_only(fleet, tmp_path):
    readings, failures = fleet
    ref = load(tmp_path / "a", readings, failures)
    extra = readings.filter(pl.col("machine_id") == readings["machine_id"][0]) \
        .with_columns(pl.lit("NOLOG").alias("machine_id"))
    p = write(tmp_path / "b", pl.concat([readings, extra]), failures)
    p = TableParams.model_validate(p.model_dump() | {"unlabeled_machines": ["NOLOG"]})
    out = sensor_table(p, seed=0)
    assert "NOLOG" not in set(out.labeled_meta["machine"]) | set(out.test_meta["machine"])
    assert len(out.unlabeled) > len(out.labeled_x) == len(ref.labeled_x)
    np.testing.assert_array_equal(out.test_x, ref.test_x)
    with pytest.raises(DataError, match=r"unlabeled_machines \['GHOST'\] have no readings"):
        sensor_table(TableParams.model_validate(p.model_dump() | {"unlabeled_machines": ["GHOST"]}),
                     seed=0)
