"""The pretraining loop, single process: learning, data order, metrics, validation, resume."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sslcore.config import PretrainConfig
from sslcore.errors import CheckpointError, ConfigError, DataError, SSLCoreError
from sslcore.train.checkpoint import load_checkpoint
from sslcore.train.collapse import CollapseWarning
from sslcore.train.pretrain import PretrainResult, pretrain_encoder, warmup_cosine

HERE = Path(__file__).resolve().parent
WORKER = HERE / "pretrain_worker.py"


def _load_worker():
    spec = importlib.util.spec_from_file_location("pretrain_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


W = _load_worker()


@pytest.fixture(autouse=True)
def one_process_one_thread(monkeypatch):
    # Same thread count as the worker subprocesses, so float sums match them bit for bit.
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(**kw) -> PretrainConfig:
    base = dict(epochs=100, max_steps=12, batch_size=32, lr=1e-2, warmup_steps=2, bf16=False,
                checkpoint_every=100, log_every=5, seed=0)
    return PretrainConfig(**{**base, **kw})


def _train(tmp_path, cfg=None, task=None, data=None, **kw) -> tuple[W.ToyTask, PretrainResult]:
    task = task if task is not None else W.ToyTask()
    data = data if data is not None else W.make_data()
    result = pretrain_encoder(task, data, cfg or _cfg(), checkpoint_dir=tmp_path / "ckpt",
                              progress=False, **kw)
    return task, result


def _params(task: nn.Module) -> torch.Tensor:
    return torch.cat([t.detach().flatten().double() for t in task.state_dict().values()])


class RecordingTask(W.ToyTask):
    """Records which rows (column 0 holds the row index) each micro-batch contained."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[int]] = []

    def loss(self, batch, generator):
        self.seen.append(batch[:, 0].long().tolist())
        return super().loss(batch, generator)


def _indexed_data(n: int) -> np.ndarray:
    data = W.make_data(n)
    data[:, 0] = np.arange(n)
    return data


def test_loss_decreases_and_result_is_complete(tmp_path):
    _, result = _train(tmp_path, _cfg(max_steps=80, log_every=1000))
    assert result.steps == 80 and len(result.losses) == 80
    assert np.mean(result.losses[-8:]) < 0.8 * np.mean(result.losses[:8])  # deterministic: 0.71
    assert result.epochs_completed == 10  # 256 rows / 32 = 8 steps per epoch
    assert result.final_checkpoint == tmp_path / "ckpt" / "last.pt"
    state = load_checkpoint(result.final_checkpoint)
    assert (state["step"], state["epoch"], state["pos"]) == (80, 10, 0)
    assert state["config"]["batch_size"] == 32 and len(state["losses"]) == 80
    assert result.wall_time > 0 and result.samples_per_second > 0
    assert result.resumed_from_step is None


def test_each_epoch_covers_every_row_once_in_a_new_order(tmp_path):
    task = RecordingTask()
    _train(tmp_path, _cfg(max_steps=None, epochs=2, batch_size=32), task=task,
           data=_indexed_data(100))
    assert len(task.seen) == 6  # 3 full global batches per epoch; the last 4 rows are dropped
    epochs = [sum(task.seen[:3], []), sum(task.seen[3:], [])]
    for rows in epochs:
        assert len(rows) == len(set(rows)) == 96
    assert epochs[0] != epochs[1]


def test_memory_mapped_pool_reads_rows_on_demand_and_matches_in_memory(tmp_path):
    data = _indexed_data(100)
    path = tmp_path / "pool.npy"
    np.save(path, data)
    mapped = np.load(path, mmap_mode="r")  # e.g. an image decode cache
    task, mem_task = RecordingTask(), RecordingTask()
    cfg = _cfg(max_steps=None, epochs=2, batch_size=32, max_unlabeled=90)
    result = pretrain_encoder(task, mapped, cfg, checkpoint_dir=tmp_path / "a", progress=False)
    expected = pretrain_encoder(mem_task, data, cfg, checkpoint_dir=tmp_path / "b",
                                progress=False)
    assert task.seen == mem_task.seen and result.losses == expected.losses


def test_grad_accumulation_matches_one_big_batch(tmp_path):
    task1, r1 = _train(tmp_path / "a", _cfg(grad_accum_steps=1))
    task4, r4 = _train(tmp_path / "b", _cfg(grad_accum_steps=4))
    np.testing.assert_allclose(r4.losses, r1.losses, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_params(task4), _params(task1), rtol=1e-5, atol=1e-6)


def test_metrics_callback_gets_collapse_stats(tmp_path):
    calls: list[tuple[dict, int]] = []
    _, result = _train(tmp_path, _cfg(log_every=4), on_metrics=lambda m, s: calls.append((m, s)))
    assert [s for _, s in calls] == [4, 8, 12]
    for metrics, _ in calls:
        assert {"loss", "lr", "grad_norm", "samples_per_second", "embedding_std",
                "effective_rank"} <= set(metrics)
        assert 0 < metrics["embedding_std"] < 1 and 1 <= metrics["effective_rank"] <= 4
    assert calls[0][0]["loss"] == result.losses[3]
    assert calls[0][0]["lr"] == pytest.approx(1e-2 * warmup_cosine(3, warmup=2, total=12))
    assert [h["step"] for h in result.collapse] == [4.0, 8.0, 12.0]


def test_collapsed_encoder_warns_during_training(tmp_path):
    task = W.ToyTask()
    last = task.backbone.net[-1]
    nn.init.zeros_(last.weight)
    last.weight.requires_grad_(False)  # embeddings = bias: identical for every row
    with pytest.warns(CollapseWarning):
        _train(tmp_path, _cfg(log_every=2), task=task)


def test_lr_schedule_warmup_then_cosine_to_zero():
    lrs = [warmup_cosine(s, warmup=4, total=20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0] and lrs[4] == 1.0
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] < 0.01
    assert warmup_cosine(20, warmup=4, total=20) == 0.0


def test_runs_are_reproducible_and_leave_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    cfg = _cfg(max_steps=6)
    task_a, ra = _train(tmp_path / "a", cfg, task=W.ToyTask(noise=0.1, dropout=0.2))
    assert torch.equal(torch.get_rng_state(), before)
    task_b, rb = _train(tmp_path / "b", cfg, task=W.ToyTask(noise=0.1, dropout=0.2))
    assert ra.losses == rb.losses and torch.equal(_params(task_a), _params(task_b))


def test_bf16_autocast_on_cpu(tmp_path):
    _, result = _train(tmp_path, _cfg(bf16=True, max_steps=4), device=torch.device("cpu"))
    assert all(np.isfinite(result.losses))


def test_max_unlabeled_subsamples_deterministically(tmp_path):
    seen = []
    for run in range(2):
        task = RecordingTask()
        _train(tmp_path / str(run), _cfg(max_unlabeled=64, max_steps=None, epochs=1,
                                          batch_size=32), task=task, data=_indexed_data(500))
        seen.append(sorted(sum(task.seen, [])))
    assert seen[0] == seen[1] and len(set(seen[0])) == 64


@pytest.mark.parametrize("data, cfg_kw, error, match", [
    (np.zeros((0, 8), np.float32), {}, DataError, "empty"),
    (W.make_data(1), {}, DataError, "has 1 row: pretraining needs at least 2"),
    (W.make_data(500), {"max_unlabeled": 1}, DataError, "max_unlabeled=1"),
    (W.make_data(), {"batch_size": 30, "grad_accum_steps": 4}, ConfigError, "pretrain.batch_size"),
])
def test_bad_inputs_fail_before_training(tmp_path, data, cfg_kw, error, match):
    task = RecordingTask()
    with pytest.raises(error, match=match):
        _train(tmp_path, _cfg(**cfg_kw), task=task, data=data)
    assert task.seen == [] and not (tmp_path / "ckpt").exists()


def test_pool_smaller_than_a_batch_trains_with_a_shrunk_batch(tmp_path, capsys):
    task = RecordingTask()
    _, result = _train(tmp_path, _cfg(max_steps=4, batch_size=32), task=task,
                       data=_indexed_data(20))
    assert result.steps == 4 and [len(b) for b in task.seen] == [20] * 4
    assert (result.plan.batch_size, result.plan.shrunk_from) == (20, 32)
    state = load_checkpoint(result.final_checkpoint)
    assert state["global_batch"] == 20 and state["config"]["batch_size"] == 32
    err = capsys.readouterr().err
    assert "pretraining: 4 optimizer steps (cap: pretrain.max_steps 4 x standard; 1 " \
           "steps/epoch over 20 rows, batch 20, shrunk from 32 to fit the pool)" in err
    # The shrunk batch is a function of the pool and config: resuming finds the same one.
    _, again = _train(tmp_path, _cfg(max_steps=6, batch_size=32), data=_indexed_data(20),
                      resume=True)
    assert again.resumed_from_step == 4 and again.steps == 6
    # 8 micro-batches need a multiple of 8: another batch, another data order.
    with pytest.raises(CheckpointError, match=r"global batch shrunk to fit the pool \(20 -> 16\)"):
        _train(tmp_path, _cfg(max_steps=8, batch_size=32, grad_accum_steps=8),
               data=_indexed_data(20), resume=True)


def test_floor_and_exact_steps_plan_the_run(tmp_path):
    # 256 rows / 32 = 8 steps an epoch: one epoch is raised to the floor, steps= is exact.
    _, floor = _train(tmp_path / "a", _cfg(epochs=1, max_steps=None, min_steps=20))
    assert floor.steps == 20 and floor.plan.reason == "floor: pretrain.min_steps 20 x standard"
    _, exact = _train(tmp_path / "b", _cfg(epochs=1, min_steps=100, max_steps=5, steps=3))
    assert exact.steps == 3 and exact.plan.reason == "pretrain.steps 3"


def test_batch_not_divisible_by_world_size(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")  # checked before any process group is joined
    with pytest.raises(ConfigError, match=r"pretrain.batch_size: 32 .* world size 3"):
        _train(tmp_path)


def test_diverging_loss_raises(tmp_path):
    class NanTask(W.ToyTask):
        def loss(self, batch, generator):
            return super().loss(batch, generator) * float("nan")

    with pytest.raises(SSLCoreError, match="diverged at step 1"):
        _train(tmp_path, task=NanTask())


class _Crash(Exception):
    pass


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    cfg = _cfg(max_steps=20, checkpoint_every=5)
    ref_task, ref = _train(tmp_path / "ref", cfg, task=W.ToyTask(noise=0.1, dropout=0.1))

    class Crashing(W.ToyTask):
        def on_step_end(self):
            super().on_step_end()
            if self.steps_seen == 13:
                raise _Crash

    with pytest.raises(_Crash):
        _train(tmp_path, cfg, task=Crashing(noise=0.1, dropout=0.1))
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["step"] == 10
    task, result = _train(tmp_path, cfg, task=W.ToyTask(noise=0.1, dropout=0.1), resume=True)
    assert result.resumed_from_step == 10 and result.steps == 20
    assert result.losses == ref.losses
    assert torch.equal(_params(task), _params(ref_task))
    # Resuming a finished run does nothing more.
    again_task, again = _train(tmp_path, cfg, task=W.ToyTask(), resume=True)
    assert again.steps == 20 and again.losses == ref.losses
    assert torch.equal(_params(again_task), _params(ref_task))


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    _, result = _train(tmp_path, _cfg(max_steps=3), resume=True)
    assert result.steps == 3 and result.resumed_from_step is None


def test_resume_refuses_a_different_data_order(tmp_path):
    _train(tmp_path, _cfg(max_steps=3))
    with pytest.raises(CheckpointError, match=r"pretrain.batch_size \(32 -> 64\)"):
        _train(tmp_path, _cfg(max_steps=3, batch_size=64), resume=True)


def test_resume_from_a_foreign_checkpoint_refuses(tmp_path):
    (tmp_path / "ckpt").mkdir()
    torch.save({"model": {}}, tmp_path / "ckpt" / "last.pt")
    with pytest.raises(CheckpointError, match="not a pretraining checkpoint"):
        _train(tmp_path, resume=True)


def test_resume_from_corrupt_checkpoint_says_what_to_do(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "last.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="last.pt is truncated, corrupt.*--resume"):
        _train(tmp_path, resume=True)


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    args = ["--max-steps", "40", "--checkpoint-every", "5", "--noise", "0.1", "--dropout", "0.1",
            "--ckpt", str(tmp_path / "ckpt")]
    ref = W.run(W.parse_args([*args[:-1], str(tmp_path / "ref")]))[2]
    progress = tmp_path / "progress.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLCORE_TEST_STEP_SLEEP": "0.1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(WORKER), *args, "--out", str(tmp_path / "out.json")]
    log = tmp_path / "first_run.log"
    with log.open("w") as log_fh:
        proc = subprocess.Popen([*cmd, "--progress-file", str(progress)], env=env,
                                stdout=log_fh, stderr=subprocess.STDOUT)
    done = 0
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            done = int(progress.read_text() or done) if progress.exists() else 0
            if done >= 8 and (tmp_path / "ckpt" / "last.pt").exists():
                break  # checkpoint at step 5 is on disk and steps 6-8 ran after it
            time.sleep(0.02)
        assert proc.poll() is None, f"worker ended before the kill:\n{log.read_text()[-3000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    killed_at = int(progress.read_text() or done)  # the kill may land mid-write
    assert 8 <= killed_at < 40 and not (tmp_path / "out.json").exists()
    env["SSLCORE_TEST_STEP_SLEEP"] = "0"
    rerun = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())
    assert got["steps"] == ref["steps"] == 40
    assert got["resumed_from_step"] % 5 == 0 and 5 <= got["resumed_from_step"] <= killed_at
    np.testing.assert_allclose(got["losses"], ref["losses"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["params"], ref["params"], rtol=0, atol=1e-6)
