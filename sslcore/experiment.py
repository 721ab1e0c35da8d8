"""One experiment end to end: config -> data -> SSL pretraining -> sweep -> report in MLflow."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sslcore.config import ExperimentConfig, deep_merge, load_yaml, validate_config
from sslcore.config_checks import check_components
from sslcore.data.sampling import labeled_subsets
from sslcore.data.ssl_data import SSLData
from sslcore.errors import ConfigError, DataError
from sslcore.evaluate.metrics import lower_is_better
from sslcore.evaluate.report import (
    Headline,
    format_console,
    headline,
    overall_choice,
    reference_label,
    summarize,
)


logger = logging.getLogger(__name__)


@dataclass
class Report:
    """What ``compare()`` returns: the table and where everything was logged."""

    # label_fraction, group (the arm, or label_free), arm, method, metric, mean, std, n_seeds,
    # n_defined
    table: pl.DataFrame
    results: pl.DataFrame  # one row per (fraction, seed, arm, method, metric)
    run_id: str
    experiment_id: str
    tracking_uri: str
    config: ExperimentConfig
    headline: Headline
    best_method: str | None = None
    model_uri: str | None = None
    labeled_counts: dict[float, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase and method
    val_table: pl.DataFrame | None = None  # like table: the primary metric on validation
    # Methods and metrics of the recipe left out because these data cannot feed them
    # ("method.rul_regression" -> why), from sslcore.data_fit.
    dropped: dict[str, str] = field(default_factory=dict)
    # The config's metrics where lower is better (Metric.higher_is_better False): how to read
    # and sort the table's means.
    lower_is_better: frozenset[str] = frozenset()
    # With shifted domains: like table, per domain (a first column ``domain``), the scores on
    # each shifted test set (sslcore.evaluate.shift_report.summarize_shift).
    shift_table: pl.DataFrame | None = None
    registered_model: str | None = None  # models:/<name>/<version> (tracking.register)

    def __str__(self) -> str:
        return format_console(self.table, self.config.evaluation.primary_metric)


def resolve_config(vertical_or_config: Any, registries: Any, *, quick: bool = False,
                   overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """A vertical name, a YAML path, a mapping or an ExperimentConfig -> a checked config.

    User configs name a ``vertical`` and override parts of its recipe (deep merge).
    """
    source = ""
    if isinstance(vertical_or_config, ExperimentConfig):
        raw: dict[str, Any] = vertical_or_config.model_dump()
    elif isinstance(vertical_or_config, dict):
        raw = dict(vertical_or_config)
    elif isinstance(vertical_or_config, str | Path) and (
            str(vertical_or_config).endswith((".yaml", ".yml")) or Path(vertical_or_config).is_file()):
        source = str(vertical_or_config)
        raw = load_yaml(vertical_or_config)
    elif isinstance(vertical_or_config, str):
        raw = {"vertical": vertical_or_config}
    else:
        raise ConfigError(f"expected a vertical name, a YAML path or a config mapping, got "
                          f"{type(vertical_or_config).__name__}")
    if "vertical" not in raw:
        raise ConfigError(f"vertical: missing{' in ' + source if source else ''}; name one of "
                          f"{registries.verticals.names()}")
    try:
        recipe = registries.verticals.get(raw["vertical"]).build()
    except Exception as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"vertical: {exc}") from None
    # recipe < quick recipe < the user's config < explicit API/CLI arguments
    base = deep_merge(recipe.default_config, recipe.quick_overrides) if quick else \
        recipe.default_config
    merged = deep_merge(deep_merge(base, raw), overrides or {})
    cfg = validate_config(merged, source)
    check_components(cfg, registries)
    return cfg


def load_data(cfg: ExperimentConfig, registries: Any, data: Any = None) -> SSLData:
    from sslcore import interrupts

    interrupts.fault_point("load_data")  # the crash tests' hook; inert otherwise
    if data is None:
        from sslcore.data.shift import domains_from_loader

        entry = registries.datasets.get(cfg.dataset.name)
        loaded = entry.build(cfg.dataset.params, seed=cfg.pretrain.seed)
        # dataset.shifted: the same loader, params overridden, other seeds (sslcore.data.shift)
        loaded.shifted = {**loaded.shifted, **domains_from_loader(
            entry, cfg.dataset.params, cfg.dataset.shifted, cfg.pretrain.seed,
            keep_unlabeled=cfg.pretrain.target_unlabeled)}
        return loaded.validate()
    if cfg.dataset.shifted:  # not an error: the recipes list their built-in data's domains
        logger.info("dataset.shifted %s ignored: it builds domains with the dataset loader, "
                    "and this run uses your own data; pass yours as data['shifted'] = "
                    "{name: {'test': (X, y), 'unlabeled': X}}", sorted(cfg.dataset.shifted))
    if isinstance(data, SSLData):
        return data.validate()
    from sslcore.data.user_data import from_user_data

    return from_user_data(data)


def check_sampling(cfg: ExperimentConfig, data: SSLData) -> None:
    """Fail before pretraining if some fraction cannot have every class."""
    for seed in cfg.evaluation.seeds:
        labeled_subsets(data, cfg.evaluation, cfg.evaluation.label_fractions, seed)


def pretrain_key(cfg: ExperimentConfig, content_hash: str) -> str:
    """Identifies a pretraining run so ``--resume`` and ``sslcore pretrain`` find its checkpoint.

    ``content_hash`` is the data card's (``SSLData.card()`` hashes every array: compute it once).
    """
    parts = {k: cfg.model_dump()[k] for k in ("backbone", "pretext", "augmentations", "pretrain")}
    parts["pretrain"] = {k: v for k, v in parts["pretrain"].items()
                         if k not in ("checkpoint_every", "log_every")}
    if not parts["pretrain"].get("target_unlabeled", 1):  # none: keys as before the field
        del parts["pretrain"]["target_unlabeled"]
    parts["budget"] = cfg.budget  # the preset scales the planned steps, so the LR schedule
    blob = json.dumps(parts, sort_keys=True) + content_hash
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_key(cfg: ExperimentConfig, content_hash: str, plugin_versions: dict[str, str]) -> str:
    """Identifies a run's config, data and code: the ``sslcore.config_hash`` tag.

    ``--resume`` reattaches to the interrupted run with this key, and a start marks the
    orphaned runs of this key on other hosts KILLED. The tracking block is left out (the store
    is where the key is looked up); everything else, ``output_dir`` included (the checkpoints
    live there), is in.
    """
    blob = json.dumps({"config": cfg.model_dump(exclude={"tracking"}), "data": content_hash,
                       "plugins": plugin_versions}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checkpoint_dir(cfg: ExperimentConfig, content_hash: str) -> Path:
    return Path(cfg.output_dir) / cfg.vertical / pretrain_key(cfg, content_hash) / "checkpoints"


def _best_method(val_table: pl.DataFrame, metric: str,
                 lower: Collection[str] = frozenset()) -> tuple[str, str]:
    """The (arm, method) with the best mean validation score (``val_table``: the
    :func:`summarize` of validation scores) at the largest label fraction, over every group
    (label-free methods included); ``lower``: the metrics where lower is better. A tie goes to
    the first of the tied by (arm, method) name, as the headline's ``overall`` says
    (:func:`sslcore.evaluate.report.overall_choice`, shared so the two always agree)."""
    tied = overall_choice(val_table, metric, lower)
    if not tied:
        raise DataError("no validation split to choose the model to log: raise "
                        "evaluation.val_fraction or add labeled rows")
    return tied[0]


def run_experiment(cfg: ExperimentConfig, registries: Any, data: SSLData, *,
                   resume: bool = False, progress: bool = True) -> Report:
    """Pretraining, the sweep and the report, recorded in one parent run.

    With ``backbone.init``, the sweep has a third arm, ``transfer``: every head again on the
    initial encoder (the generic weights + the labels, no SSL), child runs tagged
    ``sslcore.arm=transfer``.

    With ``resume``, an interrupted parent run of the same config, data and plugins (KILLED by
    a stop signal or as an orphan, or FAILED) is reattached: pretraining continues in its
    ``pretrain`` child from the last checkpoint (or is reused if it had finished), the sweep
    reuses the metrics of the child runs that FINISHED and fits only the others, so the report
    is the one an uninterrupted run makes and no child is logged twice.
    """
    from sslcore import interrupts, tracking
    from sslcore.data_fit import fit_config_to_data
    from sslcore.distributed import pick_device
    from sslcore.data.shift import prepare_shift
    from sslcore.evaluate.shift_report import summarize_shift
    from sslcore.sweep import label_free_methods, run_sweep
    from sslcore.pretraining import run_pretraining
    from sslcore.run_artifacts import write_parent_artifacts
    from sslcore.serving import raw_input_for
    from sslcore.train.build import build_pretraining, initial_encoder
    from sslcore.train.checkpoint import latest_checkpoint

    cfg, data = fit_config_to_data(cfg, registries, data)  # drop what the data cannot feed
    dropped = {k.removeprefix("dropped."): v for k, v in data.notes.items()
               if k.startswith("dropped.")}
    data = prepare_shift(cfg, registries, data)  # names, leakage, the target pools (UDA)
    check_sampling(cfg, data)
    device = pick_device()
    card = data.card()
    ev = cfg.evaluation
    experiment = cfg.tracking.experiment or f"sslcore-{cfg.vertical}"
    params = tracking.flatten("", cfg.model_dump(exclude={"tracking"})) | card.as_params()
    params |= {f"plugin.{k}": v for k, v in registries.plugin_versions().items()}
    tags = {"sslcore.vertical": cfg.vertical, "sslcore.kind": "experiment",
            "sslcore.primary_metric": ev.primary_metric}
    if data.shifted:  # the UDA setting: what pretraining saw
        tags |= {"sslcore.shifted_domains": ",".join(data.shifted),
                 "sslcore.pretrain_pool": data.notes.get("pretrain_pool", "source")}
    key = run_key(cfg, card.content_hash, registries.plugin_versions())
    with tracking.parent_run(cfg.tracking.uri, experiment,
                             f"{cfg.vertical} {time.strftime('%Y-%m-%d %H:%M')}", tags, params,
                             config_hash=key, resume=resume,
                             artifact_root=cfg.tracking.artifact_root) as parent:
        parent_id, exp_id = parent.info.run_id, parent.info.experiment_id
        start = time.perf_counter()
        interrupts.set_phase("before pretraining")
        built = build_pretraining(cfg, registries, data)
        ckpt_dir = checkpoint_dir(cfg, card.content_hash)
        # A reattached run (--resume): continue its pretrain child, or reuse it if it finished.
        prior = tracking.latest_child(exp_id, parent_id, "pretrain") if resume else None
        reuse = (prior is not None and prior[1] == "FINISHED"
                 and latest_checkpoint(ckpt_dir) is not None)
        encoder = run_pretraining(cfg, built, data, ckpt_dir, resume=resume, device=device,
                                  progress=progress, log_to_mlflow=not reuse,
                                  reopen_run_id=prior[0] if prior and prior[1] != "FINISHED"
                                  else None,
                                  run_name=f"pretrain | {cfg.pretext.name} | {cfg.backbone.name}")
        logged = tracking.finished_children(exp_id, parent_id) if resume else {}
        n_logged = [0]

        def log_child(arm: str, method: str, component: str, fraction: float, seed: int,
                      per_class: list[int], metrics: dict[str, float]) -> None:
            names = data.class_names or [str(i) for i in range(len(per_class))]
            tracking.log_child_run(
                parent_id, exp_id, f"{method} | {arm} | f={fraction:g} | s={seed}",
                tags={"sslcore.arm": arm, "sslcore.method": method,
                      "sslcore.label_fraction": f"{fraction:g}", "sslcore.seed": str(seed),
                      "sslcore.kind": "downstream", "sslcore.vertical": cfg.vertical},
                params={"component": component, "n_labeled": sum(per_class)}
                | {f"n_labeled.{n}": c for n, c in zip(names, per_class, strict=True)},
                metrics=metrics)
            n_logged[0] += 1
            interrupts.fault_point("child", n_logged[0])  # the crash tests' hook

        timings = {"pretrain": time.perf_counter() - start}
        # With backbone.init, the transfer arm: the heads on the encoder pretraining started
        # from (the generic weights, no domain SSL), built once for the whole sweep.
        transfer = None
        if cfg.backbone.init is not None:
            from sslcore.init.load import quiet_reports

            with quiet_reports():  # the same weights' report was printed for pretraining
                transfer = initial_encoder(cfg, built.make_backbone, device)
        interrupts.set_phase("during the few-label sweep (the fits logged so far are reused "
                             "by --resume)")
        sweep = run_sweep(cfg, registries, data, encoder, built.make_backbone,
                          built.finetune_augment, device, log_child, progress, logged=logged,
                          transfer_encoder=transfer)
        interrupts.set_phase("while writing the report (the sweep is complete and logged)")
        timings |= {f"fit.{k}": v for k, v in sweep.timings.items()}
        if data.shifted:
            timings["shift_scoring"] = sweep.shift_seconds
        mlflow_metrics = {f"seconds.{k}": v for k, v in timings.items()}
        label_free = label_free_methods(cfg, registries)  # the report's label_free group
        table = summarize(sweep.results, label_free)
        val_table = summarize(sweep.val_results, label_free)
        shift_table = summarize_shift(sweep.shift_results, label_free) if data.shifted else None
        reference = reference_label(cfg.baselines)
        lower = frozenset(lower_is_better(registries.metrics, ev.metrics))
        hl = headline(table, ev.primary_metric, val_table, reference=reference,
                      lower_is_better=lower)
        best = _best_method(val_table, ev.primary_metric, lower)
        if hl.labels_to_match_full_baseline is not None:
            mlflow_metrics["labels_to_match_full_baseline"] = hl.labels_to_match_full_baseline
        tracking.log_metrics(parent_id, mlflow_metrics)
        tracking.set_tags(parent_id, {"sslcore.best_method": f"{best[0]}/{best[1]}",
                                      "sslcore.child_runs": str(sweep.child_runs)})
        best_model = write_parent_artifacts(
            cfg, registries, data, sweep, parent_id, encoder=encoder, device=device, best=best,
            tables=(table, val_table, shift_table), reference=reference, lower=lower,
            dropped=dropped)
        interrupts.fault_point("artifacts")  # the crash tests' hook
        raw = raw_input_for(cfg, registries, data)
        model_uri = tracking.log_best_model(best_model, data.labeled_x[:5],
                                            data.feature_names, data.class_names, raw)
        registered = tracking.record_best_model(parent_id, model_uri, cfg, best, sweep.results,
                                                sweep.val_results, raw and raw.limits)
    return Report(table, sweep.results, parent_id, exp_id, tracking.resolve_uri(cfg.tracking.uri),
                  cfg, hl, f"{best[0]}/{best[1]}", model_uri, sweep.labeled_counts, timings,
                  val_table, dropped, lower, shift_table, registered)
