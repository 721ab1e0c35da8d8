"""The shipped contract tests over every component the satellite plugin registers.

File loaders are covered in test_loaders.py; the synthetic dataset is checked here on small
params (its defaults generate 11,000 tiles).
"""

import pytest

from sslcore.plugins import load_registries
from sslcore.testing import check_dataset, contract_cases, run_case

FILE_LOADERS = {"eurosat_rgb", "eurosat_ms", "geotiff_folders"}
SKIP = FILE_LOADERS | {"satellite_synthetic"}


@pytest.mark.parametrize("case", contract_cases("sslcore_satellite", input_shape=(13, 32, 32),
                                                backbone="vit_tiny", skip=SKIP), ids=str)
def test_contract(case):
    run_case(case)


def test_synthetic_dataset_contract():
    entry = load_registries().datasets.get("satellite_synthetic")
    check_dataset(entry, {"n_unlabeled": 20, "n_labeled": 30, "n_test": 20, "size": 16})
