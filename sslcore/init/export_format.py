"""The sslcore export format: a pretrained encoder any of timm, transformers or sslcore loads.

A directory with:

- ``model.safetensors``: the weights of the library model inside the backbone (timm's or
  transformers' own names), or the whole backbone's state dict for backbones of sslcore's own
  (``mlp``, ``tcn``);
- ``config.json``: for timm backbones timm's hub config (``architecture``, ``model_args``,
  ``pretrained_cfg``; ``timm.create_model("local-dir:DIR", pretrained=True)`` rebuilds the
  model), for transformers backbones the model's config (``AutoModel.from_pretrained(DIR)``),
  plus, for all, an ``sslcore`` block: format, backbone name, params, input shape, embedding
  size, library, the label-free normalizer's statistics and where the weights came from;
- ``sslcore_extra.safetensors``: the backbone's other tensors (the normalizer's statistics, a
  pooling head, a reconstruction read-out), when it has any.

A backbone names its library model with ``native_library`` ("timm" or "transformers") and
keeps it as ``backbone.model``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslcore.init.errors import InitSourceError
from sslcore.init.files import read_state_dict, weight_files
from sslcore.init.sources import EXPORT_EXTRA, Source

FORMAT = 1
NATIVE_PREFIX = "model."


def native_part(backbone: nn.Module) -> tuple[str, nn.Module | None, str | None]:
    """``(key prefix, library model, library)`` of a backbone: ``("model.", backbone.model,
    "timm")`` for a timm backbone, ``("", None, None)`` for a backbone of sslcore's own."""
    library = getattr(backbone, "native_library", None)
    if library and isinstance(getattr(backbone, "model", None), nn.Module):
        return NATIVE_PREFIX, backbone.model, library
    return "", None, None


def architecture_of(backbone: nn.Module) -> str:
    """What an export records as the architecture: the timm model name, the transformers
    ``model_type``, else the backbone's class."""
    _, model, library = native_part(backbone)
    if library == "timm":
        return str(model.pretrained_cfg.get("architecture") or type(model).__name__)
    if library == "transformers":
        return str(model.config.model_type)
    return class_name(backbone)


def class_name(backbone: nn.Module) -> str:
    return f"{type(backbone).__module__}.{type(backbone).__qualname__}"


def _normalizer(backbone: nn.Module) -> dict[str, Any] | None:
    for mean, std in (("channel_mean", "channel_std"), ("feature_mean", "feature_std")):
        if isinstance(getattr(backbone, mean, None), torch.Tensor):
            return {"mean": getattr(backbone, mean).tolist(),
                    "std": getattr(backbone, std).tolist(),
                    "note": "sslcore standardizes inputs with these (in the training data's raw "
                            "units) inside the backbone; plain timm / transformers models take "
                            "inputs already standardized this way"}
    return None


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})


def write_export(backbone: nn.Module, out_dir: str | Path, *, name: str,
                 params: dict[str, Any], input_shape: tuple[int, ...],
                 provenance: dict[str, Any] | None = None) -> Path:
    """Write ``backbone`` as an sslcore export into ``out_dir`` (created) and return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix, model, library = native_part(backbone)
    state = backbone.state_dict()
    extra = {k: v for k, v in state.items() if not k.startswith(prefix)} if prefix else {}
    config: dict[str, Any] = {}
    if library == "timm":
        from timm.models._hub import save_config_for_hf

        _save(model.state_dict(), out / "model.safetensors")
        norm = _normalizer(backbone)
        data = {"input_size": tuple(int(d) for d in input_shape)}
        if norm:
            data |= {"mean": tuple(norm["mean"]), "std": tuple(norm["std"])}
        save_config_for_hf(model, str(out / "config.json"), data_config=data,
                           model_config={"pretrained_cfg": {"tag": "sslcore"}})
        config = json.loads((out / "config.json").read_text())
        for key in ("license", "origin_url", "paper_ids", "hf_hub_id", "url"):
            config.get("pretrained_cfg", {}).pop(key, None)
    elif library == "transformers":
        from sslcore.init.hf import quiet_transformers

        with quiet_transformers():
            model.save_pretrained(str(out))
        config = json.loads((out / "config.json").read_text())
    else:
        _save(state, out / "model.safetensors")
    if extra:
        _save(extra, out / EXPORT_EXTRA)
    if callable(getattr(backbone, "export_params", None)):
        params = backbone.export_params()  # the architecture an init gave it, spelled out
    config["sslcore"] = {
        "format": FORMAT, "backbone": name, "params": params,
        "input_shape": [int(d) for d in input_shape],
        "embed_dim": int(getattr(backbone, "embed_dim", 0)),
        "library": library, "native_prefix": prefix, "architecture": architecture_of(backbone),
        "class": class_name(backbone), "normalizer": _normalizer(backbone),
        "provenance": provenance or {}}
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    return out


def read_export_tensors(src: Source) -> dict[str, torch.Tensor]:
    """An export's tensors keyed like the backbone's ``state_dict`` (library names under the
    ``native_prefix``), except transformers weights, read by :mod:`sslcore.init.hf`."""
    assert src.path is not None
    prefix = src.meta.get("native_prefix", "")
    out: dict[str, torch.Tensor] = {}
    if src.library != "transformers":
        files = [f for f in weight_files(src.path) if f.name != EXPORT_EXTRA]
        if not files:
            raise InitSourceError(f"backbone.init: export {src.path} has no model.safetensors")
        for f in files:
            out |= {prefix + k: v for k, v in read_state_dict(f).items()}
    if (src.path / EXPORT_EXTRA).is_file():
        out |= read_state_dict(src.path / EXPORT_EXTRA)
    return out


def find_export(root: Path, depth: int = 3) -> Path | None:
    """The first directory under ``root`` (itself included) holding an sslcore export."""
    candidates = [root]
    for _ in range(depth + 1):
        nxt = []
        for d in candidates:
            cfg = d / "config.json"
            if cfg.is_file():
                try:
                    if isinstance(json.loads(cfg.read_text()).get("sslcore"), dict):
                        return d
                except (OSError, ValueError, AttributeError):
                    pass
            nxt += sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []
        candidates = nxt
    return None
