"""DINO's pieces against small hand-computed cases: temperature schedule, centering, loss, EMA,
weight-normalized prototypes, multi-crop views, pickling and exact checkpoint resume."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import nn

from sslcore.config import PretrainConfig
from sslcore.train.pretrain import pretrain_encoder
from sslcore_satellite.dino import DINO, DINOParams
from sslcore_satellite.dino_head import DINOHead
from sslcore_satellite.dino_loss import DINOLoss, dino_cross_entropy, teacher_temperature
from sslcore_satellite.multicrop import (MultiCrop, MultiCropParams, crop_flip_rotate,
                                         photometric)


class TinyConv(nn.Module):
    """A backbone small enough for exact tests; any input size (global and local crops)."""

    embed_dim = 6

    def __init__(self, channels: int = 13) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 6, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


def tiny_dino(**overrides) -> DINO:
    torch.manual_seed(0)
    params = DINOParams(out_dim=16, hidden_dim=8, bottleneck_dim=4, n_local_crops=2,
                        **overrides)
    return DINO(params, backbone=TinyConv(), input_shape=(13, 16, 16))


def test_teacher_temperature_warms_up_linearly_then_stays():
    assert teacher_temperature(0, 0.04, 0.07, 10) == pytest.approx(0.04)
    assert teacher_temperature(5, 0.04, 0.07, 10) == pytest.approx(0.055)
    assert teacher_temperature(10, 0.04, 0.07, 10) == pytest.approx(0.07)
    assert teacher_temperature(500, 0.04, 0.07, 10) == pytest.approx(0.07)
    assert teacher_temperature(0, 0.04, 0.07, 0) == pytest.approx(0.07)  # no warm-up


def test_center_is_an_ema_of_teacher_batch_means_applied_once_per_step():
    loss_fn = DINOLoss(out_dim=3, center_momentum=0.9)
    student = torch.zeros(4, 3)  # 2 crops x batch 2
    loss_fn(student, torch.tensor([[1.0, 2, 3], [3, 4, 5]]), n_crops=2, step=0)
    assert torch.equal(loss_fn.center, torch.zeros(1, 3))  # a loss never moves the center
    loss_fn.update_center()
    assert torch.allclose(loss_fn.center, torch.tensor([[0.2, 0.3, 0.4]]))
    # Two micro-batches in one step (gradient accumulation): one update, by their mean.
    loss_fn(student, torch.tensor([[0.0, 0, 0], [2, 2, 2]]), n_crops=2, step=1)
    loss_fn(student, torch.tensor([[4.0, 4, 4], [2, 2, 2]]), n_crops=2, step=1)
    loss_fn.update_center()
    expected = 0.9 * torch.tensor([[0.2, 0.3, 0.4]]) + 0.1 * torch.tensor([[2.0, 2, 2]])
    assert torch.allclose(loss_fn.center, expected)
    loss_fn.update_center()  # nothing pending: no change
    assert torch.allclose(loss_fn.center, expected)


def test_loss_matches_a_hand_computed_cross_entropy_over_crop_pairs():
    # 2 global crops + 1 local crop, batch 1, K = 2 prototypes; center c = [0.5, 0].
    loss_fn = DINOLoss(out_dim=2, student_temp=0.5, teacher_temp=1.0)
    loss_fn.center.copy_(torch.tensor([[0.5, 0.0]]))
    teacher = torch.tensor([[1.5, 0.0], [0.5, 1.0]])
    student = torch.tensor([[0.0, 0.5], [1.0, 0.0], [0.25, 0.25]])

    def softmax(v):
        e = [math.exp(a) for a in v]
        return [a / sum(e) for a in e]

    p_t = [softmax([1.0, 0.0]), softmax([0.0, 1.0])]  # (t - c) / 1
    log_s = [[math.log(p) for p in softmax([a / 0.5 for a in s])] for s in student.tolist()]
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]
    expected = sum(-sum(p * l for p, l in zip(p_t[i], log_s[v])) for i, v in pairs) / 4
    got = loss_fn(student, teacher, n_crops=3, step=0)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert dino_cross_entropy(student.view(3, 1, 2), torch.tensor(p_t).view(2, 1, 2),
                              0.5).item() == pytest.approx(expected, rel=1e-6)


def _student_ones_teacher_zeros(task: DINO) -> None:
    with torch.no_grad():
        for p in task.backbone.parameters():
            p.fill_(1.0)
        for p in task.teacher_backbone.parameters():
            p.fill_(0.0)


def test_teacher_momentum_follows_a_cosine_over_the_runs_steps():
    """m_k = 1 - (1 - m_0)(cos(pi k / K) + 1) / 2, with K from on_train_begin when unset."""
    task = tiny_dino(momentum=0.9, total_steps=None)
    task.on_train_begin(4)
    seen = []
    for _ in range(5):
        _student_ones_teacher_zeros(task)
        task.on_step_end()
        seen.append(1.0 - next(task.teacher_backbone.parameters()).flatten()[0].item())
    assert seen == pytest.approx([0.9, 0.9 + 0.1 * (1 - math.cos(math.pi / 4)) / 2, 0.95,
                                  0.9 + 0.1 * (1 - math.cos(3 * math.pi / 4)) / 2, 1.0])
    fixed = tiny_dino(momentum=0.9, total_steps=2)
    fixed.on_train_begin(100)  # an explicit total_steps wins
    assert fixed.total_steps == 2


def test_on_step_end_moves_the_teacher_by_the_ema_and_counts_steps():
    task = tiny_dino(momentum=0.9, total_steps=None)
    _student_ones_teacher_zeros(task)
    task.on_step_end()
    for p in task.teacher_backbone.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.1))
    task.on_step_end()  # 0.9 * 0.1 + 0.1 * 1
    for p in task.teacher_backbone.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.19))
    assert int(task.step) == 2
    assert not any(p.requires_grad for p in task.teacher_backbone.parameters())
    assert not any(p.requires_grad for p in task.teacher_head.parameters())
    assert not task.teacher_backbone.training and task.training


def test_weight_normalized_prototypes_keep_unit_norm_through_training():
    head = DINOHead(6, out_dim=5, hidden_dim=8, bottleneck_dim=4, norm_last_layer=True)
    g = head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.equal(g, torch.ones_like(g))
    opt = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=1.0)
    head(torch.randn(7, 6)).square().sum().backward()
    opt.step()
    norms = head.last_layer.weight.norm(dim=1)
    assert torch.allclose(norms, torch.ones(5), atol=1e-5)
    free = DINOHead(6, out_dim=5, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    assert free.last_layer.parametrizations.weight.original0.requires_grad


def test_frozen_last_layer_gets_zero_gradient():
    head = DINOHead(6, out_dim=5, hidden_dim=8, bottleneck_dim=4)
    head(torch.randn(3, 6), freeze_last_layer=True).sum().backward()
    v = head.last_layer.parametrizations.weight.original1
    assert v.grad is not None and torch.count_nonzero(v.grad) == 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.mlp.parameters())


def test_multicrop_shapes_and_determinism_for_13_bands():
    views = MultiCrop(MultiCropParams(n_local_crops=3), input_size=16)
    x = torch.rand(4, 13, 16, 16)
    glob, loc = views(x, torch.Generator().manual_seed(0))
    assert glob.shape == (8, 13, 16, 16) and loc.shape == (12, 13, 8, 8)
    glob2, loc2 = views(x, torch.Generator().manual_seed(0))
    assert torch.equal(glob, glob2) and torch.equal(loc, loc2)
    assert not torch.equal(glob[:4], glob[4:])  # two different global views per image
    assert torch.isfinite(loc).all()


def test_full_crop_is_exactly_one_of_the_eight_flips_and_rotations():
    x = torch.rand(64, 2, 8, 8)
    out = crop_flip_rotate(x, torch.Generator().manual_seed(1), size=8, scale=(1.0, 1.0),
                           ratio=(1.0, 1.0))
    seen = set()
    for i in range(len(x)):
        candidates = [x[i].rot90(k, dims=(-2, -1)) for k in range(4)]
        candidates += [c.flip(-1) for c in candidates]
        match = [j for j, c in enumerate(candidates) if torch.allclose(out[i], c, atol=1e-5)]
        assert match, f"sample {i} is not a flip/rotation of its tile"
        seen.add(match[0])
    assert len(seen) == 8  # all eight symmetries are drawn


def test_photometric_identity_and_band_dropout():
    x = torch.rand(16, 13, 4, 4)
    g = torch.Generator().manual_seed(0)
    same = photometric(x, g, brightness=0.0, contrast=0.0, band_gain=0.0, band_dropout_p=0.0)
    assert torch.allclose(same, x, atol=1e-6)
    dropped = photometric(x, g, brightness=0.0, contrast=0.0, band_gain=0.0,
                          band_dropout_p=1.0)
    kept = (dropped.abs().sum(dim=(2, 3)) > 0).sum(dim=1)
    assert kept.tolist() == [1] * 16  # every band drawn, one kept per sample
    jit = photometric(x, g, brightness=0.3, contrast=0.3, band_gain=0.1, band_dropout_p=0.0,
                      p=1.0)
    ratio = (jit - jit.mean(dim=(2, 3), keepdim=True)).std() / (x - x.mean(dim=(2, 3),
                                                                           keepdim=True)).std()
    assert 0.5 < float(ratio) < 1.6 and not torch.allclose(jit, x)


def test_pickle_keeps_frozen_teacher_and_state():
    task = tiny_dino(total_steps=10)
    task.on_step_end()
    back = pickle.loads(pickle.dumps(task))
    assert int(back.step) == 1
    assert not any(p.requires_grad for p in back.teacher_head.parameters())
    for (k, a), (_, b) in zip(task.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


class _Interrupt(Exception):
    pass


@pytest.mark.filterwarnings("ignore:embeddings look collapsed")  # a 6-d toy encoder
def test_checkpoint_resume_continues_exactly(tmp_path):
    """A run killed after step 5 (last checkpoint: step 3, mid-epoch) and resumed matches an
    uninterrupted run: teacher, center, step counter and schedules are all restored."""
    x = torch.rand(32, 13, 16, 16).numpy()
    cfg = PretrainConfig(epochs=2, batch_size=8, lr=1e-3, bf16=False, checkpoint_every=3,
                         log_every=1)
    params = {"total_steps": 8, "warmup_teacher_temp_steps": 4, "teacher_temp": 0.07}
    straight = tiny_dino(**params)
    full = pretrain_encoder(straight, x, cfg, checkpoint_dir=tmp_path / "a", progress=False)

    def kill_at_step_5(metrics, step):
        if step == 5:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        pretrain_encoder(tiny_dino(**params), x, cfg, checkpoint_dir=tmp_path / "b",
                         progress=False, on_metrics=kill_at_step_5)
    resumed = tiny_dino(**params)
    rest = pretrain_encoder(resumed, x, cfg, checkpoint_dir=tmp_path / "b", resume=True,
                            progress=False)
    assert rest.resumed_from_step == 3 and int(resumed.step) == 8
    assert rest.losses == pytest.approx(full.losses, rel=1e-6, abs=1e-7)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(),
                              strict=True):
        assert torch.allclose(a, b, atol=1e-6), k
