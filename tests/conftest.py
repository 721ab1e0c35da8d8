"""Shared test setup: offline, quiet, and an MLflow store per test in a temp dir."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny tensors and trees: extra threads only spin, and CI machines are small and shared.
# Set before any test module imports torch; CLI subprocesses get 1 thread too (cli_env).
os.environ.setdefault("OMP_NUM_THREADS", "1")

CLI_TIMEOUT = 300  # seconds per `python -m sslcore ...`; a hang fails the test, not the suite


@pytest.fixture(scope="session")
def make_store(tmp_path_factory) -> Callable[[Path], str]:
    """``make_store(directory)`` -> the URI of a fresh, empty sqlite MLflow store there.

    Creating a store runs MLflow's schema migrations, 2-5 s on a busy machine; they run once
    per session into a template, and each store is a copy of it (the same empty, current
    schema, and the same store MLflow would create itself).
    """
    from mlflow import MlflowClient

    template = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(template.parent)  # the Default experiment's artifact root, never used
        MlflowClient(f"sqlite:///{template}").search_experiments()  # creates the tables

    def make(directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        db = directory / "mlflow.db"
        shutil.copyfile(template, db)
        return f"sqlite:///{db}"

    return make


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch, make_store):
    """A fresh sqlite MLflow store; artifacts and checkpoints land under tmp_path."""
    monkeypatch.chdir(tmp_path)
    uri = make_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: one thread, CPU only, offline, not under torchrun."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                        "MASTER_PORT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT",
                        "SSLCORE_RUN_RECORD", "MLFLOW_TRACKING_URI")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    return env


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def stop_server(proc: subprocess.Popen, grace: float = 30) -> None:
    """Stop a server started with ``start_new_session=True`` by its process group: SIGTERM,
    then SIGKILL after ``grace`` seconds, and SIGKILL again for a worker that outlived it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _kill_group(proc.pid)
    proc.wait()


@pytest.fixture
def sslcore_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``sslcore_cli(*args, cwd=...)`` runs ``python -m sslcore *args`` with a timeout.

    The command runs in its own process group, so a timeout also kills what it started
    (torchrun and its ranks), by that group's id, and fails the test.
    """

    def run(*args: str, cwd: Path,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "sslcore", *map(str, args)]
        with subprocess.Popen(cmd, cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                out, err = proc.communicate()
                pytest.fail(f"`sslcore {' '.join(map(str, args))}` ran over {timeout} s:\n"
                            f"{out[-3000:]}{err[-5000:]}")
            except BaseException:  # Ctrl-C: the group does not get the terminal's SIGINT
                _kill_group(proc.pid)
                raise
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    return run
