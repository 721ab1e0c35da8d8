"""Remaining-useful-life regression on the pretrained encoder; its score ranks failure risk.

Where the labeled histories run to failure, every window has a remaining useful life (RUL: time
from its end to the failure), a richer target than "failure within the horizon". Following the
piecewise-linear RUL target common on C-MAPSS (Heimes, "Recurrent neural networks for
remaining useful life estimation", PHM 2008), the target is ``min(rul, cap)``: far from a
failure the exact RUL is neither knowable nor useful. Windows with no failure ahead in the
record count as ``cap`` when the record continues for at least ``cap`` after them (the machine
demonstrably ran that long), and are left out otherwise (censored).

A copy of the pretrained encoder plus a linear output is trained with mean squared error on
``target / cap`` (the encoder too unless ``freeze_backbone``), with the shared fine-tuning
budget and batches stratified by the binary label. Early stopping on the validation split by
AUPRC of the score (ties: validation MSE). The score is ``1 - predicted RUL / cap``: higher
means a sooner failure, so it is compared with the classifiers on the same metrics.

Needs ``ctx.meta_train["rul"]`` (and ``meta_val``) and a binary task, declared as
``requires_meta`` / ``binary_only``: on data without them (plain arrays with labels only)
``sslcore.data_fit`` drops the method before any work, with a note. ``horizon`` from the meta
sets the default cap (4 horizons). The fitted regression is kept in ``ctx.cache`` (keyed by
its params, the budget, the seed and the labeled rows; reused only for the same pretrained
encoder object, or from a fresh backbone, which the seed fixes), so ``rul_with_residuals`` and
``rul_with_levels_scratch`` in the same sweep reuse the regression of ``rul_regression`` and
``rul_regression_scratch`` instead of training it again.

The same regression from a randomly initialised backbone (``ctx.make_backbone()``) is the
baseline ``rul_regression_scratch``: the richer RUL target is label information both arms may
use, so only the starting weights differ.

Example::

    head = RULRegression(RULRegressionParams())
    head.fit(ctx)                      # ctx.encoder pretrained; ctx.meta_train["rul"] given
    scores = head.predict_scores(x_test)
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.sdk import (
    DataError,
    finetune_plan,
    fit_info,
    FitContext,
    fresh_backbone,
    require_encoder,
    selection_score,
    train_steps,
)
from sslcore_sensor_maintenance.event_metrics import DEFAULT_HORIZON


class RULRegressionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rul_cap: float | None = Field(None, gt=0, description="targets are min(rul, cap); default "
                                  "4 x the label horizon")
    freeze_backbone: bool = Field(False, description="train the output layer only")
    backbone_lr_scale: float = Field(1.0, gt=0, le=1.0)


class RULRegressionScratchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rul_cap: float | None = Field(None, gt=0, description="targets are min(rul, cap); default "
                                  "4 x the label horizon")


def rul_targets(meta: dict[str, np.ndarray], cap: float) -> tuple[np.ndarray, np.ndarray]:
    """(targets in [0, 1], usable-row mask) from ``meta['rul']`` (see the module docstring)."""
    rul = np.asarray(meta["rul"], dtype=np.float64)
    rul = np.where(np.isnan(rul), np.inf, rul)
    keep = np.ones(len(rul), dtype=bool)
    if "time_to_record_end" in meta:  # censored: usable only if the record ran on long enough
        keep = np.isfinite(rul) | (np.asarray(meta["time_to_record_end"], np.float64) >= cap)
    return (np.minimum(rul, cap) / cap).astype(np.float32), keep


class RULRegression:
    """Fine-tuned encoder + linear RUL output; score = 1 - RUL / cap.

    Args:
        params: a :class:`RULRegressionParams`.

    Raises:
        ConfigError: fitted without a pretrained encoder.
        DataError: no ``rul`` in ``ctx.meta_train``, a non-binary task, or no usable rows.
    """

    uses_labels = True
    name = "rul_regression"
    # What the data must hold (sslcore.data_fit drops the method, with a note, when it lacks it)
    requires_meta: tuple[str, ...] = ("rul",)
    binary_only = True

    def __init__(self, params: BaseModel | None = None) -> None:
        self.params = params or RULRegressionParams()
        self.model: nn.Module | None = None
        self.device = torch.device("cpu")
        self.cap = 0.0

    def _encoder(self, ctx: FitContext) -> nn.Module:
        return require_encoder(self.name, ctx)

    def fit(self, ctx: FitContext) -> None:
        if ctx.num_classes != 2:
            raise DataError(f"{self.name} scores 'failure within the horizon' (2 classes); "
                            f"this task has {ctx.num_classes}: remove it")
        if "rul" not in ctx.meta_train:
            raise DataError(f"{self.name} needs the remaining useful life of every labeled "
                            "window (labeled_meta['rul']: time to the next failure, inf if "
                            "none); this dataset has no run-to-failure histories: remove it")
        encoder = self._encoder(ctx)
        horizon = float(np.asarray(ctx.meta_train.get("horizon", [DEFAULT_HORIZON]))[0])
        self.cap = self.params.rul_cap or 4.0 * horizon
        target, keep = rul_targets(ctx.meta_train, self.cap)
        if not keep.any():
            raise DataError(f"{self.name}: no labeled window has a known remaining useful "
                            f"life (failure ahead, or at least {self.cap:g} of record after it)")
        self.device = ctx.device
        tag = self._reuse_tag(ctx, encoder)
        key = self._cache_key(ctx, tag) if tag is not None else None
        cached = ctx.cache.get(key) if key else None
        if cached is not None and cached[0] is tag:  # same fit already done this sweep
            self.model = cached[1]
            self.fit_info = getattr(self.model, "fit_info", {})
            return
        devices = [ctx.device] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(ctx.seed)
            model = nn.Sequential(copy.deepcopy(encoder), nn.Linear(encoder.embed_dim, 1))
            self.model = self._train(model.to(ctx.device), ctx, target, keep)
        if key:
            ctx.cache[key] = (tag, self.model)

    def _reuse_tag(self, ctx: FitContext, encoder: nn.Module) -> object:
        """What the regression starts from, for reuse through ``ctx.cache``: the sweep's
        pretrained encoder object, or None (another encoder: never shared)."""
        return encoder if encoder is ctx.encoder else None

    def _cache_key(self, ctx: FitContext, tag: object) -> str:
        """Key of this regression in ``ctx.cache``, so methods built on the same regression
        (rul_with_residuals, rul_with_levels_scratch) reuse the fit instead of repeating it."""
        rows = hashlib.sha1(np.ascontiguousarray(ctx.y_train).tobytes())
        rows.update(np.ascontiguousarray(ctx.meta_train["rul"], dtype=np.float64).tobytes())
        rows.update(repr((np.shape(ctx.x_train), len(ctx.y_val), id(ctx.augment))).encode())
        params = self.params.model_dump(include=set(RULRegressionParams.model_fields))
        start = "scratch" if tag is FRESH_BACKBONE else "pretrained"
        return (f"rul_regression:{start}:{params}:{ctx.budget.model_dump_json()}:seed={ctx.seed}:"
                f"rows={rows.hexdigest()}")

    def _train(self, model: nn.Sequential, ctx: FitContext, target: np.ndarray,
               keep: np.ndarray) -> nn.Sequential:
        p = RULRegressionParams.model_validate(
            self.params.model_dump(include=set(RULRegressionParams.model_fields)))
        budget = ctx.budget
        x = torch.as_tensor(np.ascontiguousarray(ctx.x_train[keep]), dtype=torch.float32)
        t = torch.as_tensor(target[keep])
        y = np.asarray(ctx.y_train)[keep]
        backbone, out = model[0], model[1]
        for param in backbone.parameters():
            param.requires_grad_(not p.freeze_backbone)
        groups = [{"params": list(out.parameters()), "lr": budget.lr}]
        if not p.freeze_backbone:
            groups.append({"params": list(backbone.parameters()),
                           "lr": budget.lr * p.backbone_lr_scale})
        opt = torch.optim.AdamW(groups, lr=budget.lr, weight_decay=budget.weight_decay)
        rng = np.random.default_rng(ctx.seed)
        gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed)

        def train_mode() -> None:
            model.train()
            if p.freeze_backbone:
                backbone.eval()

        def step(idx: np.ndarray) -> torch.Tensor:
            xb = x[idx].to(ctx.device)
            if ctx.augment is not None:
                xb = ctx.augment(xb, gen)
            loss = (model(xb).squeeze(1).float() - t[idx].to(ctx.device)).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        def evaluate() -> tuple[tuple[float, ...] | None, dict[str, float]]:
            # No validation rows: nothing to select with, so the latest weights are kept.
            return (self._validation_key(model, ctx) if len(ctx.y_val) else None), {}

        # The step plan of the classifiers (finetune, scratch) for the same usable rows.
        record = train_steps(model, finetune_plan(budget, len(y)), y, rng, step=step,
                             evaluate=evaluate, patience=budget.patience, train_mode=train_mode)
        self.fit_info = model.fit_info = fit_info(record)  # on the model too: cached fits
        for param in backbone.parameters():
            param.requires_grad_(True)
        return model.eval()

    def _validation_key(self, model: nn.Module, ctx: FitContext) -> tuple[float, ...]:
        if len(ctx.y_val) == 0:
            return (0.0,)  # nothing to select with: keep the latest epoch
        scores = self._scores(model, ctx.x_val)
        key: tuple[float, ...] = ()
        auprc = selection_score(np.asarray(ctx.y_val), scores, 2)
        if auprc is not None:
            key += (round(auprc, 6),)
        if "rul" in ctx.meta_val:
            target, keep = rul_targets(ctx.meta_val, self.cap)
            if keep.any():
                key += (-float(np.mean((1 - scores[keep] - target[keep]) ** 2)),)
        return key or (0.0,)

    @torch.no_grad()
    def _scores(self, model: nn.Module, x: np.ndarray, batch: int = 2048) -> np.ndarray:
        model.eval()
        xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
        preds = [model(xt[i:i + batch].to(self.device)).squeeze(1).float().cpu()
                 for i in range(0, len(xt), batch)]
        pred = torch.cat(preds).numpy() if preds else np.empty(0, dtype=np.float32)
        return 1.0 - pred.astype(np.float64)  # unclipped: no ties beyond the cap

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit() before predict_scores()")
        return self._scores(self.model, x)


# Reuse tag of a regression from a fresh backbone: seeded by ctx.seed, which the key holds.
FRESH_BACKBONE = "fresh backbone"


class FromScratch:
    """Mixin for the baseline arm's RUL methods: the regression starts from a randomly
    initialised backbone (its label-free normalizer fitted on the unlabeled pool, as for
    ``scratch``), shared through ``ctx.cache`` by every such method of the same seed."""

    def _encoder(self, ctx: FitContext) -> nn.Module:
        return fresh_backbone(ctx)

    def _reuse_tag(self, ctx: FitContext, encoder: nn.Module) -> object:
        return FRESH_BACKBONE


class RULRegressionScratch(FromScratch, RULRegression):
    """The baseline: the same RUL regression from a randomly initialised backbone."""

    name = "rul_regression_scratch"
