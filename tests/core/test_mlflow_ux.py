"""What a user sees of a run in MLflow: the runs view, names, times, the description, and
artifacts beside the store whatever the working directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.tiny_runs import TINY, compare_from
from sslcore import tracking
from sslcore.tracking.experiments import default_artifact_root, ensure_experiment, prepare_ui

# Tiny: 2 pretraining steps, one SSL head and one baseline, one seed, two fractions.


@pytest.fixture(scope="module")
def run_elsewhere(tmp_path_factory, make_store):
    """A run whose store is in one directory, started from another."""
    store, cwd = tmp_path_factory.mktemp("store"), tmp_path_factory.mktemp("cwd")
    uri = make_store(store)
    report = compare_from(cwd, TINY, uri, store / "runs")
    return report, MlflowClient(uri), store, cwd


def _runs(client, report):
    return client.search_runs([report.experiment_id], max_results=100)


def test_experiment_opens_on_runs_with_metric_columns(run_elsewhere):
    report, client, _, _ = run_elsewhere
    exp = client.get_experiment(report.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(exp.tags[f"mlflow.sharedViewState.{tracking.VIEW_KEY}"])
    assert {"metrics.`test_auprc`", "metrics.`val_auprc`", "metrics.`fit_seconds`",
            "tags.`sslcore.method`"} <= set(view["selectedColumns"])


def test_artifacts_go_beside_the_store_not_the_working_directory(run_elsewhere):
    report, client, store, cwd = run_elsewhere
    exp = client.get_experiment(report.experiment_id)
    assert exp.artifact_location == str(store / "mlartifacts" / "sslcore-tabular")
    assert list(cwd.iterdir()) == []  # no mlruns/, no mlartifacts/
    assert (Path(exp.artifact_location) / report.run_id / "artifacts" / "comparison.md").is_file()


def test_run_names_say_what_they_are(run_elsewhere):
    report, client, _, _ = run_elsewhere
    names = {r.data.tags["sslcore.kind"]: [] for r in _runs(client, report)}
    for r in _runs(client, report):
        names[r.data.tags["sslcore.kind"]].append(r.info.run_name)
    assert re.fullmatch(r"tabular \d{4}-\d\d-\d\d \d\d:\d\d", names["experiment"][0])
    assert names["pretrain"] == ["pretrain | scarf | mlp"]
    assert sorted(names["downstream"]) == [
        "linear_probe | ssl | f=0.5 | s=0", "linear_probe | ssl | f=1 | s=0",
        "logreg_raw | baseline | f=0.5 | s=0", "logreg_raw | baseline | f=1 | s=0"]


def test_child_run_duration_is_the_fit_time(run_elsewhere):
    report, client, _, _ = run_elsewhere
    down = [r for r in _runs(client, report) if r.data.tags["sslcore.kind"] == "downstream"]
    for r in down:
        ms = r.info.end_time - r.info.start_time
        assert abs(ms - 1000 * r.data.metrics["fit_seconds"]) <= 1, r.info.run_name


def test_parent_description_is_the_headline_table(run_elsewhere, tmp_path):
    report, client, _, _ = run_elsewhere
    parent = client.get_run(report.run_id)
    md = Path(client.download_artifacts(report.run_id, "comparison.md", str(tmp_path)))
    assert parent.data.tags["mlflow.note.content"] == md.read_text()
    # the logged model's scores on the parent's row of the runs table
    assert {"test_auprc", "val_auprc"} <= set(parent.data.metrics)


def test_a_long_description_is_cut_at_a_line(run_elsewhere):
    report, client, _, _ = run_elsewhere
    run = client.create_run(report.experiment_id)
    tracking.set_description(run.info.run_id, "| row |\n" * 2000, "see comparison.md")
    note = client.get_run(run.info.run_id).data.tags["mlflow.note.content"]
    assert len(note) <= 8000 and note.endswith("(cut here; see comparison.md)\n")
    client.delete_run(run.info.run_id)


@pytest.mark.parametrize("uri, expected", [
    ("sqlite:////data/team/x.db", "/data/team/mlartifacts"),
    ("sqlite:///rel/x.db", str(Path("rel").resolve() / "mlartifacts")),
    ("http://mlflow.internal:5000", None),
    ("sqlite:///:memory:", None),
])
def test_default_artifact_root(uri, expected):
    assert default_artifact_root(uri) == expected


def test_configured_artifact_root_and_existing_experiments(tmp_path, make_store, caplog):
    uri = make_store(tmp_path / "store")
    client = MlflowClient(uri)
    exp_id = ensure_experiment(client, "team a/b", uri, str(tmp_path / "shared"), "auroc")
    assert client.get_experiment(exp_id).artifact_location == str(tmp_path / "shared" / "team_a_b")
    # an existing experiment keeps its location; a different root is reported
    assert ensure_experiment(client, "team a/b", uri, str(tmp_path / "other")) == exp_id
    assert "applies to new experiments only" in caplog.text


def test_ui_marks_older_sslcore_experiments_as_machine_learning(tmp_path, make_store):
    uri = make_store(tmp_path)
    client = MlflowClient(uri)
    old = client.create_experiment("sslcore-old", artifact_location=str(tmp_path / "a"))
    client.create_run(old, tags={"sslcore.kind": "experiment"})
    other = client.create_experiment("someone-elses", artifact_location=str(tmp_path / "b"))
    assert [(name, i) for name, i, _ in prepare_ui(uri)] == [("sslcore-old", old)]
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    assert "mlflow.experimentKind" not in client.get_experiment(other).tags
