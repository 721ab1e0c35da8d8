"""torchrun helpers, and DDP pretraining (gloo, CPU) against a single process."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sslcore import distributed as D
from sslcore.errors import ConfigError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKER = HERE / "pretrain_worker.py"
TIMEOUT = 150  # seconds per torchrun job; a hung rendezvous fails the test, not the suite


def _load_worker():
    spec = importlib.util.spec_from_file_location("pretrain_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return env


# --- helpers, no process group -------------------------------------------------------------

@pytest.fixture
def no_torchrun_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_rank_helpers_without_torchrun(no_torchrun_env):
    assert (D.rank(), D.world_size(), D.local_rank()) == (0, 1, 0)
    assert D.is_main_process() and not D.is_distributed()
    D.barrier()  # no-ops without a process group
    D.cleanup_distributed()


def test_rank_helpers_read_torchrun_env(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (D.rank(), D.world_size(), D.local_rank()) == (3, 4, 1)
    assert not D.is_main_process()
    assert not D.is_distributed()  # env alone is not a process group


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        D.world_size()


def test_init_distributed_single_process_is_idempotent(no_torchrun_env):
    device = D.init_distributed()
    assert device == D.init_distributed() == D.pick_device()
    assert D.init_distributed("cpu") == torch.device("cpu")
    assert not torch.distributed.is_initialized()


def test_pick_device():
    assert D.pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert D.pick_device().type == D.pick_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            D.pick_device("cuda:0")


def test_distributed_module_does_not_import_torch():
    code = "import sys, sslcore.distributed; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_torchrun_command_standalone_and_multinode():
    cmd = D.torchrun_command(["pretrain", "fraud"], nproc=2)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in cmd and cmd[-4:] == ["-m", "sslcore", "pretrain", "fraud"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "2"
    multi = D.torchrun_command(["x"], nproc=4, nnodes=2, rdzv_endpoint="10.0.0.1:29400",
                               max_restarts=3)
    assert "--standalone" not in multi
    for flag, value in [("--nnodes", "2"), ("--rdzv_backend", "c10d"),
                        ("--rdzv_endpoint", "10.0.0.1:29400"), ("--max_restarts", "3")]:
        assert multi[multi.index(flag) + 1] == value


@pytest.mark.parametrize("kwargs, match", [
    ({"nproc": 0}, "--nproc"), ({"nproc": 1, "nnodes": 0}, "--nnodes"),
    ({"nproc": 1, "nnodes": 2}, "rendezvous endpoint"),
    ({"nproc": 1, "max_restarts": -1}, "--max-restarts")])
def test_torchrun_command_rejects_bad_counts(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        D.torchrun_command(["x"], **kwargs)


class _FakeTorchrun:
    """Stands in for the torchrun subprocess; ``signal_self`` is sent to this process while
    the launcher waits, as a scheduler would."""

    last: _FakeTorchrun | None = None
    signal_self: int | None = None

    def __init__(self, cmd):
        self.cmd, self.received, self.code = cmd, [], 3
        _FakeTorchrun.last = self

    def wait(self):
        if self.signal_self is not None:
            os.kill(os.getpid(), self.signal_self)
            self.code = 1  # torchrun stopped its workers and failed
        return self.code

    def poll(self):
        return self.code

    def send_signal(self, signum):
        self.received.append(signum)


def test_launch_torchrun_returns_exit_code(monkeypatch):
    monkeypatch.setattr(D.subprocess, "Popen", _FakeTorchrun)
    assert D.launch_torchrun(["run", "fraud"], nproc=2) == 3
    assert _FakeTorchrun.last.cmd == D.torchrun_command(["run", "fraud"], nproc=2)


def test_launcher_passes_a_stop_signal_to_torchrun(monkeypatch):
    monkeypatch.setattr(D.subprocess, "Popen", _FakeTorchrun)
    monkeypatch.setattr(_FakeTorchrun, "signal_self", signal.SIGTERM)
    previous = signal.getsignal(signal.SIGTERM)
    assert D.launch_torchrun(["pretrain", "fraud"], nproc=2) == 128 + signal.SIGTERM
    assert _FakeTorchrun.last.received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is previous  # the launcher's handler is gone


# --- torchrun: 2 ranks must match 1 process ------------------------------------------------

ARGS = ["--max-steps", "12", "--batch-size", "32", "--log-every", "4"]


# BatchNorm statistics and NT-Xent negatives must cover the global batch, not each rank's half.
GLOBAL_BATCH_ARGS = [*ARGS, "--batchnorm", "--contrastive"]


def _reference(tmp_path_factory, args):
    worker = _load_worker()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ckpt = tmp_path_factory.mktemp("ref")
        return worker.run(worker.parse_args([*args, "--ckpt", str(ckpt)]))[2]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, global batch 32, no accumulation: the trajectory the ranks must reproduce."""
    return _reference(tmp_path_factory, ARGS)


@pytest.fixture(scope="module")
def global_batch_reference(tmp_path_factory):
    return _reference(tmp_path_factory, GLOBAL_BATCH_ARGS)


def _assert_same_run(got: dict, ref: dict, world: int) -> None:
    assert got["world_size"] == world
    assert got["steps"] == ref["steps"] == 12
    np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["params"], ref["params"], rtol=1e-5, atol=1e-6)


def _run(cmd: list[str], cwd: Path) -> None:
    # One more attempt when a rank died by SIGSEGV: in 2 of 22 full-suite runs on this 2-core
    # machine (2026-12-01) a gloo rank crashed in native code, never in 6 runs of the test
    # alone; cause not found. These jobs start from scratch (no --resume), so the second
    # attempt checks the same thing; any other failure fails at once.
    for _ in range(2):
        proc = subprocess.run(cmd, cwd=cwd, env=_child_env(), capture_output=True, text=True,
                              timeout=TIMEOUT)
        if proc.returncode == 0 or "SIGSEGV" not in proc.stdout + proc.stderr:
            break
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_torchrun_two_ranks_match_one_process(tmp_path, reference):
    # Each rank gets 16 rows as 2 micro-batches of 8, so this also covers DDP no_sync.
    out = tmp_path / "out.json"
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(WORKER), *ARGS, "--accum", "2", "--ckpt", str(tmp_path / "ckpt"), "--out", str(out)],
         tmp_path)
    _assert_same_run(json.loads(out.read_text()), reference, world=2)
    assert (tmp_path / "ckpt" / "last.pt").is_file()


@pytest.mark.slow
def test_batchnorm_and_contrastive_negatives_span_ranks(tmp_path, global_batch_reference):
    out = tmp_path / "out.json"
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(WORKER), *GLOBAL_BATCH_ARGS, "--ckpt", str(tmp_path / "ckpt"), "--out", str(out)],
         tmp_path)
    _assert_same_run(json.loads(out.read_text()), global_batch_reference, world=2)


@pytest.mark.slow
def test_two_nodes_rendezvous_on_localhost_match_one_process(tmp_path, global_batch_reference):
    endpoint = f"127.0.0.1:{_free_port()}"
    out = tmp_path / "out.json"
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
               "--node_rank", str(node), "--nproc_per_node", "1", "--rdzv_backend", "c10d",
               "--rdzv_endpoint", endpoint, "--rdzv_id", "sslcore-test", str(WORKER),
               *GLOBAL_BATCH_ARGS,
               "--ckpt", str(tmp_path / "ckpt"), "--out", str(out)]
        procs.append(subprocess.Popen(cmd, cwd=tmp_path, env=_child_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=TIMEOUT)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    _assert_same_run(json.loads(out.read_text()), global_batch_reference, world=2)


@pytest.mark.slow
def test_killed_rank_is_restarted_and_resumes_without_lost_or_doubled_steps(tmp_path,
                                                                          tmp_path_factory):
    args = ["--max-steps", "30", "--batch-size", "32", "--checkpoint-every", "5",
            "--batchnorm", "--contrastive"]
    ref = _reference(tmp_path_factory, args)
    out, progress, pids = tmp_path / "out.json", tmp_path / "progress.txt", tmp_path / "pids"
    pids.mkdir()
    env = _child_env() | {"SSLCORE_TEST_STEP_SLEEP": "0.15"}
    # --max_restarts 2, not 1: in 3 of 22 runs on this 2-core machine (2026-12-01) a restarted
    # gloo rank died with SIGSEGV seconds after the restart, cause not found. A second restart
    # resumes from the same checkpoint, so the checks below (no lost or doubled step, the same
    # trajectory) hold either way; the README's examples run with 2-3 restarts too.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--max_restarts", "2", str(WORKER), *args, "--resume", "--ckpt", str(tmp_path / "ckpt"),
           "--out", str(out), "--progress-file", str(progress), "--pid-dir", str(pids)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            done = int(progress.read_text() or 0) if progress.exists() else 0
            if done >= 8 and (tmp_path / "ckpt" / "last.pt").exists():
                break  # the step-5 checkpoint is on disk and steps after it ran
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before a rank could be killed"
        os.kill(int((pids / "rank1.pid").read_text()), signal.SIGKILL)
        log = proc.communicate(timeout=TIMEOUT)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log[-3000:]
    got = json.loads(out.read_text())
    assert got["resumed_from_step"] is not None and got["resumed_from_step"] % 5 == 0
    assert got["steps"] == ref["steps"] == 30 and len(got["losses"]) == 30
    np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["params"], ref["params"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_two_ranks_stream_a_sharded_parquet_pool(tmp_path):
    import polars as pl

    data = np.random.default_rng(0).standard_normal((256, 8))
    for part in range(4):  # 4 files x 4 row groups of 16 rows: 8 groups per rank
        frame = pl.DataFrame({f"f{i}": data[part * 64:(part + 1) * 64, i] for i in range(8)})
        frame.write_parquet(tmp_path / f"part{part}.parquet", row_group_size=16)
    out = tmp_path / "out.json"
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(WORKER), "--max-steps", "1000", "--epochs", "2", "--batch-size", "32",
          "--parquet-dir", str(tmp_path), "--ckpt", str(tmp_path / "ckpt"), "--out", str(out)],
         tmp_path)
    got = json.loads(out.read_text())
    assert got["world_size"] == 2 and got["steps"] == 2 * 256 // 32 and got["epochs_completed"] == 2
    assert np.isfinite(got["losses"]).all()
