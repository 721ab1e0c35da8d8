"""Experiments as MLflow users expect them: the runs view, useful columns, artifacts by the store.

Part of :mod:`sslcore.tracking`, the MLflow writer.

* MLflow 3's UI opens an experiment on its GenAI pages (traces): the experiment tag
  ``mlflow.experimentKind`` says it is machine learning (``custom_model_development``, the
  value the UI's own "experiment type" selector writes), and the address ``sslcore ui``
  prints adds ``workflowType=machine_learning`` (the UI's GenAI / Model training switch,
  GenAI by default), which opens the Runs tab.
* The runs table shows no metric column until one is chosen. A saved view of the UI (the
  experiment tag ``mlflow.sharedViewState.<key>``, what the UI's "Share" button writes) holds
  the columns worth reading; the address ``sslcore ui`` prints opens it.
* A sqlite store keeps its artifacts in ``mlartifacts/`` beside the database file (or
  ``tracking.artifact_root``), never in the directory the command happened to run from.
"""

from __future__ import annotations

import json
import logging
import os
import re
from urllib.parse import urlparse

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MACHINE_LEARNING = "custom_model_development"
VIEW_KEY = "sslcore"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
TAG_PRIMARY_METRIC = "sslcore.primary_metric"
ARTIFACTS_DIR = "mlartifacts"

logger = logging.getLogger(__name__)


def default_artifact_root(uri: str) -> str | None:
    """``mlartifacts/`` beside a sqlite store's file (absolute); None for other stores (a
    server or a file store keeps MLflow's own default)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return os.path.join(os.path.dirname(os.path.abspath(path)), ARTIFACTS_DIR)


def _absolute(location: str) -> str:
    """A configured artifact root: a URI as given, a local path made absolute."""
    return location if urlparse(location).scheme else os.path.abspath(os.path.expanduser(location))


def runs_view(primary_metric: str) -> dict[str, object]:
    """The saved view's UI state: the primary metric on test and validation, the fit's
    seconds, the arm, method, label fraction and seed of each child run, and its model."""
    metrics = [f"test_{primary_metric}", f"val_{primary_metric}", "fit_seconds"]
    tags = ["sslcore.arm", "sslcore.method", "sslcore.label_fraction", "sslcore.seed"]
    columns = ([f"metrics.`{m}`" for m in metrics] + [f"tags.`{t}`" for t in tags]
               + ["attributes.`Models`"])
    return {"selectedColumns": columns}


def ensure_experiment(client, name: str, uri: str, artifact_root: str | None = None,
                      primary_metric: str | None = None) -> str:
    """The id of experiment ``name``, created with the machine-learning kind and its artifact
    location (``<root>/<name>``, the root ``artifact_root``, else :func:`default_artifact_root`)
    if it does not exist.

    An existing experiment keeps its artifact location (MLflow fixes it at creation); a
    configured ``artifact_root`` that differs is reported. Its kind tag is added if missing
    and the saved view follows ``primary_metric``.
    """
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    root = _absolute(artifact_root) if artifact_root else default_artifact_root(uri)
    # one folder per experiment under the root, as MLflow's default root has (by id there)
    location = f"{root.rstrip('/')}/{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}" if root else None
    if exp is None:
        try:
            exp_id = client.create_experiment(name, artifact_location=location,
                                              tags={EXPERIMENT_KIND_TAG: MACHINE_LEARNING})
        except MlflowException as exc:  # created by a concurrent run in between
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)
        else:
            exp = client.get_experiment(exp_id)
    elif artifact_root and exp.artifact_location != location:
        logger.warning("MLflow experiment %r keeps its artifacts in %s (fixed when it was "
                       "created); tracking.artifact_root %s applies to new experiments only",
                       name, exp.artifact_location, artifact_root)
    if exp.lifecycle_stage == "active":
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MACHINE_LEARNING)
        if primary_metric and exp.tags.get(TAG_PRIMARY_METRIC) != primary_metric:
            client.set_experiment_tag(exp.experiment_id, VIEW_TAG,
                                      json.dumps(runs_view(primary_metric)))
            client.set_experiment_tag(exp.experiment_id, TAG_PRIMARY_METRIC, primary_metric)
    return exp.experiment_id


def runs_page(base_url: str, experiment_id: str, view: bool) -> str:
    """The address of an experiment's Runs tab, in the Model training workflow, with the
    saved view if the experiment has it."""
    share = f"&viewStateShareKey={VIEW_KEY}" if view else ""
    return f"{base_url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning{share}"


def prepare_ui(uri: str) -> list[tuple[str, str, bool]]:
    """Before ``sslcore ui``: every experiment holding sslcore runs gets the machine-learning
    kind if it has none (experiments made by an older sslcore). Returns (name, id, has the
    saved view) for those experiments, newest first."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    out = []
    for exp in client.search_experiments(order_by=["creation_time DESC"]):
        ours = TAG_PRIMARY_METRIC in exp.tags or bool(client.search_runs(
            [exp.experiment_id], "tags.`sslcore.kind` != ''", max_results=1))
        if not ours:
            continue
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MACHINE_LEARNING)
        out.append((exp.name, exp.experiment_id, VIEW_TAG in exp.tags))
    return out
