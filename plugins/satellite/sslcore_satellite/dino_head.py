"""DINO's projection head: an MLP, an L2-normalized bottleneck, a weight-normalized last layer.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers" (DINO), ICCV 2021, Section 3.1 and Appendix; reference
code facebookresearch/dino ``vision_transformer.py::DINOHead``.

``in_dim -> hidden -> ... -> bottleneck`` (GELU between layers), L2 normalization, then a
linear layer to ``out_dim`` prototypes without bias, weight-normalized
(``torch.nn.utils.parametrizations.weight_norm``: ``W = g * V / ||V||`` row by row) with the
magnitude ``g`` fixed to 1 (``norm_last_layer=True``, as DINO does for ViTs), so every
prototype is a unit vector and the logits are cosine similarities. DINO reports that this
stabilizes training; with ``norm_last_layer=False`` the magnitudes are learned.

Modules with parametrizations cannot be pickled directly (torch only serializes them through
``state_dict``); :class:`DINOHead` pickles as its constructor arguments plus its state dict,
which keeps the pretext task picklable (checkpoints use ``state_dict`` anyway).

Example::

    head = DINOHead(192, out_dim=4096, hidden_dim=512, bottleneck_dim=128)
    logits = head(embeddings)          # (N, 4096)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _rebuild(kwargs: dict[str, Any], state: dict[str, torch.Tensor],
             requires_grad: dict[str, bool], training: bool) -> DINOHead:
    head = DINOHead(**kwargs)
    head.load_state_dict(state)
    for name, p in head.named_parameters():
        p.requires_grad_(requires_grad[name])
    return head.train(training)


class DINOHead(nn.Module):
    """Projection MLP + weight-normalized prototype layer.

    Args:
        in_dim: backbone embedding size.
        out_dim: number of prototypes K (DINO: 65536; a few thousand suit small data).
        hidden_dim: width of the hidden layers.
        bottleneck_dim: size of the L2-normalized bottleneck.
        n_layers: MLP layers before the bottleneck (>= 1).
        norm_last_layer: fix the last layer's weight norms to 1.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 512,
                 bottleneck_dim: int = 128, n_layers: int = 3,
                 norm_last_layer: bool = True) -> None:
        super().__init__()
        self._kwargs = {"in_dim": in_dim, "out_dim": out_dim, "hidden_dim": hidden_dim,
                        "bottleneck_dim": bottleneck_dim, "n_layers": n_layers,
                        "norm_last_layer": norm_last_layer}
        n_layers = max(int(n_layers), 1)
        if n_layers == 1:
            self.mlp: nn.Module = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
            for _ in range(n_layers - 2):
                layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        magnitude.requires_grad_(not norm_last_layer)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):  # truncated normal, std 0.02, as in DINO
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, freeze_last_layer: bool = False) -> torch.Tensor:
        """Prototype logits; ``freeze_last_layer`` stops gradients into the last layer (DINO
        keeps it fixed during the first epoch, which helps optimization)."""
        z = F.normalize(self.mlp(x), dim=-1, p=2)
        weight = self.last_layer.weight
        if freeze_last_layer:  # zero gradient, but the weights still count as used (DDP)
            weight = weight.detach() + 0.0 * weight
        return F.linear(z, weight)

    def __reduce__(self) -> tuple[Any, ...]:
        requires_grad = {n: p.requires_grad for n, p in self.named_parameters()}
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        return _rebuild, (dict(self._kwargs), state, requires_grad, self.training)
