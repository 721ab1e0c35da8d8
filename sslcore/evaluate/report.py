"""The label-efficiency report: per-seed results -> mean/std table, markdown, headline numbers."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sslcore.evaluate.metrics import LOWER_IS_BETTER

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
    """The comparison in one line per fraction: best SSL method vs best baseline.

    Each arm's "best" method is the one with the best mean *validation* score at that
    fraction (``chosen_on == "validation split"``); the numbers are its test means. Picking the
    best on the test set instead would favour whichever arm lists more methods."""

    metric: str
    rows: list[dict[str, object]]
    labels_to_match_full_baseline: float | None
    full_baseline: tuple[str, float] | None
    chosen_on: str = "validation split"


def _pick(summary: pl.DataFrame, arm: str, metric: str, fraction: float) -> str | None:
    sub = summary.filter((pl.col("arm") == arm) & (pl.col("metric") == metric)
                         & (pl.col("label_fraction") == fraction))
    if sub.is_empty():
        return None
    sub = sub.sort(["mean", "method"], descending=[metric not in LOWER_IS_BETTER, False])
    return str(sub["method"][0])


def _best(table: pl.DataFrame, choose_by: pl.DataFrame, arm: str, metric: str,
          fraction: float) -> tuple[str, float] | None:
    """(method, its test mean) for the arm's method chosen on ``choose_by`` at ``fraction``."""
    method = _pick(choose_by, arm, metric, fraction)
    if method is None:
        return None
    row = table.filter((pl.col("arm") == arm) & (pl.col("metric") == metric)
                       & (pl.col("label_fraction") == fraction) & (pl.col("method") == method))
    return (method, float(row["mean"][0])) if len(row) else None


def headline(table: pl.DataFrame, metric: str, val_table: pl.DataFrame | None = None) -> Headline:
    """Best SSL vs best baseline per fraction, each arm's method chosen on ``val_table`` (the
    :func:`summarize` of validation scores); without one, on the test table itself (say so)."""
    choose_by = table if val_table is None or val_table.is_empty() else val_table
    fractions = sorted(table["label_fraction"].unique().to_list())
    better = (lambda a, b: a <= b) if metric in LOWER_IS_BETTER else (lambda a, b: a >= b)
    rows = []
    for f in fractions:
        ssl = _best(table, choose_by, "ssl", metric, f)
        base = _best(table, choose_by, "baseline", metric, f)
        rows.append({"label_fraction": f, "best_ssl": ssl, "best_baseline": base,
                     "ssl_wins": bool(ssl and base and better(ssl[1], base[1]) and ssl[1] != base[1])})
    full = rows[-1]["best_baseline"] if rows else None  # the largest fraction's baseline
    need = next((r["label_fraction"] for r in rows if full and r["best_ssl"]
                 and better(r["best_ssl"][1], full[1])), None)
    return Headline(metric, rows, need, full,
                    "test set" if choose_by is table else "validation split")


def to_markdown(table: pl.DataFrame, primary: str, positives: dict[float, list[int]],
                title: str, val_table: pl.DataFrame | None = None) -> str:
    """comparison.md: the headline, primary-metric grid, every metric, labeled counts."""
    fractions = sorted(table["label_fraction"].unique().to_list())
    lines = [f"# {title}", ""]
    hl = headline(table, primary, val_table)
    if hl.full_baseline:
        name, value = hl.full_baseline
        match = (f"{hl.labels_to_match_full_baseline:.0%} of the labels"
                 if hl.labels_to_match_full_baseline is not None else "no fraction tried")
        lines += [f"SSL needs **{match}** to match the best baseline trained on "
                  f"{max(fractions):.0%} of the labels ({name}, {primary} {value:.4f}); "
                  f"each arm's best method chosen on the {hl.chosen_on}.", ""]
        lines += ["| label fraction | SSL (chosen) | baseline (chosen) | SSL ahead |",
                  "|---|---|---|---|"]
        for row in hl.rows:
            ssl, base = row["best_ssl"], row["best_baseline"]
            if ssl and base:
                lines.append(f"| {row['label_fraction']:g} | {ssl[0]} {ssl[1]:.4f} | "
                             f"{base[0]} {base[1]:.4f} | {'yes' if row['ssl_wins'] else 'no'} |")
        lines.append("")
    for metric in [primary] + sorted(set(table["metric"].to_list()) - {primary}):
        lines += [f"## {metric}" + (" (lower is better)" if metric in LOWER_IS_BETTER else ""), ""]
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
