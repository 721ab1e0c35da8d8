"""The patchtst backbone: transformers' PatchTSTModel under the sequence-backbone interface,
initialised from a PatchTST pretrained elsewhere (a save_pretrained directory made here) on
other sensors and another window, pretrained further with masked_patches, exported and read
back by sslcore and by transformers."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json

import numpy as np
import pytest
import torch

from sslcore.export import SPEC_FILE, backbone_spec, export
from sslcore.sdk import ConfigError, InitMismatchError
from sslcore.train.checkpoint import save_checkpoint
from sslcore_sensor_maintenance.backbones.patchtst import PatchTSTBackbone, PatchTSTParams
from sslcore_sensor_maintenance.pretext.masked_patches import MaskedPatches, MaskedPatchesParams


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A PatchTST masked-pretraining model of 7 sensors and 96 steps (12 patches of 8)."""
    from transformers import PatchTSTConfig, PatchTSTForPretraining

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("patchtst") / "model"
    PatchTSTForPretraining(PatchTSTConfig(
        num_input_channels=7, context_length=96, patch_length=8, patch_stride=8, d_model=32,
        num_attention_heads=4, num_hidden_layers=2, ffn_dim=64)).save_pretrained(d)
    return d


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_init_from_a_huggingface_directory(pretrained) -> None:
    from transformers import PatchTSTModel

    enc = PatchTSTBackbone(PatchTSTParams(), input_shape=(5, 61), init=str(pretrained))
    report = enc.init_report
    assert report.kind == "transformers" and report.fraction == 1.0 and report.scope == "model"
    # 61 steps: 8 patches (start padded); the 12-patch position table is interpolated.
    assert report.adapted == ["encoder.positional_encoder.position_enc: (12, 32) -> (8, 32)"]
    assert report.dropped == ["head.linear.bias", "head.linear.weight"]  # the pretrain head
    assert (enc.d_model, enc.token_len, enc.token_dim) == (32, 8, 5 * 32)
    src = PatchTSTModel.from_pretrained(pretrained)
    torch.testing.assert_close(enc.model.encoder.layers[1].ff[0].weight,
                               src.encoder.layers[1].ff[0].weight)
    x = torch.randn(3, 5, 61)
    assert enc.eval()(x).shape == (3, 128)
    assert enc.tokens(enc.normalize(x[..., -24:])).shape == (3, 3, 160)  # a shorter crop
    with pytest.raises(ConfigError, match="patch_len: 16 contradicts patch_length=8"):
        PatchTSTBackbone(PatchTSTParams(patch_len=16), input_shape=(5, 64), init=str(pretrained))


def test_masked_patch_pretraining_trains_the_pretrained_encoder(pretrained) -> None:
    enc = PatchTSTBackbone(PatchTSTParams(dropout=0.0), input_shape=(5, 64),
                           init=str(pretrained))
    enc.fit_normalizer(np.random.default_rng(0).normal(size=(32, 5, 64)))
    task = MaskedPatches(MaskedPatchesParams(sensor_mask_prob=0.0), backbone=enc,
                         input_shape=(5, 64))
    loss = task.loss(torch.randn(8, 5, 64), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert enc.model.encoder.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    assert enc.reconstruction.weight.grad.abs().sum() > 0


def test_export_round_trip_and_plain_transformers(pretrained, tmp_path) -> None:
    from transformers import AutoModel

    params = {"dropout": 0.0}
    enc = PatchTSTBackbone(PatchTSTParams(**params), input_shape=(5, 64), init=str(pretrained))
    enc.fit_normalizer(np.random.default_rng(0).normal(2.0, 3.0, size=(32, 5, 64)))
    ckpt = tmp_path / "checkpoints"
    save_checkpoint(ckpt / "last.pt", {"model": {f"backbone.{k}": v
                                                 for k, v in enc.state_dict().items()}})
    (ckpt / SPEC_FILE).write_text(json.dumps(backbone_spec("patchtst", params, (5, 64), enc)))
    out = export(ckpt, tmp_path / "export")
    x = torch.randn(4, 5, 64) * 3 + 2
    again = PatchTSTBackbone(PatchTSTParams(**params), input_shape=(5, 64), init=str(out))
    assert again.init_report.kind == "sslcore" and again.init_report.fraction == 1.0
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), enc.eval()(x))
        plain = AutoModel.from_pretrained(out).eval()  # a PatchTSTModel, no sslcore needed
        z = enc.normalize(x).transpose(1, 2)
        torch.testing.assert_close(plain(past_values=z).last_hidden_state,
                                   enc.model(past_values=z).last_hidden_state)


def test_a_vision_model_is_not_a_patchtst(tmp_path) -> None:
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, image_size=32)).save_pretrained(tmp_path / "vit")
    with pytest.raises(InitMismatchError, match="'vit' model; the patchtst backbone"):
        PatchTSTBackbone(PatchTSTParams(), input_shape=(5, 64), init=str(tmp_path / "vit"))
