"""The user's own images through satellite: patches, crops and band statistics follow the data.

Ten classes of single-channel 32 px textures get 8 px patches (16 tokens, where the recipe's
old fixed 16 px patches left 4) and 32 / 16 px DINO crops; 3-channel 25 px images get 4 px
patches on a 28 px padded grid and band statistics without Sentinel-2 indices; 8 px images
(scikit-learn digits' size) get 2 px patches. Budgets are a few steps (``steps``): these tests
check the plumbing, not the accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sslcore
from sslcore.plugins import load_registries
from sslcore_satellite.band_stats import band_features, resolve_band_order
from sslcore_satellite.dino import DINO, DINOParams
from sslcore_satellite.multicrop import MultiCrop, MultiCropParams, crop_flip_rotate
from tests.user_images import check_runs, split, texture_images

TINY = {"vertical": "satellite",
        "pretrain": {"steps": 3, "batch_size": 32, "warmup_steps": 0},
        "finetune": {"steps": 4, "batch_size": 32},
        "pretext": {"name": "dino", "params": {"n_local_crops": 2, "out_dim": 64,
                                               "hidden_dim": 32, "bottleneck_dim": 16}}}


def test_32px_single_channel_ten_classes_get_8px_patches(tracking_uri) -> None:
    x, y = texture_images(1000, 32, 10)
    report = sslcore.compare(TINY, data=split(x, y, 600, 250), quick=True,
                             label_fractions=[0.1], seeds=[0], tracking_uri=tracking_uri,
                             progress=False)
    tags = check_runs(report)
    assert tags["sslcore.geometry.image"] == "1x32x32"
    assert (tags["sslcore.geometry.patch_size"], tags["sslcore.geometry.tokens"]) == ("8", "16")
    assert tags["sslcore.geometry.patch_rule"] == "auto"
    assert tags["sslcore.geometry.padded_to"] == "none"
    assert "8 px patches (auto): 16 tokens" in tags["data.input.backbone"]
    assert tags["data.input.pretext"] == (
        "dino multi-crop on 32 px tiles: 2 global crops of the tile's side and 2 local crops "
        "of 0.5 of the tile's side, multiples of the ViT's patch; blur sigma 0.05-0.75 px")


def test_25px_rgb_binary_gets_4px_patches_on_a_padded_grid(tracking_uri) -> None:
    x, y = texture_images(700, 25, 2, channels=3)
    report = sslcore.compare(TINY, data=split(x, y, 400, 200), quick=True,
                             label_fractions=[0.1], seeds=[0], tracking_uri=tracking_uri,
                             progress=False)
    tags = check_runs(report)
    assert tags["sslcore.geometry.image"] == "3x25x25"
    assert (tags["sslcore.geometry.patch_size"], tags["sslcore.geometry.tokens"]) == ("4", "49")
    assert tags["sslcore.geometry.padded_to"] == "28x28"
    assert "zero-padded to 28 x 28" in tags["data.input.backbone"]


@pytest.mark.parametrize("side, patch, global_size, local_size", [
    (64, 16, 64, 32), (32, 8, 32, 16), (25, 4, 24, 12), (8, 2, 8, 4)])
def test_dino_crops_follow_the_tile_and_its_patches(side, patch, global_size,
                                                    local_size) -> None:
    shape = (1, side, side)
    backbone = load_registries().backbones.get("timm").build(
        {"model_name": "vit_tiny_patch16_224", "timm_kwargs": {"depth": 1}}, input_shape=shape)
    assert backbone.geometry.patch == patch
    torch.manual_seed(0)
    task = DINO(DINOParams(n_local_crops=2, out_dim=16, hidden_dim=8, bottleneck_dim=4),
                backbone=backbone, input_shape=shape)
    assert (task.views.global_size, task.views.local_size) == (global_size, local_size)
    assert task.views.blur_sigma == pytest.approx((0.1 * side / 64, 1.5 * side / 64))
    loss = task.loss(torch.rand(4, *shape), torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    loss.backward()


def test_multicrop_sizes_are_fractions_and_pixels_only_when_set() -> None:
    views = MultiCrop(MultiCropParams(local_crop_fraction=0.25), input_size=(48, 64), multiple=4)
    assert (views.global_size, views.local_size) == (48, 12)  # the shorter side sets them
    fixed = MultiCrop(MultiCropParams(global_crop_size=20, local_crop_size=10), input_size=64)
    assert (fixed.global_size, fixed.local_size) == (20, 10)
    glob, loc = views(torch.rand(3, 2, 48, 64), torch.Generator().manual_seed(0))
    assert glob.shape == (6, 2, 48, 48) and loc.shape == (18, 2, 12, 12)


def test_crops_of_a_non_square_tile_are_resized_flips_never_sheared() -> None:
    """A full-area crop of a 16 x 32 tile (aspect 2) is the tile resized to the square view,
    flipped or turned by 180 degrees; a quarter turn would leave the tile."""
    x = torch.rand(1, 1, 16, 32, generator=torch.Generator().manual_seed(0)).repeat(40, 1, 1, 1)
    out = crop_flip_rotate(x, torch.Generator().manual_seed(0), size=16, scale=(1.0, 1.0),
                           ratio=(2.0, 2.0))
    resized = torch.nn.functional.interpolate(x[:1], size=(16, 16), mode="bilinear",
                                              align_corners=False)[0]
    symmetries = [resized, resized.flip(-1), resized.flip(-2), resized.flip(-2, -1)]
    matched = [next(i for i, s in enumerate(symmetries) if torch.allclose(o, s, atol=1e-5))
               for o in out]
    assert set(matched) == {0, 1, 2, 3}


@pytest.mark.parametrize("channels, order, n_features", [(1, "none", 7), (3, "rgb", 22),
                                                         (13, "sentinel2", 89)])
def test_band_statistics_take_any_band_count_and_indices_only_when_bands_exist(
        channels, order, n_features) -> None:
    x = np.random.default_rng(0).random((6, channels, 8, 8), dtype=np.float32)
    assert resolve_band_order("auto", channels) == order
    f = band_features(x, order)
    # Per band: mean, std, 3 percentiles; 2 edge densities per edge band; indices as 5 more.
    assert f.shape == (6, n_features) and np.isfinite(f).all()
