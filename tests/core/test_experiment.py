"""The runner end to end on tiny data, read back from MLflow with MlflowClient."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient

import sslcore
from sslcore.errors import ConfigError, DataError

# Cheap but complete: every method of the tabular recipe, with small budgets.
CHEAP_GBM = {"max_iter": 30, "max_iter_no_val": 30, "n_iter_no_change": 5}
TINY = {
    "vertical": "tabular",
    "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 1500, "n_features": 8}},
    "heads": [{"name": "linear_probe", "params": {"Cs": [0.1, 1.0]}}, {"name": "finetune"},
              {"name": "gbm_on_embeddings", "params": CHEAP_GBM | {"max_fit_samples": 500}}],
    "baselines": [{"name": "scratch"}, {"name": "hist_gbm", "params": CHEAP_GBM}],
    # Floors pinned low (the recipe's are for real data): 1 epoch, 30 fine-tuning steps.
    "pretrain": {"epochs": 1, "batch_size": 128, "checkpoint_every": 5, "min_steps": 0},
    "finetune": {"epochs": 3, "patience": 2, "batch_size": 128, "min_steps": 30},
    "evaluation": {"label_fractions": [0.1, 1.0], "seeds": [0, 1]},
}
# For tests about one aspect (resume, user data, failure): one SSL head, one baseline.
SMALL = TINY | {"heads": [{"name": "linear_probe", "params": {"Cs": [0.1, 1.0]}}],
                "baselines": [{"name": "hist_gbm", "params": CHEAP_GBM}],
                "evaluation": {"label_fractions": [1.0], "seeds": [0]}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, make_store):
    tmp = tmp_path_factory.mktemp("run")
    uri = make_store(tmp)
    cfg = TINY | {"output_dir": str(tmp / "runs")}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # the experiment's artifact root is ./mlruns when MLflow creates it
        # mlflow.set_tracking_uri() also exports MLFLOW_TRACKING_URI; undo that afterwards
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        report = sslcore.compare(cfg, tracking_uri=uri, progress=False)
    return report, MlflowClient(uri)


def test_report_table_shape(tiny_run):
    report, _ = tiny_run
    assert report.table.columns == ["label_fraction", "group", "arm", "method", "metric",
                                    "mean", "std", "n_seeds", "n_defined"]
    assert set(report.table["arm"]) == {"ssl", "baseline"}
    assert set(report.table["label_fraction"]) == {0.1, 1.0}
    assert (report.table["n_seeds"] == 2).all()
    assert report.table["mean"].is_finite().all()


def test_mlflow_layout(tiny_run):
    report, client = tiny_run
    parent = client.get_run(report.run_id)
    assert parent.data.tags["sslcore.kind"] == "experiment"
    assert parent.data.tags["sslcore.vertical"] == "tabular"
    assert parent.data.params["data.content_hash"]
    assert "plugin.sslcore" in parent.data.params
    artifacts = {a.path for a in client.list_artifacts(report.run_id)}
    assert {"comparison.csv", "comparison.md", "label_efficiency.png"} <= artifacts
    assert parent.data.tags["sslcore.model_uri"] == report.model_uri  # an MLflow 3 LoggedModel
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{report.run_id}'", max_results=500)
    pre = [r for r in children if r.data.tags.get("sslcore.kind") == "pretrain"]
    assert len(pre) == 1 and "embedding_std" in pre[0].data.metrics
    assert "effective_rank" in pre[0].data.metrics and "loss" in pre[0].data.metrics
    down = [r for r in children if r.data.tags.get("sslcore.kind") == "downstream"]
    n_methods = len(report.config.heads) + len(report.config.baselines)
    assert len(down) == n_methods * 2 * 2
    for r in down:
        tags = r.data.tags
        assert tags["sslcore.arm"] in ("ssl", "baseline")
        assert float(tags["sslcore.label_fraction"]) in (0.1, 1.0)
        assert tags["sslcore.seed"] in ("0", "1") and tags["sslcore.method"]
        assert {"test_auprc", "test_auroc", "test_accuracy", "test_macro_f1"} <= set(r.data.metrics)
        primary = report.config.evaluation.primary_metric
        assert f"val_{primary}" in r.data.metrics  # what the headline chooses methods by
        assert int(r.data.params["n_labeled"]) > 0
    statuses = {r.info.status for r in children} | {parent.info.status}
    assert statuses == {"FINISHED"}
    assert report.headline.chosen_on == "validation split"
    assert report.val_table is not None and set(report.val_table["method"]) == {
        r.label for r in [*report.config.heads, *report.config.baselines]}


def test_best_model_loads_as_pyfunc(tiny_run):
    report, _ = tiny_run
    model = sslcore.load_model(report.model_uri, tracking_uri=report.tracking_uri)
    import pandas as pd

    x = pd.DataFrame(np.zeros((3, 8), dtype=np.float32), columns=[f"f{i}" for i in range(8)])
    scores = np.asarray(model.predict(x))
    assert scores.shape[0] == 3 and np.isfinite(scores).all()


def _pretrain_child(client, report):
    runs = client.search_runs([report.experiment_id],
                              f"tags.mlflow.parentRunId = '{report.run_id}' and "
                              "tags.`sslcore.kind` = 'pretrain'")
    assert len(runs) == 1
    return runs[0]


def test_resume_reuses_the_checkpoint(tiny_run):
    report, client = tiny_run
    first = _pretrain_child(client, report)
    # Same pretraining config (the checkpoint key), other methods and fractions.
    cfg = SMALL | {"output_dir": report.config.output_dir}
    again = sslcore.compare(cfg, tracking_uri=report.tracking_uri, resume=True, progress=False)
    assert client.get_run(again.run_id).info.status == "FINISHED"
    resumed = _pretrain_child(client, again)
    assert resumed.data.params["checkpoint_dir"] == first.data.params["checkpoint_dir"]
    assert resumed.data.metrics["steps"] == first.data.metrics["steps"] > 0
    assert resumed.data.metrics["final_loss"] == pytest.approx(first.data.metrics["final_loss"])
    assert client.get_metric_history(resumed.info.run_id, "loss") == []  # no step trained again


def test_user_data_through_the_api(tracking_uri, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(900, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=900) > 1.0).astype(int)
    data = {"unlabeled": x[:500], "labeled": (x[500:700], y[500:700]), "test": (x[700:], y[700:])}
    cfg = SMALL | {"heads": [{"name": "finetune"}], "output_dir": str(tmp_path / "runs"),
                   "evaluation": {"label_fractions": [0.5, 1.0], "seeds": [0]}}
    report = sslcore.compare(cfg, data=data, progress=False)
    auroc = report.table.filter(report.table["metric"] == "auroc")
    assert set(auroc["method"]) == {"finetune", "hist_gbm"} and len(auroc) == 4
    assert auroc["mean"].min() > 0.5


def test_errors_before_work_leave_no_run(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri)
    with pytest.raises(ConfigError, match=r"heads\[0\]\.name: unknown heads 'linear_prob'.*"
                                          r"Did you mean 'linear_probe'"):
        sslcore.compare(TINY | {"heads": [{"name": "linear_prob"}]})
    with pytest.raises(ConfigError, match=r"pretrain\.epocs: unknown key"):
        sslcore.compare(TINY | {"pretrain": {"epocs": 1}})
    y_one_pos = np.zeros(300, dtype=int)
    y_one_pos[0] = 1
    x = np.zeros((300, 4), dtype=np.float32)
    with pytest.raises(DataError, match="only 1 row"):
        sslcore.compare(TINY | {"output_dir": str(tmp_path)},
                        data={"unlabeled": x, "labeled": (x, y_one_pos),
                              "test": (x, np.arange(300) % 2)})
    assert client.search_experiments() == [] or all(
        not client.search_runs([e.experiment_id]) for e in client.search_experiments())


def test_failure_mid_run_marks_the_run_failed(tracking_uri, tmp_path, monkeypatch):
    import sslcore.sweep

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sslcore.sweep, "run_sweep", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        sslcore.compare(SMALL | {"output_dir": str(tmp_path)}, progress=False)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs and all(r.info.status != "RUNNING" for r in runs)
    assert any(r.info.status == "FAILED" and r.data.tags.get("sslcore.kind") == "experiment"
               for r in runs)
