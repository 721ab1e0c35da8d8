"""Step budgets that follow the data: the plans, the presets, and what the runs do and log."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslcore.config import FinetuneConfig, PretrainConfig
from sslcore.errors import ConfigError, DataError
from sslcore.train.budget import BUDGET_SCALE, plan_finetune_steps, plan_pretrain_steps

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py
CPU = torch.device("cpu")


def pre(**kw) -> PretrainConfig:
    return PretrainConfig(**{"epochs": 25, "batch_size": 256, "min_steps": 1000,
                             "max_steps": 5000} | kw)


def test_pretrain_floor_binds_on_small_data():
    plan = plan_pretrain_steps(pre(), 1200, 1, "standard")
    assert (plan.total, plan.steps_per_epoch, plan.batch_size) == (1000, 4, 256)
    assert plan.reason == "floor: pretrain.min_steps 1000 x standard"
    assert plan.summary() == ("1,000 optimizer steps (floor: pretrain.min_steps 1000 x "
                              "standard; 4 steps/epoch over 1,200 rows, batch 256)")


def test_pretrain_cap_binds_on_large_data_and_epochs_in_between():
    big = plan_pretrain_steps(pre(), 1_000_000, 1, "standard")
    assert big.total == 5000 and big.reason == "cap: pretrain.max_steps 5000 x standard"
    mid = plan_pretrain_steps(pre(), 12_800, 1, "standard")  # 50 steps an epoch
    assert mid.total == 1250 and mid.reason == "pretrain.epochs 25 x 50 steps/epoch"
    # The cap wins over the floor; no cap at all leaves epochs x steps.
    assert plan_pretrain_steps(pre(max_steps=10), 1200, 1, "standard").total == 10
    assert plan_pretrain_steps(pre(max_steps=None), 10**6, 1, "standard").total == 25 * 3906


def test_exact_steps_bypass_floor_cap_and_preset():
    for budget in BUDGET_SCALE:
        plan = plan_pretrain_steps(pre(steps=77), 1200, 1, budget)
        assert plan.total == 77 and plan.reason == "pretrain.steps 77"
    ft = plan_finetune_steps(FinetuneConfig(steps=50), 48, "thorough")
    assert ft.total == 50 and ft.reason == "finetune.steps 50"
    assert ft.stop_after == 50  # the floor (1200 here) is above the exact count


def test_presets_scale_floors_and_caps():
    quick = plan_pretrain_steps(pre(), 1200, 1, "quick")
    assert quick.total == 250
    assert quick.reason == "floor: pretrain.min_steps 1000 x quick 0.25 = 250"
    assert plan_pretrain_steps(pre(), 1200, 1, "thorough").total == 4000
    capped = plan_pretrain_steps(pre(), 10**6, 1, "thorough")
    assert capped.total == 20_000 and capped.reason.startswith("cap: pretrain.max_steps 5000")
    assert plan_finetune_steps(FinetuneConfig(), 48, "quick").total == 75
    assert plan_finetune_steps(FinetuneConfig(), 10**6, "quick").total == 750


def test_pool_smaller_than_a_batch_shrinks_it_or_fails_naming_the_pool():
    plan = plan_pretrain_steps(pre(), 100, 1, "standard")
    assert (plan.batch_size, plan.shrunk_from, plan.steps_per_epoch) == (100, 256, 1)
    assert "batch 100, shrunk from 256 to fit the pool" in plan.summary()
    # A multiple of world size x grad_accum_steps, the same on every call (resume).
    cfg = pre(grad_accum_steps=2)
    assert plan_pretrain_steps(cfg, 100, 3, "standard").batch_size == 96
    assert plan_pretrain_steps(cfg, 100, 3, "standard") == plan_pretrain_steps(cfg, 100, 3,
                                                                               "standard")
    with pytest.raises(DataError, match="has 11 rows: pretraining needs at least 12 rows"):
        plan_pretrain_steps(cfg, 11, 3, "standard")
    with pytest.raises(DataError, match="the unlabeled pool is empty"):
        plan_pretrain_steps(pre(), 0, 1, "standard")


def test_finetune_plan_same_rows_same_plan():
    cfg = FinetuneConfig(epochs=30, batch_size=256)
    small = plan_finetune_steps(cfg, 48, "standard")
    assert (small.total, small.batch_size, small.steps_per_epoch) == (300, 48, 1)
    assert small.reason == "floor: finetune.min_steps 300 x standard"
    assert (small.eval_every, small.stop_after) == (10, 300)
    big = plan_finetune_steps(cfg, 48_000, "standard")
    assert big.total == 3000 and big.eval_every == 188 and big.stop_after == 300
    assert plan_finetune_steps(cfg.model_copy(update={"eval_every": 7}), 48, "standard") \
        .eval_every == 7
    assert plan_finetune_steps(cfg, 48, "standard") == small  # both arms: one plan


def test_experiment_budget_reaches_both_blocks_and_fails_loudly():
    from sslcore.cli import build_parser
    from sslcore.config import validate_config
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries

    base = {"vertical": "v", "dataset": {"name": "d"}, "backbone": {"name": "b"},
            "pretext": {"name": "p"}, "heads": [{"name": "h"}]}
    cfg = validate_config(base)
    assert cfg.budget == cfg.pretrain.preset == cfg.finetune.preset == "standard"
    cfg = validate_config(base | {"budget": "thorough"})
    assert cfg.pretrain.preset == cfg.finetune.preset == "thorough"
    with pytest.raises(ConfigError, match="budget: Input should be 'quick'"):
        validate_config(base | {"budget": "fast"})
    reg = load_registries()
    assert resolve_config("tabular", reg, quick=True).finetune.preset == "quick"
    assert resolve_config("tabular", reg, quick=True, overrides={"budget": "thorough"}) \
        .budget == "thorough"
    assert build_parser().parse_args(["run", "tabular", "--budget", "quick"]).budget == "quick"


def _task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 8)).astype(np.float32)
    x[:, 0] += 2.0 * y
    return x, y


def test_finetuning_trains_the_floor_before_a_tiny_validation_split_may_stop_it():
    from sslcore.builtins.backbones.mlp import MLPBackbone, MLPParams
    from sslcore.train.supervised import train_classifier

    x, y = _task(40, 0)
    x_val, y_val = x[:6], 1 - y[:6]  # six contradicting rows: every check looks worse

    def fit(**kw):
        torch.manual_seed(0)
        bb = MLPBackbone(MLPParams(hidden_dims=[16], embed_dim=8), input_shape=(8,))
        budget = FinetuneConfig(batch_size=16, lr=1e-2, patience=1, **kw)
        return train_classifier(bb, 2, x, y, x_val, y_val, budget, seed=0, device=CPU)

    assert fit(epochs=1, min_steps=60).steps == 60  # 3 steps an epoch: the floor binds
    unfloored = fit(epochs=100, min_steps=0)
    floored = fit(epochs=100, min_steps=60)
    assert unfloored.steps < 60 <= floored.steps < 300
    assert floored.best_step is not None and floored.best_step <= floored.steps


def test_child_runs_log_fit_steps_of_both_arms(tmp_path):
    from sslcore.data.ssl_data import SSLData
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries
    from sslcore.sweep import run_sweep
    from sslcore.train.build import build_pretraining

    x, y = _task(200, 1)
    data = SSLData(unlabeled=x[:100], labeled_x=x[100:160], labeled_y=y[100:160],
                   test_x=x[160:], test_y=y[160:]).validate()
    reg = load_registries()
    cfg = resolve_config("tabular", reg, overrides={
        "heads": [{"name": "finetune"}], "baselines": [{"name": "scratch"}],
        "finetune": {"epochs": 1, "min_steps": 20}, "output_dir": str(tmp_path),
        "evaluation": {"label_fractions": [1.0], "seeds": [0]}})
    built = build_pretraining(cfg, reg, data)
    logged: dict[str, dict[str, float]] = {}
    run_sweep(cfg, reg, data, built.task.backbone, built.make_backbone, None, CPU,
              lambda **kw: logged.__setitem__(kw["method"], kw["metrics"]), progress=False)
    for method in ("finetune", "scratch"):  # the floor binds: the same 20 steps for both
        assert logged[method]["fit_steps"] == 20 and 1 <= logged[method]["best_step"] <= 20
        assert logged[method]["fit_seconds"] > 0


def test_pretrain_run_logs_its_plan_and_why_it_stopped(tracking_uri, tmp_path, capfd,
                                                       monkeypatch):
    from mlflow import MlflowClient

    import sslcore
    import sslcore.train.pretrain
    from sslcore.errors import SSLCoreError

    x, y = _task(160, 2)
    data = {"unlabeled": x[:100], "labeled": (x[100:140], y[100:140]),
            "test": (x[140:], y[140:])}
    cfg = {"vertical": "tabular", "output_dir": str(tmp_path / "runs"),
           "pretrain": {"epochs": 1, "batch_size": 256, "min_steps": 6, "log_every": 3}}
    sslcore.pretrain(cfg, data, progress=False)
    assert "pretraining: 6 optimizer steps (floor: pretrain.min_steps 6 x standard; 1 " \
           "steps/epoch over 100 rows, batch 100, shrunk from 256" in capfd.readouterr().err
    client = MlflowClient(tracking_uri)

    def pretrain_runs():
        exp = client.get_experiment_by_name("sslcore-tabular")
        return [r for r in client.search_runs([exp.experiment_id])
                if r.info.run_name == "pretrain"]

    (run,) = pretrain_runs()
    assert {k: run.data.params[k] for k in ("budget", "planned_steps", "steps_per_epoch",
                                            "pretrain_batch_size")} == {
        "budget": "standard", "planned_steps": "6", "steps_per_epoch": "1",
        "pretrain_batch_size": "100"}
    assert run.data.tags["sslcore.stop_reason"] == "floor: pretrain.min_steps 6 x standard"
    assert run.data.metrics["steps"] == 6 and run.data.metrics["pretrain_seconds"] > 0

    def diverge(*args, **kwargs):
        raise SSLCoreError("pretraining diverged at step 1")

    monkeypatch.setattr(sslcore.train.pretrain, "_train_step", diverge)
    with pytest.raises(SSLCoreError):
        sslcore.pretrain(cfg | {"pretrain": {"epochs": 1, "steps": 4}}, data, progress=False)
    failed = [r for r in pretrain_runs() if r.info.run_id != run.info.run_id]
    assert failed[0].data.tags["sslcore.stop_reason"] == \
        "early: SSLCoreError: pretraining diverged at step 1"


@pytest.mark.parametrize(("vertical", "rows", "at_least"), [
    ("medical_imaging", 1200, 1000),   # ~1,200 small images: was 25 epochs x 4 = 100 steps
    ("satellite", 1200, 1000),
    ("sensor_maintenance", 300, 1000),
    ("tabular", 500, 500),
])
def test_shipped_recipes_give_a_small_pool_enough_steps(vertical, rows, at_least):
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries

    cfg = resolve_config(vertical, load_registries())
    plan = plan_pretrain_steps(cfg.pretrain, rows, 1, cfg.budget)
    assert plan.total >= at_least and plan.reason.startswith("floor:")
    quick = resolve_config(vertical, load_registries(), quick=True)
    assert quick.budget == "quick"
    assert plan_pretrain_steps(quick.pretrain, rows, 1, quick.budget).total < plan.total
