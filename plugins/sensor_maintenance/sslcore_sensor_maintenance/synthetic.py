"""A synthetic fleet of rotating machines (pumps/compressors) with sensors, regimes and failures.

Each machine is sampled hourly: vibration (mm/s RMS), temperature (degC), discharge pressure
(bar), motor current (A) and shaft speed (rpm). Where the difficulty comes from:

- **Operating regimes dominate the signals.** Demand follows the machine's own shift pattern
  (daily cycle, quieter weekends, slow random load changes) and sets the speed regime (idle,
  low, nominal, high) and the load. Pressure and vibration scale with speed squared, current
  with load x speed, temperature with load through a thermal lag, plus the site's ambient
  temperature with its own daily cycle and weather. A regime change moves every sensor far
  more than early degradation does.
- **Machines differ.** Rated speed, vibration level (lognormal, +-30%), thermal coefficient,
  pressure and current curves are per machine; a repair shifts the vibration level again (a new
  bearing is not the old one).
- **Sensors are imperfect.** Gaussian noise, slow random-walk drift of the temperature and
  pressure sensors (recalibrated at maintenance), single-hour dropouts of one sensor (nulls),
  whole-record dropouts and communication outages of several hours to two days (no rows).
- **Degradation is subtle, mode-specific and not always early.** A failure ends a run-to-failure
  episode whose length is Weibull; its degradation starts at a random time before it and grows
  convexly (``((t - onset) / duration) ** p``). Modes: bearing wear (vibration rises and
  becomes spiky, slight heating; starts 150-500 h ahead), cooling fault (load-dependent excess
  temperature; 100-300 h), seal leak (pressure drop, the motor draws a little more current;
  120-400 h) and an electrical fault (current spikes in the last 6-24 h only: hardly
  predictable 72 h ahead). Amplitudes are drawn per failure, so some failures barely show.
- **Maintenance resets.** Preventive maintenance every 1200-2500 h (4-12 h down, no rows)
  resets any degradation, so some degradations never end in a failure (an averted failure looks
  like the run-up to one but carries no failure). After a failure the machine is down 12-72 h,
  then repaired.

The output is what a plant historian and a maintenance log give: a long table of readings
(``machine_id``, ``timestamp``, sensors) and a failure table (``machine_id``, ``failure_time``,
``failure_mode``). Deterministic by seed; vectorized over machines x hours (about a second for
100 machines x 4000 hours).

Example::

    fleet = generate_fleet(n_machines=100, hours=4000, seed=0)
    fleet.readings.head(); fleet.failures.head()
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from sslcore_sensor_maintenance.operating import PLANT_MODES, PLANT_SENSORS, Plant

SENSORS = list(PLANT_SENSORS)
MODES = list(PLANT_MODES)
MODE_PROBS = [0.35, 0.25, 0.25, 0.15]
# Degradation duration range (hours before the failure) per mode.
ONSET_HOURS = {"bearing_wear": (150, 500), "cooling_fault": (100, 300),
               "seal_leak": (120, 400), "electrical_fault": (6, 24)}
START = datetime(2024, 1, 1)
REGIME_SPEED = np.array([0.4, 0.75, 1.0, 1.12])  # idle, low, nominal, high (x rated speed)
REGIME_EDGES = np.array([0.3, 0.55, 0.85])  # demand thresholds between regimes
N_SITES = 4


@dataclass
class Fleet:
    readings: pl.DataFrame  # machine_id, timestamp, vibration, temperature, pressure, ...
    failures: pl.DataFrame  # machine_id, failure_time, failure_mode
    maintenance: pl.DataFrame  # machine_id, start, end, kind ("preventive" | "repair")


def _ar1(rng: np.random.Generator, shape: tuple[int, int], rho: float,
         sigma: float) -> np.ndarray:
    """Stationary AR(1) noise along the last axis (innovations ``sigma``)."""
    from scipy.signal import lfilter

    e = rng.normal(0.0, sigma, shape)
    e[:, 0] /= np.sqrt(1 - rho ** 2)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -rho], e, axis=1)


def _lag(x: np.ndarray, tau: float) -> np.ndarray:
    """First-order lag (thermal inertia) with time constant ``tau`` hours."""
    from scipy.signal import lfilter

    a = np.exp(-1.0 / tau)
    zi = x[:, :1] * a  # start settled at the first value
    return lfilter([1 - a], [1.0, -a], x, axis=1, zi=zi)[0]


def _schedule(rng: np.random.Generator, hours: int, mtbf: float, pm_range: tuple[int, int],
              mode_probs: list[float],
              ) -> tuple[list[tuple], list[tuple[int, str]], list[tuple[int, int, str]]]:
    """One machine's events on the hourly grid: degradations (first hour, end hour, mode,
    amplitude, power, onset, failure hour), failures (hour, mode) and maintenance (start, end,
    kind). Preventive maintenance renews the machine; so does a repair."""
    degradations: list[tuple] = []
    failures: list[tuple[int, str]] = []
    maintenance: list[tuple[int, int, str]] = []
    start = 0
    next_pm = int(rng.integers(0, pm_range[1]))  # machines are met mid-way between PMs
    while start < hours:
        fail = start + max(48, int(mtbf * rng.weibull(2.0)))
        mode = MODES[rng.choice(len(MODES), p=mode_probs)]
        lo, hi = ONSET_HOURS[mode]
        onset = fail - int(rng.integers(lo, hi + 1))
        amp, power = float(rng.uniform(0.3, 1.0)), float(rng.uniform(1.5, 3.0))
        stop = min(fail, next_pm, hours)
        if onset < stop:  # the part of the degradation that happens before it is cut short
            degradations.append((max(onset, start), stop, mode, amp, power, onset, fail))
        if next_pm < min(fail, hours):  # maintenance comes first: the failure is averted
            down = int(rng.integers(4, 13))
            maintenance.append((next_pm, next_pm + down, "preventive"))
        elif fail < hours:
            down = int(rng.integers(12, 73))
            failures.append((fail, mode))
            maintenance.append((fail, fail + down, "repair"))
        else:
            break
        start = maintenance[-1][1]
        next_pm = start + int(rng.integers(*pm_range))
    return degradations, failures, maintenance


def generate_fleet(n_machines: int = 100, hours: int = 4000, seed: int = 0, *,
                   mtbf_hours: float = 1800.0, pm_interval_hours: tuple[int, int] = (1200, 2500),
                   dropout_rate: float = 0.003, outages_per_machine: float = 1.0,
                   plant: Plant | None = None) -> Fleet:
    """Simulate ``n_machines`` for ``hours`` hours; see the module docstring.

    Args:
        mtbf_hours: Weibull (shape 2) scale of the time from a repair to the next failure.
        pm_interval_hours: preventive maintenance every U(a, b) hours.
        dropout_rate: probability that one sensor reading (null) or a whole hour (no row)
            is lost, each.
        outages_per_machine: mean number of multi-hour communication outages per machine.
        plant: another plant (:class:`~sslcore_sensor_maintenance.operating.Plant`: duty,
            climate, sensor gains / offsets / noise, failure-mode mix); None: the built-in one.
    """
    plant = plant or Plant()
    ns = plant.noise_scale  # x 1.0 at the default: the built-in fleet stays bit-exact
    rng = np.random.default_rng(seed)
    m, h = n_machines, hours
    t = np.arange(h, dtype=np.float64)[None, :]
    hour_of_day = t % 24
    weekday = (t // 24) % 7

    # --- per-machine constants
    rated = rng.normal(1500, 75, (m, 1))
    vib0 = rng.lognormal(np.log(2.5), 0.3, (m, 1))
    k_temp = rng.normal(30, 5, (m, 1))
    p0 = rng.normal(6.0, 0.6, (m, 1))
    i0, i1 = rng.normal(12, 1.2, (m, 1)), rng.normal(28, 3, (m, 1))
    site = rng.integers(0, N_SITES, m)

    # --- demand, regimes, load
    shift_amp = rng.uniform(0.1, 0.3, (m, 1))
    shift_phase = rng.uniform(0, 2 * np.pi, (m, 1))
    weekend = np.where(weekday >= 5, rng.uniform(0.05, 0.25, (m, 1)), 0.0)
    demand = (rng.uniform(0.55, 0.75, (m, 1))
              + shift_amp * np.sin(2 * np.pi * hour_of_day / 24 + shift_phase)
              - weekend + _ar1(rng, (m, h), 0.97, 0.04))
    if plant.load_offset:
        demand = demand + plant.load_offset
    regime = np.digitize(demand, REGIME_EDGES)
    speed_frac = REGIME_SPEED[regime]
    load = np.clip(demand + _ar1(rng, (m, h), 0.7, 0.05), 0.1, 1.1)

    # --- ambient temperature per site: daily cycle, seasons, weather
    site_t = (15 + 8 * np.sin(2 * np.pi * t / (24 * 365))
              + rng.uniform(4, 7, (N_SITES, 1)) * np.sin(2 * np.pi * (hour_of_day - 9) / 24)
              + _ar1(rng, (N_SITES, h), 0.98, 0.4))
    ambient = site_t[site] + plant.ambient_offset if plant.ambient_offset else site_t[site]

    # --- events: degradation severities, per-episode baselines, downtime
    sev = {mode: np.zeros((m, h)) for mode in MODES}
    amp = {mode: np.zeros((m, h)) for mode in MODES}
    vib_level = np.repeat(vib0, h, axis=1)
    running = np.ones((m, h), dtype=bool)
    calib = np.zeros((m, h), dtype=np.int64)  # recalibration epoch of the drifting sensors
    fail_rows, maint_rows = [], []
    for i in range(m):
        degs, fails, maints = _schedule(rng, h, mtbf_hours, pm_interval_hours,
                                        plant.mode_probs(MODE_PROBS))
        for begin, end, mode, a, power, onset, fail in degs:
            span = np.arange(begin, end)
            sev[mode][i, begin:end] = ((span - onset) / (fail - onset)) ** power
            amp[mode][i, begin:end] = a
        for k, (start, end, kind) in enumerate(maints):
            running[i, start:min(end, h)] = False
            vib_level[i, end:] *= rng.lognormal(0.0, 0.12 if kind == "repair" else 0.04)
            calib[i, end:] = k + 1
            maint_rows.append((i, start, end, kind))
        fail_rows += [(i, f, mode) for f, mode in fails]

    # --- sensors
    bearing = sev["bearing_wear"] * amp["bearing_wear"]
    cooling = sev["cooling_fault"] * amp["cooling_fault"]
    seal = sev["seal_leak"] * amp["seal_leak"]
    electrical = sev["electrical_fault"] * amp["electrical_fault"]
    drift_t = _drift(rng, calib, 0.03)
    drift_p = _drift(rng, calib, 0.002)

    speed = rated * speed_frac * (1 + rng.normal(0, 0.004 * ns, (m, h)))
    heat = _lag(k_temp * load * speed_frac, tau=4.0)
    temperature = (ambient + heat + 15 * cooling * (0.5 + load) + 3 * bearing
                   + drift_t + rng.normal(0, 0.4 * ns, (m, h)))
    pressure = (p0 * speed_frac ** 2 * (1 - 0.3 * seal) * (1 + drift_p)
                + rng.normal(0, 0.05 * ns, (m, h)))
    spikes = rng.gamma(2.0, 0.5, (m, h)) * (rng.random((m, h)) < 0.02 + 0.1 * bearing)
    vibration = (vib_level * speed_frac ** 2 * (1 + 2.0 * bearing)
                 * rng.lognormal(0, (0.06 + 0.1 * bearing) * ns, (m, h)) + spikes)
    current = ((i0 + i1 * load * speed_frac) * (1 + 0.06 * seal)
               * (1 + rng.normal(0, (0.01 + 0.15 * electrical) * ns, (m, h))))

    # --- what the historian recorded
    keep = running & (rng.random((m, h)) >= dropout_rate)
    for i in range(m):
        for _ in range(rng.poisson(outages_per_machine)):
            start = int(rng.integers(0, h))
            keep[i, start:start + int(rng.integers(3, 49))] = False
    values = {"vibration": vibration, "temperature": temperature, "pressure": pressure,
              "current": current, "speed": speed}
    for name, gain in plant.sensor_gain.items():  # the plant's sensors: calibration, mounting
        values[name] = values[name] * gain
    for name, offset in plant.sensor_offset.items():
        values[name] = values[name] + offset
    machine_ids = np.array([f"M{i:03d}" for i in range(m)])
    rows_m, rows_t = np.nonzero(keep)
    cols = {"machine_id": machine_ids[rows_m],
            "timestamp": _hours_to_datetime(rows_t)}
    for name in SENSORS:
        v = values[name][rows_m, rows_t].astype(np.float64)
        v[rng.random(len(v)) < dropout_rate] = np.nan  # one sensor's reading lost
        cols[name] = v.round(3)
    readings = pl.DataFrame(cols).with_columns(*[pl.col(s).fill_nan(None) for s in SENSORS])
    failures = pl.DataFrame(
        {"machine_id": [machine_ids[i] for i, _, _ in fail_rows],
         "failure_time": _hours_to_datetime([f for _, f, _ in fail_rows]),
         "failure_mode": [mode for _, _, mode in fail_rows]},
        schema={"machine_id": pl.Utf8, "failure_time": pl.Datetime("us"),
                "failure_mode": pl.Utf8})
    maintenance = pl.DataFrame(
        {"machine_id": [machine_ids[i] for i, _, _, _ in maint_rows],
         "start": _hours_to_datetime([s for _, s, _, _ in maint_rows]),
         "end": _hours_to_datetime([e for _, _, e, _ in maint_rows]),
         "kind": [k for _, _, _, k in maint_rows]},
        schema={"machine_id": pl.Utf8, "start": pl.Datetime("us"), "end": pl.Datetime("us"),
                "kind": pl.Utf8})
    return Fleet(readings, failures.sort("machine_id", "failure_time"),
                 maintenance.sort("machine_id", "start"))


def _drift(rng: np.random.Generator, calib: np.ndarray, sigma: float) -> np.ndarray:
    """Random-walk sensor drift that restarts from zero at each recalibration."""
    steps = rng.normal(0, sigma, calib.shape)
    walk = np.cumsum(steps, axis=1)
    # subtract the walk's value at the start of each calibration epoch
    starts = np.zeros_like(calib, dtype=bool)
    starts[:, 0] = True
    starts[:, 1:] = calib[:, 1:] != calib[:, :-1]
    base = np.where(starts, walk - steps, np.nan)
    base = _ffill(base)
    return walk - base


def _ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along the last axis (first column must be finite)."""
    idx = np.where(np.isnan(a), 0, np.arange(a.shape[1])[None, :])
    np.maximum.accumulate(idx, axis=1, out=idx)
    return np.take_along_axis(a, idx, axis=1)


def _hours_to_datetime(hours: np.ndarray | list[int]) -> np.ndarray:
    """Hours since :data:`START` as datetime64[us]."""
    offsets = np.asarray(hours, dtype=np.int64).astype("timedelta64[h]")
    return (np.datetime64(START, "us") + offsets).astype("datetime64[us]")
