"""Registers the medical_imaging vertical's datasets and recipe with sslcore (thin hooks).

The images, backbones (resnet18, vit_tiny), augmentations and pretext tasks (simclr, byol,
mae) it uses are sslcore built-ins; this plugin adds the radiograph loaders, the synthetic
radiographs and the recipe (with its Grad-CAM figure).
"""

from __future__ import annotations

from sslcore.sdk import hookimpl


@hookimpl
def sslcore_register_datasets(registry):  # type: ignore[no-untyped-def]
    from sslcore_medical_imaging.datasets import DATASETS

    for name, (factory, params, description) in DATASETS.items():
        registry.add(name, factory, params=params, description=description)


@hookimpl
def sslcore_register_verticals(registry):  # type: ignore[no-untyped-def]
    from sslcore_medical_imaging.recipe import medical_imaging_recipe

    registry.add("medical_imaging", medical_imaging_recipe,
                 description="chest X-ray pneumonia: SSL on unlabeled radiographs")
