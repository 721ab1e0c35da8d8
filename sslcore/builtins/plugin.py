"""The core's built-in plugin: generic components, registered through the same hooks as any
third-party plugin. Component modules are imported here (they need only torch and pydantic at
import time); scikit-learn and pyod are imported inside the components' functions.
"""

from __future__ import annotations

from sslcore import hookimpl
from sslcore.builtins import verticals
from sslcore.builtins.augmentations import tabular
from sslcore.builtins.backbones import mlp
from sslcore.builtins.baselines import hist_gbm, pyod_detectors, scratch
from sslcore.builtins.datasets import synthetic_tabular
from sslcore.builtins.heads import embedding_anomaly, finetune, gbm_on_embeddings, linear_probe
from sslcore.builtins.pretext import contrastive_reconstruction, masked_features, scarf
from sslcore.registry import NoParams, Registry


@hookimpl
def sslcore_register_datasets(registry: Registry) -> None:
    registry.add("synthetic_tabular", synthetic_tabular.synthetic_tabular,
                 params=synthetic_tabular.SyntheticTabularParams,
                 description="small make_classification table for smoke tests")


@hookimpl
def sslcore_register_verticals(registry: Registry) -> None:
    registry.add("tabular", verticals.tabular_recipe, params=NoParams,
                 description="any numeric table: MLP encoder, SCARF pretraining")


@hookimpl
def sslcore_register_backbones(registry: Registry) -> None:
    registry.add("mlp", mlp.MLPBackbone, params=mlp.MLPParams,
                 description="MLP for tabular rows with a robust, clipped standardizer")


@hookimpl
def sslcore_register_augmentations(registry: Registry) -> None:
    registry.add("marginal_corruption", tabular.MarginalCorruption,
                 params=tabular.MarginalCorruptionParams,
                 description="SCARF: replace a fraction of features by other rows' values")
    registry.add("gaussian_noise", tabular.GaussianNoise, params=tabular.GaussianNoiseParams,
                 description="additive Gaussian noise, relative to each feature's batch std")


@hookimpl
def sslcore_register_pretext_tasks(registry: Registry) -> None:
    registry.add("scarf", scarf.Scarf, params=scarf.ScarfParams,
                 description="SCARF contrastive learning with random feature corruption")
    registry.add("masked_features", masked_features.MaskedFeatures,
                 params=masked_features.MaskedFeaturesParams,
                 description="VIME: predict the corruption mask and the original features")
    registry.add("contrastive_reconstruction", contrastive_reconstruction.ContrastiveReconstruction,
                 params=contrastive_reconstruction.ContrastiveReconstructionParams,
                 description="SCARF contrast + VIME reconstruction on the same corrupted view")


@hookimpl
def sslcore_register_heads(registry: Registry) -> None:
    registry.add("linear_probe", linear_probe.LinearProbe, params=linear_probe.LinearProbeParams,
                 description="frozen encoder + class-balanced logistic regression")
    registry.add("finetune", finetune.Finetune, params=finetune.FinetuneParams,
                 description="fine-tune a copy of the encoder with a linear head")
    registry.add("embedding_anomaly", embedding_anomaly.EmbeddingAnomaly,
                 params=embedding_anomaly.EmbeddingAnomalyParams,
                 description="label-free k-NN distance to the unlabeled pool in embedding space")
    registry.add("gbm_on_embeddings", gbm_on_embeddings.GBMOnEmbeddings,
                 params=gbm_on_embeddings.GBMOnEmbeddingsParams,
                 description="gradient boosting on raw features + embeddings + anomaly score")


@hookimpl
def sslcore_register_baselines(registry: Registry) -> None:
    registry.add("scratch", scratch.Scratch, params=scratch.ScratchParams,
                 description="the same backbone from random weights, same training budget")
    registry.add("hist_gbm", hist_gbm.HistGBM, params=hist_gbm.HistGBMParams,
                 description="histogram gradient boosting on raw features, few-label defaults")
    registry.add("iforest", pyod_detectors.IForestDetector, params=pyod_detectors.IForestParams,
                 description="pyod Isolation Forest on the unlabeled pool (no labels)")
    registry.add("ecod", pyod_detectors.ECODDetector, params=pyod_detectors.ECODParams,
                 description="pyod ECOD on the unlabeled pool (no labels)")
