"""Reading weights files safely: SHA-256, a truncation check, ``weights_only`` loads.

A ``.safetensors`` file is checked against its own header (a truncated download fails here,
naming the file, instead of deep inside a library); anything else is read with
``torch.load(weights_only=True)``, so loading never runs code from the file.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import torch

from sslcore.init.errors import InitFileError, InitSourceError

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
# Checkpoint containers unwrapped to their state dict (timm's, Lightning's, sslcore's own).
_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "module")


def file_record(path: Path) -> dict[str, Any]:
    """``{"path", "sha256", "bytes"}`` of one file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": str(path), "sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def check_safetensors(path: Path) -> None:
    """Raise :class:`InitFileError` unless ``path`` is a complete safetensors file: an 8-byte
    header length, a JSON header, and every tensor's bytes present."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n <= 0 or 8 + n > size:
                raise ValueError(f"header of {n} bytes in a {size}-byte file")
            header = json.loads(fh.read(n))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InitFileError(f"backbone.init: {path} is not a valid safetensors file ({exc}); "
                            "download it again") from None
    if 8 + n + max(ends, default=0) > size:
        raise InitFileError(f"backbone.init: {path} is truncated ({size} bytes, its header "
                            f"says {8 + n + max(ends)}); download it again")


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj, dict)
                      and isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise InitFileError(f"backbone.init: {path} holds a {type(obj).__name__}, not a state "
                            "dict (a mapping of names to tensors)")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InitFileError(f"backbone.init: {path} holds no tensors; expected a state dict "
                            "(name -> tensor), e.g. torch.save(model.state_dict(), path)")
    if all(k.startswith("module.") for k in tensors):  # saved from DistributedDataParallel
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return tensors


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or torch file (unwrapping ``state_dict`` / ``model``
    containers and a DDP ``module.`` prefix), on the CPU.

    Raises:
        InitSourceError: the file does not exist.
        InitFileError: it is truncated, corrupt or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise InitSourceError(f"backbone.init: {path} does not exist")
    if path.suffix == ".safetensors":
        check_safetensors(path)
        from safetensors.torch import load_file

        try:
            return _unwrap(load_file(str(path), device="cpu"), path)
        except InitFileError:
            raise
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise InitFileError(f"backbone.init: {path} could not be read as safetensors "
                                f"({type(exc).__name__}: {exc}); download it again") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # RuntimeError, UnpicklingError, EOFError, ...
        raise InitFileError(
            f"backbone.init: {path} is truncated, corrupt or not a torch state dict "
            f"({type(exc).__name__}); download or export it again (objects other than "
            "tensors and plain containers are refused: weights_only=True)") from exc
    return _unwrap(obj, path)


def weight_files(directory: Path) -> list[Path]:
    """The weights files of a model directory: ``model.safetensors`` (or its shards), else
    ``pytorch_model.bin`` (or shards), else the single ``*.safetensors`` / ``*.pt`` in it."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (directory / index).is_file():
            shards = json.loads((directory / index).read_text()).get("weight_map", {})
            return sorted({directory / s for s in shards.values()})
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return [directory / name]
    found = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.suffix in WEIGHT_SUFFIXES and not p.name.startswith("."))
    return found[:1] if len(found) == 1 else found
