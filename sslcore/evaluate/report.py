"""The label-efficiency report: per-seed results -> mean/std table, the headline's sentences,
markdown, console grid.

The headline's choices (each group's on validation, the ranking, the model logged) are made in
:mod:`sslcore.evaluate.headline`; its names are re-exported here."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import polars as pl

from sslcore.evaluate.headline import (  # noqa: F401 - re-exported: the report's public names
    GROUP_ORDER,
    GROUP_TEXT,
    LABEL_FREE,
    REFERENCE_METHOD,
    REFERENCE_TEXT,
    TIE_TOLERANCE,
    Headline,
    Overall,
    groups_present,
    headline,
    overall_choice,
    reference_label,
    shown_name,
    with_groups,
)

RESULT_SCHEMA = {"label_fraction": pl.Float64, "seed": pl.Int64, "arm": pl.Utf8,
                 "method": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64}


def summarize(results: pl.DataFrame,
              label_free: Collection[tuple[str, str]] = frozenset()) -> pl.DataFrame:
    """Columns: label_fraction, group, arm, method, metric, mean, std, n_seeds, n_defined.

    ``group`` is the arm, except ``label_free`` for the (arm, method) pairs in ``label_free``
    (the methods that use no labels: ``sslcore.sweep.label_free_methods``).

    A metric can be undefined (NaN) in some seeds: the median lead time of the first alert when
    a seed's model alerted on no failure, a per-mode metric with no failure of that mode. The
    mean and std are over the ``n_defined`` seeds where it is defined, so one such seed does
    not blank the others; the report says how many. The std needs two defined seeds: NaN with
    one (shown as ``n/a``: one seed has no spread to report) or none."""
    value = pl.col("value").fill_nan(None)
    defined = value.count()
    free = [f"{arm}\x1f{method}" for arm, method in label_free]
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    return (
        results.group_by(["label_fraction", "arm", "method", "metric"])
        .agg(value.mean().fill_null(float("nan")).alias("mean"),
             pl.when(defined > 1).then(value.std()).otherwise(float("nan")).alias("std"),
             pl.col("seed").n_unique().alias("n_seeds"),
             defined.alias("n_defined"))
        .with_columns(pl.when(pl.concat_str("arm", "method", separator="\x1f").is_in(free))
                      .then(pl.lit(LABEL_FREE)).otherwise(pl.col("arm")).alias("group"))
        .with_columns(pl.col("group").replace_strict(rank, default=len(rank),
                                                     return_dtype=pl.Int64).alias("_rank"))
        .sort(["metric", "label_fraction", "_rank", "arm", "method"])
        .select("label_fraction", "group", "arm", "method", "metric", "mean", "std",
                "n_seeds", "n_defined")
    )


def spread(std: float, n_defined: int, digits: int = 4) -> str:
    """The std as text: ``n/a`` when a single seed defines the mean (no spread to report)."""
    return "n/a" if n_defined == 1 else f"{std:.{digits}f}"


def _cell(row: pl.DataFrame) -> str:
    """'mean ± std', plus '(k of n seeds)' when the metric is undefined in some seeds."""
    defined, seeds = row["n_defined"][0], row["n_seeds"][0]
    text = f"{row['mean'][0]:.4f} ± {spread(row['std'][0], defined)}"
    unit = "seed" if seeds == 1 else "seeds"
    return text + (f" ({defined} of {seeds} {unit})" if defined < seeds else "")


def _names(table: pl.DataFrame) -> pl.DataFrame:
    """``table`` (with groups) plus ``name``: each method as the report shows it."""
    return with_groups(table).with_columns(
        pl.struct("group", "arm", "method").map_elements(
            lambda r: shown_name(r["group"], r["arm"], r["method"]),
            return_dtype=pl.Utf8).alias("name"))


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def ranking_line(row: dict[str, Any], lower_is_better: bool = False) -> str:
    """'at 1%: best label-free iforest 0.6300 > best SSL finetune 0.4800 > ...' (``<`` when
    lower is better; ``=`` between equal scores)."""
    parts: list[str] = []
    last: float | None = None
    for group, (name, value) in row["ranking"]:
        if last is not None:
            level = abs(value - last) <= TIE_TOLERANCE  # a mean of a tie can differ by 1 ulp
            parts.append("=" if level else "<" if lower_is_better else ">")
        shown = f"({name})" if name.startswith("tied on validation") else name
        parts.append(f"best {GROUP_TEXT.get(group, group)} {shown} {value:.4f}")
        last = value
    return f"at {_percent(row['label_fraction'])}: " + " ".join(parts)


def overall_sentences(hl: Headline) -> list[str]:
    """What the logged model is, and plainly why when the test set ranks another group first.

    Example: "Best overall at 100% labels, chosen on the validation split: labeled-only
    hist_gbm (test auprc 0.5100); it is the model logged." """
    o = hl.overall
    if o is None:
        return []
    name = shown_name(o.group, o.arm, o.method)
    what = f"{GROUP_TEXT.get(o.group, o.group)} {name}"
    score = (f"test {hl.metric} {o.test:.4f}" if o.test is not None and not math.isnan(o.test)
             else f"no test {hl.metric}")
    head = f"Best overall at {_percent(o.label_fraction)} labels, chosen on the {hl.chosen_on}"
    if len(o.tied) > 1:
        out = [f"{head}: {len(o.tied)} methods tie ({', '.join(o.tied)}); the model logged is "
               f"the first by name, {what} ({score})."]
    else:
        out = [f"{head}: {what} ({score}); it is the model logged."]
    if o.beaten_on_test_by:
        group, (other, value) = o.beaten_on_test_by
        out.append(f"On the test set the {GROUP_TEXT.get(group, group)} choice ({other}, "
                   f"{value:.4f}) does better, yet the logged model stays {name}: the model "
                   f"is chosen on the {hl.chosen_on} only; the test set reports, it does not "
                   "choose.")
    if o.group == LABEL_FREE:
        out.append(f"The logged model ({name}) uses no labels: its output is an anomaly score "
                   "(higher = more likely positive), not a class probability.")
    return out


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


def headline_lines(hl: Headline) -> list[str]:
    """The headline for the terminal: the ranking per fraction, then the sentences."""
    order = "lower is better" if hl.lower_is_better else "higher is better"
    lines = [f"Each group's best method at a fraction is chosen on the {hl.chosen_on}; "
             f"test {hl.metric} ({order}), best first:"]
    for row in hl.rows:
        ref = row.get("reference")
        plain = f" (plain reference {ref[0]} {ref[1]:.4f})" if ref else ""
        lines.append("  " + ranking_line(row, hl.lower_is_better) + plain)
    return lines + reference_sentences(hl) + overall_sentences(hl)


def _headline_markdown(hl: Headline, fractions: list[float], primary: str) -> list[str]:
    """The headline section of comparison.md: the ranking per fraction, then the table."""
    lines = [f"Each group's best method at a fraction is chosen on the {hl.chosen_on}; test "
             f"{primary} ({'lower' if hl.lower_is_better else 'higher'} is better), best "
             "first:", ""]
    lines += [f"- {ranking_line(row, hl.lower_is_better)}" for row in hl.rows if row["ranking"]]
    lines.append("")
    others = [GROUP_TEXT[g] for g, present in (("baseline", True), ("transfer", hl.transfer),
                                               ("label_free", hl.label_free)) if present]
    notes = []
    if hl.transfer:
        notes.append("the transfer arm is the generic model (backbone.init) + the labels, "
                     "without SSL")
    if hl.label_free:
        notes.append("label-free: the methods that use no labels (their score is the same at "
                     "every fraction), whichever arm ran them")
    if len(others) > 1:
        notes.append(f"SSL ahead: better than every other group's choice ({', '.join(others)})")
    if hl.full_baseline:
        name, value = hl.full_baseline
        match = (f"{hl.labels_to_match_full_baseline:.0%} of the labels"
                 if hl.labels_to_match_full_baseline is not None else "no fraction tried")
        lines += [f"SSL needs **{match}** to match the best labeled-only baseline trained on "
                  f"{max(fractions):.0%} of the labels ({name}, {primary} {value:.4f})"
                  + "".join(f"; {n}" for n in notes) + ".", ""]
    columns = [("SSL (chosen)", "best_ssl", True), ("baseline (chosen)", "best_baseline", True),
               ("transfer (chosen)", "best_transfer", hl.transfer),
               ("label-free (chosen)", "best_label_free", hl.label_free)]
    columns = [(title, key) for title, key, shown in columns if shown]
    ref_col = f" plain reference ({hl.reference}) |" if hl.reference else ""
    lines += ["| label fraction |" + "".join(f" {t} |" for t, _ in columns) + " SSL ahead |"
              + ref_col, "|---|" + "---|" * (len(columns) + 1) + ("---|" if hl.reference else "")]
    for row in hl.rows:
        if not (row["best_ssl"] and row["best_baseline"]):
            continue
        cells = "".join(f" {row[k][0]} {row[k][1]:.4f} |" if row[k] else " |" for _, k in columns)
        ref = row["reference"]
        cell = (f" {ref[1]:.4f} |" if ref else " |") if hl.reference else ""
        lines.append(f"| {row['label_fraction']:g} |{cells} "
                     f"{'yes' if row['ssl_wins'] else 'no'} |" + cell)
    lines.append("")
    sentences = reference_sentences(hl) + overall_sentences(hl)
    return lines + ([*sentences, ""] if sentences else [])


def to_markdown(table: pl.DataFrame, primary: str, positives: dict[float, list[int]],
                title: str, val_table: pl.DataFrame | None = None,
                reference: str | None = REFERENCE_METHOD, *,
                lower_is_better: Collection[str] = frozenset()) -> str:
    """comparison.md: the headline (the groups ranked per fraction, the plain reference's score
    and, where it beats an arm's chosen method, a sentence saying so; the model logged), every
    metric's grid by group, labeled counts. ``lower_is_better``: as for :func:`headline`;
    those metrics' sections say so. One-seed cells show ``n/a`` for the spread."""
    fractions = sorted(table["label_fraction"].unique().to_list())
    lines = [f"# {title}", ""]
    hl = headline(table, primary, val_table, reference, lower_is_better=lower_is_better)
    lines += _headline_markdown(hl, fractions, primary)
    named = _names(table)
    for metric in [primary] + sorted(set(table["metric"].to_list()) - {primary}):
        lines += [f"## {metric}" + (" (lower is better)" if metric in lower_is_better else ""),
                  ""]
        lines.append("| group | method | " + " | ".join(f"{f:g}" for f in fractions) + " |")
        lines.append("|---|---|" + "---|" * len(fractions))
        sub = named.filter(pl.col("metric") == metric)
        for (group, name), grp in sub.group_by(["group", "name"], maintain_order=True):
            cells = []
            for f in fractions:
                row = grp.filter(pl.col("label_fraction") == f)
                cells.append(_cell(row) if len(row) else "")
            lines.append(f"| {group} | {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Labeled rows per fraction (mean over seeds, per class)", "",
              "| label fraction | rows per class |", "|---|---|"]
    lines += [f"| {f:g} | {counts} |" for f, counts in sorted(positives.items())]
    return "\n".join(lines) + "\n"


def format_console(table: pl.DataFrame, primary: str) -> str:
    """A compact grid of the primary metric for the terminal, rows by group; ``n/a`` for the
    spread of a one-seed cell."""
    sub = _names(table.filter(pl.col("metric") == primary)).with_columns(
        pl.struct("mean", "std", "n_defined").map_elements(
            lambda r: f"{r['mean']:.3f} ± {spread(r['std'], r['n_defined'], 3)}",
            return_dtype=pl.Utf8).alias("cell"))
    grid = sub.pivot(on="label_fraction", index=["group", "name"], values="cell",
                     sort_columns=True).rename({"name": "method"})
    with pl.Config(tbl_rows=100, tbl_cols=20, fmt_str_lengths=40, tbl_width_chars=160,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        return f"test_{primary} (mean ± std over seeds) by label fraction\n{grid}"
