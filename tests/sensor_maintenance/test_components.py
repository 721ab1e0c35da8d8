"""Component behaviour beyond the shared contracts: the RUL head, pretext losses, backbones."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch

from sslcore.errors import ConfigError, DataError
from sslcore.testing import TINY_BUDGET, tiny_context
from sslcore_sensor_maintenance.augmentations import (
    SensorJitter,
    SensorJitterParams,
    SensorScaling,
    SensorScalingParams,
)
from sslcore_sensor_maintenance.backbones.patch_transformer import (
    PatchTransformerBackbone,
    PatchTransformerParams,
)
from sslcore_sensor_maintenance.backbones.tcn import TCNBackbone, TCNParams
from sslcore_sensor_maintenance.baselines.window_features import STATS, window_stats
from sslcore_sensor_maintenance.heads.normal_behavior import (
    anomaly_from_residuals,
    sensor_residuals,
)
from sslcore_sensor_maintenance.heads.rul_regression import (
    RULRegression,
    RULRegressionParams,
    RULRegressionScratch,
    RULRegressionScratchParams,
)
from sslcore_sensor_maintenance.heads.rul_with_residuals import (
    RULWithLevelsScratch,
    RULWithLevelsScratchParams,
    RULWithResiduals,
    RULWithResidualsParams,
    last_quarter_features,
    last_quarter_levels,
)
from sslcore_sensor_maintenance.pretext.masked_patches import MaskedPatches, MaskedPatchesParams
from sslcore_sensor_maintenance.pretext.ts2vec import (
    TS2Vec,
    TS2VecParams,
    instance_contrastive_loss,
    temporal_contrastive_loss,
)

SHAPE = (5, 32)


def _tcn(seed: int = 0) -> TCNBackbone:
    torch.manual_seed(seed)
    return TCNBackbone(TCNParams(channels=8, embed_dim=16), input_shape=SHAPE)


def _rul_context(seed: int = 0, with_meta: bool = True):
    ctx = tiny_context(SHAPE, seed=seed, encoder=_tcn(), budget=TINY_BUDGET,
                       make_backbone=lambda: _tcn(7))
    ctx.encoder.fit_normalizer(ctx.unlabeled)
    if with_meta:
        for split, y in (("meta_train", ctx.y_train), ("meta_val", ctx.y_val)):
            rul = np.where(y == 1, 10.0, np.inf)
            setattr(ctx, split, {"rul": rul, "horizon": np.full(len(y), 24.0),
                                 "time_to_record_end": np.full(len(y), 500.0)})
    return ctx


def _scores_by_hand(rul_train, rul_test, y_train, *extra):
    """z(RUL score) + sum of weight * z(logistic regression on features), z on the train rows;
    ``extra``: (f_train, f_test, c, weight) per added score."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    total = (rul_test - rul_train.mean()) / rul_train.std()
    for f_train, f_test, c, weight in extra:
        scaler = StandardScaler().fit(f_train)
        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
        lr.fit(scaler.transform(f_train), y_train)
        d_train = lr.decision_function(scaler.transform(f_train))
        d_test = lr.decision_function(scaler.transform(f_test))
        total = total + weight * (d_test - d_train.mean()) / d_train.std()
    return total


def test_rul_regression_fits_scores_and_is_deterministic():
    x_test = tiny_context(SHAPE, seed=5).x_train[:20]
    ctx = _rul_context()
    state = copy.deepcopy(ctx.encoder.state_dict())
    head = RULRegression(RULRegressionParams())
    head.fit(ctx)
    for k, v in ctx.encoder.state_dict().items():
        assert torch.equal(v, state[k]), k  # the shared encoder is untouched
    scores = head.predict_scores(x_test)
    assert scores.shape == (20,) and np.isfinite(scores).all()
    again = RULRegression(RULRegressionParams())
    again.fit(_rul_context())
    np.testing.assert_allclose(again.predict_scores(x_test), scores, atol=1e-5)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(head)).predict_scores(x_test), scores,
                               atol=1e-6)
    assert head.cap == 96.0  # 4 horizons


def test_rul_regression_scratch_starts_from_a_fresh_backbone():
    x_test = tiny_context(SHAPE, seed=5).x_train[:20]
    ctx = _rul_context()
    ctx.encoder = None  # the baseline arm has none
    base = RULRegressionScratch(RULRegressionScratchParams())
    base.fit(ctx)
    scores = base.predict_scores(x_test)
    assert scores.shape == (20,) and np.isfinite(scores).all()
    again = RULRegressionScratch(RULRegressionScratchParams())
    again.fit(_rul_context())
    np.testing.assert_allclose(again.predict_scores(x_test), scores, atol=1e-5)
    with pytest.raises(DataError, match="rul_regression_scratch needs the remaining useful life"):
        RULRegressionScratch().fit(_rul_context(with_meta=False))


def test_rul_with_residuals_adds_the_standardized_log_residual_to_the_rul_score():
    x_test = tiny_context(SHAPE, seed=5).x_train[:20]
    ctx = _rul_context()
    plain = RULRegression(RULRegressionParams())
    plain.fit(ctx)
    r_train, r_test = plain.predict_scores(ctx.x_train), plain.predict_scores(x_test)
    z_rul = (r_test - r_train.mean()) / r_train.std()
    only_rul = RULWithResiduals(RULWithResidualsParams(residual_weight=0.0, level_weight=0.0))
    only_rul.fit(_rul_context())
    np.testing.assert_allclose(only_rul.predict_scores(x_test), z_rul, atol=1e-4)
    only_rul = RULWithResiduals(RULWithResidualsParams(residual_weight=0.0, level_weight=0.0,
                                                       residual_score="mean_square"))
    only_rul.fit(_rul_context())
    np.testing.assert_allclose(only_rul.predict_scores(x_test), z_rul, atol=1e-4)

    def log_anomaly(x):
        res = sensor_residuals(ctx.encoder, x, torch.device("cpu"))
        return np.log(anomaly_from_residuals(res) + 1e-12)

    a_train, a_test = log_anomaly(ctx.x_train), log_anomaly(x_test)
    head = RULWithResiduals(RULWithResidualsParams(residual_weight=2.0, level_weight=0.0,
                                                   residual_score="mean_square"))
    head.fit(_rul_context())
    expected = z_rul + 2.0 * (a_test - a_train.mean()) / a_train.std()
    np.testing.assert_allclose(head.predict_scores(x_test), expected, atol=1e-4)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(head)).predict_scores(x_test),
                               expected, atol=1e-4)


def test_rul_with_residuals_learns_which_sensor_residuals_signal_a_failure():
    """The default scores: an L2 logistic regression on each sensor's last-quarter residual
    mean and |mean|, and another on the window's own last-quarter levels (the baseline's),
    both fitted on the labeled training windows and added to the RUL score."""
    x_test = tiny_context(SHAPE, seed=5).x_train[:20]
    ctx = _rul_context()
    plain = RULRegression(RULRegressionParams())
    plain.fit(ctx)
    r_train, r_test = plain.predict_scores(ctx.x_train), plain.predict_scores(x_test)

    def features(x):
        return last_quarter_features(sensor_residuals(ctx.encoder, x, torch.device("cpu")))

    f_train = features(ctx.x_train)
    assert f_train.shape == (len(ctx.x_train), 2 * SHAPE[0])
    residuals = (f_train, features(x_test), 0.5, 1.0)
    levels = (last_quarter_levels(ctx.x_train), last_quarter_levels(x_test), 0.3, 2.0)
    head = RULWithResiduals(RULWithResidualsParams(residual_c=0.5, level_weight=0.0))
    head.fit(_rul_context())
    expected = _scores_by_hand(r_train, r_test, ctx.y_train, residuals)
    np.testing.assert_allclose(head.predict_scores(x_test), expected, atol=1e-4)
    head = RULWithResiduals(RULWithResidualsParams(residual_c=0.5, level_c=0.3, level_weight=2.0))
    head.fit(_rul_context())
    expected = _scores_by_hand(r_train, r_test, ctx.y_train, residuals, levels)
    np.testing.assert_allclose(head.predict_scores(x_test), expected, atol=1e-4)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(head)).predict_scores(x_test),
                               expected, atol=1e-4)


def test_rul_with_levels_scratch_is_rul_with_residuals_without_the_encoder():
    """The baseline: the scratch RUL score plus the same logistic regression on the window's
    own last-quarter levels; it reuses rul_regression_scratch's fit and needs no encoder."""
    x_test = tiny_context(SHAPE, seed=5).x_train[:20]
    ctx = _rul_context()
    ctx.encoder = None  # the baseline arm's context
    scratch = RULRegressionScratch(RULRegressionScratchParams())
    scratch.fit(ctx)
    r_train, r_test = scratch.predict_scores(ctx.x_train), scratch.predict_scores(x_test)
    f_train = last_quarter_levels(ctx.x_train)
    q = SHAPE[1] // 4
    np.testing.assert_allclose(f_train[:, :SHAPE[0]], ctx.x_train[:, :, -q:].mean(2), atol=1e-6)
    expected = _scores_by_hand(r_train, r_test, ctx.y_train,
                               (f_train, last_quarter_levels(x_test), 0.3, 2.0))

    head = RULWithLevelsScratch(RULWithLevelsScratchParams(level_weight=2.0, level_c=0.3))
    head.fit(ctx)
    assert head.model is scratch.model  # same seed and rows: the regression is not retrained
    np.testing.assert_allclose(head.predict_scores(x_test), expected, atol=1e-4)
    alone = RULWithLevelsScratch(RULWithLevelsScratchParams(level_weight=2.0, level_c=0.3))
    fresh = _rul_context()
    fresh.encoder = None
    alone.fit(fresh)  # its own cache: trained from the seeded fresh backbone, same result
    assert alone.model is not scratch.model
    np.testing.assert_allclose(alone.predict_scores(x_test), expected, atol=1e-4)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(alone)).predict_scores(x_test),
                               expected, atol=1e-4)


def test_rul_with_residuals_reuses_the_rul_regression_fitted_in_the_same_sweep():
    x_test = tiny_context(SHAPE, seed=5).x_train[:20]
    alone = RULWithResiduals()
    alone.fit(_rul_context())
    ctx = _rul_context()
    plain = RULRegression(RULRegressionParams())
    plain.fit(ctx)
    shared = RULWithResiduals()
    shared.fit(ctx)  # same rows, seed, encoder and budget: the regression is not retrained
    assert shared.model is plain.model
    np.testing.assert_allclose(shared.predict_scores(x_test), alone.predict_scores(x_test),
                               atol=1e-5)
    other_cap = RULWithResiduals(RULWithResidualsParams(rul_cap=10.0))
    other_cap.fit(ctx)
    assert other_cap.model is not plain.model
    ctx.encoder = copy.deepcopy(ctx.encoder)  # another encoder: no reuse either
    refit = RULRegression(RULRegressionParams())
    refit.fit(ctx)
    assert refit.model is not plain.model


def test_rul_regression_ranks_sooner_failures_higher():
    ctx = _rul_context()
    ctx.budget = TINY_BUDGET.model_copy(update={"epochs": 15, "patience": 15})
    head = RULRegression(RULRegressionParams(rul_cap=50.0))
    head.fit(ctx)
    s = head.predict_scores(ctx.x_train)
    assert s[ctx.y_train == 1].mean() > s[ctx.y_train == 0].mean()


def test_rul_regression_needs_rul_an_encoder_and_a_binary_task():
    with pytest.raises(DataError, match=r"rul_regression needs the remaining useful life.*"
                                        r"labeled_meta\['rul'\]"):
        RULRegression().fit(_rul_context(with_meta=False))
    ctx = _rul_context()
    ctx.encoder = None
    with pytest.raises(ConfigError, match="pretrained encoder"):
        RULRegression().fit(ctx)
    ctx = _rul_context()
    ctx.num_classes = 3
    with pytest.raises(DataError, match="2 classes"):
        RULRegression().fit(ctx)


def test_censored_windows_without_enough_record_are_left_out():
    from sslcore_sensor_maintenance.heads.rul_regression import rul_targets

    meta = {"rul": np.array([5.0, np.inf, np.inf, 500.0]),
            "time_to_record_end": np.array([5.0, 200.0, 10.0, 900.0])}
    target, keep = rul_targets(meta, cap=100.0)
    np.testing.assert_array_equal(keep, [True, True, False, True])
    np.testing.assert_allclose(target[keep], [0.05, 1.0, 1.0])


@pytest.mark.parametrize("make", [
    lambda: _tcn(),
    lambda: PatchTransformerBackbone(PatchTransformerParams(patch_len=8, d_model=16, heads=2,
                                                            embed_dim=16), input_shape=SHAPE),
], ids=["tcn", "patch_transformer"])
@pytest.mark.parametrize("task", ["masked", "ts2vec"])
def test_pretext_tasks_train_both_backbones(make, task):
    backbone = make()
    x = torch.randn(16, *SHAPE)
    backbone.fit_normalizer(x.numpy())
    if task == "masked":
        t = MaskedPatches(MaskedPatchesParams(patch_len=8), backbone=backbone, input_shape=SHAPE)
    else:
        t = TS2Vec(TS2VecParams(), backbone=backbone, input_shape=SHAPE)
    opt = torch.optim.Adam(t.parameters(), lr=1e-2)
    losses = []
    for step in range(15):
        loss = t.loss(x, torch.Generator().manual_seed(step % 3))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_pretext_refuses_a_backbone_without_tokens_or_a_bad_patch():
    from sslcore.builtins.backbones.mlp import MLPBackbone, MLPParams

    with pytest.raises(ConfigError, match="sequence backbone"):
        MaskedPatches(MaskedPatchesParams(), backbone=MLPBackbone(MLPParams(), input_shape=(8,)),
                      input_shape=(8,))
    with pytest.raises(ConfigError, match="patch length 6 must be a multiple of the backbone's "
                                          "token length 4"):
        MaskedPatches(MaskedPatchesParams(patch_len=6), backbone=_tcn(), input_shape=SHAPE)


def test_contrastive_losses_reward_matching_views():
    torch.manual_seed(0)
    z = torch.randn(8, 6, 32) * 5
    assert instance_contrastive_loss(z, z) < 0.1 < instance_contrastive_loss(z, torch.randn_like(z))
    assert temporal_contrastive_loss(z, z) < 0.1 < temporal_contrastive_loss(z, torch.randn_like(z))
    assert float(instance_contrastive_loss(z[:1], z[:1])) == 0.0  # no negatives: no loss


def test_backbones_refuse_wrong_shapes():
    with pytest.raises(DataError, match="time series"):
        TCNBackbone(TCNParams(), input_shape=(64,))
    with pytest.raises(DataError, match="shorter than its minimum of 8 steps"):
        TCNBackbone(TCNParams(stem_stride=4), input_shape=(5, 7))
    with pytest.raises(DataError, match="shorter than its minimum of 16 steps"):
        PatchTransformerBackbone(PatchTransformerParams(patch_len=8), input_shape=(5, 15))
    with pytest.raises(DataError, match=r"fit_normalizer expects windows \(n, 5, length\)"):
        _tcn().fit_normalizer(np.zeros((4, 3, 32)))


def test_window_stats_hand_computed():
    x = np.zeros((1, 2, 8), dtype=np.float32)
    x[0, 0] = np.arange(8)  # a ramp
    x[0, 1] = 3.0  # constant
    f = window_stats(x).reshape(2, len(STATS))
    stat = dict(zip(STATS, f[0], strict=True))
    assert stat["mean"] == 3.5 and stat["min"] == 0 and stat["max"] == 7 and stat["last"] == 7
    assert stat["slope"] == pytest.approx(1.0) and stat["roughness"] == pytest.approx(1.0)
    assert stat["last_minus_first_quarter"] == pytest.approx(6.0)
    assert stat["q50"] == pytest.approx(3.5)
    np.testing.assert_allclose(f[1], [3, 0, 3, 3, 3, 0, 3, 3, 3, 0, 0])


def test_normal_behaviour_residuals_flag_a_broken_sensor_relation():
    from sslcore_sensor_maintenance.heads.normal_behavior import (
        RESIDUAL_STATS,
        anomaly_from_residuals,
        sensor_residuals,
    )

    rng = np.random.default_rng(0)
    base = rng.normal(size=(256, 1, 32)).cumsum(axis=2) * 0.3
    x = np.concatenate([base, 2 * base, -base], axis=1).astype(np.float32)  # related sensors
    torch.manual_seed(0)
    enc = TCNBackbone(TCNParams(channels=16, embed_dim=16), input_shape=(3, 32))
    enc.fit_normalizer(x)
    task = MaskedPatches(MaskedPatchesParams(patch_len=8, sensor_mask_prob=0.5), backbone=enc,
                         input_shape=(3, 32))
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    xt = torch.as_tensor(x)
    for step in range(150):
        loss = task.loss(xt[(step * 32) % 256:][:32], torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    broken = x[:32].copy()
    broken[:, 1, -8:] += 3 * x[:, 1].std()  # sensor 1 leaves its relation in the last quarter
    res = sensor_residuals(enc, np.concatenate([x[:32], broken]), torch.device("cpu"))
    assert res.shape == (64, 3 * len(RESIDUAL_STATS))
    score = anomaly_from_residuals(res)
    assert score[32:].mean() > 3 * score[:32].mean()
    assert enc.training  # mode restored


def test_reconstruction_anomaly_scores_each_sensor_against_its_own_normal_range(monkeypatch):
    from sslcore_sensor_maintenance.heads import normal_behavior
    from sslcore_sensor_maintenance.heads.normal_behavior import (
        RESIDUAL_STATS,
        ReconstructionAnomaly,
        ReconstructionAnomalyParams,
    )

    # Fake residuals, keyed by the window's first value: on the pool, sensor 0 is noisy (recent
    # |residual| 1 +- 0.5) and sensor 1 quiet (0.1 +- 0.01). Window A: sensor 1 at 10 of its
    # MADs; window B: sensor 0 one MAD up. Only per-sensor scaling ranks A first.
    rng = np.random.default_rng(0)
    pool_abs = np.stack([1 + 0.5 * rng.standard_normal(64), 0.1 + 0.01 * rng.standard_normal(64)],
                        axis=1)
    tests_abs = np.array([[1.0, 0.1 + 10 * 0.01], [1.5, 0.1]])

    def fake_residuals(encoder, x, device, batch_size=1024):
        recent = tests_abs if len(x) == 2 else pool_abs[:len(x)]
        res = np.zeros((len(x), 2, len(RESIDUAL_STATS)))
        res[:, :, RESIDUAL_STATS.index("last_quarter_mean_abs")] = recent
        return res.reshape(len(x), -1)

    monkeypatch.setattr(normal_behavior, "sensor_residuals", fake_residuals)
    ctx = tiny_context((2, 32), encoder=_tcn())
    x_test = np.zeros((2, 2, 32), dtype=np.float32)
    pooled = ReconstructionAnomaly(ReconstructionAnomalyParams())
    pooled.fit(ctx)
    center = np.median(pool_abs, axis=0)
    scale = 1.4826 * np.median(np.abs(pool_abs - center), axis=0)
    np.testing.assert_allclose(pooled.predict_scores(x_test),
                               ((tests_abs - center) / scale).max(axis=1))
    assert pooled.predict_scores(x_test)[0] > pooled.predict_scores(x_test)[1]
    plain = ReconstructionAnomaly(ReconstructionAnomalyParams(sensor_scale="none"))
    plain.fit(ctx)
    np.testing.assert_allclose(plain.predict_scores(x_test), (tests_abs ** 2).mean(axis=1))
    assert plain.predict_scores(x_test)[0] < plain.predict_scores(x_test)[1]
    ctx.unlabeled = ctx.unlabeled[:0]
    with pytest.raises(DataError, match="sensor_scale: none"):
        pooled.fit(ctx)


def test_sensor_residuals_are_remembered_per_encoder_weights_and_windows(monkeypatch):
    from sslcore_sensor_maintenance.heads import normal_behavior

    calls = []
    compute = normal_behavior._compute_residuals
    monkeypatch.setattr(normal_behavior, "_compute_residuals",
                        lambda *a: calls.append(1) or compute(*a))
    enc = TCNBackbone(TCNParams(channels=8, embed_dim=8), input_shape=(3, 16))
    x = np.random.default_rng(0).normal(size=(10, 3, 16)).astype(np.float32)
    first = normal_behavior.sensor_residuals(enc, x, torch.device("cpu"))
    again = normal_behavior.sensor_residuals(enc, x.copy(), torch.device("cpu"))
    assert len(calls) == 1 and again is first and not first.flags.writeable
    normal_behavior.sensor_residuals(enc, x[:5], torch.device("cpu"))  # other windows
    with torch.no_grad():
        next(enc.parameters()).add_(0.5)  # other weights: computed afresh
    changed = normal_behavior.sensor_residuals(enc, x, torch.device("cpu"))
    assert len(calls) == 3 and not np.allclose(changed, first)


def test_sensor_augmentations_keep_levels_and_scale_with_each_window():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, *SHAPE) * torch.tensor([1.0, 5.0, 0.1, 1.0, 0.0])[:, None] + 3.0
    scaled = SensorScaling(SensorScalingParams(sigma=0.3))(x, g)
    # the window's level (what degradation shifts) stays; the spread around it changes
    torch.testing.assert_close(scaled.mean(-1), x.mean(-1), atol=1e-5, rtol=0)
    assert not torch.allclose(scaled, x)
    jittered = SensorJitter(SensorJitterParams(sigma=0.1))(x, g)
    noise_std = (jittered - x).std(dim=(0, 2))
    # noise relative to each sensor's own spread: none on the constant sensor
    assert noise_std[4] == 0
    ratio = noise_std[:4] / x.std(dim=-1).mean(0)[:4]
    torch.testing.assert_close(ratio, torch.full((4,), 0.1), atol=0.01, rtol=0)
    assert torch.equal(SensorJitter(SensorJitterParams(sigma=0.0))(x, g), x)
