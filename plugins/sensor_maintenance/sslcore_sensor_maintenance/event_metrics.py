"""Event-level metrics that need the test rows' metadata: what a maintenance planner reads.

``EVENT_METRICS`` maps a name to ``(fn, description)``, ``fn(y_true, scores, meta) -> float``
with ``meta`` the dataset's ``test_meta``; ``plugin.py`` registers each through the
``sslcore_register_metrics`` hook as :func:`event_metric` ``(fn)``: it reads ``test_meta``
(``rul``, ``event_id``), scores binary tasks only, is higher-is-better and is broken down per
failure mode.

Window-level AUPRC ranks windows; a planner asks other questions: at an alarm rate the crew can
live with, how many failures are flagged, how many early enough to plan the repair, and how
early. The definitions, for one score per window (the window's end is the prediction time):

- ``meta`` holds, per test window: ``rul`` (time from the window's end to the next failure of
  its machine, ``inf`` when none follows in the record), ``event_id`` (the id of that failure,
  ``-1`` when none follows) and optionally ``horizon`` (the label horizon H: a window is
  positive when a failure follows within H; constant; default :data:`DEFAULT_HORIZON`, the
  sensor recipe's 72 hours). Times are in the data's unit (hours; cycles for C-MAPSS).
- **Healthy windows** are those with ``rul > RUNUP_HORIZONS * H`` (incl. no failure ahead).
- **Alert threshold at a false-alarm rate (FAR) of 1%**: the score above which at most 1% of
  the healthy test windows alarm (an operating point of the ROC, like ``recall_at_1pct_fpr``;
  no model selection happens here). A window alarms when ``score > threshold``.
- **Run-up of a failure event**: its windows with ``rul <= RUNUP_HORIZONS * H``. Windows
  between one and two horizons before a failure are neither healthy nor positive: an alarm
  there is an early warning, not a false alarm.
- **First alert** of an event: its alarming run-up window with the largest ``rul``; the
  **lead time** is that ``rul``. Events without run-up windows in
  the test set (e.g. a sensor outage just before the failure) are not counted.

With ``meta['failure_mode']`` (per window, the mode of the failure ahead), every event
metric is also reported per mode, as ``<metric>.<mode>`` (:func:`by_failure_mode`, the
metric's ``by_group``): which kinds of failure a model warns of early, and which it misses.

Metrics (every one at the 1% FAR threshold, over the test set's failure events):

- ``failures_detected_at_1pct_far``: share of failures with any alert in the run-up.
- ``failures_caught_ahead_at_1pct_far``: share of failures whose first alert comes at least
  one horizon (72 h in the sensor recipe) before the failure: time to plan the repair.
- ``median_lead_time_at_1pct_far``: median lead time of the first alert over the detected
  failures (NaN when none is detected): how early the alert comes when it comes. Read it with
  ``failures_detected_at_1pct_far``: a model that detects few failures early can show a long
  median lead time.

All return NaN when the test set has no failure event or no healthy window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sslcore.sdk import DataError, positive_scores

if TYPE_CHECKING:
    from sslcore.sdk import Metric

EventMetricFn = Callable[[np.ndarray, np.ndarray, dict[str, np.ndarray]], float]

DEFAULT_HORIZON = 72.0  # hours: the sensor_maintenance recipe's label horizon
RUNUP_HORIZONS = 2.0  # run-up of a failure = windows ending within 2 horizons before it
FALSE_ALARM_RATE = 0.01
EVENT_META = ("rul", "event_id")  # the test_meta keys every event metric reads


def _require(meta: dict[str, np.ndarray], n: int, name: str) -> tuple[np.ndarray, np.ndarray,
                                                                       float]:
    missing = [k for k in EVENT_META if k not in meta]
    if missing:
        raise DataError(f"event metric {name!r} needs test_meta[{missing[0]!r}] (per window: "
                        "'rul' = time to the next failure, inf if none; 'event_id' = that "
                        "failure's id, -1 if none); this dataset does not provide it: drop the "
                        "metric from evaluation.metrics")
    rul = np.asarray(meta["rul"], dtype=np.float64)
    event = np.asarray(meta["event_id"]).astype(np.int64)
    if len(rul) != n or len(event) != n:
        raise DataError(f"event metric {name!r}: test_meta has {len(rul)} rows for {n} scores")
    horizon = DEFAULT_HORIZON
    if "horizon" in meta and len(meta["horizon"]):
        horizon = float(np.asarray(meta["horizon"], dtype=np.float64)[0])
    return np.where(np.isnan(rul), np.inf, rul), event, horizon


def window_phases(meta: dict[str, np.ndarray], name: str = "event metric"
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(run-up, healthy, horizon)`` of the test windows: the masks every metric here uses
    (see the module docstring), for code that draws or tabulates what the metrics count."""
    rul, event, horizon = _require(meta, len(np.asarray(meta.get("rul", []))), name)
    return (*_phases(rul, event, horizon), horizon)


def _phases(rul: np.ndarray, event: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """(run-up, healthy) masks; windows in neither lie 1-2 horizons before a failure."""
    return (event >= 0) & (rul <= RUNUP_HORIZONS * horizon), rul > RUNUP_HORIZONS * horizon


def alert_threshold(scores: np.ndarray, healthy: np.ndarray,
                    far: float = FALSE_ALARM_RATE) -> float:
    """The smallest threshold at which ``score > threshold`` flags at most ``far`` of the
    healthy windows; NaN without healthy windows."""
    s = np.sort(np.asarray(scores, dtype=np.float64)[healthy])[::-1]
    if len(s) == 0:
        return float("nan")
    k = int(np.floor(far * len(s)))  # alarms allowed among the healthy windows
    return float(s[min(k, len(s) - 1)])


def first_alert_lead_times(y: np.ndarray, scores: np.ndarray, meta: dict[str, np.ndarray], *,
                           far: float = FALSE_ALARM_RATE,
                           name: str = "event metric") -> tuple[np.ndarray, float]:
    """Per failure event with run-up windows: the lead time of its first alert (NaN: missed).

    Returns ``(lead_times, horizon)``; ``lead_times`` is empty without healthy windows or
    without events.
    """
    _, lead, horizon = first_alerts(y, scores, meta, far=far, name=name)
    return lead, horizon


def first_alerts(y: np.ndarray, scores: np.ndarray, meta: dict[str, np.ndarray], *,
                 far: float = FALSE_ALARM_RATE, name: str = "event metric"
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`first_alert_lead_times` with the events' ids: ``(event_ids, lead_times,
    horizon)``, ids ascending, for breaking the metrics down by event attributes."""
    s = positive_scores(scores)
    rul, event, horizon = _require(meta, len(s), name)
    runup, healthy = _phases(rul, event, horizon)
    threshold = alert_threshold(s, healthy, far)
    if np.isnan(threshold) or not runup.any():
        return np.empty(0, dtype=np.int64), np.empty(0), horizon
    alarm = runup & (s > threshold)
    ids, inverse = np.unique(event[runup], return_inverse=True)
    lead = np.full(len(ids), np.nan)
    alarm_rul = np.where(alarm[runup], rul[runup], np.nan)
    for i in range(len(ids)):  # few events: a plain loop is clear and fast
        values = alarm_rul[inverse == i]
        if np.isfinite(values).any():
            lead[i] = np.nanmax(values)
    return ids, lead, horizon


def failures_detected(y: np.ndarray, scores: np.ndarray, meta: dict[str, np.ndarray]) -> float:
    """Share of test failures with any alert in their run-up, at a 1% false-alarm rate."""
    lead, _ = first_alert_lead_times(y, scores, meta, name="failures_detected_at_1pct_far")
    return float(np.isfinite(lead).mean()) if len(lead) else float("nan")


def failures_caught_ahead(y: np.ndarray, scores: np.ndarray,
                          meta: dict[str, np.ndarray]) -> float:
    """Share of test failures first alerted at least one horizon ahead, at a 1% FAR."""
    lead, horizon = first_alert_lead_times(y, scores, meta,
                                           name="failures_caught_ahead_at_1pct_far")
    if not len(lead):
        return float("nan")
    return float(caught_ahead(lead, horizon).mean())


def caught_ahead(lead: np.ndarray, horizon: float) -> np.ndarray:
    """Per event, whether its first alert came at least one horizon ahead (NaN lead: missed)."""
    return np.nan_to_num(lead, nan=-np.inf) >= horizon


def median_lead_time(y: np.ndarray, scores: np.ndarray, meta: dict[str, np.ndarray]) -> float:
    """Median time from the first alert to the failure over the detected test failures."""
    lead, _ = first_alert_lead_times(y, scores, meta, name="median_lead_time_at_1pct_far")
    detected = lead[np.isfinite(lead)]
    return float(np.median(detected)) if len(detected) else float("nan")


def by_failure_mode(fn: EventMetricFn, y: np.ndarray, scores: np.ndarray,
                    meta: dict[str, np.ndarray]) -> dict[str, float]:
    """``fn`` over each failure mode's events alone, when ``meta`` has ``failure_mode`` (per
    window: the mode of the failure ahead, "" when none); else empty.

    The alert threshold is the same as for all events (healthy windows do not depend on the
    mode): the other modes' windows are simply not counted as events.
    """
    if "failure_mode" not in meta:
        return {}
    mode = np.asarray(meta["failure_mode"]).astype(str)
    event = np.asarray(meta["event_id"]).astype(np.int64)
    out = {}
    for m in sorted(set(mode[event >= 0]) - {""}):
        out[m] = fn(y, scores, {**meta, "event_id": np.where(mode == m, event, -1)})
    return out


def event_metric(fn: EventMetricFn) -> Callable[[Any], Metric]:
    """The registry factory of the event metric ``fn``: a :class:`sslcore.sdk.Metric` that
    reads :data:`EVENT_META`, scores binary tasks only and is broken down per failure mode."""

    def factory(params: Any) -> Metric:
        from sslcore.sdk import Metric

        return Metric(fn, needs_meta=EVENT_META, binary_only=True, by_group=by_failure_mode)

    return factory


# name -> (fn, description): what plugin.py registers, all higher-is-better.
EVENT_METRICS: dict[str, tuple[EventMetricFn, str]] = {
    "failures_detected_at_1pct_far": (
        failures_detected, "share of test failures with any alert in their run-up, at a 1% "
        "false-alarm rate on healthy windows"),
    "failures_caught_ahead_at_1pct_far": (
        failures_caught_ahead, "share of test failures first alerted at least one label "
        "horizon ahead (72 h in the recipe), at a 1% false-alarm rate"),
    "median_lead_time_at_1pct_far": (
        median_lead_time, "median time from the first alert to the failure over the detected "
        "test failures, at a 1% false-alarm rate"),
}
