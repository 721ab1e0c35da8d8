"""The label-efficiency report: per-seed results -> mean/std table, markdown, headline numbers."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

# The plain reference every recipe lists in its baseline arm (logistic regression on the raw
# inputs): the headline says when it beats an arm's chosen method.
REFERENCE_METHOD = "logreg_raw"
REFERENCE_TEXT = "the plain logistic regression on raw inputs"

RESULT_SCHEMA = {"label_fraction": pl.Float64, "seed": pl.Int64, "arm": pl.Utf8,
                 "method": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64}


def summarize(results: pl.DataFrame) -> pl.DataFrame:
    """Columns: label_fraction, arm, method, metric, mean, std, n_seeds, n_defined.

    A metric can be undefined (NaN) in some seeds: the median lead time of the first alert when
    a seed's model alerted on no failure, a per-mode metric with no failure of that mode. The
    mean and std are over the ``n_defined`` seeds where it is defined (std 0 for one; both NaN
    for none), so one such seed does not blank the others; the report says how many."""
    value = pl.col("value").fill_nan(None)
    defined = value.count()
    return (
        results.group_by(["label_fraction", "arm", "method", "metric"])
        .agg(value.mean().fill_null(float("nan")).alias("mean"),
             pl.when(defined > 0).then(value.std().fill_null(0.0))
             .otherwise(float("nan")).alias("std"),
             pl.col("seed").n_unique().alias("n_seeds"),
             defined.alias("n_defined"))
        .sort(["metric", "label_fraction", "arm", "method"], descending=[False, False, True, False])
    )


def _cell(row: pl.DataFrame) -> str:
    """'mean ± std', plus '(k of n seeds)' when the metric is undefined in some seeds."""
    text = f"{row['mean'][0]:.4f} ± {row['std'][0]:.4f}"
    defined, seeds = row["n_defined"][0], row["n_seeds"][0]
    unit = "seed" if seeds == 1 else "seeds"
    return text + (f" ({defined} of {seeds} {unit})" if defined < seeds else "")


@dataclass
class Headline:
    """The comparison in one line per fraction: best SSL method vs best baseline (and, when the
    sweep has the ``transfer`` arm, best transfer: ``transfer`` is then True).

    Each arm's "best" method is the one with the best mean *validation* score at that
    fraction (``chosen_on == "validation split"``); the numbers are its test means. Picking the
    best on the test set instead would favour whichever arm lists more methods.

    Each row also holds ``reference``: (label, test mean) of the plain reference in the
    baseline arm (``reference`` names it; None when the sweep has none), and whether it beats
    each arm's chosen method (``reference_beats_ssl``, ``reference_beats_baseline``: the
    latter False when the reference *is* the baseline arm's choice).

    Row keys: ``label_fraction``, ``best_ssl``, ``best_baseline``, ``best_transfer`` (None
    without the arm), ``ssl_wins`` (SSL's choice beats every other arm's choice: the baseline's
    and, when present, the transfer arm's), ``reference``, ``reference_beats_ssl``,
    ``reference_beats_baseline``, ``reference_beats_transfer``."""

    metric: str
    rows: list[dict[str, object]]
    labels_to_match_full_baseline: float | None
    full_baseline: tuple[str, float] | None
    chosen_on: str = "validation split"
    reference: str | None = None
    transfer: bool = False  # the sweep has the transfer arm (backbone.init)


def reference_label(baselines: Iterable[Any]) -> str | None:
    """The report label (alias or name) of the reference among config ``baselines``
    (ComponentRefs), or None when they do not list it."""
    return next((ref.label for ref in baselines if ref.name == REFERENCE_METHOD), None)


# Validation means closer than this are a tie: a split of a handful of rows often gives
# several methods a perfect score.
TIE_TOLERANCE = 1e-9


def _pick(summary: pl.DataFrame, arm: str, metric: str, fraction: float,
          lower: Collection[str]) -> list[str]:
    """The arm's methods with the best mean on ``summary`` at ``fraction``: one, or all that
    tie for it."""
    sub = summary.filter((pl.col("arm") == arm) & (pl.col("metric") == metric)
                         & (pl.col("label_fraction") == fraction) & pl.col("mean").is_not_nan())
    if sub.is_empty():
        return []
    sub = sub.sort(["mean", "method"], descending=[metric not in lower, False])
    best = float(sub["mean"][0])
    return [str(m) for m, v in zip(sub["method"], sub["mean"], strict=True)
            if abs(float(v) - best) <= TIE_TOLERANCE]


def _best(table: pl.DataFrame, choose_by: pl.DataFrame, arm: str, metric: str,
          fraction: float, lower: Collection[str]) -> tuple[str, float] | None:
    """(method, its test mean) for the arm's method chosen on ``choose_by`` at ``fraction``.

    When several methods tie on validation, none of them is preferred: the arm is represented
    by their mean test score (what picking one of them at random scores on average), labelled
    ``tied on validation: a, b, ...``. Breaking the tie by name would report whichever sorts
    first."""
    chosen = [m for m in (_test_mean(table, arm, metric, fraction, name)
                          for name in _pick(choose_by, arm, metric, fraction, lower)) if m]
    if len(chosen) <= 1:
        return chosen[0] if chosen else None
    names = [name for name, _ in chosen]
    shown = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
    return f"tied on validation: {shown}", sum(v for _, v in chosen) / len(chosen)


def _test_mean(table: pl.DataFrame, arm: str, metric: str, fraction: float,
               method: str) -> tuple[str, float] | None:
    row = table.filter((pl.col("arm") == arm) & (pl.col("metric") == metric)
                       & (pl.col("label_fraction") == fraction) & (pl.col("method") == method))
    return (method, float(row["mean"][0])) if len(row) else None


def headline(table: pl.DataFrame, metric: str, val_table: pl.DataFrame | None = None,
             reference: str | None = REFERENCE_METHOD, *,
             lower_is_better: Collection[str] = frozenset()) -> Headline:
    """Best SSL vs best baseline (and best transfer, when the table has that arm) per fraction,
    each arm's method chosen on ``val_table`` (the :func:`summarize` of validation scores);
    without one, on the test table itself (say so).

    ``reference`` is the report label of the plain reference in the baseline arm (see
    :func:`reference_label` for an aliased one); its test score is reported at every fraction.
    ``lower_is_better`` names the metrics where lower wins (``sslcore.evaluate.metrics.
    lower_is_better`` of the metric registry).
    """
    choose_by = table if val_table is None or val_table.is_empty() else val_table
    fractions = sorted(table["label_fraction"].unique().to_list())
    better = (lambda a, b: a <= b) if metric in lower_is_better else (lambda a, b: a >= b)

    def beats(a: tuple[str, float] | None, b: tuple[str, float] | None) -> bool:
        return bool(a and b and a[0] != b[0] and better(a[1], b[1]) and a[1] != b[1])

    def ahead(a: tuple[str, float] | None, b: tuple[str, float] | None) -> bool:
        return bool(a and b and better(a[1], b[1]) and a[1] != b[1])

    has_transfer = "transfer" in table["arm"].to_list()
    rows = []
    for f in fractions:
        ssl = _best(table, choose_by, "ssl", metric, f, lower_is_better)
        base = _best(table, choose_by, "baseline", metric, f, lower_is_better)
        tr = _best(table, choose_by, "transfer", metric, f, lower_is_better) \
            if has_transfer else None
        ref = _test_mean(table, "baseline", metric, f, reference) if reference else None
        rows.append({"label_fraction": f, "best_ssl": ssl, "best_baseline": base,
                     "best_transfer": tr,
                     "ssl_wins": ahead(ssl, base) and (tr is None or ahead(ssl, tr)),
                     "reference": ref, "reference_beats_ssl": beats(ref, ssl),
                     "reference_beats_baseline": beats(ref, base),
                     "reference_beats_transfer": beats(ref, tr)})
    full = rows[-1]["best_baseline"] if rows else None  # the largest fraction's baseline
    need = next((r["label_fraction"] for r in rows if full and r["best_ssl"]
                 and better(r["best_ssl"][1], full[1])), None)
    has_ref = any(r["reference"] for r in rows)
    return Headline(metric, rows, need, full,
                    "test set" if choose_by is table else "validation split",
                    reference if has_ref else None, has_transfer)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def reference_sentences(hl: Headline) -> list[str]:
    """One plain sentence per fraction where the reference beats the SSL arm's chosen method.

    Example: "At 5% labels the plain logistic regression on raw inputs (0.8100) beats the SSL
    arm's chosen method (linear_probe, 0.6300): the deep arms do not earn their cost here."
    """
    out = []
    for row in hl.rows:
        if not row["reference_beats_ssl"]:
            continue
        ref, ssl, base = row["reference"], row["best_ssl"], row["best_baseline"]
        tr = row.get("best_transfer")
        text = (f"At {_percent(row['label_fraction'])} labels {REFERENCE_TEXT} ({ref[1]:.4f}) "
                f"beats the SSL arm's chosen method ({ssl[0]}, {ssl[1]:.4f})")
        beaten = [("baseline", base)] if row["reference_beats_baseline"] else []
        beaten += [("transfer", tr)] if row.get("reference_beats_transfer") else []
        text += "".join(f" and the {arm} arm's ({c[0]}, {c[1]:.4f})" for arm, c in beaten)
        spared = tr is not None and not row.get("reference_beats_transfer")
        if spared:
            text += f", but not the transfer arm's ({tr[0]}, {tr[1]:.4f})"
        if not spared and row["reference_beats_baseline"]:
            text += (": no arm's chosen method earns its cost here." if tr else
                     ": neither arm's chosen method earns its cost here.")
        elif not spared and base and base[0] == ref[0]:  # the baseline arm chose the reference
            text += ": the deep arms do not earn their cost here."
        else:
            text += ": SSL does not earn its cost here."
        out.append(text)
    return out


def to_markdown(table: pl.DataFrame, primary: str, positives: dict[float, list[int]],
                title: str, val_table: pl.DataFrame | None = None,
                reference: str | None = REFERENCE_METHOD, *,
                lower_is_better: Collection[str] = frozenset()) -> str:
    """comparison.md: the headline (with the plain reference's score and, where it beats an
    arm's chosen method, a sentence saying so), primary-metric grid, every metric, labeled
    counts. ``lower_is_better``: as for :func:`headline`; those metrics' sections say so."""
    fractions = sorted(table["label_fraction"].unique().to_list())
    lines = [f"# {title}", ""]
    hl = headline(table, primary, val_table, reference, lower_is_better=lower_is_better)
    if hl.full_baseline:
        name, value = hl.full_baseline
        match = (f"{hl.labels_to_match_full_baseline:.0%} of the labels"
                 if hl.labels_to_match_full_baseline is not None else "no fraction tried")
        lines += [f"SSL needs **{match}** to match the best baseline trained on "
                  f"{max(fractions):.0%} of the labels ({name}, {primary} {value:.4f}); "
                  f"each arm's best method chosen on the {hl.chosen_on}"
                  + ("; the transfer arm is the generic model (backbone.init) + the labels, "
                     "without SSL; SSL ahead: better than both other arms' choices."
                     if hl.transfer else "."), ""]
        ref_col = f" plain reference ({hl.reference}) |" if hl.reference else ""
        tr_col = " transfer (chosen) |" if hl.transfer else ""
        lines += ["| label fraction | SSL (chosen) | baseline (chosen) |" + tr_col
                  + " SSL ahead |" + ref_col,
                  "|---|---|---|---|" + ("---|" if hl.transfer else "")
                  + ("---|" if hl.reference else "")]
        for row in hl.rows:
            ssl, base, ref = row["best_ssl"], row["best_baseline"], row["reference"]
            tr = row.get("best_transfer")
            if ssl and base:
                cell = (f" {ref[1]:.4f} |" if ref else " |") if hl.reference else ""
                tr_cell = (f" {tr[0]} {tr[1]:.4f} |" if tr else " |") if hl.transfer else ""
                lines.append(f"| {row['label_fraction']:g} | {ssl[0]} {ssl[1]:.4f} | "
                             f"{base[0]} {base[1]:.4f} |{tr_cell} "
                             f"{'yes' if row['ssl_wins'] else 'no'} |" + cell)
        lines.append("")
        sentences = reference_sentences(hl)
        lines += [*sentences, ""] if sentences else []
    for metric in [primary] + sorted(set(table["metric"].to_list()) - {primary}):
        lines += [f"## {metric}" + (" (lower is better)" if metric in lower_is_better else ""),
                  ""]
        lines.append("| arm | method | " + " | ".join(f"{f:g}" for f in fractions) + " |")
        lines.append("|---|---|" + "---|" * len(fractions))
        sub = table.filter(pl.col("metric") == metric)
        for (arm, method), grp in sub.group_by(["arm", "method"], maintain_order=True):
            cells = []
            for f in fractions:
                row = grp.filter(pl.col("label_fraction") == f)
                cells.append(_cell(row) if len(row) else "")
            lines.append(f"| {arm} | {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Labeled rows per fraction (mean over seeds, per class)", "",
              "| label fraction | rows per class |", "|---|---|"]
    lines += [f"| {f:g} | {counts} |" for f, counts in sorted(positives.items())]
    return "\n".join(lines) + "\n"


def format_console(table: pl.DataFrame, primary: str) -> str:
    """A compact grid of the primary metric for the terminal."""
    sub = table.filter(pl.col("metric") == primary).with_columns(
        pl.struct("mean", "std").map_elements(lambda r: f"{r['mean']:.3f} ± {r['std']:.3f}",
                                              return_dtype=pl.Utf8).alias("cell"))
    grid = sub.pivot(on="label_fraction", index=["arm", "method"], values="cell",
                     sort_columns=True)
    with pl.Config(tbl_rows=100, tbl_cols=20, fmt_str_lengths=40, tbl_width_chars=160,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        return f"test_{primary} (mean ± std over seeds) by label fraction\n{grid}"
