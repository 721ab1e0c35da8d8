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
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from sslcore import interrupts
from sslcore.errors import RunInterrupted

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_MAX_PARAM_LEN = 6000
logger = logging.getLogger(__name__)

TAG_HOST, TAG_PID, TAG_PID_START = "sslcore.host", "sslcore.pid", "sslcore.pid_start"
TAG_CONFIG_HASH, TAG_HEARTBEAT = "sslcore.config_hash", "sslcore.heartbeat"
TAG_STOP_REASON, TAG_RESUME_COMMAND = "sslcore.stop_reason", "sslcore.resume_command"
TAG_ORPHANED = "sslcore.orphaned"
HEARTBEAT_SECONDS = 60.0
HEARTBEAT_TIMEOUT_SECONDS = 15 * 60.0  # a run on another host is declared gone after this
_OWN_RUNS: set[str] = set()  # runs this process has open: never orphans
_CONFIG_HASH: list[str | None] = [None]  # the open parent run's, inherited by its children


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
               config_hash: str | None = None, resume: bool = False) -> Iterator[Any]:
    """Start the experiment's parent run (or reopen ``run_id``); FAILED if the body raises,
    KILLED with ``sslcore.stop_reason`` and ``sslcore.resume_command`` on a stop signal.

    Before, the runs of this experiment left RUNNING by a process that is gone are marked
    KILLED (:func:`close_orphans`). With ``resume`` (and no ``run_id``), the newest parent run
    of the same ``config_hash`` and ``sslcore.kind`` that did not finish is reopened.
    """
    import mlflow
    from mlflow import MlflowClient

    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI; put the caller's back after,
    # so a later call without a URI (or a child process) does not inherit this run's store.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(resolve_uri(uri))
    try:
        exp = mlflow.set_experiment(experiment)
        client = MlflowClient()
        for orphan, why in close_orphans(exp.experiment_id, config_hash):
            logger.warning("marked MLflow run %s KILLED: %s", orphan, why)
        if run_id is None and resume and config_hash:
            run_id = find_interrupted(exp.experiment_id, config_hash, tags.get("sslcore.kind"))
        start = {"run_id": run_id} if run_id else {"run_name": run_name, "tags": tags}
        with mlflow.start_run(**start) as run:
            rid = run.info.run_id
            _OWN_RUNS.add(rid)
            saved_hash, _CONFIG_HASH[0] = _CONFIG_HASH[0], config_hash
            try:
                _tag_start(client, rid, config_hash, reopened=run_id is not None, parent=True)
                log_params(rid, params)
                with _heartbeat(client, rid):
                    yield run
                with suppress(Exception):  # finished: nothing to resume
                    client.delete_tag(rid, TAG_RESUME_COMMAND)
            except BaseException as exc:
                _end_failed(rid, exc)
                raise
            finally:
                _OWN_RUNS.discard(rid)
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

    A stop signal waits for the three calls (a child is logged whole or not at all); only a
    SIGKILL in between leaves it RUNNING, and the next start marks it KILLED.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient()
    with interrupts.deferred():
        run = client.create_run(experiment_id, run_name=name,
                                tags={"mlflow.parentRunId": parent_id} | _identity(None) | tags)
        interrupts.fault_point("child_logging", _count_child())  # the crash tests' hook
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
    with mlflow.start_run(nested=True, **start) as run:
        rid = run.info.run_id
        _OWN_RUNS.add(rid)
        try:
            client = MlflowClient()
            _tag_start(client, rid, _CONFIG_HASH[0], reopened=run_id is not None)
            yield run
            if run_id is not None:  # finished after an interruption: nothing to resume
                with suppress(Exception):
                    client.delete_tag(rid, TAG_RESUME_COMMAND)
        except BaseException as exc:
            _end_failed(rid, exc)
            raise
        finally:
            _OWN_RUNS.discard(rid)


# --- who owns a run: identity, heartbeat, stops, orphans, reattaching -----------------------

def _proc_stat(pid: int) -> tuple[str | None, str | None]:
    """(state, start time in clock ticks since boot) of process ``pid`` from /proc (Linux);
    (None, None) where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None, None


def _process_gone(pid: int, started: str | None) -> bool:
    """True when process ``pid`` of this host has exited (or the PID now names another)."""
    if pid == os.getpid():
        return True  # this process reuses the PID (a container's PID 1): the owner is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, and belongs to another user
    state, now = _proc_stat(pid)
    if state == "Z":
        return True  # exited, not yet reaped by its parent
    return bool(started and now and started != now)


def _identity(config_hash: str | None) -> dict[str, str]:
    out = {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid())}
    started = _proc_stat(os.getpid())[1]
    if started:
        out[TAG_PID_START] = started
    if config_hash or _CONFIG_HASH[0]:
        out[TAG_CONFIG_HASH] = config_hash or _CONFIG_HASH[0]
    return out


def _tag_start(client: Any, run_id: str, config_hash: str | None, *, reopened: bool,
               parent: bool = False) -> None:
    """Identity tags (and, on a parent, the first heartbeat and how to resume); a reopened
    run drops its stop tags and counts the interruption."""
    tags = _identity(config_hash)
    if parent:
        tags[TAG_HEARTBEAT] = str(int(time.time()))
        command = interrupts.resume_command()
        if command:
            tags[TAG_RESUME_COMMAND] = command
    if reopened:
        old = client.get_run(run_id).data.tags
        why = old.get(TAG_ORPHANED) or old.get(TAG_STOP_REASON)
        if why:
            tags["sslcore.last_interruption"] = why
        tags["sslcore.resumed"] = str(int(old.get("sslcore.resumed", "0")) + 1)
        for key in (TAG_ORPHANED, TAG_STOP_REASON):
            if key in old:
                client.delete_tag(run_id, key)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


@contextmanager
def _heartbeat(client: Any, run_id: str) -> Iterator[None]:
    """Refresh the run's ``sslcore.heartbeat`` every HEARTBEAT_SECONDS while the body runs."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            with suppress(Exception):  # a missed beat is not worth failing the run
                client.set_tag(run_id, TAG_HEARTBEAT, str(int(time.time())))

    thread = threading.Thread(target=beat, name="sslcore-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


def _end_failed(run_id: str, exc: BaseException) -> None:
    """End the active run after ``exc``: KILLED (with the stop tags) after a stop signal,
    FAILED otherwise; a stop signal meanwhile does not cut this short."""
    import mlflow

    with interrupts.shielded():
        if isinstance(exc, RunInterrupted | KeyboardInterrupt):
            _end_stopped(run_id, exc)
            return
        try:
            mlflow.end_run("FAILED")
        except Exception as err:  # noqa: BLE001 - never hide the failure itself
            logger.warning("could not mark MLflow run %s FAILED: %s", run_id, err)


def _end_stopped(run_id: str, exc: BaseException) -> None:
    """Mark a run KILLED after a stop signal, saying why and how to resume."""
    import mlflow
    from mlflow import MlflowClient

    if isinstance(exc, RunInterrupted):
        reason, command = exc.reason, exc.resume_command
        exc.killed_runs.append(run_id)
    else:
        reason, command = "interrupted: KeyboardInterrupt (Ctrl-C twice)", \
            interrupts.resume_command()
    try:  # never hide the stop behind a tracking error
        client = MlflowClient()
        client.set_tag(run_id, TAG_STOP_REASON, reason[:500])
        if command:
            client.set_tag(run_id, TAG_RESUME_COMMAND, command[:5000])
    except Exception as err:  # noqa: BLE001
        logger.warning("could not tag MLflow run %s as stopped: %s", run_id, err)
    try:
        mlflow.end_run("KILLED")
    except Exception as err:  # noqa: BLE001
        logger.warning("could not mark MLflow run %s KILLED: %s", run_id, err)


def _why_gone(tags: Mapping[str, str], config_hash: str | None, now: float) -> str | None:
    """Why the process that owns a RUNNING run is gone, or None if it may still run."""
    host, pid = tags.get(TAG_HOST), tags.get(TAG_PID, "")
    if not host or not pid.isdigit():
        return None  # not started by this version of sslcore: cannot tell
    if host == socket.gethostname():
        if _process_gone(int(pid), tags.get(TAG_PID_START)):
            return f"process {pid} on {host} that ran it is gone (killed, or the machine " \
                   "restarted)"
        return None
    beat = tags.get(TAG_HEARTBEAT, "")
    if config_hash and tags.get(TAG_CONFIG_HASH) == config_hash and beat.isdigit() \
            and now - int(beat) > HEARTBEAT_TIMEOUT_SECONDS:
        return f"no heartbeat from process {pid} on {host} for {now - int(beat):.0f} s " \
               f"(limit {HEARTBEAT_TIMEOUT_SECONDS:.0f} s): the node is lost"
    return None


def close_orphans(experiment_id: str, config_hash: str | None = None, now: float | None = None,
                  tracking_uri: str | None = None) -> list[tuple[str, str]]:
    """Mark KILLED the runs of an experiment whose process is gone; return (run id, why).

    A RUNNING run is orphaned when its host is this one and its PID has exited (or names
    another process now), or, for a parent run of ``config_hash`` on another host, when its
    heartbeat is older than HEARTBEAT_TIMEOUT_SECONDS; its RUNNING children go with it. Runs
    this process has open, and runs without sslcore's identity tags, are left alone.
    ``tracking_uri``: the store (default: the current one).
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    now = time.time() if now is None else now
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'",
                                 max_results=5000)
    gone: dict[str, str] = {}
    for run in running:
        if run.info.run_id not in _OWN_RUNS:
            why = _why_gone(run.data.tags, config_hash, now)
            if why:
                gone[run.info.run_id] = why
    for run in running:
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent in gone and run.info.run_id not in gone and run.info.run_id not in _OWN_RUNS:
            gone[run.info.run_id] = f"its parent run {parent} was orphaned: {gone[parent]}"
    for run_id, why in gone.items():
        client.set_tag(run_id, TAG_ORPHANED, why[:500])
        client.set_tag(run_id, TAG_STOP_REASON, f"orphaned: {why}"[:500])
        client.set_terminated(run_id, "KILLED")
    return list(gone.items())


def find_interrupted(experiment_id: str, config_hash: str, kind: str | None) -> str | None:
    """The newest parent run of ``config_hash`` and ``kind`` if it did not finish (KILLED or
    FAILED), to reopen on ``--resume``; None when it finished or there is none."""
    from mlflow import MlflowClient

    query = f"tags.`{TAG_CONFIG_HASH}` = '{config_hash}'"
    if kind:
        query += f" and tags.`sslcore.kind` = '{kind}'"
    runs = [r for r in MlflowClient().search_runs([experiment_id], query, max_results=200,
                                                  order_by=["attributes.start_time DESC"])
            if "mlflow.parentRunId" not in r.data.tags]
    if not runs:
        return None
    latest = runs[0]
    if latest.info.status in ("KILLED", "FAILED"):
        return latest.info.run_id
    if latest.info.status == "RUNNING":
        tags = latest.data.tags
        logger.warning("MLflow run %s of this config is RUNNING (process %s on %s): starting "
                       "a new run beside it; two runs of one config share its checkpoint "
                       "directory", latest.info.run_id, tags.get(TAG_PID), tags.get(TAG_HOST))
    return None


def latest_child(experiment_id: str, parent_id: str, kind: str) -> tuple[str, str] | None:
    """(run id, status) of the newest child run of ``kind`` under ``parent_id``, or None."""
    from mlflow import MlflowClient

    runs = MlflowClient().search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_id}' and "
                         f"tags.`sslcore.kind` = '{kind}'",
        max_results=1, order_by=["attributes.start_time DESC"])
    return (runs[0].info.run_id, runs[0].info.status) if runs else None


def finished_children(experiment_id: str, parent_id: str
                      ) -> dict[tuple[str, str, str, int], dict[str, float]]:
    """The FINISHED downstream child runs under ``parent_id``, keyed by (arm, method, label
    fraction as logged, seed): their metrics, for a resumed sweep to reuse."""
    from mlflow import MlflowClient

    runs = MlflowClient().search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_id}' and "
                         "tags.`sslcore.kind` = 'downstream' and attributes.status = 'FINISHED'",
        max_results=50000, order_by=["attributes.start_time ASC"])
    out: dict[tuple[str, str, str, int], dict[str, float]] = {}
    for run in runs:
        tags = run.data.tags
        key = (tags["sslcore.arm"], tags["sslcore.method"], tags["sslcore.label_fraction"],
               int(tags["sslcore.seed"]))
        out[key] = dict(run.data.metrics)
    return out


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


def fail_recorded_runs(path: str, status: str = "FAILED", reason: str | None = None,
                       resume_command: str | None = None) -> list[str]:
    """Mark the runs a failed (or stopped: ``status`` KILLED) torchrun job left RUNNING;
    return their ids. ``reason`` and ``resume_command`` become their stop tags."""
    if not os.path.isfile(path):
        return []
    with open(path) as fh:
        record = json.load(fh)
    from mlflow import MlflowClient

    client = MlflowClient(record.get("tracking_uri"))
    failed = []
    for key, run_id in record.items():
        if key != "tracking_uri" and client.get_run(run_id).info.status == "RUNNING":
            if reason:
                client.set_tag(run_id, TAG_STOP_REASON, reason[:500])
            if resume_command:
                client.set_tag(run_id, TAG_RESUME_COMMAND, resume_command[:5000])
            client.set_terminated(run_id, status)
            failed.append(run_id)
    return failed


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
