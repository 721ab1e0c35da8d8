"""Every sslcore hook. Plugins implement them with ``@sslcore.hookimpl``.

Each hook receives a typed :class:`~sslcore.registry.Registry` and returns None. Hooks run in
every process, on every torchrun rank, when the plugin manager is built; keep them cheap (no
heavy imports, no I/O): register factories, and import heavy libraries inside the factories.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from sslcore.contracts import (
        Augmentation,
        Backbone,
        Method,
        Metric,
        PretextTask,
        VerticalRecipe,
    )
    from sslcore.data.ssl_data import SSLData
    from sslcore.registry import Registry

PROJECT = "sslcore"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def sslcore_register_datasets(registry: Registry[SSLData]) -> None:
    """Register data loaders and synthetic generators.

    A factory is called as ``factory(params, seed=int)`` and returns an :class:`SSLData`
    (unlabeled pool, labeled pool, test set; the data card is derived from it). Runs on every rank.

    Example::

        @hookimpl
        def sslcore_register_datasets(registry):
            registry.add("my_csv", load_my_csv, params=MyCsvParams)
    """


@hookspec
def sslcore_register_augmentations(registry: Registry[Augmentation]) -> None:
    """Register augmentations / view makers.

    A factory ``factory(params)`` returns a batched op ``(x, generator) -> x'`` that runs on the
    training device on a whole batch. Runs on every rank.

    Example::

        @hookimpl
        def sslcore_register_augmentations(registry):
            registry.add("gaussian_noise", GaussianNoise, params=GaussianNoiseParams)
    """


@hookspec
def sslcore_register_pretext_tasks(registry: Registry[PretextTask]) -> None:
    """Register SSL objectives.

    A factory ``factory(params, backbone=, augment=, input_shape=)`` returns a
    :class:`PretextTask`: an ``nn.Module`` with ``loss(batch, generator)`` and ``on_step_end()``
    (for EMA teachers). Runs on every rank.

    Example::

        @hookimpl
        def sslcore_register_pretext_tasks(registry):
            registry.add("scarf", Scarf, params=ScarfParams)
    """


@hookspec
def sslcore_register_heads(registry: Registry[Method]) -> None:
    """Register downstream heads used on the pretrained encoder (the SSL arm).

    A factory ``factory(params)`` returns a :class:`Method` with ``fit(ctx)`` and
    ``predict_scores(x)``; ``ctx.encoder`` is the pretrained backbone. Runs on rank 0.

    Example::

        @hookimpl
        def sslcore_register_heads(registry):
            registry.add("linear_probe", LinearProbe, params=LinearProbeParams)
    """


@hookspec
def sslcore_register_backbones(registry: Registry[Backbone]) -> None:
    """Register encoders.

    A factory ``factory(params, input_shape=tuple)`` returns a :class:`Backbone`: an
    ``nn.Module`` mapping a batch to ``(N, embed_dim)``. Use timm for images and
    transformers/torch for sequences and tables. A factory that also takes ``init=`` starts
    from pretrained weights (``backbone.init``: a file, a timm or Hugging Face name, an MLflow
    URI): call ``sslcore.sdk.load_init(backbone, init)``, which adapts input channels, drops
    heads, reports what loaded and refuses a mostly failed load. Runs on every rank.

    Example::

        @hookimpl
        def sslcore_register_backbones(registry):
            registry.add("mlp", MLPBackbone, params=MLPParams)
    """


@hookspec
def sslcore_register_baselines(registry: Registry[Method]) -> None:
    """Register labeled-only baselines (the baseline arm).

    Same contract as heads, but ``ctx.encoder`` is None: a baseline uses the labeled subset (or,
    if ``uses_labels`` is False, no labels at all), e.g. the same backbone from scratch
    (``ctx.make_backbone()``), scikit-learn or pyod models. Runs on rank 0.

    Example::

        @hookimpl
        def sslcore_register_baselines(registry):
            registry.add("hist_gbm", HistGBM, params=HistGBMParams)
    """


@hookspec
def sslcore_register_metrics(registry: Registry[Metric]) -> None:
    """Register test-set metrics that ``evaluation.metrics`` may name.

    A factory ``factory(params)`` returns a :class:`Metric`: the function
    ``fn(y_true, scores[, threshold][, meta]) -> float`` and what it needs (``higher_is_better``,
    ``needs_threshold``, ``needs_meta``, ``binary_only``, an optional ``by_group`` breakdown
    logged as ``<name>.<group>``); ``Metric`` comes from :mod:`sslcore.sdk`. Metrics take no
    params (``evaluation.metrics`` lists names only): the factory is
    ``lambda params: Metric(...)``, one ``registry.add`` per metric (in a loop, bind the
    function through a helper, not the loop variable), and the entry's ``description`` says
    what the metric measures. Runs on every rank; the sweep computes metrics on rank 0.

    Example::

        @hookimpl
        def sslcore_register_metrics(registry):
            registry.add("lead_time", lambda params: Metric(lead_time, needs_meta=("rul",)))
    """


@hookspec
def sslcore_register_verticals(registry: Registry[VerticalRecipe]) -> None:
    """Register a vertical's default recipe.

    A factory ``factory(params)`` returns a :class:`VerticalRecipe` naming the dataset,
    augmentations, pretext task, backbone, heads, baselines and metrics. Runs on every rank.

    Example::

        @hookimpl
        def sslcore_register_verticals(registry):
            registry.add("fraud_transactions", fraud_recipe)
    """
