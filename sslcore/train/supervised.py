"""The one supervised training loop shared by the fine-tuning head and the from-scratch baseline.

Both arms of a comparison call :func:`train_classifier` with the same
:class:`~sslcore.config.FinetuneConfig`, so they get the same optimizer, loss, batches,
augmentations, step plan and early-stopping rule; only the starting weights differ.

Few-label rules, applied identically to both arms:

- class-balanced cross-entropy (weights ``n / (n_classes * count)``) and stratified batches
  (every batch holds the training set's class mix), so 3 positives among 500 rows still count;
- a budget in optimizer steps (:func:`sslcore.train.budget.plan_finetune_steps`): epochs, but
  at least ``finetune.min_steps`` (x the preset), so a 20-row subset gets more than a handful
  of updates (the data is re-shuffled for every pass);
- early stopping on the validation split, checked every ``eval_every`` steps: AUPRC for
  binary tasks, accuracy for multi-class, ties broken by the class-balanced validation loss; a
  validation split holding a single class falls back to that loss alone. It never stops
  before the floor. The best weights are restored at the end.

Example::

    model = train_classifier(backbone, 2, x_tr, y_tr, x_va, y_va, FinetuneConfig(),
                             seed=0, device=torch.device("cpu"))
    scores = predict_scores(model, x_test, torch.device("cpu"))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslcore.contracts import Augmentation
from sslcore.errors import DataError
from sslcore.train.budget import FinetunePlan, plan_finetune_steps
from sslcore.train.layer_decay import layer_decay_groups


class Classifier(nn.Module):
    """A backbone with a linear head; ``forward`` returns logits ``(N, num_classes)``.

    Use :func:`predict_scores` for the scores the metrics expect.
    """

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(int(backbone.embed_dim), num_classes)
        self.num_classes = num_classes
        # Filled by train_classifier: one dict per validation check (step, train_loss,
        # val_score, val_loss), the optimizer steps run and the step of the kept weights.
        self.history: list[dict[str, float | None]] = []
        self.steps = 0
        self.best_step: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @property
    def fit_info(self) -> dict[str, float]:
        """What the sweep logs next to ``fit_seconds`` (see :func:`fit_info`)."""
        return fit_info(self)


def prepare_backbone(backbone: nn.Module, unlabeled: np.ndarray) -> nn.Module:
    """Fit the backbone's label-free normalizer on the unlabeled pool, if it has one."""
    fit = getattr(backbone, "fit_normalizer", None)
    if callable(fit):
        fit(unlabeled)
    return backbone


def class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Balanced weights ``n / (n_present_classes * count)``; absent classes get weight 1."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = max(int((counts > 0).sum()), 1)
    return np.where(counts > 0, len(y) / (present * np.maximum(counts, 1)), 1.0)


def stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation that spreads every class evenly through the order (random phase)."""
    keys = np.empty(len(y))
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        keys[idx] = (np.arange(len(idx)) + rng.uniform(size=len(idx))) / len(idx)
    return np.argsort(keys, kind="stable")


def epoch_batches(y: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One pass over ``y`` in stratified batches of near-equal size (at most ``batch_size``)."""
    n_chunks = math.ceil(len(y) / min(batch_size, len(y)))
    return np.array_split(stratified_order(y, rng), n_chunks)


def batch_stream(y: np.ndarray, batch_size: int,
                 rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Stratified batches forever: pass after pass, each re-shuffled."""
    while True:
        yield from epoch_batches(y, batch_size, rng)


def selection_score(y: np.ndarray, scores: np.ndarray, num_classes: int) -> float | None:
    """Validation metric used for model selection, or None when it is undefined.

    Binary: AUPRC of the positive class (needs both classes). Multi-class: accuracy (needs two
    classes present).
    """
    if len(y) == 0 or len(np.unique(y)) < 2:
        return None
    if num_classes == 2:
        from sklearn.metrics import average_precision_score

        return float(average_precision_score(y, scores if scores.ndim == 1 else scores[:, 1]))
    return float((scores.argmax(axis=1) == y).mean())


def balanced_log_loss(y: np.ndarray, probs: np.ndarray, num_classes: int) -> float:
    """Class-balanced cross-entropy of probabilities ``(N, C)`` (each class weighs the same)."""
    w = class_weights(y, num_classes)[y]
    p = np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)
    return float(-(w * np.log(p)).sum() / w.sum())


def _as_float_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.float()
    arr = np.asarray(x, dtype=np.float32)
    # Arrays from polars/Arrow are read-only; torch wants to own writable memory.
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


@torch.no_grad()
def _batched(fn: Any, x: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    starts = range(0, len(x), batch_size) if len(x) else [0]  # empty input: right width
    return torch.cat([fn(x[i:i + batch_size].to(device)).float().cpu() for i in starts])


def embed(backbone: nn.Module, x: np.ndarray, device: torch.device,
          batch_size: int = 2048) -> np.ndarray:
    """Embeddings ``(N, embed_dim)`` of a frozen backbone (eval mode, no grad), as float32.

    The backbone's train/eval mode is restored afterwards.
    """
    was_training = backbone.training
    backbone.eval()
    try:
        return _batched(backbone, _as_float_tensor(x), device, batch_size).numpy()
    finally:
        backbone.train(was_training)


def _probs(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=1).numpy()


def proba_to_scores(proba: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Scores as the metrics expect from an estimator's ``predict_proba`` over ``classes``.

    Binary: the positive-class column (N,). Multi-class: (N, num_classes), with zero columns
    for classes the estimator never saw in training.
    """
    full = np.zeros((len(proba), num_classes), dtype=np.float64)
    full[:, np.asarray(classes, dtype=np.int64)] = proba
    return full[:, 1] if num_classes == 2 else full


def predict_scores(model: nn.Module, x: np.ndarray, device: torch.device,
                   batch_size: int = 2048) -> np.ndarray:
    """Scores as the metrics expect: positive-class probability (N,) for binary tasks, class
    probabilities (N, C) otherwise (float64, so extreme scores keep their order)."""
    model.eval()
    probs = _probs(_batched(model, _as_float_tensor(x), device, batch_size))
    return probs[:, 1] if probs.shape[1] == 2 else probs


def train_classifier(backbone: nn.Module, num_classes: int, x_train: np.ndarray,
                     y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, budget: Any, *,
                     seed: int, device: torch.device, augment: Augmentation | None = None,
                     freeze_backbone: bool = False, backbone_lr_scale: float = 1.0,
                     layer_decay: float | None = None) -> Classifier:
    """Train a linear head (and, unless frozen, the backbone) on one labeled subset.

    The backbone is trained in place; pass a copy to keep the original. Deterministic for a
    given ``seed`` on a given device; the global torch RNG state is restored afterwards.

    Args:
        backbone: encoder with ``embed_dim``.
        num_classes: number of classes (2 for binary tasks).
        x_train, y_train: training rows and int labels.
        x_val, y_val: validation split for early stopping (may be empty).
        budget: a FinetuneConfig (its step plan, batch_size, lr, weight_decay, patience).
        seed: seeds initialisation of the head, dropout, batches and augmentations.
        device: where to train.
        augment: batched augmentation applied to every training batch.
        freeze_backbone: train the head only (the backbone stays in eval mode).
        backbone_lr_scale: backbone learning rate = ``budget.lr * backbone_lr_scale``.
        layer_decay: layer-wise decay of that rate below the head, for a pretrained backbone
            (:mod:`sslcore.train.layer_decay`); None or 1: every layer at the same rate.

    Returns:
        The :class:`Classifier` with the best validation weights, in eval mode, on ``device``;
        its ``steps``, ``best_step`` and ``history`` say how training went.

    Raises:
        DataError: empty training set, or labels outside ``[0, num_classes)``.
    """
    y_train, y_val = np.asarray(y_train, dtype=np.int64), np.asarray(y_val, dtype=np.int64)
    if len(y_train) == 0:
        raise DataError("train_classifier: the training split is empty")
    if min(y_train.min(), y_val.min(initial=0)) < 0 or \
            max(y_train.max(), y_val.max(initial=0)) >= num_classes:
        raise DataError(f"train_classifier: labels must lie in [0, {num_classes}), got "
                        f"{sorted(set(np.unique(y_train)) | set(np.unique(y_val)))}")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = Classifier(backbone, num_classes).to(device)
        return _fit(model, x_train, y_train, x_val, y_val, budget, seed=seed, device=device,
                    augment=augment, freeze=freeze_backbone, lr_scale=backbone_lr_scale,
                    layer_decay=layer_decay)


def finetune_plan(budget: Any, n_train: int) -> FinetunePlan:
    """The step plan of ``budget`` (a FinetuneConfig, planned with its preset) for
    ``n_train`` rows: the same for every method trained on the same rows."""
    return plan_finetune_steps(budget, n_train, getattr(budget, "preset", "standard"))


@dataclass
class StepRecord:
    """What :func:`train_steps` did: steps run, step of the kept weights, one dict per check."""

    steps: int = 0
    best_step: int | None = None
    history: list[dict[str, float | None]] = field(default_factory=list)


def fit_info(record: Any) -> dict[str, float]:
    """``{"fit_steps", "best_step"}`` of a :class:`StepRecord` or :class:`Classifier`: the
    child-run metrics a method exposes as ``fit_info`` after ``fit``."""
    info = {"fit_steps": float(record.steps)}
    if record.best_step is not None:
        info["best_step"] = float(record.best_step)
    return info


def train_steps(model: nn.Module, plan: FinetunePlan, y: np.ndarray, rng: np.random.Generator,
                *, step: Callable[[np.ndarray], torch.Tensor],
                evaluate: Callable[[], tuple[tuple[float, ...] | None, dict[str, Any]]],
                patience: int, train_mode: Callable[[], None]) -> StepRecord:
    """Run ``plan``: ``plan.total`` optimizer steps over stratified batches of ``y``.

    ``step(idx)`` trains on the rows ``idx`` and returns the loss; every ``plan.eval_every``
    steps and at the last one, ``evaluate()`` gives (key, extra): higher keys are better, None
    means "nothing to select with" (the latest weights are kept). Training stops after
    ``patience`` checks without a better key, but not before ``plan.stop_after``, or when the
    loss is not finite. The best weights are loaded back into ``model``.
    """
    record = StepRecord()
    best_key: tuple[float, ...] | None = None
    best_state = copy.deepcopy(model.state_dict())
    stale, losses = 0, []
    batches = batch_stream(y, plan.batch_size, rng)
    train_mode()
    for n in range(1, plan.total + 1):
        losses.append(step(next(batches)).detach())
        record.steps = n
        if n % plan.eval_every and n != plan.total:
            continue
        train_loss = float(torch.stack(losses).mean())
        losses = []
        entry: dict[str, Any] = {"step": n, "train_loss": train_loss,
                                 "val_score": None, "val_loss": None}
        record.history.append(entry)
        if not math.isfinite(train_loss):
            break  # diverged: keep the best weights seen so far
        key, extra = evaluate()
        entry.update(extra)
        train_mode()
        if key is None or best_key is None or key > best_key:
            best_key, best_state, stale = key, copy.deepcopy(model.state_dict()), 0
            record.best_step = n
        else:
            stale += 1
            if stale >= patience and n >= plan.stop_after:
                break
    model.load_state_dict(best_state)
    return record


def _fit(model: Classifier, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
         y_val: np.ndarray, budget: Any, *, seed: int, device: torch.device,
         augment: Augmentation | None, freeze: bool, lr_scale: float,
         layer_decay: float | None = None) -> Classifier:
    num_classes = model.num_classes
    gen = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    xt, xv = _as_float_tensor(x_train), _as_float_tensor(x_val)
    # Frozen backbone without augmentation: embed once, train the head on the embeddings.
    fast = freeze and augment is None
    if fast:
        model.backbone.eval()
        xt, xv = (_batched(model.backbone, t, device, 2048) for t in (xt, xv))
    forward = model.head if fast else model
    for p in model.backbone.parameters():
        p.requires_grad_(not freeze)
    groups = [{"params": list(model.head.parameters()), "lr": budget.lr}]
    if not freeze and layer_decay is not None and layer_decay < 1:
        groups += layer_decay_groups(model.backbone, lr=budget.lr * lr_scale,
                                     weight_decay=budget.weight_decay, decay=layer_decay)
    elif not freeze:
        groups.append({"params": list(model.backbone.parameters()), "lr": budget.lr * lr_scale})
    opt = torch.optim.AdamW(groups, lr=budget.lr, weight_decay=budget.weight_decay)
    weight = torch.as_tensor(class_weights(y_train, num_classes), dtype=torch.float32,
                             device=device)
    yt = torch.as_tensor(y_train)

    def train_mode() -> None:
        model.train()
        if freeze:
            model.backbone.eval()

    def step(idx: np.ndarray) -> torch.Tensor:
        xb, yb = xt[idx].to(device), yt[idx].to(device)
        if augment is not None:
            xb = augment(xb, gen)
        loss = F.cross_entropy(forward(xb).float(), yb, weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def evaluate() -> tuple[tuple[float, ...] | None, dict[str, Any]]:
        if len(y_val) == 0:  # nothing to select with: the latest weights are the best
            return None, {}
        model.eval()
        probs = _probs(_batched(forward, xv, device, 2048))
        primary = selection_score(y_val, probs, num_classes)
        val_loss = balanced_log_loss(y_val, probs, num_classes)
        key = (-val_loss,) if primary is None else (round(primary, 6), -val_loss)
        return key, {"val_score": primary, "val_loss": val_loss}

    plan = finetune_plan(budget, len(y_train))
    record = train_steps(model, plan, y_train, rng, step=step, evaluate=evaluate,
                         patience=budget.patience, train_mode=train_mode)
    model.history, model.steps, model.best_step = record.history, record.steps, record.best_step
    for p in model.backbone.parameters():
        p.requires_grad_(True)
    return model.eval()
