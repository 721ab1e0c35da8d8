"""Who owns an MLflow run: identity tags, the heartbeat, stops, orphans and reattaching.

Every run is tagged at start with the host, PID (and the PID's start time) and
``sslcore.config_hash``; the parent run's ``sslcore.heartbeat`` is refreshed every
:data:`HEARTBEAT_SECONDS`. A run left RUNNING by a process that is gone is an orphan
(:func:`close_orphans`); an interrupted parent of the same config is reattached on
``--resume`` (:func:`find_interrupted`). Part of :mod:`sslcore.tracking`, the MLflow writer.
"""

from __future__ import annotations

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

logger = logging.getLogger(__name__)

TAG_HOST, TAG_PID, TAG_PID_START = "sslcore.host", "sslcore.pid", "sslcore.pid_start"
TAG_CONFIG_HASH, TAG_HEARTBEAT = "sslcore.config_hash", "sslcore.heartbeat"
TAG_STOP_REASON, TAG_RESUME_COMMAND = "sslcore.stop_reason", "sslcore.resume_command"
TAG_ORPHANED = "sslcore.orphaned"
HEARTBEAT_SECONDS = 60.0
HEARTBEAT_TIMEOUT_SECONDS = 15 * 60.0  # a run on another host is declared gone after this
_OWN_RUNS: set[str] = set()  # runs this process has open: never orphans
_CONFIG_HASH: list[str | None] = [None]  # the open parent run's, inherited by its children


@contextmanager
def owned(run_id: str) -> Iterator[None]:
    """The body of an open run of this process: never an orphan while it lasts; FAILED if
    the body raises, KILLED (with the stop tags) on a stop signal."""
    _OWN_RUNS.add(run_id)
    try:
        yield
    except BaseException as exc:
        _end_failed(run_id, exc)
        raise
    finally:
        _OWN_RUNS.discard(run_id)


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

