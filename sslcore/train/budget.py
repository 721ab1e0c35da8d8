"""Training budgets in optimizer steps that follow the data: a floor, a cap and a preset.

Epoch counts sized for one dataset starve a smaller one (25 SimCLR epochs over 1,200 images
are 100 steps). So a budget is planned in optimizer steps: ``epochs x steps per epoch``,
raised to a floor (``min_steps``) and lowered to a cap (``max_steps``), both scaled by the
experiment's preset (:data:`BUDGET_SCALE`); ``steps`` fixes the count exactly. As in Hugging
Face ``Trainer`` (``max_steps``) and timm (``--sched-on-updates``), the step is the unit.

Both functions are pure: the same config, rows and preset give the same plan, so both arms of
a comparison get identical budgets and a resumed pretraining run the same data order.

Example::

    plan = plan_pretrain_steps(PretrainConfig(epochs=25, min_steps=1000), 1200, 1, "standard")
    plan.total, plan.reason    # 1000, 'floor: pretrain.min_steps 1000 x standard'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sslcore.errors import DataError

# The one place the presets are defined: each multiplies every floor (min_steps) and cap
# (max_steps), never an exact `steps`. quick: demos and smoke tests; thorough: when the result
# matters more than the hours (4x the standard floor and cap).
BUDGET_SCALE: dict[str, float] = {"quick": 0.25, "standard": 1.0, "thorough": 4.0}
# Rows per rank in each micro-batch below which a batch is not shrunk (BatchNorm, contrastive
# pairs need at least two).
MIN_ROWS_PER_RANK = 2


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps a run takes, and why (``reason``, a sentence for logs)."""

    total: int
    steps_per_epoch: int
    batch_size: int
    reason: str
    n_rows: int
    budget: str = "standard"
    shrunk_from: int | None = None  # the configured batch, when the pool was smaller

    def summary(self) -> str:
        """``1000 optimizer steps (floor: ...; 4 steps/epoch over 1,200 rows, batch 256)``."""
        batch = f"batch {self.batch_size}"
        if self.shrunk_from is not None:
            batch += f", shrunk from {self.shrunk_from} to fit the pool"
        return (f"{self.total:,} optimizer steps ({self.reason}; {self.steps_per_epoch:,} "
                f"steps/epoch over {self.n_rows:,} rows, {batch})")


@dataclass(frozen=True)
class FinetunePlan(StepPlan):
    """A fine-tuning plan: also when to evaluate and the first step early stopping may stop."""

    eval_every: int = 1
    stop_after: int = 0


def scale_of(budget: str) -> float:
    try:
        return BUDGET_SCALE[budget]
    except KeyError:
        raise ValueError(f"budget: {budget!r} is not a preset; choose from "
                         f"{sorted(BUDGET_SCALE)}") from None


def _scaled(n: int, scale: float) -> int:
    return int(round(n * scale))


def resolve_total(cfg: Any, section: str, steps_per_epoch: int,
                  budget: str) -> tuple[int, str, int]:
    """(total steps, reason, scaled floor) of ``cfg`` (steps, epochs, min_steps, max_steps).

    ``section`` names the config block in the reason (``pretrain``, ``finetune``). The cap wins
    over the floor when both bind.
    """
    scale = scale_of(budget)
    times = f" x {budget}" + (f" {scale:g}" if scale != 1 else "")
    floor = _scaled(cfg.min_steps, scale)
    if cfg.steps is not None:
        return cfg.steps, f"{section}.steps {cfg.steps}", floor
    total = cfg.epochs * steps_per_epoch
    reason = f"{section}.epochs {cfg.epochs} x {steps_per_epoch} steps/epoch"
    if total < floor:
        total = floor
        reason = f"floor: {section}.min_steps {cfg.min_steps}{times}" + \
            (f" = {floor}" if scale != 1 else "")
    if cfg.max_steps is not None:
        cap = max(1, _scaled(cfg.max_steps, scale))
        if total > cap:
            total = cap
            reason = f"cap: {section}.max_steps {cfg.max_steps}{times}" + \
                (f" = {cap}" if scale != 1 else "")
    return total, reason, floor


def pretrain_batch(cfg: Any, n_rows: int, world: int) -> int:
    """The global batch pretraining uses: ``cfg.batch_size``, or, for a smaller pool, the
    largest multiple of world size x ``grad_accum_steps`` that fits (deterministic in the
    config, pool size and world size, so a resumed run keeps its batches).

    Raises:
        DataError: the pool cannot fill even the smallest batch (2 rows per rank).
    """
    if n_rows >= cfg.batch_size:
        return int(cfg.batch_size)
    unit = world * cfg.grad_accum_steps
    smallest = MIN_ROWS_PER_RANK * unit
    if n_rows < smallest:
        cap = cfg.max_unlabeled
        note = f" (pretrain.max_unlabeled={cap})" if cap is not None and n_rows >= cap else ""
        what = "is empty" if n_rows == 0 else f"has {n_rows} row{'s' * (n_rows != 1)}{note}"
        raise DataError(
            f"the unlabeled pool {what}: pretraining needs at least {smallest} rows "
            f"({MIN_ROWS_PER_RANK} per rank x world size {world} x pretrain.grad_accum_steps "
            f"{cfg.grad_accum_steps}); add unlabeled rows")
    return n_rows // unit * unit


def plan_pretrain_steps(cfg: Any, n_rows: int, world: int, budget: str = "standard", *,
                        steps_per_epoch: Callable[[int], int] | None = None) -> StepPlan:
    """Plan a pretraining run over ``n_rows`` unlabeled rows on ``world`` ranks.

    Args:
        cfg: a :class:`~sslcore.config.PretrainConfig`.
        n_rows: rows in the pool after ``max_unlabeled``.
        budget: the preset (:data:`BUDGET_SCALE`) scaling ``min_steps`` and ``max_steps``.
        steps_per_epoch: global batch -> steps per epoch, when the pool decides it (a
            sharded Parquet pool); default ``n_rows // batch`` (the last partial batch is
            dropped).

    Raises:
        DataError: the pool cannot fill the smallest batch, or gives no step per epoch.
    """
    batch = pretrain_batch(cfg, n_rows, world)
    per_epoch = steps_per_epoch(batch) if steps_per_epoch is not None else n_rows // batch
    if per_epoch < 1:
        raise DataError(f"the unlabeled pool ({n_rows} rows over {world} ranks) gives no full "
                        f"batch of {batch} per epoch; add rows or lower pretrain.batch_size")
    total, reason, _ = resolve_total(cfg, "pretrain", per_epoch, budget)
    return StepPlan(total, per_epoch, batch, reason, n_rows, budget,
                    None if batch == cfg.batch_size else int(cfg.batch_size))


def plan_finetune_steps(cfg: Any, n_train: int, budget: str = "standard") -> FinetunePlan:
    """Plan supervised training on ``n_train`` labeled rows (the same for both arms).

    Batches are near-equal chunks of at most ``cfg.batch_size`` rows, so an epoch is
    ``ceil(n_train / batch_size)`` steps. Evaluation runs every ``cfg.eval_every`` steps
    (default: once an epoch, at least 10 steps apart) and at the last step; early stopping may
    stop only once the scaled floor has been trained (``stop_after``), so a handful of noisy
    validation rows cannot end training after a few evaluations.

    Raises:
        DataError: ``n_train`` is 0.
    """
    if n_train < 1:
        raise DataError("the training split is empty: fine-tuning needs labeled rows")
    batch = min(int(cfg.batch_size), n_train)
    per_epoch = math.ceil(n_train / batch)
    total, reason, floor = resolve_total(cfg, "finetune", per_epoch, budget)
    eval_every = cfg.eval_every if cfg.eval_every is not None else max(per_epoch, 10)
    return FinetunePlan(total, per_epoch, batch, reason, n_train, budget, None,
                        eval_every=eval_every, stop_after=min(floor, total))
