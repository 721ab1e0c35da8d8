"""Linear probe: logistic regression on frozen SSL embeddings.

The standard measure of representation quality (e.g. SimCLR, Chen et al., ICML 2020; the
linear evaluation protocol of Zhang, Isola, Efros, "Colorful Image Colorization", ECCV 2016):
the encoder stays frozen, embeddings are standardized, and a class-balanced L2 logistic
regression is fitted on the training split. Its inverse regularization ``C`` is chosen from a
small grid on the validation split (AUPRC for binary tasks, accuracy for multi-class, ties
broken by the class-balanced validation log-loss). The validation split is only used for that
choice, never for fitting.

Example::

    head = LinearProbe(LinearProbeParams(Cs=[0.01, 0.1, 1.0]))
    head.fit(ctx)                          # ctx.encoder: the pretrained backbone
    scores = head.predict_scores(x_test)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.builtins.heads.embedding_anomaly import require_encoder
from sslcore.contracts import FitContext
from sslcore.errors import DataError
from sslcore.train.supervised import balanced_log_loss, embed, proba_to_scores, selection_score


class LinearProbeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    Cs: list[float] = Field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0, 10.0],
                            min_length=1, description="inverse L2 strengths tried")
    max_iter: int = Field(2000, ge=10)


class LinearProbe:
    """Frozen encoder + standardized embeddings + class-balanced logistic regression.

    Args:
        params: a :class:`LinearProbeParams`.

    Raises:
        ConfigError: fitted without a pretrained encoder.
        DataError: the training split holds a single class.
    """

    uses_labels = True

    def __init__(self, params: LinearProbeParams | None = None) -> None:
        self.params = params or LinearProbeParams()
        self.encoder: nn.Module | None = None
        self.device = torch.device("cpu")
        self.scaler: Any = None
        self.model: Any = None
        self.num_classes = 2
        self.C: float | None = None

    def fit(self, ctx: FitContext) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.encoder, self.device = require_encoder("linear_probe", ctx), ctx.device
        self.num_classes = ctx.num_classes
        if len(np.unique(ctx.y_train)) < 2:
            raise DataError("linear_probe: the training split holds a single class; it needs "
                            "examples of at least two")
        e_train = embed(self.encoder, ctx.x_train, self.device)
        self.scaler = StandardScaler().fit(e_train)
        e_train = self.scaler.transform(e_train)
        has_val = len(ctx.x_val) > 0
        e_val = self.scaler.transform(embed(self.encoder, ctx.x_val, self.device)) \
            if has_val else None
        # Without a validation split there is nothing to choose with: take the grid's middle.
        grid = sorted(self.params.Cs)
        grid = grid if has_val else [grid[len(grid) // 2]]
        best: tuple[tuple[float, ...], Any, float] | None = None
        for C in grid:
            model = LogisticRegression(C=C, class_weight="balanced", max_iter=self.params.max_iter,
                                       random_state=ctx.seed).fit(e_train, ctx.y_train)
            key = self._key(model, e_val, np.asarray(ctx.y_val)) if e_val is not None else (0.0,)
            if best is None or key > best[0]:
                best = (key, model, C)
        assert best is not None  # the grid is never empty
        _, self.model, self.C = best

    def _key(self, model: Any, e_val: np.ndarray, y_val: np.ndarray) -> tuple[float, ...]:
        scores = proba_to_scores(model.predict_proba(e_val), model.classes_, self.num_classes)
        probs = np.stack([1 - scores, scores], axis=1) if scores.ndim == 1 else scores
        loss = balanced_log_loss(y_val, probs, self.num_classes)
        primary = selection_score(y_val, scores, self.num_classes)
        return (-loss,) if primary is None else (round(primary, 6), -loss)

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.model is None or self.encoder is None:
            raise RuntimeError("linear_probe: call fit() before predict_scores()")
        e = self.scaler.transform(embed(self.encoder, x, self.device))
        return proba_to_scores(self.model.predict_proba(e), self.model.classes_, self.num_classes)
