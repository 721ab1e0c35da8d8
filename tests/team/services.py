"""Helpers of the team-server tests: free ports, PostgreSQL's binaries, mlflow/serve.sh on
loopback (stopped by its process group's id), and a tiny comparison config."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import stop_server

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "mlflow" / "serve.sh"
MLFLOW = Path(sys.executable).parent / "mlflow"
SERVER_START_TIMEOUT = 120  # seconds; MLflow imports and migrates its schema on start
PG_USER, PG_PASSWORD, PG_DATABASE = "mlflow", "pg-test-secret", "mlflow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """PostgreSQL's server binaries: on PATH, or where Debian puts them (not on PATH there)."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
               default=None)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def run_checked(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")
    if proc.returncode:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")


@contextlib.contextmanager
def serve(data: Path, **env: str) -> Iterator[str]:
    """Run mlflow/serve.sh with ``env`` on a free loopback port; yield its URL.

    The server runs in its own process group (serve.sh execs MLflow, which starts uvicorn),
    stopped by that group's id: SIGTERM, then SIGKILL if it lingers.
    """
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env |= {"PORT": str(port), "DATA": str(data), "MLFLOW": str(MLFLOW)} | env
    log = data.parent / f"{data.name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", str(SERVE)], env=full_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except (OSError, urllib.error.URLError):
                if proc.poll() is not None:
                    pytest.fail(f"serve.sh exited {proc.returncode} on start:\n"
                                f"{log.read_text()[-4000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"serve.sh did not answer /health in {SERVER_START_TIMEOUT} s:\n"
                                f"{log.read_text()[-4000:]}")
                time.sleep(0.5)
        yield url
    finally:
        stop_server(proc, grace=20)  # and uvicorn's worker, if it outlived MLflow


def tiny_config(output_dir: Path) -> dict:
    """A complete but tiny tabular comparison: one SSL head, one baseline, one seed."""
    return {"vertical": "tabular", "output_dir": str(output_dir),
            "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 600, "n_features": 6}},
            "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}],
            "baselines": [{"name": "hist_gbm", "params": {"max_iter": 20, "max_iter_no_val": 20}}],
            "pretrain": {"epochs": 1, "batch_size": 64, "min_steps": 0},
            "evaluation": {"label_fractions": [1.0], "seeds": [0]}}


# Children of one tiny run: the pretraining run and one downstream run per method.
TINY_CHILD_RUNS = 1 + 2
