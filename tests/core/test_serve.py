"""`sslcore serve` from a shell without the venv on PATH: the scoring server answers the
documented request like the loaded model, and refuses bad rows with HTTP 400 naming the column.

One server per module (it takes seconds to start), stopped by its PID in a finally.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import stop_server

from tests.tiny_runs import TINY, compare_from
from sslcore.serving import serve_command

START_TIMEOUT = 180  # seconds for the server to answer /ping on a busy machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    """A user's shell: system PATH only (no .venv/bin), offline, one thread."""
    venv_bin = os.path.dirname(os.path.abspath(sys.executable))
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if p and os.path.abspath(p) != venv_bin]
    return {"PATH": os.pathsep.join(path), "HOME": os.environ.get("HOME", "/tmp"),
            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}


@contextlib.contextmanager
def scoring_server(model_uri: str, tracking_uri: str, cwd: Path) -> Iterator[str]:
    """``sslcore serve`` on a free loopback port in a clean environment; yields its base URL
    once /ping answers; stops it (its process group) by PID."""
    port = _free_port()
    cmd = [sys.executable, "-m", "sslcore", "serve", model_uri, "--port", str(port),
           "--tracking-uri", tracking_uri]
    log = cwd / f"serve-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=_clean_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sslcore serve exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                pytest.fail(f"no answer on {url}/ping in {START_TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        stop_server(proc)


def post(url: str, frame: pd.DataFrame | dict[str, Any]) -> tuple[int, Any]:
    """POST /invocations with a dataframe_split body; (HTTP status, parsed JSON)."""
    if isinstance(frame, pd.DataFrame):
        split = json.loads(frame.to_json(orient="split", index=False, date_format="iso"))
        body = {"dataframe_split": {"columns": split["columns"], "data": split["data"]}}
    else:
        body = frame
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory, make_store):
    tmp = tmp_path_factory.mktemp("serve")
    uri = make_store(tmp)
    report = compare_from(tmp, TINY, uri, tmp / "runs")
    with scoring_server("models:/sslcore-tabular@candidate", uri, tmp) as url:
        yield report, url


def _rows() -> pd.DataFrame:
    x = np.random.default_rng(0).normal(size=(5, 8))
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])


def test_served_predictions_match_the_loaded_model(served):
    report, url = served
    status, body = post(url, _rows())
    assert status == 200, body
    mlflow.set_tracking_uri(report.tracking_uri)
    expected = mlflow.pyfunc.load_model(report.model_uri).predict(_rows())
    np.testing.assert_allclose(np.asarray(body["predictions"], dtype=np.float64),
                               np.asarray(expected, dtype=np.float64), rtol=1e-5)


@pytest.mark.parametrize("change, names", [
    (lambda f: f.assign(f3=[1.0, np.nan, 2.0, 3.0, 4.0]), ["'f3'", "NaN", "row 1"]),
    (lambda f: f.drop(columns="f5"), ["f5"]),
    (lambda f: f.assign(f2=["a", "b", "c", "d", "e"]), ["f2"]),
])
def test_bad_rows_get_400_naming_the_column(served, change, names):
    _, url = served
    status, body = post(url, change(_rows()))
    assert status == 400, body
    assert all(n in body["message"] for n in names), body["message"]


def test_serve_command_puts_this_interpreter_first_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    cmd, env = serve_command("models:/m-1", "127.0.0.1", 5001, "sqlite:///x.db")
    assert cmd[:5] == [sys.executable, "-m", "mlflow", "models", "serve"]
    assert "--env-manager" in cmd and cmd[cmd.index("--env-manager") + 1] == "local"
    assert env["PATH"].split(os.pathsep) == [os.path.dirname(sys.executable), "/usr/bin", "/bin"]
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"
