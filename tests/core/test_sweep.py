"""The few-label sweep on its own: which rows, seeds and budget each method of each arm gets.

Methods here record what they were given instead of training, so the tests read the sweep's
promises directly: both arms see the same labeled rows and budget, fractions are nested, seeds
draw different subsets, label-free methods are fitted once per seed, and every fit is logged.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from sslcore.builtins import plugin as builtins
from sslcore.config import ExperimentConfig
from sslcore.data.ssl_data import SSLData
from sslcore.registry import Registry
from sslcore.sweep import run_sweep


class _Recorder:
    """A Method that records its FitContext and scores with the first feature."""

    calls: list[dict[str, Any]] = []

    def __init__(self, params: Any, uses_labels: bool = True) -> None:
        self.uses_labels = uses_labels

    def fit(self, ctx: Any) -> None:
        _Recorder.calls.append({"method": self, "x_train": ctx.x_train.copy(),
                                "y_train": ctx.y_train.copy(), "x_val": ctx.x_val.copy(),
                                "budget": ctx.budget, "encoder": ctx.encoder,
                                "seed": ctx.seed})

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(x)[:, 0]))


def _registries() -> SimpleNamespace:
    heads, baselines = Registry("heads"), Registry("baselines")
    heads.add("probe", _Recorder, module="tests")
    baselines.add("scratch", _Recorder, module="tests")
    baselines.add("detector", lambda p: _Recorder(p, uses_labels=False), module="tests")
    metrics = Registry("metrics")
    builtins.sslcore_register_metrics(metrics)
    return SimpleNamespace(heads=heads, baselines=baselines, metrics=metrics)


def _data(n: int = 400, seed: int = 0) -> SSLData:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.int64)
    x = (rng.normal(size=(n, 4)) + y[:, None]).astype(np.float32)
    # Row ids in the last column, so a test can tell which labeled rows a method saw.
    x[:, -1] = np.arange(n)
    test_y = np.array([0, 1] * 20)
    return SSLData(unlabeled=x[:100], labeled_x=x, labeled_y=y,
                   test_x=rng.normal(size=(40, 4)).astype(np.float32), test_y=test_y).validate()


def _cfg(fractions: list[float], seeds: list[int]) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "vertical": "tabular", "dataset": {"name": "x"}, "backbone": {"name": "x"},
        "pretext": {"name": "x"}, "heads": [{"name": "probe"}],
        "baselines": [{"name": "scratch"}, {"name": "detector"}],
        "evaluation": {"label_fractions": fractions, "seeds": seeds,
                       "metrics": ["auprc", "auroc"]}})


@pytest.fixture
def sweep():
    _Recorder.calls = []
    logged: list[dict[str, Any]] = []
    cfg = _cfg([0.05, 0.25, 1.0], [0, 1])
    result = run_sweep(cfg, _registries(), _data(), encoder=torch.nn.Identity(),
                       make_backbone=None, augment=None, device=torch.device("cpu"),
                       log_child=lambda **kw: logged.append(kw), progress=False)
    return cfg, result, list(_Recorder.calls), logged


def _ids(call: dict[str, Any]) -> set[int]:
    return set(call["x_train"][:, -1].astype(int)) | set(call["x_val"][:, -1].astype(int))


def test_both_arms_get_the_same_rows_and_budget(sweep):
    cfg, _, calls, _ = sweep
    labeled = [c for c in calls if c["method"].uses_labels]
    # Per (seed, fraction): the SSL head's call, then the scratch baseline's.
    for ssl, base in zip(labeled[::2], labeled[1::2], strict=True):
        np.testing.assert_array_equal(ssl["x_train"], base["x_train"])
        np.testing.assert_array_equal(ssl["y_train"], base["y_train"])
        np.testing.assert_array_equal(ssl["x_val"], base["x_val"])
        assert ssl["budget"] is base["budget"] is cfg.finetune
        assert ssl["seed"] == base["seed"]
        assert ssl["encoder"] is not None and base["encoder"] is None


def test_fractions_are_nested_and_seeds_differ(sweep):
    _, _, calls, _ = sweep
    heads = [c for c in calls if c["method"].uses_labels][::2]
    by_seed = {0: heads[:3], 1: heads[3:]}
    for seed_calls in by_seed.values():
        rows = [_ids(c) for c in seed_calls]
        assert rows[0] < rows[1] < rows[2]  # 5% within 25% within 100%
        assert len(rows[2]) == 400
    assert _ids(by_seed[0][0]) != _ids(by_seed[1][0])


def test_label_free_method_is_fitted_once_per_seed(sweep):
    _, result, calls, _ = sweep
    label_free = [c for c in calls if not c["method"].uses_labels]
    assert [c["seed"] for c in label_free] == [0, 1]
    scores = result.results.filter(result.results["method"] == "detector")
    assert scores.height == 2 * 3 * 2  # metrics x fractions x seeds, all scored


def test_every_fit_is_logged_and_scored(sweep):
    _, result, _, logged = sweep
    assert result.child_runs == len(logged) == 3 * 3 * 2  # methods x fractions x seeds
    keys = {(r["arm"], r["method"], r["fraction"], r["seed"]) for r in logged}
    assert len(keys) == len(logged)
    for r in logged:
        assert {"test_auprc", "test_auroc", "val_auprc", "fit_seconds"} <= set(r["metrics"])
    assert set(result.fitted_at_top) == {("ssl", "probe"), ("baseline", "scratch"),
                                         ("baseline", "detector")}
    assert sorted(result.labeled_counts) == [0.05, 0.25, 1.0]
