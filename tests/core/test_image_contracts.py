"""The shipped contract tests over the core's image components, on image shapes.

test_builtins.py checks the table components on rows; the image components
(``IMAGE_COMPONENTS``) are checked here on 1-band and 13-band 32 px images, with resnet18 (and
vit_tiny for MAE). Two-view objectives refuse to run without augmentations (a ConfigError, tested
below), so their "no augment" check runs with a default crop standing in for the config's list.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dataclasses

import pytest

from sslcore.builtins.augmentations.image import RandomResizedCrop, RandomResizedCropParams
from sslcore.builtins.plugin import IMAGE_COMPONENTS
from sslcore.errors import ConfigError
from sslcore.plugins import load_registries
from sslcore.testing import (
    check_backbone,
    check_pretext_task,
    contract_cases,
    run_case,
    synthetic_classification,
)

REGISTRIES = load_registries()
TABLE_COMPONENTS = {name for names in REGISTRIES.components_of("sslcore").values()
                    for name in names} - IMAGE_COMPONENTS
KINDS = {kind: set(names) & IMAGE_COMPONENTS
         for kind, names in REGISTRIES.components_of("sslcore").items()}
NEED_VIEWS = {"simclr", "byol"}
ONE_BAND, THIRTEEN_BANDS = (1, 32, 32), (13, 32, 32)

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py


def _cases(shape, backbone, only):
    skip = TABLE_COMPONENTS | (IMAGE_COMPONENTS - set(only))
    return contract_cases("sslcore", REGISTRIES, input_shape=shape, backbone=backbone, skip=skip)


CASES = (_cases(ONE_BAND, "resnet18", KINDS["augmentations"] | {"resnet18", "vit_tiny",
                                                                 "hf_vision"})
         + _cases(THIRTEEN_BANDS, "resnet18", KINDS["augmentations"])
         + _cases(ONE_BAND, "vit_tiny", {"mae"}))


def test_every_image_component_is_covered() -> None:
    covered = {c.name for c in CASES} | {"timm"} | NEED_VIEWS
    assert covered == IMAGE_COMPONENTS
    assert not IMAGE_COMPONENTS - {n for names in KINDS.values() for n in names}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c}-{'x'.join(map(str, c.input_shape))}")
def test_image_contract(case) -> None:
    run_case(case)


def test_generic_timm_contract() -> None:
    check_backbone(REGISTRIES.backbones.get("timm"), ONE_BAND, params={"model_name": "resnet10t"})


def _with_default_views(entry):
    crop = RandomResizedCrop(RandomResizedCropParams(scale=(0.5, 1.0)))

    def factory(params, *, augment=None, **context):
        return entry.factory(params, augment=augment or crop, **context)

    return dataclasses.replace(entry, factory=factory)


@pytest.mark.parametrize("name", sorted(NEED_VIEWS))
def test_two_view_pretext_contract(name: str) -> None:
    entry = REGISTRIES.pretext_tasks.get(name)
    backbone = REGISTRIES.backbones.get("resnet18")
    with pytest.raises(ConfigError, match="augmentations"):
        entry.build(None, backbone=backbone.build(None, input_shape=ONE_BAND), augment=None,
                    input_shape=ONE_BAND)
    check_pretext_task(_with_default_views(entry), backbone, ONE_BAND)


def test_two_view_pretext_on_thirteen_bands() -> None:
    import torch

    x = torch.as_tensor(synthetic_classification(THIRTEEN_BANDS, 6)[0])
    crop = RandomResizedCrop()
    for name in sorted(NEED_VIEWS):
        enc = REGISTRIES.backbones.get("resnet18").build(None, input_shape=THIRTEEN_BANDS)
        enc.fit_normalizer(x.numpy())
        task = REGISTRIES.pretext_tasks.get(name).build(None, backbone=enc, augment=crop,
                                                        input_shape=THIRTEEN_BANDS)
        loss = task.loss(x, torch.Generator().manual_seed(0))
        loss.backward()
        assert torch.isfinite(loss) and enc.model.conv1.weight.grad.abs().sum() > 0
