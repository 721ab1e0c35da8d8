"""What the sequence backbones share: a per-channel normalizer and a token interface.

Raw sensors live on wildly different scales (rpm in the thousands, vibration around 2 mm/s),
so every backbone standardizes each channel with a mean and std fitted once on the unlabeled
pool (``fit_normalizer``; label-free, training machines only), on winsorized values so a few
spikes cannot set the scale, and clips z-scores. The statistics are buffers: they travel in the
``state_dict``.

Pretext tasks need more than the pooled embedding, so a :class:`SequenceBackbone` exposes:

- ``normalize(x)``: (N, C, T) raw -> standardized;
- ``tokens(z)``: standardized (N, C, T') -> per-position features (N, ceil(T' / token_len),
  token_dim) (``token_len``: the TCN's stem stride, the patch transformer's patch length);
- ``pool(h)``: tokens -> the embedding (N, embed_dim);
- ``forward(x) = pool(tokens(normalize(x)))``;
- ``reconstruct(h, length)``: tokens -> standardized values (N, C, length), a linear read-out
  per token.

Series of any length: a length that is not a multiple of ``token_len`` is replicate-padded at
the *start* (:func:`pad_start`) to the next multiple, at most ``token_len - 1`` steps. The
start, because the window's end is the prediction time: the last token keeps exactly the most
recent readings (padding the end would put made-up values after them, and a causal reading
order stays possible). ``reconstruct`` drops the padding again. A
series shorter than :data:`MIN_TOKENS` tokens is a DataError naming the config field to lower
(:func:`plan_length`). The rule chosen for the data's length is the backbone's
``length_rule`` (and ``describe_input``, which ``sslcore.data_fit`` records in the data card
before any work).

The read-out belongs to the backbone, not to the pretext task, as BERT's masked-language head
belongs to BERT: masked pretraining trains it, and the pretrained encoder keeps it, so heads
can ask the encoder what each sensor *should* read given the others (the normal-behaviour
residuals of :mod:`sslcore_sensor_maintenance.heads.normal_behavior`). ``forward`` never uses
it, so a backbone trained from scratch is unaffected.
"""

from __future__ import annotations

import abc

import numpy as np
import torch
from torch import nn

from sslcore.sdk import Backbone, DataError

_MAX_NORMALIZER_WINDOWS = 20_000
MIN_TOKENS = 2  # fewer: no "recent vs the rest of the window" for the pooling or the pretext


def plan_length(component: str, length: int, unit: int, field: str, step: int = 1,
                what: str = "tokens") -> tuple[int, str]:
    """How ``component`` reads series of ``length`` steps in units (tokens, patches) of
    ``unit`` steps: ``(start padding, the rule in words)``.

    Args:
        field: the dotted config field that sets ``unit``, for the error.
        step: ``unit`` must stay a multiple of it (the suggested value is one).
        what: the units' name in the rule ("tokens", "patches").

    Raises:
        DataError: the series is shorter than :data:`MIN_TOKENS` units.
    """
    minimum = MIN_TOKENS * unit
    if length < minimum:
        fits = length // MIN_TOKENS // step * step
        fix = (f"set {field} to {fits} or less" if fits >= 1 else
               f"lower {field} and the backbone's token length")
        raise DataError(f"{component}: series of {length} steps are shorter than its minimum "
                        f"of {minimum} steps ({MIN_TOKENS} x {field} {unit}); {fix}, or give "
                        "longer series")
    pad = (-length) % unit
    rule = f"{component}: {length} steps -> {(length + pad) // unit} {what} of {unit} steps"
    if pad:
        rule += f", the start replicate-padded by {pad} step{'s' if pad > 1 else ''}"
    return pad, rule


def pad_start(z: torch.Tensor, multiple: int) -> torch.Tensor:
    """(..., T) -> (..., T + pad): the first step repeated at the start until the length is a
    multiple of ``multiple``; ``z`` itself when it already is."""
    pad = (-z.shape[-1]) % multiple
    if not pad:
        return z
    return torch.cat([z[..., :1].expand(*z.shape[:-1], pad), z], dim=-1)


def check_input_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(channels, length)`` of a time-series input shape, or a DataError."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 2 or min(shape) < 1:
        raise DataError(f"backbone {name!r} is for time series: input_shape must be "
                        f"(channels, length), got {shape}. Use a table or image backbone "
                        "for this data")
    return shape[0], shape[1]


class SequenceBackbone(Backbone, abc.ABC):
    """Base class: per-channel normalizer + ``tokens`` / ``pool`` (see the module docstring)."""

    def __init__(self, n_channels: int, length: int, *, token_len: int, token_dim: int,
                 length_rule: str = "", clip: float = 10.0, winsorize: float = 0.001) -> None:
        super().__init__()
        self.n_channels, self.length = n_channels, length
        self.length_rule = length_rule  # how series of the data's length are read, in words
        self.token_len, self.token_dim = token_len, token_dim
        self.reconstruction = nn.Linear(token_dim, n_channels * token_len)
        self.clip, self.winsorize = float(clip), float(winsorize)
        self.register_buffer("channel_mean", torch.zeros(n_channels))
        self.register_buffer("channel_std", torch.ones(n_channels))
        self.register_buffer("normalizer_fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit_normalizer(self, x: np.ndarray) -> None:
        """Per-channel mean/std of unlabeled windows (N, C, T), on winsorized values.

        Deterministic: above 20k windows a seeded subsample is used. Constant channels get
        std 1.

        Raises:
            DataError: ``x`` is not (N, C, T) with this backbone's C, or holds NaN/inf.
        """
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1] != self.n_channels or len(x) == 0:
            raise DataError(f"fit_normalizer expects windows (n, {self.n_channels}, length), "
                            f"got {x.shape}")
        if len(x) > _MAX_NORMALIZER_WINDOWS:
            rows = np.random.default_rng(0).choice(len(x), _MAX_NORMALIZER_WINDOWS,
                                                   replace=False)
            x = x[np.sort(rows)]
        flat = x.transpose(1, 0, 2).reshape(self.n_channels, -1).astype(np.float64)
        if not np.isfinite(flat).all():
            raise DataError("fit_normalizer: windows contain NaN/inf; fill them first")
        if self.winsorize > 0:
            lo, hi = np.quantile(flat, [self.winsorize, 1 - self.winsorize], axis=1)
            flat = np.clip(flat, lo[:, None], hi[:, None])
        mean, std = flat.mean(axis=1), flat.std(axis=1)
        std = np.where(std > 1e-12, std, 1.0)
        self.channel_mean.copy_(torch.as_tensor(mean, dtype=self.channel_mean.dtype))
        self.channel_std.copy_(torch.as_tensor(std, dtype=self.channel_std.dtype))
        self.normalizer_fitted.fill_(True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (N, C, T) -> standardized and clipped, float32."""
        z = (x.float() - self.channel_mean[:, None]) / self.channel_std[:, None]
        return z.clamp(-self.clip, self.clip)

    @abc.abstractmethod
    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        """Standardized (N, C, T') -> per-position features (N, ceil(T' / token_len),
        token_dim); the start is padded (:func:`pad_start`) when T' is not a multiple."""

    @abc.abstractmethod
    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """Per-position features -> the embedding (N, embed_dim)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.tokens(self.normalize(x)))

    def reconstruct(self, h: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Tokens (N, L, token_dim) -> standardized values (N, C, length): the last ``length``
        of the L * token_len values (default all), so the start padding is dropped."""
        n, n_tok, _ = h.shape
        out = self.reconstruction(h.float()).reshape(n, n_tok, self.n_channels, self.token_len)
        out = out.permute(0, 2, 1, 3).reshape(n, self.n_channels, n_tok * self.token_len)
        return out if length is None else out[..., out.shape[-1] - length:]


class MeanLastPool(nn.Module):
    """Embedding from tokens: [mean over positions, the last position] -> Linear.

    The window's end is the prediction time, so the most recent state gets its own slot next
    to the window average.
    """

    def __init__(self, token_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * token_dim, embed_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([h.mean(dim=1), h[:, -1]], dim=1))
