"""The shipped contract tests over every component the medical_imaging plugin registers.

Loaders that need a user's folders are covered in test_loaders.py; the synthetic dataset runs
its contract check here on a small size (its defaults generate 12,000 images).
"""

import pytest

from sslcore.plugins import load_registries
from sslcore.testing import check_dataset, contract_cases, run_case

FILE_LOADERS = {"kermany", "image_folders", "dicom_folders"}
REGISTRIES = load_registries()


@pytest.mark.parametrize("case", contract_cases(
    "sslcore_medical_imaging", REGISTRIES, input_shape=(1, 32, 32), backbone="resnet18",
    skip=FILE_LOADERS | {"medical_synthetic"}), ids=str)
def test_contract(case):
    run_case(case)


def test_synthetic_dataset_contract():
    small = {"n_unlabeled": 16, "n_labeled": 24, "n_test": 24, "size": 32}
    check_dataset(REGISTRIES.datasets.get("medical_synthetic"), small)


def test_every_registered_component_is_covered():
    mine = REGISTRIES.components_of("sslcore_medical_imaging")
    assert mine == {"datasets": sorted(FILE_LOADERS | {"medical_synthetic"}),
                    "verticals": ["medical_imaging"]}
