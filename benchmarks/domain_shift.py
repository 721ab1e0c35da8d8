"""Evaluation under domain shift: in-domain and shifted scores of every arm, and the UDA setting.

    python benchmarks/domain_shift.py --vertical fraud_transactions
    python benchmarks/domain_shift.py --vertical sensor_maintenance --uda

Runs the vertical's quick recipe (3 seeds; 1/5/10% labels, sensors 5/10/25% of the failure
histories) with its built-in second
domain (``dataset.shifted``: another scanner, market period, plant or region). Every fitted
model is scored on the in-domain test set and on the shifted one, with the threshold it chose
on the in-domain validation split. Per group (``ssl``, ``baseline``, ``label_free``,
``transfer``), the method chosen on the in-domain validation split: in-domain and shifted
test mean ± std over seeds, and the drop (in-domain minus shifted). With ``--uda`` a second
run pretrains on the source pool plus the shifted domain's unlabeled pool
(``pretrain.target_unlabeled``), same rows, seeds and budgets. Writes
benchmarks/results/domain_shift_<vertical>.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VERTICALS = ("medical_imaging", "fraud_transactions", "sensor_maintenance", "satellite")
SEEDS = [0, 1, 2]
FRACTIONS = [0.01, 0.05, 0.1]
# 1% of the quick fleet's failure histories is less than one machine: the recipe's own.
FRACTIONS_BY_VERTICAL = {"sensor_maintenance": [0.05, 0.1, 0.25]}
GROUP_ORDER = ("ssl", "transfer", "baseline", "label_free")


def run(vertical: str, seeds: list[int], fractions: list[float], uri: str, uda: bool) -> Any:
    import sslcore

    config: dict[str, Any] = {"vertical": vertical,
                              "evaluation": {"seeds": seeds, "label_fractions": fractions},
                              "tracking": {"experiment": f"domain-shift-{vertical}"}}
    if uda:
        from sslcore.experiment import resolve_config
        from sslcore.plugins import load_registries

        domains = list(resolve_config(vertical, load_registries(), quick=True).dataset.shifted)
        config["pretrain"] = {"target_unlabeled": domains}
    return sslcore.compare(config, tracking_uri=uri, quick=True, progress=False)


def chosen_rows(report: Any) -> list[dict[str, Any]]:
    """Per fraction and group, the validation choice's in-domain and shifted scores."""
    import polars as pl

    from sslcore.evaluate.shift_report import chosen_on_validation, shift_frame

    metric = report.config.evaluation.primary_metric
    lower = metric in report.lower_is_better
    frame = shift_frame(report.table, report.shift_table, metric, lower)
    chosen = chosen_on_validation(report.val_table, metric, lower)
    domain = report.shift_table["domain"][0]
    rows = []
    for (fraction, group), (arm, method) in sorted(chosen.items()):
        hit = frame.filter((pl.col("label_fraction") == fraction) & (pl.col("arm") == arm)
                           & (pl.col("method") == method))
        if hit.is_empty():
            continue
        r = hit.row(0, named=True)
        rows.append({"fraction": fraction, "group": group, "method": method,
                     "in": (r["in_domain"], r["in_std"]), "shift": (r[domain], r[f"{domain}_std"]),
                     "drop": r[f"drop_{domain}"], "domain": domain})
    return rows


def _score(pair: tuple[float | None, float | None]) -> str:
    mean, std = pair
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.3f} ± " + ("n/a" if std is None or math.isnan(std) else f"{std:.3f}")


def markdown(vertical: str, reports: dict[str, Any]) -> str:
    metric = reports["source only"].config.evaluation.primary_metric
    lines = []
    for setting, report in reports.items():
        rows = chosen_rows(report)
        if not rows:
            continue
        lines += [f"**{vertical}, pretraining pool: {setting}** ({metric}; shifted domain "
                  f"`{rows[0]['domain']}`)", "",
                  "| labels | group | method (chosen on validation) | in-domain | shifted | drop |",
                  "|---|---|---|---|---|---|"]
        order = {g: i for i, g in enumerate(GROUP_ORDER)}
        for r in sorted(rows, key=lambda r: (r["fraction"], order.get(r["group"], 9))):
            lines.append(f"| {r['fraction']:.0%} | {r['group']} | {r['method']} | "
                         f"{_score(r['in'])} | {_score(r['shift'])} | {r['drop']:+.3f} |")
        lines += [""] + verdicts(rows) + [""]
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per fraction: is the SSL choice's drop the smallest of the groups'?"""
    out = []
    for fraction in sorted({r["fraction"] for r in rows}):
        at = {r["group"]: r for r in rows if r["fraction"] == fraction}
        if "ssl" not in at:
            continue
        others = {g: r["drop"] for g, r in at.items() if g != "ssl"}
        listed = ", ".join(f"{g} {d:+.3f}" for g, d in others.items())
        smallest = all(at["ssl"]["drop"] < d for d in others.values())
        out.append(f"- {fraction:.0%}: SSL drops {at['ssl']['drop']:+.3f} ({listed}): "
                   + ("the smallest drop." if smallest else "not the smallest drop."))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertical", choices=VERTICALS, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--fractions", type=float, nargs="+", default=None,
                        help="label fractions (default: 1/5/10%%; sensors 5/10/25%% of the "
                        "failure histories)")
    parser.add_argument("--uda", action="store_true",
                        help="also run with pretrain.target_unlabeled = the shifted domain")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: a temporary sqlite file)")
    args = parser.parse_args()
    fractions = args.fractions or FRACTIONS_BY_VERTICAL.get(args.vertical, FRACTIONS)
    with tempfile.TemporaryDirectory(prefix="sslcore-shift-") as tmp:
        uri = args.tracking_uri or f"sqlite:///{tmp}/mlflow.db"
        start = time.perf_counter()
        reports = {"source only": run(args.vertical, args.seeds, fractions, uri,
                                      uda=False)}
        if args.uda:
            reports["source + target unlabeled (UDA)"] = run(
                args.vertical, args.seeds, fractions, uri, uda=True)
        minutes = (time.perf_counter() - start) / 60
        body = markdown(args.vertical, reports)
    listed = " ".join(f"{f:g}" for f in fractions)
    command = (f"python benchmarks/domain_shift.py --vertical {args.vertical} --seeds "
               f"{' '.join(map(str, args.seeds))} --fractions {listed}"
               f"{' --uda' if args.uda else ''}")
    header = (f"<!-- command: {command} | machine: {platform.machine()}, {os.cpu_count()} "
              f"cores, {platform.python_version()} | date: {date.today()} | wall: "
              f"{minutes:.1f} min -->\n")
    out = Path(__file__).parent / "results" / f"domain_shift_{args.vertical}.md"
    out.write_text(header + body)
    print(header + body)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
