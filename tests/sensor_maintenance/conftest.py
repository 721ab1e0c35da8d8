"""Small fleets for the sensor_maintenance tests: generated once per session, written per test."""

from __future__ import annotations

import pytest

from sslcore_sensor_maintenance.synthetic import Fleet, generate_fleet


@pytest.fixture(scope="session")
def small_fleet() -> Fleet:
    """10 machines x 900 hours with frequent failures (about 3 per machine), no outages."""
    return generate_fleet(10, 900, seed=3, mtbf_hours=300.0, pm_interval_hours=(400, 800),
                          outages_per_machine=0.0)
