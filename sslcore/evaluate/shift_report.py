"""Scores under domain shift: per label fraction, arm and method, the in-domain test score,
each shifted domain's score and the drop, as a markdown section and a figure.

The sweep scores every fitted model on each shifted test set with the decision threshold it
chose on the in-domain validation split (:mod:`sslcore.sweep`); its rows carry a ``domain``
column (:data:`SHIFT_SCHEMA`). The drop is how much worse a model does under shift: in-domain
minus shifted, or shifted minus in-domain for a metric where lower is better.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from sslcore.evaluate.headline import groups_present, tied_best, with_groups
from sslcore.evaluate.report import RESULT_SCHEMA, summarize

SHIFT_SCHEMA = RESULT_SCHEMA | {"domain": pl.Utf8}

# Line and marker per arm, as in the label-efficiency figure.
_ARM_STYLE = {"ssl": ("-", "o"), "baseline": ("--", "s"), "transfer": ("-.", "^")}
_KEYS = ["label_fraction", "arm", "method"]


def summarize_shift(results: pl.DataFrame,
                    label_free: Collection[tuple[str, str]] = frozenset()) -> pl.DataFrame:
    """Per-seed shifted scores -> domain, then the columns of
    :func:`~sslcore.evaluate.report.summarize` (mean, std over seeds...), per domain."""
    parts = [summarize(results.filter(pl.col("domain") == d).drop("domain"), label_free)
             .with_columns(pl.lit(d).alias("domain"))
             for d in results["domain"].unique(maintain_order=True).to_list()]
    if not parts:
        return pl.DataFrame(schema={"domain": pl.Utf8} | {k: RESULT_SCHEMA[k] for k in _KEYS})
    return pl.concat(parts).select("domain", pl.exclude("domain"))


def shift_frame(table: pl.DataFrame, shift_table: pl.DataFrame, metric: str,
                lower: bool = False) -> pl.DataFrame:
    """One row per (label_fraction, arm, method): ``in_domain`` (test mean), then per domain
    ``<domain>`` (its mean) and ``drop_<domain>`` (positive: worse under shift)."""
    group = pl.col("group") if "group" in table.columns else pl.col("arm").alias("group")
    out = (table.filter(pl.col("metric") == metric)
           .select(*_KEYS, group, pl.col("mean").alias("in_domain"),
                   pl.col("std").alias("in_std")))
    for domain in shift_table["domain"].unique(maintain_order=True).to_list():
        sub = shift_table.filter((pl.col("domain") == domain) & (pl.col("metric") == metric))
        out = out.join(sub.select(*_KEYS, pl.col("mean").alias(domain),
                                  pl.col("std").alias(f"{domain}_std")), on=_KEYS, how="left")
        drop = pl.col(domain) - pl.col("in_domain") if lower else pl.col("in_domain") - \
            pl.col(domain)
        out = out.with_columns(drop.alias(f"drop_{domain}"))
    return out.sort(["label_fraction", "arm", "method"], descending=[False, True, False])


def chosen_on_validation(val_table: pl.DataFrame | None, metric: str,
                         lower: bool = False) -> dict[tuple[float, str], tuple[str, str]]:
    """(label_fraction, group) -> (arm, method) with the best mean validation ``metric``
    (ties: the first by name, as the headline's): each group's representative (the group is
    the arm, or ``label_free``, where the summary has a ``group`` column)."""
    if val_table is None or val_table.is_empty():
        return {}
    table = with_groups(val_table)
    lower_set = {metric} if lower else set()
    out: dict[tuple[float, str], tuple[str, str]] = {}
    for fraction in sorted(table["label_fraction"].unique().to_list()):
        for group in groups_present(table):
            tied = tied_best(table, group, metric, fraction, lower_set)
            if tied:
                out[(fraction, group)] = tied[0]
    return out


def _score(mean: float | None, std: float | None) -> str:
    """'mean ± std'; the mean alone when the std is undefined (one seed)."""
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.4f}" + ("" if std is None or math.isnan(std) else f" ± {std:.4f}")


def _grid(frame: pl.DataFrame, domains: list[str]) -> list[str]:
    head = "| labels | arm | method | in-domain | " + " | ".join(
        f"{d} | drop {d}" for d in domains) + " |"
    lines = [head, "|" + "---|" * (3 + 1 + 2 * len(domains))]
    for row in frame.iter_rows(named=True):
        arm = row["arm"] + (" (label-free)" if row["group"] == "label_free" else "")
        cells = [f"{row['label_fraction']:g}", arm, row["method"],
                 _score(row["in_domain"], row["in_std"])]
        for d in domains:
            drop = row.get(f"drop_{d}")
            cells += [_score(row.get(d), row.get(f"{d}_std")),
                      "n/a" if drop is None or math.isnan(drop) else f"{drop:+.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def shift_markdown(table: pl.DataFrame, shift_table: pl.DataFrame,
                   val_table: pl.DataFrame | None, primary: str, metrics: list[str], *,
                   pool: str, lower_is_better: Collection[str] = frozenset()) -> str:
    """The ``## Under domain shift`` section of comparison.md.

    Args:
        table, val_table: the in-domain test and validation summaries (``summarize``).
        shift_table: :func:`summarize_shift` of the sweep's shifted scores.
        pool: what pretraining saw (the UDA setting, ``pretrain.target_unlabeled``).
    """
    domains = shift_table["domain"].unique(maintain_order=True).to_list()
    lines = ["", "## Under domain shift", "",
             f"Shifted test sets: {', '.join(domains)}. Every fitted model is also scored on "
             "each, with the decision threshold chosen on the in-domain validation split; "
             "no shifted row influences any choice (methods, thresholds, the model logged). "
             "Drop: how much worse under shift (in-domain minus shifted; shifted minus "
             "in-domain where lower is better).", "", f"Pretraining pool: {pool}.", ""]
    for metric in [primary] + [m for m in metrics if m != primary]:
        lower = metric in lower_is_better
        frame = shift_frame(table, shift_table, metric, lower)
        if frame.is_empty():
            continue
        note = " (lower is better)" if lower else ""
        if metric == primary:
            chosen = pl.DataFrame(
                [(f, arm, m) for (f, _), (arm, m) in chosen_on_validation(
                    val_table, metric, lower).items()],
                schema={k: RESULT_SCHEMA[k] for k in _KEYS}, orient="row")
            picked = frame.join(chosen, on=_KEYS, how="semi")
            if not picked.is_empty():
                lines += [f"### {metric}{note}: each group's method chosen on validation", ""]
                lines += _grid(picked, domains) + [""]
        lines += [f"### {metric}{note}: every method", ""] + _grid(frame, domains) + [""]
    return "\n".join(lines)


def shift_plot(table: pl.DataFrame, shift_table: pl.DataFrame, metric: str, path: Path,
               title: str, *, lower_is_better: Collection[str] = frozenset()) -> Path:
    """One panel per shifted domain: its test ``metric`` against the label fraction per
    (arm, method), solid by arm style; the in-domain score dotted, same colour."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    lower = metric in lower_is_better
    domains = shift_table["domain"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(domains), figsize=(6 * len(domains), 4.5), dpi=120,
                             squeeze=False, sharey=True)
    for ax, domain in zip(axes[0], domains):
        frame = shift_frame(table, shift_table.filter(pl.col("domain") == domain), metric, lower)
        for i, ((arm, method), grp) in enumerate(frame.group_by(["arm", "method"],
                                                               maintain_order=True)):
            grp = grp.sort("label_fraction")
            x, color = grp["label_fraction"].to_numpy(), f"C{i % 10}"
            style, marker = _ARM_STYLE.get(arm, ("--", "s"))
            ax.plot(x, grp[domain].to_numpy(), style, marker=marker, color=color,
                    label=f"{arm}: {method}")
            ax.plot(x, grp["in_domain"].to_numpy(), ":", color=color, alpha=0.6, linewidth=1)
        ax.set_xscale("log")
        ticks = sorted(frame["label_fraction"].unique().to_list())
        ax.set_xticks(ticks, [f"{t:.0%}" if t >= 0.01 else f"{t:.1%}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("fraction of labeled pool used (log scale)")
        ax.set_title(f"shifted: {domain} (dotted: in-domain)", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"test {metric}" + (" (lower is better)" if lower else ""))
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_shift_artifacts(cfg: Any, notes: Mapping[str, Any], table: pl.DataFrame,
                          val_table: pl.DataFrame | None, shift_table: pl.DataFrame | None,
                          lower_is_better: Collection[str], out: Path) -> str:
    """With shifted domains (``shift_table`` not None): ``shift.png`` and
    ``comparison_shift.csv`` in ``out``; returns the section for comparison.md ("" without).
    ``cfg``: the ExperimentConfig; ``notes``: the data card's (``pretrain_pool``: the UDA
    setting, from :func:`sslcore.data.shift.pretraining_data`)."""
    if shift_table is None:
        return ""
    ev = cfg.evaluation
    shift_table.write_csv(out / "comparison_shift.csv")
    shift_plot(table, shift_table, ev.primary_metric, out / "shift.png",
               f"{cfg.vertical}: under domain shift ({len(ev.seeds)} seeds)",
               lower_is_better=lower_is_better)
    pool = notes.get("pretrain_pool")
    pool = (f"{pool}: unsupervised domain adaptation (pretrain.target_unlabeled)" if pool else
            "the source's unlabeled pool only (pretrain.target_unlabeled is empty)")
    return shift_markdown(table, shift_table, val_table, ev.primary_metric, ev.metrics,
                          pool=pool, lower_is_better=lower_is_better)
