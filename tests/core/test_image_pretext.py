"""Image SSL objectives: NT-Xent, BYOL's EMA schedule, MAE masking, against hand computations."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math

import numpy as np
import pytest
import torch

from sslcore.builtins.augmentations.image import RandomResizedCrop, RandomResizedCropParams
from sslcore.builtins.backbones.timm_backbone import (
    ResNet18Params,
    ViTTinyParams,
    resnet18,
    vit_tiny,
)
from sslcore.builtins.pretext import simclr as simclr_module
from sslcore.builtins.pretext.byol import BYOL, BYOLParams, cosine_momentum, ema_update_
from sslcore.builtins.pretext.mae import MAE, MAEParams, patchify, random_masking
from sslcore.builtins.pretext.simclr import SimCLR, SimCLRParams, nt_xent
from sslcore.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py

VIEWS = RandomResizedCrop(RandomResizedCropParams(scale=(0.5, 1.0)))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small_resnet(shape=(1, 16, 16)):
    torch.manual_seed(0)
    return resnet18(ResNet18Params(), input_shape=shape)


# ----------------------------------------------------------------------------- SimCLR

def _nt_xent_by_hand(z1: np.ndarray, z2: np.ndarray, t: float) -> np.ndarray:
    """Per-anchor NT-Xent, written as the paper's sum: -log(e^{s_pos} / sum_{k != i} e^{s_ik})."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    n = n2 // 2
    losses = []
    for i in range(n2):
        pos = (i + n) % n2
        denom = sum(math.exp(z[i] @ z[k] / t) for k in range(n2) if k != i)
        losses.append(-(z[i] @ z[pos] / t - math.log(denom)))
    return np.array(losses)


def test_nt_xent_matches_a_hand_computed_case() -> None:
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z2 = torch.tensor([[0.8, 0.2], [-0.1, 1.0], [1.0, 0.7]])
    expected = _nt_xent_by_hand(z1.numpy(), z2.numpy(), 0.5).mean()
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(expected, rel=1e-5)
    z, w = torch.randn(8, 5), torch.randn(8, 5)
    expected = _nt_xent_by_hand(z.numpy(), w.numpy(), 0.2).mean()
    assert nt_xent(z, w, 0.2).item() == pytest.approx(expected, rel=1e-5)


def test_nt_xent_is_float32_under_bf16_autocast() -> None:
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = nt_xent(z1.bfloat16(), z2.bfloat16(), 0.2)
    assert out.dtype == torch.float32


def test_nt_xent_uses_negatives_from_every_rank(monkeypatch) -> None:
    """Rank 1 of 2: its loss is the full-batch loss averaged over rank 1's own anchors."""
    torch.manual_seed(0)
    n = 3
    g1, g2 = torch.randn(2 * n, 4), torch.randn(2 * n, 4)  # the global batch, both views
    per_anchor = _nt_xent_by_hand(g1.numpy(), g2.numpy(), 0.3)
    mine = np.r_[n:2 * n, 2 * n + n:4 * n]  # rank 1's rows of view 1 and of view 2
    monkeypatch.setattr(simclr_module, "rank", lambda: 1)
    gathered = {}

    def fake_gather(t: torch.Tensor) -> torch.Tensor:
        full = g1 if not gathered else g2
        gathered[len(gathered)] = True
        other = torch.nn.functional.normalize(full[:n], dim=1)
        return torch.cat([other, t])  # rank 0's rows (no grad), then this rank's

    monkeypatch.setattr(simclr_module, "gather_with_grad", fake_gather)
    z1 = g1[n:].clone().requires_grad_(True)
    loss = nt_xent(z1, g2[n:], 0.3)
    assert loss.item() == pytest.approx(per_anchor[mine].mean(), rel=1e-5)
    loss.backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all()


def test_simclr_needs_augmentations_and_trains_the_backbone() -> None:
    with pytest.raises(ConfigError, match="augmentations"):
        SimCLR(SimCLRParams(), backbone=small_resnet(), augment=None)
    task = SimCLR(SimCLRParams(), backbone=small_resnet(), augment=VIEWS)
    loss = task.loss(torch.rand(6, 1, 16, 16), gen())
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert task.backbone.model.conv1.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- BYOL

def test_cosine_momentum_schedule() -> None:
    assert cosine_momentum(0, 0.99, 100) == pytest.approx(0.99)
    assert cosine_momentum(50, 0.99, 100) == pytest.approx(0.995)
    assert cosine_momentum(25, 0.9, 100) == pytest.approx(1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2)
    assert cosine_momentum(100, 0.99, 100) == 1.0
    assert cosine_momentum(500, 0.99, 100) == 1.0
    assert cosine_momentum(500, 0.99, None) == 0.99


def test_ema_update_by_hand() -> None:
    target, online = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        target.weight.copy_(torch.tensor([1.0, 2.0]))
        online.weight.copy_(torch.tensor([3.0, -2.0]))
        online.running_mean.copy_(torch.tensor([5.0, 6.0]))
    ema_update_(target, online, 0.75)
    torch.testing.assert_close(target.weight.data, torch.tensor([1.5, 1.0]))  # .75 t + .25 o
    torch.testing.assert_close(target.running_mean, torch.tensor([5.0, 6.0]))  # copied


def test_byol_target_follows_the_schedule_and_resumes_exactly() -> None:
    task = BYOL(BYOLParams(base_momentum=0.9, total_steps=4, proj_hidden_dim=32,
                           pred_hidden_dim=32, proj_dim=16), backbone=small_resnet(),
                augment=VIEWS)
    target_params = list(task.target_backbone.parameters()) + \
        list(task.target_projector.parameters())
    assert target_params and not any(p.requires_grad for p in target_params)  # DDP ignores them
    loss = task.loss(torch.rand(6, 1, 16, 16), gen())
    assert torch.isfinite(loss) and 0 <= loss <= 4
    loss.backward()
    assert all(p.grad is None for p in target_params)
    assert task.backbone.model.conv1.weight.grad.abs().sum() > 0

    with torch.no_grad():
        task.backbone.model.conv1.weight.add_(1.0)  # as if an optimizer step moved it
    before = task.target_backbone.model.conv1.weight.clone()
    online = task.backbone.model.conv1.weight.clone()
    task.on_step_end()  # step 0: momentum 0.9
    torch.testing.assert_close(task.target_backbone.model.conv1.weight, 0.9 * before + 0.1 * online)
    assert int(task.ema_step) == 1
    assert task.momentum == pytest.approx(1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2)

    resumed = BYOL(BYOLParams(base_momentum=0.9, total_steps=4, proj_hidden_dim=32,
                              pred_hidden_dim=32, proj_dim=16), backbone=small_resnet(),
                   augment=VIEWS)
    resumed.load_state_dict(task.state_dict())
    assert int(resumed.ema_step) == 1 and resumed.momentum == task.momentum
    for _ in range(5):
        task.on_step_end()
    assert task.momentum == 1.0  # past total_steps the target is frozen
    with pytest.raises(ConfigError, match="augmentations"):
        BYOL(BYOLParams(), backbone=small_resnet(), augment=None)


# ----------------------------------------------------------------------------- MAE

def test_random_masking_hides_exactly_the_ratio_per_sample() -> None:
    ids_keep, mask, ids_restore = random_masking(5, 64, 0.75, gen(), torch.device("cpu"))
    assert ids_keep.shape == (5, 16)
    assert (mask.sum(dim=1) == 48).all()
    for row in range(5):
        visible = set(ids_keep[row].tolist())
        assert visible == set((mask[row] == 0).nonzero().flatten().tolist())
    assert len({tuple(sorted(r.tolist())) for r in ids_keep}) == 5  # a different mask per image
    again, _, _ = random_masking(5, 64, 0.75, gen(), torch.device("cpu"))
    assert torch.equal(again, ids_keep)
    assert torch.equal(ids_restore.argsort(dim=1).argsort(dim=1), ids_restore)


def test_patchify_orders_patches_row_major() -> None:
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 6)
    p = patchify(x, (2, 2))
    assert p.shape == (1, 6, 8)
    # patch 4 = second row of patches, second column: pixels rows 2-3, cols 2-3, channels last
    expected = torch.stack([x[0, :, 2, 2], x[0, :, 2, 3], x[0, :, 3, 2], x[0, :, 3, 3]]).flatten()
    torch.testing.assert_close(p[0, 4], expected)


def test_mae_reconstructs_hidden_patches_of_a_vit() -> None:
    torch.manual_seed(0)
    enc = vit_tiny(ViTTinyParams(patch_size=4), input_shape=(2, 16, 16))
    task = MAE(MAEParams(decoder_dim=32, decoder_heads=2), backbone=enc, augment=None)
    x = torch.rand(4, 2, 16, 16)
    loss = task.loss(x, gen())
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0.5  # ~1 for normalized targets
    loss.backward()
    assert enc.model.patch_embed.proj.weight.grad.abs().sum() > 0
    unused = [n for n, p in task.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f"parameters outside the loss break DDP: {unused}"
    opt = torch.optim.AdamW(task.parameters(), lr=3e-3)
    first = None
    for step in range(25):
        loss = task.loss(x, gen(step))
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    with pytest.raises(ConfigError, match="Vision Transformer"):
        MAE(MAEParams(), backbone=small_resnet(), augment=None)
    pooled = vit_tiny(ViTTinyParams(patch_size=4, global_pool="avg"), input_shape=(2, 16, 16))
    task = MAE(MAEParams(decoder_dim=32, decoder_heads=2), backbone=pooled, augment=None)
    task.loss(x, gen()).backward()  # the avg-pool ViT's fc_norm ends the encoder instead
    assert pooled.model.fc_norm.weight.grad is not None
    assert not [n for n, p in task.named_parameters() if p.requires_grad and p.grad is None]
    shrink = RandomResizedCrop(RandomResizedCropParams(size=8))
    with pytest.raises(DataError, match="patch grid"):
        MAE(MAEParams(decoder_dim=32, decoder_heads=2), backbone=enc, augment=shrink).loss(x, gen())
