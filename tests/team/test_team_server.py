"""mlflow/serve.sh as a team server: runs and users in PostgreSQL, artifacts proxied by the
server, a login for every request, and two users' runs at the same time."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

from tests.conftest import cli_env
from tests.team.services import MLFLOW, SERVE, TINY_CHILD_RUNS, free_port, serve, tiny_config

ADMIN = ("admin", "admin-test-secret")  # MLflow wants 12+ characters
USERS = {"alice": "alice-test-secret", "bob": "bob-test-secret-1"}
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=10"
CREATE_USER = "/api/2.0/mlflow/users/create"
UPDATE_PASSWORD = "/api/2.0/mlflow/users/update-password"
RUN_TIMEOUT = 240  # seconds per `sslcore run`; a hang fails the test


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    data = tmp_path_factory.mktemp("team") / "server"
    with serve(data, BACKEND=postgres, SSLCORE_MLFLOW_ADMIN_PASSWORD=ADMIN[1]) as url:
        yield url, data


def request(url: str, auth: tuple[str, str] | None = None, body: dict | None = None,
            method: str | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON body) of a GET, or of a POST when ``body`` is given."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {}


@pytest.mark.slow
def test_every_request_needs_a_login_and_users_live_in_postgres(team_server, postgres):
    url, data = team_server
    assert request(url + SEARCH)[0] == 401
    assert request(url + SEARCH, auth=("admin", "not-the-password"))[0] == 401
    assert request(url + SEARCH, auth=ADMIN)[0] == 200
    import psycopg

    with psycopg.connect(postgres) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
        admins = conn.execute("SELECT username FROM users WHERE is_admin").fetchall()
    assert {"experiments", "runs", "users", "alembic_version_auth"} <= tables
    assert admins == [("admin",)]
    assert not list(data.rglob("*.db"))  # no sqlite store on the side
    assert ADMIN[1] not in (data / "basic_auth.ini").read_text()  # the password stays in env


@pytest.mark.slow
def test_a_user_changes_their_password(team_server):
    url, _ = team_server
    old, new = ("carol", "carol-first-secret"), ("carol", "carol-second-secret")
    assert request(url + CREATE_USER, ADMIN, {"username": old[0], "password": old[1]})[0] == 200
    change = {"username": "carol", "password": new[1], "current_password": old[1]}
    assert request(url + UPDATE_PASSWORD, old, change, method="PATCH")[0] == 200
    # The login cache (AUTH_CACHE_SECONDS) must not keep the old password working.
    assert request(url + SEARCH, old)[0] == 401
    assert request(url + SEARCH, new)[0] == 200


@pytest.mark.slow
def test_first_start_needs_an_admin_password(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("SSLCORE_MLFLOW_ADMIN_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD")}
    env |= {"DATA": str(tmp_path / "server"), "PORT": str(free_port()), "MLFLOW": str(MLFLOW)}
    typo = subprocess.run(["bash", str(SERVE)], env=env | {"AUTH": "basci"},
                          capture_output=True, text=True, timeout=30)
    assert typo.returncode == 2 and "AUTH=basci" in typo.stderr
    proc = subprocess.Popen(["bash", str(SERVE)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" in out  # MLflow names the setting; serve.sh maps ours


@pytest.mark.slow
def test_two_users_run_at_once(team_server, tmp_path, monkeypatch):
    url, data = team_server
    for user, password in USERS.items():
        created = request(url + CREATE_USER, ADMIN, {"username": user, "password": password})
        assert created[0] == 200
    assert request(url + CREATE_USER, ("alice", USERS["alice"]),
                   {"username": "mallory", "password": "mallory-secret-1"})[0] == 403

    procs = []
    try:
        for user, password in USERS.items():  # started together: each logs while the other does
            work = tmp_path / user
            work.mkdir()
            cfg = {k: v for k, v in tiny_config(work / "runs").items() if k != "vertical"}
            (work / "tiny.yaml").write_text(yaml.safe_dump(cfg))
            env = cli_env() | {"MLFLOW_TRACKING_USERNAME": user,
                               "MLFLOW_TRACKING_PASSWORD": password}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "sslcore", "run", "tabular", "--config", "tiny.yaml",
                 "--tracking-uri", url, "--no-progress"], cwd=work, env=env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True))
        for proc in procs:
            out, _ = proc.communicate(timeout=RUN_TIMEOUT)
            assert proc.returncode == 0, out[-4000:]
            # a server's own UI, not `sslcore ui` (which browses a local store)
            assert f"See the run at: {url}/#/experiments/" in out, out[-2000:]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    from mlflow import MlflowClient

    client = MlflowClient(url)
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, "tags.`sslcore.kind` = 'experiment'")
    # One experiment, created by whichever user came first: the other may log into it (EDIT).
    assert len(parents) == 2 and len({p.info.experiment_id for p in parents}) == 1
    for parent in parents:
        assert parent.info.status == "FINISHED"
        children = client.search_runs(
            experiments, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        assert len(children) == TINY_CHILD_RUNS
        assert all(c.info.status == "FINISHED" for c in children)
        report = client.download_artifacts(parent.info.run_id, "comparison.md", str(tmp_path))
        text = open(report).read()
        assert "linear_probe" in text and "hist_gbm" in text
    # Proxied: the files are in the server's artifact store, not on the clients' disks.
    assert len(list((data / "artifacts").rglob("comparison.md"))) == 2
