"""Does a table fit the fraud recipe? Its SSL encoder and detectors are tuned for behavioural
features: how far a transaction departs from its own card's history, which need user and
timestamp columns (:mod:`sslcore_fraud_transactions.features`). A generic numeric table
(``numeric_table``, the ULB layout, arrays passed to ``sslcore.compare``) still runs, but
without them; the warning says what is lost.

Example::

    VerticalRecipe(..., data_checks=fraud_data_checks)
"""

from __future__ import annotations

from typing import Any

from sslcore_fraud_transactions.features import FEATURE_PREFIX

NO_BEHAVIOURAL_FEATURES = (
    "these data ({columns}) carry none of the behavioural features the recipe is built on "
    "(computed from user and timestamp columns: the amount against the card's own history, "
    "the time since its previous transaction, a merchant, device or hour new to it). Without "
    "them every method sees each transaction alone: fraud that looks ordinary overall but "
    "unusual for its card (account takeover, out-of-pattern spending) is much harder to catch, "
    "and the SSL arm has no per-user habits to learn. With user and timestamp columns, load "
    "the table with dataset fraud_table and a column mapping")


def fraud_data_checks(cfg: Any, data: Any) -> list[str]:
    """A warning when ``data`` (SSLData) has no behavioural feature column; none otherwise."""
    names = list(data.feature_names or [])
    if any(name.startswith(FEATURE_PREFIX) for name in names):
        return []
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    columns = (f"{len(names)} columns: {shown}" if names
               else f"{data.input_shape[-1]} unnamed columns")
    return [NO_BEHAVIOURAL_FEATURES.format(columns=columns)]
