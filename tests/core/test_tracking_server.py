"""mlflow/serve.sh on loopback: an experiment logs through the server and reads back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

import sslcore

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    # Login (AUTH=basic, serve.sh's default) is tested in tests/team; this test is the store.
    env = os.environ | {"PORT": str(port), "DATA": str(tmp_path / "server"), "AUTH": "none",
                        "MLFLOW": str(Path(sys.executable).parent / "mlflow")}
    proc = subprocess.Popen(["bash", str(ROOT / "mlflow" / "serve.sh")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("mlflow server exited during start-up")
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer /health in 90 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker, by PID
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_experiment_through_team_server(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = {"vertical": "tabular", "output_dir": str(tmp_path / "runs"),
           "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 800, "n_features": 6}},
           "heads": [{"name": "linear_probe"}],
           "baselines": [{"name": "hist_gbm", "params": {"max_iter": 30, "max_iter_no_val": 30}}],
           "pretrain": {"epochs": 1, "batch_size": 64, "min_steps": 0},
           "evaluation": {"label_fractions": [1.0], "seeds": [0]}}
    report = sslcore.compare(cfg, tracking_uri=server, progress=False)
    client = MlflowClient(server)
    run = client.get_run(report.run_id)
    assert run.info.status == "FINISHED"
    assert "comparison.md" in {a.path for a in client.list_artifacts(report.run_id)}
