"""Temporal convolutional network: dilated residual 1-D convolutions, then pooling.

Bai, Kolter, Koltun, "An Empirical Evaluation of Generic Convolutional and Recurrent Networks
for Sequence Modeling" (2018) showed dilated residual convolutions match recurrent models on
sequences; TS2Vec (Yue et al., AAAI 2022) uses the same kind of encoder for its contrastive
representations. Here the convolutions are non-causal ("same" padding: the whole window is
known at prediction time), dilations double per block so the receptive field covers the
window, and every position keeps its own features (tokens) for the masked and contrastive
pretext tasks. A strided stem first summarizes ``stem_stride`` steps per position (hourly
readings -> 4-hour tokens by default): four times less compute on a CPU, and a degradation
that builds over days loses nothing. With kernel 3 and dilations 1..8 the receptive field is
31 tokens, 124 hours: the whole default window. BatchNorm over batch x time.

Any length: a window that is not a multiple of ``stem_stride`` has its start replicate-padded
to the next multiple (150 steps with stride 4: 2 steps, 38 tokens); the last token always
holds the most recent readings. The minimum is 2 tokens (``2 * stem_stride`` steps), else a
DataError names ``backbone.params.stem_stride``. ``length_rule`` says what was chosen.

Example::

    enc = TCNBackbone(TCNParams(), input_shape=(5, 64))
    enc.fit_normalizer(unlabeled)            # (N, 5, 64) raw windows of training machines
    z = enc(torch.as_tensor(x))              # (N, embed_dim)
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.sdk import load_init
from sslcore_sensor_maintenance.backbones.base import (
    MeanLastPool,
    SequenceBackbone,
    check_input_shape,
    pad_start,
    plan_length,
)


class TCNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: int = Field(64, ge=4, description="width of every residual block")
    stem_stride: int = Field(4, ge=1, description="time steps summarized per position "
                             "(the token length); other lengths get their start padded")
    dilations: list[int] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1)
    kernel_size: int = Field(3, ge=2)
    embed_dim: int = Field(128, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    clip: float = Field(10.0, gt=0, description="standardized inputs are clipped to +-clip")


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.body = nn.Sequential(
            nn.Conv1d(width, width, kernel, dilation=dilation, padding=pad),
            nn.BatchNorm1d(width), nn.GELU(), nn.Dropout(dropout),
            nn.Conv1d(width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TCNBackbone(SequenceBackbone):
    """Per-channel normalizer -> strided conv stem -> dilated residual blocks -> [mean, last]
    -> Linear.

    Args:
        params: a :class:`TCNParams`.
        input_shape: ``(channels, length)``; any length of at least ``2 * stem_stride`` steps
            works at run time (see the module docstring).
        init: ``backbone.init`` (see ``sslcore.sdk.load_init``): weights of an earlier
            encoder of the same architecture, e.g. ``sslcore export`` of another fleet's run.

    Raises:
        DataError: ``input_shape`` is not ``(channels, length)``, or the length is shorter
            than 2 tokens.
    """

    @classmethod
    def describe_input(cls, params: TCNParams, input_shape: tuple[int, ...]) -> str:
        """How series of this shape are read (padding, tokens); DataError if too short."""
        _, length = check_input_shape("tcn", input_shape)
        return plan_length("tcn", length, params.stem_stride, "backbone.params.stem_stride")[1]

    def __init__(self, params: TCNParams, *, input_shape: tuple[int, ...],
                 init: Any = None) -> None:
        n_channels, length = check_input_shape("tcn", input_shape)
        super().__init__(n_channels, length, token_len=params.stem_stride,
                         token_dim=params.channels, clip=params.clip,
                         length_rule=self.describe_input(params, input_shape))
        self.embed_dim = params.embed_dim
        k = params.kernel_size + (params.kernel_size + 1) % 2  # odd: symmetric padding
        self.stem = nn.Conv1d(n_channels, params.channels, params.stem_stride,
                              stride=params.stem_stride)
        self.blocks = nn.Sequential(*[_ResidualBlock(params.channels, k, d, params.dropout)
                                      for d in params.dilations])
        self.head = MeanLastPool(params.channels, params.embed_dim)
        if init is not None:  # backbone.init: e.g. an export of an earlier sslcore run
            load_init(self, init)

    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        z = pad_start(z, self.token_len)
        return self.blocks(self.stem(z)).transpose(1, 2)  # (N, T / stem_stride, channels)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)
