"""The shared supervised loop: early stopping, tiny data, class balance, determinism."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from sslcore.builtins.backbones.mlp import MLPBackbone, MLPParams
from sslcore.config import FinetuneConfig
from sslcore.errors import DataError
from sslcore.train.supervised import (
    class_weights,
    epoch_batches,
    predict_scores,
    selection_score,
    train_classifier,
)

CPU = torch.device("cpu")
N_FEATURES = 8


pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py


def backbone(seed: int = 0) -> MLPBackbone:
    torch.manual_seed(seed)
    return MLPBackbone(MLPParams(hidden_dims=[32], embed_dim=16, dropout=0.0),
                       input_shape=(N_FEATURES,))


def rare_positive_task(n: int, n_pos: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positives are shifted by +2 in the first three features."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, n_pos, replace=False)] = 1
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    x[y == 1, :3] += 2.0
    return x, y


def test_early_stopping_restores_the_best_check() -> None:
    x, y = rare_positive_task(200, 40, seed=0)
    # Validation labels contradict the training labels: fitting better makes validation worse,
    # so the best check is early and training must stop after `patience` stale checks.
    x_val, y_val = x[:60], 1 - y[:60]
    # No floor: early stopping may stop at any check (7 steps an epoch, a check every 10).
    budget = FinetuneConfig(epochs=30, batch_size=32, lr=1e-2, patience=3, min_steps=0)
    model = train_classifier(backbone(), 2, x, y, x_val, y_val, budget, seed=0, device=CPU)
    hist = model.history
    assert [h["step"] for h in hist] == [10 * (i + 1) for i in range(len(hist))]
    best_i = next(i for i, h in enumerate(hist) if h["step"] == model.best_step)
    assert len(hist) == best_i + 1 + budget.patience
    assert model.steps == hist[-1]["step"] < 30 * 7
    best = max(h["val_score"] for h in hist)
    assert hist[best_i]["val_score"] == pytest.approx(best)
    assert model.fit_info == {"fit_steps": model.steps, "best_step": model.best_step}
    restored = selection_score(y_val, predict_scores(model, x_val, CPU), 2)
    assert restored == pytest.approx(best, abs=1e-6)


def test_tiny_data_single_class_val_and_empty_val() -> None:
    x, y = rare_positive_task(6, 2, seed=1)
    budget = FinetuneConfig(epochs=3, batch_size=256, patience=1, min_steps=25)
    # Single-class validation split: falls back to the validation loss.
    model = train_classifier(backbone(), 2, x, y, x[:2] * 0, np.zeros(2, np.int64), budget,
                             seed=0, device=CPU)
    assert all(h["val_score"] is None and h["val_loss"] is not None for h in model.history)
    scores = predict_scores(model, x, CPU)
    assert scores.shape == (6,) and np.isfinite(scores).all()
    # No validation rows at all: trains the whole budget (the floor: 3 epochs are 3 steps)
    # and keeps the last weights; checks every 10 steps and at the end.
    model = train_classifier(backbone(), 2, x, y, x[:0], y[:0], budget, seed=0, device=CPU)
    assert [h["step"] for h in model.history] == [10, 20, 25]
    assert model.steps == model.best_step == 25


def test_class_balance_lets_three_positives_count() -> None:
    x, y = rare_positive_task(500, 3, seed=2)
    x_test, y_test = rare_positive_task(400, 40, seed=3)
    # An exact budget: more steps overfit the three positives (test AUROC 0.78 at 300).
    budget = FinetuneConfig(steps=90, batch_size=128, lr=3e-3, patience=10)
    model = train_classifier(backbone(), 2, x, y, x[:0], y[:0], budget, seed=0, device=CPU)
    assert model.steps == 90
    from sklearn.metrics import roc_auc_score

    # Unweighted, 3/500 positives would push every probability toward 0; balanced, the three
    # positives are fitted and the rule generalises.
    assert (predict_scores(model, x[y == 1], CPU) > 0.5).all()
    scores = predict_scores(model, x_test, CPU)
    assert roc_auc_score(y_test, scores) > 0.85
    assert scores[y_test == 1].mean() > 10 * scores[y_test == 0].mean()
    w = class_weights(y, 2)
    assert w[1] / w[0] == pytest.approx(497 / 3)


def test_stratified_batches_spread_the_positives() -> None:
    y = np.zeros(400, dtype=np.int64)
    y[:4] = 1
    batches = epoch_batches(y, 100, np.random.default_rng(0))
    assert len(batches) == 4  # one pass; the step plan decides how many passes
    assert sorted(np.concatenate(batches).tolist()) == list(range(400))
    assert [int(y[b].sum()) for b in batches] == [1, 1, 1, 1]


def test_deterministic_by_seed_and_global_rng_untouched() -> None:
    x, y = rare_positive_task(120, 12, seed=4)
    budget = FinetuneConfig(epochs=3, batch_size=32, patience=2, min_steps=30)

    def run(seed: int) -> np.ndarray:
        bb = backbone(0)
        model = train_classifier(bb, 2, x, y, x[:30], y[:30], budget, seed=seed, device=CPU,
                                 augment=lambda t, g: t + 0.1 * torch.randn(t.shape, generator=g))
        return predict_scores(model, x, CPU)

    state = torch.get_rng_state()
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(state, torch.get_rng_state())
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_frozen_backbone_is_not_trained_and_multiclass_scores() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 90)
    x = (rng.normal(size=(90, N_FEATURES)) + y[:, None]).astype(np.float32)
    bb = backbone()
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    budget = FinetuneConfig(epochs=10, lr=1e-2, patience=10)
    model = train_classifier(bb, 3, x, y, x[:30], y[:30], budget, seed=0, device=CPU,
                             freeze_backbone=True)
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())
    probs = predict_scores(model, x, CPU)
    assert probs.shape == (90, 3) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y).mean() > 0.6


def test_bad_labels_are_reported() -> None:
    x, y = rare_positive_task(20, 4, seed=6)
    with pytest.raises(DataError, match="labels must lie"):
        train_classifier(backbone(), 2, x, y + 1, x, y, FinetuneConfig(), seed=0, device=CPU)
