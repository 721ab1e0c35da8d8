"""Layer-wise learning-rate decay for fine-tuning a pretrained encoder (``finetune.layer_decay``).

Layers near the input hold the most general features and need the least change, so each
layer trains at ``decay`` x the rate of the layer above it; the new head trains at the full
rate and the encoder's top layer at ``lr x decay`` (Bao et al., "BEiT: BERT Pre-Training of
Image Transformers", ICLR 2022; Clark et al., ELECTRA, ICLR 2020; Howard & Ruder, ULMFiT,
ACL 2018). The parameter groups come from timm's ``param_groups_layer_decay``; what differs
per encoder is only which layer each parameter belongs to:

- a timm model (``backbone.model`` with timm's ``group_matcher``): timm's own layer grouping
  (stem, then each block; ResNet stages' blocks, ViT blocks);
- a transformers model: what comes before its blocks (its largest ``ModuleList``: ViT's and
  DINOv2's layers), each block, then what follows (the final layer norm);
- anything else (the MLP, TCN, patch transformer, ...): the backbone's child modules in the
  order they are registered, containers (``Sequential``, ``ModuleList``, ``TransformerEncoder``)
  opened, a normalization layer counted with the layer before it, and parameters held by
  the backbone itself (position embeddings, tokens) with the first layer.

Parameters outside those (a normalizer's, the input side) count as layer 0. Weight decay is
the same for every parameter, as without layer decay.

Example::

    groups = layer_decay_groups(model.backbone, lr=1e-3, weight_decay=1e-4, decay=0.75)
    groups.append({"params": list(model.head.parameters()), "lr": 1e-3})
    opt = torch.optim.AdamW(groups)
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.TransformerEncoder)
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def _transformers_layers(model: nn.Module) -> dict[str, int] | None:
    """Layer of each parameter of a transformers model: its blocks are its largest
    ``ModuleList``; what is registered before them (embeddings) is layer 0, block ``i`` layer
    ``i + 1``, what comes after (the final norm) the top layer."""
    lists = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.ModuleList) and len(m) > 1]
    if not lists:
        return None
    path, blocks = max(lists, key=lambda nm: sum(p.numel() for p in nm[1].parameters()))
    pattern = re.compile(rf"^{re.escape(path)}\.(\d+)\.")
    out, after = {}, False
    for name, _ in model.named_parameters():
        match = pattern.match(name)
        after = after or match is not None
        out[name] = int(match.group(1)) + 1 if match else (len(blocks) + 1 if after else 0)
    return out


def _library_layers(backbone: nn.Module) -> dict[str, int] | None:
    """Layer of each parameter from the wrapped timm / transformers model, or None."""
    inner = getattr(backbone, "model", None)
    if not isinstance(inner, nn.Module):
        return None
    if hasattr(inner, "group_matcher"):  # timm
        from timm.models import group_parameters

        inner_layers = group_parameters(inner, inner.group_matcher(coarse=False), reverse=True)
    elif type(inner).__module__.startswith("transformers."):
        inner_layers = _transformers_layers(inner)
        if inner_layers is None:
            return None
    else:
        return None
    # Layer 0: the backbone's own parameters outside the library model (the input side).
    return {name: inner_layers[name[len("model."):]] + 1 if name.startswith("model.") else 0
            for name, _ in backbone.named_parameters()}


def _units(module: nn.Module, prefix: str = "") -> list[list[str]]:
    """The module-name prefixes of each layer, input side first (see the module docstring)."""
    units: list[list[str]] = []
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if not any(True for _ in child.parameters()):
            continue
        if isinstance(child, _CONTAINERS):
            units += _units(child, f"{full}.")
        elif isinstance(child, _NORMS) and units:
            units[-1].append(full)
        else:
            units.append([full])
    return units


def _module_order_layers(backbone: nn.Module) -> dict[str, int]:
    prefixes = [(re.compile(rf"^{re.escape(p)}\."), i)
                for i, unit in enumerate(_units(backbone)) for p in unit]
    out = {}
    for name, _ in backbone.named_parameters():
        out[name] = next((i for pattern, i in prefixes if pattern.match(name)), 0)
    return out


def layer_ids(backbone: nn.Module) -> dict[str, int]:
    """``{parameter name: layer}``, 0 at the input, consecutive up to the top layer."""
    layers = _library_layers(backbone) or _module_order_layers(backbone)
    rank = {v: i for i, v in enumerate(sorted(set(layers.values())))}
    return {name: rank[v] for name, v in layers.items()}


class _Grouped:
    """What timm's ``param_groups_layer_decay`` reads of a model: its parameters and a
    ``group_matcher`` (here: the layer of each parameter name)."""

    def __init__(self, module: nn.Module, layers: dict[str, int]) -> None:
        self.module, self.layers = module, layers

    def named_parameters(self) -> Any:
        return self.module.named_parameters()

    def group_matcher(self, coarse: bool = False) -> Any:
        return lambda name: (self.layers[name],)


def layer_decay_groups(backbone: nn.Module, *, lr: float, weight_decay: float,
                       decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups of ``backbone``'s trainable parameters: layer ``i`` of ``L``
    (0 = input side) at ``lr x decay ** (L - i)``, so the top layer is one step below a head
    trained at ``lr``. Each group carries its ``lr``, ``weight_decay``, ``lr_scale`` and
    ``layer``.

    Raises:
        ValueError: ``decay`` is not in (0, 1].
    """
    if not 0 < decay <= 1:
        raise ValueError(f"layer decay must be in (0, 1], got {decay}")
    from timm.optim import param_groups_layer_decay

    layers = layer_ids(backbone)
    groups = param_groups_layer_decay(_Grouped(backbone, layers), weight_decay=weight_decay,
                                      weight_decay_exclude_1d=False, layer_decay=decay)
    layer_of = {id(p): layers[n] for n, p in backbone.named_parameters()}
    for group in groups:
        # timm gives the top layer scale 1; the head above it is that here (BEiT's layout).
        group["lr_scale"] = float(group["lr_scale"]) * decay
        group["lr"] = lr * group["lr_scale"]
        group["layer"] = layer_of[id(group["params"][0])]
    return groups
