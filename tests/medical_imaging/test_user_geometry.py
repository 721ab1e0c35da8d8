"""The user's own images through medical_imaging: the geometry follows the data.

About 1,000 single-channel 32 px images with a small finding (10% positives) run end to end
at their own size; ten classes of 8 px images (scikit-learn digits' size) are upsampled to
32 px inside the ResNet-18 and explained class by class in saliency.png; shapes that cannot
work stop before any training, naming the array and a fix. Budgets are a few steps
(``steps``): these tests check the plumbing, not the accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sslcore
from sslcore.errors import DataError
from sslcore.plugins import load_registries
from tests.user_images import check_runs, split, texture_images

TINY = {"vertical": "medical_imaging",
        "pretrain": {"steps": 3, "batch_size": 32, "warmup_steps": 0},
        "finetune": {"steps": 4, "batch_size": 32}}


def finding_images(n: int, side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise radiographs; 10% carry a small bright blob (sigma side/16) somewhere inside."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(np.int64)
    x = rng.normal(0.3, 0.05, (n, 1, side, side)).astype(np.float32)
    rows, cols = np.mgrid[:side, :side]
    for i in np.flatnonzero(y):
        cy, cx = rng.integers(side // 4, 3 * side // 4, 2)
        x[i, 0] += 0.5 * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * (side / 16) ** 2))
    return x, y


def test_32px_single_channel_small_finding_runs_at_its_own_size(tracking_uri) -> None:
    x, y = finding_images(1000, 32)
    report = sslcore.compare(TINY, data=split(x, y, 600, 250), quick=True,
                             label_fractions=[0.1], seeds=[0], tracking_uri=tracking_uri,
                             progress=False)
    tags = check_runs(report, {"geometry.json", "saliency.png"})
    assert tags["sslcore.geometry.image"] == "1x32x32"
    assert tags["sslcore.geometry.upsampled_to"] == "none"  # 32 px: the ResNet's stride
    assert tags["data.input.backbone"] == "backbone 'resnet18': 1 x 32 x 32 images"


def test_8px_ten_classes_are_upsampled_to_32px_and_explained_per_class(tracking_uri) -> None:
    x, y = texture_images(700, 8, 10)
    report = sslcore.compare(TINY, data=split(x, y, 400, 200), quick=True,
                             label_fractions=[0.1], seeds=[0], tracking_uri=tracking_uri,
                             progress=False)
    tags = check_runs(report, {"geometry.json", "saliency.png"})
    assert tags["sslcore.geometry.image"] == "1x8x8"
    assert tags["sslcore.geometry.upsampled_to"] == "32x32"
    assert "upsampled to 32 x 32 inside the backbone" in tags["data.input.backbone"]
    assert set(report.table["method"]) >= {"finetune", "scratch"}


@pytest.mark.parametrize("side, upsampled", [(8, (32, 32)), (25, (32, 32)), (64, None)])
def test_resnet_geometry_and_grad_cam_on_odd_sizes(side: int, upsampled) -> None:
    from sslcore.train.supervised import Classifier
    from sslcore_medical_imaging.saliency import grad_cam

    backbone = load_registries().backbones.get("resnet18").build({}, input_shape=(1, side, side))
    assert backbone.geometry.upsampled_to == upsampled
    model = Classifier(backbone, 10).eval()
    maps = grad_cam(model, torch.rand(3, 1, side, side), target=np.array([0, 4, 9]))
    assert maps.shape == (3, side, side) and np.isfinite(maps).all()


@pytest.mark.parametrize("unlabeled, labeled, message", [
    ((32, 32), (32, 32), r"no channel axis: add one to each, e\.g\. x\[:, None\]"),
    ((1, 32, 32), (3, 32, 32), "labeled images have 3 channel.* but unlabeled has 1"),
    ((1, 3, 3), (1, 3, 3), "at least 8 x 8 px"),
    ((32, 32, 1), (32, 32, 1), r"channels last.*x\.transpose\(0, 3, 1, 2\)"),
])
def test_shapes_that_cannot_work_stop_before_training(tracking_uri, unlabeled, labeled,
                                                      message) -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 10)
    data = {"unlabeled": rng.random((20, *unlabeled), dtype=np.float32),
            "labeled": (rng.random((20, *labeled), dtype=np.float32), y),
            "test": (rng.random((20, *labeled), dtype=np.float32), y)}
    with pytest.raises(DataError, match=message):
        sslcore.compare(TINY, data=data, quick=True, seeds=[0], tracking_uri=tracking_uri,
                        progress=False)
