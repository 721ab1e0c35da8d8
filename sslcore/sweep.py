"""The label-fraction sweep: every method of every arm on the same labeled rows, same test set.

The arms: ``ssl`` (the heads on the SSL-pretrained encoder), ``baseline`` (labeled-only
methods from scratch) and, with ``backbone.init``, ``transfer`` (the same heads on the initial
encoder: the generic weights + the labels, no domain pretraining).

With shifted domains (``SSLData.shifted``), every fit is also scored on each domain's test set
with the threshold it chose on validation: rows of ``shift_results`` and the child runs'
``shift_<domain>_<metric>`` metrics. Nothing shifted feeds a choice."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch

from sslcore.config import ComponentRef, ExperimentConfig
from sslcore.contracts import Backbone, FitContext, Method
from sslcore.data.sampling import LabeledSubset, labeled_subsets
from sslcore.data.ssl_data import SSLData
from sslcore.evaluate.metrics import compute, youden_threshold
from sslcore.evaluate.report import RESULT_SCHEMA
from sslcore.evaluate.shift_report import SHIFT_SCHEMA


@dataclass
class SweepResult:
    results: pl.DataFrame  # label_fraction, seed, arm, method, metric, value (test set)
    val_results: pl.DataFrame  # the same columns: the primary metric on each validation split
    fitted_at_top: dict[tuple[str, str], Method]  # first seed, largest fraction
    labeled_counts: dict[float, list[float]]  # mean rows per class per fraction
    child_runs: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # The same columns plus domain: every fit's scores on each shifted test set.
    shift_results: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema=SHIFT_SCHEMA))
    shift_seconds: float = 0.0  # predicting and scoring the shifted test sets


def fit_context(data: SSLData, subset: LabeledSubset, cfg: ExperimentConfig, *,
                device: torch.device, make_backbone: Any, augment: Any,
                encoder: Backbone | None = None,
                cache: dict[str, Any] | None = None) -> FitContext:
    """What a method may see for one labeled subset: its rows, the pool, the shared budget."""
    meta = data.labeled_meta
    return FitContext(
        x_train=data.labeled_x[subset.train], y_train=data.labeled_y[subset.train],
        x_val=data.labeled_x[subset.val], y_val=data.labeled_y[subset.val],
        unlabeled=data.unlabeled_array(), num_classes=data.num_classes, seed=subset.seed,
        device=device, budget=cfg.finetune, make_backbone=make_backbone, augment=augment,
        encoder=encoder, cache={} if cache is None else cache,
        meta_train={k: np.asarray(v)[subset.train] for k, v in meta.items()},
        meta_val={k: np.asarray(v)[subset.val] for k, v in meta.items()})


def _methods(cfg: ExperimentConfig) -> list[tuple[str, ComponentRef]]:
    transfer = [("transfer", r) for r in cfg.heads] if cfg.backbone.init is not None else []
    return ([("ssl", r) for r in cfg.heads] + [("baseline", r) for r in cfg.baselines]
            + transfer)


def label_free_methods(cfg: ExperimentConfig, registries: Any) -> frozenset[tuple[str, str]]:
    """(arm, method label) of the sweep's methods whose fit uses no labels
    (``Method.uses_labels`` False): the report's ``label_free`` group. Building a method only
    stores its params, so asking is cheap."""
    return frozenset(
        (arm, ref.label) for arm, ref in _methods(cfg)
        if not (registries.baselines if arm == "baseline" else registries.heads)
        .get(ref.name).build(ref.params).uses_labels)


def run_sweep(cfg: ExperimentConfig, registries: Any, data: SSLData, encoder: Backbone,
              make_backbone: Any, augment: Any, device: torch.device,
              log_child: Any | None, progress: bool = True,
              logged: dict[tuple[str, str, str, int], dict[str, float]] | None = None,
              transfer_encoder: Backbone | None = None) -> SweepResult:
    """Fit and score every (arm, method, fraction, seed); ``log_child(...)`` writes a run.

    With ``cfg.backbone.init``, the heads run a second time in arm ``transfer`` on
    ``transfer_encoder`` (default: built once here by :func:`sslcore.train.build.
    initial_encoder` from ``make_backbone``): the same subsets, seeds, budget and test set.

    ``logged``: the metrics of child runs an interrupted attempt already logged, keyed by
    (arm, method, ``f"{fraction:g}"``, seed) (``tracking.finished_children``). Those fits
    are not redone or logged again: their logged test and validation scores go into the
    results as they are. The models the report needs (the first seed at the largest fraction)
    are fitted again, without logging.
    """
    from tqdm.auto import tqdm

    ev = cfg.evaluation
    methods = _methods(cfg)
    top = max(ev.label_fractions)
    rows: list[dict[str, Any]] = []
    val_rows: list[dict[str, Any]] = []
    fitted: dict[tuple[str, str], Method] = {}
    counts: dict[float, list[list[int]]] = {}
    # (arm, method, seed) -> (model, test scores, shifted test scores)
    label_free: dict[tuple[str, str, int], tuple[Method, np.ndarray, dict[str, np.ndarray]]] = {}
    shift_rows: list[dict[str, Any]] = []
    shift_s = 0.0
    cache: dict[str, Any] = {}
    timings: dict[str, float] = {}
    n_child = 0
    encoder.eval()
    encoders: dict[str, Backbone] = {"ssl": encoder}  # the baseline arm has none
    if cfg.backbone.init is not None:
        if transfer_encoder is None:
            from sslcore.train.build import initial_encoder

            transfer_encoder = initial_encoder(cfg, make_backbone, device)
        encoders["transfer"] = transfer_encoder.eval()
    transfer_cache: dict[str, Any] = {}  # its own: caches key fits by encoder identity
    total = len(ev.seeds) * len(ev.label_fractions) * len(methods)
    metrics = registries.metrics
    needs_threshold = any(metrics.get(m).build().needs_threshold for m in ev.metrics)
    bar = tqdm(total=total, desc="few-label sweep", unit="fit", disable=not progress)
    for seed in ev.seeds:
        subsets = labeled_subsets(data, ev, ev.label_fractions, seed)
        for subset in subsets:
            per_class = subset.class_counts(data.labeled_y, data.num_classes)
            counts.setdefault(subset.fraction, []).append(per_class)
            ctx = fit_context(data, subset, cfg, device=device, make_backbone=make_backbone,
                              augment=augment, cache=cache)
            for arm, ref in methods:
                bar.set_postfix_str(f"{ref.label} @ {subset.fraction:g}, seed {seed}")
                done = (logged or {}).get((arm, ref.label, f"{subset.fraction:g}", seed))
                keep = subset.fraction == top and seed == ev.seeds[0]
                timed = f"transfer.{ref.label}" if arm == "transfer" else ref.label
                if done is not None:
                    n_child += 1  # logged by the interrupted attempt: its scores count
                    rows += _logged_rows(done, "test_", ev.metrics, subset.fraction, seed, arm,
                                         ref.label)
                    val_rows += _logged_rows(done, "val_", [ev.primary_metric],
                                             subset.fraction, seed, arm, ref.label,
                                             breakdown=False)
                    for name in data.shifted:
                        shift_rows += [r | {"domain": name} for r in _logged_rows(
                            done, f"shift_{name}_", ev.metrics, subset.fraction, seed, arm,
                            ref.label)]
                    timings[timed] = timings.get(timed, 0.0) + done.get("fit_seconds", 0.0)
                    if not keep:
                        bar.update(1)
                        continue
                registry = registries.baselines if arm == "baseline" else registries.heads
                method = registry.get(ref.name).build(ref.params)
                start = time.perf_counter()
                key = (arm, ref.label, seed)
                shifted_scores: dict[str, np.ndarray] = {}
                if not method.uses_labels and key in label_free:
                    # label-free: the same model (and scores) at every fraction
                    method, scores, shifted_scores = label_free[key]
                else:
                    torch.manual_seed(seed)
                    method.fit(copy.copy(ctx) if arm == "baseline" else
                               _with_encoder(ctx, encoders[arm],
                                             transfer_cache if arm == "transfer" else None))
                    scores = method.predict_scores(data.test_x)
                    if not method.uses_labels:
                        label_free[key] = (method, scores, shifted_scores)
                fit_s = time.perf_counter() - start
                if done is not None:  # refitted only for the report's models
                    fitted[(arm, ref.label)] = method
                    bar.update(1)
                    continue
                timings[timed] = timings.get(timed, 0.0) + fit_s
                # Every fit is scored on its validation split: choosing the best method of
                # an arm on the test set would flatter the arm with more methods.
                val_pred = method.predict_scores(ctx.x_val) if len(ctx.y_val) else None
                threshold = (youden_threshold(ctx.y_val, val_pred)
                             if needs_threshold and val_pred is not None else
                             0.5 if needs_threshold else None)
                test_metrics = compute(ev.metrics, data.test_y, scores, metrics=metrics,
                                       threshold=threshold, meta=data.test_meta)
                rows += [{"label_fraction": subset.fraction, "seed": seed, "arm": arm,
                          "method": ref.label, "metric": m, "value": v}
                         for m, v in test_metrics.items()]
                # The same model and threshold on each shifted test set (a label-free model's
                # scores are computed once, into the cached dict).
                shift_start = time.perf_counter()
                shift_metrics: dict[str, float] = {}
                for name, dom in data.shifted.items():
                    if name not in shifted_scores:
                        shifted_scores[name] = method.predict_scores(dom.test_x)
                    scored = compute(ev.metrics, dom.test_y, shifted_scores[name],
                                     metrics=metrics, threshold=threshold, meta=dom.test_meta)
                    shift_rows += [{"label_fraction": subset.fraction, "seed": seed,
                                    "arm": arm, "method": ref.label, "metric": m, "value": v,
                                    "domain": name} for m, v in scored.items()]
                    shift_metrics |= {f"shift_{name}_{m}": v for m, v in scored.items()}
                shift_s += time.perf_counter() - shift_start
                val: dict[str, float] = {}
                if val_pred is not None:
                    val = compute([ev.primary_metric], ctx.y_val, val_pred, metrics=metrics,
                                  threshold=threshold, meta=ctx.meta_val)
                    val_rows.append({"label_fraction": subset.fraction, "seed": seed,
                                     "arm": arm, "method": ref.label,
                                     "metric": ev.primary_metric,
                                     "value": val[ev.primary_metric]})
                if subset.fraction == top and seed == ev.seeds[0]:
                    fitted[(arm, ref.label)] = method
                if log_child is not None:
                    log_child(arm=arm, method=ref.label, component=ref.name,
                              fraction=subset.fraction, seed=seed, per_class=per_class,
                              # A method's own fit_info (e.g. fit_steps, best_step) first:
                              # the sweep's metrics win a clash.
                              metrics=dict(getattr(method, "fit_info", None) or {})
                              | {f"test_{k}": v for k, v in test_metrics.items()}
                              | {f"val_{k}": v for k, v in val.items()}
                              | shift_metrics | {"fit_seconds": fit_s})
                    n_child += 1
                bar.update(1)
    bar.close()
    mean_counts = {f: np.mean(np.array(c), axis=0).round(1).tolist() for f, c in counts.items()}
    return SweepResult(pl.DataFrame(rows, schema=RESULT_SCHEMA),
                       pl.DataFrame(val_rows, schema=RESULT_SCHEMA), fitted, mean_counts,
                       n_child, timings, pl.DataFrame(shift_rows, schema=SHIFT_SCHEMA), shift_s)


def _logged_rows(metrics: dict[str, float], prefix: str, names: list[str], fraction: float,
                 seed: int, arm: str, method: str, breakdown: bool = True
                 ) -> list[dict[str, Any]]:
    """Result rows from a logged child run's metrics (``test_auprc``, ``test_auprc.group``...),
    in the order the sweep makes them: each named metric, then (``breakdown``) its groups."""
    rows = []
    for name in names:
        found = [name] if prefix + name in metrics else []
        if breakdown:
            found += sorted(k[len(prefix):] for k in metrics
                            if k.startswith(f"{prefix}{name}."))
        rows += [{"label_fraction": fraction, "seed": seed, "arm": arm, "method": method,
                  "metric": m, "value": metrics[prefix + m]} for m in found]
    return rows


def _with_encoder(ctx: FitContext, encoder: Backbone,
                  cache: dict[str, Any] | None = None) -> FitContext:
    out = copy.copy(ctx)
    out.encoder = encoder
    if cache is not None:
        out.cache = cache
    return out
