"""timm's pretrained weights: ``timm:<name>.<tag>`` sources, and timm's own adaptation.

A ``timm:`` source resolves to a local file: ``init.file`` when given (a file downloaded where
there is network), else the Hugging Face cache (``HF_HOME``), downloading only when
``HF_HUB_OFFLINE`` is off (sslcore sets it on unless the user sets ``HF_HUB_OFFLINE=0``).

Any state dict for a timm model then goes through timm's ``load_pretrained``, the function
``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...))`` calls:
the model's checkpoint filter (ViT position embeddings resampled to the grid, patch
embeddings to the patch size), ``adapt_input_conv`` for other input channels (3 -> 1 sums the
RGB filters, 3 -> 13 repeats them scaled by 3/13), and the classifier dropped. The tensors it
would load are captured and loaded by :func:`sslcore.init.load.load_init`, which reports them.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslcore.init.errors import InitMismatchError, InitSourceError
from sslcore.init.sources import Source, hf_cache_dir, offline

_HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def _offline_error(text: str, where: str) -> InitSourceError:
    why = "offline: HF_HUB_OFFLINE is set" if offline() else "the download failed"
    return InitSourceError(
        f"backbone.init: {text} could not be downloaded ({why}; looked in {where}); download "
        "it where you have network and pass the file (backbone.init: {source: "
        f"{text}, file: /path/model.safetensors}} or init: /path/model.safetensors), or set "
        "HF_HOME to a filled cache; sslcore downloads only with HF_HUB_OFFLINE=0")


def resolve_timm(text: str, file: str | None) -> Source:
    """``timm:<name>.<tag>`` -> a Source with the weights file and the tag's pretrained_cfg.

    Raises:
        InitSourceError: not a timm model, an unknown tag (with the known ones), a missing
            ``file``, or weights neither cached nor downloadable.
    """
    import timm

    name = text.removeprefix("timm:")
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise InitSourceError(f"backbone.init: {arch!r} ({text}) is not a timm model.{hint}")
    try:
        cfg = timm.get_pretrained_cfg(name)
    except RuntimeError:
        cfg = None
    if cfg is None:
        tags = timm.list_pretrained(f"{arch}.*")
        known = f" Its weights: {', '.join(tags[:8])}{' ...' if len(tags) > 8 else ''}." \
            if tags else " It has no pretrained weights in timm."
        raise InitSourceError(f"backbone.init: timm has no pretrained weights {name!r}.{known} "
                              "List them with python -c \"import timm; "
                              f"print(timm.list_pretrained('{arch}*'))\"")
    meta = cfg.to_dict() | {"architecture": arch}
    if file is not None:
        path = Path(file).expanduser()
        if path.is_dir():  # a downloaded hub folder (timm/<name>.<tag>): its weights file
            from sslcore.init.files import weight_files

            path = next(iter(weight_files(path)), path)
        if not path.is_file():
            raise InitSourceError(f"backbone.init.file: {file} is not a weights file (the "
                                  f"weights of {text}, e.g. its model.safetensors)")
        return Source(text, "timm", path=path, files=[path], meta=meta, library="timm")
    path = _cached_weights(text, meta)
    return Source(text, "timm", path=path, files=[path], meta=meta, library="timm")


def _cached_weights(text: str, cfg: dict[str, Any]) -> Path:
    """The local file of a timm tag: the Hugging Face cache (hub id) or timm's URL cache."""
    cache = hf_cache_dir()
    if cfg.get("hf_hub_id"):
        from huggingface_hub import hf_hub_download

        names = ([cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else []) + list(_HUB_FILES)
        for filename in names:
            try:
                return Path(hf_hub_download(cfg["hf_hub_id"], filename, cache_dir=cache,
                                            local_files_only=offline()))
            except Exception:  # not cached / not that filename / no network: try the next
                continue
    if cfg.get("url"):
        from timm.models._hub import download_cached_file, get_cache_dir

        local = Path(get_cache_dir()) / os.path.basename(cfg["url"])
        if local.is_file():
            return local
        if not offline():
            try:
                return Path(download_cached_file(cfg["url"], check_hash=False, progress=False))
            except Exception:
                pass
    raise _offline_error(text, cache)


def first_conv_channels(model: nn.Module, state_dict: dict[str, torch.Tensor],
                        default: int = 3) -> int:
    """Input channels of a state dict, read from the model's first convolution's weight."""
    first = model.pretrained_cfg.get("first_conv") if hasattr(model, "pretrained_cfg") else None
    for name in ([first] if isinstance(first, str) else list(first or [])):
        weight = state_dict.get(f"{name}.weight")
        if weight is not None and weight.ndim == 4:
            return int(weight.shape[1])
    return default


def adapt_to_timm(model: nn.Module, state_dict: dict[str, torch.Tensor], in_chans: int,
                  source_cfg: dict[str, Any] | None = None
                  ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """The tensors timm's ``load_pretrained`` would load into ``model`` from ``state_dict``
    (classifier dropped, first convolution adapted to ``in_chans``, the model's checkpoint
    filter applied), with what it reshaped and what it dropped, in words.

    Raises:
        InitMismatchError: timm refuses the state dict (inconsistent shapes).
    """
    from timm.models import _builder

    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    cfg.update({k: v for k, v in (source_cfg or {}).items()
                if k in ("classifier", "first_conv", "label_offset")})
    src_chans = first_conv_channels(model, state_dict)
    size = tuple(cfg.get("input_size") or (3, 224, 224))
    for key in ("url", "hf_hub_id", "file", "source", "hf_hub_filename"):
        cfg.pop(key, None)
    # num_classes -1: never the model's (0), so load_pretrained drops the classifier.
    cfg.update(state_dict=dict(state_dict), input_size=(src_chans, *size[1:]), num_classes=-1,
               custom_load=False)
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    captured: dict[str, torch.Tensor] = {}

    def capture(sd: dict[str, torch.Tensor], strict: bool = True, assign: bool = False) -> Any:
        captured.update(sd)
        return nn.modules.module._IncompatibleKeys([], [])

    model.load_state_dict = capture  # type: ignore[method-assign]  # this instance, this call
    try:
        _builder.load_pretrained(model, pretrained_cfg=cfg, num_classes=0, in_chans=in_chans,
                                 filter_fn=filter_fn, strict=False)
    except (RuntimeError, ValueError, AssertionError, KeyError, NotImplementedError) as exc:
        raise InitMismatchError(f"backbone.init: timm cannot adapt these weights to "
                                f"{cfg.get('architecture', type(model).__name__)!r} "
                                f"({type(exc).__name__}: {exc})") from exc
    finally:
        del model.load_state_dict
    adapted = [f"{k}: {tuple(state_dict[k].shape)} -> {tuple(v.shape)}"
               for k, v in captured.items() if k in state_dict
               and tuple(state_dict[k].shape) != tuple(v.shape)]
    dropped = sorted(set(state_dict) - set(captured))
    return captured, adapted, dropped
