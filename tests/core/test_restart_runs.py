"""One MLflow pretraining run per torchrun job, however often torchrun restarts its workers."""

from __future__ import annotations

import json

from mlflow import MlflowClient

import sslcore
from sslcore import tracking

CONFIG = {
    "vertical": "tabular",
    "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 600, "n_features": 6}},
    "pretrain": {"epochs": 1, "batch_size": 64, "checkpoint_every": 2, "min_steps": 0},
}


def test_a_restarted_job_reopens_its_runs(tmp_path, tracking_uri, monkeypatch):
    cfg = CONFIG | {"output_dir": str(tmp_path / "runs")}
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-1")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    ckpt = sslcore.pretrain(cfg, tracking_uri=tracking_uri, progress=False)
    record = json.loads((ckpt / "mlflow_runs.job-1.json").read_text())
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # what torchrun sets after a failure
    sslcore.pretrain(cfg, tracking_uri=tracking_uri, resume=True, progress=False)

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("sslcore-tabular")
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in runs} == {record["parent"], record["pretrain"]}
    assert all(r.info.status == "FINISHED" for r in runs)

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-2")  # a new job: new runs
    sslcore.pretrain(cfg, tracking_uri=tracking_uri, resume=True, progress=False)
    assert len(client.search_runs([experiment.experiment_id])) == 4


def test_launcher_marks_runs_of_a_failed_job_failed(tmp_path, tracking_uri):
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("killed")
    running = client.create_run(experiment).info.run_id
    done = client.create_run(experiment).info.run_id
    client.set_terminated(done, "FINISHED")
    record = tmp_path / "runs.json"
    record.write_text(json.dumps({"parent": running, "pretrain": done,
                                  "tracking_uri": tracking_uri}))
    assert tracking.fail_recorded_runs(str(record)) == [running]
    assert client.get_run(running).info.status == "FAILED"
    assert client.get_run(done).info.status == "FINISHED"
    assert tracking.fail_recorded_runs(str(tmp_path / "absent.json")) == []
