"""The headline: at each label fraction, each group's method chosen on validation, its test
score, and the groups ranked; at the largest fraction, the overall choice (the model logged).

The groups a report reads the sweep in:

- ``ssl``: heads on the SSL-pretrained encoder that use labels;
- ``transfer`` (with ``backbone.init``): the same heads on the initial encoder, no SSL;
- ``baseline`` ("labeled-only"): methods trained on the labels from scratch;
- ``label_free``: every method whose fit uses no labels (``Method.uses_labels`` False:
  anomaly detectors on the raw inputs, anomaly scores on an encoder's embeddings), whichever
  arm ran it. Counting one of these as "SSL" or "baseline" would hide that no labels were
  needed to reach its score.

The sweep's ``arm`` (MLflow tag ``sslcore.arm``) still says which encoder a method ran on;
``group`` is added by :func:`sslcore.evaluate.report.summarize`. Every choice is made on the
validation split; the test set only reports the chosen methods' scores.

Example::

    hl = headline(table, "auprc", val_table)
    print("\\n".join(headline_lines(hl)))   # sslcore.evaluate.report
    # at 1%: best label-free iforest 0.6300 > best SSL linear_probe 0.4800 > ...
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

# The plain reference every recipe lists in its baseline arm (logistic regression on the raw
# inputs): the headline says when it beats an arm's chosen method.
REFERENCE_METHOD = "logreg_raw"
REFERENCE_TEXT = "the plain logistic regression on raw inputs"

LABEL_FREE = "label_free"
GROUP_ORDER = ("ssl", "transfer", "baseline", LABEL_FREE)
GROUP_TEXT = {"ssl": "SSL", "transfer": "transfer", "baseline": "labeled-only",
              LABEL_FREE: "label-free"}

# Validation means closer than this are a tie: a split of a handful of rows often gives
# several methods a perfect score.
TIE_TOLERANCE = 1e-9

Choice = tuple[str, float]  # (the method's name in the report, its test mean)


def shown_name(group: str, arm: str, method: str) -> str:
    """A method's name in the report: in the label-free group, one that ran on an encoder says
    which (``embedding_anomaly (ssl encoder)``), since both encoders may run it."""
    return f"{method} ({arm} encoder)" if group == LABEL_FREE and arm != "baseline" else method


def with_groups(table: pl.DataFrame) -> pl.DataFrame:
    """``table`` with a ``group`` column (its ``arm`` when it has none)."""
    return table if "group" in table.columns else table.with_columns(pl.col("arm").alias("group"))


def groups_present(table: pl.DataFrame) -> list[str]:
    """The table's groups in report order (unknown ones last, by name)."""
    have = set(with_groups(table)["group"].to_list())
    return [g for g in GROUP_ORDER if g in have] + sorted(have - set(GROUP_ORDER))


@dataclass
class Overall:
    """The overall choice at the largest fraction: the best validation mean over every group;
    in a tie, the first of the tied (arm, method) by name. It is the model that is logged
    (``sslcore.experiment`` takes :func:`overall_choice` too)."""

    label_fraction: float
    arm: str
    method: str
    group: str
    tied: list[str]  # every method tied for the best validation mean (one when no tie)
    test: float | None  # its test mean
    # (group, choice) of another group's choice that scores better on the test set, if any
    beaten_on_test_by: tuple[str, Choice] | None = None


@dataclass
class Headline:
    """The comparison in one row per fraction, each group represented by its method with the
    best mean *validation* score (``chosen_on == "validation split"``), reported by its test
    mean. Picking on the test set would favour whichever group lists more methods.

    Row keys: ``label_fraction``; ``best_ssl``, ``best_baseline``, ``best_transfer``,
    ``best_label_free`` (a :data:`Choice`, or None without the group); ``ranking``: the
    present groups' choices best first on test, as (group, choice); ``ssl_wins`` (SSL's choice
    beats every other group's); ``reference`` (label, test mean of the plain reference in the
    baseline arm) and ``reference_beats_ssl`` / ``_baseline`` / ``_transfer`` (the
    baseline's False when the reference *is* its choice).

    ``overall``: the model logged and whether the test set disagrees (:class:`Overall`)."""

    metric: str
    rows: list[dict[str, Any]]
    labels_to_match_full_baseline: float | None
    full_baseline: Choice | None
    chosen_on: str = "validation split"
    reference: str | None = None
    transfer: bool = False  # the sweep has the transfer arm (backbone.init)
    label_free: bool = False  # some method uses no labels
    overall: Overall | None = None
    lower_is_better: bool = False  # for the primary metric


def reference_label(baselines: Iterable[Any]) -> str | None:
    """The report label (alias or name) of the reference among config ``baselines``
    (ComponentRefs), or None when they do not list it."""
    return next((ref.label for ref in baselines if ref.name == REFERENCE_METHOD), None)


def tied_best(summary: pl.DataFrame, group: str | None, metric: str, fraction: float,
          lower: Collection[str]) -> list[tuple[str, str]]:
    """(arm, method) of the group's methods (every group's when None) with the best mean on
    ``summary`` at ``fraction``: one, or all that tie for it, sorted by name."""
    rows = ((pl.col("metric") == metric) & (pl.col("label_fraction") == fraction)
            & pl.col("mean").is_not_nan())
    sub = summary.filter(rows if group is None else rows & (pl.col("group") == group))
    if sub.is_empty():
        return []
    best = float(sub["mean"].max() if metric not in lower else sub["mean"].min())
    return sorted((str(a), str(m)) for a, m, v in zip(sub["arm"], sub["method"], sub["mean"],
                                                      strict=True)
                  if abs(float(v) - best) <= TIE_TOLERANCE)


def _test_mean(table: pl.DataFrame, arm: str, metric: str, fraction: float,
               method: str) -> float | None:
    row = table.filter((pl.col("arm") == arm) & (pl.col("metric") == metric)
                       & (pl.col("label_fraction") == fraction) & (pl.col("method") == method))
    return float(row["mean"][0]) if len(row) else None


def _best(table: pl.DataFrame, choose_by: pl.DataFrame, group: str, metric: str,
          fraction: float, lower: Collection[str]) -> Choice | None:
    """(name, test mean) of the group's method chosen on ``choose_by`` at ``fraction``.

    When several methods tie on validation, none of them is preferred: the group is
    represented by their mean test score (what picking one of them at random scores on
    average), labelled ``tied on validation: a, b, ...``. Breaking the tie by name would
    report whichever sorts first."""
    chosen = [(shown_name(group, arm, m), v) for arm, m in
              tied_best(choose_by, group, metric, fraction, lower)
              if (v := _test_mean(table, arm, metric, fraction, m)) is not None]
    if len(chosen) <= 1:
        return chosen[0] if chosen else None
    names = [name for name, _ in chosen]
    shown = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
    return f"tied on validation: {shown}", sum(v for _, v in chosen) / len(chosen)


def overall_choice(val_table: pl.DataFrame, metric: str,
                   lower: Collection[str] = frozenset()) -> list[tuple[str, str]]:
    """(arm, method) of every method tied for the best validation mean at the largest fraction,
    over all groups, sorted by name: the first is the model to log. Empty without scores."""
    if val_table.is_empty():
        return []
    top = float(val_table["label_fraction"].max())
    return tied_best(with_groups(val_table), None, metric, top, lower)


def headline(table: pl.DataFrame, metric: str, val_table: pl.DataFrame | None = None,
             reference: str | None = REFERENCE_METHOD, *,
             lower_is_better: Collection[str] = frozenset()) -> Headline:
    """Each group's choice per fraction, chosen on ``val_table`` (the :func:`summarize` of
    validation scores); without one, on the test table itself (the headline says so).

    ``reference`` is the report label of the plain reference in the baseline arm (see
    :func:`reference_label` for an aliased one). ``lower_is_better`` names the metrics where
    lower wins (``sslcore.evaluate.metrics.lower_is_better`` of the metric registry)."""
    table = with_groups(table)
    use_val = val_table is not None and not val_table.is_empty()
    choose_by = with_groups(val_table) if use_val else table
    lower = metric in lower_is_better
    sign = -1.0 if lower else 1.0

    def ahead(a: Choice | None, b: Choice | None) -> bool:  # by more than rounding noise
        return bool(a and b and sign * a[1] > sign * b[1] + TIE_TOLERANCE)

    def beats(a: Choice | None, b: Choice | None) -> bool:
        return bool(a and b and a[0] != b[0] and ahead(a, b))

    groups = groups_present(table)
    rows = []
    for f in sorted(table["label_fraction"].unique().to_list()):
        chosen = {g: _best(table, choose_by, g, metric, f, lower_is_better) for g in groups}
        ssl, base = chosen.get("ssl"), chosen.get("baseline")
        tr, others = chosen.get("transfer"), [c for g, c in chosen.items() if g != "ssl" and c]
        ranking = sorted(((g, c) for g, c in chosen.items() if c),
                         key=lambda gc: (math.isnan(gc[1][1]), -sign * gc[1][1]))
        ref = (reference, v) if reference and (
            v := _test_mean(table, "baseline", metric, f, reference)) is not None else None
        rows.append({"label_fraction": f, "best_ssl": ssl, "best_baseline": base,
                     "best_transfer": tr, "best_label_free": chosen.get(LABEL_FREE),
                     "ranking": ranking,
                     "ssl_wins": bool(ssl and others and all(ahead(ssl, c) for c in others)),
                     "reference": ref, "reference_beats_ssl": beats(ref, ssl),
                     "reference_beats_baseline": beats(ref, base),
                     "reference_beats_transfer": beats(ref, tr)})
    full = rows[-1]["best_baseline"] if rows else None  # the largest fraction's baseline
    need = next((r["label_fraction"] for r in rows if full and r["best_ssl"]
                 and sign * r["best_ssl"][1] >= sign * full[1]), None)
    has_ref = any(r["reference"] for r in rows)
    return Headline(metric, rows, need, full, "validation split" if use_val else "test set",
                    reference if has_ref else None, "transfer" in groups, LABEL_FREE in groups,
                    _overall(table, choose_by, metric, lower_is_better, rows), lower)


def _overall(table: pl.DataFrame, choose_by: pl.DataFrame, metric: str,
             lower: Collection[str], rows: list[dict[str, Any]]) -> Overall | None:
    tied = overall_choice(choose_by, metric, lower)
    if not tied or not rows:
        return None
    arm, method = tied[0]
    fraction = float(choose_by["label_fraction"].max())
    group = str(choose_by.filter((pl.col("arm") == arm) & (pl.col("method") == method))
                ["group"][0])
    test = _test_mean(table, arm, metric, fraction, method)
    sign = -1.0 if metric in lower else 1.0
    top = next((r for r in rows if r["label_fraction"] == fraction), rows[-1])
    rival = next(((g, c) for g, c in top["ranking"] if g != group and test is not None
                  and not math.isnan(test) and sign * c[1] > sign * test + TIE_TOLERANCE),
                 None)
    names = [shown_name(str(choose_by.filter((pl.col("arm") == a) & (pl.col("method") == m))
                                    ["group"][0]), a, m) for a, m in tied]
    return Overall(fraction, arm, method, group, names, test, rival)
