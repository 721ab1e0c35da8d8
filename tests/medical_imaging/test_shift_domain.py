"""The second acquisition site: its defaults leave the radiographs bit-identical, each lever moves
the statistic it is about, and the recipe's site_b domain validates."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pydantic import ValidationError

from sslcore.plugins import load_registries
from sslcore_medical_imaging.datasets import SyntheticParams, medical_synthetic
from sslcore_medical_imaging.recipe import DEFAULT_CONFIG, SITE_B
from sslcore_medical_imaging.sites import AcquisitionSite
from sslcore_medical_imaging.synthetic import generate_radiographs


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def _draw(**site: object) -> np.ndarray:
    """64 patients at 32 px; the same seed, so only the site differs."""
    return generate_radiographs(64, size=32, prevalence=0.5, seed=1,
                                site=AcquisitionSite(**site))[0]


def _roughness(x: np.ndarray) -> float:
    """Mean absolute difference of neighbouring pixels in the image centre (noise, detail)."""
    c = x[:, 0, 8:24, 8:24]
    return float(np.abs(np.diff(c, axis=-1)).mean())


def test_default_site_reproduces_the_built_in_radiographs():
    x, y, _ = generate_radiographs(130, size=32, prevalence=0.5, seed=1)
    # digest of generate_radiographs(130, size=32, prevalence=0.5, seed=1) before sites existed
    assert _digest(x, y) == "f2a80d80ad08004d"
    x2, y2, _ = generate_radiographs(130, size=32, prevalence=0.5, seed=1,
                                     site=AcquisitionSite())
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_each_lever_moves_its_statistic():
    base = _draw()
    clean = _draw(dose=10.0)  # the same patients with almost no quantum noise
    noise = {dose: float(np.abs(_draw(dose=dose) - clean).mean()) for dose in (0.2, 1.0)}
    assert noise[0.2] > 1.5 * noise[1.0]
    assert _roughness(_draw(native_size=16)) < 0.8 * _roughness(base)  # lower resolution
    assert _roughness(_draw(extra_blur=1.0)) < _roughness(base)
    assert _draw(gamma=1.5).mean() < base.mean() - 0.03  # darker mid-tones
    assert _draw(brightness=0.1).mean() > base.mean() + 0.05
    low = _draw(contrast=0.6)
    assert low[:, 0, 8:24, 8:24].std() < 0.8 * base[:, 0, 8:24, 8:24].std()
    walled = _draw(collimation=1.0, collimation_width=(0.15, 0.2))
    assert walled[:, 0, 0].mean() < 0.1 and walled[:, 0, :, -1].mean() < 0.1  # shutter borders
    assert _draw(native_size=16).shape == base.shape  # resized to the dataset's size


def test_site_b_changes_exposure_and_prevalence_but_keeps_the_task():
    params = {"n_unlabeled": 8, "n_labeled": 8, "n_test": 300, "size": 32}
    home = medical_synthetic(SyntheticParams(**params), seed=0)
    site_b = medical_synthetic(SyntheticParams(**(SITE_B | params)), seed=1)  # its levers, few rows
    assert site_b.test_x.shape[1:] == home.test_x.shape[1:]
    assert site_b.test_y.mean() < home.test_y.mean() - 0.07  # prevalence 0.15 vs 0.3
    assert abs(site_b.test_x.mean() - home.test_x.mean()) > 0.02
    assert "site:" in site_b.sources[0] and "site:" not in home.sources[0]
    assert 0 < site_b.test_y.sum() < len(site_b.test_y)


def test_bad_site_is_refused_with_the_field_named():
    with pytest.raises(ValidationError, match="scanner_shares"):
        AcquisitionSite(scanner_shares=[1.0, 2.0])
    with pytest.raises(ValidationError, match="dose"):
        SyntheticParams(site={"dose": 0.0})


def test_recipe_names_site_b_and_it_validates():
    from sslcore.experiment import resolve_config

    assert DEFAULT_CONFIG["dataset"]["shifted"] == {"site_b": SITE_B}
    cfg = resolve_config("medical_imaging", load_registries(), quick=True)
    assert set(cfg.dataset.shifted) == {"site_b"}
    assert SITE_B["n_test"] <= 1000  # the quick in-domain test set's size


def test_kermany_other_hospital_config_validates():
    from pathlib import Path

    from sslcore.experiment import resolve_config

    path = (Path(__file__).resolve().parents[2] / "plugins" / "medical_imaging" / "configs"
            / "kermany_other_hospital.yaml")
    cfg = resolve_config(path, load_registries())
    assert cfg.dataset.name == "kermany"
    assert cfg.dataset.shifted["other_hospital"]["root"] != cfg.dataset.params["root"]
