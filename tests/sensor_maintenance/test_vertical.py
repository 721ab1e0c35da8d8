"""The sensor_maintenance vertical end to end through the CLI, on a tiny fleet, read back from
MLflow; and the recipe's shape (label fractions of failure histories, 3 seeds, event metrics)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlflow import MlflowClient
from sslcore_sensor_maintenance.event_metrics import EVENT_METRICS
from sslcore_sensor_maintenance.recipe import DEFAULT_CONFIG, QUICK_OVERRIDES

VERTICAL = "sensor_maintenance"
FRACTIONS, SEEDS = [0.5, 1.0], [0]


def tiny_config(tmp_path: Path) -> dict[str, Any]:
    gbm = {"max_iter": 20, "max_iter_no_val": 20}
    cheap = {"window_stats_gbm": gbm, "gbm_on_stats_and_residuals": gbm,
             "window_stats_iforest": {"n_estimators": 20}, "linear_probe": {"Cs": [1.0]}}
    refs = [{"name": r["name"], "params": {**r.get("params", {}), **cheap.get(r["name"], {})}}
            for r in DEFAULT_CONFIG["heads"] + DEFAULT_CONFIG["baselines"]]
    n_heads = len(DEFAULT_CONFIG["heads"])
    return {
        "vertical": VERTICAL,
        "output_dir": str(tmp_path / "runs"),
        "dataset": {"name": "sensor_synthetic",
                    "params": {"n_machines": 10, "n_unlabeled_machines": 4, "hours": 700,
                               "mtbf_hours": 300.0,
                               "window": 32, "stride": 8, "horizon": 24.0}},
        "backbone": {"name": "tcn", "params": {"channels": 8, "embed_dim": 16}},
        "heads": refs[:n_heads],
        "baselines": refs[n_heads:],
        "pretrain": {"epochs": 1, "max_steps": 3, "batch_size": 64, "warmup_steps": 0,
                     "checkpoint_every": 3, "log_every": 1},
        "finetune": {"epochs": 1, "patience": 1, "batch_size": 64, "min_steps": 10},
        "evaluation": {"label_fractions": FRACTIONS, "seeds": SEEDS},
    }


def test_recipe_counts_failure_histories_and_reports_event_metrics():
    ev = DEFAULT_CONFIG["evaluation"]
    assert {0.05, 0.1} <= set(ev["label_fractions"]) and len(ev["seeds"]) == 3
    assert ev["primary_metric"] == "auprc"
    assert {"auprc", "recall_at_1pct_fpr"} | set(EVENT_METRICS) <= set(ev["metrics"])
    assert {0.05, 0.1} <= set(QUICK_OVERRIDES["evaluation"]["label_fractions"])


@pytest.mark.slow
def test_sensor_run_through_the_cli(tmp_path, make_store, sslcore_cli):
    uri = make_store(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config(tmp_path), sort_keys=False))
    out = sslcore_cli("run", VERTICAL, "--config", "c.yaml", "--tracking-uri", uri,
                      "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"sslcore-{VERTICAL}")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert {r.info.status for r in runs} == {"FINISHED"}
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["sslcore.vertical"] == VERTICAL
    assert parent.data.params["data.split"] == "by machine"
    down = [r for r in runs if r.data.tags.get("sslcore.kind") == "downstream"]
    methods = {(r.data.tags["sslcore.arm"], r.data.tags["sslcore.method"]) for r in down}
    assert methods == {("ssl", r["name"]) for r in DEFAULT_CONFIG["heads"]} | \
        {("baseline", r["name"]) for r in DEFAULT_CONFIG["baselines"]}
    assert len(down) == len(methods) * len(FRACTIONS) * len(SEEDS)
    wanted = {f"test_{m}" for m in DEFAULT_CONFIG["evaluation"]["metrics"]}
    for r in down:
        assert wanted <= set(r.data.metrics), r.info.run_name
        assert math.isfinite(r.data.metrics["test_auprc"]), r.info.run_name
        assert int(r.data.params["n_labeled.failure_within_horizon"]) > 0, r.info.run_name
    assert "sslcore.artifacts_error" not in parent.data.tags
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.md", "comparison.csv", "failure_alerts.csv",
            "alert_timeline.png"} <= artifacts
