"""Windows, labels and the split by machine: no test machine reaches training, in any form."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from sslcore.data.sampling import nested_subsets
from sslcore.errors import DataError
from sslcore_sensor_maintenance.backbones.tcn import TCNBackbone, TCNParams
from sslcore_sensor_maintenance.datasets import SyntheticParams, sensor_synthetic
from sslcore_sensor_maintenance.grid import MachineSeries
from sslcore_sensor_maintenance.windowing import make_windows, split_machines

PARAMS = SyntheticParams(n_machines=12, hours=1200, mtbf_hours=400.0, window=32, stride=4,
                         horizon=24.0, healthy_group=200.0)


@pytest.fixture(scope="module")
def data():
    return sensor_synthetic(PARAMS, seed=0)


def _window_keys(x: np.ndarray) -> set[bytes]:
    return {w.tobytes() for w in np.ascontiguousarray(x)}


def test_no_test_machine_reaches_the_unlabeled_or_labeled_pools(data):
    test_machines = set(data.test_meta["machine"])
    train_machines = set(data.labeled_meta["machine"])
    assert test_machines and train_machines and not test_machines & train_machines
    test_windows = _window_keys(data.test_x)
    assert not test_windows & _window_keys(data.unlabeled)  # byte-identical windows: none
    assert not test_windows & _window_keys(data.labeled_x)
    assert data.notes["machines_test"] == len(test_machines)


def test_normalizer_is_fitted_on_training_machines_only(data):
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries
    from sslcore.train.build import build_pretraining

    reg = load_registries()
    cfg = resolve_config("sensor_maintenance", reg, overrides={
        "backbone": {"name": "tcn", "params": {"channels": 8, "stem_stride": 4}},
        "pretext": {"name": "masked_patches", "params": {"patch_len": 8}}})
    poisoned = type(data)(**{**data.__dict__, "test_x": data.test_x + 1e6})  # test: way off
    built = build_pretraining(cfg, reg, poisoned)
    for backbone in (built.task.backbone, built.make_backbone()):
        ref = TCNBackbone(TCNParams(channels=8), input_shape=data.input_shape)
        ref.fit_normalizer(data.unlabeled)
        assert np.allclose(backbone.channel_mean.numpy(), ref.channel_mean.numpy())
        assert backbone.channel_mean.abs().max() < 1e5


def test_label_fraction_samples_whole_failure_histories(data):
    groups, y = data.labeled_groups, data.labeled_y
    failure_groups = np.unique(groups[y == 1])
    subsets = nested_subsets(y, [0.1, 0.5, 1.0], seed=0, groups=groups)
    for s in subsets:
        chosen = np.concatenate([s.train, s.val])
        picked = np.unique(groups[chosen])
        # whole groups: every window of a chosen history is in, positive and negative
        assert np.isin(np.flatnonzero(np.isin(groups, picked)), chosen).all()
        assert not set(groups[s.train]) & set(groups[s.val])
        n_fail = len(np.intersect1d(picked, failure_groups))
        assert n_fail == max(2, int(np.ceil(s.fraction * len(failure_groups))))
    # each failure history holds its run-up windows and the healthy ones before
    g = failure_groups[0]
    assert set(y[groups == g]) == {0, 1}


def test_groups_events_and_rul_are_consistent(data):
    meta = data.labeled_meta
    has_event = meta["event_id"] >= 0
    assert np.isfinite(meta["rul"][has_event]).all() and np.isinf(meta["rul"][~has_event]).all()
    assert np.array_equal(data.labeled_y, (meta["rul"] <= 24.0).astype(int))
    # a failure history is one group; healthy periods are their own groups
    assert np.array_equal(data.labeled_groups[has_event], meta["event_id"][has_event])
    assert not set(data.labeled_groups[~has_event]) & set(meta["event_id"][has_event])


def _series(n: int, nan_at: int | None = None) -> MachineSeries:
    values = np.arange(n, dtype=np.float32)[:, None].repeat(2, axis=1)
    if nan_at is not None:
        values[nan_at] = np.nan
    return MachineSeries("A", np.arange(n, dtype=np.float64), values)


def test_windows_spanning_a_failure_or_a_gap_are_dropped():
    w, stats = make_windows([_series(100, nan_at=10)], {"A": np.array([50.0])}, window=8,
                            stride=1, horizon=5.0, healthy_group=1000.0)
    starts = w.time - 7
    assert not ((starts <= 10) & (w.time >= 10)).any()  # the missing value
    assert not ((starts <= 50) & (w.time > 50)).any()  # spans the failure
    assert stats["windows_dropped_missing_values"] == 8
    assert stats["windows_dropped_at_failure"] == 7
    before = w.time <= 50
    np.testing.assert_array_equal(w.rul[before], 50 - w.time[before])
    assert (w.y[before] == (50 - w.time[before] <= 5)).all() and (w.y[~before] == 0).all()
    np.testing.assert_array_equal(w.x[0, :, 0], [0, 0])  # (C, T) layout, first window at 0
    assert w.x.shape == (len(w.y), 2, 8) and w.x.dtype == np.float32


def test_exclude_after_failure_drops_the_broken_period():
    w, _ = make_windows([_series(100)], {"A": np.array([50.0])}, window=8, stride=1,
                        horizon=5.0, healthy_group=1000.0, exclude_after=12.0)
    assert not ((w.time - 7 > 50) & (w.time - 7 <= 62)).any()


def test_split_by_machine_is_seeded_and_disjoint():
    machines = np.array([f"M{i}" for i in range(10)])
    a, b = split_machines(machines, 0.3, seed=1)
    assert len(b) == 3 and not set(a) & set(b)
    assert np.array_equal(split_machines(machines, 0.3, seed=1)[1], b)
    with pytest.raises(DataError, match="at least 2"):
        split_machines(np.array(["M0", "M0"]), 0.3, seed=0)


def test_window_longer_than_every_record_is_refused():
    with pytest.raises(DataError, match=r"no complete window of 500 steps.*machine 'A'"):
        make_windows([_series(100)], {}, window=500, stride=1, horizon=5.0,
                     healthy_group=100.0)


def test_a_split_without_failures_is_refused():
    with pytest.raises(DataError, match=r"the training machines .* have no windows with a failure "
                                        r"within the horizon"):
        sensor_synthetic(SyntheticParams(n_machines=4, hours=300, mtbf_hours=5000.0, window=32,
                                         stride=4, horizon=24.0), seed=0)




def test_machine_baseline_uses_only_the_machines_earlier_readings():
    from sslcore_sensor_maintenance.windowing import machine_baseline

    values = np.arange(40, dtype=np.float64)[:, None].repeat(2, axis=1)
    values[:, 1] = 5.0
    values[3, 0] = np.nan
    center, scale, enough = machine_baseline(values, np.array([2, 10, 30]), steps=8)
    np.testing.assert_array_equal(enough, [False, True, True])  # 2 steps of history < 8 / 2
    assert center[1, 0] == pytest.approx(np.mean([2, 4, 5, 6, 7, 8, 9]))  # steps 2..9, no NaN
    assert center[2, 0] == pytest.approx(np.mean(np.arange(22, 30)))
    assert center[2, 1] == 5.0 and scale[2, 1] == pytest.approx(5e-3 + 1e-6)


def test_machine_baseline_windows_are_relative_to_their_own_past():
    w_raw, _ = make_windows([_series(200)], {}, window=8, stride=4, horizon=5.0,
                            healthy_group=1000.0)
    w, stats = make_windows([_series(200)], {}, window=8, stride=4, horizon=5.0,
                            healthy_group=1000.0, baseline_steps=16)
    assert stats["windows_dropped_short_history"] == 2  # starts 0 and 4 lack 8 steps of past
    i = int(np.flatnonzero(w_raw.time == w.time[0])[0])
    start = int(w.time[0]) - 7
    past = np.arange(max(0, start - 16), start)  # up to 16 steps before the window
    np.testing.assert_allclose(w.x[0, 0], (w_raw.x[i, 0] - past.mean()) / past.std(), rtol=1e-5)


def test_unlogged_synthetic_machines_only_grow_the_unlabeled_pool(data):
    more = sensor_synthetic(PARAMS.model_copy(update={"n_unlabeled_machines": 3}), seed=0)
    np.testing.assert_array_equal(more.test_x, data.test_x)  # the logged fleet is unchanged
    np.testing.assert_array_equal(more.labeled_x, data.labeled_x)
    assert len(more.unlabeled) > len(data.unlabeled) and more.notes["machines_unlabeled_only"] == 3
    assert not _window_keys(more.test_x) & _window_keys(more.unlabeled)


def test_test_windows_name_the_mode_of_the_failure_ahead(data):
    """For the per-mode breakdown of the event metrics: every test window with a failure
    ahead names that failure's recorded mode; the labeled windows carry no mode at all."""
    from sslcore_sensor_maintenance.synthetic import MODES, generate_fleet

    meta = data.test_meta
    mode, event = meta["failure_mode"], np.asarray(meta["event_id"])
    assert set(mode[event >= 0]) <= set(MODES) and (mode[event < 0] == "").all()
    assert "failure_mode" not in data.labeled_meta
    fleet = generate_fleet(PARAMS.n_machines, PARAMS.hours, 0, mtbf_hours=PARAMS.mtbf_hours)
    epoch = datetime(1970, 1, 1)
    logged = {(m, round((t - epoch).total_seconds() / 3600.0, 3)): f
              for m, t, f in fleet.failures.iter_rows()}
    for i in np.unique(event[event >= 0]):
        rows = np.flatnonzero(event == i)
        assert len(set(mode[rows])) == 1  # one failure, one mode
        k = rows[0]
        when = round(float(meta["time"][k] + meta["rul"][k]), 3)
        assert logged[(str(meta["machine"][k]), when)] == mode[k]
