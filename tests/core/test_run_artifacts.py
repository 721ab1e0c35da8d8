"""Run-level extensions: a vertical's own artifacts, the multi-class confusion matrix, and
threshold metrics chosen on validation data, read back from MLflow."""

from __future__ import annotations

import numpy as np
from mlflow import MlflowClient

from sslcore import hookimpl
from sslcore.contracts import ArtifactContext, VerticalRecipe
from sslcore.experiment import load_data, resolve_config, run_experiment
from sslcore.plugins import load_registries

SEEN: list[ArtifactContext] = []


def _draw(ctx: ArtifactContext) -> None:
    SEEN.append(ctx)
    (ctx.out_dir / "explain.txt").write_text(",".join(f"{a}/{m}" for a, m in sorted(ctx.fitted)))


class _Plugin:
    @hookimpl
    def sslcore_register_verticals(self, registry):
        registry.add("explained", lambda params: VerticalRecipe(
            description="tabular with its own artifact", modality="table", artifacts=_draw,
            default_config={
                "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 900}},
                "backbone": {"name": "mlp", "params": {"hidden_dims": [32], "embed_dim": 16}},
                "pretext": {"name": "scarf"},
                "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}],
                "baselines": [{"name": "scratch"}],
                "pretrain": {"epochs": 1, "batch_size": 64},
                "finetune": {"epochs": 2, "patience": 1, "min_steps": 20},
                "evaluation": {"label_fractions": [1.0], "seeds": [0],
                               "metrics": ["auroc", "sensitivity", "specificity"],
                               "primary_metric": "auroc"}}),
            description="test vertical")


def _run(raw, tmp_path, tracking_uri, data=None):
    registries = load_registries(extra_plugins=[_Plugin()])
    cfg = resolve_config(raw | {"output_dir": str(tmp_path / "runs"),
                                "tracking": {"uri": tracking_uri}}, registries)
    return run_experiment(cfg, registries, load_data(cfg, registries, data), progress=False)


def test_vertical_artifacts_and_threshold_metrics(tmp_path, tracking_uri):
    report = _run({"vertical": "explained"}, tmp_path, tracking_uri)
    client = MlflowClient(tracking_uri)
    assert {"explain.txt", "comparison.csv"} <= {a.path for a in
                                                 client.list_artifacts(report.run_id)}
    assert SEEN[-1].fitted.keys() == {("ssl", "linear_probe"), ("baseline", "scratch")}
    assert "confusion_matrix.png" not in {a.path for a in client.list_artifacts(report.run_id)}
    sens = report.table.filter(report.table["metric"] == "sensitivity")["mean"].to_numpy()
    assert len(sens) == 2 and ((sens >= 0) & (sens <= 1)).all()


def test_multiclass_run_logs_a_confusion_matrix(tmp_path, tracking_uri):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(900, 4)).astype(np.float32)
    y = np.digitize(x[:, 0] + 0.3 * rng.normal(size=900), [-0.5, 0.5])  # three classes
    data = {"unlabeled": x[:400], "labeled": (x[400:650], y[400:650]), "test": (x[650:], y[650:])}
    raw = {"vertical": "explained", "evaluation": {
        "label_fractions": [1.0], "seeds": [0], "metrics": ["accuracy", "macro_f1"],
        "primary_metric": "accuracy"}}
    report = _run(raw, tmp_path, tracking_uri, data)
    paths = {a.path for a in MlflowClient(tracking_uri).list_artifacts(report.run_id)}
    assert "confusion_matrix.png" in paths
