"""Hugging Face models as ``backbone.init`` sources, read through transformers.

``hf:<org>/<model>`` and Hugging Face model directories (``save_pretrained``) are read with
``AutoModel.from_pretrained(..., local_files_only=...)``: transformers maps checkpoint names
(older checkpoints, task models such as ``ViTForImageClassification``) to the base model's,
and the heads the base model has no place for (classifiers) are dropped. Weights the file
lacks (``missing_keys``) are never passed on as if loaded.

:func:`adapt_to_hf` then fits the tensors to the backbone's model: a patch embedding to
another patch size (timm's ``resample_patch_embed``) and channel count (timm's
``adapt_input_conv``), 2-D position embeddings to another grid (timm's
``resample_abs_pos_embed``), a time-series position table to another number of patches
(linear interpolation).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslcore.init.errors import InitFileError, InitSourceError
from sslcore.init.files import check_safetensors, weight_files
from sslcore.init.sources import Source, hf_cache_dir, offline, read_config


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars or load tables from transformers: sslcore prints its own report."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _not_found(text: str, exc: BaseException) -> InitSourceError:
    why = "offline: HF_HUB_OFFLINE is set" if offline() else f"{type(exc).__name__}"
    return InitSourceError(
        f"backbone.init: {text} could not be found or downloaded ({why}; cache "
        f"{hf_cache_dir()}); download it where you have network "
        "(huggingface-cli download <org>/<model> --local-dir DIR) and pass the directory "
        "(init: /path/DIR), or set HF_HOME to a filled cache; sslcore downloads only with "
        "HF_HUB_OFFLINE=0")


def resolve_hf(text: str, file: str | None) -> Source:
    """``hf:<org>/<model>`` -> a Source; its config is read now, so an unknown or uncached
    name fails when the backbone is built.

    Raises:
        InitSourceError: the model is neither a directory (``init.file``), nor cached, nor
            downloadable.
    """
    repo = text.removeprefix("hf:").strip("/")
    if file is not None:
        from sslcore.init.sources import resolve_local

        src = resolve_local(file)
        if src.kind != "transformers":
            raise InitSourceError(f"backbone.init.file: {file} is not a Hugging Face model "
                                  "directory (config.json with model_type, and its weights)")
        src.text = text
        return src
    from transformers import AutoConfig

    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(repo, local_files_only=offline(),
                                                cache_dir=hf_cache_dir())
    except (OSError, ValueError) as exc:
        raise _not_found(text, exc) from None
    return Source(text, "transformers", hub_id=repo, meta=config.to_dict(),
                  library="transformers")


def source_config(src: Source) -> Any:
    """The transformers config of a Hugging Face source or of an sslcore export of a
    transformers backbone; None for other sources."""
    if src.library != "transformers":
        return None
    from transformers import AutoConfig

    ref = str(src.path) if src.path is not None else src.hub_id
    with quiet_transformers():
        config = AutoConfig.from_pretrained(ref, local_files_only=offline(),
                                            cache_dir=hf_cache_dir())
    if hasattr(config, "sslcore"):
        del config.sslcore  # the export's own block, not an architecture setting
    return config


def load_hf_tensors(src: Source) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The base model's tensors of a transformers source and the source keys it dropped.

    Raises:
        InitSourceError: not found / not downloadable.
        InitFileError: a weights file is truncated or transformers cannot read it.
    """
    from transformers import AutoModel

    ref = str(src.path) if src.path is not None else src.hub_id
    if src.path is not None:
        files = weight_files(src.path)
        if not files:
            raise InitSourceError(f"backbone.init: {src.path} has a config.json but no "
                                  "weights (model.safetensors or pytorch_model.bin)")
        for f in files:
            if f.suffix == ".safetensors":
                check_safetensors(f)
    kwargs = {"add_pooling_layer": False} if src.meta.get("model_type") == "vit" else {}
    try:
        with quiet_transformers():
            model, info = AutoModel.from_pretrained(
                ref, local_files_only=offline(), cache_dir=hf_cache_dir(),
                output_loading_info=True, **kwargs)
    except OSError as exc:
        if src.path is None:
            raise _not_found(src.text, exc) from None
        raise InitFileError(f"backbone.init: transformers could not read {src.path} "
                            f"({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # safetensors / torch errors on a corrupt file
        raise InitFileError(f"backbone.init: transformers could not read {ref} "
                            f"({type(exc).__name__}: {exc})") from exc
    if src.path is None:  # hash what the cache holds
        src.files = _cached_files(src.hub_id or "")
    missing = set(info.get("missing_keys", ()))
    tensors = {k: v for k, v in model.state_dict().items() if k not in missing}
    return tensors, sorted(info.get("unexpected_keys", ()))


def _cached_files(repo: str) -> list[Path]:
    from huggingface_hub import snapshot_download

    try:
        snap = Path(snapshot_download(repo, local_files_only=True, cache_dir=hf_cache_dir()))
    except Exception:
        return []
    cfg = [snap / "config.json"] if read_config(snap) is not None else []
    return cfg + weight_files(snap)


def _grid(model: nn.Module) -> tuple[int, int] | None:
    cfg = getattr(model, "config", None)
    size, patch = getattr(cfg, "image_size", None), getattr(cfg, "patch_size", None)
    if size is None or patch is None:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)
    return h // ph, w // pw


def adapt_to_hf(model: nn.Module, state_dict: dict[str, torch.Tensor]
                ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Reshape the tensors of ``state_dict`` (the model's own names) that differ from
    ``model``'s only by patch size, input channels or number of positions; the rest are
    returned unchanged (a remaining shape mismatch is reported, never loaded)."""
    from timm.layers import resample_abs_pos_embed, resample_patch_embed
    from timm.models import adapt_input_conv

    target = model.state_dict()
    out, adapted = dict(state_dict), []
    for key, value in state_dict.items():
        t = target.get(key)
        if t is None or tuple(t.shape) == tuple(value.shape):
            continue
        new = None
        if value.ndim == 4 and t.ndim == 4 and value.shape[0] == t.shape[0]:  # a patch conv
            new = value.float()
            if tuple(new.shape[-2:]) != tuple(t.shape[-2:]):
                new = resample_patch_embed(new, list(t.shape[-2:]))
            if new.shape[1] != t.shape[1]:
                try:
                    new = adapt_input_conv(int(t.shape[1]), new, base_chans=int(new.shape[1]))
                except (NotImplementedError, ValueError):  # timm cannot map these channels:
                    new = None  # the tensor counts as shape-mismatched in the report
        elif ("position" in key and value.ndim == 3 and t.ndim == 3
              and value.shape[-1] == t.shape[-1]):  # (1, prefix + H*W, D): a 2-D grid
            grid = _grid(model)
            prefix = t.shape[1] - (grid[0] * grid[1]) if grid else -1
            old = value.shape[1] - prefix
            if grid and prefix >= 0 and old > 0 and math.isqrt(old) ** 2 == old:
                new = resample_abs_pos_embed(value.float(), list(grid),
                                             num_prefix_tokens=prefix)
        elif ("position" in key and value.ndim == 2 and t.ndim == 2
              and value.shape[-1] == t.shape[-1]):  # (positions, D): a time axis
            prefix = int(bool(getattr(getattr(model, "config", None), "use_cls_token", False)))
            body = value[prefix:].float().t()[None]
            body = F.interpolate(body, size=t.shape[0] - prefix, mode="linear",
                                 align_corners=False)[0].t()
            new = torch.cat([value[:prefix].float(), body]) if prefix else body
        if new is not None and tuple(new.shape) == tuple(t.shape):
            out[key] = new.to(value.dtype)
            adapted.append(f"{key}: {tuple(value.shape)} -> {tuple(t.shape)}")
    return out, adapted


# Bookkeeping fields of every transformers config, never architecture.
_META = {"_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype",
         "model_type", "return_dict", "output_attentions", "output_hidden_states",
         "id2label", "label2id", "problem_type", "chunk_size_feed_forward", "is_encoder_decoder",
         "sslcore"}


def config_overrides(config: Any, skip: set[str] | frozenset[str] = frozenset()
                     ) -> dict[str, bool | int | float | str]:
    """The scalar fields of a transformers ``config`` that differ from its class's defaults
    (less ``skip`` and bookkeeping): what a backbone's ``export_params`` records so that the
    architecture it was built with from ``backbone.init`` is rebuilt without it."""
    default = type(config)().to_dict()
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.to_dict().items():
        if key in _META or key in skip or not isinstance(value, bool | int | float | str):
            continue
        if default.get(key, object()) != value:
            out[key] = value
    return out
