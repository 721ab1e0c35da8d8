"""MLflow: the experiment's parent run, child runs, artifacts and the served model.

The one module that writes to MLflow: run lifecycle (parent and child runs, FAILED on an
exception, KILLED on a stop signal), tags, params, metrics, artifacts and the logged model.
Orchestration (``experiment``, ``pretraining``, the CLI's torchrun launcher) calls it; data,
training and evaluation never do (an import-linter contract). Only rank 0 talks to MLflow.
Child runs are written with MlflowClient in three calls each (create, log_batch, terminate)
because a sweep makes a hundred of them.

Crash safety. Every run is tagged at start with the host, PID (and the PID's start time) and
``sslcore.config_hash`` (the resolved config, the data and the plugin versions); the parent
run's ``sslcore.heartbeat`` (Unix seconds) is refreshed every :data:`HEARTBEAT_SECONDS` by a
thread of the process that owns it. Every start of a parent run first marks KILLED, with the
tag ``sslcore.orphaned`` saying why, the runs left RUNNING by a process that is gone: on this
host, a PID that no longer runs (or now runs another program); on another host, a run of the
same config hash whose heartbeat is older than :data:`HEARTBEAT_TIMEOUT_SECONDS`. With
``resume`` the newest parent run of the same config hash and kind is reattached if it did not
finish (KILLED or FAILED): its id, params and metric history continue.

The package by concept: this module, the runs and what they record; ``ownership``, who owns
a run (identity, heartbeat, stops, orphans, reattaching); ``restarts``, one run across
torchrun restarts; ``experiments``, the experiment as the UI shows it (its kind, a saved view
of the runs table, artifacts beside a sqlite store); ``models``, the logged model and its
Model Registry versions and aliases.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from sslcore import interrupts
from sslcore.tracking.ownership import (  # noqa: F401 - re-exported: the tracking API
    HEARTBEAT_SECONDS,
    HEARTBEAT_TIMEOUT_SECONDS,
    TAG_CONFIG_HASH,
    TAG_HEARTBEAT,
    TAG_HOST,
    TAG_ORPHANED,
    TAG_PID,
    TAG_PID_START,
    TAG_RESUME_COMMAND,
    TAG_STOP_REASON,
    _CONFIG_HASH,
    _heartbeat,
    _identity,
    _tag_start,
    close_orphans,
    find_interrupted,
    finished_children,
    latest_child,
    owned,
)
from sslcore.tracking.experiments import (  # noqa: F401 - re-exported: the tracking API
    EXPERIMENT_KIND_TAG,
    MACHINE_LEARNING,
    VIEW_KEY,
    default_artifact_root,
    ensure_experiment,
    prepare_ui,
)
from sslcore.tracking.models import (  # noqa: F401 - re-exported: the tracking API
    CANDIDATE,
    CHAMPION,
    log_best_model,
    promote,
    record_best_model,
    register_best_model,
)
from sslcore.tracking.restarts import (  # noqa: F401 - re-exported: the tracking API
    RUN_RECORD_ENV,
    fail_recorded_runs,
    record_run,
    runs_to_reopen,
)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_MAX_PARAM_LEN = 6000
_MAX_TAG_LEN = 8000  # MLflow's limit on a tag value
logger = logging.getLogger(__name__)


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
               params: dict[str, str], run_id: str | None = None, *,
               config_hash: str | None = None, resume: bool = False,
               artifact_root: str | None = None) -> Iterator[Any]:
    """Start the experiment's parent run (or reopen ``run_id``); FAILED if the body raises,
    KILLED with ``sslcore.stop_reason`` and ``sslcore.resume_command`` on a stop signal.

    A new experiment is created for the UI's runs view, with its artifacts in
    ``artifact_root`` or beside a sqlite store (:func:`ensure_experiment`). Before the run,
    the runs of this experiment left RUNNING by a process that is gone are marked KILLED
    (:func:`close_orphans`). With ``resume`` (and no ``run_id``), the newest parent run of the
    same ``config_hash`` and ``sslcore.kind`` that did not finish is reopened.
    """
    import mlflow
    from mlflow import MlflowClient

    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI; put the caller's back after,
    # so a later call without a URI (or a child process) does not inherit this run's store.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(resolve_uri(uri))
    try:
        client = MlflowClient()
        exp = mlflow.set_experiment(experiment_id=ensure_experiment(
            client, experiment, resolve_uri(uri), artifact_root,
            tags.get("sslcore.primary_metric")))
        for orphan, why in close_orphans(exp.experiment_id, config_hash):
            logger.warning("marked MLflow run %s KILLED: %s", orphan, why)
        if run_id is None and resume and config_hash:
            run_id = find_interrupted(exp.experiment_id, config_hash, tags.get("sslcore.kind"))
        start = {"run_id": run_id} if run_id else {"run_name": run_name, "tags": tags}
        with mlflow.start_run(**start) as run, owned(run.info.run_id):
            rid = run.info.run_id
            saved_hash, _CONFIG_HASH[0] = _CONFIG_HASH[0], config_hash
            try:
                _tag_start(client, rid, config_hash, reopened=run_id is not None, parent=True)
                log_params(rid, params)
                with _heartbeat(client, rid):
                    yield run
                with suppress(Exception):  # finished: nothing to resume
                    client.delete_tag(rid, TAG_RESUME_COMMAND)
            finally:
                _CONFIG_HASH[0] = saved_hash
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
    """One finished child run (a method at a label fraction and seed) in three calls.

    The run is created after the fit; its start time is set back by the metric
    ``fit_seconds``, so the UI's duration is the fit's. A stop signal waits for the three
    calls (a child is logged whole or not at all); only a SIGKILL in between leaves it
    RUNNING, and the next start marks it KILLED.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient()
    now = int(time.time() * 1000)
    start = now - int(round(1000 * max(float(metrics.get("fit_seconds", 0.0)), 0.0)))
    with interrupts.deferred():
        run = client.create_run(experiment_id, start_time=start, run_name=name,
                                tags={"mlflow.parentRunId": parent_id} | _identity(None) | tags)
        interrupts.fault_point("child_logging", _count_child())  # the crash tests' hook
        status = "FAILED"
        try:
            client.log_batch(run.info.run_id,
                             metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                             params=[Param(k, str(v)) for k, v in params.items()],
                             tags=[RunTag("mlflow.runName", name)])
            status = "FINISHED"
        finally:
            client.set_terminated(run.info.run_id, status, end_time=now)
    return run.info.run_id


_CHILDREN_LOGGED = [0]


def _count_child() -> int:
    _CHILDREN_LOGGED[0] += 1
    return _CHILDREN_LOGGED[0]


@contextmanager
def child_run(name: str, tags: dict[str, str], run_id: str | None = None) -> Iterator[Any]:
    """A nested run under the active parent (or reopen ``run_id``); FAILED on error, KILLED
    (with the stop tags) on a stop signal."""
    import mlflow
    from mlflow import MlflowClient

    start = {"run_id": run_id} if run_id else {"run_name": name, "tags": tags}
    with mlflow.start_run(nested=True, **start) as run, owned(run.info.run_id):
        client = MlflowClient()
        _tag_start(client, run.info.run_id, _CONFIG_HASH[0], reopened=run_id is not None)
        yield run
        if run_id is not None:  # finished after an interruption: nothing to resume
            with suppress(Exception):
                client.delete_tag(run.info.run_id, TAG_RESUME_COMMAND)


def metrics_logger(run_id: str, resumed: bool = False):  # -> Callable[[dict, int], None]
    """A callback for the pretraining loop: metrics at a step, logged in one batch.

    ``resumed``: the run is reopened after an interruption; steps it already logged (those
    re-run between the last checkpoint and the interruption, with the same values: the
    resume is exact) are not logged again, so its history holds every step once.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    done = -1
    if resumed:
        done = max((m.step for m in client.get_metric_history(run_id, "loss")), default=-1)

    def log(metrics: dict[str, float], step: int) -> None:
        if step <= done:
            return
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, step)
                                          for k, v in metrics.items()])

    return log


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Metrics of a run (its latest values, or at ``step``), in one batch."""
    logger = metrics_logger(run_id)
    logger(dict(metrics), 0 if step is None else step)


def set_tags(run_id: str, tags: Mapping[str, str], limit: int = 5000) -> None:
    """Tags of a run; values are cut to ``limit`` characters."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value)[:limit])


def set_description(run_id: str, markdown: str, more: str = "") -> None:
    """The run's description on its page in the UI (the tag ``mlflow.note.content``), cut at
    a line to MLflow's tag limit with ``more`` saying where the rest is."""
    if len(markdown) > _MAX_TAG_LEN:
        cut = markdown[:_MAX_TAG_LEN - 200].rsplit("\n", 1)[0]
        markdown = f"{cut}\n\n(cut here; {more or 'the rest is in the artifacts'})\n"
    set_tags(run_id, {"mlflow.note.content": markdown}, limit=_MAX_TAG_LEN)


def log_artifact(run_id: str, path: str | os.PathLike[str], artifact_dir: str | None = None) -> None:
    """One local file as an artifact of a run."""
    from mlflow import MlflowClient

    MlflowClient().log_artifact(run_id, str(path), artifact_dir)


def log_artifacts(run_id: str, directory: str | os.PathLike[str]) -> None:
    """Every file under a local directory as artifacts of a run (same relative paths)."""
    from mlflow import MlflowClient

    MlflowClient().log_artifacts(run_id, str(directory))
