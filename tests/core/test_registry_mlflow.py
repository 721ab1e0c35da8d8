"""The MLflow Model Registry: a run registers its best model (alias candidate), `sslcore
promote` moves the alias champion, and `models:/...@champion` loads; the logged model carries
a signature and an input example."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

import sslcore
from tests.tiny_runs import TINY, compare_from
from sslcore import tracking
from sslcore.cli import main

NAME = "sslcore-tabular"


@pytest.fixture(scope="module")
def registered(tmp_path_factory, make_store):
    tmp = tmp_path_factory.mktemp("registry")
    uri = make_store(tmp)
    report = compare_from(tmp, TINY, uri, tmp / "runs")
    return report, MlflowClient(uri), tmp


def test_best_model_is_registered_as_candidate(registered):
    report, client, _ = registered
    assert report.registered_model == f"models:/{NAME}/1"
    version = client.get_model_version_by_alias(NAME, "candidate")
    assert str(version.version) == "1"
    arm, method = report.best_method.split("/")
    primary = report.config.evaluation.primary_metric
    parent = client.get_run(report.run_id)
    assert version.tags == {
        "arm": arm, "method": method, "label_fraction": "1", "seed": "0", "metric": primary,
        "score": f"{parent.data.metrics[f'test_{primary}']:.6g}",
        "val_score": f"{parent.data.metrics[f'val_{primary}']:.6g}",
        "vertical": "tabular", "source_run": report.run_id}
    assert parent.data.tags["sslcore.registered_model"] == report.registered_model
    # the registered score is the logged fit's: the best method's child at 100%, seed 0
    child = client.search_runs([report.experiment_id],
                               f"tags.`sslcore.method` = '{method}' and "
                               "tags.`sslcore.label_fraction` = '1'")[0]
    assert child.data.metrics[f"test_{primary}"] == parent.data.metrics[f"test_{primary}"]


def test_logged_model_has_signature_and_input_example(registered):
    report, _, _ = registered
    mlflow.set_tracking_uri(report.tracking_uri)
    info = mlflow.models.get_model_info(report.model_uri)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == [f"f{i}" for i in range(8)]
    assert info.saved_input_example_info is not None


def test_promote_then_load_the_champion(registered, capsys):
    report, client, _ = registered
    assert main(["promote", "tabular", "1", "--tracking-uri", report.tracking_uri]) == 0
    assert f"models:/{NAME}@champion -> version 1" in capsys.readouterr().out
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    x = pd.DataFrame(np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32),
                     columns=[f"f{i}" for i in range(8)])
    champion = sslcore.load_model(f"models:/{NAME}@champion", tracking_uri=report.tracking_uri)
    logged = mlflow.pyfunc.load_model(report.model_uri)
    np.testing.assert_allclose(champion.predict(x), logged.predict(x))


@pytest.mark.parametrize("args, message", [
    (["tabular", "7"], f"{NAME} has no version '7'; versions: [1"),
    (["nothing", "1"], "no registered model 'nothing' or 'sslcore-nothing'"),
])
def test_promote_refuses_what_does_not_exist(registered, capsys, args, message):
    report, _, _ = registered
    assert main(["promote", *args, "--tracking-uri", report.tracking_uri]) == 2
    assert message in capsys.readouterr().err


def test_custom_name(registered):
    report, client, _ = registered
    cfg = report.config.model_copy(update={"tracking": report.config.tracking.model_copy(
        update={"registered_model": "fraud-scorer"})})
    with mlflow.start_run(experiment_id=report.experiment_id) as run:
        got = tracking.record_best_model(run.info.run_id, report.model_uri, cfg,
                                         tuple(report.best_method.split("/")), report.results,
                                         report.results)
    assert got == "models:/fraud-scorer/1"
    assert str(client.get_model_version_by_alias("fraud-scorer", "candidate").version) == "1"


def test_no_register_through_the_cli(registered, capsys):
    report, client, tmp = registered
    path = tmp / "no_register.yaml"
    path.write_text(yaml.safe_dump(TINY | {"output_dir": str(tmp / "runs"),
                                           "evaluation": {"label_fractions": [1.0],
                                                          "seeds": [0]}}))
    assert main(["run", "tabular", "--config", str(path), "--tracking-uri",
                 report.tracking_uri, "--no-register", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Registered as" not in out and "sslcore serve models:/m-" in out
    assert [str(v.version) for v in client.search_model_versions(f"name = '{NAME}'")] == ["1"]
    newest = client.search_runs([report.experiment_id], "tags.`sslcore.kind` = 'experiment'",
                                order_by=["attributes.start_time DESC"])[0]
    assert "sslcore.registered_model" not in newest.data.tags
    assert newest.data.tags["sslcore.model_uri"].startswith("models:/m-")


def test_register_key_in_yaml_round_trips():
    from sslcore.config import TrackingConfig

    cfg = TrackingConfig.model_validate({"register": False, "registered_model": "x"})
    assert cfg.register_ is False
    assert TrackingConfig.model_validate(cfg.model_dump()) == cfg
    assert cfg.model_dump()["register"] is False  # the YAML key, not the Python name
