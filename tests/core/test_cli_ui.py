"""`sslcore ui` starts the MLflow UI on loopback, answers HTTP 200, and stops with its group."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import cli_env, stop_server

pytestmark = pytest.mark.slow
STARTUP_TIMEOUT = 120  # seconds: one gunicorn/uvicorn worker and the store's migrations


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_store_and_stops(tmp_path, make_store):
    uri = make_store(tmp_path)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sslcore", "ui", "--tracking-uri", uri, "--port", str(port)],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    try:
        deadline, status = time.monotonic() + STARTUP_TIMEOUT, None
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    status = resp.status
                    break
            time.sleep(1)
        assert proc.poll() is None, f"sslcore ui exited early:\n{proc.stdout.read()}"
        assert status == 200
        body = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=5",
            timeout=10).read().decode()
        assert "experiments" in body  # the API answers from the store we gave it
    finally:
        stop_server(proc)
    deadline = time.monotonic() + 30  # the server's workers exit after the launcher
    while time.monotonic() < deadline and _serving(port):
        time.sleep(0.5)
    assert not _serving(port), "the UI still answers after its process group was stopped"


def _serving(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
