"""MLflow: the experiment's parent run, child runs, artifacts and the served model.

The one module that writes to MLflow: run lifecycle (parent and child runs, FAILED on an
exception), tags, params, metrics, artifacts and the logged model. Orchestration
(``experiment``, ``pretraining``, the CLI's torchrun launcher) calls it; data, training and
evaluation never do (an import-linter contract). Only rank 0 talks to MLflow. Child runs are written with MlflowClient in three calls each
(create, log_batch, terminate) because a sweep makes a hundred of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_MAX_PARAM_LEN = 6000


def resolve_uri(uri: str | None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def flatten(prefix: str, obj: Any) -> dict[str, str]:
    """Nested config -> flat MLflow params (``pretrain.lr``, ``heads.0.name``...)."""
    out: dict[str, str] = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out |= flatten(f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(obj, list) and obj and all(isinstance(v, Mapping) for v in obj):
        for i, v in enumerate(obj):
            out |= flatten(f"{prefix}.{i}", v)
    else:
        text = json.dumps(obj) if isinstance(obj, list | dict) else str(obj)
        out[prefix] = text[:_MAX_PARAM_LEN]
    return out


@contextmanager
def parent_run(uri: str | None, experiment: str, run_name: str, tags: dict[str, str],
               params: dict[str, str], run_id: str | None = None) -> Iterator[Any]:
    """Start the experiment's parent run (or reopen ``run_id``); FAILED if the body raises."""
    import mlflow

    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI; put the caller's back after,
    # so a later call without a URI (or a child process) does not inherit this run's store.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(resolve_uri(uri))
    try:
        mlflow.set_experiment(experiment)
        start = {"run_id": run_id} if run_id else {"run_name": run_name, "tags": tags}
        with mlflow.start_run(**start) as run:
            log_params(run.info.run_id, params)
            yield run
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def log_params(run_id: str, params: dict[str, str]) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Param

    client = MlflowClient()
    items = [Param(k[:250], v) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow caps params per batch
        client.log_batch(run_id, params=items[i:i + 100])


def log_child_run(parent_id: str, experiment_id: str, name: str, tags: dict[str, str],
                  params: dict[str, str], metrics: dict[str, float]) -> str:
    """One finished child run (a method at a label fraction and seed) in three calls."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient()
    run = client.create_run(experiment_id, run_name=name,
                            tags={"mlflow.parentRunId": parent_id} | tags)
    now = int(time.time() * 1000)
    status = "FAILED"
    try:
        client.log_batch(run.info.run_id,
                         metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         params=[Param(k, str(v)) for k, v in params.items()],
                         tags=[RunTag("mlflow.runName", name)])
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


@contextmanager
def child_run(name: str, tags: dict[str, str], run_id: str | None = None) -> Iterator[Any]:
    """A nested run under the active parent (or reopen ``run_id``); FAILED on error."""
    import mlflow

    start = {"run_id": run_id} if run_id else {"run_name": name, "tags": tags}
    with mlflow.start_run(nested=True, **start) as run:
        yield run


# --- one MLflow run across torchrun restarts ------------------------------------------------
# torchrun restarts every worker of a job after a failure (--max-restarts). Rank 0 notes the
# run ids it opened next to the checkpoints, keyed by the torchrun job id (the same across
# restarts), so a restarted job reopens them instead of starting a second run. The launcher
# (`sslcore pretrain --nproc`) also gets a copy through SSLCORE_RUN_RECORD, so that it can
# mark the runs FAILED when torchrun gives up.
RUN_RECORD_ENV = "SSLCORE_RUN_RECORD"


def _record_paths(ckpt_dir: str | os.PathLike[str]) -> list[str]:
    paths = []
    job = os.environ.get("TORCHELASTIC_RUN_ID")
    if job:
        paths.append(os.path.join(ckpt_dir, f"mlflow_runs.{job}.json"))
    if os.environ.get(RUN_RECORD_ENV):
        paths.append(os.environ[RUN_RECORD_ENV])
    return paths


def runs_to_reopen(ckpt_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Run ids an earlier attempt of this torchrun job opened ({} on a first attempt)."""
    if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) == 0:
        return {}
    paths = _record_paths(ckpt_dir)
    if not paths or not os.path.isfile(paths[0]):
        return {}
    with open(paths[0]) as fh:
        return json.load(fh)


def record_run(ckpt_dir: str | os.PathLike[str], key: str, run_id: str) -> None:
    """Note ``run_id`` under ``key`` for restarts of this torchrun job (atomic writes)."""
    for path in _record_paths(ckpt_dir):
        record = {}
        if os.path.isfile(path):
            with open(path) as fh:
                record = json.load(fh)
        record |= {key: run_id, "tracking_uri": resolve_uri(None)}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, path)


def fail_recorded_runs(path: str) -> list[str]:
    """Mark the runs a failed torchrun job left RUNNING as FAILED; return their ids."""
    if not os.path.isfile(path):
        return []
    with open(path) as fh:
        record = json.load(fh)
    from mlflow import MlflowClient

    client = MlflowClient(record.get("tracking_uri"))
    failed = []
    for key, run_id in record.items():
        if key != "tracking_uri" and client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "FAILED")
            failed.append(run_id)
    return failed


def metrics_logger(run_id: str):  # -> Callable[[dict[str, float], int], None]
    """A callback for the pretraining loop: metrics at a step, logged in one batch."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()

    def log(metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, step)
                                          for k, v in metrics.items()])

    return log


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Metrics of a run (its latest values, or at ``step``), in one batch."""
    logger = metrics_logger(run_id)
    logger(dict(metrics), 0 if step is None else step)


def set_tags(run_id: str, tags: Mapping[str, str]) -> None:
    """Tags of a run; values are cut to MLflow's 5,000-character limit."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value)[:5000])


def log_artifact(run_id: str, path: str | os.PathLike[str], artifact_dir: str | None = None) -> None:
    """One local file as an artifact of a run."""
    from mlflow import MlflowClient

    MlflowClient().log_artifact(run_id, str(path), artifact_dir)


def log_artifacts(run_id: str, directory: str | os.PathLike[str]) -> None:
    """Every file under a local directory as artifacts of a run (same relative paths)."""
    from mlflow import MlflowClient

    MlflowClient().log_artifacts(run_id, str(directory))


def log_best_model(method: Any, x_example: Any, feature_names: list[str] | None,
                   class_names: list[str] | None) -> str:
    """Log a fitted Method under the active run as the pyfunc ``model`` (with a signature and
    pinned requirements); return the model URI."""
    import logging
    import warnings

    import mlflow
    import pandas as pd
    import sklearn
    import torch
    from mlflow.models import infer_signature

    import sslcore
    from sslcore.serving import SSLCoreModel

    wrapper = SSLCoreModel(method, x_example.shape[1:], feature_names, class_names)
    if feature_names and x_example.ndim == 2:
        example: Any = pd.DataFrame(x_example, columns=feature_names)
    else:
        example = x_example
    signature = infer_signature(example, wrapper.predict(None, example))
    requirements = [f"sslcore=={sslcore.__version__}", f"torch=={torch.__version__.split('+')[0]}",
                    f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"]
    # MLflow warns that python models are cloudpickled; that is deliberate here (the model
    # object holds torch and scikit-learn parts), so keep the demo output clean.
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = mlflow.pyfunc.log_model(name="model", python_model=wrapper,
                                           signature=signature, pip_requirements=requirements)
    finally:
        mlflow_logger.setLevel(level)
    return info.model_uri
