"""Behavioural features of card transactions, computed from each user's PAST rows only.

Fraud is a departure from the card holder's own normal, so every feature compares a transaction
with what the same user did strictly before it: amount against their history, whether the
merchant / category / region / device / channel / hour is new to them and how often they used it,
and how busy the card was in the last hour and day. No feature reads a later row or a label, so
features can be computed once over the whole timeline and then split by time without leakage.

Rows are sorted by (user, timestamp) once; rows with the same user and timestamp keep their input
order, and the later one sees the earlier one as history (windowed counts exclude both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from sslcore.sdk import DataError

FEATURE_PREFIX = "f_"
ROW_INDEX = "row_index"  # position of the row in the input frame, to join labels back
_HOUR_BUCKET_H = 3  # "usual hour" is judged on 3-hour buckets: finer ones are too sparse
_NO_PREVIOUS_S = 30 * 86_400.0  # seconds-since-previous for a user's first transaction
_Z_CLIP = 10.0
_Z_EPS = 0.25  # floor on the past std of log-amount, so a 2-row history cannot explode z


def feature_columns(schema: Mapping[str, object] | Iterable[str]) -> list[str]:
    """Names of the feature columns in ``schema`` (a polars Schema, dict or list of names)."""
    return [name for name in schema if name.startswith(FEATURE_PREFIX)]


def behavioral_features(lf: pl.LazyFrame, *, user: str, timestamp: str, amount: str,
                        categorical: list[str], numeric: list[str]) -> pl.LazyFrame:
    """Per-transaction features from the same user's earlier transactions.

    Args:
        lf: transactions; only the named columns are read (labels never are).
        user: card / account / customer id column.
        timestamp: Datetime, Date, or numeric seconds since an epoch.
        amount: numeric transaction amount (negative refunds allowed).
        categorical: columns whose values are compared with the user's history
            (e.g. merchant_id, merchant_category, region, device_id, channel).
        numeric: extra numeric columns passed through as ``f_num_<name>``.

    Returns:
        A LazyFrame sorted by (user, timestamp) with ``row_index`` (the input row position),
        ``user``, ``timestamp`` (Datetime[us]) and float32 columns starting with
        :data:`FEATURE_PREFIX`; :func:`feature_columns` lists them.

    Raises:
        DataError: a named column is missing or the timestamp has an unusable dtype.

    Examples:
        >>> from sslcore_fraud_transactions.synthetic import generate_transactions
        >>> df = generate_transactions(1_000, seed=0)
        >>> out = behavioral_features(df.lazy(), user="user_id", timestamp="timestamp",
        ...                           amount="amount", categorical=["device_id"], numeric=[])
        >>> out = out.collect(engine="streaming")
        >>> out.select(feature_columns(out.schema)).to_numpy().shape
        (1000, 16)
    """
    schema = lf.collect_schema()
    wanted = [user, timestamp, amount, *categorical, *numeric]
    missing = [c for c in dict.fromkeys(wanted) if c not in schema]
    if missing:
        raise DataError(f"behavioural features need columns {missing}, which are not in the data "
                        f"(available: {list(schema)})")
    reserved = sorted({c for c in wanted if c == ROW_INDEX or c.startswith("__")})
    if reserved:
        raise DataError(f"column names {reserved} are reserved for feature computation (the name "
                        f"{ROW_INDEX!r} and names starting with '__'); rename them in the input")

    cat_keys = [f"__cat{i}" for i in range(len(categorical))]
    base = (
        lf.with_row_index(ROW_INDEX)
        .select(
            pl.col(ROW_INDEX),
            pl.col(user),
            _as_datetime(pl.col(timestamp), schema[timestamp], timestamp).alias(timestamp),
            pl.col(amount).cast(pl.Float64).alias("__amount"),
            # equality is all the history features need: an 8-byte hash instead of strings
            *[pl.col(c).hash(seed=0).alias(k) for c, k in zip(categorical, cat_keys)],
            *[pl.col(c).cast(pl.Float32).alias(f"{FEATURE_PREFIX}num_{c}") for c in numeric],
        )
        .sort([user, timestamp], maintain_order=True)
    )

    t = pl.col(timestamp)
    a = pl.col("__amount")
    hour = t.dt.hour().cast(pl.Float64) + t.dt.minute().cast(pl.Float64) / 60.0
    base = base.with_columns(
        (a.sign() * a.abs().log1p()).alias("__x"),
        pl.int_range(pl.len(), dtype=pl.Int32).over(user).alias("__n"),
        (t.dt.hour() // _HOUR_BUCKET_H).cast(pl.Int8).alias("__hour"),
        (hour * (2.0 * 3.141592653589793 / 24.0)).alias("__angle"),
    )
    return base.select(
        ROW_INDEX, user, timestamp,
        *_amount_features(user),
        *_history_features(user, [*cat_keys, "__hour"], [*categorical, "hour"]),
        *_velocity_features(user, timestamp),
        pl.col("__angle").sin().cast(pl.Float32).alias(f"{FEATURE_PREFIX}hour_sin"),
        pl.col("__angle").cos().cast(pl.Float32).alias(f"{FEATURE_PREFIX}hour_cos"),
        pl.col("__n").cast(pl.Float32).log1p().alias(f"{FEATURE_PREFIX}log_history"),
        *[pl.col(f"{FEATURE_PREFIX}num_{c}") for c in numeric],
    )


def _as_datetime(col: pl.Expr, dtype: pl.DataType, name: str) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        return col.dt.cast_time_unit("us")
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us"))
    if dtype.is_numeric():  # seconds since an epoch (e.g. the ULB "Time" column)
        return (col.cast(pl.Float64) * 1e6).round().cast(pl.Int64).cast(pl.Datetime("us"))
    raise DataError(f"timestamp column {name!r} has dtype {dtype}; expected a datetime or numeric "
                    "seconds (sslcore_fraud_transactions.loaders parses strings)")


def _amount_features(user: str) -> list[pl.Expr]:
    """Log amount, its z-score against the user's earlier log amounts, ratio to their past mean
    and past maximum. Expanding sums exclude the current row (cum_sum minus the row itself)."""
    x, n = pl.col("__x"), pl.col("__n").cast(pl.Float64)
    a = pl.col("__amount").abs()
    prev_sum = x.cum_sum().over(user) - x
    prev_sq = (x * x).cum_sum().over(user) - x * x
    mean = prev_sum / n
    std = ((prev_sq / n - mean * mean).clip(lower_bound=0.0)).sqrt()
    z = ((x - mean) / (std + _Z_EPS)).clip(-_Z_CLIP, _Z_CLIP)
    prev_amount_mean = (a.cum_sum().over(user) - a) / n
    prev_max = a.cum_max().shift(1).over(user)
    p = FEATURE_PREFIX
    return [
        x.cast(pl.Float32).alias(f"{p}log_amount"),
        pl.when(n >= 2).then(z).otherwise(0.0).cast(pl.Float32).alias(f"{p}amount_z"),
        pl.when(n >= 1).then((a + 1.0).log() - (prev_amount_mean + 1.0).log()).otherwise(0.0)
        .cast(pl.Float32).alias(f"{p}log_amount_to_past_mean"),
        ((a + 1.0).log() - (prev_max.fill_null(a) + 1.0).log())
        .cast(pl.Float32).alias(f"{p}log_amount_to_past_max"),
    ]


def _history_features(user: str, keys: list[str], names: list[str]) -> list[pl.Expr]:
    """For each categorical: is this the user's first row with this value, and which share of
    the user's earlier rows had it (0 with no history)."""
    n = pl.col("__n")
    out = []
    for key, name in zip(keys, names):
        seen = pl.int_range(pl.len(), dtype=pl.Int32).over([user, key])
        out.append((seen == 0).cast(pl.Float32).alias(f"{FEATURE_PREFIX}new_{name}"))
        out.append(pl.when(n > 0).then(seen.cast(pl.Float32) / n.cast(pl.Float32)).otherwise(0.0)
                   .cast(pl.Float32).alias(f"{FEATURE_PREFIX}share_{name}"))
    return out


def _velocity_features(user: str, timestamp: str) -> list[pl.Expr]:
    """Count and amount of the user's transactions in the previous 1 h and 24 h (window closed on
    the left, so the current row is excluded), and log seconds since their previous one."""
    p = FEATURE_PREFIX
    a = pl.col("__amount").abs()
    one = pl.col("__n").is_not_null().cast(pl.Float32)
    out = []
    for window in ("1h", "24h"):
        count = one.rolling_sum_by(timestamp, window, closed="left").over(user)
        total = a.rolling_sum_by(timestamp, window, closed="left").over(user)
        out.append(count.fill_null(0.0).log1p().cast(pl.Float32).alias(f"{p}log_count_{window}"))
        out.append(total.fill_null(0.0).log1p().cast(pl.Float32).alias(f"{p}log_amount_{window}"))
    gap = pl.col(timestamp).diff().over(user).dt.total_microseconds().cast(pl.Float64) / 1e6
    out.append(gap.fill_null(_NO_PREVIOUS_S).clip(lower_bound=0.0).log1p().cast(pl.Float32)
               .alias(f"{p}log_seconds_since_prev"))
    return out
