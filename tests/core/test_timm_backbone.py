"""The timm image backbone: channels and size from the data, the normalizer, errors, no network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pickle

import numpy as np
import pytest
import torch

from sslcore.builtins.backbones.geometry import choose_patch_size
from sslcore.builtins.backbones.timm_backbone import (
    ResNet18Params,
    TimmBackbone,
    TimmParams,
    ViTTinyParams,
    resnet18,
    vit_patch_size,
    vit_tiny,
)
from sslcore.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    """Any attempt to fetch pretrained weights fails the test."""
    import timm.models._builder as builder

    def refuse(*args, **kwargs):
        raise AssertionError("the backbone tried to load pretrained weights")

    monkeypatch.setattr(builder, "load_pretrained", refuse)


@pytest.mark.parametrize("channels", [1, 13])
def test_resnet18_takes_its_channels_from_the_data(channels: int) -> None:
    enc = resnet18(ResNet18Params(), input_shape=(channels, 32, 32))
    assert enc.model.conv1.in_channels == channels
    assert enc.embed_dim == 512 == enc.model.num_features
    assert enc(torch.rand(2, channels, 32, 32)).shape == (2, 512)


def test_vit_tiny_has_8px_patches_at_the_data_size() -> None:
    enc = vit_tiny(ViTTinyParams(), input_shape=(1, 64, 64))
    assert tuple(enc.model.patch_embed.patch_size) == (8, 8)
    assert tuple(enc.model.patch_embed.grid_size) == (8, 8)  # 64 tokens
    assert enc.model.pos_embed.shape == (1, 1 + 64, 192)
    assert enc.embed_dim == 192
    assert enc(torch.rand(2, 1, 64, 64)).shape == (2, 192)
    assert enc(torch.rand(2, 1, 32, 32)).shape == (2, 192)  # smaller multi-crop views
    with pytest.raises(ConfigError, match="8 px patches do not divide the 36 x 36"):
        vit_tiny(ViTTinyParams(patch_size=8), input_shape=(1, 36, 36))


def test_normalizer_matches_per_channel_statistics_and_travels() -> None:
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(40, 3, 8, 8)).astype(np.float32)
    pool *= np.array([1.0, 5.0, 0.1], dtype=np.float32).reshape(1, 3, 1, 1)
    pool += np.array([0.0, 100.0, -2.0], dtype=np.float32).reshape(1, 3, 1, 1)
    pool[:, 2] = 7.0  # a constant band: std 1, no division by zero
    enc = resnet18(ResNet18Params(), input_shape=(3, 8, 8))
    assert not bool(enc.normalizer_fitted)
    enc.fit_normalizer(pool)
    assert bool(enc.normalizer_fitted)
    exact = pool.astype(np.float64)
    np.testing.assert_allclose(enc.channel_mean.numpy(), exact.mean(axis=(0, 2, 3)),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(enc.channel_std.numpy()[:2], exact.std(axis=(0, 2, 3))[:2],
                               rtol=1e-5)
    assert enc.channel_std[2] == 1.0
    z = enc.normalize(torch.from_numpy(pool))
    assert z[:, :2].mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert z[:, 2].abs().max() == 0

    enc.eval()
    x = torch.from_numpy(pool[:4])
    fresh = resnet18(ResNet18Params(), input_shape=(3, 8, 8)).eval()
    fresh.load_state_dict(enc.state_dict())
    assert bool(fresh.normalizer_fitted)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), enc(x))
        torch.testing.assert_close(pickle.loads(pickle.dumps(enc))(x), enc(x))


def test_normalizer_subsamples_large_pools_and_rejects_bad_ones() -> None:
    pool = torch.rand(5000, 2, 8, 8)
    enc = resnet18(ResNet18Params(), input_shape=(2, 8, 8))
    enc.fit_normalizer(pool)  # a torch pool works too; 4096 images are read
    torch.testing.assert_close(enc.channel_mean, torch.full((2,), 0.5), atol=0.01, rtol=0)
    with pytest.raises(DataError, match=r"\(n, 2, H, W\)"):
        enc.fit_normalizer(np.zeros((4, 3, 8, 8), dtype=np.float32))
    bad = np.zeros((4, 2, 8, 8), dtype=np.float32)
    bad[1, 0, 2, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        enc.fit_normalizer(bad)
    with pytest.raises(DataError, match="expects"):
        enc(torch.rand(2, 3, 8, 8))


def test_generic_timm_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'resnet18'"):
        TimmBackbone(TimmParams(model_name="resnet_18"), input_shape=(1, 32, 32))
    with pytest.raises(ConfigError, match=r"input_shape must be \(C, H, W\)"):
        TimmBackbone(TimmParams(model_name="resnet18"), input_shape=(6,))
    with pytest.raises(ConfigError, match="patch_size is for ViTs"):
        TimmBackbone(TimmParams(model_name="resnet18", patch_size=8), input_shape=(1, 32, 32))
    with pytest.raises(ConfigError, match="in_chans"):
        TimmBackbone(TimmParams(model_name="resnet18", timm_kwargs={"in_chans": 3}),
                     input_shape=(1, 32, 32))
    with pytest.raises(ConfigError, match="timm_kwargs"):
        TimmBackbone(TimmParams(model_name="resnet18", timm_kwargs={"not_an_arg": 1}),
                     input_shape=(1, 32, 32))


def test_generic_timm_builds_vits_at_the_data_size() -> None:
    enc = TimmBackbone(TimmParams(model_name="vit_tiny_patch16_224", patch_size=4,
                                  drop_path_rate=0.1), input_shape=(13, 16, 16))
    assert tuple(enc.model.patch_embed.grid_size) == (4, 4)
    assert enc.model.patch_embed.proj.in_channels == 13
    assert enc(torch.rand(2, 13, 16, 16)).shape == (2, enc.embed_dim)


def test_tiny_cnn_inputs_run_in_float32_under_cpu_bf16_autocast() -> None:
    """torch's CPU bf16 weight gradient of a 3x3 stride-2 conv on a 1x1 map is broken."""
    no_upsampling = ResNet18Params(min_input_side=None)  # by default 16 px become 32 px
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tiny = resnet18(no_upsampling, input_shape=(1, 16, 16))(torch.rand(2, 1, 16, 16))
        small = resnet18(no_upsampling, input_shape=(1, 28, 28))(torch.rand(2, 1, 28, 28))
        upsampled = resnet18(ResNet18Params(), input_shape=(1, 16, 16))(torch.rand(2, 1, 16, 16))
    assert tiny.dtype == torch.float32
    assert small.dtype == torch.bfloat16 == upsampled.dtype
    vit = vit_tiny(ViTTinyParams(patch_size=4, global_pool="avg"), input_shape=(1, 16, 16))
    assert vit.embed_dim == 192 and vit.model.global_pool == "avg"
    assert vit(torch.rand(2, 1, 16, 16)).shape == (2, 192)


# --- geometry from the data: patch size, padding, CNN upsampling, minimum size -------------

@pytest.mark.parametrize("h, w, largest, expected", [
    (224, 224, 16, 16), (64, 64, 16, 16), (32, 32, 16, 8), (16, 16, 16, 4), (8, 8, 16, 2),
    (25, 25, 16, 4), (28, 28, 16, 4), (20, 40, 16, 4), (64, 64, 8, 8), (14, 14, 14, 2),
    (128, 128, 14, 14)])
def test_auto_patch_is_the_largest_giving_at_least_16_whole_patches(h, w, largest, expected):
    p = choose_patch_size(h, w, largest)
    assert p == expected
    assert (h // p) * (w // p) >= 16


@pytest.mark.parametrize("side, patch, tokens, padded", [
    (64, 16, 16, None), (32, 8, 16, None), (25, 4, 49, (28, 28)), (8, 2, 16, None)])
def test_auto_patch_vit_runs_on_the_data_size(side, patch, tokens, padded) -> None:
    enc = TimmBackbone(TimmParams(model_name="vit_tiny_patch16_224",
                                  timm_kwargs={"depth": 1}), input_shape=(3, side, side))
    g = enc.geometry
    assert (g.patch, g.tokens, g.padded_to, g.patch_rule) == (patch, tokens, padded, "auto")
    assert vit_patch_size(enc.model) == (patch, patch)
    assert enc(torch.rand(2, 3, side, side)).shape == (2, enc.embed_dim)
    assert enc.geometry.as_tags()["sslcore.geometry.tokens"] == str(tokens)


def test_forced_and_architecture_patches_must_divide_the_image() -> None:
    forced = TimmBackbone(TimmParams(model_name="vit_tiny_patch16_224", patch_size=16,
                                     timm_kwargs={"depth": 1}), input_shape=(1, 32, 32))
    assert (forced.geometry.patch, forced.geometry.tokens) == (16, 4)
    assert forced.geometry.changed  # fewer than 16 tokens: logged as a warning
    with pytest.raises(ConfigError, match=r"to 'auto' \(4 px here"):
        TimmBackbone(TimmParams(model_name="vit_tiny_patch16_224", patch_size=None),
                     input_shape=(1, 25, 25))
    with pytest.raises(ConfigError, match="dynamic_img_size: true"):
        TimmBackbone(TimmParams(model_name="vit_tiny_patch16_224", dynamic_img_size=False),
                     input_shape=(1, 25, 25))
    with pytest.raises(ConfigError, match="min_input_side is for CNNs"):
        TimmBackbone(TimmParams(model_name="vit_tiny_patch16_224", min_input_side=32),
                     input_shape=(1, 32, 32))


@pytest.mark.parametrize("shape, upsampled", [
    ((1, 8, 8), (32, 32)), ((3, 25, 25), (32, 32)), ((1, 16, 40), (32, 80)),
    ((1, 32, 32), None), ((13, 64, 64), None)])
def test_cnns_upsample_images_below_their_total_stride(shape, upsampled) -> None:
    enc = resnet18(ResNet18Params(), input_shape=shape)
    assert enc.geometry.upsampled_to == upsampled
    seen = []
    enc.model.conv1.register_forward_hook(lambda _m, i, _o: seen.append(tuple(i[0].shape[-2:])))
    assert enc(torch.rand(2, *shape)).shape == (2, 512)
    assert seen == [upsampled or shape[1:]]
    off = resnet18(ResNet18Params(min_input_side=None), input_shape=(1, 8, 8))
    assert off.geometry.upsampled_to is None


def test_smaller_crops_are_upsampled_like_small_images() -> None:
    """A CNN on 32 px images still upsamples 16 px crops (DINO's local views) to 32 px."""
    enc = resnet18(ResNet18Params(), input_shape=(1, 32, 32))
    seen = []
    enc.model.conv1.register_forward_hook(lambda _m, i, _o: seen.append(tuple(i[0].shape[-2:])))
    enc(torch.rand(2, 1, 16, 16))
    assert seen == [(32, 32)] and enc.geometry.min_input_side == 32


def test_image_shapes_that_cannot_work_name_the_fix() -> None:
    with pytest.raises(DataError, match=r"no channel axis: add one to each, e\.g\. x\[:, None\]"):
        resnet18(ResNet18Params(), input_shape=(32, 32))
    with pytest.raises(DataError, match="at least 8 x 8 px"):
        resnet18(ResNet18Params(), input_shape=(1, 3, 3))
    with pytest.raises(DataError, match=r"channels last: transpose them .* \(N, 3, 32, 32\)"):
        vit_tiny(ViTTinyParams(), input_shape=(32, 32, 3))
