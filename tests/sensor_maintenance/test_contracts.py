"""The shipped contract tests over every component the sensor plugin registers.

File loaders are covered in test_loaders.py. ``rul_regression``, ``rul_with_residuals``,
``rul_regression_scratch`` and ``rul_with_levels_scratch`` need per-window remaining useful life (``ctx.meta_train["rul"]``),
which the generic tiny contexts do not carry; they get the same checks with that metadata in test_components.py.
"""

import pytest

from sslcore.testing import contract_cases, run_case

SKIP = {"sensor_table", "cmapss", "rul_regression", "rul_with_residuals",
        "rul_regression_scratch", "rul_with_levels_scratch"}


@pytest.mark.parametrize("case", contract_cases("sslcore_sensor_maintenance", input_shape=(5, 64),
                                                backbone="tcn", skip=SKIP), ids=str)
def test_contract(case):
    run_case(case)
