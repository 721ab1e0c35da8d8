"""Build the pretraining objects from a config, and run pretraining inside an MLflow child run."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
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

    def __call__(self) -> Backbone:
        backbone = self.entry.build(self.params, input_shape=self.input_shape)
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
        cfg.pretext.params, backbone=make_backbone(), augment=augment,
        input_shape=data.input_shape)
    return Built(task, augment, make_backbone, finetune_augment)


def run_pretraining(cfg: ExperimentConfig, built: Built, data: SSLData, ckpt_dir: Path, *,
                    resume: bool, device: torch.device, progress: bool,
                    log_to_mlflow: bool, reopen_run_id: str | None = None) -> Backbone:
    """Pretrain on the unlabeled pool (never the test set); return the encoder in eval mode.

    With ``log_to_mlflow`` the rank-0 process logs a nested ``pretrain`` run: loss, learning
    rate, embedding std and effective rank per step, the final checkpoint and the encoder.
    ``reopen_run_id`` continues that run instead (a torchrun restart of the same job).
    """
    from sslcore import tracking
    from sslcore.distributed import is_main_process
    from sslcore.train.pretrain import pretrain_encoder

    main = is_main_process()
    ctx = (tracking.child_run("pretrain", {"sslcore.kind": "pretrain",
                                           "sslcore.vertical": cfg.vertical}, reopen_run_id)
           if log_to_mlflow and main else nullcontext())
    with ctx as run:
        if run is not None:
            tracking.record_run(ckpt_dir, "pretrain", run.info.run_id)
        on_metrics = tracking.metrics_logger(run.info.run_id) if run is not None else None
        if run is not None:
            tracking.log_params(run.info.run_id, tracking.flatten("pretrain", cfg.pretrain.model_dump())
                                | {"checkpoint_dir": str(ckpt_dir)})
        result = pretrain_encoder(built.task, data.unlabeled, cfg.pretrain,
                                  checkpoint_dir=ckpt_dir, resume=resume, device=device,
                                  on_metrics=on_metrics, progress=progress)
        if run is not None:
            import mlflow

            mlflow.log_metrics({"final_loss": result.losses[-1] if result.losses else float("nan"),
                                "pretrain_seconds": result.wall_time,
                                "samples_per_second": result.samples_per_second,
                                "steps": result.steps})
            if result.final_checkpoint and Path(result.final_checkpoint).exists():
                mlflow.log_artifact(str(result.final_checkpoint), "checkpoint")
    encoder = built.task.backbone.to(device).eval()
    return encoder
