"""Collapse diagnostics: embedding std (SimSiam) and effective rank (RankMe)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from sslcore.train.collapse import (
    CollapseMonitor,
    CollapseWarning,
    effective_rank,
    embed,
    embedding_std,
)


def test_effective_rank_of_identity_is_full():
    assert effective_rank(torch.eye(16)) == pytest.approx(16, rel=1e-4)
    # Rows of a scaled orthogonal matrix: all singular values equal, so rank D too.
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))
    assert effective_rank(3.0 * q) == pytest.approx(8, rel=1e-4)


def test_effective_rank_of_rank_one_data_is_one():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 1, generator=g) @ torch.randn(1, 32, generator=g)
    assert effective_rank(z) == pytest.approx(1.0, abs=0.01)
    assert effective_rank(torch.ones(10, 5)) == pytest.approx(1.0, abs=0.01)


def test_effective_rank_bounded_by_min_dim_and_zero_for_zeros():
    z = torch.randn(4, 32, generator=torch.Generator().manual_seed(1))
    assert 1.0 < effective_rank(z) <= 4.0 + 1e-4
    assert effective_rank(torch.zeros(8, 4)) == 0.0


def test_embedding_std_healthy_vs_collapsed():
    d = 64
    z = torch.randn(4096, d, generator=torch.Generator().manual_seed(0))
    assert embedding_std(z) == pytest.approx(1 / math.sqrt(d), rel=0.05)
    assert embedding_std(torch.ones(32, d) * 5) == pytest.approx(0.0, abs=1e-6)
    assert embedding_std(torch.zeros(32, d)) == 0.0


def test_stats_accept_bf16_and_extra_dims():
    z = torch.randn(32, 2, 8, generator=torch.Generator().manual_seed(0)).bfloat16()
    assert 0 < embedding_std(z) < 1
    assert 1 < effective_rank(z) <= 16


def test_stats_need_two_rows():
    with pytest.raises(ValueError, match="at least 2"):
        embedding_std(torch.randn(1, 4))


def test_monitor_warns_once_on_collapse():
    monitor = CollapseMonitor(std_threshold=0.01)
    constant = torch.full((32, 16), 0.5)
    with pytest.warns(CollapseWarning, match="collapsed at step 10") as record:
        stats = monitor.update(constant, step=10)
        monitor.update(constant, step=20)  # no second warning
    assert len(record) == 1
    assert monitor.warned and monitor.is_collapsed(stats)
    assert [h["step"] for h in monitor.history] == [10.0, 20.0]


def test_monitor_records_but_does_not_warn_during_the_warmup():
    monitor = CollapseMonitor(std_threshold=0.01, grace_steps=10)
    constant = torch.full((32, 16), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor.update(constant, step=10)
    assert not monitor.warned and len(monitor.history) == 1
    with pytest.warns(CollapseWarning, match="collapsed at step 12"):
        monitor.update(constant, step=12)


def test_monitor_silent_on_random_embeddings():
    monitor = CollapseMonitor(std_threshold=0.01)
    g = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        for step in range(3):
            stats = monitor.update(torch.randn(64, 16, generator=g), step=step)
    assert not monitor.warned
    assert stats["embedding_std"] > 0.2 and stats["effective_rank"] > 10


def test_monitor_warns_on_dimensional_collapse():
    # Spread out along one direction only: std is fine, the rank gives it away.
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 1, generator=g) @ torch.randn(1, 16, generator=g)
    with pytest.warns(CollapseWarning, match="effective_rank"):
        stats = CollapseMonitor(std_threshold=0.01).update(z, step=1)
    assert stats["embedding_std"] > 0.01


def test_embed_leaves_no_trace():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.5))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    z = embed(net, torch.randn(16, 4), bf16=True)
    assert z.shape == (16, 8) and not z.requires_grad and net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm running stats untouched
