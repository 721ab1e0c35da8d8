"""Contract tests for sslcore components, shipped for plugin authors.

Every registered component gets, for free and on tiny tensors: output shapes, a backward pass
with finite gradients, determinism under a fixed seed/generator, a params round-trip
(``model_dump`` -> ``model_validate``, unknown keys rejected) and pickling (in the spirit of
timm's ``tests/test_models.py``, which runs every registered model). Methods are fitted on a
tiny synthetic labeled set (both classes) and must return finite scores of the right shape,
leave ``ctx.encoder`` untouched, and, when label-free, ignore the labels. Metrics must give a
real number on tiny scores, the same twice.

A plugin's test file needs one test::

    import pytest
    from sslcore.testing import contract_cases, run_case

    @pytest.mark.parametrize("case", contract_cases("sslcore_my_vertical"), ids=str)
    def test_contract(case):
        run_case(case)

or, outside pytest, ``run_contract_tests(load_registries(), module_prefix="sslcore_my_vertical")``.
Image or sequence plugins pass their per-sample ``input_shape`` and a ``backbone`` that accepts
it, e.g. ``contract_cases("sslcore_satellite", input_shape=(13, 16, 16), backbone="vit_tiny")``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sslcore.testing.checks import (  # noqa: F401 - the contract tests' public names
    METHOD_KINDS,
    TINY_BUDGET,
    check_augmentation,
    check_backbone,
    check_dataset,
    check_method,
    check_metric,
    check_params,
    check_pretext_task,
    check_vertical,
    synthetic_classification,
    tiny_context,
)

@dataclass(frozen=True)
class ContractCase:
    """One contract check: a component, what it is checked with, and how."""

    kind: str
    name: str
    registries: Any = field(repr=False, compare=False)
    input_shape: tuple[int, ...] = (6,)
    backbone: str | None = None
    num_classes: int = 2

    def __str__(self) -> str:
        suffix = f"-{self.num_classes}cls" if self.kind in METHOD_KINDS else ""
        return f"{self.kind}:{self.name}{suffix}"


def contract_cases(module_prefix: str, registries: Any = None, *,
                   input_shape: Sequence[int] = (6,), backbone: str | None = None,
                   num_classes: Sequence[int] = (2, 3),
                   skip: Collection[str] = ()) -> list[ContractCase]:
    """Every component registered by modules under ``module_prefix``, as parametrizable cases.

    Args:
        module_prefix: top-level package of the plugin (e.g. ``"sslcore_fraud_transactions"``).
        registries: from :func:`sslcore.plugins.load_registries` (loaded when None).
        input_shape: per-sample shape of the tiny tensors.
        backbone: backbone used for pretext tasks and heads; default: ``"mlp"`` for 1-D
            shapes, else the first backbone the plugin registers.
        num_classes: task sizes methods are checked on.
        skip: component names not to check.
    """
    if registries is None:
        from sslcore.plugins import load_registries

        registries = load_registries()
    shape = tuple(int(d) for d in input_shape)
    mine = registries.components_of(module_prefix)
    if backbone is None:
        backbone = "mlp" if len(shape) == 1 else (mine.get("backbones") or [None])[0]
    cases = []
    for kind, names in sorted(mine.items()):
        for name in names:
            if name in skip:
                continue
            for c in (num_classes if kind in METHOD_KINDS else (2,)):
                cases.append(ContractCase(kind, name, registries, shape, backbone, c))
    return cases


def run_case(case: ContractCase) -> None:
    """Run the checks of one case; raises AssertionError naming the component."""
    reg = case.registries
    entry = reg.by_kind[case.kind].get(case.name)
    needs_backbone = case.kind in ("pretext_tasks", "heads")
    if needs_backbone and case.backbone is None:
        raise ValueError(f"{case}: pass backbone=<name> that accepts input_shape "
                         f"{case.input_shape}")
    bb = reg.backbones.get(case.backbone) if case.backbone else None
    if case.kind == "backbones":
        check_backbone(entry, case.input_shape)
    elif case.kind == "augmentations":
        check_augmentation(entry, case.input_shape)
    elif case.kind == "pretext_tasks":
        check_pretext_task(entry, bb, case.input_shape)
    elif case.kind in METHOD_KINDS:
        check_method(entry, backbone_entry=bb, input_shape=case.input_shape,
                     num_classes=case.num_classes, as_head=case.kind == "heads")
    elif case.kind == "datasets":
        check_dataset(entry)
    elif case.kind == "verticals":
        check_vertical(entry, reg)
    elif case.kind == "metrics":
        check_metric(entry)
    else:
        check_params(entry)


def run_contract_tests(registries: Any, module_prefix: str, **kwargs: Any) -> list[str]:
    """Run every contract case of ``module_prefix``; returns the case ids that passed.

    Raises:
        AssertionError: the first failing case, named in the message.
    """
    passed = []
    for case in contract_cases(module_prefix, registries, **kwargs):
        try:
            run_case(case)
        except AssertionError as exc:
            raise AssertionError(f"contract check {case} failed: {exc}") from exc
        passed.append(str(case))
    return passed
