"""TS2Vec: hierarchical contrastive learning over two overlapping crops of each window.

Yue, Wang, Duan, Yang, Huang, Tong, Xu, "TS2Vec: Towards Universal Representation of Time
Series", AAAI 2022. Two random crops of a window overlap on a common segment; each is read with
random timestamps masked, so the two views of every overlapping position differ in context
and masking. The loss contrasts the two views' representations of the overlap at several time
scales (max-pooling by 2 until one position is left):

- instance-wise: the same position in the other view of the same window is the positive, the
  other windows of the batch (from every rank, via ``sslcore.distributed.gather_with_grad``)
  at that position are the negatives;
- temporal: the same position in the other view is the positive, the window's other positions
  are the negatives.

As in the paper the similarity is a plain dot product (``temperature=None``); crops are drawn
once per batch (the paper's per-sample offsets are dropped: windows are already random
excerpts), and masks are applied to the standardized input rather than to the first layer's
output, so any :class:`~sslcore_sensor_maintenance.backbones.base.SequenceBackbone` works.
Crops and masks follow the backbone's token grid (the TCN's stem stride, the transformer's
patches); a series that is not a multiple of the token length has its start replicate-padded
first, as the backbone itself does, so any length of at least 2 tokens works.

Example::

    task = TS2Vec(TS2VecParams(), backbone=tcn, augment=None, input_shape=(5, 64))
    loss = task.loss(batch, torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from sslcore.sdk import Augmentation, gather_with_grad, PretextTask
from sslcore_sensor_maintenance.backbones.base import SequenceBackbone, pad_start
from sslcore_sensor_maintenance.pretext.masked_patches import require_sequence_backbone


class TS2VecParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.5, ge=0, le=1, description="weight of the instance-wise term "
                         "(1 - alpha: temporal)")
    mask_prob: float = Field(0.5, ge=0, lt=1, description="share of timestamps masked")
    min_crop: int = Field(4, ge=2, description="shortest overlap, in tokens")
    temperature: float | None = Field(None, gt=0, description="None: raw dot products as in "
                                      "the paper; else cosine similarity / temperature")


def _pairwise_logits(sim: torch.Tensor) -> torch.Tensor:
    """Drop the diagonal of (..., M, M) similarities -> (..., M, M - 1) log-probabilities."""
    logits = torch.tril(sim, diagonal=-1)[..., :-1] + torch.triu(sim, diagonal=1)[..., 1:]
    return -F.log_softmax(logits, dim=-1)


def instance_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """(B, T, D) x 2: at each position, the other view of the same window vs other windows."""
    b = z1.shape[0]
    if b == 1:
        return z1.new_zeros(())
    z = torch.cat([z1, z2], dim=0).transpose(0, 1)  # T x 2B x D
    nll = _pairwise_logits(z @ z.transpose(1, 2))
    i = torch.arange(b, device=z1.device)
    return (nll[:, i, b + i - 1].mean() + nll[:, b + i, i].mean()) / 2


def temporal_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """(B, T, D) x 2: in each window, the other view of the same position vs other positions."""
    t = z1.shape[1]
    if t == 1:
        return z1.new_zeros(())
    z = torch.cat([z1, z2], dim=1)  # B x 2T x D
    nll = _pairwise_logits(z @ z.transpose(1, 2))
    i = torch.arange(t, device=z1.device)
    return (nll[:, i, t + i - 1].mean() + nll[:, t + i, i].mean()) / 2


def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor,
                                  alpha: float = 0.5) -> torch.Tensor:
    """TS2Vec's loss over scales: max-pool the time axis by 2 until one position is left.

    Instance-wise terms use every rank's windows as negatives (``gather_with_grad``).
    """
    loss, levels = z1.new_zeros(()), 0
    while True:
        if alpha > 0:
            loss = loss + alpha * instance_contrastive_loss(gather_with_grad(z1),
                                                            gather_with_grad(z2))
        if alpha < 1 and z1.shape[1] > 1:
            loss = loss + (1 - alpha) * temporal_contrastive_loss(z1, z2)
        levels += 1
        if z1.shape[1] == 1:
            return loss / levels
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2, ceil_mode=True).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2, ceil_mode=True).transpose(1, 2)


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """An integer in [low, high) from ``generator``."""
    return int(torch.randint(low, high, (1,), generator=generator, device=generator.device))


class TS2Vec(PretextTask):
    """TS2Vec contrastive pretraining around a sequence backbone (see the module docstring).

    Raises:
        ConfigError: the backbone has no tokens.
    """

    def __init__(self, params: TS2VecParams, *, backbone: SequenceBackbone,
                 augment: Augmentation | None = None,
                 input_shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.params = params
        self.backbone = backbone
        self.augment = augment
        unit = getattr(backbone, "token_len", 1)
        _, self.length = require_sequence_backbone("ts2vec", backbone, input_shape, unit)

    def _masked(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        unit = self.backbone.token_len
        n, _, t = z.shape
        keep = torch.rand((n, 1, t // unit), generator=generator,
                          device=generator.device).to(z.device) >= self.params.mask_prob
        return z * keep.repeat_interleave(unit, dim=2)

    def _embed(self, h: torch.Tensor) -> torch.Tensor:
        h = h.float()
        if self.params.temperature is None:
            return h
        return F.normalize(h, dim=-1) / self.params.temperature ** 0.5

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.augment(batch, generator) if self.augment is not None else batch
        unit = self.backbone.token_len
        z = pad_start(self.backbone.normalize(x), unit)
        n_tok = z.shape[-1] // unit
        crop = _randint(min(self.params.min_crop, n_tok), n_tok + 1, generator)
        left = _randint(0, n_tok - crop + 1, generator)
        right = left + crop
        e_left = _randint(0, left + 1, generator)
        e_right = _randint(right, n_tok + 1, generator)
        view1 = z[..., e_left * unit:right * unit]
        view2 = z[..., left * unit:e_right * unit]
        h1 = self.backbone.tokens(self._masked(view1, generator))[:, -crop:]
        h2 = self.backbone.tokens(self._masked(view2, generator))[:, :crop]
        return hierarchical_contrastive_loss(self._embed(h1), self._embed(h2), self.params.alpha)
