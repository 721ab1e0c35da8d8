"""Registers the fraud vertical's data loaders and recipe with sslcore (thin hook functions)."""

from __future__ import annotations

from sslcore.sdk import hookimpl


@hookimpl
def sslcore_register_datasets(registry):  # type: ignore[no-untyped-def]
    from sslcore_fraud_transactions.datasets import DATASETS

    for name, (factory, params, description) in DATASETS.items():
        registry.add(name, factory, params=params, description=description)


@hookimpl
def sslcore_register_verticals(registry):  # type: ignore[no-untyped-def]
    from sslcore_fraud_transactions.recipe import fraud_recipe

    registry.add("fraud_transactions", fraud_recipe,
                 description="card-transaction fraud: SSL on unlabeled transactions")
