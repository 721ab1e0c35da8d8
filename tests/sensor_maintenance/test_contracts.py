"""The shipped contract tests over every component the sensor plugin registers.

File loaders are covered in test_loaders.py. ``rul_regression``, ``rul_with_residuals``,
``rul_regression_scratch`` and ``rul_with_levels_scratch`` need per-window remaining useful
life (``ctx.meta_train["rul"]``), which the generic tiny contexts do not carry: they get the
same method contract below with that metadata added, on binary tasks (they refuse others);
test_components.py checks what they compute.
"""

import numpy as np
import pytest

from sslcore.plugins import load_registries
from sslcore.testing import check_method, contract_cases, run_case

RUL_METHODS = {"rul_regression": "heads", "rul_with_residuals": "heads",
               "rul_regression_scratch": "baselines", "rul_with_levels_scratch": "baselines"}
SKIP = {"sensor_table", "cmapss", *RUL_METHODS}


@pytest.mark.parametrize("case", contract_cases("sslcore_sensor_maintenance", input_shape=(5, 64),
                                                backbone="tcn", skip=SKIP), ids=str)
def test_contract(case):
    run_case(case)


def _add_rul(ctx):
    """Positives fail 10 h after their window, negatives never within a record of 500 h."""
    for split, y in (("meta_train", ctx.y_train), ("meta_val", ctx.y_val)):
        setattr(ctx, split, {"rul": np.where(y == 1, 10.0, np.inf),
                             "horizon": np.full(len(y), 24.0),
                             "time_to_record_end": np.full(len(y), 500.0)})


@pytest.mark.parametrize("name", sorted(RUL_METHODS))
def test_rul_methods_meet_the_method_contract(name):
    registries = load_registries()
    kind = RUL_METHODS[name]
    check_method(registries.by_kind[kind].get(name), backbone_entry=registries.backbones.get("tcn"),
                 input_shape=(5, 64), as_head=kind == "heads", add_meta=_add_rul)
