"""The fraud model on raw transactions: its behavioural features are computed inside the model.

The recipe's ``raw_input`` (:func:`raw_input`) hands the core a :class:`~sslcore.sdk.RawInput`
for the transaction datasets (``fraud_synthetic``, ``fraud_table``), so the logged model takes
the columns of the transactions themselves (user, timestamp, amount, the categorical and
numeric columns of the dataset's column mapping) and computes the ``f_*`` features of
:mod:`sslcore_fraud_transactions.features` from the rows it is sent. A caller needs neither
sslcore nor this plugin's code; the server that loads the model needs this plugin installed
(the model's requirements list it).

Limit: a row's history is the earlier rows of the same user *in the same request*. History
the request does not carry is not seen: a user's first row in a request is new on every
categorical, with no velocity, like a first-ever transaction. To score a transaction as
training saw it, send the user's preceding transactions (a day, a few dozen rows) with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from sslcore.sdk import DataError, RawInput
from sslcore_fraud_transactions.features import ROW_INDEX, behavioral_features, feature_columns
from sslcore_fraud_transactions.loaders import (ColumnMapping, _timestamp, check_finite,
                                                check_numeric, scan_table)

LIMITS = ("features are computed from the rows of the request: a user's history before the "
          "request is not seen; send each user's preceding transactions with the ones to score")
_SOURCE = "request"
_EXAMPLE_ROWS = 4  # per user, two users: the example shows history within a request


class TransactionFeatures:
    """Raw transactions (a pandas DataFrame) -> the behavioural features, in input order."""

    def __init__(self, mapping: ColumnMapping) -> None:
        self.mapping = mapping.model_copy(update={"label": None})

    @property
    def columns(self) -> list[str]:
        """The raw columns a request carries."""
        return list(self.mapping.columns())

    def frame(self, rows: Any) -> pl.DataFrame:
        """The feature frame (``row_index``, user, timestamp, ``f_*``) in input order."""
        m = self.mapping
        lf = pl.from_pandas(rows[self.columns]).lazy()
        schema = lf.collect_schema()
        check_numeric(schema, [m.amount, *m.numeric], _SOURCE, "amount/numeric")
        check_finite(lf, [m.amount, *m.numeric], _SOURCE)
        users = rows[m.user].isna().to_numpy()
        if users.any():
            raise DataError(f"{_SOURCE}: user column {m.user!r} has {int(users.sum())} missing "
                            f"values, first at row {int(np.argmax(users))}")
        lf = lf.with_columns(_timestamp(lf, schema, m.timestamp, _SOURCE).alias(m.timestamp))
        feats = behavioral_features(lf, user=m.user, timestamp=m.timestamp, amount=m.amount,
                                    categorical=m.categorical, numeric=m.numeric)
        return feats.collect().sort(ROW_INDEX)

    def __call__(self, rows: Any) -> np.ndarray:
        feats = self.frame(rows)
        return feats.select(feature_columns(feats.schema)).to_numpy().astype(np.float32)


def _synthetic_example(mapping: ColumnMapping) -> Any:
    from sslcore_fraud_transactions.synthetic import generate_transactions

    df = generate_transactions(2_000, n_users=20, fraud_rate=0.02, seed=0)
    return _two_users(df.lazy(), mapping)


def _two_users(lf: pl.LazyFrame, mapping: ColumnMapping) -> Any:
    """The first rows of two users, in time order, with the mapped columns but the label."""
    columns = [c for c in mapping.columns() if c != mapping.label]
    users = lf.select(pl.col(mapping.user).unique(maintain_order=True).head(2)).collect()
    rows = (lf.filter(pl.col(mapping.user).is_in(users.to_series().to_list()))
            .group_by(mapping.user, maintain_order=True).head(_EXAMPLE_ROWS)
            .select(columns).collect())
    return rows.sort(mapping.timestamp, maintain_order=True).to_pandas()


def raw_input(dataset: str, params: dict[str, Any]) -> RawInput | None:
    """The raw-transaction input of the transaction datasets; None for the others (the ULB
    and numeric-table layouts are features already)."""
    from sslcore_fraud_transactions.datasets import SYNTHETIC_COLUMNS, TableParams

    if dataset == "fraud_synthetic":
        mapping, example = SYNTHETIC_COLUMNS, _synthetic_example(SYNTHETIC_COLUMNS)
    elif dataset == "fraud_table":
        table = TableParams.model_validate(params)
        mapping = table.columns
        example = _two_users(scan_table(table.path), mapping)
    else:
        return None
    features = TransactionFeatures(mapping)
    names = feature_columns(features.frame(example).schema)
    return RawInput(example=example, features=features, feature_names=names, limits=LIMITS)
