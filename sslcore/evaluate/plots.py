"""The label-efficiency plot: metric vs label fraction (log scale), mean with a band over seeds."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from sslcore.evaluate.metrics import LOWER_IS_BETTER


def label_efficiency_plot(table: pl.DataFrame, metric: str, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    sub = table.filter(pl.col("metric") == metric).sort("label_fraction")
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for i, ((arm, method), grp) in enumerate(sub.group_by(["arm", "method"], maintain_order=True)):
        x = grp["label_fraction"].to_numpy()
        mean, std = grp["mean"].to_numpy(), grp["std"].to_numpy()
        style = "-" if arm == "ssl" else "--"
        marker = "o" if arm == "ssl" else "s"
        line, = ax.plot(x, mean, style, marker=marker, label=f"{arm}: {method}",
                        color=f"C{i % 10}", linewidth=2 if arm == "ssl" else 1.5)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ticks = sorted(sub["label_fraction"].unique().to_list())
    ax.set_xticks(ticks, [f"{t:.0%}" if t >= 0.01 else f"{t:.1%}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("fraction of labeled pool used (log scale)")
    ax.set_ylabel(f"test {metric}" + (" (lower is better)" if metric in LOWER_IS_BETTER else ""))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
