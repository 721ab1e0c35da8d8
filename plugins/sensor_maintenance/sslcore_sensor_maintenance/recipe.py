"""The sensor_maintenance vertical's default experiment.

Hourly sensor windows of a fleet (64 h, every 8 h), labelled "a failure within 72 h", split by
machine. The SSL arm pretrains a dilated TCN on every training machine's windows without
labels (masked patch reconstruction, PatchTST-style, with sensors masked independently) and
then fits heads on the few labeled failure histories: fine-tuning, a linear probe, and
remaining-useful-life regression. The baseline arm gets the same TCN from scratch, gradient
boosting on window statistics, and two label-free detectors on those statistics, with the same
labeled histories and the same budget. Label fractions count failure histories.
"""

from __future__ import annotations

from typing import Any

from sslcore.contracts import VerticalRecipe

METRICS = ["auprc", "recall_at_1pct_fpr", "failures_detected_at_1pct_far",
           "failures_caught_ahead_at_1pct_far", "median_lead_time_at_1pct_far"]

DEFAULT_CONFIG: dict[str, Any] = {
    "dataset": {"name": "sensor_synthetic",
                "params": {"n_machines": 100, "hours": 4000, "window": 64, "stride": 8,
                           "horizon": 72.0}},
    "backbone": {"name": "tcn", "params": {"channels": 64, "embed_dim": 128}},
    "pretext": {"name": "masked_patches", "params": {"patch_len": 8, "mask_ratio": 0.4}},
    "augmentations": [],
    "heads": [{"name": "linear_probe"}, {"name": "finetune"}, {"name": "rul_regression"}],
    "baselines": [{"name": "scratch"}, {"name": "window_stats_gbm"},
                  {"name": "window_stats_iforest"}, {"name": "window_stats_ecod"}],
    "pretrain": {"epochs": 20, "batch_size": 256, "lr": 1e-3, "warmup_steps": 50,
                 "checkpoint_every": 500},
    "finetune": {"epochs": 30, "batch_size": 256, "lr": 1e-3, "patience": 5},
    "evaluation": {"label_fractions": [0.05, 0.1, 0.25, 1.0], "seeds": [0, 1, 2],
                   "metrics": METRICS, "primary_metric": "auprc"},
}

QUICK_OVERRIDES: dict[str, Any] = {
    "pretrain": {"epochs": 5},
    "finetune": {"epochs": 10, "patience": 3},
    "evaluation": {"label_fractions": [0.05, 0.1, 1.0], "seeds": [0]},
}


def sensor_recipe(params: Any) -> VerticalRecipe:
    return VerticalRecipe(
        description=__doc__.strip().splitlines()[0],
        default_config=DEFAULT_CONFIG,
        quick_overrides=QUICK_OVERRIDES,
        modality="timeseries",
    )
