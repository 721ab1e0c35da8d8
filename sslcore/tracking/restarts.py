"""One MLflow run across torchrun restarts; the launcher closes the runs when torchrun gives up.

Part of :mod:`sslcore.tracking`, the MLflow writer.
"""

from __future__ import annotations

import json
import os

from sslcore.tracking.ownership import TAG_RESUME_COMMAND, TAG_STOP_REASON

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
    from sslcore.tracking import resolve_uri

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
