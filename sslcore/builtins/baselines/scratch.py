"""The SSL arm's backbone trained from random weights on the labeled subset only.

The honest counterpart of the ``finetune`` head: the same architecture (``ctx.make_backbone()``),
the same training loop, budget and augmentations; the only difference is that the weights
start random instead of pretrained. Label-free preprocessing both arms share (the backbone's
normalizer, fitted on ``ctx.unlabeled`` when the backbone has one) is applied here too, so the
comparison measures what pretraining adds, not what standardization adds.

Example::

    base = Scratch(ScratchParams())
    base.fit(ctx)                          # ctx.encoder is ignored
    scores = base.predict_scores(x_test)
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from sslcore.contracts import FitContext
from sslcore.train.supervised import (
    Classifier,
    predict_scores,
    prepare_backbone,
    train_classifier,
)


def fresh_backbone(ctx: FitContext, fit_normalizer: bool = True) -> torch.nn.Module:
    """A randomly initialised backbone for a baseline, seeded by ``ctx.seed`` without touching
    the caller's RNG, its label-free normalizer fitted on the unlabeled pool."""
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(ctx.seed)  # the random init is part of the seed's draw
        backbone = ctx.make_backbone()
    # make_backbone() may already have fitted it on the same pool; fitting is idempotent.
    if fit_normalizer and not bool(getattr(backbone, "normalizer_fitted", False)):
        prepare_backbone(backbone, ctx.unlabeled)
    return backbone


class ScratchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fit_normalizer: bool = Field(True, description="fit the backbone's label-free normalizer "
                                 "on the unlabeled pool (as pretraining does)")


class Scratch:
    """A freshly initialised backbone + linear head, trained with :func:`train_classifier`.

    Args:
        params: a :class:`ScratchParams`.
    """

    uses_labels = True

    def __init__(self, params: ScratchParams | None = None) -> None:
        self.params = params or ScratchParams()
        self.model: Classifier | None = None
        self.device = torch.device("cpu")
        self.fit_info: dict[str, float] = {}  # steps run and the kept step, for the child run

    def fit(self, ctx: FitContext) -> None:
        backbone = fresh_backbone(ctx, fit_normalizer=self.params.fit_normalizer)
        self.device = ctx.device
        self.model = train_classifier(
            backbone, ctx.num_classes, ctx.x_train, ctx.y_train, ctx.x_val, ctx.y_val,
            ctx.budget, seed=ctx.seed, device=ctx.device, augment=ctx.augment)
        self.fit_info = self.model.fit_info

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("scratch: call fit() before predict_scores()")
        return predict_scores(self.model, x, self.device)
