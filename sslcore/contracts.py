"""The shapes of the components plugins register; factories return objects of these types.

Factories are called as ``entry.build(params, **context)`` where ``params`` is the component's
validated pydantic model and ``context`` holds what the runner knows (listed per kind below).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

# (x, generator) -> x': a batched tensor op on the training device.
# Augmentation factory context: none.
Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Backbone(nn.Module):
    """An encoder: ``forward(x) -> (N, embed_dim)``.

    Factory context: ``input_shape`` (per-sample shape, e.g. ``(n_features,)`` or ``(1, 64, 64)``).
    """

    embed_dim: int


class PretextTask(nn.Module, abc.ABC):
    """An SSL objective wrapped around a backbone.

    Factory context: ``backbone`` (a Backbone), ``augment`` (an Augmentation composed from the
    config's list, or None), ``input_shape``.
    """

    backbone: Backbone

    @abc.abstractmethod
    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Scalar loss of one batch of unlabeled samples (already on the device)."""

    def on_train_begin(self, total_steps: int) -> None:
        """Called once before the first step (also on resume) with the run's optimizer steps,
        e.g. for momentum or temperature schedules."""

    def on_step_end(self) -> None:
        """Called after each optimizer step, e.g. to update an EMA teacher."""


@dataclass
class FitContext:
    """Everything a head or baseline may use to fit on one labeled subset L(f, s).

    ``x_train``/``y_train`` and ``x_val``/``y_val`` partition L(f, s); val is for early stopping
    and thresholds only. ``unlabeled`` is the unlabeled pool (label-free methods may fit on it).
    ``encoder`` is the pretrained backbone (SSL arm) or None (baseline arm);
    ``make_backbone()`` builds a fresh, randomly initialised copy of the same architecture.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    unlabeled: np.ndarray
    num_classes: int
    seed: int
    device: torch.device
    budget: Any  # sslcore.config.FinetuneConfig: epochs, batch size, lr, patience
    make_backbone: Callable[[], Backbone]
    augment: Augmentation | None = None
    encoder: Backbone | None = None
    # The labeled pool's per-row metadata (SSLData.labeled_meta) for x_train / x_val rows.
    meta_train: dict[str, np.ndarray] = field(default_factory=dict)
    meta_val: dict[str, np.ndarray] = field(default_factory=dict)
    # Shared by every method over the whole sweep: label-free work (embedding the unlabeled
    # pool, fitting a detector) is done once. Key entries by everything the value depends on.
    cache: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Method(Protocol):
    """A downstream head (SSL arm) or a baseline: fit on labels, score the test set.

    ``predict_scores`` returns the positive-class score (N,) for binary tasks, or class
    probabilities (N, C) for multi-class tasks. ``uses_labels`` is False for label-free
    detectors, whose fit does not depend on the labeled subset.
    Factory context: none.
    """

    uses_labels: bool

    def fit(self, ctx: FitContext) -> None: ...

    def predict_scores(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class ArtifactContext:
    """What a vertical's ``artifacts`` function may use to draw figures for the parent run.

    ``fitted`` maps (arm, method label) to the method fitted on the largest label fraction with
    the first seed; ``out_dir`` is where to write files (PNG, text): the core logs them all.
    """

    cfg: Any  # sslcore.config.ExperimentConfig
    data: Any  # sslcore.data.ssl_data.SSLData
    fitted: dict[tuple[str, str], Method]
    encoder: Backbone
    device: torch.device
    out_dir: Path


@dataclass(frozen=True)
class VerticalRecipe:
    """A vertical's default experiment: component names and params as a config mapping.

    ``default_config`` validates as ``sslcore.config.ExperimentConfig`` (without ``vertical``);
    ``quick_overrides`` is deep-merged on top for ``--quick``. ``artifacts``, if given, writes
    the vertical's own figures (e.g. saliency maps) for the parent run from an ArtifactContext.
    """

    description: str
    default_config: dict[str, Any]
    quick_overrides: dict[str, Any] = field(default_factory=dict)
    modality: str = "table"  # "table" | "image" | "timeseries"
    artifacts: Callable[[ArtifactContext], None] | None = None
