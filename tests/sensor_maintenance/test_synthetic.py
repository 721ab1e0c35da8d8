"""The synthetic fleet: deterministic, failures per machine, mode signatures, imperfect data."""

import numpy as np
import polars as pl

from sslcore_sensor_maintenance.synthetic import MODES, SENSORS, generate_fleet


def test_same_seed_same_fleet_other_seed_other_fleet():
    a, b = generate_fleet(6, 500, seed=1), generate_fleet(6, 500, seed=1)
    assert a.readings.equals(b.readings) and a.failures.equals(b.failures)
    c = generate_fleet(6, 500, seed=2)
    assert not a.readings.equals(c.readings)


def test_layout_failures_per_machine_and_modes():
    fleet = generate_fleet(60, 3000, seed=0)
    r, f = fleet.readings, fleet.failures
    assert r.columns == ["machine_id", "timestamp", *SENSORS]
    assert r["machine_id"].n_unique() == 60
    assert f.columns == ["machine_id", "failure_time", "failure_mode"]
    per_machine = f.group_by("machine_id").len()["len"]
    assert 1.0 <= f.height / 60 <= 3.0 and per_machine.max() <= 6
    assert set(f["failure_mode"]) == set(MODES)
    # failures happen while machines run: a reading in the hour before, none at the failure
    for row in f.head(20).iter_rows(named=True):
        times = r.filter(pl.col("machine_id") == row["machine_id"])["timestamp"]
        assert not (times == row["failure_time"]).any()
    assert set(fleet.maintenance["kind"]) == {"preventive", "repair"}
    assert fleet.maintenance.filter(pl.col("kind") == "repair").height == f.height


def test_imperfect_data_dropouts_nulls_and_downtime():
    fleet = generate_fleet(10, 1000, seed=4)
    r = fleet.readings
    assert r.height < 10 * 1000  # downtime, dropouts and outages leave hours without rows
    assert sum(r[s].null_count() for s in SENSORS) > 0  # single-sensor dropouts
    assert r.select(pl.all().exclude("machine_id", "timestamp").is_nan().any()).row(0) == \
        (False,) * len(SENSORS)


def _ratio_before_failure(fleet, mode, sensor, hours=(24, 300)):
    """Median sensor / speed^2 in the last day before failures of ``mode``, over the median
    a few hundred hours earlier (speed^2 removes the operating regime)."""
    r = fleet.readings.with_columns((pl.col(sensor) / (pl.col("speed") / 1500) ** 2).alias("x"))
    ratios = []
    for row in fleet.failures.filter(pl.col("failure_mode") == mode).iter_rows(named=True):
        sub = r.filter(pl.col("machine_id") == row["machine_id"])
        t = row["failure_time"]
        late = sub.filter((pl.col("timestamp") < t)
                          & (pl.col("timestamp") >= t - np.timedelta64(hours[0], "h")))["x"]
        early = sub.filter((pl.col("timestamp") < t - np.timedelta64(hours[1], "h"))
                           & (pl.col("timestamp") >= t - np.timedelta64(hours[1] + 48, "h")))["x"]
        if late.len() > 5 and early.len() > 5:
            ratios.append(late.median() / early.median())
    return np.array(ratios)


def test_failure_modes_have_their_own_signatures():
    fleet = generate_fleet(60, 3000, seed=0)
    bearing_vib = _ratio_before_failure(fleet, "bearing_wear", "vibration", (24, 550))
    seal_vib = _ratio_before_failure(fleet, "seal_leak", "vibration", (24, 550))
    seal_p = _ratio_before_failure(fleet, "seal_leak", "pressure", (24, 450))
    assert np.median(bearing_vib) > 1.3 and abs(np.median(seal_vib) - 1) < 0.1
    assert np.median(seal_p) < 0.9
    # amplitudes vary: some failures barely show
    assert bearing_vib.min() < 0.7 * bearing_vib.max()
