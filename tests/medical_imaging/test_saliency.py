"""Grad-CAM / gradient saliency maps and the recipe's artifacts function."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sslcore.config import ComponentRef
from sslcore.contracts import ArtifactContext
from sslcore.plugins import load_registries
from sslcore.train.supervised import Classifier
from sslcore_medical_imaging.datasets import ImageSSLData
from sslcore_medical_imaging.saliency import grad_cam, pick_examples, write_artifacts

REGISTRIES = load_registries()


def classifier(name: str, shape: tuple[int, int, int], seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    backbone = REGISTRIES.backbones.get(name).build({}, input_shape=shape)
    backbone.fit_normalizer(np.random.default_rng(0).random((8, *shape), dtype=np.float32))
    return Classifier(backbone, 2).eval()


@pytest.mark.parametrize("name, size", [("resnet18", 64), ("resnet18", 32), ("vit_tiny", 32)])
def test_maps_are_finite_unit_range_and_image_sized(name: str, size: int) -> None:
    model = classifier(name, (1, size, size))
    x = torch.rand(3, 1, size, size)
    maps = grad_cam(model, x)
    assert maps.shape == (3, size, size) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    assert (maps.reshape(3, -1).max(axis=1) > 0).any()
    assert all(p.grad is None for p in model.parameters())  # the model is left untouched


def test_grad_cam_uses_a_stage_at_least_four_cells_wide() -> None:
    """At 64 px ResNet-18's last stage is 2 x 2; the map must resolve finer than quadrants."""
    maps = grad_cam(classifier("resnet18", (1, 64, 64)), torch.rand(2, 1, 64, 64))
    quadrant_means = maps.reshape(2, 2, 32, 2, 32).mean(axis=(2, 4))
    within = maps.reshape(2, 2, 32, 2, 32).std(axis=(2, 4))
    assert within.max() > 0.01, quadrant_means


def test_pick_examples_takes_the_first_of_each_class() -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 1, 1])
    assert pick_examples(y, 3, 2).tolist() == [1, 3, 4, 0, 2]


class _Fitted:
    def __init__(self, model: Classifier) -> None:
        self.model = model


def test_write_artifacts_draws_saliency(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((10, 1, 32, 32), dtype=np.float32)
    y = np.array([0, 1] * 5)
    data = ImageSSLData(unlabeled=x, labeled_x=x, labeled_y=y, test_x=x, test_y=y,
                        class_names=["NORMAL", "PNEUMONIA"],
                        skipped_files=[("/data/a.jpeg", "is not an image PIL can read")])
    cfg = SimpleNamespace(heads=[ComponentRef(name="finetune", alias="ft")],
                          baselines=[ComponentRef(name="scratch")])
    fitted = {("ssl", "ft"): _Fitted(classifier("resnet18", (1, 32, 32), 0)),
              ("baseline", "scratch"): _Fitted(classifier("resnet18", (1, 32, 32), 1))}
    ctx = ArtifactContext(cfg=cfg, data=data, fitted=fitted, encoder=None,
                          device=torch.device("cpu"), out_dir=tmp_path)
    write_artifacts(ctx)
    assert (tmp_path / "saliency.png").stat().st_size > 10_000


def test_write_artifacts_without_networks_writes_nothing(tmp_path: Path) -> None:
    x = np.zeros((4, 1, 16, 16), dtype=np.float32)
    y = np.array([0, 1, 0, 1])
    data = ImageSSLData(unlabeled=x, labeled_x=x, labeled_y=y, test_x=x, test_y=y)
    cfg = SimpleNamespace(heads=[ComponentRef(name="linear_probe")], baselines=[])
    ctx = ArtifactContext(cfg=cfg, data=data, fitted={("ssl", "linear_probe"): object()},
                          encoder=None, device=torch.device("cpu"), out_dir=tmp_path)
    write_artifacts(ctx)
    assert list(tmp_path.iterdir()) == []
