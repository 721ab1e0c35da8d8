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

Example::

    enc = TCNBackbone(TCNParams(), input_shape=(5, 64))
    enc.fit_normalizer(unlabeled)            # (N, 5, 64) raw windows of training machines
    z = enc(torch.as_tensor(x))              # (N, embed_dim)
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.errors import DataError
from sslcore_sensor_maintenance.backbones.base import (
    MeanLastPool,
    SequenceBackbone,
    check_input_shape,
)


class TCNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: int = Field(64, ge=4, description="width of every residual block")
    stem_stride: int = Field(4, ge=1, description="time steps summarized per position "
                             "(the token length); must divide the window length")
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
        input_shape: ``(channels, length)``; any multiple of ``stem_stride`` works at run time.

    Raises:
        DataError: ``input_shape`` is not ``(channels, length)``, or the length is not a
            multiple of ``stem_stride``.
    """

    def __init__(self, params: TCNParams, *, input_shape: tuple[int, ...]) -> None:
        n_channels, length = check_input_shape("tcn", input_shape)
        if length % params.stem_stride:
            raise DataError(f"tcn: window length {length} is not a multiple of stem_stride "
                            f"{params.stem_stride}; change one of them")
        super().__init__(n_channels, length, token_len=params.stem_stride,
                         token_dim=params.channels, clip=params.clip)
        self.embed_dim = params.embed_dim
        k = params.kernel_size + (params.kernel_size + 1) % 2  # odd: symmetric padding
        self.stem = nn.Conv1d(n_channels, params.channels, params.stem_stride,
                              stride=params.stem_stride)
        self.blocks = nn.Sequential(*[_ResidualBlock(params.channels, k, d, params.dropout)
                                      for d in params.dilations])
        self.head = MeanLastPool(params.channels, params.embed_dim)

    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(z)).transpose(1, 2)  # (N, T / stem_stride, channels)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)
