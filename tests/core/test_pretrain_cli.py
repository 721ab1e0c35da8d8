"""`sslcore pretrain --nproc 2` (torchrun, 2 CPU ranks on gloo), then `sslcore run --resume`."""

from __future__ import annotations

import pytest
import torch
import yaml
from mlflow import MlflowClient

from sslcore.train.checkpoint import load_checkpoint

CONFIG = {
    "vertical": "tabular",
    "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 1000, "n_features": 6}},
    "pretext": {"name": "masked_features"},
    "heads": [{"name": "linear_probe", "params": {"Cs": [0.1, 1.0]}}],
    "baselines": [{"name": "hist_gbm", "params": {"max_iter": 20, "max_iter_no_val": 20}}],
    # 600 unlabeled rows / a global batch of 64 (32 per rank) = 9 steps
    "pretrain": {"epochs": 1, "batch_size": 64, "checkpoint_every": 4, "log_every": 2,
                 "min_steps": 0},  # one epoch: no floor
    "finetune": {"epochs": 2, "patience": 1, "min_steps": 20},
    "evaluation": {"label_fractions": [1.0], "seeds": [0]},
}


def _pretrain_runs(client: MlflowClient, experiment_id: str, parent_id: str) -> list:
    return client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}' and "
                                               "tags.`sslcore.kind` = 'pretrain'")


@pytest.mark.slow
def test_torchrun_pretrain_then_resume_in_run(tmp_path, make_store, sslcore_cli):
    uri = make_store(tmp_path)
    output_dir = tmp_path / "runs"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CONFIG | {"output_dir": str(output_dir)}))

    pre = sslcore_cli("pretrain", "tabular", "--config", "c.yaml", "--nproc", "2",
                      "--tracking-uri", uri, "--no-progress", cwd=tmp_path)
    assert pre.returncode == 0, pre.stdout[-3000:] + pre.stderr[-5000:]
    found = list(output_dir.rglob("last.pt"))
    assert len(found) == 1, found
    ckpt = found[0]
    assert f"checkpoint: {ckpt.parent}" in pre.stdout  # printed once, by rank 0
    state = load_checkpoint(ckpt)
    assert state["world_size"] == 2 and state["step"] == state["total_steps"] == 600 // 64
    losses = state["losses"]
    assert isinstance(losses, torch.Tensor) and losses.numel() == state["step"]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("sslcore-tabular")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2  # the `pretrain` parent run and its pretraining child
    top = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert top.info.status == "FINISHED" and top.data.tags["sslcore.kind"] == "pretrain"
    (first,) = _pretrain_runs(client, experiment.experiment_id, top.info.run_id)
    assert first.info.status == "FINISHED"
    assert first.data.metrics["steps"] == state["step"]

    run = sslcore_cli("run", "tabular", "--config", "c.yaml", "--resume", "--tracking-uri", uri,
                      "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    parents = client.search_runs([experiment.experiment_id], "tags.`sslcore.kind` = 'experiment'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert f"MLflow parent run {parents[0].info.run_id}" in run.stdout
    (resumed,) = _pretrain_runs(client, experiment.experiment_id, parents[0].info.run_id)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.params["checkpoint_dir"] == first.data.params["checkpoint_dir"]
    assert resumed.data.metrics["steps"] == first.data.metrics["steps"]
    assert resumed.data.metrics["final_loss"] == pytest.approx(first.data.metrics["final_loss"])
    assert client.get_metric_history(resumed.info.run_id, "loss") == []  # no step trained again
    assert load_checkpoint(ckpt)["step"] == state["step"]
