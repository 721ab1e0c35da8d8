"""Fixtures of the team-server tests: a throw-away PostgreSQL cluster on a free loopback port,
stopped by its PID when the module is done."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.team.services import (PG_DATABASE, PG_PASSWORD, PG_USER, free_port, has_user,
                                 postgres_bin, run_checked, wait_gone)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free loopback port; yields the database URI.

    PostgreSQL refuses to run as root, so as root (CI) the cluster runs as the `postgres` user
    that Debian's package creates, through runuser, in a directory that user owns.
    """
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
                    "apt-get install postgresql (.ci/run does)")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="sslcore-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres" if has_user("postgres") else "nobody")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", owner.pw_name, "--"]
    data, port = base / "data", free_port()
    pwfile = base / "pwfile"
    pwfile.write_text(PG_PASSWORD)
    if as_user:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    pid = None
    try:
        run_checked([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER,
                     f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"])
        run_checked([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
                     "-l", str(base / "server.log"),
                     # throw-away data: no fsync, so start, commits and shutdown are quick
                     "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
                     "start"])
        pid = int((data / "postmaster.pid").read_text().split()[0])
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, password=PG_PASSWORD,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")
        yield f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/{PG_DATABASE}"
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
            if not wait_gone(pid, 30):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 10)
        shutil.rmtree(base, ignore_errors=True)


