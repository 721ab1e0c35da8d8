"""Layer-wise learning-rate decay: which layer each parameter is, and the fine-tuning groups."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from torch import nn

from sslcore.builtins.backbones.hf_vision import HFVisionBackbone, HFVisionParams
from sslcore.builtins.backbones.mlp import MLPBackbone, MLPParams
from sslcore.builtins.backbones.timm_backbone import ResNet18Params, resnet18
from sslcore.builtins.heads import finetune as finetune_head
from sslcore.config import FinetuneConfig
from sslcore.train import supervised
from sslcore.train.layer_decay import layer_decay_groups, layer_ids

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py
CPU = torch.device("cpu")


def _mlp() -> MLPBackbone:
    torch.manual_seed(0)
    return MLPBackbone(MLPParams(hidden_dims=[16, 16], embed_dim=8, norm="batchnorm"),
                       input_shape=(6,))


def test_mlp_layers_follow_the_module_order_with_norms_joined_to_their_linear() -> None:
    ids = layer_ids(_mlp())
    assert ids == {"net.0.weight": 0, "net.0.bias": 0, "net.1.weight": 0, "net.1.bias": 0,
                   "net.4.weight": 1, "net.4.bias": 1, "net.5.weight": 1, "net.5.bias": 1,
                   "net.8.weight": 2, "net.8.bias": 2}


def test_timm_resnet_uses_timms_own_grouping_stem_first_last_block_on_top() -> None:
    ids = layer_ids(resnet18(ResNet18Params(), input_shape=(3, 32, 32)))
    assert ids["model.conv1.weight"] == 0
    assert ids["model.layer1.0.conv1.weight"] < ids["model.layer2.0.conv1.weight"] \
        < ids["model.layer4.1.conv2.weight"] == max(ids.values()) == 8  # stem + 8 blocks


def test_transformers_vit_groups_embeddings_each_layer_then_the_final_norm() -> None:
    enc = HFVisionBackbone(HFVisionParams(hidden_size=32, num_hidden_layers=3,
                                          num_attention_heads=2, intermediate_size=64),
                           input_shape=(3, 32, 32))
    ids = layer_ids(enc)
    assert ids["model.embeddings.cls_token"] == ids["model.embeddings.patch_embeddings."
                                                    "projection.weight"] == 0
    assert [ids[f"model.layers.{i}.mlp.fc2.weight"] for i in range(3)] == [1, 2, 3]
    assert ids["model.layernorm.weight"] == 4 == max(ids.values())


class _Sequence(nn.Module):
    """A backbone with its own parameter and a TransformerEncoder: the fallback opens it."""

    embed_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.zeros(1, 4, 8))
        self.embed = nn.Linear(3, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.encoder(self.embed(x) + self.position)).mean(1)


def test_fallback_opens_containers_and_puts_own_parameters_first() -> None:
    ids = layer_ids(_Sequence())
    assert ids["position"] == ids["embed.weight"] == 0
    assert ids["encoder.layers.0.linear1.weight"] == 1
    assert ids["encoder.layers.1.linear1.weight"] == ids["norm.weight"] == 2


def test_groups_decay_towards_the_input_and_cover_every_parameter_once() -> None:
    enc = _mlp()
    groups = layer_decay_groups(enc, lr=1.0, weight_decay=0.1, decay=0.5)
    lr_of = {g["layer"]: g["lr"] for g in groups}
    assert lr_of == {0: 0.125, 1: 0.25, 2: 0.5}  # the top layer one step below the head
    assert {g["weight_decay"] for g in groups} == {0.1}  # no 1-d exclusion: as without decay
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in enc.parameters())
    with pytest.raises(ValueError, match="layer decay"):
        layer_decay_groups(enc, lr=1.0, weight_decay=0.0, decay=1.5)


class _RecordingAdamW(torch.optim.AdamW):
    made: list[list[dict]] = []

    def __init__(self, params, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, **kw)
        _RecordingAdamW.made.append([dict(g) for g in self.param_groups])


def _data(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    return rng.normal(size=(n, 6)).astype(np.float32) + y[:, None], y


@pytest.mark.parametrize("decay", [None, 1.0, 0.5])
def test_finetuning_optimizer_gives_the_head_full_lr_and_deeper_layers_more(
        monkeypatch, decay) -> None:
    _RecordingAdamW.made = []
    monkeypatch.setattr(supervised.torch.optim, "AdamW", _RecordingAdamW)
    x, y = _data()
    budget = FinetuneConfig(steps=1, lr=0.02, batch_size=16, layer_decay=decay)
    model = supervised.train_classifier(_mlp(), 2, x, y, x[:0], y[:0], budget, seed=0,
                                        device=CPU, backbone_lr_scale=0.5,
                                        layer_decay=budget.layer_decay)
    (groups,) = _RecordingAdamW.made
    head_ids = {id(p) for p in model.head.parameters()}
    head = [g for g in groups if {id(p) for p in g["params"]} == head_ids]
    assert len(head) == 1 and head[0]["lr"] == pytest.approx(0.02)
    body = [g for g in groups if g is not head[0]]
    if decay in (None, 1.0):  # off: one backbone group at lr x backbone_lr_scale
        assert [g["lr"] for g in body] == [pytest.approx(0.01)]
        return
    lrs = [g["lr"] for g in sorted(body, key=lambda g: g["layer"])]
    assert lrs == pytest.approx([0.01 * 0.125, 0.01 * 0.25, 0.01 * 0.5])


def test_finetune_head_passes_the_budgets_layer_decay(monkeypatch) -> None:
    seen = {}

    def fake_train(*args, **kw):  # type: ignore[no-untyped-def]
        seen.update(kw)
        raise RuntimeError("stop here")

    monkeypatch.setattr(finetune_head, "train_classifier", fake_train)

    class Ctx:
        encoder, device, num_classes, seed, augment = _mlp(), CPU, 2, 0, None
        x_train = x_val = np.zeros((4, 6), np.float32)
        y_train = y_val = np.array([0, 1, 0, 1])
        budget = FinetuneConfig(layer_decay=0.7)

    with pytest.raises(RuntimeError, match="stop here"):
        finetune_head.Finetune().fit(Ctx())  # type: ignore[arg-type]
    assert seen["layer_decay"] == 0.7
