"""Real-data regression suite: sslcore.compare on small public datasets shipped in pip packages.

    python benchmarks/real_data.py                      # full: 5 / 10 / 25% labels, seeds 0, 1, 2
                                                        # (~25 min on 2 cores, budget "quick")
    python benchmarks/real_data.py --smoke              # every entry at a tiny budget (seconds each)
    python benchmarks/real_data.py --only gunpoint digits --out /tmp/real.md
    python benchmarks/real_data.py --tracking-uri sqlite:///real.db   # keep the MLflow runs

The datasets, their verticals, metrics and splits are defined in ``real_datasets.py`` next
to this file (``SUITE``). Each entry runs through ``sslcore.compare(config, data=...)`` with
the vertical's recipe, the entry's metrics, and an MLflow store (a temporary sqlite file
unless ``--tracking-uri``). The markdown table has, per dataset and label fraction: the SSL
arm's and the labeled-only arm's methods chosen on the validation split (test mean ± std over
seeds), the plain ``logreg_raw`` reference when the vertical has it, the best label-free
method (``uses_labels = False``, chosen on validation too), the pretraining steps, the seconds
each arm took (SSL: pretraining + its heads; labeled-only: its baselines) and the wall time.
An entry that raises is reported with its error; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FRACTIONS = [0.05, 0.1, 0.25]
SEEDS = [0, 1, 2]
# The recipes' standard floors (1000 pretraining steps, 200-300 per fine-tuning fit) are sized
# for their built-in data; "quick" (0.25x) keeps the full suite near 35 minutes on 2 cores.
FULL_BUDGET = "quick"
SMOKE_FRACTIONS = [0.25]
SMOKE_SEEDS = [0]
SMOKE_STEPS = {"pretrain": 3, "finetune": 5}  # optimizer steps per pretraining / fit
REFERENCE = "logreg_raw"  # the plain reference baseline, shown when a vertical has it
# Used only when a method cannot be built to ask its ``uses_labels``.
LABEL_FREE_NAMES = {"iforest", "ecod", "embedding_anomaly", "reconstruction_anomaly",
                    "window_stats_iforest", "window_stats_ecod"}


def _load_datasets() -> Any:
    """``real_datasets.py`` next to this file, importable also when this file is loaded by path."""
    if "real_datasets" in sys.modules:
        return sys.modules["real_datasets"]
    path = Path(__file__).with_name("real_datasets.py")
    spec = importlib.util.spec_from_file_location("real_datasets", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_datasets"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


_datasets = _load_datasets()
RealDataset = _datasets.RealDataset
SUITE: dict[str, Any] = _datasets.SUITE


@dataclass
class EntryResult:
    """One entry's run: the Report and what the table needs beyond it."""

    entry: Any
    report: Any = None
    error: str | None = None
    wall_s: float = 0.0
    pretrain_steps: int | None = None
    arm_seconds: dict[str, float] = field(default_factory=dict)
    label_free: set[str] = field(default_factory=set)  # method labels that use no labels
    dropped: dict[str, str] = field(default_factory=dict)  # what sslcore dropped, and why


def smoke_overrides() -> dict[str, Any]:
    """Tiny pretraining and fine-tuning budgets: exact step counts where the config has them
    (``steps``), else a cap on pretraining steps (``max_steps``)."""
    from sslcore.config import FinetuneConfig, PretrainConfig

    out: dict[str, Any] = {"pretrain": {"checkpoint_every": 1000}}
    for section, model in (("pretrain", PretrainConfig), ("finetune", FinetuneConfig)):
        if "steps" in model.model_fields:
            out.setdefault(section, {})["steps"] = SMOKE_STEPS[section]
    if "steps" not in out["pretrain"]:
        out["pretrain"]["max_steps"] = SMOKE_STEPS["pretrain"]
    return out


def entry_config(entry: Any, *, smoke: bool = False, output_dir: str | None = None,
                 budget: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config mapping passed to ``sslcore.compare`` in place of the vertical's name."""
    from sslcore.config import deep_merge

    cfg: dict[str, Any] = {"vertical": entry.vertical,
                           "evaluation": {"metrics": list(entry.metrics),
                                          "primary_metric": entry.primary_metric}}
    cfg = deep_merge(cfg, entry.overrides)
    if budget:
        cfg["budget"] = budget
    if smoke:
        cfg = deep_merge(cfg, smoke_overrides())
    if output_dir:
        cfg["output_dir"] = output_dir
    return deep_merge(cfg, extra or {})


def label_free_methods(config: Any) -> set[str]:
    """Labels of the config's methods (both arms) whose fit uses no labels."""
    from sslcore.plugins import load_registries

    registries = load_registries()
    out = set()
    for registry, refs in ((registries.heads, config.heads),
                           (registries.baselines, config.baselines)):
        for ref in refs:
            try:
                free = not registry.get(ref.name).build(ref.params).uses_labels
            except Exception:  # noqa: BLE001 - only asking; fall back to the known names
                free = ref.name in LABEL_FREE_NAMES
            if free:
                out.add(ref.label)
    return out


def pretrain_steps(report: Any) -> int | None:
    """The ``steps`` metric of the experiment's ``pretrain`` child run."""
    from mlflow import MlflowClient

    runs = MlflowClient(report.tracking_uri).search_runs(
        [report.experiment_id],
        f"tags.mlflow.parentRunId = '{report.run_id}' and tags.`sslcore.kind` = 'pretrain'")
    steps = [r.data.metrics.get("steps") for r in runs]
    return int(steps[0]) if steps and steps[0] is not None else None


def dropped_components(report: Any) -> dict[str, str]:
    """What sslcore dropped because the data cannot feed it (``method.x``/``metric.y`` ->
    why), from the parent run's ``data.dropped.*`` params."""
    from mlflow import MlflowClient

    params = MlflowClient(report.tracking_uri).get_run(report.run_id).data.params
    prefix = "data.dropped."
    return {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}


def arm_seconds(report: Any) -> dict[str, float]:
    """Seconds per arm: SSL = pretraining + its heads' fits; labeled-only = its baselines'."""
    t = report.timings
    heads = {r.label for r in report.config.heads}
    fits = {k.removeprefix("fit."): v for k, v in t.items() if k.startswith("fit.")}
    return {"ssl": t.get("pretrain", 0.0) + sum(v for k, v in fits.items() if k in heads),
            "baseline": sum(v for k, v in fits.items() if k not in heads)}


def run_entry(entry: Any, *, tracking_uri: str, fractions: list[float], seeds: list[int],
              smoke: bool = False, output_dir: str | None = None, budget: str | None = None,
              extra: dict[str, Any] | None = None, progress: bool = False) -> EntryResult:
    """Run one entry through ``sslcore.compare``; exceptions propagate (``run_suite`` keeps
    going past them)."""
    import sslcore

    start = time.perf_counter()
    data = entry.load()
    report = sslcore.compare(
        entry_config(entry, smoke=smoke, output_dir=output_dir, budget=budget, extra=extra),
        data,
        label_fractions=fractions, seeds=seeds, tracking_uri=tracking_uri, quick=smoke,
        progress=progress)
    return EntryResult(entry, report, wall_s=time.perf_counter() - start,
                       pretrain_steps=pretrain_steps(report), arm_seconds=arm_seconds(report),
                       label_free=label_free_methods(report.config),
                       dropped=dropped_components(report))


# ---- the markdown table -----------------------------------------------------------------------

def _score(report: Any, arm: str | None, method: str | None, fraction: float) -> str:
    """'method mean ± std' of the primary test metric ('-' when absent)."""
    import polars as pl

    if method is None:
        return "-"
    metric = report.config.evaluation.primary_metric
    t = report.table.filter((pl.col("method") == method) & (pl.col("metric") == metric)
                            & (pl.col("label_fraction") == fraction))
    if arm is not None:
        t = t.filter(pl.col("arm") == arm)
    if t.is_empty():
        return "-"
    std = t["std"][0]
    spread = "n/a" if std is None or std != std else f"{std:.3f}"  # one seed: no spread
    return f"{method} {t['mean'][0]:.3f} ± {spread}"


def _chosen(report: Any, arm: str, chosen: tuple[str, float] | None, fraction: float) -> str:
    """The headline's choice for an arm: one method with its spread, or the methods tied on
    validation with their mean test score (the report's representative of a tie)."""
    if chosen is None:
        return "-"
    cell = _score(report, arm, chosen[0], fraction)
    return cell if cell != "-" else f"{chosen[0]}: {chosen[1]:.3f}"


def _best_label_free(result: EntryResult, fraction: float) -> tuple[str | None, str | None]:
    """(arm, method) of the label-free method with the best validation mean at ``fraction``."""
    import polars as pl

    report = result.report
    choose_by = report.val_table if report.val_table is not None and \
        not report.val_table.is_empty() else report.table
    metric = report.config.evaluation.primary_metric
    sub = choose_by.filter(pl.col("method").is_in(sorted(result.label_free))
                           & (pl.col("metric") == metric)
                           & (pl.col("label_fraction") == fraction))
    if sub.is_empty():
        return None, None
    sub = sub.sort(["mean", "method"], descending=[metric not in report.lower_is_better, False])
    return str(sub["arm"][0]), str(sub["method"][0])


HEADER = ("| dataset | vertical | metric | labels | SSL (chosen on val) | labeled-only (chosen "
          f"on val) | {REFERENCE} | best label-free | pretrain steps (s) | SSL arm s | "
          "labeled-only arm s | wall s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def table_rows(result: EntryResult) -> list[str]:
    e = result.entry
    if result.report is None:
        error = (result.error or "").replace("|", "\\|").replace("\n", " ")
        return [f"| {e.name} | {e.vertical} | {e.primary_metric} | FAILED | {error} "
                f"| | | | | | | {result.wall_s:.0f} |"]
    report = result.report
    rows = []
    for hl in report.headline.rows:
        f = hl["label_fraction"]
        ssl, base = hl["best_ssl"], hl["best_baseline"]
        free_arm, free = _best_label_free(result, f)
        rows.append(
            f"| {e.name} | {e.vertical} | {e.primary_metric} | {f:g} "
            f"| {_chosen(report, 'ssl', ssl, f)} "
            f"| {_chosen(report, 'baseline', base, f)} "
            f"| {_score(report, None, REFERENCE, f)} "
            f"| {_score(report, free_arm, free, f)} "
            f"| {'-' if result.pretrain_steps is None else result.pretrain_steps} "
            f"({report.timings.get('pretrain', 0):.0f} s) "
            f"| {result.arm_seconds.get('ssl', 0):.0f} "
            f"| {result.arm_seconds.get('baseline', 0):.0f} | {result.wall_s:.0f} |")
    return rows


def to_markdown(results: list[EntryResult], title: str) -> str:
    lines = [f"# {title}", "",
             "Test mean ± std over seeds of each entry's primary metric; each arm's method is "
             "chosen on the validation split (best label-free: among the methods that use no "
             "labels, also chosen on validation). Arm seconds: SSL = pretraining + its heads, "
             "labeled-only = its baselines (summed over fractions and seeds); wall: the "
             "whole entry.", "", HEADER]
    for r in results:
        lines += table_rows(r)
    notes = [f"- {r.entry.name}: {k} dropped: it {v}" for r in results
             for k, v in sorted(r.dropped.items())]
    if notes:
        lines += ["", "Dropped by sslcore because these data cannot feed them:", "", *notes]
    lines += ["", "| dataset | package | vertical | rows (pool / test) | shape | description |",
              "|---|---|---|---|---|---|"]
    for r in results:
        e = r.entry
        data = e.load()
        shape = "x".join(str(s) for s in data["test"][0].shape[1:])
        lines.append(f"| {e.name} | {e.package} | {e.vertical} | {len(data['labeled'][1])} / "
                     f"{len(data['test'][1])} | {shape} | {e.description} |")
    return "\n".join(lines) + "\n"


def run_suite(names: list[str], *, tracking_uri: str, smoke: bool, output_dir: str,
              budget: str | None = None, extra: dict[str, Any] | None = None,
              progress: bool = False) -> list[EntryResult]:
    fractions, seeds = (SMOKE_FRACTIONS, SMOKE_SEEDS) if smoke else (FRACTIONS, SEEDS)
    results = []
    for name in names:
        entry = SUITE[name]
        print(f"[{name}] {entry.vertical} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            result = run_entry(entry, tracking_uri=tracking_uri, fractions=fractions,
                               seeds=seeds, smoke=smoke, output_dir=output_dir,
                               budget=budget, extra=extra, progress=progress)
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next entry
            traceback.print_exc()
            result = EntryResult(entry, error=f"{type(exc).__name__}: {exc}"[:400],
                                 wall_s=time.perf_counter() - start)
        print(f"[{name}] {'FAILED' if result.error else 'ok'} in {result.wall_s:.0f} s",
              file=sys.stderr, flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny budgets: one fraction, one seed, quick recipe, 3 "
                        "pretraining and 5 fine-tuning steps")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), metavar="NAME",
                        help=f"entries to run (default: all): {', '.join(SUITE)}")
    parser.add_argument("--out", help="markdown file (default: benchmarks/results/"
                        "real_data.md for a full run, none for --smoke)")
    parser.add_argument("--tracking-uri", help="MLflow store (default: a temporary sqlite file)")
    parser.add_argument("--budget", choices=["quick", "standard", "thorough"],
                        default=FULL_BUDGET, help="step-budget preset of a full run (default: "
                        f"{FULL_BUDGET}; --smoke sets exact tiny step counts instead)")
    parser.add_argument("--override", type=json.loads, default=None, metavar="JSON",
                        help='config merged into every entry, e.g. \'{"pretrain": {"epochs": 5}}\'')
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)

    names = args.only or list(SUITE)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sslcore_real_data_") as tmp:
        uri = args.tracking_uri or f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        results = run_suite(names, tracking_uri=uri, smoke=args.smoke,
                            output_dir=str(Path(tmp) / "runs"),
                            budget=None if args.smoke else args.budget, extra=args.override,
                            progress=args.progress)
    minutes = (time.perf_counter() - start) / 60
    mode = "smoke" if args.smoke else "full"
    command = "python benchmarks/real_data.py" + (" --smoke" if args.smoke else "") + \
        (f" --only {' '.join(args.only)}" if args.only else "") + \
        ("" if args.smoke else f" --budget {args.budget}") + \
        (f" --override '{json.dumps(args.override)}'" if args.override else "")
    header = (f"<!-- command: {command} | machine: {platform.machine()}, {os.cpu_count()} "
              f"cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
              f"{platform.python_version()} | date: {date.today()} | wall: {minutes:.1f} min -->\n")
    body = header + to_markdown(results, f"Real-data regression suite ({mode})")
    print(body)
    out = args.out or (None if args.smoke else
                       str(Path(__file__).parent / "results" / "real_data.md"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(body)
        print(f"wrote {out}", file=sys.stderr)
    failed = [r.entry.name for r in results if r.error]
    if failed:
        print(f"{len(failed)} of {len(results)} entries failed: {', '.join(failed)}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
