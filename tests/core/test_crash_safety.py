"""Crash safety: kills, stop signals and a full disk never leave a half-recorded experiment.

The runs are the real command (`python -m sslcore run`) in a subprocess with its own process
group; ``SSLCORE_FAULT`` (sslcore.interrupts, a test hook) makes it SIGKILL itself, signal
itself or pause at a named point. Every scenario ends with the same checks against one
uninterrupted run: no MLflow run left RUNNING, one parent run, one pretrain run with the same
loss history, every (arm, method, fraction, seed) FINISHED exactly once with the same scores,
and the same report files.
"""

from __future__ import annotations

import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from sslcore import interrupts, tracking
from sslcore.errors import CheckpointError, RunInterrupted
from sslcore.tracking import ownership
from sslcore.train.checkpoint import load_checkpoint
from tests.conftest import CLI_TIMEOUT, _kill_group, cli_env

CONFIG = {
    "vertical": "tabular",
    "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 1500, "n_features": 8}},
    "pretrain": {"steps": 40, "checkpoint_every": 5, "log_every": 5, "batch_size": 128},
    "finetune": {"steps": 20},
    "evaluation": {"label_fractions": [0.1, 1.0], "seeds": [0]},
}
N_CHILDREN = 6 * 2  # the tabular recipe's 3 heads + 3 baselines, at 2 fractions, 1 seed
REPORT_FILES = ("comparison.csv", "comparison.md", "results_per_seed.csv")


def _setup(tmp: Path, store) -> tuple[str, Path]:
    """A store and a config (checkpoints under tmp/runs) in ``tmp``."""
    uri = store(tmp)
    (tmp / "c.yaml").write_text(yaml.safe_dump(CONFIG | {"output_dir": str(tmp / "runs")}))
    return uri, tmp / "runs"


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sslcore", *args]


def _cli(tmp: Path, *args: str, fault: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``sslcore *args`` in its own process group, with ``SSLCORE_FAULT=fault``."""
    extra = ({interrupts.FAULT_ENV: fault} if fault else {}) | (env or {})
    with subprocess.Popen(_cmd(*args), cwd=tmp, env=cli_env() | extra, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=CLI_TIMEOUT)
        except BaseException:
            _kill_group(proc.pid)
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _run(tmp: Path, uri: str, *extra: str, fault: str | None = None):
    return _cli(tmp, "run", "tabular", "--config", "c.yaml", "--tracking-uri", uri,
                "--no-progress", *extra, fault=fault)


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("sslcore-tabular")
    return [] if experiment is None else client.search_runs([experiment.experiment_id],
                                                            max_results=1000)


def _outcome(uri: str, tmp: Path) -> dict:
    """What a finished experiment recorded, after checking it is whole and not doubled."""
    client = MlflowClient(uri)
    runs = _runs(uri)
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    (parent,) = [r for r in runs if r.data.tags.get("sslcore.kind") == "experiment"]
    assert parent.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    (pre,) = [r for r in children if r.data.tags["sslcore.kind"] == "pretrain"]
    assert pre.info.status == "FINISHED"
    down = [r for r in children if r.data.tags["sslcore.kind"] == "downstream"
            and r.info.status == "FINISHED"]
    scores = {}
    for r in down:
        t = r.data.tags
        key = (t["sslcore.arm"], t["sslcore.method"], t["sslcore.label_fraction"],
               t["sslcore.seed"])
        assert key not in scores, f"child {key} logged twice"
        scores[key] = {k: v for k, v in r.data.metrics.items() if k.startswith(("test_", "val_"))}
    assert len(scores) == N_CHILDREN
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    tmp.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in REPORT_FILES:
        local = client.download_artifacts(parent.info.run_id, name, str(tmp))
        files[name] = Path(local).read_text()
    history = sorted((m.step, m.value) for m in client.get_metric_history(pre.info.run_id, "loss"))
    assert parent.data.tags["sslcore.model_uri"].startswith("models:/")
    return {"parent": parent, "pretrain_metrics": {k: pre.data.metrics[k]
                                                   for k in ("final_loss", "steps")},
            "loss_history": history, "scores": scores, "artifacts": artifacts, "files": files}


def _assert_same(got: dict, ref: dict) -> None:
    assert got["pretrain_metrics"] == ref["pretrain_metrics"]
    assert got["loss_history"] == ref["loss_history"]  # every logged step once, same values
    assert got["scores"] == ref["scores"]
    assert got["artifacts"] == ref["artifacts"]  # nothing missing, nothing left over
    assert got["files"] == ref["files"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, make_store) -> dict:
    """One uninterrupted run of the same config and data."""
    tmp = tmp_path_factory.mktemp("reference")
    uri, _ = _setup(tmp, make_store)
    done = _run(tmp, uri)
    assert done.returncode == 0, done.stderr[-3000:]
    return _outcome(uri, tmp / "downloads")


@pytest.mark.slow
def test_kill_9_at_every_point_then_resume_matches_an_uninterrupted_run(tmp_path, make_store,
                                                                       reference):
    uri, runs_dir = _setup(tmp_path, make_store)
    # Loading data: nothing recorded yet.
    assert _run(tmp_path, uri, fault="load_data").returncode == -signal.SIGKILL
    assert _runs(uri) == []
    # Mid-pretraining, after step 12: the checkpoint of step 10 is on disk; the dead
    # process's runs are still RUNNING (what the next start cleans up).
    assert _run(tmp_path, uri, "--resume", fault="pretrain_step:12").returncode == -9
    (ckpt,) = runs_dir.rglob("last.pt")
    assert load_checkpoint(ckpt)["step"] == 10
    assert {r.info.status for r in _runs(uri)} == {"RUNNING"}
    # Between two children of the sweep, then inside the logging of a child (left RUNNING),
    # then between the parent's report files and its model.
    for fault in ("child:3", "child_logging:2", "artifacts"):
        assert _run(tmp_path, uri, "--resume", fault=fault).returncode == -9, fault
        parents = [r for r in _runs(uri) if r.data.tags["sslcore.kind"] == "experiment"]
        assert len(parents) == 1, f"{fault}: --resume opened a second parent run"
    assert list(ckpt.parent.glob("*.tmp")) == []  # no partial checkpoint
    done = _run(tmp_path, uri, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]

    got = _outcome(uri, tmp_path / "downloads")
    _assert_same(got, reference)
    assert got["parent"].data.tags["sslcore.resumed"] == "4"
    # The child cut mid-logging is KILLED as an orphan and never counted.
    killed = [r for r in _runs(uri) if r.info.status == "KILLED"]
    assert len(killed) == 1 and "is gone" in killed[0].data.tags[tracking.TAG_ORPHANED]
    assert killed[0].data.tags["sslcore.kind"] == "downstream"
    assert f"MLflow parent run {got['parent'].info.run_id}" in done.stdout


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


@pytest.mark.slow
def test_sigterm_mid_pretraining_checkpoints_marks_killed_and_resumes(tmp_path, make_store,
                                                                      reference):
    uri, runs_dir = _setup(tmp_path, make_store)
    args = ["run", "tabular", "--config", "c.yaml", "--tracking-uri", uri, "--no-progress"]
    log_out, log_err = tmp_path / "out.txt", tmp_path / "err.txt"
    env = cli_env() | {interrupts.FAULT_ENV: "pretrain_step:12:pause"}  # SIGSTOP after step 12
    with log_out.open("w") as out, log_err.open("w") as err, subprocess.Popen(
            _cmd(*args), cwd=tmp_path, env=env, stdout=out, stderr=err,
            start_new_session=True) as proc:
        try:
            deadline = time.monotonic() + CLI_TIMEOUT
            while _state(proc.pid) != "T" and proc.poll() is None:
                assert time.monotonic() < deadline, "never reached pretraining step 12"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGTERM)  # what a scheduler's preemption sends
            os.kill(proc.pid, signal.SIGCONT)
            proc.wait(timeout=CLI_TIMEOUT)
        finally:
            _kill_group(proc.pid)
    stderr = log_err.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    resume = f"sslcore {shlex.join(args)} --resume"
    assert "sslcore: interrupted: SIGTERM at pretraining step 12 of 40" in stderr
    assert f"sslcore: resume with: {resume}" in stderr
    (ckpt,) = runs_dir.rglob("last.pt")
    assert load_checkpoint(ckpt)["step"] == 12  # written at the moment it stopped
    runs = _runs(uri)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"KILLED"}
    for r in runs:
        assert r.data.tags[tracking.TAG_STOP_REASON].startswith(
            "interrupted: SIGTERM at pretraining step 12 of 40")
        assert r.data.tags[tracking.TAG_RESUME_COMMAND] == resume

    done = _cli(tmp_path, *shlex.split(resume)[1:])
    assert done.returncode == 0, done.stderr[-3000:]
    got = _outcome(uri, tmp_path / "downloads")
    _assert_same(got, reference)
    assert got["parent"].info.run_id in {r.info.run_id for r in runs}  # reattached
    assert {r.info.run_id for r in _runs(uri) if r.data.tags["sslcore.kind"] != "downstream"} \
        == {r.info.run_id for r in runs}


@pytest.mark.slow
def test_full_disk_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, tracking_uri,
                                                                   reference, monkeypatch,
                                                                   single_thread):
    # In-process, one thread like the reference's CLI process: CI runs pytest with 2 threads,
    # and a 2-thread reduction order moves the loss in its 6th digit.
    import torch

    import sslcore

    cfg = CONFIG | {"output_dir": str(tmp_path / "runs")}
    real_save, calls = torch.save, []

    def save_until_the_disk_fills(obj, fh, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the checkpoint of step 15: a few bytes, then the disk is full
            fh.write(b"\x80\x02partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, fh, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(torch, "save", save_until_the_disk_fills)
        with pytest.raises(CheckpointError, match="No space left on device.*free disk space"):
            sslcore.compare(cfg, progress=False)
    (ckpt,) = (tmp_path / "runs").rglob("last.pt")
    assert load_checkpoint(ckpt)["step"] == 10  # the previous checkpoint, intact
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.pt"]  # no partial file
    runs = _runs(tracking_uri)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FAILED"}
    (pre,) = [r for r in runs if r.data.tags["sslcore.kind"] == "pretrain"]
    assert "CheckpointError" in pre.data.tags[tracking.TAG_STOP_REASON]

    report = sslcore.compare(cfg, resume=True, progress=False)  # space freed: go on
    got = _outcome(tracking_uri, tmp_path / "downloads")
    assert report.run_id == got["parent"].info.run_id in {r.info.run_id for r in runs}
    _assert_same(got, reference)


# --- the pieces, in process ----------------------------------------------------------------

def test_a_stop_signal_waits_for_the_deferred_section_and_raises_once():
    previous = signal.getsignal(signal.SIGTERM)
    with interrupts.stop_on_signals("sslcore run x --resume"):
        with pytest.raises(RunInterrupted) as stopped:
            with interrupts.deferred("while logging"):
                os.kill(os.getpid(), signal.SIGTERM)
                assert interrupts.requested() == signal.SIGTERM  # flagged, not raised
        assert stopped.value.exit_code == 143 and "while logging" in str(stopped.value)
        assert stopped.value.resume_command == "sslcore run x --resume"
        os.kill(os.getpid(), signal.SIGTERM)  # repeated while stopping: ignored
        interrupts.check()  # raised once already
    assert signal.getsignal(signal.SIGTERM) is previous and interrupts.requested() is None

    with interrupts.stop_on_signals(), pytest.raises(RunInterrupted, match="SIGINT"):
        interrupts.set_phase("during the sweep")
        os.kill(os.getpid(), signal.SIGINT)  # outside a deferred section: at once
    with interrupts.stop_on_signals(), pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C twice aborts


def test_fault_hook_is_inert_unless_named(monkeypatch):
    monkeypatch.delenv(interrupts.FAULT_ENV, raising=False)
    interrupts.fault_point("pretrain_step", 3)
    monkeypatch.setenv(interrupts.FAULT_ENV, "pretrain_step:4")
    interrupts.fault_point("pretrain_step", 3)  # another step
    interrupts.fault_point("child", 4)  # another point
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    interrupts.fault_point("pretrain_step", 4)  # never after a torchrun restart


def test_a_start_marks_orphans_killed_and_leaves_live_runs_alone(tracking_uri):
    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("orphans")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host, now = socket.gethostname(), time.time()
        started = ownership._proc_stat(alive.pid)[1]

        def run(name, tags, parent=None):
            extra = {"mlflow.parentRunId": parent} if parent else {}
            return client.create_run(exp, run_name=name, tags=tags | extra).info.run_id

        ours = {tracking.TAG_CONFIG_HASH: "h1"}
        dead = run("dead", ours | {tracking.TAG_HOST: host, tracking.TAG_PID: str(gone.pid)})
        child = run("child of dead", {}, parent=dead)
        live = run("live", ours | {tracking.TAG_HOST: host, tracking.TAG_PID: str(alive.pid),
                                   tracking.TAG_PID_START: started})
        reused = run("pid reused", ours | {tracking.TAG_HOST: host,
                                           tracking.TAG_PID: str(alive.pid),
                                           tracking.TAG_PID_START: "1"})
        remote = ours | {tracking.TAG_HOST: "node-7", tracking.TAG_PID: "12"}
        stale = run("lost node", remote | {tracking.TAG_HEARTBEAT: str(int(now) - 3600)})
        fresh = run("busy node", remote | {tracking.TAG_HEARTBEAT: str(int(now) - 30)})
        other = run("lost node, other config", remote | {tracking.TAG_CONFIG_HASH: "h2",
                                                         tracking.TAG_HEARTBEAT: "1"})
        untagged = run("not ours", {})

        closed = dict(tracking.close_orphans(exp, "h1", now=now, tracking_uri=tracking_uri))
        assert set(closed) == {dead, child, reused, stale}
        assert "is gone" in closed[dead] and "no heartbeat from process 12 on node-7" in \
            closed[stale]
        for run_id in (dead, child, reused, stale):
            info = client.get_run(run_id)
            assert info.info.status == "KILLED"
            assert info.data.tags[tracking.TAG_ORPHANED] == closed[run_id]
        for run_id in (live, fresh, other, untagged):
            assert client.get_run(run_id).info.status == "RUNNING"
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.slow
def test_torchrun_ranks_stop_at_the_same_step_and_the_agent_restarts_them(tmp_path, make_store):
    uri = make_store(tmp_path)
    cfg = CONFIG | {"output_dir": str(tmp_path / "runs"),
                    "pretrain": {"steps": 12, "checkpoint_every": 100, "log_every": 2,
                                 "batch_size": 128}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    args = ["pretrain", "tabular", "--config", "c.yaml", "--nproc", "2", "--max-restarts", "1",
            "--tracking-uri", uri, "--no-progress"]
    # Only rank 1 gets SIGTERM, after its step 3; rank 0 learns of it through step 4's
    # all-reduce, so both stop after step 4: rank 0 checkpoints, marks the runs KILLED and
    # prints how to resume. The worker exits count as a failure, so torchrun restarts them
    # (the hook does not fire again): they reopen the same runs and finish from step 4.
    done = _cli(tmp_path, *args, env={interrupts.FAULT_ENV: "pretrain_step:3:term",
                                      interrupts.FAULT_RANK_ENV: "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "sslcore: interrupted: SIGTERM at pretraining step 4 of 12" in done.stderr
    assert f"sslcore: resume with: sslcore {shlex.join(args)} --resume" in done.stderr
    runs = _runs(uri)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    (pre,) = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert pre.data.tags["sslcore.last_interruption"].startswith(
        "interrupted: SIGTERM at pretraining step 4 of 12")
    assert pre.data.tags["sslcore.resumed"] == "1" and pre.data.metrics["steps"] == 12
    steps = [m.step for m in MlflowClient(uri).get_metric_history(pre.info.run_id, "loss")]
    assert sorted(steps) == [2, 4, 6, 8, 10, 12]  # each step once
    (ckpt,) = (tmp_path / "runs").rglob("last.pt")
    state = load_checkpoint(ckpt)
    assert state["step"] == 12 and state["world_size"] == 2 and len(state["losses"]) == 12
