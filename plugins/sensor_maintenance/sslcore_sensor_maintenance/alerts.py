"""What a maintenance planner looks at: when each test failure was first alerted, and by whom.

:func:`write_artifacts` is the recipe's artifacts function. It compares one SSL method with one
baseline, both fitted on the largest label fraction with the first seed: the recipe's pair
``rul_with_residuals`` / ``rul_with_levels_scratch`` (the same method with and without the
encoder) when the config has them, else the first method of each arm. Alerts follow the event
metrics (:mod:`sslcore_sensor_maintenance.event_metrics`): each method's threshold flags 1% of
the healthy test windows, and a failure's first alert is its earliest alarming run-up window.

- ``failure_alerts.csv``: one row per test failure with a run-up: machine, failure time,
  failure mode (when the data records it) and each method's lead time of the first alert
  (empty: no alert before the failure).
- ``alert_timeline.png``: the first test machines by id that fail in the test record (a fixed
  choice, not picked by result), each method's score over time in units of its own alert
  threshold (0: the median healthy window, 1: the threshold), failures as red lines with the
  horizon before each shaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sslcore.sdk import positive_scores
from sslcore_sensor_maintenance.event_metrics import alert_threshold, first_alerts, window_phases
from sslcore_sensor_maintenance.loaders import hours_to_label

PREFERRED = {"ssl": "rul_with_residuals", "baseline": "rul_with_levels_scratch"}
TIMELINE_MACHINES = 4


def pick_methods(fitted: dict[tuple[str, str], Any], cfg: Any) -> dict[str, Any]:
    """``{"arm/label": method}``: per arm the preferred component if fitted, else the first."""
    names = {r.label: r.name for r in list(cfg.heads) + list(cfg.baselines)}
    picked = {}
    for arm, preferred in PREFERRED.items():
        labels = [label for a, label in fitted if a == arm]
        chosen = next((lb for lb in labels if names.get(lb) == preferred), None)
        chosen = chosen or (labels[0] if labels else None)
        if chosen is not None:
            picked[f"{arm}/{chosen}"] = fitted[(arm, chosen)]
    return picked


def failure_table(y: np.ndarray, meta: dict[str, np.ndarray], scores: dict[str, np.ndarray],
                  time_unit: str) -> pl.DataFrame:
    """One row per test failure with a run-up; a lead-time column per method."""
    event = np.asarray(meta["event_id"]).astype(np.int64)
    rul = np.asarray(meta["rul"], dtype=np.float64)
    ends = np.asarray(meta["time"], dtype=np.float64)
    columns: dict[str, list[Any]] = {}
    ids = np.empty(0, dtype=np.int64)
    for name, s in scores.items():  # every method sees the same failures: the same ids
        ids, lead, _ = first_alerts(y, s, meta)
        columns[f"{name} lead ({time_unit})"] = [None if np.isnan(v) else float(v) for v in lead]
    if not len(ids):
        return pl.DataFrame()
    first = [int(np.flatnonzero(event == i)[0]) for i in ids]
    failure_time = [ends[k] + rul[k] for k in first]
    frame = {"machine_id": [str(meta["machine"][k]) for k in first],
             "failure_time": [hours_to_label(t) if time_unit == "hours" else float(t)
                              for t in failure_time]}
    if "failure_mode" in meta:
        frame["failure_mode"] = [str(meta["failure_mode"][k]) for k in first]
    return pl.DataFrame({**frame, **columns}).sort("machine_id", "failure_time")


def in_threshold_units(scores: np.ndarray, healthy: np.ndarray) -> np.ndarray:
    """0 at the median healthy window, 1 at the 1% false-alarm threshold."""
    s = np.asarray(scores, dtype=np.float64)
    median = float(np.median(s[healthy]))
    scale = alert_threshold(s, healthy) - median
    if not scale > 0:  # degenerate scores: fall back to their spread
        scale = float(s[healthy].std()) or 1.0
    return (s - median) / scale


def timeline_figure(meta: dict[str, np.ndarray], scores: dict[str, np.ndarray], path: Path,
                    time_unit: str, n_machines: int = TIMELINE_MACHINES) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    runup, healthy, horizon = window_phases(meta)
    machine = np.asarray(meta["machine"]).astype(str)
    ends = np.asarray(meta["time"], dtype=np.float64)
    rul = np.asarray(meta["rul"], dtype=np.float64)
    shown = sorted(set(machine[runup]))[:n_machines]
    if not shown or not healthy.any():  # no failure to show, or no threshold to draw
        return None
    units = {name: in_threshold_units(s, healthy) for name, s in scores.items()}
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.4 * len(shown)), dpi=110,
                             squeeze=False)
    for ax, m in zip(axes[:, 0], shown, strict=True):
        rows = np.flatnonzero(machine == m)
        rows = rows[np.argsort(ends[rows])]
        t0 = ends[rows[0]]
        x = ends[rows] - t0
        gap = np.zeros(len(x), dtype=bool)  # break the line where windows are missing
        if len(x) > 2:
            gap[1:] = np.diff(x) > 3 * np.median(np.diff(x))
        for i, (name, u) in enumerate(units.items()):
            ax.plot(np.where(gap, np.nan, x), np.where(gap, np.nan, u[rows]), lw=1.2,
                    color=f"C{i}", label=name)
        failures = np.unique(ends[rows] + rul[rows])
        for f in failures[np.isfinite(failures)]:
            ax.axvline(f - t0, color="red", lw=1.5)
            ax.axvspan(f - t0 - horizon, f - t0, color="red", alpha=0.12)
        ax.axhline(1.0, color="gray", ls="--", lw=1)
        top = max(3.0, min(8.0, max(float(np.nanmax(u[rows])) for u in units.values())))
        ax.set_ylim(-3, top)
        ax.set_title(f"machine {m}", fontsize=9)
        ax.set_ylabel("score / alert threshold", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel(f"{time_unit} since the machine's first test window; red: failure, "
                           f"shaded: the {horizon:g} {time_unit} before it; dashed: the 1% "
                           "false-alarm threshold", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_artifacts(ctx: Any) -> None:
    """The recipe's artifacts: ``failure_alerts.csv`` and ``alert_timeline.png``."""
    meta = ctx.data.test_meta
    if not {"rul", "event_id", "horizon", "machine", "time"} <= set(meta):
        return  # not a run-to-failure test set: nothing to time
    methods = pick_methods(ctx.fitted, ctx.cfg)
    scores = {name: positive_scores(method.predict_scores(ctx.data.test_x))
              for name, method in methods.items()}
    if not scores:
        return
    time_unit = "cycles" if ctx.cfg.dataset.name == "cmapss" else "hours"
    table = failure_table(np.asarray(ctx.data.test_y), meta, scores, time_unit)
    if not table.is_empty():
        table.write_csv(ctx.out_dir / "failure_alerts.csv")
    timeline_figure(meta, scores, ctx.out_dir / "alert_timeline.png", time_unit)
