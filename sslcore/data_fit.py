"""Fit a vertical's recipe to the data at hand: drop what the data cannot feed, and say so.

A recipe is written for its built-in data, which may carry per-row metadata (a sensor fleet's
remaining useful life, machine and failure ids) and a binary task; a user's own arrays with
labels only carry neither. Rather than fail mid-sweep, components declare what they need, and
:func:`fit_config_to_data` (called by ``run_experiment`` before any work) drops each method and
metric whose needs the data lacks, warns (:class:`DataFitWarning`) naming it and why, and
records it in the data card's notes: MLflow params ``data.dropped.method.<label>`` and
``data.dropped.metric.<name>`` of the parent run.

What components declare (all optional):

- methods (heads, baselines), as class attributes of the registered factory:
  ``requires_meta: tuple[str, ...]`` (``SSLData.labeled_meta`` keys ``fit`` reads),
  ``binary_only: bool`` (scores one positive class) and ``min_channels: int`` (size of the
  per-sample first axis: a series' sensors, an image's bands);
- metrics, as fields of the registered :class:`~sslcore.contracts.Metric`: ``needs_meta``
  (``test_meta`` keys) and ``binary_only``;
- backbones and pretext tasks: a classmethod ``describe_input(params, input_shape) -> str``
  that says how they read inputs of this shape (e.g. a series padded to the patch grid) and
  raises DataError when they cannot (a series too short); recorded as ``data.input.backbone``
  and ``data.input.pretext``.

What the user relies on is never dropped silently: losing the primary metric, every head, or
every baseline is a ConfigError naming the field.

A vertical may also check that the data fit its recipe's assumptions (e.g. the fraud recipe's
behavioural features need user and time columns): ``VerticalRecipe.data_checks(cfg, data)``
returns warnings, each a :class:`DataFitWarning` and a data-card note (MLflow param
``data.fit_check.<n>``, a section of comparison.md), and raises DataError where the vertical
cannot work at all (:func:`recipe_checks`).

Example::

    cfg, data = fit_config_to_data(cfg, registries, data)   # a copy of each; notes added
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

from sslcore.config import ComponentRef, ExperimentConfig
from sslcore.data.ssl_data import SSLData
from sslcore.errors import ConfigError, DataError

if TYPE_CHECKING:
    from sslcore.contracts import Metric

# A method to suggest when every configured one of an arm is dropped (core components).
_FALLBACK = {"heads": "finetune or linear_probe", "baselines": "scratch"}


class DataFitWarning(UserWarning):
    """A method or metric of the config was dropped because the data cannot feed it."""


def method_gaps(factory: Any, data: SSLData) -> list[str]:
    """Why the method ``factory`` builds cannot run on ``data``: empty when it can."""
    gaps = []
    missing = [k for k in getattr(factory, "requires_meta", ()) if k not in data.labeled_meta]
    if missing:
        gaps.append(f"needs labeled_meta {missing}, which these data do not carry")
    if getattr(factory, "binary_only", False) and data.num_classes != 2:
        gaps.append(f"scores binary tasks only; these data have {data.num_classes} classes")
    need, have = int(getattr(factory, "min_channels", 1)), int(data.input_shape[0])
    if have < need:
        gaps.append(f"needs at least {need} channels per sample; these data have {have}")
    return gaps


def metric_gaps(metric: Metric, data: SSLData, *, primary: bool = False) -> list[str]:
    """Why ``metric`` cannot be computed on ``data``: empty when it can. The primary metric is
    also computed on the validation split, so it needs the labeled rows' meta too."""
    gaps = []
    splits = [("test_meta", data.test_meta)] + ([("labeled_meta", data.labeled_meta)]
                                                if primary else [])
    for split, meta in splits:
        missing = [k for k in metric.needs_meta if k not in meta]
        if missing:
            gaps.append(f"needs {split} {missing}, which these data do not carry")
    if metric.binary_only and data.num_classes != 2:
        gaps.append(f"is for binary tasks only; these data have {data.num_classes} classes")
    return gaps


def recipe_checks(cfg: ExperimentConfig, registries: Any, data: SSLData) -> list[str]:
    """The vertical recipe's ``data_checks(cfg, data)``: its warnings, each also warned as a
    :class:`DataFitWarning`; empty when the recipe declares none.

    Raises:
        DataError: the vertical cannot work on these data (the recipe's reason, prefixed with
            the vertical's name).
    """
    verticals = getattr(registries, "verticals", None)
    if verticals is None or cfg.vertical not in verticals:
        return []
    check = getattr(verticals.get(cfg.vertical).build(), "data_checks", None)
    if check is None:
        return []
    try:
        found = [str(w) for w in check(cfg, data)]
    except DataError as exc:
        raise DataError(f"the {cfg.vertical} vertical cannot work on these data: {exc}") from None
    for text in found:
        warnings.warn(f"{cfg.vertical}: {text}", DataFitWarning, stacklevel=3)
    return found


def fit_check_markdown(notes: dict[str, Any]) -> str:
    """The recipe's data-check warnings recorded in the data card ``notes``, as a
    comparison.md section (empty without any)."""
    found = [v for k, v in notes.items() if str(k).startswith("fit_check.")]
    if not found:
        return ""
    lines = ["", "## Where these data do not fit the recipe", ""]
    return "\n".join(lines + [f"- {text}" for text in found]) + "\n"


def _input_notes(cfg: ExperimentConfig, registries: Any, data: SSLData) -> dict[str, str]:
    """``describe_input`` of the backbone and pretext task; raises their DataError."""
    notes = {}
    for kind, ref, registry in (("backbone", cfg.backbone, registries.backbones),
                                ("pretext", cfg.pretext, registries.pretext_tasks)):
        entry = registry.get(ref.name)
        describe = getattr(entry.factory, "describe_input", None)
        if describe is not None:
            notes[f"input.{kind}"] = describe(entry.params.model_validate(ref.params),
                                              data.input_shape)
    return notes


def _kept_methods(cfg: ExperimentConfig, registries: Any, data: SSLData,
                  dropped: dict[str, str]) -> dict[str, list[ComponentRef]]:
    kept = {}
    for field in ("heads", "baselines"):
        refs: list[ComponentRef] = getattr(cfg, field)
        registry = getattr(registries, field)
        reasons = {r.label: method_gaps(registry.get(r.name).factory, data) for r in refs}
        kept[field] = [r for r in refs if not reasons[r.label]]
        if refs and not kept[field]:
            why = "; ".join(f"{label} {'; '.join(g)}" for label, g in reasons.items())
            raise ConfigError(f"{field}: none can run on these data ({why}); add one that "
                              f"can, such as {_FALLBACK[field]}")
        dropped |= {f"method.{label}": "; ".join(g) for label, g in reasons.items() if g}
    return kept


def fit_config_to_data(cfg: ExperimentConfig, registries: Any,
                       data: SSLData) -> tuple[ExperimentConfig, SSLData]:
    """``(cfg, data)`` without the methods and metrics ``data`` cannot feed, and with notes.

    Returns copies: the config without what was dropped; the data (same arrays) whose card
    notes record each drop and how the backbone and pretext task read the input.

    Raises:
        DataError: the vertical's ``data_checks`` say it cannot work on these data, or the
            backbone or pretext task cannot read inputs of this shape.
        ConfigError: the primary metric, every head or every baseline would be dropped.
    """
    checks = recipe_checks(cfg, registries, data)
    notes: dict[str, Any] = {f"fit_check.{i}": text for i, text in enumerate(checks, 1)}
    notes |= _input_notes(cfg, registries, data)
    dropped: dict[str, str] = {}
    kept = _kept_methods(cfg, registries, data, dropped)
    ev = cfg.evaluation
    metric = {m: registries.metrics.get(m).build() for m in {*ev.metrics, ev.primary_metric}}
    primary_gaps = metric_gaps(metric[ev.primary_metric], data, primary=True)
    if primary_gaps:
        usable = [m for m in ev.metrics if not metric_gaps(metric[m], data, primary=True)]
        raise ConfigError(f"evaluation.primary_metric: {ev.primary_metric!r} "
                          f"{'; '.join(primary_gaps)}; choose one that these data support, "
                          f"e.g. {usable or ['auprc']}")
    metrics = []
    for m in ev.metrics:
        gaps = metric_gaps(metric[m], data)
        if gaps:
            dropped[f"metric.{m}"] = "; ".join(gaps)
        else:
            metrics.append(m)
    for key, why in dropped.items():
        kind, name = key.split(".", 1)
        warnings.warn(f"{kind} {name!r} dropped: it {why}", DataFitWarning, stacklevel=2)
    notes |= {f"dropped.{k}": v for k, v in dropped.items()}
    cfg = cfg.model_copy(update={**kept, "evaluation": ev.model_copy(update={"metrics": metrics})})
    return cfg, dataclasses.replace(data, notes={**data.notes, **notes})
