"""Collapse diagnostics: is the encoder still producing informative embeddings?

SSL objectives have a trivial solution, every input mapped to the same vector, which the loss
alone often does not reveal. Two cheap statistics on a batch of embeddings make it visible:

* ``embedding_std`` (Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
  section 4.1): the per-dimension standard deviation of L2-normalised embeddings, averaged over
  dimensions. About ``1/sqrt(D)`` for healthy embeddings spread over the sphere, 0 when collapsed.
* ``effective_rank`` (Garrido et al., "RankMe: Assessing the Downstream Performance of
  Pretrained Self-Supervised Representations by Their Rank", ICML 2023): ``exp`` of the entropy
  of the normalised singular values. Between 1 (all embeddings on one line) and ``min(N, D)``;
  low values flag dimensional collapse even when the std looks fine.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

RANK_THRESHOLD = 1.5  # below this, all embeddings lie (almost) on one line


class CollapseWarning(UserWarning):
    """The encoder's embeddings have collapsed (near-constant or rank ~1)."""


def _as_matrix(z: torch.Tensor) -> torch.Tensor:
    if z.ndim != 2:
        z = z.reshape(z.shape[0], -1)
    if z.shape[0] < 2:
        raise ValueError("collapse diagnostics need at least 2 embeddings, "
                         f"got shape {tuple(z.shape)}")
    return z.detach().float()  # svd and std are not implemented for bf16 everywhere


def embedding_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the per-dimension std of L2-normalised embeddings ``z`` (N, D).

    Examples:
        >>> embedding_std(torch.ones(8, 4))
        0.0
    """
    z = F.normalize(_as_matrix(z), dim=1)
    return float(z.std(dim=0).mean())


def effective_rank(z: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe effective rank of embeddings ``z`` (N, D): ``exp(-sum p_k log p_k)``, p = s / |s|_1.

    Examples:
        >>> round(effective_rank(torch.eye(4)), 3)
        4.0
    """
    s = torch.linalg.svdvals(_as_matrix(z))
    total = float(s.sum())
    if total <= 0.0 or not math.isfinite(total):  # all-zero (or non-finite) embeddings
        return 0.0 if total <= 0.0 else float("nan")
    p = s / total + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def embed(backbone: nn.Module, batch: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """``backbone(batch)`` for diagnostics: eval mode, no grad, training mode restored after.

    Eval mode and no_grad leave no trace (BatchNorm running stats, dropout draws), so logging
    more or less often never changes the training trajectory.
    """
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad(), torch.autocast(device_type=batch.device.type,
                                             dtype=torch.bfloat16, enabled=bf16):
            return backbone(batch)
    finally:
        backbone.train(was_training)


class CollapseMonitor:
    """Records embedding std and effective rank over training; warns once on collapse.

    Args:
        std_threshold: warn when ``embedding_std`` falls below this (0 disables the std check).
        rank_threshold: warn when ``effective_rank`` falls below this.
        grace_steps: record but never warn up to this step (the learning-rate warm-up): a
            freshly initialised network maps similar inputs to similar, non-negative features
            (low ``embedding_std``) before any training has had a chance to collapse it.

    Examples:
        >>> monitor = CollapseMonitor(std_threshold=0.01)
        >>> stats = monitor.update(torch.randn(64, 16), step=10)
        >>> sorted(stats)
        ['effective_rank', 'embedding_std']
    """

    def __init__(self, std_threshold: float = 0.01, rank_threshold: float = RANK_THRESHOLD,
                 grace_steps: int = 0) -> None:
        self.std_threshold = std_threshold
        self.rank_threshold = rank_threshold
        self.grace_steps = grace_steps
        self.history: list[dict[str, float]] = []
        self.warned = False

    def update(self, z: torch.Tensor, step: int) -> dict[str, float]:
        """Compute both statistics on ``z``, record them at ``step`` and return them."""
        stats = {"embedding_std": embedding_std(z), "effective_rank": effective_rank(z)}
        self.history.append({"step": float(step), **stats})
        if step > self.grace_steps and self.is_collapsed(stats) and not self.warned:
            self.warned = True  # once per run: a warning every log step would drown the log
            msg = (f"embeddings look collapsed at step {step}: embedding_std="
                   f"{stats['embedding_std']:.4g} (threshold {self.std_threshold:g}, healthy "
                   f"~1/sqrt(D)), effective_rank={stats['effective_rank']:.3g} (threshold "
                   f"{self.rank_threshold:g}); try a lower pretrain.lr, more warmup, stronger "
                   "augmentations or a different pretext task")
            warnings.warn(msg, CollapseWarning, stacklevel=2)
        return stats

    def is_collapsed(self, stats: dict[str, float]) -> bool:
        """True when either statistic is below its threshold."""
        return (stats["embedding_std"] < self.std_threshold
                or stats["effective_rank"] < self.rank_threshold)
