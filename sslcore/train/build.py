"""Build the pretraining objects from a config (``sslcore.pretraining`` runs them and logs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sslcore.config import ExperimentConfig
from sslcore.contracts import Augmentation, Backbone, PretextTask
from sslcore.data.ssl_data import SSLData


@dataclass
class Built:
    task: PretextTask
    augment: Augmentation | None
    make_backbone: Callable[[], Backbone]
    finetune_augment: Augmentation | None  # both arms' supervised training
    metrics: Any = None  # the metric registry, for the online probe's score


class Compose:
    """Apply augmentations in order; a class (not a closure) so tasks holding it pickle."""

    def __init__(self, augs: list[Augmentation]) -> None:
        self.augs = list(augs)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for aug in self.augs:
            x = aug(x, generator)
        return x


def compose(augs: list[Augmentation]) -> Augmentation | None:
    return Compose(augs) if augs else None


class _FreshBackbone:
    """A picklable factory of randomly initialised backbones with label-free preprocessing."""

    def __init__(self, entry: Any, params: dict[str, Any], data: SSLData) -> None:
        self.entry, self.params, self.input_shape = entry, params, data.input_shape
        self._unlabeled = data.unlabeled_array()

    def __call__(self, init: Any = None) -> Backbone:
        """A fresh backbone: random, or with ``init``'s pretrained weights (``backbone.init``,
        given only for the encoder pretraining starts from, never for baselines)."""
        extra = {"init": init} if init is not None else {}
        backbone = self.entry.build(self.params, input_shape=self.input_shape, **extra)
        if hasattr(backbone, "fit_normalizer"):  # statistics of the unlabeled pool, no labels
            backbone.fit_normalizer(self._unlabeled)
        return backbone

    def __getstate__(self) -> dict[str, Any]:  # never pickle the data pool into a model
        return {k: v for k, v in self.__dict__.items() if k != "_unlabeled"}


def build_pretraining(cfg: ExperimentConfig, registries: Any, data: SSLData) -> Built:
    torch.manual_seed(cfg.pretrain.seed)
    make_backbone = _FreshBackbone(registries.backbones.get(cfg.backbone.name),
                                   cfg.backbone.params, data)
    def build_augment(refs: list[Any]) -> Augmentation | None:
        return compose([registries.augmentations.get(a.name).build(a.params) for a in refs])

    augment = build_augment(cfg.augmentations)
    finetune_augment = augment if cfg.finetune_augmentations is None else \
        build_augment(cfg.finetune_augmentations)
    task = registries.pretext_tasks.get(cfg.pretext.name).build(
        cfg.pretext.params, backbone=make_backbone(init=cfg.backbone.init), augment=augment,
        input_shape=data.input_shape)
    return Built(task, augment, make_backbone, finetune_augment,
                 metrics=getattr(registries, "metrics", None))


def initial_encoder(cfg: ExperimentConfig, make_backbone: Callable[..., Backbone],
                    device: torch.device) -> Backbone:
    """The encoder pretraining starts from, before any SSL step: the ``transfer`` arm's encoder
    (the generic ``backbone.init`` weights + the labels, no domain pretraining).

    Built as :func:`build_pretraining` builds the pretext's backbone (same factory, same
    ``init``, normalizer fitted on the unlabeled pool, same seed for any parameter the init
    leaves random), on ``device``, in eval mode; the global RNG is left as it was.
    """
    if cfg.backbone.init is None:
        raise ValueError("initial_encoder: backbone.init is not set (no transfer arm)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.pretrain.seed)
        encoder = make_backbone(init=cfg.backbone.init)
    return encoder.to(device).eval()
