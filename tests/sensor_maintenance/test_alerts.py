"""The recipe's artifacts: each test failure's first alert per method, and the alert timeline."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl

from sslcore_sensor_maintenance.alerts import in_threshold_units, pick_methods, write_artifacts

HORIZON = 72.0
EPOCH_2024 = 473352.0  # 2024-01-01 00:00 in hours since the Unix epoch


class FixedScores:
    """A fitted method whose test scores are given."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        return self.scores


def run_to_failure_meta() -> dict[str, np.ndarray]:
    """Machine A fails 400 h in (windows ending every 8 h before), machine B never fails."""
    t = np.arange(0.0, 400.0, 8.0)
    rul = np.r_[400.0 - t, np.full(len(t), np.inf)]
    return {"machine": np.array(["A"] * len(t) + ["B"] * len(t)),
            "time": EPOCH_2024 + np.r_[t, t], "rul": rul,
            "event_id": np.r_[np.zeros(len(t), dtype=np.int64), np.full(len(t), -1)],
            "horizon": np.full(2 * len(t), HORIZON),
            "failure_mode": np.array(["seal_leak"] * len(t) + [""] * len(t))}


def ref(name: str, label: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(name=name, label=label or name)


def test_lead_times_follow_the_event_metrics_and_the_timeline_is_drawn(tmp_path):
    meta = run_to_failure_meta()
    rul = meta["rul"]
    # healthy windows score 0: the 1% threshold is 0, so a window alarms when its score is > 0
    early = np.where(rul <= 96, 1.0, 0.0)  # first alarm 96 h before the failure
    late = np.where(rul <= 16, 1.0, 0.0)  # 16 h before: alerted, but not a horizon ahead
    cfg = SimpleNamespace(heads=[ref("finetune"), ref("rul_with_residuals", "rwr")],
                          baselines=[ref("scratch"), ref("rul_with_levels_scratch")],
                          dataset=SimpleNamespace(name="sensor_synthetic"))
    fitted = {("ssl", "finetune"): FixedScores(np.zeros(len(rul))),
              ("ssl", "rwr"): FixedScores(early),
              ("baseline", "scratch"): FixedScores(np.zeros(len(rul))),
              ("baseline", "rul_with_levels_scratch"): FixedScores(np.c_[1 - late, late])}
    data = SimpleNamespace(test_x=np.zeros((len(rul), 1, 1)), test_y=(rul <= HORIZON).astype(int),
                           test_meta=meta)
    write_artifacts(SimpleNamespace(cfg=cfg, data=data, fitted=fitted, out_dir=tmp_path))

    table = pl.read_csv(tmp_path / "failure_alerts.csv")
    assert table.to_dicts() == [{
        "machine_id": "A", "failure_time": "2024-01-17 16:00:00", "failure_mode": "seal_leak",
        "ssl/rwr lead (hours)": 96.0, "baseline/rul_with_levels_scratch lead (hours)": 16.0}]
    assert (tmp_path / "alert_timeline.png").stat().st_size > 10_000


def test_methods_fall_back_to_the_first_of_each_arm():
    cfg = SimpleNamespace(heads=[ref("linear_probe"), ref("finetune")],
                          baselines=[ref("window_stats_gbm")])
    fitted = {("ssl", "linear_probe"): 1, ("ssl", "finetune"): 2,
              ("baseline", "window_stats_gbm"): 3}
    assert pick_methods(fitted, cfg) == {"ssl/linear_probe": 1, "baseline/window_stats_gbm": 3}


def test_scores_in_threshold_units():
    scores = np.r_[np.arange(100.0), 500.0]  # 100 healthy windows 0..99, one run-up window
    healthy = np.r_[np.ones(100, dtype=bool), False]
    units = in_threshold_units(scores, healthy)
    # median healthy 49.5 -> 0; the 1% threshold (the 2nd highest healthy score, 98) -> 1
    assert units[49] < 0 < units[50] and units[98] == 1.0
    assert np.isclose(units[-1], (500 - 49.5) / (98 - 49.5))


def test_without_healthy_windows_nothing_is_written(tmp_path):
    meta = run_to_failure_meta()
    keep = meta["rul"] <= 100  # run-up windows only: no false-alarm threshold exists
    meta = {k: v[keep] for k, v in meta.items()}
    cfg = SimpleNamespace(heads=[ref("finetune")], baselines=[],
                          dataset=SimpleNamespace(name="sensor_synthetic"))
    data = SimpleNamespace(test_x=np.zeros((int(keep.sum()), 1, 1)), test_y=np.ones(keep.sum()),
                           test_meta=meta)
    fitted = {("ssl", "finetune"): FixedScores(np.linspace(0, 1, int(keep.sum())))}
    write_artifacts(SimpleNamespace(cfg=cfg, data=data, fitted=fitted, out_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []
