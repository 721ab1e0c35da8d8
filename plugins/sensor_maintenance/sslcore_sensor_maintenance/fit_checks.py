"""Do the series fit the sensor_maintenance recipe? It counts label fractions in failure
histories (``SSLData.labeled_groups``: the built-in fleet and the readings loaders set them),
so a history's overlapping windows never fall on both sides of the train/validation split.
Series without them (arrays passed to ``sslcore.compare``) still run, window by window; the
warning says what that changes.

A labeled pool without any failure never reaches this check: ``SSLData.validate`` refuses a
split with a single class when the data are loaded ("labeled labels have a single class").

Example::

    VerticalRecipe(..., data_checks=sensor_data_checks)
"""

from __future__ import annotations

from typing import Any

NO_HISTORIES = (
    "these series carry no failure histories (SSLData.labeled_groups), so label fractions count "
    "windows, not failures, and the train/validation split is drawn window by window: if "
    "several windows come from one record (overlapping windows of one failure's run-up), they "
    "can fall on both sides of it, which flatters the validation scores the methods are chosen "
    "on. Independent series (one sample per recording) are unaffected; otherwise pass windows "
    "with their machine or failure id through a loader that sets groups (dataset "
    "sensor_table or cmapss)")


def sensor_data_checks(cfg: Any, data: Any) -> list[str]:
    """A warning when ``data`` (SSLData) has no labeled groups; none otherwise."""
    return [] if data.labeled_groups is not None else [NO_HISTORIES]
