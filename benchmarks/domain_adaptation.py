"""Domain adaptation: from scratch, the generic model as it is, or the generic model adapted.

    python benchmarks/domain_adaptation.py --vertical medical_imaging
    python benchmarks/domain_adaptation.py --vertical satellite --seeds 0 1 2

No model hub is reachable here, so the "generic" model is one sslcore pretrained on a
*different* domain and exported (``sslcore export``), as another team's encoder would be:
the vertical's built-in second domain (the first entry of its recipe's ``dataset.shifted``:
another scanner, region, or machine type), with that domain's physical parameters and the
quick recipe's pool sizes, pretrained at ``--source-budget`` (default ``standard``: 4x the
quick floor of the target runs' pretraining). Then, on the vertical's own
(target) data, two runs with the same labeled rows, seeds, fine-tuning budget and test set:

- without ``backbone.init``: rows *labeled-only* (arm ``baseline``) and *SSL from random
  init* (arm ``ssl``);
- with ``backbone.init`` = the export: rows *transfer* (arm ``transfer``: the generic model +
  the labels) and *SSL adapted* (arm ``ssl``: the generic model, pretrained further on the
  target's unlabeled pool, + the labels).

Each row is the arm's method chosen on the validation split (methods tied on validation: the
mean of their test scores), test mean ± std over seeds. The last columns give, for each SSL
row, the pretraining step at which its online linear probe (``probe_<metric>`` on a labeled
slice, never the test set) peaked, of the steps planned, and the probe's value at the first
and best probe. Writes benchmarks/results/domain_adaptation_<vertical>.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VERTICALS = ("medical_imaging", "satellite", "sensor_maintenance")
SEEDS = [0, 1, 2]
ROWS = (("labeled-only", "plain", "baseline"), ("SSL from random init", "plain", "ssl"),
        ("transfer (generic model + labels)", "init", "transfer"),
        ("SSL adapted (generic model + domain SSL)", "init", "ssl"))
# Generator parameters that size a split, not the domain: the source keeps the target's.
SIZE_PREFIXES = ("n_",)


def source_domain(vertical: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(name, dataset params, shifted block) of the vertical's second domain, sizes excluded."""
    from sslcore.config import deep_merge
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries

    cfg = resolve_config(vertical, load_registries(), quick=True)
    shifted = getattr(cfg.dataset, "shifted", None) or {}
    if not shifted:
        raise SystemExit(f"{vertical}: its recipe has no dataset.shifted domain to pretrain "
                         "the generic model on")
    name, override = next(iter(shifted.items()))
    physical = {k: v for k, v in override.items() if not k.startswith(SIZE_PREFIXES)}
    return name, deep_merge(cfg.dataset.params, physical), dict(shifted)


def pretrain_generic(vertical: str, params: dict[str, Any], budget: str, tracking_uri: str,
                     out: Path) -> tuple[Path, float]:
    """Pretrain on the source domain, export the encoder to ``out``; (export dir, minutes)."""
    import sslcore
    from sslcore.export import export

    start = time.perf_counter()
    config = {"vertical": vertical, "dataset": {"params": params, "shifted": {}},
              "tracking": {"experiment": f"domain-adaptation-source-{vertical}"}}
    ckpt = sslcore.pretrain(config, tracking_uri=tracking_uri, quick=True, budget=budget,
                            progress=False)
    export(ckpt, out)
    return out, (time.perf_counter() - start) / 60


def target_run(vertical: str, fractions: list[float] | None, seeds: list[int], budget: str,
               tracking_uri: str, init: Path | None) -> Any:
    """The quick recipe on the target domain; with ``init``, the labeled-only baselines are
    left out (the run without init has them, on the same rows and seeds)."""
    import sslcore

    config: dict[str, Any] = {
        "vertical": vertical, "dataset": {"shifted": {}},
        "evaluation": {"seeds": seeds} | ({"label_fractions": fractions} if fractions else {}),
        "tracking": {"experiment": f"domain-adaptation-{vertical}"}}
    if init is not None:
        config["baselines"] = []
    return sslcore.compare(config, tracking_uri=tracking_uri, quick=True, budget=budget,
                           progress=False, init=str(init) if init is not None else None)


def chosen_on_validation(report: Any, arm: str, fraction: float) -> tuple[str, float, float]:
    """(methods, test mean, test std) of the arm's validation choice at ``fraction``."""
    import polars as pl

    metric = report.config.evaluation.primary_metric
    lower = metric in report.lower_is_better
    val = report.val_table.filter((pl.col("arm") == arm) & (pl.col("metric") == metric)
                                  & (pl.col("label_fraction") == fraction))
    if val.is_empty():
        return "-", float("nan"), float("nan")
    best = val["mean"].min() if lower else val["mean"].max()
    tied = val.filter(pl.col("mean") == best)["method"].to_list()
    test = report.table.filter((pl.col("arm") == arm) & (pl.col("metric") == metric)
                               & (pl.col("label_fraction") == fraction)
                               & pl.col("method").is_in(tied))
    return ", ".join(tied), float(test["mean"].mean()), float(test["std"].mean())


def probe_curve(report: Any) -> dict[str, Any]:
    """The SSL pretraining's online probe: planned steps, best step and values."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(report.tracking_uri)
    metric = f"probe_{report.config.evaluation.primary_metric}"
    runs = client.search_runs(
        [report.experiment_id],
        f"tags.mlflow.parentRunId = '{report.run_id}' and tags.`sslcore.kind` = 'pretrain'")
    if not runs:
        return {}
    run = runs[0]
    history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
    if not history:
        return {"planned": run.data.params.get("planned_steps", "?")}
    best = max(history, key=lambda m: m.value)
    return {"planned": run.data.params.get("planned_steps", "?"), "best_step": best.step,
            "best": best.value, "first_step": history[0].step, "first": history[0].value}


def _cell(mean: float, std: float, n_seeds: int) -> str:
    if mean != mean:  # NaN: the arm has no method here
        return "-"
    return f"{mean:.3f} ± {std:.3f}" if n_seeds > 1 else f"{mean:.3f} ± n/a"


def table(vertical: str, reports: dict[str, Any], seeds: list[int]) -> str:
    metric = reports["plain"].config.evaluation.primary_metric
    fractions = reports["plain"].config.evaluation.label_fractions
    probes = {"plain": probe_curve(reports["plain"]), "init": probe_curve(reports["init"])}
    head = [f"{f:.0%} labels" for f in fractions]
    lines = [f"| {vertical} ({metric}, test) | " + " | ".join(head)
             + " | probe: best step / planned | probe: first -> best |",
             "|---" * (len(fractions) + 3) + "|"]
    for label, run, arm in ROWS:
        cells, chosen = [], []
        for f in fractions:
            methods, mean, std = chosen_on_validation(reports[run], arm, f)
            cells.append(_cell(mean, std, len(seeds)))
            chosen.append(methods)
        probe = probes[run] if arm == "ssl" else {}
        steps = (f"{probe['best_step']} / {probe['planned']}" if "best_step" in probe
                 else "-")
        values = (f"{probe['first']:.3f} (step {probe['first_step']}) -> {probe['best']:.3f}"
                  if "best" in probe else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {steps} | {values} |")
        lines.append("| &nbsp;&nbsp;chosen on validation | " + " | ".join(chosen)
                     + " | | |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertical", choices=VERTICALS, required=True)
    parser.add_argument("--fractions", type=float, nargs="+", default=None,
                        help="label fractions (default: the quick recipe's: 1/5/10%% for "
                        "images, 5/10/25%% of failure histories for sensors)")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--budget", default="quick", help="the target runs' budget preset")
    parser.add_argument("--source-budget", default="standard",
                        help="the generic model's pretraining budget preset")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: a temporary sqlite file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sslcore-da-") as tmp:
        uri = args.tracking_uri or f"sqlite:///{tmp}/mlflow.db"
        start = time.perf_counter()
        name, params, _ = source_domain(args.vertical)
        export_dir, source_min = pretrain_generic(args.vertical, params, args.source_budget,
                                                  uri, Path(tmp) / "generic")
        reports = {"plain": target_run(args.vertical, args.fractions, args.seeds, args.budget,
                                       uri, None),
                   "init": target_run(args.vertical, args.fractions, args.seeds, args.budget,
                                      uri, export_dir)}
        minutes = (time.perf_counter() - start) / 60
        body = table(args.vertical, reports, args.seeds)
    command = (f"python benchmarks/domain_adaptation.py --vertical {args.vertical} --seeds "
               f"{' '.join(map(str, args.seeds))} --budget {args.budget} --source-budget "
               f"{args.source_budget}")
    header = (f"<!-- command: {command} | machine: {platform.machine()}, {os.cpu_count()} "
              f"cores, {platform.python_version()} | date: {date.today()} | wall: "
              f"{minutes:.1f} min (generic model: {source_min:.1f} min) -->\n"
              f"Generic model: pretrained on the `{name}` domain ({params}) at budget "
              f"`{args.source_budget}`, exported, then loaded by `backbone.init`.\n\n")
    out = Path(__file__).parent / "results" / f"domain_adaptation_{args.vertical}.md"
    out.write_text(header + body)
    print(header + body)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
