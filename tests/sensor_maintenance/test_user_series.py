"""The sensor vertical on users' own series: any length, labels only, 2 to 4 classes.

UCR-like shapes (GunPoint 1 x 150, ItalyPowerDemand 1 x 24, ArrowHead 1 x 251 with 3 classes,
BasicMotions 6 x 100 with 4 classes, and an odd 97) made here: noise plus a bump whose position
depends on the class. No per-row metadata, as from ``sslcore.compare(data={...})``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import sslcore
from mlflow import MlflowClient
from sslcore.data.user_data import from_user_data
from sslcore.data_fit import DataFitWarning, fit_config_to_data
from sslcore.errors import DataError
from sslcore.experiment import resolve_config
from sslcore.plugins import load_registries
from sslcore.testing import contract_cases, run_case
from sslcore_sensor_maintenance.augmentations import SensorJitter, SensorScaling
from sslcore_sensor_maintenance.backbones.base import pad_start
from sslcore_sensor_maintenance.backbones.patch_transformer import (
    PatchTransformerBackbone,
    PatchTransformerParams,
)
from sslcore_sensor_maintenance.backbones.tcn import TCNBackbone, TCNParams
from sslcore_sensor_maintenance.heads.normal_behavior import sensor_residuals
from sslcore_sensor_maintenance.pretext.masked_patches import MaskedPatches, MaskedPatchesParams
from sslcore_sensor_maintenance.pretext.ts2vec import TS2Vec, TS2VecParams

VERTICAL = "sensor_maintenance"
# (channels, length, classes): the shapes of the real-data suites
SHAPES = {"gunpoint": (1, 150, 2), "odd97": (2, 97, 3), "arrowhead": (1, 251, 3),
          "basicmotions": (6, 100, 4), "italypower": (1, 24, 2)}
RUL_METHODS = {"rul_regression", "rul_with_residuals", "rul_regression_scratch",
               "rul_with_levels_scratch"}
EVENT_METRICS = {"failures_detected_at_1pct_far", "failures_caught_ahead_at_1pct_far",
                 "median_lead_time_at_1pct_far"}


def series(n: int, channels: int, length: int, classes: int,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise plus a bump placed by the class (a quarter to three quarters into the series)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    t = np.arange(length)
    centers = (0.25 + 0.5 * y / (classes - 1)) * length
    bump = np.exp(-0.5 * ((t - centers[:, None]) / (0.08 * length)) ** 2)
    x = rng.normal(0.0, 0.3, (n, channels, length)) + \
        bump[:, None, :] * (1.0 + np.arange(channels))[None, :, None]
    return x.astype(np.float32), y


def user_data(shape: str, n: tuple[int, int, int] = (300, 200, 100)) -> dict:
    channels, length, classes = SHAPES[shape]
    xu, _ = series(n[0], channels, length, classes, seed=1)
    split = {key: series(size, channels, length, classes, seed=i + 2)
             for i, (key, size) in enumerate((("labeled", n[1]), ("test", n[2])))}
    return {"unlabeled": xu, **split}


# --- lengths: padding, minimum --------------------------------------------------------------

def test_pad_start_repeats_the_first_step_and_keeps_the_end():
    z = torch.arange(6.0).reshape(1, 1, 6)
    assert pad_start(z, 4).tolist() == [[[0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]]
    assert pad_start(z, 3) is z  # a multiple already: untouched


@pytest.mark.parametrize(("length", "pad", "tokens"), [(150, 2, 38), (97, 3, 25), (24, 0, 6),
                                                       (251, 1, 63), (100, 0, 25)])
def test_tcn_pads_the_start_to_its_stride_and_says_so(length, pad, tokens):
    tcn = TCNBackbone(TCNParams(channels=8, embed_dim=16), input_shape=(2, length))
    assert f"{length} steps -> {tokens} tokens of 4 steps" in tcn.length_rule
    assert (f"padded by {pad} step" in tcn.length_rule) == bool(pad)
    x = torch.randn(3, 2, length)
    assert tcn.tokens(tcn.normalize(x)).shape == (3, tokens, 8)
    assert tcn(x).shape == (3, 16)
    assert tcn.reconstruct(tcn.tokens(tcn.normalize(x)), length).shape == (3, 2, length)


def test_padding_never_changes_the_most_recent_token():
    """Replicate-padding the start: the last token (the prediction time) sees the same values
    whatever the padded length; the backbone in eval mode, receptive field trimmed to 1 block."""
    torch.manual_seed(0)
    tcn = TCNBackbone(TCNParams(channels=8, embed_dim=16, dilations=[1]), input_shape=(1, 150))
    tcn.eval()
    x = torch.randn(2, 1, 150)
    last = tcn.tokens(tcn.normalize(x))[:, -1]
    torch.testing.assert_close(tcn.tokens(tcn.normalize(x[..., 2:]))[:, -1], last)


def test_patch_transformer_pads_to_whole_patches():
    pt = PatchTransformerBackbone(PatchTransformerParams(patch_len=8, d_model=16, heads=2,
                                                         embed_dim=16), input_shape=(2, 97))
    assert pt.max_tokens == 13 and "13 patches of 8 steps" in pt.length_rule
    assert "padded by 7 steps" in pt.length_rule
    assert pt(torch.randn(4, 2, 97)).shape == (4, 16)


@pytest.mark.parametrize(("build", "field", "fix"), [
    (lambda: TCNBackbone(TCNParams(stem_stride=4), input_shape=(1, 7)),
     "backbone.params.stem_stride", "3 or less"),
    (lambda: PatchTransformerBackbone(PatchTransformerParams(patch_len=8), input_shape=(1, 12)),
     "backbone.params.patch_len", "6 or less"),
    (lambda: MaskedPatches(MaskedPatchesParams(patch_len=8),
                           backbone=TCNBackbone(TCNParams(), input_shape=(1, 12)),
                           input_shape=(1, 12)),
     "pretext.params.patch_len", "4 or less"),
], ids=["tcn", "patch_transformer", "masked_patches"])
def test_a_series_too_short_names_its_length_the_minimum_and_the_field(build, field, fix):
    with pytest.raises(DataError, match=rf"series of \d+ steps are shorter than its minimum of "
                                        rf"\d+ steps .*{field}.*{fix}"):
        build()


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("backbone", ["tcn", "patch_transformer"])
def test_both_pretext_tasks_train_on_every_shape(shape, backbone):
    channels, length, _ = SHAPES[shape]
    torch.manual_seed(0)
    if backbone == "tcn":
        enc = TCNBackbone(TCNParams(channels=8, embed_dim=16), input_shape=(channels, length))
    else:
        enc = PatchTransformerBackbone(PatchTransformerParams(d_model=16, heads=2, embed_dim=16),
                                       input_shape=(channels, length))
    x = torch.as_tensor(series(16, channels, length, 2, seed=0)[0])
    enc.fit_normalizer(x.numpy())
    for task in (MaskedPatches(MaskedPatchesParams(), backbone=enc, input_shape=x.shape[1:]),
                 TS2Vec(TS2VecParams(), backbone=enc, input_shape=x.shape[1:])):
        loss = task.loss(SensorScaling()(SensorJitter()(x, torch.Generator().manual_seed(0)),
                                         torch.Generator().manual_seed(1)),
                         torch.Generator().manual_seed(2))
        loss.backward()
        assert math.isfinite(float(loss.detach()))
    res = sensor_residuals(enc.eval(), x.numpy(), torch.device("cpu"))
    assert res.shape == (16, channels * 4) and np.isfinite(res).all()


def test_masked_patches_never_score_the_padding():
    """A perfect read-out of the real steps scores 0 however the padded steps are predicted."""
    tcn = TCNBackbone(TCNParams(channels=8, embed_dim=16), input_shape=(1, 20))
    task = MaskedPatches(MaskedPatchesParams(patch_len=8, mask_ratio=0.9), backbone=tcn,
                         input_shape=(1, 20))
    x = torch.randn(4, 1, 20)
    truth = pad_start(tcn.normalize(x), 8)  # 24 steps, 4 of them padding

    def reconstruct(h, length=None):
        out = truth.clone()
        out[..., :4] += 100.0  # wrong only where nothing was observed
        return out

    tcn.reconstruct = reconstruct  # type: ignore[method-assign]
    assert float(task.loss(x, torch.Generator().manual_seed(0))) == 0.0


@pytest.mark.parametrize("input_shape", [(1, 150), (3, 97)], ids=str)
def test_shipped_contracts_on_odd_lengths(input_shape):
    cases = [c for c in contract_cases("sslcore_sensor_maintenance", input_shape=input_shape,
                                       backbone="tcn")
             if c.kind in ("backbones", "pretext_tasks", "augmentations")]
    assert cases
    for case in cases:
        run_case(case)


# --- labels only: what is dropped, and why --------------------------------------------------

def _fit(shape: str):
    registries = load_registries()
    cfg = resolve_config(VERTICAL, registries, quick=True)
    data = from_user_data(user_data(shape, n=(40, 40, 40)))
    with pytest.warns(DataFitWarning) as caught:
        fitted, fitted_data = fit_config_to_data(cfg, registries, data)
    return cfg, fitted, fitted_data, {str(w.message) for w in caught}


@pytest.mark.parametrize(("shape", "dropped_methods", "dropped_metrics"), [
    ("gunpoint", RUL_METHODS | {"gbm_on_stats_and_residuals", "reconstruction_anomaly"},
     EVENT_METRICS),
    ("italypower", RUL_METHODS | {"gbm_on_stats_and_residuals", "reconstruction_anomaly"},
     EVENT_METRICS),
    ("arrowhead", RUL_METHODS | {"gbm_on_stats_and_residuals", "reconstruction_anomaly",
                                 "window_stats_iforest", "window_stats_ecod"},
     EVENT_METRICS | {"recall_at_1pct_fpr"}),
    ("basicmotions", RUL_METHODS | {"reconstruction_anomaly", "window_stats_iforest",
                                    "window_stats_ecod"},
     EVENT_METRICS | {"recall_at_1pct_fpr"}),
])
def test_plain_arrays_drop_what_needs_metadata_binary_labels_or_several_sensors(
        shape, dropped_methods, dropped_metrics):
    cfg, fitted, data, messages = _fit(shape)
    kept = {r.name for r in fitted.heads + fitted.baselines}
    assert kept == {r.name for r in cfg.heads + cfg.baselines} - dropped_methods
    assert set(fitted.evaluation.metrics) == set(cfg.evaluation.metrics) - dropped_metrics
    assert {k.split(".", 2)[2] for k in data.notes if k.startswith("dropped.")} == \
        dropped_methods | dropped_metrics
    assert "method 'rul_regression' dropped: it needs labeled_meta ['rul']" in \
        next(m for m in messages if "'rul_regression'" in m)
    channels, length, _ = SHAPES[shape]
    assert data.notes["input.backbone"].startswith(f"tcn: {length} steps")
    assert data.input_shape == (channels, length)


def test_the_built_in_fleet_keeps_every_method_and_metric():
    registries = load_registries()
    cfg = resolve_config(VERTICAL, registries)
    data = registries.datasets.get("sensor_synthetic").build(
        {"n_machines": 10, "n_unlabeled_machines": 2, "hours": 700, "mtbf_hours": 300.0,
         "window": 32, "stride": 8, "horizon": 24.0}, seed=0).validate()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DataFitWarning)
        fitted, fitted_data = fit_config_to_data(cfg, registries, data)
    assert fitted.heads == cfg.heads and fitted.baselines == cfg.baselines
    assert fitted.evaluation.metrics == cfg.evaluation.metrics
    assert not any(k.startswith("dropped.") for k in fitted_data.notes)
    assert fitted_data.notes["input.backbone"] == "tcn: 32 steps -> 8 tokens of 4 steps"


# --- end to end -----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("shape", ["gunpoint", "odd97"])
def test_compare_runs_on_plain_series(shape, tracking_uri):
    with pytest.warns(DataFitWarning, match="'rul_regression' dropped"):
        report = sslcore.compare({"vertical": VERTICAL, "pretrain": {"epochs": 1, "max_steps": 3}},
                                 data=user_data(shape), quick=True, label_fractions=[0.1],
                                 seeds=[0], tracking_uri=tracking_uri, progress=False)
    assert set(report.table["arm"]) == {"ssl", "baseline"}
    assert report.table.filter(report.table["metric"] == "auprc")["mean"].is_finite().all()
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([report.experiment_id], max_results=200)
    down = [r for r in runs if r.data.tags.get("sslcore.kind") == "downstream"]
    assert {r.data.tags["sslcore.arm"] for r in down} == {"ssl", "baseline"}
    methods = {r.data.tags["sslcore.method"] for r in down}
    assert not methods & RUL_METHODS
    params = client.get_run(report.run_id).data.params
    for name in RUL_METHODS:
        assert "needs labeled_meta ['rul']" in params[f"data.dropped.method.{name}"]
    for name in EVENT_METRICS:
        assert f"data.dropped.metric.{name}" in params
    assert set(report.dropped) >= {f"method.{name}" for name in RUL_METHODS}
    comparison = Path(client.download_artifacts(report.run_id, "comparison.md")).read_text()
    assert "## Left out for these data" in comparison
    assert "- method rul_regression: needs labeled_meta ['rul']" in comparison
    _, length, classes = SHAPES[shape]
    assert params["data.input.backbone"].startswith(f"tcn: {length} steps")
    if classes > 2:
        assert "binary" in params["data.dropped.metric.recall_at_1pct_fpr"]
        assert "gbm_on_stats_and_residuals" in methods  # 2 channels: residuals kept
