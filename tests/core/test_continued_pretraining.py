"""Continued pretraining from backbone.init: the backbone's lower rate and warm-up, the
heads-only first steps, and the online linear probe (monitoring only, never on test rows)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from torch import nn

from sslcore.config import PretrainConfig
from sslcore.train.lr_schedule import PretrainSchedule, warmup_cosine
from sslcore.train.pretrain import PretrainResult, pretrain_encoder
from sslcore.train.probe import OnlineProbe, probe_rows

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py


def _load_worker():
    spec = importlib.util.spec_from_file_location(
        "pretrain_worker", Path(__file__).resolve().parent / "pretrain_worker.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


W = _load_worker()


@pytest.fixture(autouse=True)
def one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def _cfg(**kw) -> PretrainConfig:
    base = dict(epochs=100, max_steps=12, batch_size=32, lr=1e-2, bf16=False,
                checkpoint_every=100, log_every=1, seed=0)
    return PretrainConfig(**{**base, **kw})


def _train(tmp_path: Path, cfg: PretrainConfig, task=None, **kw) -> tuple[nn.Module,
                                                                           PretrainResult]:
    task = task if task is not None else W.ToyTask()
    result = pretrain_encoder(task, W.make_data(), cfg, checkpoint_dir=tmp_path / "ckpt",
                              progress=False, **kw)
    return task, result


class Snapshots(W.ToyTask):
    """Records the backbone (weights and BatchNorm statistics), the head and the backbone's
    train/eval mode at every step."""

    def __init__(self) -> None:
        super().__init__(batchnorm=True)
        self.backbones: list[dict[str, torch.Tensor]] = []
        self.heads: list[torch.Tensor] = []
        self.modes: list[bool] = []

    def loss(self, batch, generator):  # type: ignore[no-untyped-def]
        self.modes.append(self.backbone.training)
        return super().loss(batch, generator)

    def on_step_end(self) -> None:
        super().on_step_end()
        self.backbones.append({k: v.clone() for k, v in self.backbone.state_dict().items()})
        self.heads.append(self.head.weight.detach().clone())


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_head_only_steps_leave_the_backbone_untouched_then_it_trains(tmp_path):
    task = Snapshots()
    start = {k: v.clone() for k, v in task.backbone.state_dict().items()}
    head0 = task.head.weight.detach().clone()
    _train(tmp_path, _cfg(max_steps=6, head_only_steps=3), task, from_init=True)
    assert all(_same(start, s) for s in task.backbones[:3])  # BatchNorm statistics too
    assert not _same(start, task.backbones[3])
    assert not torch.equal(head0, task.heads[0])  # the heads train from step 1
    assert task.modes == [False] * 3 + [True] * 3  # eval mode while frozen


def test_without_init_the_knobs_do_nothing(tmp_path):
    task = Snapshots()
    start = {k: v.clone() for k, v in task.backbone.state_dict().items()}
    seen: dict[int, dict[str, float]] = {}
    _train(tmp_path, _cfg(max_steps=4, head_only_steps=3, init_lr_scale=0.1, warmup_steps=2),
           task, on_metrics=lambda m, s: seen.__setitem__(s, m))
    assert not _same(start, task.backbones[0]) and task.modes == [True] * 4
    assert all("lr_backbone" not in m for m in seen.values())
    assert [seen[s]["lr"] for s in range(1, 5)] == pytest.approx(
        [1e-2 * warmup_cosine(s, 2, 4) for s in range(4)])


def test_backbone_trains_at_the_init_scale_after_its_own_warmup(tmp_path):
    seen: dict[int, dict[str, float]] = {}
    cfg = _cfg(max_steps=20, init_lr_scale=0.1, head_only_steps=2, init_warmup_fraction=0.2)
    _train(tmp_path, cfg, from_init=True, on_metrics=lambda m, s: seen.__setitem__(s, m))
    heads = [seen[s]["lr"] for s in range(1, 21)]
    backbone = [seen[s]["lr_backbone"] for s in range(1, 21)]
    assert heads == pytest.approx([1e-2 * warmup_cosine(i, 4, 20) for i in range(20)])
    assert backbone[:2] == [0.0, 0.0]
    assert backbone[2:] == pytest.approx([1e-3 * warmup_cosine(i, 4, 18) for i in range(18)])
    assert backbone[2] < backbone[3] < backbone[5] == pytest.approx(1e-3)  # warm-up, then peak


def test_schedule_defaults_with_init():
    schedule = PretrainSchedule.plan(PretrainConfig(), total=200, from_init=True)
    assert (schedule.warmup, schedule.head_only, schedule.backbone_scale) == (10, 10, 0.1)
    assert PretrainSchedule.plan(PretrainConfig(warmup_steps=3), 200, True).warmup == 3
    assert PretrainSchedule.plan(PretrainConfig(), 200, False) == PretrainSchedule(200, 0)


class _Crash(Exception):
    pass


def _recording_probe(calls: list[int]):
    def probe(backbone: nn.Module, step: int) -> dict[str, float]:
        calls.append(step)
        mode = backbone.training
        backbone.eval()  # as the real probe: no dropout draws
        with torch.no_grad():
            value = float(backbone(torch.ones(1, W.IN_DIM)).sum())
        backbone.train(mode)
        return {"probe_x": value}
    return probe


def test_resume_with_init_and_probe_matches_an_uninterrupted_run(tmp_path):
    cfg = _cfg(max_steps=14, checkpoint_every=5, head_only_steps=7, probe_every=3)
    ref_task, ref = _train(tmp_path / "ref", cfg, W.ToyTask(noise=0.1, dropout=0.1),
                           from_init=True, probe=_recording_probe([]))

    class Crashing(W.ToyTask):
        def on_step_end(self) -> None:
            super().on_step_end()
            if self.steps_seen == 8:
                raise _Crash

    with pytest.raises(_Crash):
        _train(tmp_path, cfg, Crashing(noise=0.1, dropout=0.1), from_init=True,
               probe=_recording_probe([]))
    calls: list[int] = []
    task, result = _train(tmp_path, cfg, W.ToyTask(noise=0.1, dropout=0.1), from_init=True,
                          probe=_recording_probe(calls), resume=True)
    assert result.resumed_from_step == 5 and result.losses == ref.losses
    assert all(torch.equal(a, b) for a, b in zip(task.state_dict().values(),
                                                 ref_task.state_dict().values()))
    assert calls == [6, 9, 12, 14]  # probes before the checkpoint come from it
    assert result.probes == ref.probes and [p["step"] for p in ref.probes] == [3, 6, 9, 12, 14]


def test_probe_never_changes_the_trajectory_and_runs_about_ten_times(tmp_path):
    from sslcore.plugins import load_registries

    cfg = _cfg(max_steps=25)
    _, plain = _train(tmp_path / "a", cfg, W.ToyTask(noise=0.1, dropout=0.1))
    x, y = _labeled()
    probe = OnlineProbe(x, y, metric="auprc", metrics=load_registries().metrics,
                        num_classes=2, rows=100)
    calls: list[int] = []
    seen: dict[int, dict[str, float]] = {}

    def counted(backbone: nn.Module, step: int) -> dict[str, float]:
        calls.append(step)
        return probe(backbone, step)

    _, probed = _train(tmp_path / "b", cfg, W.ToyTask(noise=0.1, dropout=0.1), probe=counted,
                       on_metrics=lambda m, s: seen.setdefault(s, {}).update(m))
    assert probed.losses == plain.losses
    assert calls == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 25]  # 25 // 10, and the end
    assert all(0 < seen[s]["probe_auprc"] <= 1 for s in calls)
    assert [p["step"] for p in probed.probes] == calls
    calls.clear()
    _train(tmp_path / "c", _cfg(max_steps=5, probe_every=0), probe=_recording_probe(calls))
    assert calls == []


def _labeled(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.1).astype(np.int64)
    x = rng.normal(size=(n, W.IN_DIM)).astype(np.float32)
    x[y == 1, :2] += 2.0
    return x, y


def test_probe_rows_are_disjoint_stratified_deterministic_and_keep_groups_whole():
    _, y = _labeled()
    fit, val = probe_rows(y, 100, seed=0)
    assert not set(fit) & set(val) and len(fit) + len(val) == 100
    for c in (0, 1):
        assert abs((y[fit] == c).sum() - (y[val] == c).sum()) <= 1
    assert (y[np.r_[fit, val]] == 1).sum() >= 100 // 8  # the rare class raised
    again = probe_rows(y, 100, seed=0)
    assert np.array_equal(again[0], fit) and np.array_equal(again[1], val)
    assert not np.array_equal(probe_rows(y, 100, seed=1)[0], fit)
    groups = np.arange(len(y)) // 5
    gfit, gval = probe_rows(y, 100, seed=0, groups=groups)
    assert not set(groups[gfit]) & set(groups[gval])


def test_probe_scores_the_primary_metric_and_restores_the_mode():
    from sslcore.plugins import load_registries

    x, y = _labeled()
    metrics = load_registries().metrics
    probe = OnlineProbe(x, y, metric="auprc", metrics=metrics, num_classes=2, rows=200)
    encoder = nn.Sequential(nn.Linear(W.IN_DIM, 4), nn.Dropout(0.5)).train()
    score = probe(encoder, step=1)
    assert set(score) == {"probe_auprc"} and 0.3 < score["probe_auprc"] <= 1.0
    assert encoder.training and probe.seconds > 0
    assert probe.best([{"step": 1, "probe_auprc": 0.2}, {"step": 2, "probe_auprc": 0.5},
                       {"step": 3, "probe_auprc": 0.5}]) == (2, 0.5)
    with pytest.raises(ValueError, match="two classes"):
        OnlineProbe(x, np.r_[np.ones(1, np.int64), np.zeros(len(y) - 1, np.int64)],
                    metric="auprc", metrics=metrics, num_classes=2)


def test_pretrain_run_logs_probe_and_backbone_lr_and_the_probe_never_sees_test_rows(
        tracking_uri, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    import sslcore
    import sslcore.train.probe
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries

    x, y = _labeled(400, seed=1)
    test_x, test_y = x[340:].copy(), y[340:]
    test_x[:, 0] = 1000.0 + np.arange(len(test_x))  # planted: no other row looks like these
    data = {"unlabeled": x[:200], "labeled": (x[200:340], y[200:340]),
            "test": (test_x, test_y)}
    run_cfg = {"vertical": "tabular", "output_dir": str(tmp_path / "runs"),
               "pretrain": {"steps": 10, "batch_size": 64, "probe_every": 4}}
    registries = load_registries()
    torch.manual_seed(3)
    source = registries.backbones.get("mlp").build(
        resolve_config(run_cfg, registries).backbone.params, input_shape=(W.IN_DIM,))
    torch.save(source.state_dict(), tmp_path / "generic.pt")
    seen: list[np.ndarray] = []
    real_embed = sslcore.train.probe.embed

    def recording_embed(backbone, rows, device, batch_size=256):  # type: ignore[no-untyped-def]
        seen.append(np.asarray(rows).copy())
        return real_embed(backbone, rows, device, batch_size)

    monkeypatch.setattr(sslcore.train.probe, "embed", recording_embed)
    sslcore.pretrain(run_cfg | {"backbone": {"name": "mlp", "init": str(tmp_path / "generic.pt")}},
                     data, progress=False)
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("sslcore-tabular")
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "pretrain"]
    history = client.get_metric_history(run.info.run_id, "probe_auprc")
    assert sorted(m.step for m in history) == [4, 8, 10]
    assert run.data.params["probe_metric"] == "auprc"
    best = max(history, key=lambda m: (m.value, -m.step))
    assert run.data.metrics["best_probe_auprc"] == pytest.approx(best.value)
    assert run.data.metrics["best_probe_step"] == best.step
    assert run.data.metrics["probe_seconds"] > 0
    assert client.get_metric_history(run.info.run_id, "lr_backbone")  # init set: own rate
    probed = np.concatenate(seen)
    assert len(seen) == 6 and (probed[:, 0] < 999).all()  # no test row, by content
    labeled = {r.tobytes() for r in x[200:340]}
    assert all(r.tobytes() in labeled for r in probed)
