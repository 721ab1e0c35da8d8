"""Registers the sensor_maintenance vertical's components with sslcore (thin hook functions).

Component modules are imported inside the hooks; torch-free modules stay cheap to import, and
scikit-learn, pyod and scipy are imported where they are used.
"""

from __future__ import annotations

from sslcore.sdk import hookimpl


@hookimpl
def sslcore_register_datasets(registry):  # type: ignore[no-untyped-def]
    from sslcore_sensor_maintenance.datasets import DATASETS

    for name, (factory, params, description) in DATASETS.items():
        registry.add(name, factory, params=params, description=description)


@hookimpl
def sslcore_register_backbones(registry):  # type: ignore[no-untyped-def]
    from sslcore_sensor_maintenance.backbones import patch_transformer, patchtst, tcn

    registry.add("tcn", tcn.TCNBackbone, params=tcn.TCNParams,
                 description="dilated residual 1-D CNN with a per-channel normalizer")
    registry.add("patch_transformer", patch_transformer.PatchTransformerBackbone,
                 params=patch_transformer.PatchTransformerParams,
                 description="PatchTST-style patch transformer (sensors mixed per patch)")
    registry.add("patchtst", patchtst.PatchTSTBackbone, params=patchtst.PatchTSTParams,
                 description="transformers' PatchTSTModel (channel-independent patches); "
                 "loads pretrained PatchTST models through backbone.init")


@hookimpl
def sslcore_register_augmentations(registry):  # type: ignore[no-untyped-def]
    from sslcore_sensor_maintenance import augmentations as aug

    registry.add("sensor_jitter", aug.SensorJitter, params=aug.SensorJitterParams,
                 description="sensor windows: Gaussian noise relative to each window's "
                 "per-sensor std")
    registry.add("sensor_scaling", aug.SensorScaling, params=aug.SensorScalingParams,
                 description="sensor windows: per-sensor gain on the deviations from the "
                 "window mean")


@hookimpl
def sslcore_register_pretext_tasks(registry):  # type: ignore[no-untyped-def]
    from sslcore_sensor_maintenance.pretext import masked_patches, ts2vec

    registry.add("masked_patches", masked_patches.MaskedPatches,
                 params=masked_patches.MaskedPatchesParams,
                 description="PatchTST-style masked patch reconstruction")
    registry.add("ts2vec", ts2vec.TS2Vec, params=ts2vec.TS2VecParams,
                 description="TS2Vec hierarchical contrastive learning on overlapping crops")


@hookimpl
def sslcore_register_heads(registry):  # type: ignore[no-untyped-def]
    from sslcore_sensor_maintenance.heads import normal_behavior, rul_regression, \
        rul_with_residuals

    registry.add("rul_regression", rul_regression.RULRegression,
                 params=rul_regression.RULRegressionParams,
                 description="fine-tuned encoder regressing capped remaining useful life")
    registry.add("rul_with_residuals", rul_with_residuals.RULWithResiduals,
                 params=rul_with_residuals.RULWithResidualsParams,
                 description="rul_regression's score plus scores learnt on the SSL "
                 "encoder's normal-behaviour residuals and on the recent levels, standardized")
    registry.add("gbm_on_stats_and_residuals", normal_behavior.GBMOnStatsAndResiduals,
                 params=normal_behavior.GBMOnStatsAndResidualsParams,
                 description="window_stats_gbm plus the SSL encoder's per-sensor "
                 "normal-behaviour residuals")
    registry.add("reconstruction_anomaly", normal_behavior.ReconstructionAnomaly,
                 params=normal_behavior.ReconstructionAnomalyParams,
                 description="label-free: recent readings vs the SSL encoder's expectation")


@hookimpl
def sslcore_register_baselines(registry):  # type: ignore[no-untyped-def]
    from sslcore_sensor_maintenance.baselines import window_stats_detectors as det
    from sslcore_sensor_maintenance.baselines import window_stats_gbm
    from sslcore_sensor_maintenance.heads import rul_regression, rul_with_residuals

    registry.add("window_stats_gbm", window_stats_gbm.WindowStatsGBM,
                 params=window_stats_gbm.WindowStatsGBMParams,
                 description="gradient boosting on per-sensor window statistics")
    registry.add("rul_regression_scratch", rul_regression.RULRegressionScratch,
                 params=rul_regression.RULRegressionScratchParams,
                 description="the rul_regression head on a randomly initialised backbone")
    registry.add("rul_with_levels_scratch", rul_with_residuals.RULWithLevelsScratch,
                 params=rul_with_residuals.RULWithLevelsScratchParams,
                 description="rul_regression_scratch's score plus a logistic regression on "
                 "each sensor's recent levels: rul_with_residuals without the SSL encoder")
    registry.add("window_stats_iforest", det.WindowStatsIForest,
                 params=det.WindowStatsIForestParams,
                 description="pyod Isolation Forest on window statistics (no labels)")
    registry.add("window_stats_ecod", det.WindowStatsECOD, params=det.WindowStatsECODParams,
                 description="pyod ECOD on window statistics (no labels)")


@hookimpl
def sslcore_register_metrics(registry):  # type: ignore[no-untyped-def]
    from sslcore_sensor_maintenance.event_metrics import EVENT_METRICS, event_metric

    for name, (fn, description) in EVENT_METRICS.items():
        registry.add(name, event_metric(fn), description=description)


@hookimpl
def sslcore_register_verticals(registry):  # type: ignore[no-untyped-def]
    from sslcore_sensor_maintenance.recipe import sensor_recipe

    registry.add("sensor_maintenance", sensor_recipe,
                 description="machine failures 72 h ahead from sensors and few labeled failures")
