"""The plugin author's API: everything a vertical plugin may import from sslcore, and nothing else.

A plugin (``plugins/<vertical>`` or a third party's package) imports from this module and from
its own package only; an import-linter contract in ``pyproject.toml`` fails the test suite on
any other ``sslcore.*`` import. The core may move or rename its internals; the names below keep
their meaning within a major version. Users' pipelines import :mod:`sslcore` (``compare``,
``pretrain``, ``finetune``, ``load_model``) instead.

Stability, per name (see ``STABILITY``):

- **stable**: the hook marker, the errors, the registry, the component contracts
  (:class:`Backbone`, :class:`PretextTask`, :class:`Method`, :class:`FitContext`,
  :class:`VerticalRecipe`, :class:`ArtifactContext`, ``Augmentation``), :class:`SSLData`;
- **provisional**: :class:`Metric` (what ``sslcore_register_metrics`` registers: new, its
  fields may still grow), :class:`RawInput` (a recipe's raw records for the served
  model), and helpers plugins reuse today (embedding and score helpers, the
  shared supervised loop and its step plan, the reusable baselines, the image-folder loader,
  the distributed helpers, ``load_init`` / ``resolve_init`` / ``InitReport`` / ``InitError``
  for backbones that take ``backbone.init``). Their signatures may still change in a minor version; the changelog
  says so when they do.

Example (a plugin's ``plugin.py``)::

    from sslcore.sdk import NoParams, hookimpl

    @hookimpl
    def sslcore_register_baselines(registry):
        registry.add("my_baseline", MyBaseline, params=NoParams)

Heavy names (torch, scikit-learn) load on first use, so importing ``hookimpl`` from here keeps
``sslcore plugins`` and every torchrun rank's plugin import fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from sslcore import hookimpl
from sslcore.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DuplicateComponentError,
    PluginLoadError,
    SSLCoreError,
    UnknownComponentError,
)
from sslcore.registry import Entry, NoParams, Registry

# name -> (module it lives in, stability)
_LAZY: dict[str, tuple[str, str]] = {
    # component contracts
    "Augmentation": ("sslcore.contracts", "stable"),
    "Backbone": ("sslcore.contracts", "stable"),
    "PretextTask": ("sslcore.contracts", "stable"),
    "Method": ("sslcore.contracts", "stable"),
    "FitContext": ("sslcore.contracts", "stable"),
    "VerticalRecipe": ("sslcore.contracts", "stable"),
    "RawInput": ("sslcore.contracts", "provisional"),
    "ArtifactContext": ("sslcore.contracts", "stable"),
    "SSLData": ("sslcore.data.ssl_data", "stable"),
    "DataCard": ("sslcore.data.ssl_data", "stable"),
    # metrics (the sslcore_register_metrics hook)
    "Metric": ("sslcore.contracts", "provisional"),
    "positive_scores": ("sslcore.evaluate.metrics", "provisional"),
    # embeddings and scores
    "embed": ("sslcore.train.supervised", "provisional"),
    "predict_scores": ("sslcore.train.supervised", "provisional"),
    "proba_to_scores": ("sslcore.train.supervised", "provisional"),
    "selection_score": ("sslcore.train.supervised", "provisional"),
    "balanced_log_loss": ("sslcore.train.supervised", "provisional"),
    "require_encoder": ("sslcore.builtins.heads.embedding_anomaly", "provisional"),
    # the shared supervised loop and its step budget
    "train_classifier": ("sslcore.train.supervised", "provisional"),
    "train_steps": ("sslcore.train.supervised", "provisional"),
    "finetune_plan": ("sslcore.train.supervised", "provisional"),
    "fit_info": ("sslcore.train.supervised", "provisional"),
    "fresh_backbone": ("sslcore.builtins.baselines.scratch", "provisional"),
    # reusable baselines
    "HistGBMParams": ("sslcore.builtins.baselines.hist_gbm", "provisional"),
    "fit_hist_gbm": ("sslcore.builtins.baselines.hist_gbm", "provisional"),
    "IForestDetector": ("sslcore.builtins.baselines.pyod_detectors", "provisional"),
    "IForestParams": ("sslcore.builtins.baselines.pyod_detectors", "provisional"),
    "ECODDetector": ("sslcore.builtins.baselines.pyod_detectors", "provisional"),
    "ECODParams": ("sslcore.builtins.baselines.pyod_detectors", "provisional"),
    "require_binary": ("sslcore.builtins.baselines.pyod_detectors", "provisional"),
    "subsample": ("sslcore.builtins.baselines.pyod_detectors", "provisional"),
    # image helpers
    "gaussian_blur": ("sslcore.builtins.augmentations.image_ops", "provisional"),
    "vit_patch_size": ("sslcore.builtins.backbones.timm_backbone", "provisional"),
    "cosine_momentum": ("sslcore.builtins.pretext.byol", "provisional"),
    # the image-folder loader
    "IMAGE_EXTENSIONS": ("sslcore.data.image_files", "provisional"),
    "default_cache_dir": ("sslcore.data.image_files", "provisional"),
    "load_images": ("sslcore.data.image_files", "provisional"),
    "scan_class_folders": ("sslcore.data.image_files", "provisional"),
    "scan_images": ("sslcore.data.image_files", "provisional"),
    "load_image_folders": ("sslcore.data.image_folders", "provisional"),
    "LabeledFiles": ("sslcore.data.image_folders", "provisional"),
    "ImageFolderData": ("sslcore.data.image_folders", "provisional"),
    # pretrained weights: backbone.init (sslcore.init)
    "load_init": ("sslcore.init", "provisional"),
    "resolve_init": ("sslcore.init", "provisional"),
    "InitReport": ("sslcore.init", "provisional"),
    "InitError": ("sslcore.init", "provisional"),
    "InitMismatchError": ("sslcore.init", "provisional"),
    "config_overrides": ("sslcore.init.hf", "provisional"),
    # distributed pretraining
    "gather_with_grad": ("sslcore.distributed", "provisional"),
    "all_reduce_mean_": ("sslcore.distributed", "provisional"),
}

_EAGER = ("hookimpl", "Registry", "Entry", "NoParams", "SSLCoreError", "ConfigError",
          "DataError", "CheckpointError", "PluginLoadError", "UnknownComponentError",
          "DuplicateComponentError")

STABILITY: dict[str, str] = {name: "stable" for name in _EAGER} | {
    name: stability for name, (_, stability) in _LAZY.items()}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name][0]), name)
        globals()[name] = value  # import once
        return value
    raise AttributeError(f"module 'sslcore.sdk' has no attribute {name!r}; the plugin API is "
                         f"sslcore.sdk.__all__ (docs/plugin_authors.md)")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = sorted([*_EAGER, *_LAZY])
