"""Another plant: the defaults leave the fleet bit-identical, each lever moves the sensor level,
noise or failure mix it is about, the recipe's plant_b domain validates, and the C-MAPSS
cross-subset configs validate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from pydantic import ValidationError

from sslcore.plugins import load_registries
from sslcore_sensor_maintenance.datasets import SyntheticParams, sensor_synthetic
from sslcore_sensor_maintenance.operating import Plant
from sslcore_sensor_maintenance.recipe import DEFAULT_CONFIG, PLANT_B
from sslcore_sensor_maintenance.synthetic import generate_fleet

CONFIGS = Path(__file__).resolve().parents[2] / "plugins" / "sensor_maintenance" / "configs"


def _digest(df: pl.DataFrame) -> str:
    h = hashlib.sha256()
    for c in df.columns:
        a = df[c].to_numpy()
        a = np.ascontiguousarray(a.astype(str) if a.dtype == object else a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def _readings(**plant: object) -> pl.DataFrame:
    return generate_fleet(12, 1500, seed=2, plant=Plant(**plant)).readings


def test_default_plant_reproduces_the_built_in_fleet():
    fleet = generate_fleet(12, 1500, seed=2)
    # digests of generate_fleet(12, 1500, seed=2) before plants existed
    assert _digest(fleet.readings) == "46149e46f930ea0c"
    assert _digest(fleet.failures) == "6a8cf8d966f206ca"
    assert _readings().equals(fleet.readings)


def test_each_lever_moves_its_sensor():
    base = _readings()
    hot = _readings(ambient_offset=10.0)
    assert (hot["temperature"] - base["temperature"]).mean() == pytest.approx(10.0, abs=0.01)
    gained = _readings(sensor_gain={"vibration": 1.3}, sensor_offset={"pressure": 0.5})
    assert gained["vibration"].mean() / base["vibration"].mean() == pytest.approx(1.3, rel=1e-3)
    assert (gained["pressure"] - base["pressure"]).mean() == pytest.approx(0.5, abs=1e-3)
    noisy = _readings(noise_scale=3.0)
    # the same seed draws the same unit noise, so the difference is (3 - 1) x 0.4 degC of it
    extra = (noisy["temperature"] - base["temperature"]).std()
    assert extra == pytest.approx(2 * 0.4, rel=0.05)
    busy = _readings(load_offset=0.2)
    assert busy["speed"].mean() > 1.05 * base["speed"].mean()  # more time at high speed


def test_failure_mode_mix_follows_the_plant():
    cooling = generate_fleet(12, 3000, seed=2, plant=Plant(failure_modes={"cooling_fault": 1.0}))
    assert len(cooling.failures) > 0
    assert set(cooling.failures["failure_mode"]) == {"cooling_fault"}
    with pytest.raises(ValidationError, match="unknown sensors"):
        Plant(sensor_gain={"vibraton": 1.2})
    with pytest.raises(ValidationError, match="failure_modes"):
        Plant(failure_modes={"rust": 1.0})


def test_plant_b_is_another_plant_with_the_same_windows():
    params = {"n_machines": 10, "hours": 1200, "mtbf_hours": 400.0, "window": 32,
              "stride": 8, "horizon": 24.0}
    home = sensor_synthetic(SyntheticParams(**params), seed=0)
    plant_b = sensor_synthetic(SyntheticParams(**(params | PLANT_B)), seed=1)
    assert plant_b.test_x.shape[1:] == home.test_x.shape[1:]
    temp = home.feature_names.index("temperature")
    assert plant_b.test_x[:, temp].mean() > home.test_x[:, temp].mean() + 8.0  # hotter climate
    assert "plant:" in plant_b.sources[0]


def test_recipe_names_plant_b_and_it_validates():
    from sslcore.experiment import resolve_config

    assert DEFAULT_CONFIG["dataset"]["shifted"] == {"plant_b": PLANT_B}
    cfg = resolve_config("sensor_maintenance", load_registries(), quick=True)
    assert set(cfg.dataset.shifted) == {"plant_b"}


@pytest.mark.parametrize("name", ["cmapss_fd001_to_fd003.yaml", "cmapss_fd001_to_fd002_fd004.yaml"])
def test_cmapss_cross_subset_configs_validate(name, tmp_path):
    from sslcore.experiment import resolve_config

    raw = yaml.safe_load((CONFIGS / name).read_text())
    assert raw["dataset"]["name"] == "cmapss" and raw["dataset"]["shifted"]
    assert "FD001" in raw["dataset"]["params"]["path"]
    cfg = resolve_config(CONFIGS / name, load_registries())
    for domain in cfg.dataset.shifted.values():
        assert "train_FD00" in domain["path"] and "FD001" not in domain["path"]
