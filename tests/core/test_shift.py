"""Evaluation under shift: every fit scored on each shifted test set, never choosing anything;
and unsupervised domain adaptation (pretrain.target_unlabeled), end to end through compare()."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

import sslcore
from sslcore.data.shift import ShiftedDomain
from sslcore.errors import ConfigError, DataError
from sslcore.sweep import run_sweep
from tests.core.test_sweep import _cfg, _data, _Recorder, _registries

METRICS = ["auprc", "auroc", "sensitivity"]  # sensitivity: at the validation threshold


def _sweep(data, logged=None) -> tuple[Any, list[dict[str, Any]]]:
    _Recorder.calls = []
    children: list[dict[str, Any]] = []
    cfg = _cfg([0.25, 1.0], [0, 1])
    cfg.evaluation.metrics = METRICS
    result = run_sweep(cfg, _registries(), data, encoder=torch.nn.Identity(), make_backbone=None,
                       augment=None, device=torch.device("cpu"),
                       log_child=lambda **kw: children.append(kw), progress=False,
                       logged=logged)
    return result, children


def _shifted(data, name: str = "site_b", same_as_test: bool = False):
    rng = np.random.default_rng(1)
    x = data.test_x.copy() if same_as_test else \
        (rng.normal(size=(40, 4)) + 0.5).astype(np.float32)
    data.shifted = {name: ShiftedDomain(test_x=x, test_y=data.test_y.copy())}
    return data


def test_every_fit_is_scored_on_the_shifted_set_with_its_threshold():
    # A "shifted" set equal to the test set must score exactly as the test set does: the
    # same model and the same validation threshold (sensitivity depends on it).
    result, children = _sweep(_shifted(_data(), same_as_test=True))
    shift = result.shift_results
    assert set(shift["domain"]) == {"site_b"}
    assert shift.height == result.results.height == 3 * 2 * 2 * 3  # methods x fr x seeds x m
    joined = result.results.join(shift.drop("domain"), on=["label_fraction", "seed", "arm",
                                                           "method", "metric"])
    np.testing.assert_allclose(joined["value"], joined["value_right"])
    for child in children:
        metrics = child["metrics"]
        assert {f"shift_site_b_{m}" for m in METRICS} <= set(metrics)
        assert metrics["shift_site_b_sensitivity"] == metrics["test_sensitivity"]
    assert result.shift_seconds >= 0


def test_the_shifted_set_never_changes_a_choice_and_resume_reads_it_back():
    plain, _ = _sweep(_data())
    shifted, children = _sweep(_shifted(_data()))
    assert plain.shift_results.is_empty()
    assert plain.val_results.equals(shifted.val_results)  # what every choice is made on
    assert plain.results.equals(shifted.results)
    assert not any(k.startswith("shift_") for k in plain.timings)
    # --resume: the logged children's shift_* metrics come back as the same rows.
    logged = {(c["arm"], c["method"], f"{c['fraction']:g}", c["seed"]): c["metrics"]
              for c in children}
    resumed, again = _sweep(_shifted(_data()), logged=logged)
    assert again == []  # nothing logged twice
    key = ["domain", "label_fraction", "seed", "arm", "method", "metric"]
    assert resumed.shift_results.sort(key).equals(shifted.shift_results.sort(key))


# --------------------------------------------------------------------------- end to end

TINY = {
    "vertical": "tabular",
    "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}],
    "baselines": [{"name": "logreg_raw"}, {"name": "iforest"}],
    "pretrain": {"steps": 2, "batch_size": 64, "checkpoint_every": 5},
    "finetune": {"steps": 2, "batch_size": 64},
    "evaluation": {"label_fractions": [0.5, 1.0], "seeds": [0],
                   "metrics": ["auprc", "auroc"]},
}


def _arrays(shifted: bool, pool: bool = False) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(420, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=420) > 0.8).astype(int)
    data = {"unlabeled": x[:200], "labeled": (x[200:320], y[200:320]),
            "test": (x[320:], y[320:])}
    if shifted:
        xs = (rng.normal(size=(180, 5)) * 1.5 + 0.3).astype(np.float32)  # another site
        ys = (xs[:, 0] + 0.5 * rng.normal(size=180) > 0.8).astype(int)
        data["shifted"] = {"site_b": {"test": (xs[:80], ys[:80])}}
        if pool:
            data["shifted"]["site_b"]["unlabeled"] = xs[80:]
    return data


def _compare(tmp_path, data, **extra) -> Any:
    cfg = TINY | {"output_dir": str(tmp_path / "runs")} | extra
    return sslcore.compare(cfg, data=data, progress=False)


def _children(client, report):
    return [r for r in client.search_runs(
        [report.experiment_id], f"tags.mlflow.parentRunId = '{report.run_id}'")
        if r.data.tags.get("sslcore.kind") == "downstream"]


def test_compare_scores_every_child_on_the_shifted_set(tracking_uri, tmp_path):
    plain = _compare(tmp_path, _arrays(shifted=False))
    report = _compare(tmp_path, _arrays(shifted=True))
    client = MlflowClient(tracking_uri)
    children = _children(client, report)
    assert len(children) == 3 * 2
    for run in children:
        assert {"shift_site_b_auprc", "shift_site_b_auroc"} <= set(run.data.metrics)
    parent = client.get_run(report.run_id)
    assert parent.data.tags["sslcore.shifted_domains"] == "site_b"
    assert parent.data.tags["sslcore.pretrain_pool"] == "source"
    assert parent.data.params["data.rows.shift.site_b.test"] == "80"
    assert {"shift.png", "comparison_shift.csv"} <= {
        a.path for a in client.list_artifacts(report.run_id)}
    md = open(client.download_artifacts(report.run_id, "comparison.md",
                                        str(tmp_path / "dl"))).read()
    assert "## Under domain shift" in md and "| in-domain | site_b | drop site_b |" in md
    assert "the source's unlabeled pool only" in md
    assert "auprc: each group's method chosen on validation" in md
    table = report.shift_table
    assert set(table["domain"]) == {"site_b"} and table["mean"].is_finite().all()
    # The headline stays in-domain, and the shifted set changed no choice.
    assert report.best_method == plain.best_method
    assert report.val_table.equals(plain.val_table)
    assert report.table.equals(plain.table)
    assert report.timings["shift_scoring"] > 0 and "shift_scoring" not in plain.timings
    assert client.get_run(report.run_id).data.metrics["seconds.shift_scoring"] > 0


def test_target_unlabeled_enlarges_the_pretraining_pool(tracking_uri, tmp_path):
    report = _compare(tmp_path, _arrays(shifted=True, pool=True),
                      pretrain={**TINY["pretrain"], "target_unlabeled": ["site_b"]})
    client = MlflowClient(tracking_uri)
    parent = client.get_run(report.run_id)
    pool = "source (200 rows) + site_b (100 rows)"
    assert parent.data.tags["sslcore.pretrain_pool"] == pool
    assert parent.data.params["data.rows.unlabeled"] == "300"
    md = open(client.download_artifacts(report.run_id, "comparison.md",
                                        str(tmp_path / "dl"))).read()
    assert f"Pretraining pool: {pool}: unsupervised domain adaptation" in md
    # Another pool, another pretraining checkpoint.
    without = _compare(tmp_path, _arrays(shifted=True, pool=True))
    pre = [r for r in client.search_runs([report.experiment_id])
           if r.data.tags.get("sslcore.kind") == "pretrain"]
    dirs = {r.data.params["checkpoint_dir"] for r in pre
            if r.data.tags["mlflow.parentRunId"] in (report.run_id, without.run_id)}
    assert len(dirs) == 2


def test_bad_shift_setups_fail_before_any_run(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri)
    with pytest.raises(ConfigError, match="named like the metric 'auroc'"):
        data = _arrays(shifted=True)
        data["shifted"] = {"auroc": data["shifted"]["site_b"]}
        _compare(tmp_path, data)
    with pytest.raises(ConfigError, match=r"target_unlabeled: \['site_c'\] are not shifted"):
        _compare(tmp_path, _arrays(shifted=True),
                 pretrain={**TINY["pretrain"], "target_unlabeled": ["site_c"]})
    leaky = _arrays(shifted=True)
    x_u = leaky["unlabeled"]
    leaky["unlabeled"] = np.concatenate([x_u, leaky["shifted"]["site_b"]["test"][0][:1]])
    with pytest.raises(DataError, match="leakage: test row 0 of shifted domain 'site_b'"):
        _compare(tmp_path, leaky)
    assert client.search_experiments(filter_string="name = 'sslcore-tabular'") == [] or all(
        not client.search_runs([e.experiment_id])
        for e in client.search_experiments(filter_string="name = 'sslcore-tabular'"))


def test_config_route_builds_domains_with_the_loader(tracking_uri, tmp_path):
    from sslcore.experiment import load_data, resolve_config
    from sslcore.plugins import load_registries

    registries = load_registries()
    raw = {"vertical": "tabular", "dataset": {
        "name": "synthetic_tabular", "params": {"n_rows": 300, "n_features": 6},
        "shifted": {"site_b": {"positive_rate": 0.3}}}}
    cfg = resolve_config(raw, registries)
    data = load_data(cfg, registries)
    dom = data.shifted["site_b"]
    assert dom.where == "dataset.shifted.site_b" and dom.test_x.shape[1:] == (6,)
    assert not np.array_equal(dom.test_x[:5], data.test_x[:5])  # another seed
    assert 0.2 < dom.test_y.mean() < 0.45  # the override took effect
    assert dom.unlabeled is None  # not a target: its pool is dropped at once
    uda = resolve_config(raw | {"pretrain": {"target_unlabeled": ["site_b"]}}, registries)
    assert len(load_data(uda, registries).shifted["site_b"].unlabeled) == 180  # 60% of 300
    bad = raw | {"dataset": raw["dataset"] | {"shifted": {"site_b": {"n_rowz": 10}}}}
    with pytest.raises(ConfigError, match=r"dataset\.shifted\.site_b\.n_rowz: unknown key"):
        resolve_config(bad, registries)
    wide = raw | {"dataset": raw["dataset"] | {"shifted": {"wide": {"n_features": 7}}}}
    with pytest.raises(DataError, match=r"dataset.shifted.wide test features have shape \(7,\)"):
        load_data(resolve_config(wide, registries), registries)
    with pytest.raises(ConfigError, match=r"dataset\.shifted: .*use letters"):
        resolve_config(raw | {"dataset": raw["dataset"] | {"shifted": {"a.b": {}}}}, registries)


def test_the_drop_is_how_much_worse_under_shift():
    import polars as pl

    from sslcore.evaluate.shift_report import shift_frame

    table = pl.DataFrame({"label_fraction": [1.0], "arm": ["ssl"], "method": ["m"],
                          "metric": ["err"], "mean": [0.2], "std": [0.01]})
    shift = table.with_columns(pl.lit("b").alias("domain"), pl.lit(0.5).alias("mean"))
    assert shift_frame(table, shift, "err", lower=True)["drop_b"][0] == pytest.approx(0.3)
    assert shift_frame(table, shift, "err", lower=False)["drop_b"][0] == pytest.approx(-0.3)
