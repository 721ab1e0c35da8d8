"""Figures for the parent run: label efficiency (metric vs label fraction, log scale, mean with a
band over seeds) and, for multi-class tasks, the best model's confusion matrix."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import polars as pl


# Line and marker per group: ssl solid, baseline (labeled-only) dashed, transfer
# (backbone.init + labels, no SSL) dash-dotted, label-free (no labels at all) dotted.
_GROUP_STYLE = {"ssl": ("-", "o"), "baseline": ("--", "s"), "transfer": ("-.", "^"),
                "label_free": (":", "x")}


def label_efficiency_plot(table: pl.DataFrame, metric: str, path: Path, title: str, *,
                          lower_is_better: Collection[str] = frozenset()) -> Path:
    """``metric`` against the label fraction per method, in every group of the table (ssl,
    baseline, transfer, label_free: see :mod:`sslcore.evaluate.headline`); a band of one std
    over seeds where two or more seeds define the mean (none for one seed); the axis says
    when lower is better (``metric in lower_is_better``)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    from sslcore.evaluate.headline import shown_name, with_groups

    sub = with_groups(table.filter(pl.col("metric") == metric)).sort("label_fraction")
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    keys = ["group", "arm", "method"]
    for i, ((group, arm, method), grp) in enumerate(sub.group_by(keys, maintain_order=True)):
        x = grp["label_fraction"].to_numpy()
        mean, std = grp["mean"].to_numpy(), grp["std"].to_numpy()
        style, marker = _GROUP_STYLE.get(group, ("--", "s"))
        line, = ax.plot(x, mean, style, marker=marker,
                        label=f"{group}: {shown_name(group, arm, method)}",
                        color=f"C{i % 10}", linewidth=2 if group == "ssl" else 1.5)
        spread = np.isfinite(std) & (grp["n_defined"].to_numpy() > 1)
        if spread.any():
            ax.fill_between(x, mean - std, mean + std, where=spread, color=line.get_color(),
                            alpha=0.15)
    ax.set_xscale("log")
    ticks = sorted(sub["label_fraction"].unique().to_list())
    ax.set_xticks(ticks, [f"{t:.0%}" if t >= 0.01 else f"{t:.1%}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("fraction of labeled pool used (log scale)")
    ax.set_ylabel(f"test {metric}" + (" (lower is better)" if metric in lower_is_better else ""))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion_matrix_plot(y: np.ndarray, predicted: np.ndarray, class_names: list[str],
                          path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (recall per true class), counts in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    labels = list(range(len(class_names)))
    counts = confusion_matrix(y, predicted, labels=labels)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 3 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=120)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in labels:
        for j in labels:
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(labels, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(labels, class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
