"""Event metrics on hand-built failure run-ups (horizon 10, healthy alarm threshold at 1%),
alone and as the sensor plugin registers them (through ``sslcore_register_metrics``)."""

import numpy as np
import pytest

from sslcore.errors import DataError
from sslcore.evaluate.metrics import compute
from sslcore.plugins import load_registries
from sslcore_sensor_maintenance import event_metrics as em

INF = np.inf


@pytest.fixture(scope="module")
def metrics():
    return load_registries().metrics


def fleet() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """100 healthy windows scored 0.00..0.99 (so 0.99 alone alarms at 1% FAR) and 4 events."""
    healthy_scores = np.arange(100) / 100
    # (event, rul, score): event 0 first alarms 15 before failure, event 1 only 2 before,
    # event 2 never, event 3 has no run-up window (rul 30 > 2 horizons: a healthy window).
    events = [(0, 20, 0.5), (0, 15, 0.985), (0, 10, 0.99), (0, 5, 0.995),
              (1, 18, 0.1), (1, 8, 0.2), (1, 2, 0.999),
              (2, 12, 0.1), (2, 4, 0.5),
              (3, 30, 0.0)]
    ev = np.array([e for e, _, _ in events])
    rul = np.array([r for _, r, _ in events], dtype=float)
    s = np.array([x for _, _, x in events])
    meta = {"rul": np.concatenate([np.full(100, INF), rul]),
            "event_id": np.concatenate([np.full(100, -1), ev]),
            "horizon": np.full(110, 10.0)}
    scores = np.concatenate([healthy_scores, s])
    y = (meta["rul"] <= 10).astype(int)
    return y, scores, meta


def test_threshold_lets_one_percent_of_healthy_windows_alarm():
    scores = np.arange(200) / 200
    thr = em.alert_threshold(scores, np.ones(200, bool), 0.01)
    assert (scores > thr).sum() == 2
    assert np.isnan(em.alert_threshold(scores, np.zeros(200, bool)))


def test_hand_computed_event_metrics():
    y, s, meta = fleet()
    lead, horizon = em.first_alert_lead_times(y, s, meta)
    assert horizon == 10.0
    np.testing.assert_array_equal(lead, [15.0, 2.0, np.nan])  # event 3: no run-up, not counted
    ids, lead_by_id, _ = em.first_alerts(y, s, meta)
    np.testing.assert_array_equal(ids, [0, 1, 2])
    np.testing.assert_array_equal(lead_by_id, lead)
    assert em.failures_detected(y, s, meta) == pytest.approx(2 / 3)
    assert em.failures_caught_ahead(y, s, meta) == pytest.approx(1 / 3)
    assert em.median_lead_time(y, s, meta) == pytest.approx(8.5)  # detected: 15 and 2


def test_the_plugin_registers_them_with_what_they_need(metrics):
    for name, (fn, description) in em.EVENT_METRICS.items():
        entry = metrics.get(name)
        metric = entry.build()
        assert entry.module == "sslcore_sensor_maintenance.plugin" and entry.description
        assert metric.fn is fn and metric.higher_is_better and metric.binary_only
        assert metric.needs_meta == ("rul", "event_id") and not metric.needs_threshold
        assert metric.by_group is em.by_failure_mode


def test_two_column_scores_and_compute_dispatch(metrics):
    y, s, meta = fleet()
    out = compute(["auprc", *em.EVENT_METRICS], y, np.stack([1 - s, s], axis=1),
                  metrics=metrics, meta=meta)
    assert out["failures_caught_ahead_at_1pct_far"] == pytest.approx(1 / 3)
    assert out["median_lead_time_at_1pct_far"] == pytest.approx(8.5)


def test_default_horizon_when_meta_has_none():
    y, s, meta = fleet()
    meta = {k: v for k, v in meta.items() if k != "horizon"}
    _, horizon = em.first_alert_lead_times(y, s, meta)
    assert horizon == em.DEFAULT_HORIZON


def test_perfect_and_useless_scores():
    y, _, meta = fleet()
    perfect = np.where(np.isfinite(meta["rul"]) & (meta["rul"] <= 20), 1.0, 0.0) \
        + np.random.default_rng(0).uniform(0, 1e-3, len(y))
    assert em.failures_detected(y, perfect, meta) == 1.0
    assert em.failures_caught_ahead(y, perfect, meta) == 1.0
    useless = np.zeros(len(y))  # ties: nothing is strictly above the threshold
    assert em.failures_detected(y, useless, meta) == 0.0
    assert np.isnan(em.median_lead_time(y, useless, meta))  # nothing detected


def test_no_events_or_no_healthy_windows_give_nan():
    n = 50
    meta = {"rul": np.full(n, INF), "event_id": np.full(n, -1)}
    assert np.isnan(em.failures_detected(np.zeros(n, int), np.arange(n) / n, meta))
    meta = {"rul": np.full(n, 3.0), "event_id": np.zeros(n, int)}
    assert np.isnan(em.failures_caught_ahead(np.ones(n, int), np.arange(n) / n, meta))


def test_missing_meta_is_a_data_error_naming_the_key():
    with pytest.raises(DataError, match=r"failures_detected_at_1pct_far.*'event_id'"):
        em.failures_detected(np.zeros(3, int), np.zeros(3), {"rul": np.zeros(3)})


def test_event_metrics_per_failure_mode(metrics):
    """With test_meta['failure_mode'], each event metric is also computed over each mode's
    events alone, at the same alert threshold."""
    y, s, meta = fleet()
    ev = meta["event_id"]
    meta["failure_mode"] = np.where(ev < 0, "", np.where(np.isin(ev, [0, 2]), "wear", "leak"))
    assert em.by_failure_mode(em.failures_caught_ahead, y, s, meta) == {
        "leak": 0.0, "wear": 0.5}  # wear: event 0 caught 15 ahead, event 2 missed
    out = compute(["auprc", "failures_detected_at_1pct_far"], y, s, metrics=metrics, meta=meta)
    assert out["failures_detected_at_1pct_far.wear"] == pytest.approx(0.5)
    assert out["failures_detected_at_1pct_far.leak"] == pytest.approx(1.0)  # event 1, 2 ahead
    assert out["failures_detected_at_1pct_far"] == pytest.approx(2 / 3)
    assert not any(k.startswith("auprc.") for k in out)
    del meta["failure_mode"]
    assert em.by_failure_mode(em.failures_caught_ahead, y, s, meta) == {}
