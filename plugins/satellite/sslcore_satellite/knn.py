"""Weighted k-nearest-neighbour classifier on frozen SSL embeddings (DINO's kNN evaluation).

Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", CVPR 2018, and Caron et al., DINO, ICCV 2021 (``eval_knn.py``): embeddings are
L2-normalized, the ``k`` training rows with the highest cosine similarity vote for their class
with weight ``exp(similarity / T)`` (T = 0.07), and the normalized votes are the class
probabilities. No parameter is trained, so it measures the embedding itself; only the training
split is used as neighbours (the validation split is for model selection, as for every head).

Example::

    head = WeightedKNN(KNNParams(k=20))
    head.fit(ctx)                          # ctx.encoder: the pretrained backbone
    proba = head.predict_scores(x_test)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.sdk import DataError, embed, FitContext, require_encoder


class KNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(20, ge=1, description="neighbours (capped at the training rows)")
    temperature: float = Field(0.07, gt=0, description="T in exp(cosine / T)")


def weighted_knn_proba(query: torch.Tensor, bank: torch.Tensor, labels: torch.Tensor,
                       num_classes: int, k: int, temperature: float,
                       chunk: int = 4096) -> torch.Tensor:
    """Class probabilities ``(N, C)`` of L2-normalized ``query`` rows from ``bank`` rows."""
    k = min(k, bank.shape[0])
    out = []
    for start in range(0, max(len(query), 1), chunk):
        sim, idx = (query[start:start + chunk] @ bank.T).topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], num_classes, dtype=torch.float64)
        votes.scatter_add_(1, labels[idx], (sim.double() / temperature).exp())
        out.append(votes / votes.sum(dim=1, keepdim=True))
    return torch.cat(out)


class WeightedKNN:
    """Frozen encoder + cosine-similarity weighted kNN vote.

    Args:
        params: a :class:`KNNParams`.

    Raises:
        ConfigError: fitted without a pretrained encoder.
        DataError: the training split is empty.
    """

    uses_labels = True

    def __init__(self, params: KNNParams | None = None) -> None:
        self.params = params or KNNParams()
        self.encoder: nn.Module | None = None
        self.device = torch.device("cpu")
        self.bank: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.num_classes = 2

    def _embed(self, x: np.ndarray) -> torch.Tensor:
        assert self.encoder is not None
        return F.normalize(torch.from_numpy(embed(self.encoder, x, self.device)).float(), dim=1)

    def fit(self, ctx: FitContext) -> None:
        if len(ctx.y_train) == 0:
            raise DataError("knn: the training split is empty; it needs labeled neighbours")
        self.encoder, self.device = require_encoder("knn", ctx), ctx.device
        self.num_classes = ctx.num_classes
        self.bank = self._embed(ctx.x_train)
        self.labels = torch.as_tensor(np.asarray(ctx.y_train, dtype=np.int64))

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.bank is None or self.labels is None:
            raise RuntimeError("knn: call fit() before predict_scores()")
        proba = weighted_knn_proba(self._embed(x), self.bank, self.labels, self.num_classes,
                                   self.params.k, self.params.temperature).numpy()
        return proba[:, 1] if self.num_classes == 2 else proba
