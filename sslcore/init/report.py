"""The loading report of ``backbone.init``: what was loaded, missing, unexpected, adapted.

Every load produces one (``backbone.init_report``); ``to_dict()`` / ``to_json()`` are what a run
logs as ``init_report.json``, ``summary()`` the line printed when the backbone is built.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

_SHOWN = 5  # keys named per list in summary(); to_dict() keeps them all


@dataclass
class InitReport:
    """What ``backbone.init`` did to one backbone.

    Attributes:
        source: the source as configured (``timm:resnet18.a1_in1k``, a path, an MLflow URI).
        kind: how it was read: ``state_dict`` (a file), ``timm``, ``transformers`` (a Hugging
            Face model) or ``sslcore`` (an sslcore export).
        files: the files read, each ``{"path", "sha256", "bytes"}``.
        loaded: backbone keys that received a tensor from the source.
        missing: backbone keys (in ``scope``) the source did not provide: they keep their
            random initialisation.
        unexpected: source keys the backbone has no place for.
        mismatched: source tensors whose shape differs from the backbone's (not loaded), each
            ``{"key", "source_shape", "model_shape"}``.
        adapted: source tensors reshaped to fit (input channels, position embeddings, patch
            size), in words.
        dropped: source keys left out on purpose (classifier heads, poolers), named as in the
            source; ``adapted`` names them so too.
        scope: the part of the backbone the source describes: ``model`` (the timm or
            transformers model inside the backbone) or ``backbone`` (all of it, for sslcore
            sources).
        loaded_params / total_params: parameter elements loaded / in ``scope``.
        min_loaded: the configured floor on ``fraction``.
    """

    source: str
    kind: str
    files: list[dict[str, Any]] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    scope: str = "backbone"
    loaded_params: int = 0
    total_params: int = 0
    min_loaded: float = 0.9

    @property
    def fraction(self) -> float:
        """Share of the parameter elements in ``scope`` that came from the source."""
        return self.loaded_params / self.total_params if self.total_params else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"fraction": round(self.fraction, 6)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        """One paragraph: counts, the fraction, what was adapted, the first keys of each list."""
        digest = ", ".join(f"{f['sha256'][:12]}" for f in self.files) or "no file"
        text = (f"backbone.init {self.source} ({self.kind}, sha256 {digest}): "
                f"{len(self.loaded)} tensors loaded, {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.mismatched)} shape-mismatched, "
                f"{len(self.dropped)} dropped; {self.fraction:.1%} of the {self.scope}'s "
                f"{self.total_params:,} parameters loaded (min_loaded {self.min_loaded:.0%})")
        for name, items in (("adapted", self.adapted), ("dropped", self.dropped),
                            ("missing", self.missing), ("unexpected", self.unexpected),
                            ("shape-mismatched", [f"{m['key']} {tuple(m['source_shape'])} vs "
                                                  f"{tuple(m['model_shape'])}"
                                                  for m in self.mismatched])):
            if items:
                more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
                text += f"\n  {name}: {', '.join(items[:_SHOWN])}{more}"
        return text


def apply_state_dict(backbone: nn.Module, state_dict: dict[str, torch.Tensor],
                     report: InitReport, scope_prefix: str = "") -> InitReport:
    """Load the tensors of ``state_dict`` (keyed like ``backbone.state_dict()``) whose name
    and shape match, and fill ``report``'s key lists and parameter counts.

    ``scope_prefix`` (e.g. ``"model."``) restricts ``missing`` and the parameter counts to
    that part of the backbone. Never raises on a partial load: the caller checks
    ``report.fraction`` against ``min_loaded``.
    """
    target = backbone.state_dict()
    loadable: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key not in target:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            report.mismatched.append({"key": key, "source_shape": list(value.shape),
                                      "model_shape": list(target[key].shape)})
        else:
            loadable[key] = value
    backbone.load_state_dict(loadable, strict=False)
    report.loaded = sorted(loadable)
    report.missing = sorted(k for k in target if k.startswith(scope_prefix)
                            and k not in loadable)
    params = {k: p for k, p in backbone.named_parameters() if k.startswith(scope_prefix)}
    report.total_params = sum(p.numel() for p in params.values())
    report.loaded_params = sum(p.numel() for k, p in params.items() if k in loadable)
    report.scope = "model" if scope_prefix else "backbone"
    report.unexpected.sort()
    return report
