"""Registers the satellite vertical's components with sslcore (thin hook functions).

Component modules are imported inside the hooks: ``sslcore plugins`` and every torchrun rank
import this module, and tifffile, scikit-learn and timm load only when a component is built.
"""

from __future__ import annotations

from sslcore.sdk import hookimpl


@hookimpl
def sslcore_register_datasets(registry):  # type: ignore[no-untyped-def]
    from sslcore_satellite.datasets import DATASETS

    for name, (factory, params, description) in DATASETS.items():
        registry.add(name, factory, params=params, description=description)


@hookimpl
def sslcore_register_pretext_tasks(registry):  # type: ignore[no-untyped-def]
    from sslcore_satellite.dino import DINO, DINOParams

    registry.add("dino", DINO, params=DINOParams,
                 description="images: DINO self-distillation, multi-crop, EMA teacher, "
                 "centering and sharpening (Caron et al., 2021)")


@hookimpl
def sslcore_register_heads(registry):  # type: ignore[no-untyped-def]
    from sslcore_satellite.band_stats_embedding import (
        BandStatsEmbeddingLogReg,
        BandStatsEmbeddingLogRegParams,
    )
    from sslcore_satellite.knn import KNNParams, WeightedKNN

    registry.add("knn", WeightedKNN, params=KNNParams,
                 description="weighted k-NN (cosine, exp(s/T) votes) on frozen embeddings")
    registry.add("band_stats_embedding_logreg", BandStatsEmbeddingLogReg,
                 params=BandStatsEmbeddingLogRegParams,
                 description="images: logistic regression on band statistics plus the frozen "
                 "pretrained embedding (weighted by embedding_weight)")


@hookimpl
def sslcore_register_baselines(registry):  # type: ignore[no-untyped-def]
    from sslcore_satellite.band_stats import BandStatsGBM, BandStatsGBMParams
    from sslcore_satellite.band_stats_logreg import BandStatsLogReg, BandStatsLogRegParams

    registry.add("band_stats_gbm", BandStatsGBM, params=BandStatsGBMParams,
                 description="images: gradient boosting on per-band statistics, spectral "
                 "indices (NDVI, NDWI, MNDWI, NDBI; 13 Sentinel-2 bands only) and edge density")
    registry.add("band_stats_logreg", BandStatsLogReg, params=BandStatsLogRegParams,
                 description="images: logistic regression on the same band statistics "
                 "(strongest classical model at a few labels per class)")


@hookimpl
def sslcore_register_verticals(registry):  # type: ignore[no-untyped-def]
    from sslcore_satellite.recipe import satellite_recipe

    registry.add("satellite", satellite_recipe,
                 description="multispectral land cover: DINO on unlabeled Sentinel-2 tiles")
