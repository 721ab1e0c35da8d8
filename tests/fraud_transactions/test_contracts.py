"""The shipped contract tests over every component the fraud plugin registers.

Loaders that need a user's file are covered in test_loaders.py instead.
"""

import pytest

from sslcore.testing import contract_cases, run_case

FILE_LOADERS = {"fraud_table", "ulb_creditcard", "numeric_table"}


@pytest.mark.parametrize("case", contract_cases("sslcore_fraud_transactions", skip=FILE_LOADERS),
                         ids=str)
def test_contract(case):
    run_case(case)
