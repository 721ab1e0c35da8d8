"""Checks of a validated config against the registries: every component and metric name
resolves, every params block validates (shifted domains' overrides included); all mistakes
reported in one error."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sslcore.config import ComponentRef, ExperimentConfig, deep_merge, format_validation_error
from sslcore.errors import ConfigError, UnknownComponentError


def _accepts_init(factory: Any) -> bool:
    """True when a backbone factory takes ``init=`` (an ``init`` parameter or ``**kwargs``).
    Here, not in sslcore.init: configs never import the loaders (nor, through them, MLflow)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "init" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def check_components(cfg: ExperimentConfig, registries: Any) -> None:
    """Resolve every component and metric name and validate every params block; errors carry
    the dotted path. Every mistake found is reported in one ConfigError (one per line), not
    only the first: a config with three typos takes one round, not three."""
    problems: list[str] = []  # "path: what is wrong", one per mistake
    refs: list[tuple[str, str, ComponentRef]] = [
        ("dataset", "datasets", cfg.dataset), ("backbone", "backbones", cfg.backbone),
        ("pretext", "pretext_tasks", cfg.pretext)]
    refs += [(f"augmentations[{i}]", "augmentations", r) for i, r in enumerate(cfg.augmentations)]
    refs += [(f"finetune_augmentations[{i}]", "augmentations", r)
             for i, r in enumerate(cfg.finetune_augmentations or [])]
    refs += [(f"heads[{i}]", "heads", r) for i, r in enumerate(cfg.heads)]
    refs += [(f"baselines[{i}]", "baselines", r) for i, r in enumerate(cfg.baselines)]
    known: dict[str, Any] = {}  # path -> registry entry, for the checks that need one
    for path, kind, ref in refs:
        try:
            entry = known[path] = getattr(registries, kind).get(ref.name)
        except UnknownComponentError as exc:
            problems.append(f"{path}.name: {exc}")
            continue
        problems += _params_problems(entry.params, ref.params, f"{path}.params")
    if "dataset" in known:
        for name, override in cfg.dataset.shifted.items():  # each domain: the loader's params
            problems += _params_problems(known["dataset"].params,
                                         deep_merge(cfg.dataset.params, override),
                                         f"dataset.shifted.{name}")
    if cfg.backbone.init is not None and "backbone" in known and not _accepts_init(
            known["backbone"].factory):
        able = [n for n in registries.backbones.names()
                if _accepts_init(registries.backbones.get(n).factory)]
        problems.append(f"backbone.init: backbone {cfg.backbone.name!r} cannot load "
                        "pretrained weights (its factory takes no init argument); remove "
                        f"backbone.init or pick a backbone that does ({', '.join(able)})")
    labels = [r.label for r in cfg.heads + cfg.baselines]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        problems.append(f"heads/baselines: method names {dupes} appear twice; give one an alias")
    ev = cfg.evaluation
    for i, m in enumerate(ev.metrics):
        try:
            registries.metrics.get(m)
        except UnknownComponentError as exc:
            problems.append(f"evaluation.metrics[{i}]: {exc}")
    if ev.primary_metric not in ev.metrics:
        problems.append(f"evaluation.primary_metric: {ev.primary_metric!r} is not in "
                        f"evaluation.metrics {ev.metrics}")
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} mistakes in the config:\n"
                          + "\n".join(f"  {p}" for p in problems))


def _params_problems(params_model: Any, params: dict[str, Any], prefix: str) -> list[str]:
    """One "dotted.path: message" per field error of ``params`` against ``params_model``."""
    try:
        params_model.model_validate(params)
    except ValidationError as exc:
        return [line.strip() for line in
                format_validation_error(exc, prefix=prefix).splitlines()[1:]]
    return []
