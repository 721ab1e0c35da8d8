"""Patch transformer: a window cut into patches, embedded, and read by a Transformer encoder.

After PatchTST (Nie, Nguyen, Sinthong, Kalagnanam, "A Time Series is Worth 64 Words: Long-term
Forecasting with Transformers", ICLR 2023): non-overlapping patches of ``patch_len`` steps
become tokens, so a 64-step window is 8 tokens and attention stays cheap on a CPU. One
difference, on purpose: PatchTST embeds each channel separately (channel independence); here a
patch of all sensors is one token, because failure signatures live in the relations between
sensors (vibration too high *for this speed*). Learned positional embeddings, pre-norm encoder
layers, GELU. Written on ``torch.nn.TransformerEncoder`` rather than transformers'
``PatchTSTModel`` to keep channel mixing and the token interface the pretext tasks use, without
a second multi-hundred-MB dependency.

Any length: a window that is not a multiple of ``patch_len`` has its start replicate-padded to
the next multiple (97 steps with patches of 8: 7 steps, 13 patches), so the last patch holds
exactly the most recent readings. The minimum is 2 patches, else a DataError names
``backbone.params.patch_len``. ``length_rule`` says what was chosen.

Example::

    enc = PatchTransformerBackbone(PatchTransformerParams(patch_len=8), input_shape=(5, 64))
    enc.fit_normalizer(unlabeled)
    z = enc(torch.as_tensor(x))              # (N, embed_dim)
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.sdk import DataError, load_init
from sslcore_sensor_maintenance.backbones.base import (
    MeanLastPool,
    SequenceBackbone,
    check_input_shape,
    pad_start,
    plan_length,
)


class PatchTransformerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patch_len: int = Field(8, ge=1, description="time steps per token; other lengths get "
                           "their start padded")
    d_model: int = Field(64, ge=8)
    depth: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(2.0, gt=0)
    embed_dim: int = Field(128, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    clip: float = Field(10.0, gt=0)


class PatchTransformerBackbone(SequenceBackbone):
    """Per-channel normalizer -> patches -> Linear + positions -> Transformer -> [mean, last].

    Args:
        params: a :class:`PatchTransformerParams`.
        input_shape: ``(channels, length)``, ``length`` at least 2 patches.

    Raises:
        DataError: bad input shape, a series shorter than 2 patches, or ``d_model`` not
            divisible by ``heads``.
    """

    @classmethod
    def describe_input(cls, params: PatchTransformerParams,
                       input_shape: tuple[int, ...]) -> str:
        """How series of this shape are read (padding, patches); DataError if too short."""
        _, length = check_input_shape("patch_transformer", input_shape)
        return plan_length("patch_transformer", length, params.patch_len,
                           "backbone.params.patch_len", what="patches")[1]

    def __init__(self, params: PatchTransformerParams, *, input_shape: tuple[int, ...],
                 init: Any = None) -> None:
        n_channels, length = check_input_shape("patch_transformer", input_shape)
        rule = self.describe_input(params, input_shape)
        if params.d_model % params.heads:
            raise DataError(f"patch_transformer: d_model {params.d_model} must be divisible "
                            f"by heads {params.heads}")
        super().__init__(n_channels, length, token_len=params.patch_len,
                         token_dim=params.d_model, clip=params.clip, length_rule=rule)
        self.embed_dim = params.embed_dim
        self.max_tokens = -(-length // params.patch_len)  # ceil: the padded start included
        self.patch_embed = nn.Linear(n_channels * params.patch_len, params.d_model)
        self.position = nn.Parameter(torch.randn(1, self.max_tokens, params.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            params.d_model, params.heads, int(params.d_model * params.mlp_ratio),
            params.dropout, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, params.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(params.d_model)
        self.head = MeanLastPool(params.d_model, params.embed_dim)
        if init is not None:  # backbone.init: e.g. an export of an earlier sslcore run
            load_init(self, init)

    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        z = pad_start(z, self.token_len)
        n, c, t = z.shape
        p = self.token_len
        if t // p > self.max_tokens:
            raise DataError(f"patch_transformer: input length {t} is longer than the "
                            f"{self.max_tokens * p} steps it was built for (input_shape)")
        patches = z.reshape(n, c, t // p, p).permute(0, 2, 1, 3).reshape(n, t // p, c * p)
        h = self.patch_embed(patches) + self.position[:, :t // p]
        return self.norm(self.encoder(h))

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)
