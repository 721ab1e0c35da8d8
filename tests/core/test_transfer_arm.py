"""The transfer arm (backbone.init): the heads on the initial encoder (the generic weights +
the labels, no domain SSL), next to ssl and baseline on the same rows, budget and test set."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

import sslcore
import sslcore.sweep

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py

RUN = {"vertical": "tabular",
       "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 600, "n_features": 6}},
       "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}],
       "baselines": [{"name": "logreg_raw"}],
       "pretrain": {"steps": 5, "batch_size": 64}, "finetune": {"steps": 10},
       "evaluation": {"label_fractions": [0.5, 1.0], "seeds": [0]}}


def _init_file(directory: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A state dict of the recipe's MLP, as a user brings a generic model."""
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries

    registries = load_registries()
    params = resolve_config(RUN, registries).backbone.params
    torch.manual_seed(123)
    source = registries.backbones.get("mlp").build(params, input_shape=(6,))
    path = directory / "generic.pt"
    torch.save(source.state_dict(), path)
    return path, {k: v.clone() for k, v in source.state_dict().items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_store) -> dict[str, Any]:
    """One run with init (its sweep's inputs and result captured) and one without."""
    tmp = tmp_path_factory.mktemp("transfer")
    uri = make_store(tmp)
    path, weights = _init_file(tmp)
    captured: dict[str, Any] = {}
    real = sslcore.sweep.run_sweep

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        captured.update(args=args, kwargs=kwargs, result=result)
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setattr(sslcore.sweep, "run_sweep", spy)
        with_init = sslcore.compare(
            RUN | {"backbone": {"name": "mlp", "init": str(path)},
                   "output_dir": str(tmp / "runs")}, tracking_uri=uri, progress=False)
        sweep = dict(captured)
        without = sslcore.compare(RUN | {"output_dir": str(tmp / "runs")}, tracking_uri=uri,
                                  progress=False)
        yield {"init": with_init, "plain": without, "sweep": sweep, "weights": weights,
               "client": MlflowClient(uri), "tmp": tmp}


def _children(client: MlflowClient, report: Any) -> list[Any]:
    return client.search_runs([report.experiment_id],
                              f"tags.mlflow.parentRunId = '{report.run_id}' and "
                              "tags.`sslcore.kind` = 'downstream'")


def test_three_arms_fit_the_same_labeled_rows(runs):
    children = _children(runs["client"], runs["init"])
    assert len(children) == 2 * 3  # 2 fractions x 1 seed x (ssl, baseline, transfer)
    by_subset: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for run in children:
        tags = run.data.tags
        assert run.info.status == "FINISHED"
        labeled = {k: v for k, v in run.data.params.items() if k.startswith("n_labeled")}
        by_subset.setdefault((tags["sslcore.label_fraction"], tags["sslcore.seed"]), {})[
            tags["sslcore.arm"]] = labeled
    assert set(by_subset) == {("0.5", "0"), ("1", "0")}
    for arms in by_subset.values():
        assert set(arms) == {"ssl", "baseline", "transfer"}
        assert arms["ssl"] == arms["baseline"] == arms["transfer"]
    transfer = [r for r in children if r.data.tags["sslcore.arm"] == "transfer"]
    assert {r.data.tags["sslcore.method"] for r in transfer} == {"linear_probe"}
    assert {r.data.params["component"] for r in transfer} == {"linear_probe"}


def test_the_transfer_encoder_is_the_init_not_the_ssl_adapted_one(runs):
    fitted = runs["sweep"]["result"].fitted_at_top
    transfer = fitted[("transfer", "linear_probe")].encoder
    ssl = fitted[("ssl", "linear_probe")].encoder
    assert transfer is not ssl
    source = runs["weights"]
    trainable = [k for k, _ in transfer.named_parameters()]
    for name in trainable:
        torch.testing.assert_close(transfer.state_dict()[name], source[name])
    assert any(not torch.equal(ssl.state_dict()[n], source[n]) for n in trainable)
    # The same embeddings as the generic model with the pool's normalizer (no labels, no SSL).
    data = runs["sweep"]["args"][2]
    from sslcore.plugins import load_registries

    generic = load_registries().backbones.get("mlp").build(
        runs["init"].config.backbone.params, input_shape=(6,))
    generic.load_state_dict(source)
    generic.fit_normalizer(data.unlabeled_array())
    generic.eval()
    x = torch.as_tensor(data.test_x[:20])
    with torch.no_grad():
        torch.testing.assert_close(transfer.cpu()(x), generic(x))
        assert not torch.allclose(ssl.cpu()(x), generic(x))


def test_transfer_is_selected_on_validation_rows_never_the_test_set(runs):
    from sslcore.data.sampling import labeled_subsets
    from sslcore.evaluate.metrics import compute
    from sslcore.plugins import load_registries

    report, sweep = runs["init"], runs["sweep"]
    data, ev = sweep["args"][2], report.config.evaluation
    primary = ev.primary_metric
    top = [s for s in labeled_subsets(data, ev, ev.label_fractions, 0) if s.fraction == 1.0][0]
    val_x = data.labeled_x[top.val]
    assert len(val_x)
    method = sweep["result"].fitted_at_top[("transfer", "linear_probe")]
    meta_val = {k: np.asarray(v)[top.val] for k, v in data.labeled_meta.items()}
    val = compute([primary], data.labeled_y[top.val], method.predict_scores(val_x),
                  metrics=load_registries().metrics, threshold=None, meta=meta_val)[primary]
    vt = report.val_table
    logged = vt.filter((vt["arm"] == "transfer") & (vt["label_fraction"] == 1.0))["mean"][0]
    assert logged == pytest.approx(val)
    child = [r for r in _children(runs["client"], report)
             if r.data.tags["sslcore.arm"] == "transfer"
             and r.data.tags["sslcore.label_fraction"] == "1"][0]
    assert child.data.metrics[f"val_{primary}"] == pytest.approx(val)
    test_score = compute([primary], data.test_y, method.predict_scores(data.test_x),
                         metrics=load_registries().metrics, threshold=None,
                         meta=data.test_meta)[primary]
    assert child.data.metrics[f"test_{primary}"] == pytest.approx(test_score)


def test_the_headline_and_comparison_md_show_the_transfer_arm(runs):
    report, client = runs["init"], runs["client"]
    hl = report.headline
    assert hl.transfer and set(report.table["arm"]) == {"ssl", "baseline", "transfer"}
    for row in hl.rows:
        assert row["best_transfer"] and row["best_transfer"][0] == "linear_probe"
    md = Path(client.download_artifacts(report.run_id, "comparison.md",
                                        str(runs["tmp"] / "md_init"))).read_text()
    assert "| transfer (chosen) |" in md and "| transfer | linear_probe |" in md


def test_a_run_without_init_has_no_transfer_arm(runs):
    report, client = runs["plain"], runs["client"]
    assert set(report.table["arm"]) == {"ssl", "baseline"} and not report.headline.transfer
    assert all(row["best_transfer"] is None for row in report.headline.rows)
    arms = {r.data.tags["sslcore.arm"] for r in _children(client, report)}
    assert arms == {"ssl", "baseline"}
    md = Path(client.download_artifacts(report.run_id, "comparison.md",
                                        str(runs["tmp"] / "md_plain"))).read_text()
    assert "transfer" not in md


def test_resume_reuses_the_finished_transfer_children(runs, monkeypatch):
    """--resume reads children back by (arm, method, fraction, seed): a rerun of the sweep
    with them logged fits no transfer child again and reports the same scores."""
    from sslcore import tracking

    report, sweep = runs["init"], runs["sweep"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", report.tracking_uri)
    logged = tracking.finished_children(report.experiment_id, report.run_id)
    assert {k[0] for k in logged} == {"ssl", "baseline", "transfer"}
    calls: list[str] = []
    args = list(sweep["args"])
    args[7] = lambda **kw: calls.append(kw["arm"])  # log_child
    again = sslcore.sweep.run_sweep(*args, **(sweep["kwargs"] | {"logged": logged}))
    assert calls == []  # everything was logged: nothing is logged twice
    assert again.child_runs == 6
    key = ["label_fraction", "seed", "arm", "method", "metric"]
    first = sweep["result"]
    assert again.results.sort(key).equals(first.results.sort(key))
    assert again.val_results.sort(key).equals(first.val_results.sort(key))
    assert ("transfer", "linear_probe") in again.fitted_at_top
