"""The core's built-in plugin: generic components, registered through the same hooks as any
third-party plugin. Component modules are imported here (they need only torch and pydantic at
import time); scikit-learn and pyod are imported inside the components' functions (the
metrics' too).
"""

from __future__ import annotations

from sslcore import hookimpl
from sslcore.builtins import verticals
from sslcore.builtins.augmentations import image, tabular
from sslcore.builtins.backbones import hf_vision, mlp, timm_backbone
from sslcore.builtins.baselines import hist_gbm, logreg_raw, pyod_detectors, scratch
from sslcore.builtins.datasets import parquet_files, synthetic_tabular
from sslcore.builtins.heads import embedding_anomaly, finetune, gbm_on_embeddings, linear_probe
from sslcore.builtins.pretext import (
    byol,
    contrastive_reconstruction,
    mae,
    masked_features,
    scarf,
    simclr,
)
from sslcore.contracts import Metric
from sslcore.evaluate import metrics
from sslcore.registry import NoParams, Registry

# Built-ins for N x C x H x W images: their contract tests run on image shapes
# (tests/core/test_image_contracts.py), not on the tabular rows of test_builtins.py.
IMAGE_COMPONENTS = frozenset({
    "random_resized_crop", "random_flip", "random_rot90", "intensity_jitter", "image_noise",
    "gaussian_blur", "band_dropout", "timm", "resnet18", "vit_tiny", "hf_vision", "simclr", "byol",
    "mae"})


@hookimpl
def sslcore_register_datasets(registry: Registry) -> None:
    registry.add("synthetic_tabular", synthetic_tabular.synthetic_tabular,
                 params=synthetic_tabular.SyntheticTabularParams,
                 description="small make_classification table for smoke tests")
    registry.add("parquet_files", parquet_files.parquet_files,
                 params=parquet_files.ParquetFilesParams,
                 description="numeric Parquet tables; the unlabeled pool streamed by row group")


@hookimpl
def sslcore_register_verticals(registry: Registry) -> None:
    registry.add("tabular", verticals.tabular_recipe, params=NoParams,
                 description="any numeric table: MLP encoder, SCARF pretraining")


@hookimpl
def sslcore_register_backbones(registry: Registry) -> None:
    registry.add("mlp", mlp.MLPBackbone, params=mlp.MLPParams,
                 description="MLP for tabular rows with a robust, clipped standardizer")
    registry.add("timm", timm_backbone.TimmBackbone, params=timm_backbone.TimmParams,
                 description="any timm image model by name (pretrained weights through "
                 "backbone.init), per-channel normalizer fitted on the unlabeled pool")
    registry.add("resnet18", timm_backbone.resnet18, params=timm_backbone.ResNet18Params,
                 description="timm ResNet-18 for images of any channel count (512-d)")
    registry.add("vit_tiny", timm_backbone.vit_tiny, params=timm_backbone.ViTTinyParams,
                 description="timm ViT-Tiny with 8 px patches at the data's image size (192-d)")
    registry.add("hf_vision", hf_vision.HFVisionBackbone, params=hf_vision.HFVisionParams,
                 description="transformers ViT or DINOv2 (ViT-Tiny shape, or backbone.init's "
                 "model, e.g. hf:facebook/dinov2-small) at the data's channels and size")


@hookimpl
def sslcore_register_augmentations(registry: Registry) -> None:
    registry.add("marginal_corruption", tabular.MarginalCorruption,
                 params=tabular.MarginalCorruptionParams,
                 description="SCARF: replace a fraction of features by other rows' values")
    registry.add("gaussian_noise", tabular.GaussianNoise, params=tabular.GaussianNoiseParams,
                 description="additive Gaussian noise, relative to each feature's batch std")
    registry.add("random_resized_crop", image.RandomResizedCrop,
                 params=image.RandomResizedCropParams,
                 description="images: random crop + resize (+ rotation, translation), one "
                 "grid_sample per batch")
    registry.add("random_flip", image.RandomFlip, params=image.RandomFlipParams,
                 description="images: per-sample horizontal and/or vertical flips")
    registry.add("random_rot90", image.RandomRot90, params=NoParams,
                 description="images: per-sample rotation by a multiple of 90 degrees")
    registry.add("intensity_jitter", image.IntensityJitter, params=image.IntensityJitterParams,
                 description="images: brightness / contrast / gamma jitter, optionally per band")
    registry.add("image_noise", image.ImageNoise, params=image.ImageNoiseParams,
                 description="images: additive Gaussian sensor noise on some samples")
    registry.add("gaussian_blur", image.GaussianBlur, params=image.GaussianBlurParams,
                 description="images: Gaussian blur with a per-sample sigma")
    registry.add("band_dropout", image.BandDropout, params=image.BandDropoutParams,
                 description="images: zero random whole bands per sample (never all)")


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
    registry.add("simclr", simclr.SimCLR, params=simclr.SimCLRParams,
                 description="images: SimCLR, NT-Xent between two augmented views, global "
                 "negatives across ranks")
    registry.add("byol", byol.BYOL, params=byol.BYOLParams,
                 description="images: BYOL, predict an EMA target's view, cosine momentum")
    registry.add("mae", mae.MAE, params=mae.MAEParams,
                 description="images: masked autoencoder on a ViT backbone (75% of patches "
                 "hidden)")


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
    registry.add("logreg_raw", logreg_raw.LogRegRaw, params=logreg_raw.LogRegRawParams,
                 description="the plain reference: class-balanced logistic regression on raw "
                 "inputs (images and series average-pooled to <= 4,096 features)")
    registry.add("iforest", pyod_detectors.IForestDetector, params=pyod_detectors.IForestParams,
                 description="pyod Isolation Forest on the unlabeled pool (no labels)")
    registry.add("ecod", pyod_detectors.ECODDetector, params=pyod_detectors.ECODParams,
                 description="pyod ECOD on the unlabeled pool (no labels)")


@hookimpl
def sslcore_register_metrics(registry: Registry) -> None:
    registry.add("auprc", lambda params: Metric(metrics.auprc),
                 description="area under the precision-recall curve (average precision); "
                 "macro over classes for a multi-class task")
    registry.add("auroc", lambda params: Metric(metrics.auroc),
                 description="area under the ROC curve; one-vs-rest macro for a multi-class task")
    registry.add("accuracy", lambda params: Metric(metrics.accuracy),
                 description="share of rows whose top class (or score >= 0.5) is right")
    registry.add("macro_f1", lambda params: Metric(metrics.macro_f1),
                 description="F1 averaged over classes, top class (or score >= 0.5) predicted")
    registry.add("recall_at_1pct_fpr",
                 lambda params: Metric(metrics.recall_at_fpr, binary_only=True),
                 description="recall at the best threshold flagging at most 1% of negatives")
    registry.add("fp_at_80pct_recall",
                 lambda params: Metric(metrics.false_positives_at_recall,
                                       higher_is_better=False, binary_only=True),
                 description="negatives flagged at the first threshold reaching 80% recall "
                 "(analyst load; lower is better)")
    registry.add("sensitivity",
                 lambda params: Metric(metrics.sensitivity, needs_threshold=True,
                                       binary_only=True),
                 description="true positive rate at the threshold chosen on validation "
                 "(Youden's J)")
    registry.add("specificity",
                 lambda params: Metric(metrics.specificity, needs_threshold=True,
                                       binary_only=True),
                 description="true negative rate at the threshold chosen on validation "
                 "(Youden's J)")
