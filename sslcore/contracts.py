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
    detectors, whose fit does not depend on the labeled subset. After ``fit`` a method may set
    ``fit_info`` (a dict of numbers such as ``fit_steps``, ``best_step``): the sweep logs its
    keys as they are as metrics of the method's child run.
    Factory context: none.
    """

    uses_labels: bool

    def fit(self, ctx: FitContext) -> None: ...

    def predict_scores(self, x: np.ndarray) -> np.ndarray: ...


# (metric, y_true, scores, meta) -> {group: value}: ``metric`` is the Metric's function with the
# threshold bound, called as metric(y_true, scores, meta) on each group's rows or events.
GroupBreakdown = Callable[
    [Callable[[np.ndarray, np.ndarray, dict[str, np.ndarray]], float], np.ndarray, np.ndarray,
     dict[str, np.ndarray]],
    dict[str, float]]


@dataclass(frozen=True)
class Metric:
    """A test-set metric that ``evaluation.metrics`` may name: a function and what it needs.

    The sweep calls ``fn(y_true, scores)`` for every fit, with the decision threshold appended
    when ``needs_threshold`` and the test rows' metadata appended when ``needs_meta``:
    ``fn(y_true, scores[, threshold][, meta]) -> float``. ``scores`` is the positive-class
    score (N,) of a binary task or the class probabilities (N, C) of a multi-class one.

    Attributes:
        fn: the metric; NaN where it is undefined (e.g. no event to count).
        higher_is_better: False for costs (false positives): the report, the headline and the
            choice of the model to log then prefer low values.
        needs_threshold: ``fn`` also takes the decision threshold the sweep chose on the
            validation split of each labeled subset (Youden's J), never on the test set.
        needs_meta: the ``SSLData.test_meta`` keys ``fn`` reads; ``fn`` then also takes the
            meta. Data without them drop the metric with a note (``sslcore.data_fit``).
        binary_only: scores one positive class; dropped on a multi-class task.
        by_group: an optional breakdown, ``by_group(metric, y_true, scores, meta) ->
            {group: value}``, each value logged as ``<name>.<group>`` next to ``<name>``
            (e.g. per failure mode); ``metric`` is ``fn`` with the threshold bound, called as
            ``metric(y_true, scores, meta)``.

    Factory context: none. A metric's factory is ``lambda params: Metric(...)`` (see the
    ``sslcore_register_metrics`` hook); its description is the registry entry's.
    """

    fn: Callable[..., float]
    higher_is_better: bool = True
    needs_threshold: bool = False
    needs_meta: tuple[str, ...] = ()
    binary_only: bool = False
    by_group: GroupBreakdown | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"Metric fn must be callable, got {type(self.fn).__name__}")
        if not (isinstance(self.needs_meta, tuple)
                and all(isinstance(k, str) for k in self.needs_meta)):
            raise TypeError(f"Metric needs_meta must be a tuple of test_meta keys, got "
                            f"{self.needs_meta!r}")
        if self.by_group is not None and not callable(self.by_group):
            raise TypeError("Metric by_group must be callable or None")


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
class RawInput:
    """What a served model takes instead of feature columns: the vertical's raw records.

    The core's serving wrapper (``sslcore.serving``) checks a request against ``example``'s
    columns and dtypes (the logged model's MLflow signature and input example), then calls
    ``features`` and scores the result, so a caller holding raw records needs no sslcore code.

    Attributes:
        example: a few raw rows (a pandas DataFrame) with the columns and dtypes a request
            carries; it becomes the model's input example and signature.
        features: raw rows (a pandas DataFrame with the example's columns) -> a float array
            (n_rows, n_features), one row per input row in input order, columns in
            ``feature_names`` order. Raise DataError naming the column and row on bad values.
            It is pickled into the logged model: make it an instance of a top-level class of
            the plugin (the plugin must then be installed where the model is served).
        feature_names: the features it computes; they must equal the training data's
            ``SSLData.feature_names`` (otherwise the model is logged on features).
        limits: one sentence for the model's description: what the features cannot see
            (e.g. history before the request).
    """

    example: Any  # pandas.DataFrame
    features: Callable[[Any], np.ndarray]
    feature_names: list[str]
    limits: str = ""


@dataclass(frozen=True)
class VerticalRecipe:
    """A vertical's default experiment: component names and params as a config mapping.

    ``default_config`` validates as ``sslcore.config.ExperimentConfig`` (without ``vertical``);
    ``quick_overrides`` is deep-merged on top for ``--quick``. ``artifacts``, if given, writes
    the vertical's own figures (e.g. saliency maps) for the parent run from an ArtifactContext.
    ``raw_input``, if given, is called as ``raw_input(dataset_name, dataset_params)`` (the
    config's dataset block) and returns a :class:`RawInput` (or None for a dataset without a
    raw form): the logged model then takes raw records and computes its features itself.
    """

    description: str
    default_config: dict[str, Any]
    quick_overrides: dict[str, Any] = field(default_factory=dict)
    modality: str = "table"  # "table" | "image" | "timeseries"
    artifacts: Callable[[ArtifactContext], None] | None = None
    raw_input: Callable[[str, dict[str, Any]], RawInput | None] | None = None
    # data_checks(cfg, data), if given, runs before any work (sslcore.data_fit): it returns
    # warnings, one sentence each, where the data do not fit the recipe's assumptions (what
    # is lost), and raises DataError where the vertical cannot work on them at all.
    data_checks: Callable[[Any, Any], list[str]] | None = None
