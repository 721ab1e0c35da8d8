"""Pretraining's optimizer and learning-rate schedule: the backbone and the pretext's heads.

Two parameter groups, ``task.backbone``'s trainable parameters and everything else the pretext
task trains (projectors, predictors, decoders), each with its own factor of the peak rate.
Without ``backbone.init`` both follow :func:`warmup_cosine` with ``pretrain.warmup_steps``.

With ``backbone.init`` the run continues from pretrained weights, where a full-rate start
overwrites what the weights know before SSL on the new domain can add to it (Azizi et al.,
"Robust and Efficient Medical Imaging with Self-Supervision" (REMEDIS), 2022; Reed et al.,
"Self-Supervised Pretraining Improves Self-Supervised Pretraining", WACV 2022; Gururangan et
al., "Don't Stop Pretraining", ACL 2020), so:

- the backbone trains at ``lr x pretrain.init_lr_scale``, the heads at ``lr``;
- with ``warmup_steps: 0``, a linear warm-up over ``init_warmup_fraction`` of the planned steps;
- for the first ``head_only_steps`` the backbone's factor is 0 (the heads are random: their
  first gradients are noise that would wreck the pretrained features), then its own warm-up
  and cosine start. A zero rate, not ``requires_grad_(False)``, so DDP's gradient buckets stay
  the same on every step. The loop keeps the backbone in eval mode meanwhile (its BatchNorm
  running statistics are the pretrained ones until it trains).

Every factor is a pure function of the step, so a resumed run follows the same schedule.

Example::

    schedule = PretrainSchedule.plan(cfg, total=1000, from_init=True)
    opt, sched = build_optimizer(task, cfg, schedule, fused=None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch

from sslcore.config import PretrainConfig
from sslcore.contracts import PretextTask

# head_only_steps: None -> this fraction of the planned steps. Measured on a tiny table
# (BENCHMARKS.md, continued pretraining): the lower backbone rate is what keeps a good
# init's probe score; the heads-only start alone did not, and costs 5% of the budget.
HEAD_ONLY_FRACTION = 0.05


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """LR factor of optimizer step ``step`` (0-based): linear warmup, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def backbone_factor(step: int, *, head_only: int, scale: float, warmup: int,
                    total: int) -> float:
    """The backbone's LR factor: 0 for ``head_only`` steps, then ``scale`` x its own
    warm-up and cosine over the remaining steps."""
    if step < head_only:
        return 0.0
    return scale * warmup_cosine(step - head_only, warmup, total - head_only)


@dataclass(frozen=True)
class PretrainSchedule:
    """The planned factors of one run: ``total`` steps, ``warmup`` steps, the backbone frozen
    (rate 0, eval mode) for ``head_only`` steps and then at ``backbone_scale`` x the rate."""

    total: int
    warmup: int
    head_only: int = 0
    backbone_scale: float = 1.0

    @classmethod
    def plan(cls, cfg: PretrainConfig, total: int, from_init: bool) -> PretrainSchedule:
        """The schedule of ``cfg`` for ``total`` steps; ``from_init``: ``backbone.init`` is
        set (otherwise the init_* and head_only_steps fields do nothing)."""
        if not from_init:
            return cls(total, cfg.warmup_steps)
        warmup = cfg.warmup_steps or math.ceil(cfg.init_warmup_fraction * total)
        head_only = (round(HEAD_ONLY_FRACTION * total) if cfg.head_only_steps is None
                     else cfg.head_only_steps)
        return cls(total, warmup, min(head_only, total), cfg.init_lr_scale)

    def backbone_frozen(self, step: int) -> bool:
        """True while optimizer step ``step`` (0-based) leaves the backbone as it is."""
        return step < self.head_only

    @property
    def quiet_steps(self) -> int:
        """Steps before the backbone's own warm-up ends (collapse warnings wait for them)."""
        return self.head_only + self.warmup

    def head_lambda(self) -> partial[float]:
        return partial(warmup_cosine, warmup=self.warmup, total=self.total)

    def backbone_lambda(self) -> partial[float]:
        return partial(backbone_factor, head_only=self.head_only, scale=self.backbone_scale,
                       warmup=self.warmup, total=self.total)


def build_optimizer(task: PretextTask, cfg: PretrainConfig, schedule: PretrainSchedule, *,
                    fused: bool | None) -> tuple[torch.optim.Optimizer,
                                                 torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the backbone group then the heads group (empty groups left out), at
    ``cfg.effective_lr``, and a LambdaLR with one factor per group."""
    backbone_ids = {id(p) for p in task.backbone.parameters()}
    trainable = [p for p in task.parameters() if p.requires_grad]
    backbone = [p for p in trainable if id(p) in backbone_ids]
    heads = [p for p in trainable if id(p) not in backbone_ids]
    groups, lambdas = [], []
    for params, fn in ((backbone, schedule.backbone_lambda()), (heads, schedule.head_lambda())):
        if params:
            groups.append({"params": params, "name": "backbone" if params is backbone
                           else "heads"})
            lambdas.append(fn)
    opt = torch.optim.AdamW(groups, lr=cfg.effective_lr, weight_decay=cfg.weight_decay,
                            fused=fused)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambdas)


def group_lrs(opt: torch.optim.Optimizer) -> dict[str, float]:
    """The current rate of each named group: ``{"backbone": .., "heads": ..}``."""
    return {g.get("name", str(i)): float(g["lr"]) for i, g in enumerate(opt.param_groups)}
